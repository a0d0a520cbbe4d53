//! What the crown holder of a normal room may do: `chset` (§5), `chown` (§7), `kickban` and
//! `unban` (§9). Lobbies and test rooms have no crown, so all of it is ignored there.

use super::channel::AWKWARD;
use super::{ConnId, Core, Limit, Message, UserId};
use crate::proto::inbound::{number, parse_as, string};
use crate::proto::outbound::{self, Notification};
use crate::time::Millis;
use serde_json::{Map, Value};

impl Core {
    /// The user and channel of a connection whose user holds the crown of its channel.
    fn holder_of_channel(&self, conn: ConnId) -> Option<(UserId, std::rc::Rc<str>)> {
        let (user, key) = self.member(conn)?;
        (self.channels.get(&key)?.holder() == Some(user)).then_some((user, key))
    }

    /// `chset`: the filtered settings (§3.4); a change is broadcast as `ch` and listed.
    pub(super) fn on_chset(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((_, key)) = self.holder_of_channel(conn) else { return };
        let Some(set) = parse_as::<Map<String, Value>>(msg.set) else { return };
        if !self.within_limit(now, conn, Limit::Chset, 1) {
            return;
        }
        let Some(ch) = self.channels.get_mut(&key) else { return };
        if ch.settings.apply(&set) {
            self.broadcast_channel(&key);
            self.list_changed(&key);
        }
    }

    /// `chown` (§7.4–§7.5): give, take back, pick up after the delay, or drop.
    pub(super) fn on_chown(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((user, key)) = self.member(conn) else { return };
        let pickup_ms = self.config.crown_pickup_ms;
        let target = string(msg.id).and_then(|id| UserId::parse(&id));
        let Some(ch) = self.channels.get(&key) else { return };
        let Some(crown) = ch.crown.as_ref() else { return };
        let old_holder = ch.holder();
        let recipient = target.filter(|t| ch.participant(*t).is_some());
        let allowed = match recipient {
            Some(to) if crown.is_held_by(user) => to != user,
            Some(_) if crown.held => false,
            Some(_) => crown.user_id == user || now >= crown.time.plus(pickup_ms),
            // No id, or an id not in the channel: only the holder may drop it (§7.5).
            None => crown.is_held_by(user),
        };
        if !allowed {
            return;
        }
        if !self.within_limit(now, conn, Limit::Chown, 1) {
            return;
        }
        let Some(ch) = self.channels.get_mut(&key) else { return };
        let giver_cursor = ch.participant(user).map_or(super::channel::UNMOVED, |p| p.cursor_or_unmoved());
        let to_cursor = recipient.and_then(|r| ch.participant(r)).map(|p| p.cursor_or_unmoved());
        let Some(crown) = ch.crown.as_mut() else { return };
        match (recipient, to_cursor) {
            (Some(to), Some(to_cursor)) => crown.give(to, giver_cursor, to_cursor, now),
            _ => crown.drop_from(giver_cursor, now, &mut self.rng),
        }
        let new_holder = ch.holder();
        self.broadcast_channel(&key);
        self.crown_moved(&key, old_holder, new_holder);
        self.list_changed(&key);
    }

    /// `kickban` (§9): ban a user from this room for up to the maximum, moving them out.
    pub(super) fn on_kickban(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((banner, key)) = self.holder_of_channel(conn) else { return };
        let Some(target) = string(msg.user_or_channel_id).and_then(|id| UserId::parse(&id)) else { return };
        let Some(ms) = number(msg.ms).filter(|ms| *ms >= 0.0) else { return };
        if !self.within_limit(now, conn, Limit::Kickban, 1) {
            return;
        }
        let ms = (ms as u64).min(self.config.kickban_max_ms);
        let minutes = ms / 60_000;
        let Some(ch) = self.channels.get_mut(&key) else { return };
        ch.bans.retain(|_, until| *until > now);
        ch.bans.insert(target, now.plus(ms));
        self.persist_changed();
        let ip_of = |c: &ConnId| self.conns.get(c).map_or_else(String::new, |c| c.ip.to_string());
        let target_ip = match self.channels.get(&key).and_then(|ch| ch.participant(target)) {
            Some(present) => present.conns.first().map_or_else(String::new, ip_of),
            None => "not in the room".to_string(),
        };
        log::info!(
            "kickban: {} user {banner} banned user {target} ({target_ip}) from room {key:?} for {ms} ms",
            ip_of(&conn)
        );
        let Some(ch) = self.channels.get(&key) else { return };
        let Some(present) = ch.participant(target) else { return };
        let target_conns = present.conns.clone();
        let banner_name = self.users.get(&banner).map(|u| u.name.to_string()).unwrap_or_default();
        let target_name = self.users.get(&target).map(|u| u.name.to_string()).unwrap_or_default();
        let to_target = outbound::notice(&format!("Banned from \"{key}\" for {minutes} minutes."));
        for c in target_conns {
            self.send(c, to_target.clone());
            self.join(now, c, AWKWARD, None);
        }
        let told =
            outbound::notice(&format!("{banner_name} banned {target_name} from the channel for {minutes} minutes."));
        self.broadcast(&key, &told, None, false);
        if banner == target {
            let award = outbound::notification(&Notification {
                title: "Certificate of Award",
                text: &format!("Let it be known that {banner_name} kickbanned him/her self."),
                duration: 7000,
                target: "#room",
                class: None,
            });
            self.broadcast(&key, &award, None, false);
        } else if self.channels.get(&key).is_some_and(|ch| ch.settings.chat) {
            // §9.4 has the banner say it in chat; with chat off (§3.4) nobody may, nor is it kept.
            let line = format!("Banned {target_name} from the channel for {minutes} minutes.");
            self.say(now, &key, banner, &line, None);
        }
    }

    /// `unban`: the holder lifts a user's ban here.
    pub(super) fn on_unban(&mut self, now: Millis, conn: ConnId, msg: &Message<'_>) {
        let Some((_, key)) = self.holder_of_channel(conn) else { return };
        let Some(target) = string(msg.user_or_channel_id).and_then(|id| UserId::parse(&id)) else { return };
        if !self.within_limit(now, conn, Limit::Kickban, 1) {
            return;
        }
        let Some(ch) = self.channels.get_mut(&key) else { return };
        // Only a lifted ban changes what the list shows (`banned`, §6 `ls`).
        if ch.bans.remove(&target).is_some_and(|until| until > now) {
            self.persist_changed();
            self.list_changed(&key);
        }
    }
}
