//! What the shell refused, closed and dropped, counted for metrics, and a limiter that keeps
//! the debug lines about refusals from flooding the log.

use crate::core::Millis;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters kept by the event loop since it started; `EventLoop::counters` reads them (for the
/// metrics endpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShellCounters {
    /// Sockets accepted.
    pub accepted: u64,
    /// WebSocket connections opened (upgrade answered with `101`).
    pub websockets_opened: u64,
    /// Plain HTTP requests read (not upgrades): `/health`, `/metrics`, files, `400`s.
    pub http_requests: u64,
    /// HTTP answers other than `101`, by status: 400 (not an upgrade, malformed head),
    /// 403 (Origin), 408 (head too slow), 429 (per-IP caps), 431 (head too long), 503 (full).
    pub http_responses: BTreeMap<u16, u64>,
    /// `403`s for an Origin outside the allowlist.
    pub refused_origin: u64,
    /// `429`s for the per-IP concurrent connection cap.
    pub refused_per_ip_concurrent: u64,
    /// `429`s for the per-IP connection rate.
    pub refused_per_ip_rate: u64,
    /// `503`s at accept because the server held `max_connections`.
    pub refused_max_connections: u64,
    /// Unfinished request heads dropped to make room for newer ones (`max_pending_handshakes`).
    pub handshakes_evicted: u64,
    /// Close frames sent by the server, by close code (4003, 1009, 1007, 4007, 4002, 4009, …).
    pub closes: BTreeMap<u16, u64>,
    /// Notes and cursor moves skipped for readers over their soft cap.
    pub frames_dropped: u64,
    /// Times a connection used up its read budget for a loop turn and was resumed later.
    pub read_budget_exhausted: u64,
}

impl ShellCounters {
    /// HTTP answers with `status` so far.
    pub fn http(&self, status: u16) -> u64 {
        self.http_responses.get(&status).copied().unwrap_or(0)
    }

    pub(super) fn count_http(&mut self, status: u16) {
        *self.http_responses.entry(status).or_insert(0) += 1;
    }

    pub(super) fn count_close(&mut self, code: u16) {
        *self.closes.entry(code).or_insert(0) += 1;
    }
}

/// Lines a [`LogLimiter`] lets through per kind and per second.
const LINES_PER_SECOND: u32 = 5;

/// Lets a few log lines of each kind through per second and counts the rest, so that a flood
/// of refusals costs one summary instead of one line each.
#[derive(Default)]
pub(super) struct LogLimiter {
    /// Per kind: the second being counted, lines let through in it, lines suppressed since the
    /// last line let through.
    kinds: BTreeMap<&'static str, (u64, u32, u64)>,
}

impl LogLimiter {
    /// `Some(suppressed)` if a line of `kind` may be written now (`suppressed` lines of the kind
    /// were held back since the previous one); `None` to stay quiet.
    pub(super) fn allow(&mut self, kind: &'static str, now: Millis) -> Option<u64> {
        let second = now.as_ms() / 1000;
        let (at, lines, suppressed) = self.kinds.entry(kind).or_insert((second, 0, 0));
        if *at != second {
            *at = second;
            *lines = 0;
        }
        if *lines >= LINES_PER_SECOND {
            *suppressed += 1;
            return None;
        }
        *lines += 1;
        Some(std::mem::take(suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_lines_is_summarised() {
        let mut limiter = LogLimiter::default();
        let allowed = (0..1000).filter(|_| limiter.allow("429", Millis::from_ms(5_000)).is_some()).count();
        assert_eq!(allowed, LINES_PER_SECOND as usize);
        assert_eq!(limiter.allow("other", Millis::from_ms(5_000)), Some(0), "kinds are limited separately");
        assert_eq!(limiter.allow("429", Millis::from_ms(6_000)), Some(1000 - LINES_PER_SECOND as u64));
        assert_eq!(limiter.allow("429", Millis::from_ms(6_001)), Some(0));
    }

    #[test]
    fn closes_are_counted_by_code() {
        let mut counters = ShellCounters::default();
        counters.count_close(4003);
        counters.count_close(4003);
        counters.count_close(1009);
        assert_eq!(counters.closes.get(&4003), Some(&2));
        assert_eq!(counters.closes.get(&1009), Some(&1));
        counters.count_http(429);
        assert_eq!(counters.http(429), 1);
        assert_eq!(counters.http(400), 0);
    }
}
