//! Connection-level messages: `hi` (§5, §10), `t` (§5, §11), `userset`, and the channel list
//! (`+ls`/`-ls` and the `ls` updates of §6).

use super::ids::{identity_for_address, random_identity};
use super::{Color, ConnId, Core, Limit, Message, Profile, Timer, User};
use crate::proto::inbound::{number, parse_as};
use crate::proto::outbound::{self, ChannelInfo, Echo};
use crate::proto::validate::{MAX_NAME_LEN, is_valid_text, parse_color};
use crate::time::Millis;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::rc::Rc;

const DEFAULT_NAME: &str = "Anonymous";

impl Core {
    /// `hi`: identifies the connection once (§5 `hi`). Tokens are not used: identity comes from
    /// the address (§10), or from the random-ids and `customId` testing switches.
    pub(super) fn on_hi(&mut self, now: Millis, conn_id: ConnId, msg: &Message<'_>) {
        let Some(conn) = self.conns.get(&conn_id) else { return };
        if conn.user.is_some() {
            return;
        }
        let ip = conn.ip;
        let identity = if self.config.random_ids {
            random_identity(&mut self.rng)
        } else {
            let custom = number(msg.custom_id)
                .filter(|k| k.fract() == 0.0 && *k >= 1.0 && *k <= f64::from(self.config.custom_id_limit))
                .map(|k| k as u32);
            identity_for_address(&self.config.id_salt, ip, custom)
        };
        let max = self.config.max_connections_per_user;
        if self.users.get(&identity.id).is_some_and(|u| u.conns.len() >= max) {
            self.send(conn_id, outbound::notice("You already have the maximum amount of clients connected."));
            self.close(now, conn_id, 4009, "Client limit reached.".to_string());
            return;
        }
        let profile = self.profiles.get(&identity.id);
        let user = self.users.entry(identity.id).or_insert_with(|| User {
            id_hex: identity.id.hex(),
            name: profile.map_or(Cow::Borrowed(DEFAULT_NAME), |p| Cow::Owned(p.name.clone())),
            color: Color::of(profile.map_or(&identity.color, |p| &p.color)),
            conns: Vec::new(),
        });
        user.conns.push(conn_id);
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.user = Some(identity.id);
        }
        let Some(info) = self.user_info(identity.id) else { return };
        let hi = outbound::hi(now, &info, self.config.motd.as_deref());
        self.send(conn_id, hi);
    }

    /// `t`: answered in any state; once identified it also resets the ping timer (§11: before
    /// `hi` the first period, counted from open, still applies).
    pub(super) fn on_ping(&mut self, now: Millis, conn_id: ConnId, msg: &Message<'_>) {
        let echo = Echo::of(msg.e);
        let reply = outbound::pong(now, echo);
        self.send(conn_id, reply);
        let timeout = self.config.ping_timeout_ms;
        let Some(conn) = self.conns.get_mut(&conn_id) else { return };
        if conn.user.is_some() {
            self.timers.remove(&(conn.ping_deadline, Timer::Ping(conn_id)));
            conn.ping_deadline = now.plus(timeout);
            self.timers.insert((conn.ping_deadline, Timer::Ping(conn_id)));
        }
        // Before `hi` the deadline stays `opened_at + timeout`.
        debug_assert!(conn.user.is_some() || conn.ping_deadline == conn.opened_at.plus(timeout));
    }

    /// `userset`: name and colour, each applied on its own if valid; any change is echoed as `p`
    /// to everyone in every channel where the user is present, the sender included.
    pub(super) fn on_userset(&mut self, now: Millis, conn_id: ConnId, msg: &Message<'_>) {
        let Some(set) = parse_as::<Map<String, Value>>(msg.set) else { return };
        let Some(user_id) = self.conns.get(&conn_id).and_then(|c| c.user) else { return };
        if !self.within_limit(now, conn_id, Limit::Userset, 1) {
            return;
        }
        let name = set.get("name").and_then(Value::as_str).filter(|n| is_valid_text(n, MAX_NAME_LEN));
        let color =
            set.get("color").and_then(Value::as_str).and_then(parse_color).filter(|_| self.config.allow_color_change);
        let Some(user) = self.users.get_mut(&user_id) else { return };
        let mut changed = false;
        if let Some(name) = name.filter(|n| *n != user.name) {
            user.name = Cow::Owned(name.to_string());
            changed = true;
        }
        if let Some(color) = color.filter(|c| **c != *user.color) {
            user.color = Color::of(&color);
            changed = true;
        }
        if !changed {
            return;
        }
        self.profiles.insert(user_id, Profile { name: user.name.to_string(), color: user.color.to_string() });
        // Direct field access: `user` still borrows `self.users`.
        self.persist_generation = self.persist_generation.wrapping_add(1);
        let mut channels: Vec<Rc<str>> = Vec::new();
        for conn in &user.conns {
            if let Some(ch) = self.conns.get(conn).and_then(|c| c.channel.clone())
                && !channels.contains(&ch)
            {
                channels.push(ch);
            }
        }
        for channel in channels {
            let Some(ch) = self.channels.get(&channel) else { continue };
            if let Some(p) = ch.participant(user_id) {
                p.ppl_entry.take();
            }
            let Some(info) = self.info_in(ch, user_id, true) else { continue };
            let p = outbound::participant(&info);
            self.broadcast(&channel, &p, None, false);
        }
    }

    /// `+ls`: subscribe, and always answer with the complete list (§5 `+ls`).
    pub(super) fn on_subscribe_list(&mut self, now: Millis, conn_id: ConnId) {
        let Some(conn) = self.conns.get(&conn_id) else { return };
        let user = conn.user;
        self.ls_subscribers.insert(conn_id);
        let mut names: Vec<&Rc<str>> =
            self.channels.iter().filter(|(_, c)| c.settings.visible).map(|(n, _)| n).collect();
        names.sort();
        let entries: Vec<String> = names.into_iter().filter_map(|n| self.list_entry(now, n, user)).collect();
        let ls = outbound::channel_list(true, entries.iter().map(String::as_str));
        self.send(conn_id, ls);
    }

    pub(super) fn on_unsubscribe_list(&mut self, conn_id: ConnId) {
        self.ls_subscribers.remove(&conn_id);
    }

    /// A channel's `ls` entry as a given user sees it (`banned` per receiver; §6 `ls`).
    pub(super) fn list_entry(&self, now: Millis, name: &str, viewer: Option<super::UserId>) -> Option<String> {
        let ch = self.channels.get(name)?;
        let banned = viewer.is_some_and(|u| ch.ban_remaining(u, now).is_some());
        Some(channel_info_json(ch, ch.participants.len(), banned))
    }

    /// Marks a channel's list entry as changed; subscribers hear of it at the end of the input.
    pub(super) fn list_changed(&mut self, channel: &Rc<str>) {
        self.ls_dirty.insert(channel.clone());
    }

    /// Sends the coalesced `ls` updates of this input to every subscriber (§6 `ls`): visible
    /// channels that changed, one last entry for a channel that became invisible, and one with
    /// `count: 0` for a listed channel that was destroyed.
    pub(super) fn flush_channel_list(&mut self, now: Millis) {
        if self.ls_dirty.is_empty() && self.ls_gone.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.ls_dirty);
        let gone = std::mem::take(&mut self.ls_gone);
        let mut changed: Vec<Rc<str>> = Vec::new();
        for name in dirty {
            let Some(ch) = self.channels.get_mut(&name) else { continue };
            if ch.settings.visible || ch.listed {
                ch.listed = ch.settings.visible;
                changed.push(name);
            }
        }
        for name in gone.keys() {
            if !changed.contains(name) && !self.channels.contains_key(name) {
                changed.push(name.clone());
            }
        }
        changed.sort();
        if changed.is_empty() {
            return;
        }
        let subscribers: Vec<(ConnId, Option<super::UserId>)> =
            self.ls_subscribers.iter().map(|id| (*id, self.conns.get(id).and_then(|c| c.user))).collect();
        if subscribers.is_empty() {
            return;
        }
        let entry_for = |core: &Core, name: &Rc<str>, viewer: Option<super::UserId>| -> Option<String> {
            match gone.get(name) {
                Some(last) if !core.channels.contains_key(name) => Some(last.clone()),
                _ => core.list_entry(now, name, viewer),
            }
        };
        let shared: Vec<String> = changed.iter().filter_map(|n| entry_for(self, n, None)).collect();
        let shared_frame = super::frame(&[&outbound::channel_list(false, shared.iter().map(String::as_str))]);
        for (conn, viewer) in subscribers {
            let banned_somewhere = viewer.is_some_and(|u| {
                changed.iter().any(|n| self.channels.get(n).is_some_and(|c| c.ban_remaining(u, now).is_some()))
            });
            let frame = if banned_somewhere {
                let own: Vec<String> = changed.iter().filter_map(|n| entry_for(self, n, viewer)).collect();
                super::frame(&[&outbound::channel_list(false, own.iter().map(String::as_str))])
            } else {
                shared_frame.clone()
            };
            self.outputs.push_back(super::Output::Send { conn, frame, droppable: false });
        }
    }
}

/// Channel info (§3.3) with an explicit count.
pub(super) fn channel_info_json(ch: &super::Channel, count: usize, banned: bool) -> String {
    let holder = ch.crown.as_ref().map(|c| c.user_id.to_hex());
    let crown = ch.crown.as_ref().zip(holder.as_deref()).map(|(c, id)| c.view(id));
    outbound::to_json(&ChannelInfo { name_id: &ch.name, id: &ch.name, count, settings: &ch.settings, crown, banned })
}
