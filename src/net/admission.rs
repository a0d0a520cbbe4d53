//! Who may open a WebSocket, decided from the request head before the upgrade: the Origin
//! allowlist (`403`) and the per-IP caps on concurrent connections and on the connection rate
//! (`429`). A refusal is an HTTP answer, never an accept-then-close (PROTOCOL.md §2, §8.3).
//!
//! Pure bookkeeping: time comes in as an argument. Both per-IP tables stay bounded: a count
//! is removed when it drops to zero, and rate entries go once their window has passed.

use super::realip::{IpCidr, is_in};
use crate::config::Rate;
use crate::core::Millis;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// How long a client refused for holding too many connections is asked to wait.
const RETRY_AFTER_BUSY_S: u64 = 5;

/// Sweeps of the rate table happen at least this often, and whenever it doubled in size.
const SWEEP_MIN_ENTRIES: usize = 1024;

/// The per-IP settings (0 turns a cap off).
#[derive(Clone, Debug)]
pub(super) struct AdmissionConfig {
    pub(super) max_per_ip: usize,
    pub(super) rate: Rate,
    pub(super) exempt: Vec<IpCidr>,
    pub(super) ipv6_prefix: u8,
    pub(super) allowed_origins: Vec<String>,
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `403`: an Origin outside the allowlist.
    Origin,
    /// `429`: the address already holds its share of connections; retry after this many seconds.
    Concurrent { retry_after_s: u64 },
    /// `429`: the address connects too often; retry after this many seconds.
    Rate { retry_after_s: u64 },
}

/// The per-IP tables.
pub(super) struct Admission {
    config: AdmissionConfig,
    /// Open (or upgrading) connections per address key; no zero entries.
    live: HashMap<IpAddr, u32>,
    /// Per address key, the theoretical arrival time of the generic cell rate algorithm, in
    /// units of `1 / rate.count` ms; an entry not in the future is dropped.
    rate_tat: HashMap<IpAddr, u128>,
    /// Size of `rate_tat` after the last sweep, and when the next timed sweep is due.
    swept_len: usize,
    next_sweep: Millis,
}

impl Admission {
    pub(super) fn new(mut config: AdmissionConfig) -> Admission {
        config.allowed_origins = config.allowed_origins.iter().map(|o| normalise_origin(o.as_bytes())).collect();
        Admission { config, live: HashMap::new(), rate_tat: HashMap::new(), swept_len: 0, next_sweep: Millis::ZERO }
    }

    /// Decides on an upgrade from `ip` (the real client address) carrying `origin`. On success
    /// the connection counts against its address until [`release`](Self::release) is called
    /// with the returned key (`None`: the address is exempt and nothing was counted).
    pub(super) fn admit(&mut self, ip: IpAddr, origin: Option<&[u8]>, now: Millis) -> Result<Option<IpAddr>, Refusal> {
        if !self.origin_allowed(origin) {
            return Err(Refusal::Origin);
        }
        if is_in(&self.config.exempt, ip) {
            return Ok(None);
        }
        let key = self.key(ip);
        let live = self.live.get(&key).copied().unwrap_or(0);
        if self.config.max_per_ip > 0 && live as usize >= self.config.max_per_ip {
            return Err(Refusal::Concurrent { retry_after_s: RETRY_AFTER_BUSY_S });
        }
        self.sweep(now);
        let rate = self.config.rate;
        if rate.count > 0 && rate.per_ms > 0 {
            let count = u128::from(rate.count);
            let now_scaled = u128::from(now.as_ms()) * count;
            let window = u128::from(rate.per_ms) * count;
            let tat = self.rate_tat.get(&key).copied().unwrap_or(0).max(now_scaled) + u128::from(rate.per_ms);
            if tat - now_scaled > window {
                let wait_ms = (tat - now_scaled - window).div_ceil(count);
                let retry_after_s = u64::try_from(wait_ms.div_ceil(1000)).unwrap_or(u64::MAX).max(1);
                return Err(Refusal::Rate { retry_after_s });
            }
            self.rate_tat.insert(key, tat);
        }
        *self.live.entry(key).or_insert(0) += 1;
        Ok(Some(key))
    }

    /// A connection admitted under `key` is gone.
    pub(super) fn release(&mut self, key: IpAddr) {
        if let Some(count) = self.live.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.live.remove(&key);
            }
        }
    }

    /// Entries held: (addresses with connections, addresses inside their rate window).
    pub(super) fn table_sizes(&self) -> (usize, usize) {
        (self.live.len(), self.rate_tat.len())
    }

    /// What the caps count by: the canonical address, IPv6 cut to its configured prefix (one
    /// host usually owns a whole /64).
    fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u32::from(self.config.ipv6_prefix.min(128));
                let keep = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
            }
            v4 => v4,
        }
    }

    fn origin_allowed(&self, origin: Option<&[u8]>) -> bool {
        // Bots often send no Origin; an allowlist only keeps other web pages out (§1.2).
        let Some(origin) = origin else { return true };
        self.config.allowed_origins.is_empty() || self.config.allowed_origins.contains(&normalise_origin(origin))
    }

    /// Drops rate entries whose window has passed, every `per_ms` and whenever the table
    /// doubled since the last sweep, so it holds about the addresses of one window.
    fn sweep(&mut self, now: Millis) {
        let grown = self.rate_tat.len() >= (2 * self.swept_len).max(SWEEP_MIN_ENTRIES);
        if now < self.next_sweep && !grown {
            return;
        }
        let now_scaled = u128::from(now.as_ms()) * u128::from(self.config.rate.count);
        self.rate_tat.retain(|_, tat| *tat > now_scaled);
        self.swept_len = self.rate_tat.len();
        self.next_sweep = now.plus(self.config.rate.per_ms.max(1000));
    }
}

