//! Joining and leaving channels (§5 `ch`, §3.5 lobbies, §7.2–§7.3 crown on leave and return),
//! and the `ch` message every member's view is rebuilt from.

use super::channel::{AWKWARD, Channel, Kind, Participant, next_lobby};
use super::session::channel_info_json;
use super::{ConnId, Core, Limit, Message, UserId};
use crate::proto::inbound::{parse_as, string};
use crate::proto::outbound;
use crate::proto::validate::{MAX_CHANNEL_NAME_LEN, is_valid_text};
use crate::time::Millis;
use serde_json::{Map, Value};
use std::rc::Rc;

impl Core {
    /// `ch`: move this connection to a channel (§5 `ch`).
    pub(super) fn on_ch(&mut self, now: Millis, conn_id: ConnId, msg: &Message<'_>) {
        let Some(requested) = string(msg.user_or_channel_id) else { return };
        if !is_valid_text(&requested, MAX_CHANNEL_NAME_LEN) {
            log::debug!("{conn_id:?}: invalid channel name refused");
            return;
        }
        let Some(conn) = self.conns.get(&conn_id) else { return };
        let Some(user) = conn.user else { return };
        if conn.channel.as_deref() == Some(requested.as_ref()) {
            return;
        }
        if !self.within_limit(now, conn_id, Limit::Ch, 1) {
            return;
        }
        let set = parse_as::<Map<String, Value>>(msg.set);
        let (destination, notice) = self.destination(now, user, &requested);
        if let Some(text) = notice {
            self.send(conn_id, outbound::notice(&text));
        }
        self.join(now, conn_id, &destination, set.as_ref());
    }

    /// Where a user asking for `requested` ends up, and the notification explaining a refusal:
    /// full lobbies overflow to the next number (§3.5), banned or over-limit users go to
    /// `test/awkward` (§3.4, §9.5). Users already present are never refused.
    pub(super) fn destination(&self, now: Millis, user: UserId, requested: &str) -> (String, Option<String>) {
        let mut name = requested.to_string();
        loop {
            let Some(ch) = self.channels.get(name.as_str()) else {
                // A restored ban still keeps its user from creating the room (see `persist`).
                if let Some(remaining) = self.pending_ban_remaining(&name, user, now) {
                    return (AWKWARD.to_string(), Some(banned_notice(&name, remaining)));
                }
                return (name, None);
            };
            if ch.participant(user).is_some() {
                return (name, None);
            }
            match ch.kind {
                Kind::Lobby if ch.participants.len() >= self.config.lobby_capacity => match next_lobby(&name) {
                    Some(next) => name = next,
                    None => return (AWKWARD.to_string(), None),
                },
                Kind::Normal => {
                    if let Some(remaining) = ch.ban_remaining(user, now) {
                        return (AWKWARD.to_string(), Some(banned_notice(&name, remaining)));
                    }
                    let crown_user = ch.crown.as_ref().map(|c| c.user_id);
                    let full = ch.settings.limit.is_some_and(|limit| ch.participants.len() >= usize::from(limit));
                    if full && crown_user != Some(user) {
                        let text = format!("\"{name}\" is full.");
                        return (AWKWARD.to_string(), Some(text));
                    }
                    return (name, None);
                }
                _ => return (name, None),
            }
        }
    }

