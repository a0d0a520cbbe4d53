//! Channels: their kinds and names (§3.5), settings (§3.4), crown (§3.6, §7), participants,
//! chat history and bans (§9). Pure data and the rules that need nothing but the channel.

use super::ConnId;
use super::ids::{Rng, UserId};
use super::quota::{NoteQuota, PARAMS_CROWNED, PARAMS_LOBBY, PARAMS_NORMAL, PARAMS_TRUSTED, QuotaParams, RateLimiter};
use crate::proto::outbound::{Num, Pos};
use crate::proto::validate::parse_color;
use crate::time::Millis;
use serde::Serialize;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// Where banned and refused users are sent (§3.5).
pub const AWKWARD: &str = "test/awkward";

/// Where a never-moved cursor is reported (§3.2).
pub const UNMOVED: (f64, f64) = (200.0, 100.0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `lobby` (number 1) or `lobby<digits>`; capped, overflowing to the next number.
    Lobby,
    /// `test/…`: like a lobby without a cap.
    Test,
    /// Anything else: has a crown and owner-controlled settings.
    Normal,
}

impl Kind {
    pub fn of(name: &str) -> Kind {
        if let Some(digits) = name.strip_prefix("lobby")
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Kind::Lobby;
        }
        if name.len() > "test/".len() && name.starts_with("test/") {
            return Kind::Test;
        }
        Kind::Normal
    }
}

/// The lobby a full lobby overflows into: `lobby` → `lobby2`, `lobbyN` → `lobby(N+1)` with N
/// read as a decimal number (`lobby02` → `lobby3`). `None` when N is too large to count on.
pub fn next_lobby(name: &str) -> Option<String> {
    let digits = name.strip_prefix("lobby")?;
    let n: u64 = if digits.is_empty() { 1 } else { digits.parse().ok()? };
    Some(format!("lobby{}", n.checked_add(1)?))
}

/// Channel settings (§3.4), serialized in this field order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lobby: Option<bool>,
    pub visible: bool,
    pub chat: bool,
    pub crownsolo: bool,
    pub color: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color2: Option<String>,
    #[serde(rename = "no cussing", skip_serializing_if = "Option::is_none")]
    pub no_cussing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noindex: Option<bool>,
    #[serde(rename = "allowBots", skip_serializing_if = "Option::is_none")]
    pub allow_bots: Option<bool>,
}

impl Settings {
    pub fn lobby() -> Settings {
        Settings { lobby: Some(true), color: "#73b3cc".into(), color2: Some("#273546".into()), ..Settings::normal() }
    }

    pub fn normal() -> Settings {
        Settings {
            lobby: None,
            visible: true,
            chat: true,
            crownsolo: false,
            color: "#3b5054".into(),
            color2: None,
            no_cussing: None,
            limit: None,
            noindex: None,
            allow_bots: None,
        }
    }

    /// Applies a client-supplied `set` through the §3.4 filter: known client-settable keys
    /// only, booleans as `=== true`, invalid values skipped key by key, and `color2` removed
    /// when absent (§5 `chset`). Returns whether anything changed.
    pub fn apply(&mut self, set: &Map<String, Value>) -> bool {
        let before = self.clone();
        for (key, value) in set {
            let flag = *value == Value::Bool(true);
            match key.as_str() {
                "visible" => self.visible = flag,
                "chat" => self.chat = flag,
                "crownsolo" => self.crownsolo = flag,
                "no cussing" => self.no_cussing = Some(flag),
                "noindex" => self.noindex = Some(flag),
                "allowBots" => self.allow_bots = Some(flag),
                "color" => {
                    if let Some(c) = value.as_str().and_then(parse_color) {
                        self.color = c;
                    }
                }
                "color2" => {
                    if let Some(c) = value.as_str().and_then(parse_color) {
                        self.color2 = Some(c);
                    }
                }
                "limit" => match parse_limit(value) {
                    Some(LimitSetting::Remove) => self.limit = None,
                    Some(LimitSetting::Set(n)) => self.limit = Some(n),
                    None => {}
                },
                _ => {}
            }
        }
        if !set.contains_key("color2") {
            self.color2 = None;
        }
        *self != before
    }
}

enum LimitSetting {
    Remove,
    Set(u8),
}

/// `limit`: an integer 0–99 as a number or numeric string; `""` removes it.
fn parse_limit(value: &Value) -> Option<LimitSetting> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) if s.is_empty() => return Some(LimitSetting::Remove),
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if n.fract() == 0.0 && (0.0..=99.0).contains(&n) { Some(LimitSetting::Set(n as u8)) } else { None }
}