/// An Origin as compared: lowercase, without surrounding space or a trailing slash.
fn normalise_origin(origin: &[u8]) -> String {
    String::from_utf8_lossy(origin.trim_ascii()).trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = Millis::from_ms(1_700_000_000_000);

    fn config() -> AdmissionConfig {
        AdmissionConfig {
            max_per_ip: 2,
            rate: Rate::new(3, 10_000),
            exempt: vec!["127.0.0.0/8".parse().unwrap()],
            ipv6_prefix: 64,
            allowed_origins: Vec::new(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn concurrent_connections_per_address_are_capped_and_released() {
        let mut a = Admission::new(AdmissionConfig { rate: Rate::new(0, 0), ..config() });
        let first = a.admit(ip("1.2.3.4"), None, T).unwrap().unwrap();
        a.admit(ip("::ffff:1.2.3.4"), None, T).unwrap();
        assert_eq!(a.admit(ip("1.2.3.4"), None, T), Err(Refusal::Concurrent { retry_after_s: 5 }));
        assert!(a.admit(ip("1.2.3.5"), None, T).is_ok());
        a.release(first);
        assert!(a.admit(ip("1.2.3.4"), None, T).is_ok());
        a.release(first);
        a.release(first);
        a.release(ip("1.2.3.5"));
        assert_eq!(a.table_sizes(), (0, 0), "counts at zero leave no entry");
    }

    #[test]
    fn connection_rate_per_address_refills_over_the_window() {
        let mut a = Admission::new(AdmissionConfig { max_per_ip: 0, ..config() });
        for _ in 0..3 {
            a.admit(ip("1.2.3.4"), None, T).unwrap();
        }
        // One slot comes back every 10 000 / 3 ms.
        assert_eq!(a.admit(ip("1.2.3.4"), None, T), Err(Refusal::Rate { retry_after_s: 4 }));
        assert_eq!(a.admit(ip("1.2.3.4"), None, T.plus(3_000)), Err(Refusal::Rate { retry_after_s: 1 }));
        assert!(a.admit(ip("1.2.3.4"), None, T.plus(3_334)).is_ok());
        assert!(a.admit(ip("1.2.3.4"), None, T.plus(3_334)).is_err());
        // Other addresses are not affected.
        assert!(a.admit(ip("1.2.3.5"), None, T).is_ok());
        // After a full window everything is forgotten at the next sweep.
        assert!(a.admit(ip("9.9.9.9"), None, T.plus(20_000)).is_ok());
        assert_eq!(a.table_sizes().1, 1);
    }

    #[test]
    fn ipv6_addresses_count_by_prefix() {
        let mut a = Admission::new(AdmissionConfig { rate: Rate::new(0, 0), ..config() });
        a.admit(ip("2001:db8:0:1::1"), None, T).unwrap();
        a.admit(ip("2001:db8:0:1::2"), None, T).unwrap();
        assert!(a.admit(ip("2001:db8:0:1:ffff::3"), None, T).is_err());
        assert!(a.admit(ip("2001:db8:0:2::1"), None, T).is_ok());
    }

    #[test]
    fn exempt_addresses_are_not_counted() {
        let mut a = Admission::new(config());
        for _ in 0..100 {
            assert_eq!(a.admit(ip("127.0.0.1"), None, T), Ok(None));
        }
        assert_eq!(a.table_sizes(), (0, 0));
    }

    #[test]
    fn origins_are_checked_against_the_allowlist() {
        let allowed = vec!["https://www.multiplayerpiano.com/".to_string(), "http://localhost:8080".to_string()];
        let mut a = Admission::new(AdmissionConfig { allowed_origins: allowed, ..config() });
        assert!(a.admit(ip("1.1.1.1"), Some(b"https://www.MultiplayerPiano.com"), T).is_ok());
        assert!(a.admit(ip("1.1.1.2"), Some(b"http://localhost:8080"), T).is_ok());
        assert!(a.admit(ip("1.1.1.3"), None, T).is_ok());
        assert_eq!(a.admit(ip("1.1.1.4"), Some(b"https://evil.example"), T), Err(Refusal::Origin));
        assert_eq!(a.admit(ip("127.0.0.1"), Some(b"null"), T), Err(Refusal::Origin));
        let mut open = Admission::new(config());
        assert!(open.admit(ip("1.1.1.4"), Some(b"https://evil.example"), T).is_ok());
    }

    #[test]
    fn many_addresses_do_not_grow_the_tables_without_bound() {
        let mut a = Admission::new(config());
        let mut now = T;
        for i in 0..200_000u32 {
            now = now.plus(1);
            let key = a.admit(IpAddr::from(i.to_be_bytes()), None, now).unwrap().unwrap();
            a.release(key);
        }
        let (live, rate) = a.table_sizes();
        assert_eq!(live, 0);
        // About one window's worth of addresses (10 000 at one per ms), at most twice that.
        assert!(rate <= 20_000 + SWEEP_MIN_ENTRIES, "{rate} rate entries");
    }
}
