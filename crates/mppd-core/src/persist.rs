//! What outlives the process: names and colours per user id, and room bans with their end
//! times. The core only hands out a [`Snapshot`] and takes one back; where and when it is
//! written is the shell's business (src/store.rs). Pure: no clock, no file.
//!
//! §3.5 says bans die with the room. A restart is not the room dying: bans restored from a
//! snapshot wait, per channel name, until that channel exists again, and are then applied
//! (expired ones are dropped). Until then they still keep the banned user from creating it.

use super::channel::Kind;
use super::ids::UserId;
use super::{Core, Profile};
use crate::proto::validate::{MAX_CHANNEL_NAME_LEN, MAX_NAME_LEN, is_valid_text, parse_color};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Everything the core persists, in a stable order (sorted by user id and channel name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Names and colours that differ from the defaults.
    #[serde(default)]
    pub profiles: Vec<SavedProfile>,
    /// Bans still in force, by channel.
    #[serde(default)]
    pub bans: Vec<SavedBan>,
}

/// A user's name and colour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedProfile {
    pub id: UserId,
    pub name: String,
    pub color: String,
}

/// A ban from one room, in force until `until` (server ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedBan {
    pub channel: String,
    pub user: UserId,
    pub until: Millis,
}

/// Bans restored for channels that do not exist (yet): channel name → user → end of ban.
pub(super) type PendingBans = HashMap<String, HashMap<UserId, Millis>>;

impl Core {
    /// The persistent state at `now`: every profile, and every ban (live or still pending from a
    /// restore) that has not expired.
    pub fn snapshot(&self, now: Millis) -> Snapshot {
        let mut profiles: Vec<SavedProfile> = self
            .profiles
            .iter()
            .map(|(id, p)| SavedProfile { id: *id, name: p.name.clone(), color: p.color.clone() })
            .collect();
        profiles.sort_by_key(|p| p.id);
        let mut bans: BTreeMap<(&str, UserId), Millis> = BTreeMap::new();
        for (channel, users) in &self.pending_bans {
            for (user, until) in users {
                bans.insert((channel.as_str(), *user), *until);
            }
        }
        for (name, ch) in &self.channels {
            for (user, until) in &ch.bans {
                bans.insert((name.as_ref(), *user), *until);
            }
        }
        let bans = bans
            .into_iter()
            .filter(|(_, until)| *until > now)
            .map(|((channel, user), until)| SavedBan { channel: channel.to_string(), user, until })
            .collect();
        Snapshot { profiles, bans }
    }

    /// Loads a snapshot: profiles apply to users from their next `hi` on; bans apply to their
    /// channel when it is next created (or at once if it exists). Entries that would not pass
    /// the protocol's own checks (a hand-edited file) are skipped with a log line.
    pub fn restore(&mut self, snapshot: Snapshot) {
        for p in snapshot.profiles {
            match parse_color(&p.color) {
                Some(color) if is_valid_text(&p.name, MAX_NAME_LEN) => {
                    self.profiles.insert(p.id, Profile { name: p.name, color });
                }
                _ => log::warn!("saved profile of {} is not valid; skipped", p.id),
            }
        }
        for ban in snapshot.bans {
            if Kind::of(&ban.channel) != Kind::Normal || !is_valid_text(&ban.channel, MAX_CHANNEL_NAME_LEN) {
                log::warn!("saved ban from {:?} is not for a normal room; skipped", ban.channel);
                continue;
            }
            match self.channels.get_mut(ban.channel.as_str()) {
                Some(ch) => {
                    ch.bans.insert(ban.user, ban.until);
                }
                None => {
                    self.pending_bans.entry(ban.channel).or_default().insert(ban.user, ban.until);
                }
            }
        }
        self.persist_changed();
    }

    /// Changes whenever the persistent state may have changed; the shell saves when it differs
    /// from the value at its last save.
    pub fn persist_generation(&self) -> u64 {
        self.persist_generation
    }

    /// Notes a change of what [`Core::snapshot`] returns.
    pub(super) fn persist_changed(&mut self) {
        self.persist_generation = self.persist_generation.wrapping_add(1);
    }

    /// Restored bans of a channel that does not exist yet, still in force at `now`.
    pub(super) fn pending_ban_remaining(&self, channel: &str, user: UserId, now: Millis) -> Option<u64> {
        let until = *self.pending_bans.get(channel)?.get(&user)?;
        (until > now).then(|| until.since(now))
    }

    /// Moves the restored bans of a channel being created into it, dropping expired ones.
    pub(super) fn take_pending_bans(&mut self, channel: &str, now: Millis) -> HashMap<UserId, Millis> {
        let mut bans = self.pending_bans.remove(channel).unwrap_or_default();
        bans.retain(|_, until| *until > now);
        bans
    }
}

impl Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        UserId::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not a user id: {text:?}")))
    }
}