/// The crown of a normal room (§3.6).
#[derive(Clone, Debug, PartialEq)]
pub struct Crown {
    /// Current or last holder.
    pub user_id: UserId,
    /// Whether it is held (by `user_id`'s participant) or lying dropped.
    pub held: bool,
    /// Server time of the last change.
    pub time: Millis,
    pub start: (f64, f64),
    pub end: (f64, f64),
}

/// The crown as channel info shows it (§3.6).
#[derive(Serialize)]
pub struct CrownJson<'a> {
    #[serde(rename = "userId")]
    user_id: &'a str,
    #[serde(rename = "participantId", skip_serializing_if = "Option::is_none")]
    participant_id: Option<&'a str>,
    time: Millis,
    #[serde(rename = "startPos")]
    start_pos: Pos,
    #[serde(rename = "endPos")]
    end_pos: Pos,
}

impl Crown {
    /// Its wire form; `id` is the holder's id as text.
    pub fn view<'a>(&self, id: &'a str) -> CrownJson<'a> {
        CrownJson {
            user_id: id,
            participant_id: self.held.then_some(id),
            time: self.time,
            start_pos: Pos { x: Num(self.start.0), y: Num(self.start.1) },
            end_pos: Pos { x: Num(self.end.0), y: Num(self.end.1) },
        }
    }

    /// Whether it is held by this user.
    pub fn is_held_by(&self, user: UserId) -> bool {
        self.held && self.user_id == user
    }

    /// §7.2: the crown falls from the holder's cursor towards the bottom of the screen.
    pub fn drop_from(&mut self, cursor: (f64, f64), now: Millis, rng: &mut Rng) {
        self.held = false;
        self.time = now;
        self.start = cursor;
        self.end = (cursor.0.clamp(10.0, 90.0), rng.range_f64(70.0, 90.0));
    }

    /// §7.4: a transfer animates from the giver's cursor to the recipient's.
    pub fn give(&mut self, to: UserId, from_cursor: (f64, f64), to_cursor: (f64, f64), now: Millis) {
        self.user_id = to;
        self.held = true;
        self.time = now;
        self.start = from_cursor;
        self.end = to_cursor;
    }
}

/// A user's presence in one channel, shared by all of that user's connections there (§3.1).
#[derive(Debug)]
pub struct Participant {
    pub user: UserId,
    /// This user's connections in the channel, in the order they joined.
    pub conns: Vec<ConnId>,
    /// `None` until the first cursor move.
    pub cursor: Option<(f64, f64)>,
    pub quota: NoteQuota,
    pub chat_limit: RateLimiter,
    /// The connection whose move is waiting to be broadcast, if any (§5 `m` coalescing).
    pub cursor_pending: Option<ConnId>,
    /// When this participant's cursor was last broadcast.
    pub cursor_sent_at: Option<Millis>,
    /// This participant's `ppl` entry as last serialized; cleared when its cursor, name or
    /// colour changes. Joins into big rooms rebuild `ppl` often, and mostly from here.
    pub ppl_entry: RefCell<Option<Box<str>>>,
}

impl Participant {
    pub fn new(user: UserId, params: QuotaParams, now: Millis) -> Participant {
        Participant {
            user,
            conns: Vec::new(),
            cursor: None,
            quota: NoteQuota::new(params, now),
            chat_limit: RateLimiter::default(),
            cursor_pending: None,
            cursor_sent_at: None,
            ppl_entry: RefCell::new(None),
        }
    }

    /// The cursor as numbers, 200/100 before the first move (crown animations, §7).
    pub fn cursor_or_unmoved(&self) -> (f64, f64) {
        self.cursor.unwrap_or(UNMOVED)
    }
}

/// One room.
#[derive(Debug)]
pub struct Channel {
    pub name: Rc<str>,
    pub kind: Kind,
    pub settings: Settings,
    /// Present in normal rooms only.
    pub crown: Option<Crown>,
    /// In join order: the order of `ppl` and of every broadcast.
    pub participants: Vec<Participant>,
    /// Serialized `a` messages, oldest first.
    pub history: VecDeque<Rc<str>>,
    /// User → end of ban (server ms). Expired entries are ignored and pruned lazily.
    pub bans: HashMap<UserId, Millis>,
    /// When the pending cursor moves will be flushed, if a flush is scheduled.
    pub cursor_flush_at: Option<Millis>,
    /// Whether `ls` subscribers were last shown this channel as visible.
    pub listed: bool,
}

