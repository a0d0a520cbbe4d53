//! Consistency rules that hold between any two inputs. Tests and fuzz targets call
//! [`Core::check_invariants`] after every step; the server never needs to.

use super::channel::Kind;
use super::{Core, Timer};

impl Core {
    /// Checks every registry against the others; describes the first broken rule.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen_in_channels = std::collections::HashSet::new();
        for (name, ch) in &self.channels {
            if ch.participants.is_empty() {
                return Err(format!("channel {name:?} exists without participants"));
            }
            if (ch.kind == Kind::Normal) != ch.crown.is_some() {
                return Err(format!("channel {name:?}: crown present iff normal room"));
            }
            if let Some(holder) = ch.holder()
                && ch.participant(holder).is_none()
            {
                return Err(format!("channel {name:?}: crown held by an absent user"));
            }
            if ch.kind == Kind::Lobby && ch.participants.len() > self.config.lobby_capacity {
                return Err(format!("lobby {name:?} holds {} participants", ch.participants.len()));
            }
            if ch.history.len() > self.config.chat_history {
                return Err(format!("channel {name:?} keeps {} chat messages", ch.history.len()));
            }
            for (i, p) in ch.participants.iter().enumerate() {
                if ch.participants[..i].iter().any(|q| q.user == p.user) {
                    return Err(format!("channel {name:?}: user {} is two participants", p.user));
                }
                if let Some(cached) = p.ppl_entry.borrow().as_deref() {
                    let fresh = self.info_in(ch, p.user, true).map(|info| crate::proto::outbound::to_json(&info));
                    if fresh.as_deref() != Some(cached) {
                        return Err(format!("channel {name:?}: stale ppl entry for {}", p.user));
                    }
                }
                if p.conns.is_empty() {
                    return Err(format!("channel {name:?}: participant {} has no connection", p.user));
                }
                for conn_id in &p.conns {
                    if !seen_in_channels.insert(*conn_id) {
                        return Err(format!("{conn_id:?} is in two places"));
                    }
                    let Some(conn) = self.conns.get(conn_id) else {
                        return Err(format!("channel {name:?}: participant {} has closed {conn_id:?}", p.user));
                    };
                    if conn.user != Some(p.user) || conn.channel.as_deref() != Some(name.as_ref()) {
                        return Err(format!("{conn_id:?} disagrees with channel {name:?} about its place"));
                    }
                }
            }
        }
        for (id, conn) in &self.conns {
            if conn.channel.is_some() && !seen_in_channels.contains(id) {
                return Err(format!("{id:?} believes it is in {:?} but is not listed there", conn.channel));
            }
            if !self.timers.contains(&(conn.ping_deadline, Timer::Ping(*id))) {
                return Err(format!("{id:?} has no ping timer"));
            }
            if let Some(user) = conn.user
                && !self.users.get(&user).is_some_and(|u| u.conns.contains(id))
            {
                return Err(format!("{id:?} is not among its user's connections"));
            }
        }
        for (user_id, user) in &self.users {
            if user.conns.is_empty() {
                return Err(format!("user {user_id} is kept without connections"));
            }
            if user.conns.iter().any(|c| self.conns.get(c).and_then(|c| c.user) != Some(*user_id)) {
                return Err(format!("user {user_id} lists a connection that is not its own"));
            }
        }
        if let Some(gone) = self.ls_subscribers.iter().find(|c| !self.conns.contains_key(c)) {
            return Err(format!("closed {gone:?} is still subscribed to the channel list"));
        }
        let ping_timers = self.timers.iter().filter(|(_, t)| matches!(t, Timer::Ping(_))).count();
        if ping_timers != self.conns.len() {
            return Err(format!("{ping_timers} ping timers for {} connections", self.conns.len()));
        }
        Ok(())
    }
}
