//! The protocol state machine. It owns every registry (connections, users, channels) and never
//! does I/O: no sockets, no clock, no randomness except its own seeded generator.
//!
//! Driving it: one way in, one way out. Call [`Core::handle`] with the time ([`Millis`]) and an
//! [`Input`]; then take its [`Output`]s with [`Core::poll_output`] until it returns `None`; and
//! call `handle(now, Input::Tick)` no later than [`Core::next_deadline`].

pub mod config;
pub mod proto;

mod channel;
mod ids;
mod invariants;
mod limits;
mod moderation;
mod persist;
mod quota;
mod room;
mod session;
mod time;
mod traffic;

pub use self::channel::{AWKWARD, Kind};
pub use self::ids::{UserId, identity_for_address, to_hex};
pub use self::persist::{SavedBan, SavedProfile, Snapshot};
pub use self::quota::{
    NoteQuota, PARAMS_CROWNED, PARAMS_LOBBY, PARAMS_NORMAL, PARAMS_TRUSTED, QuotaParams, RateLimiter,
};
pub use self::time::Millis;

use self::channel::Channel;
use self::ids::{HexId, Rng};
use self::limits::{Limit, RareLimits};
use crate::config::CoreConfig;
use crate::proto::inbound::{Message, Name, parse_frame};
use crate::proto::outbound::{self, ParticipantInfo};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::rc::Rc;

/// Outputs the queue keeps room for between inputs.
const MAX_IDLE_OUTPUT_CAPACITY: usize = 4096;

/// A connection's id, chosen by the shell (its slab key). Reused only after `Closed` or a `Close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnId(pub usize);

/// What the shell knows about a new connection's peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The client's address: the socket peer, or the forwarded address from a trusted proxy.
    pub ip: IpAddr,
}

/// Everything that can happen to the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input<'a> {
    /// A WebSocket finished its handshake.
    Open { conn: ConnId, peer: PeerInfo },
    /// A text frame arrived.
    Text { conn: ConnId, text: &'a str },
    /// The peer went away (or the shell closed it). Never sent after an `Output::Close`.
    Closed { conn: ConnId },
    /// Time passed; due timers run.
    Tick,
}

/// Everything the core asks the shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send this text frame. The same `Rc` is shared by every recipient of a broadcast.
    /// `droppable` frames (notes, cursor moves) may be skipped for a reader that is far behind.
    Send { conn: ConnId, frame: Rc<str>, droppable: bool },
    /// Close the connection with this code and reason. The core has already forgotten it.
    Close { conn: ConnId, code: u16, reason: String },
}

/// Counts for health and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub connections: usize,
    pub users: usize,
    pub channels: usize,
    pub participants: usize,
}

/// Counters of what the core refused or dropped, for logs and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Notes refused by the note quota (§8.1), counted per note.
    pub notes_over_quota: u64,
    /// Messages dropped by a §8.3 rate limit.
    pub rate_limited: u64,
    /// Frames that were not a JSON array, and elements that were not valid messages.
    pub malformed: u64,
    /// Messages received, by name, in the order of [`Name::ALL`] (see [`Counters::messages_in`]).
    #[serde(skip)]
    messages_by_name: [u64; Name::ALL.len()],
}

impl Counters {
    /// Messages received, by name (known names only; the rest count as "other"), in the order
    /// of the names, each name that was received at least once.
    pub fn messages_in(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let mut names: Vec<(&'static str, u64)> =
            Name::ALL.iter().map(|n| (n.as_str(), self.messages_by_name[n.index()])).filter(|(_, c)| *c > 0).collect();
        names.sort_unstable();
        names.into_iter()
    }
}

/// A user: its identity and profile, and every connection it has open.
#[derive(Debug)]
struct User {
    id_hex: HexId,
    /// The default name is not allocated per user.
    name: Cow<'static, str>,
    color: Color,
    conns: Vec<ConnId>,
}

/// A colour as `#rrggbb` (validated by `parse_color`), held inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Color([u8; 7]);

impl Color {
    /// `#rrggbb`; anything else (never produced by `parse_color`) becomes black.
    fn of(text: &str) -> Color {
        Color(text.as_bytes().try_into().unwrap_or(*b"#000000"))
    }
}

impl std::ops::Deref for Color {
    type Target = str;
    fn deref(&self) -> &str {
        // Built from a `&str` of seven bytes, all ASCII (`parse_color`).
        std::str::from_utf8(&self.0).unwrap_or("#000000")
    }
}

/// A name and colour that differ from the defaults, kept per user id across reconnections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub color: String,
}

