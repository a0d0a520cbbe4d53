//! Names in NATS: subjects and key-value keys. Room names are any text (PROTOCOL.md §4), key
//! names are not, so a room becomes `r` + the hex of its UTF-8 bytes, or `h` + the SHA-256 of
//! them when that would be long.

use crate::core::to_hex;
use sha2::{Digest, Sha256};

/// Bucket of room leases: room key → owning node's name.
pub const ROOMS_BUCKET: &str = "mppd_rooms";
/// Bucket of names and colours: user id → profile record.
pub const PROFILES_BUCKET: &str = "mppd_profiles";
/// Bucket of room bans: `<user id>.<room key>` → ban record.
pub const BANS_BUCKET: &str = "mppd_bans";
/// Subject every node's heartbeat goes to.
pub const HEARTBEATS: &str = "mppd.nodes";

/// Longest room name kept as hex in a key (longer ones are hashed).
const MAX_HEX_BYTES: usize = 96;

/// The subject a node receives its envelopes on.
pub fn node_subject(node: &str) -> String {
    format!("mppd.node.{node}")
}

/// Whether `name` can be a node name: a subject token and a key-value value (letters, digits,
/// `-` and `_`, at most 64).
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The key of a room in the lease and ban buckets.
pub fn room_key(room: &str) -> String {
    let bytes = room.as_bytes();
    if bytes.len() <= MAX_HEX_BYTES {
        let mut key = String::with_capacity(1 + 2 * bytes.len());
        key.push('r');
        key.push_str(&to_hex(bytes));
        key
    } else {
        let mut key = String::with_capacity(65);
        key.push('h');
        key.push_str(&to_hex(&Sha256::digest(bytes)));
        key
    }
}

/// The key of a ban of `user` (24 hex) from `room`.
pub fn ban_key(user: &str, room: &str) -> String {
    format!("{user}.{}", room_key(room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_keys_are_valid_key_names_and_distinct() {
        let valid = |k: &str| k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b));
        let long = "x".repeat(500);
        for room in ["lobby", "My room", "test/awkward", "ÄÖ 🎹", "a.b", long.as_str()] {
            assert!(valid(&room_key(room)), "{room}");
        }
        assert_eq!(room_key("ab"), "r6162");
        assert_ne!(room_key("a"), room_key("b"));
        assert!(room_key(&long).starts_with('h') && room_key(&long).len() == 65);
    }

    #[test]
    fn node_names_are_subject_tokens() {
        assert!(valid_node_name("node-1_a"));
        assert!(!valid_node_name(""));
        assert!(!valid_node_name("a.b"));
        assert!(!valid_node_name("a b"));
        assert!(!valid_node_name("*"));
    }
}