    /// Moves a connection into a channel, creating it if needed (§5 `ch`, joining).
    pub(super) fn join(&mut self, now: Millis, conn_id: ConnId, name: &str, set: Option<&Map<String, Value>>) {
        let Some(user) = self.conns.get(&conn_id).and_then(|c| c.user) else { return };
        if self.conns.get(&conn_id).and_then(|c| c.channel.as_deref()) == Some(name) {
            return;
        }
        self.leave_channel(now, conn_id);
        let key: Rc<str> = match self.channels.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => {
                let key: Rc<str> = Rc::from(name);
                let mut ch = Channel::new(key.clone(), user, now);
                if ch.kind == Kind::Normal {
                    ch.bans = self.take_pending_bans(name, now);
                }
                if let (Kind::Normal, Some(set)) = (ch.kind, set) {
                    ch.settings.apply(set);
                }
                self.channels.insert(key.clone(), ch);
                key
            }
        };
        let Some(ch) = self.channels.get_mut(&key) else { return };
        let is_new = ch.participant(user).is_none();
        if is_new {
            let params = ch.quota_params_for(user, self.config.trusted_notes);
            ch.participants.push(Participant::new(user, params, now));
        }
        // §7.3: the last holder of a dropped crown gets it back on joining; a further tab of a
        // participant already here is no join (§3.1), so a crown its user dropped stays down.
        let returned = match ch.crown.as_mut() {
            Some(crown) if is_new && !crown.held && crown.user_id == user => {
                let at = ch
                    .participants
                    .iter()
                    .find(|p| p.user == user)
                    .map_or(super::channel::UNMOVED, |p| p.cursor_or_unmoved());
                crown.give(user, at, at, now);
                true
            }
            _ => false,
        };
        let params = ch.quota_params_for(user, self.config.trusted_notes);
        if let Some(p) = ch.participant_mut(user) {
            p.conns.push(conn_id);
            p.quota.set_params(params);
        }
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.channel = Some(key.clone());
            // For operators: who (the client's address, after a trusted proxy) joined where.
            log::info!("join: {} user {user} room {key:?} ({conn_id:?})", conn.ip);
        }
        let Some(ch) = self.channels.get(&key) else { return };
        let ch_msg = self.ch_message(ch);
        let own =
            outbound::with_own_id(&ch_msg, &self.users.get(&user).map_or_else(String::new, |u| u.id_hex.to_string()));
        let history = outbound::chat_history(ch.history.iter().map(|h| h.as_ref()));
        let nq = outbound::note_quota(params.allowance, params.max, params.max_hist_len);
        let joined = is_new.then(|| self.info_in(ch, user, true).map(|info| outbound::participant(&info))).flatten();
        self.outputs.push_back(super::Output::Send {
            conn: conn_id,
            frame: super::frame(&[&own, &history]),
            droppable: false,
        });
        self.send(conn_id, nq);
        if let Some(p) = joined {
            self.broadcast(&key, &p, Some(conn_id), false);
        }
        if returned {
            self.broadcast(&key, &ch_msg, Some(conn_id), false);
        }
        if is_new || returned {
            self.list_changed(&key);
        }
    }

    /// Detaches a connection from its channel. When it was the user's last connection there the
    /// participant leaves: `bye` to the rest, a held crown drops (§7.2), an empty room closes.
    pub(super) fn leave_channel(&mut self, now: Millis, conn_id: ConnId) {
        let Some(conn) = self.conns.get_mut(&conn_id) else { return };
        let (Some(user), Some(key)) = (conn.user, conn.channel.take()) else { return };
        log::info!("leave: {} user {user} room {key:?} ({conn_id:?})", conn.ip);
        let Some(ch) = self.channels.get_mut(&key) else { return };
        let Some(index) = ch.participants.iter().position(|p| p.user == user) else { return };
        ch.participants[index].conns.retain(|c| *c != conn_id);
        if !ch.participants[index].conns.is_empty() {
            return;
        }
        let gone = ch.participants.remove(index);
        let dropped = match ch.crown.as_mut() {
            Some(crown) if crown.is_held_by(user) => {
                crown.drop_from(gone.cursor_or_unmoved(), now, &mut self.rng);
                true
            }
            _ => false,
        };
        if ch.participants.is_empty() {
            let ch = self.channels.remove(&key);
            // §3.5: bans die with the room.
            if ch.as_ref().is_some_and(|c| !c.bans.is_empty()) {
                self.persist_changed();
            }
            if let Some(ch) = ch.filter(|c| c.listed) {
                self.ls_gone.insert(key.clone(), channel_info_json(&ch, 0, false));
            }
            self.list_changed(&key);
            return;
        }
        let id_hex = self.users.get(&user).map_or_else(|| user.hex(), |u| u.id_hex);
        self.broadcast(&key, &outbound::bye(&id_hex), None, false);
        if dropped {
            self.broadcast_channel(&key);
        }
        self.list_changed(&key);
    }

    /// The `ch` message of a channel, without `p` (§6 `ch`: `ppl` complete, in join order).
    pub(super) fn ch_message(&self, ch: &Channel) -> String {
        let info = channel_info_json(ch, ch.participants.len(), false);
        let mut out = String::from(r#"{"m":"ch","ch":"#);
        out.push_str(&info);
        out.push_str(r#","ppl":["#);
        let mut first = true;
        for p in &ch.participants {
            let mut cached = p.ppl_entry.borrow_mut();
            if cached.is_none() {
                *cached = self.info_in(ch, p.user, true).map(|info| outbound::to_json(&info).into_boxed_str());
            }
            if let Some(entry) = cached.as_deref() {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(entry);
            }
        }
        out.push_str("]}");
        out
    }

    /// Sends the current `ch` to everyone in a channel (settings or crown changed).
    pub(super) fn broadcast_channel(&mut self, key: &str) {
        let Some(ch) = self.channels.get(key) else { return };
        let msg = self.ch_message(ch);
        self.broadcast(key, &msg, None, false);
    }

    /// §7.6: after the holder changed, each connection of the old and new holder still in the
    /// room gets the note quota of its new situation.
    pub(super) fn crown_moved(&mut self, key: &str, old: Option<UserId>, new: Option<UserId>) {
        for user in [old, new].into_iter().flatten() {
            let Some(ch) = self.channels.get_mut(key) else { return };
            let params = ch.quota_params_for(user, self.config.trusted_notes);
            let Some(p) = ch.participant_mut(user) else { continue };
            p.quota.set_params(params);
            let conns = p.conns.clone();
            let nq = super::frame(&[&outbound::note_quota(params.allowance, params.max, params.max_hist_len)]);
            for conn in conns {
                self.send_frame(conn, nq.clone());
            }
        }
    }
}

/// The notification a banned user gets on trying to join (§9.5).
fn banned_notice(name: &str, remaining: u64) -> String {
    let minutes = remaining.div_ceil(60_000);
    format!("Currently banned from \"{name}\" for {minutes} minutes.")
}
