//! User ids and default colours (PROTOCOL.md §10), and the core's seeded random generator.

use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;

/// A user id: 96 bits, written as 24 lowercase hex digits on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId([u8; 12]);

impl UserId {
    /// Parses the wire form; anything but 24 hex digits is not a user id.
    pub fn parse(s: &str) -> Option<UserId> {
        let bytes = s.as_bytes();
        if bytes.len() != 24 {
            return None;
        }
        let mut out = [0u8; 12];
        for (i, pair) in bytes.chunks(2).enumerate() {
            out[i] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(UserId(out))
    }

    /// The 24-digit wire form.
    pub fn to_hex(self) -> String {
        to_hex(&self.0)
    }

    /// The wire form, held inline (every user keeps it; no allocation of its own).
    pub fn hex(self) -> HexId {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 24];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        HexId(out)
    }
}

/// A user id's 24 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HexId([u8; 24]);

impl std::ops::Deref for HexId {
    type Target = str;
    fn deref(&self) -> &str {
        // Hex digits only (see `UserId::hex`): always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `bytes` as lowercase hex digits.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A user's identity as derived from where it connects from: its id and default colour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub id: UserId,
    pub color: String,
}

/// Id = first 24 hex digits of SHA-256(salt ‖ "-" ‖ ip), colour = "#" + hex digits 24..30
/// (§10). The address is canonicalised first so `::ffff:1.2.3.4` and `1.2.3.4` agree.
/// `extra` (speedy's `customId`) derives further ids for the same address.
pub fn identity_for_address(salt: &str, ip: IpAddr, extra: Option<u32>) -> Identity {
    let mut input = format!("{salt}-{}", ip.to_canonical());
    if let Some(k) = extra {
        input.push_str(&format!("-{k}"));
    }
    identity_from_digest(&Sha256::digest(input.as_bytes()))
}

/// A fresh random identity, for the random-ids testing switch.
pub fn random_identity(rng: &mut Rng) -> Identity {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    identity_from_digest(&bytes)
}

fn identity_from_digest(digest: &[u8]) -> Identity {
    let mut id = [0u8; 12];
    id.copy_from_slice(&digest[..12]);
    Identity { id: UserId(id), color: format!("#{}", to_hex(&digest[12..15])) }
}

/// The core's only source of randomness: SplitMix64 seeded from the configuration, so a
/// replay with the same seed draws the same numbers.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniformly distributed number in `[low, high)`.
    pub fn range_f64(&mut self, low: f64, high: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        low + unit * (high - low)
    }

    /// Eight random lowercase hex digits: the id of a chat message.
    pub fn message_id(&mut self) -> String {
        to_hex(&self.next_u64().to_le_bytes()[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_salted_sha256_of_canonical_address() {
        // SHA-256("salt-1.2.3.4") computed independently with sha256sum.
        let a = identity_for_address("salt", "1.2.3.4".parse().unwrap(), None);
        let mapped = identity_for_address("salt", "::ffff:1.2.3.4".parse().unwrap(), None);
        assert_eq!(a, mapped);
        assert_eq!(a.id.to_hex(), "ebe8d6ed6846396327f26dde");
        assert_eq!(a.color, "#537ead");
        let other_salt = identity_for_address("pepper", "1.2.3.4".parse().unwrap(), None);
        assert_ne!(a.id, other_salt.id);
    }

    #[test]
    fn user_id_round_trips_and_rejects_garbage() {
        let id = identity_for_address("s", "10.0.0.1".parse().unwrap(), None).id;
        assert_eq!(UserId::parse(&id.to_hex()), Some(id));
        assert_eq!(UserId::parse("xyz"), None);
        assert_eq!(UserId::parse("zz0000000000000000000000"), None);
        assert_eq!(UserId::parse("é0000000000000000000000"), None);
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            let x = a.range_f64(70.0, 90.0);
            assert!((70.0..90.0).contains(&x));
            assert_eq!(x, b.range_f64(70.0, 90.0));
        }
        assert_eq!(a.message_id().len(), 8);
    }
}
