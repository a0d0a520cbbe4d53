//! What members send each other inside a channel: chat `a` and `dm`, notes `n` (with the note
//! quota of §8), cursor `m` (coalesced), and bot `custom` messages (§5).

use super::{ConnId, Core, Limit, Message, Timer, UserId};
use crate::proto::inbound::{CustomTarget, is_truthy, number, number_or_numeric_string, parse_as, parse_notes, string};
use crate::proto::outbound::{self, Echo, NoteOut, Num};
use crate::proto::validate::{MAX_CHAT_LEN, MAX_NOTE_NAME_LEN, MAX_REPLY_TO_LEN, is_valid_text, js_length};
use crate::time::Millis;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Most recipients one `custom` message may name with `ids` (§5 `custom`).
const MAX_CUSTOM_IDS: usize = 32;

impl Core {
    /// Checks shared by `a` and `dm`: chat enabled, the chat limit (§8.3), and valid text.
    /// Returns the text and the optional reply id.
    fn chat_checks<'m>(
        &mut self,
        now: Millis,
        user: UserId,
        key: &str,
        msg: &Message<'m>,
    ) -> Option<(Cow<'m, str>, Option<Cow<'m, str>>)> {
        let text = string(msg.message).filter(|t| is_valid_text(t, MAX_CHAT_LEN))?;
        let reply_to = string(msg.reply_to).filter(|r| js_length(r) <= MAX_REPLY_TO_LEN);
        let ch = self.channels.get_mut(key)?;
        if !ch.settings.chat {
            return None;
        }
        let rate = if ch.holder() == Some(user) { self.config.chat_rate_crowned } else { self.config.chat_rate };
        let p = ch.participant_mut(user)?;
        if !p.chat_limit.allow(now, rate, 1) {
            self.counters.rate_limited += 1;
            return None;
        }
        Some((text, reply_to))
    }

    /// `a`: broadcast to everyone including the sender, and keep in the history (§5 `a`, §9).
    pub(super) fn on_chat(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((user, key)) = self.member(conn) else { return };
        let Some((text, reply_to)) = self.chat_checks(now, user, &key, msg) else { return };
        self.say(now, &key, user, &text, reply_to.as_deref());
    }

    /// Appends a chat message from `user` to a channel's history and sends it to everyone there.
    pub(super) fn say(&mut self, now: Millis, key: &str, user: UserId, text: &str, reply_to: Option<&str>) {
        let id = self.rng.message_id();
        let Some(ch) = self.channels.get(key) else { return };
        let Some(from) = self.info_in(ch, user, false) else { return };
        let a = outbound::chat(&id, now, text, &from, reply_to);
        self.broadcast(key, &a, None, false);
        let limit = self.config.chat_history;
        if let Some(ch) = self.channels.get_mut(key) {
            ch.history.push_back(a.into());
            while ch.history.len() > limit {
                ch.history.pop_front();
            }
        }
    }

    /// `dm`: to the recipient's and the sender's connections in this channel; never in the
    /// history (§5 `dm`, §12).
    pub(super) fn on_dm(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((user, key)) = self.member(conn) else { return };
        let Some(to) = string(msg.user_or_channel_id).and_then(|id| UserId::parse(&id)) else { return };
        if self.channels.get(&key).and_then(|ch| ch.participant(to)).is_none() {
            return;
        }
        let Some((text, reply_to)) = self.chat_checks(now, user, &key, msg) else { return };
        let id = self.rng.message_id();
        let Some(ch) = self.channels.get(&key) else { return };
        let (Some(sender), Some(recipient)) = (self.info_in(ch, user, false), self.info_in(ch, to, false)) else {
            return;
        };
        let dm = outbound::dm(&id, now, &text, &sender, &recipient, reply_to.as_deref());
        let frame = super::frame(&[&dm]);
        let mut targets: Vec<ConnId> = Vec::new();
        for u in [to, user] {
            for c in ch.participant(u).map(|p| p.conns.as_slice()).unwrap_or_default() {
                if !targets.contains(c) {
                    targets.push(*c);
                }
            }
        }
        for conn in targets {
            self.send_frame(conn, frame.clone());
        }
    }

    /// `n`: validate each note on its own, apply crownsolo and the note quota, then relay to
    /// every connection in the channel except the sending one (§5 `n`, §8).
    pub(super) fn on_notes(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((user, key)) = self.member(conn) else { return };
        let Some(t) = Echo::of(msg.t) else { return };
        let Some(elements) = parse_notes(msg.n) else { return };
        let mut notes: Vec<NoteOut<'_>> = Vec::with_capacity(elements.len());
        // Each note is checked on its own; an invalid one is left out (§5 `n`).
        for note in elements.iter().flatten() {
            let Some(name) = string(note.n).filter(|n| js_length(n) <= MAX_NOTE_NAME_LEN) else { continue };
            // `d` is optional, but a present `d` must be a finite number (negative → 0).
            let d = match note.d {
                None => None,
                Some(d) => match number(Some(d)) {
                    Some(d) => Some(Num(d.max(0.0))),
                    None => continue,
                },
            };
            notes.push(NoteOut {
                n: name,
                v: number(note.v).map(|v| Num(v.clamp(0.0, 1.0))),
                d,
                s: is_truthy(note.s).then_some(1),
            });
        }
        if notes.is_empty() {
            return;
        }
        let Some(ch) = self.channels.get_mut(&key) else { return };
        if ch.settings.crownsolo && ch.holder() != Some(user) {
            return;
        }
        let Some(p) = ch.participant_mut(user) else { return };
        let count = u32::try_from(notes.len()).unwrap_or(u32::MAX);
        if !p.quota.spend(now, count) {
            self.counters.notes_over_quota += u64::from(count);
            return;
        }
        let Some(sender) = self.users.get(&user) else { return };
        let frame = outbound::notes_frame(&mut self.frame_buf, t, &sender.id_hex, &notes);
        self.broadcast_frame(&key, frame, Some(conn), true);
    }

    /// `m`: store the cursor and broadcast it at most once per interval per participant; a move
    /// inside the interval is coalesced into one flush with the newest position (§5 `m`).
    pub(super) fn on_cursor(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((user, key)) = self.member(conn) else { return };
        let (Some(x), Some(y)) = (number_or_numeric_string(msg.x), number_or_numeric_string(msg.y)) else { return };
        let interval = self.config.cursor_interval_ms;
        let Some(ch) = self.channels.get_mut(&key) else { return };
        let Some(p) = ch.participant_mut(user) else { return };
        p.cursor = Some((x, y));
        p.ppl_entry.take();
        let due = p.cursor_sent_at.map_or(now, |at| at.plus(interval));
        if due <= now && p.cursor_pending.is_none() {
            p.cursor_sent_at = Some(now);
            self.broadcast_cursor(&key, user, conn);
            return;
        }
        p.cursor_pending = Some(conn);
        if ch.cursor_flush_at.is_none_or(|at| at > due) {
            if let Some(at) = ch.cursor_flush_at.take() {
                self.timers.remove(&(at, Timer::CursorFlush(key.clone())));
            }
            ch.cursor_flush_at = Some(due);
            self.timers.insert((due, Timer::CursorFlush(key)));
        }
    }

    fn broadcast_cursor(&mut self, key: &str, user: UserId, from: ConnId) {
        let Some(ch) = self.channels.get(key) else { return };
        let (Some(p), Some(u)) = (ch.participant(user), self.users.get(&user)) else { return };
        let Some((x, y)) = p.cursor else { return };
        let frame = outbound::cursor_frame(&mut self.frame_buf, &u.id_hex, x, y);
        self.broadcast_frame(key, frame, Some(from), true);
    }

    /// Broadcasts every coalesced cursor move of a channel.
    pub(super) fn flush_cursors(&mut self, now: Millis, key: &str) {
        let Some(ch) = self.channels.get_mut(key) else { return };
        ch.cursor_flush_at = None;
        let mut due = Vec::new();
        for p in &mut ch.participants {
            if let Some(from) = p.cursor_pending.take() {
                p.cursor_sent_at = Some(now);
                due.push((p.user, from));
            }
        }
        for (user, from) in due {
            self.broadcast_cursor(key, user, from);
        }
    }

    /// `custom`: delivered to the matching subscribed connections in this channel, never back
    /// to the sending connection; `data` counts against a byte budget (§5 `custom`).
    /// `target.global` is not honoured: without a permission system it stays in the channel.
    pub(super) fn on_custom(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((user, key)) = self.member(conn) else { return };
        let Some(target) = parse_as::<CustomTarget<'_>>(msg.target) else { return };
        // An invalid target is ignored before it can spend any of the byte budget.
        let Some(wanted) = custom_recipients(&target) else { return };
        let null = RawValue::NULL;
        let data = msg.data.unwrap_or(null);
        if !self.within_limit(now, conn, Limit::CustomBytes, data.get().len() as u64) {
            return;
        }
        let Some(ch) = self.channels.get(&key) else { return };
        let Some(sender) = self.users.get(&user) else { return };
        let frame = super::frame(&[&outbound::custom(data, &sender.id_hex)]);
        let recipients: Vec<ConnId> = ch
            .participants
            .iter()
            .filter(|p| wanted.as_ref().is_none_or(|w| w.contains(&p.user)))
            .flat_map(|p| p.conns.iter().copied())
            .filter(|c| *c != conn && self.conns.get(c).is_some_and(|s| s.custom_subscribed))
            .collect();
        for conn in recipients {
            self.send_frame(conn, frame.clone());
        }
    }
}

/// Which users a `custom` target names: `Some(None)` for every subscriber, `Some(Some(ids))`
/// for `id`/`ids`, `None` for an invalid target.
fn custom_recipients(target: &CustomTarget<'_>) -> Option<Option<Vec<UserId>>> {
    match string(target.mode).as_deref()? {
        "subscribed" => Some(None),
        "id" => Some(Some(vec![UserId::parse(&string(target.id)?)?])),
        "ids" => {
            let ids = parse_as::<Vec<Cow<'_, str>>>(target.ids)?;
            if ids.len() > MAX_CUSTOM_IDS {
                return None;
            }
            Some(Some(ids.iter().filter_map(|id| UserId::parse(id)).collect()))
        }
        _ => None,
    }
}