/// The per-connection limits of §8.3 that every message spends (the rest: `limits.rs`).
#[derive(Debug, Default)]
struct ConnLimits {
    messages: RateLimiter,
    bytes: RateLimiter,
}

impl Core {
    /// Spends `amount` of a connection's limit; a refusal is counted and means "drop silently".
    fn within_limit(&mut self, now: Millis, conn: ConnId, limit: Limit, amount: u64) -> bool {
        if !self.conns.contains_key(&conn) {
            return false;
        }
        let allowed = self.rare_limits.allow(&self.config, now, conn, limit, amount);
        if !allowed {
            self.counters.rate_limited += 1;
        }
        allowed
    }
}

#[derive(Debug)]
struct Conn {
    ip: IpAddr,
    opened_at: Millis,
    /// Set by the first valid `hi` (state IDENTIFIED).
    user: Option<UserId>,
    /// The channel this connection is in (state IN_CHANNEL).
    channel: Option<Rc<str>>,
    /// When the ping timeout (§11) closes this connection unless a `t` arrives.
    ping_deadline: Millis,
    custom_subscribed: bool,
    limits: ConnLimits,
}

/// Timers, ordered by deadline in `Core::timers`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The ping timeout of a connection.
    Ping(ConnId),
    /// Pending cursor moves of a channel are due.
    CursorFlush(Rc<str>),
}

/// The state machine. See the module documentation for how to drive it.
pub struct Core {
    config: CoreConfig,
    rng: Rng,
    conns: HashMap<ConnId, Conn>,
    users: HashMap<UserId, User>,
    profiles: HashMap<UserId, Profile>,
    channels: HashMap<Rc<str>, Channel>,
    timers: BTreeSet<(Millis, Timer)>,
    /// Channels whose `ls` entry changed during this input, by name (coalesced per input).
    ls_dirty: BTreeSet<Rc<str>>,
    /// Final `ls` entries (count 0) of listed channels destroyed during this input.
    ls_gone: BTreeMap<Rc<str>, String>,
    /// Connections subscribed to the channel list (`+ls`), in id order.
    ls_subscribers: BTreeSet<ConnId>,
    counters: Counters,
    /// Bans restored for channels not created since (see `persist`).
    pending_bans: persist::PendingBans,
    /// Bumped whenever what [`Core::snapshot`] returns may have changed.
    persist_generation: u64,
    /// Windows of the limits connections use rarely.
    rare_limits: RareLimits,
    /// Outputs not yet taken by [`Core::poll_output`], oldest first.
    outputs: VecDeque<Output>,
    /// Where notes and cursor moves are serialized before they become a shared frame.
    frame_buf: Vec<u8>,
}

impl Core {
    pub fn new(config: CoreConfig) -> Core {
        Core {
            rng: Rng::new(config.seed),
            config,
            conns: HashMap::new(),
            users: HashMap::new(),
            profiles: HashMap::new(),
            channels: HashMap::new(),
            timers: BTreeSet::new(),
            ls_dirty: BTreeSet::new(),
            ls_gone: BTreeMap::new(),
            ls_subscribers: BTreeSet::new(),
            counters: Counters::default(),
            pending_bans: persist::PendingBans::new(),
            persist_generation: 0,
            rare_limits: RareLimits::default(),
            outputs: VecDeque::new(),
            frame_buf: Vec::new(),
        }
    }

    /// Feeds one input at time `now`; its outputs are queued for [`Core::poll_output`].
    pub fn handle(&mut self, now: Millis, input: Input<'_>) {
        match input {
            Input::Open { conn, peer } => self.open(now, conn, peer),
            Input::Text { conn, text } => self.text(now, conn, text),
            Input::Closed { conn } => {
                if self.conns.contains_key(&conn) {
                    self.forget(now, conn);
                }
            }
            Input::Tick => self.tick(now),
        }
        self.flush_channel_list(now);
    }