impl Channel {
    pub fn new(name: Rc<str>, creator: UserId, now: Millis) -> Channel {
        let kind = Kind::of(&name);
        let (settings, crown) = match kind {
            Kind::Lobby | Kind::Test => (Settings::lobby(), None),
            Kind::Normal => (
                Settings::normal(),
                Some(Crown { user_id: creator, held: true, time: now, start: (50.0, 50.0), end: (50.0, 50.0) }),
            ),
        };
        Channel {
            name,
            kind,
            settings,
            crown,
            participants: Vec::new(),
            history: VecDeque::new(),
            bans: HashMap::new(),
            cursor_flush_at: None,
            listed: false,
        }
    }

    pub fn participant(&self, user: UserId) -> Option<&Participant> {
        self.participants.iter().find(|p| p.user == user)
    }

    pub fn participant_mut(&mut self, user: UserId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.user == user)
    }

    /// Every connection in the channel, in join order.
    pub fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.participants.iter().flat_map(|p| p.conns.iter().copied())
    }

    pub fn holder(&self) -> Option<UserId> {
        self.crown.as_ref().filter(|c| c.held).map(|c| c.user_id)
    }

    /// The note quota parameters a participant gets here (§8.2); `trusted` is the server-wide
    /// `--trusted-notes` setting, which gives everyone the trusted parameters.
    pub fn quota_params_for(&self, user: UserId, trusted: bool) -> QuotaParams {
        if trusted {
            return PARAMS_TRUSTED;
        }
        match self.kind {
            Kind::Lobby | Kind::Test => PARAMS_LOBBY,
            Kind::Normal if self.holder() == Some(user) => PARAMS_CROWNED,
            Kind::Normal => PARAMS_NORMAL,
        }
    }

    /// Remaining ban time for a user, if banned now.
    pub fn ban_remaining(&self, user: UserId, now: Millis) -> Option<u64> {
        self.bans.get(&user).filter(|&&until| until > now).map(|until| until.since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::outbound;

    fn set(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::of("lobby"), Kind::Lobby);
        assert_eq!(Kind::of("lobby2"), Kind::Lobby);
        assert_eq!(Kind::of("lobby02"), Kind::Lobby);
        assert_eq!(Kind::of("lobbyx"), Kind::Normal);
        assert_eq!(Kind::of("Lobby"), Kind::Normal);
        assert_eq!(Kind::of("test/"), Kind::Normal);
        assert_eq!(Kind::of("test/a"), Kind::Test);
        assert_eq!(Kind::of(AWKWARD), Kind::Test);
    }

    #[test]
    fn lobby_overflow_names() {
        assert_eq!(next_lobby("lobby").as_deref(), Some("lobby2"));
        assert_eq!(next_lobby("lobby1").as_deref(), Some("lobby2"));
        assert_eq!(next_lobby("lobby02").as_deref(), Some("lobby3"));
        assert_eq!(next_lobby("lobby99999999999999999999999"), None);
    }

    #[test]
    fn settings_filter() {
        let mut s = Settings::normal();
        let changed = s.apply(&set(r##"{"lobby":true,"owner_id":"x","visible":"false","chat":"false","crownsolo":1,
                "color":"#ABCDEF","color2":"#fff","limit":"50","noindex":true,"bogus":1}"##));
        assert!(changed);
        assert_eq!(s.lobby, None);
        assert!(!s.visible && !s.chat && !s.crownsolo);
        assert_eq!(s.color, "#abcdef");
        assert_eq!(s.color2, None);
        assert_eq!(s.limit, Some(50));
        assert_eq!(s.noindex, Some(true));
        assert_eq!(
            outbound::to_json(&s),
            r##"{"visible":false,"chat":false,"crownsolo":false,"color":"#abcdef","limit":50,"noindex":true}"##
        );
    }

    #[test]
    fn color2_is_removed_when_absent_and_limit_rules() {
        let mut s = Settings::normal();
        s.apply(&set(r##"{"color2":"#102030","limit":5}"##));
        assert_eq!(s.color2.as_deref(), Some("#102030"));
        assert!(!s.apply(&set(r##"{"color2":"#102030","limit":5.5}"##)));
        assert!(!s.apply(&set(r##"{"color2":"#102030","limit":100}"##)));
        assert!(s.apply(&set(r#"{"limit":""}"#)));
        assert_eq!((s.color2, s.limit), (None, None));
    }

    #[test]
    fn defaults() {
        assert_eq!(
            outbound::to_json(&Settings::normal()),
            r##"{"visible":true,"chat":true,"crownsolo":false,"color":"#3b5054"}"##
        );
        assert_eq!(
            outbound::to_json(&Settings::lobby()),
            r##"{"lobby":true,"visible":true,"chat":true,"crownsolo":false,"color":"#73b3cc","color2":"#273546"}"##
        );
    }
}