    /// The oldest output not yet taken, if any. Take them all after every input: an output
    /// speaks of the connections as they are after that input.
    #[inline]
    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front();
        if output.is_none() && self.outputs.capacity() > MAX_IDLE_OUTPUT_CAPACITY {
            // A queue grown by a rare burst (a join storm's `ppl`) is not kept.
            self.outputs = VecDeque::new();
        }
        output
    }

    /// Whether a connection is open as far as the core knows: opened, and neither closed by the
    /// shell nor by an [`Output::Close`].
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// When the next `Tick` is due, if any timer is pending.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.first().map(|(at, _)| *at)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.conns.len(),
            users: self.users.len(),
            channels: self.channels.len(),
            participants: self.channels.values().map(|c| c.participants.len()).sum(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn open(&mut self, now: Millis, conn: ConnId, peer: PeerInfo) {
        if self.conns.contains_key(&conn) {
            log::warn!("connection {conn:?} opened twice; forgetting the first");
            self.forget(now, conn);
        }
        let deadline = now.plus(self.config.ping_timeout_ms);
        self.conns.insert(
            conn,
            Conn {
                ip: peer.ip,
                opened_at: now,
                user: None,
                channel: None,
                ping_deadline: deadline,
                custom_subscribed: false,
                limits: ConnLimits::default(),
            },
        );
        self.timers.insert((deadline, Timer::Ping(conn)));
        self.send(conn, outbound::B.to_string());
    }

    fn text(&mut self, now: Millis, conn_id: ConnId, text: &str) {
        let bytes_rate = self.config.connection_bytes;
        let Some(conn) = self.conns.get_mut(&conn_id) else { return };
        if !conn.limits.bytes.allow(now, bytes_rate, text.len() as u64) {
            let reason = format!("Exceeded {} bytes per {} seconds.", bytes_rate.count, bytes_rate.per_ms / 1000);
            log::debug!("{conn_id:?}: {reason}");
            self.close(now, conn_id, 4002, reason);
            return;
        }
        let Some(elements) = parse_frame(text) else {
            log::debug!("{conn_id:?}: frame is not a JSON array; ignored");
            self.counters.malformed += 1;
            return;
        };
        let messages_rate = self.config.connection_messages;
        for element in elements {
            let Some(conn) = self.conns.get_mut(&conn_id) else { return };
            if !conn.limits.messages.allow(now, messages_rate, 1) {
                let reason =
                    format!("Exceeded {} messages per {} seconds.", messages_rate.count, messages_rate.per_ms / 1000);
                log::debug!("{conn_id:?}: {reason}");
                self.close(now, conn_id, 4007, reason);
                return;
            }
            match element {
                Some(message) => self.dispatch(now, conn_id, &message),
                None => {
                    log::debug!("{conn_id:?}: element is not a message object; skipped");
                    self.counters.malformed += 1;
                }
            }
        }
    }

    /// Routes one message by name and connection state (§2).
    fn dispatch(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some(state) = self.conns.get(&conn) else { return };
        let identified = state.user.is_some();
        let in_channel = state.channel.is_some();
        self.counters.messages_by_name[msg.name.index()] += 1;
        match msg.name {
            Name::Hi => self.on_hi(now, conn, msg),
            Name::T => self.on_ping(now, conn, msg),
            _ if !identified => {}
            Name::Bye => self.close(now, conn, 1000, String::new()),
            Name::Ch => self.on_ch(now, conn, msg),
            Name::Userset => self.on_userset(now, conn, msg),
            Name::SubscribeList => self.on_subscribe_list(now, conn),
            Name::UnsubscribeList => self.on_unsubscribe_list(conn),
            Name::SubscribeCustom | Name::UnsubscribeCustom => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.custom_subscribed = msg.name == Name::SubscribeCustom;
                }
            }
            _ if !in_channel => {}
            Name::A => self.on_chat(now, conn, msg),
            Name::Dm => self.on_dm(now, conn, msg),
            Name::N => self.on_notes(now, conn, msg),
            Name::M => self.on_cursor(now, conn, msg),
            Name::Chset => self.on_chset(now, conn, msg),
            Name::Chown => self.on_chown(now, conn, msg),
            Name::Kickban => self.on_kickban(now, conn, msg),
            Name::Unban => self.on_unban(now, conn, msg),
            Name::Custom => self.on_custom(now, conn, msg),
            // `devices` and unknown names are ignored silently (§1.6, §5).
            Name::Devices | Name::Other => {}
        }
    }

    fn tick(&mut self, now: Millis) {
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let Some((_, timer)) = self.timers.pop_first() else { break };
            match timer {
                Timer::Ping(conn) => {
                    log::debug!("{conn:?}: ping timeout");
                    self.close(now, conn, 4004, "Timed out.".to_string());
                }
                Timer::CursorFlush(channel) => self.flush_cursors(now, &channel),
            }
        }
    }

    /// Closes a connection on the core's initiative: cleans up, then asks the shell to close.
    fn close(&mut self, now: Millis, conn: ConnId, code: u16, reason: String) {
        if self.conns.contains_key(&conn) {
            self.forget(now, conn);
            self.outputs.push_back(Output::Close { conn, code, reason });
        }
    }

    /// Removes a connection from every registry, with the leave effects of §5 `ch`.
    fn forget(&mut self, now: Millis, conn_id: ConnId) {
        self.leave_channel(now, conn_id);
        let Some(conn) = self.conns.remove(&conn_id) else { return };
        self.ls_subscribers.remove(&conn_id);
        self.rare_limits.forget(conn_id);
        self.timers.remove(&(conn.ping_deadline, Timer::Ping(conn_id)));
        if let Some(user_id) = conn.user
            && let Some(user) = self.users.get_mut(&user_id)
        {
            user.conns.retain(|c| *c != conn_id);
            if user.conns.is_empty() {
                self.users.remove(&user_id);
            }
        }
    }

    fn send(&mut self, conn: ConnId, message: String) {
        self.send_frame(conn, frame(&[&message]));
    }

    /// Sends a frame that other recipients may share.
    fn send_frame(&mut self, conn: ConnId, frame: Rc<str>) {
        self.outputs.push_back(Output::Send { conn, frame, droppable: false });
    }

    /// Sends one message to every connection in a channel, except `except`, serialized once.
    fn broadcast(&mut self, channel: &str, message: &str, except: Option<ConnId>, droppable: bool) {
        self.broadcast_frame(channel, frame(&[message]), except, droppable);
    }

    /// Sends one frame to every connection in a channel, except `except`; they all share it.
    fn broadcast_frame(&mut self, channel: &str, frame: Rc<str>, except: Option<ConnId>, droppable: bool) {
        let Some(ch) = self.channels.get(channel) else { return };
        for conn in ch.conns() {
            if Some(conn) != except {
                self.outputs.push_back(Output::Send { conn, frame: frame.clone(), droppable });
            }
        }
    }

    /// Participant info of a user in a channel; with the cursor for `ch.ppl` and `p`.
    fn info_in<'a>(&'a self, ch: &'a Channel, user: UserId, with_cursor: bool) -> Option<ParticipantInfo<'a>> {
        let u = self.users.get(&user)?;
        let cursor = if with_cursor { ch.participant(user).map(participant_coords) } else { None };
        Some(ParticipantInfo {
            id: &u.id_hex,
            user_id: &u.id_hex,
            name: &u.name,
            color: &u.color,
            x: cursor.map(|c| c.0),
            y: cursor.map(|c| c.1),
        })
    }

    fn user_info(&self, user: UserId) -> Option<ParticipantInfo<'_>> {
        let u = self.users.get(&user)?;
        Some(ParticipantInfo { id: &u.id_hex, user_id: &u.id_hex, name: &u.name, color: &u.color, x: None, y: None })
    }

    /// The user and channel of a connection that is in a channel.
    fn member(&self, conn: ConnId) -> Option<(UserId, Rc<str>)> {
        let c = self.conns.get(&conn)?;
        Some((c.user?, c.channel.clone()?))
    }
}

fn participant_coords(p: &channel::Participant) -> (outbound::Coord, outbound::Coord) {
    use outbound::Coord;
    match p.cursor {
        Some((x, y)) => (Coord::At(x), Coord::At(y)),
        None => (Coord::Unmoved(channel::UNMOVED.0 as u32), Coord::Unmoved(channel::UNMOVED.1 as u32)),
    }
}

/// A frame holding the given messages, in order.
fn frame(messages: &[&str]) -> Rc<str> {
    let mut out = String::with_capacity(messages.iter().map(|m| m.len() + 1).sum::<usize>() + 1);
    out.push('[');
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(m);
    }
    out.push(']');
    Rc::from(out)
}
