//! The note quota every MPP client also runs (PROTOCOL.md §8.1–§8.2), and the fixed-window rate
//! limiters behind the other limits of §8.3.

use crate::config::Rate;
use crate::time::Millis;

/// Note quota parameters, as sent in `nq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaParams {
    pub allowance: u32,
    pub max: u32,
    pub max_hist_len: usize,
}

/// Lobbies and test rooms (the clients' `PARAMS_LOBBY`).
pub const PARAMS_LOBBY: QuotaParams = QuotaParams { allowance: 200, max: 600, max_hist_len: 3 };
/// Normal rooms (`PARAMS_NORMAL`).
pub const PARAMS_NORMAL: QuotaParams = QuotaParams { allowance: 400, max: 1200, max_hist_len: 3 };
/// The crown holder of a normal room (`PARAMS_RIDICULOUS`).
pub const PARAMS_CROWNED: QuotaParams = QuotaParams { allowance: 600, max: 1800, max_hist_len: 3 };
/// Everyone, everywhere, on a server run with `--trusted-notes` (the clients' `PARAMS_OFFLINE`).
pub const PARAMS_TRUSTED: QuotaParams = QuotaParams { allowance: 8000, max: 24000, max_hist_len: 3 };

/// Points refill once per tick.
pub const TICK_MS: u64 = 2_000;

/// Longest point history any parameter set keeps (all of §8.2's keep 3).
const MAX_HIST_LEN: usize = 3;

/// The NoteQuota algorithm with its ticks computed lazily from `now`, so an idle participant
/// costs no timer.
#[derive(Clone, Debug)]
pub struct NoteQuota {
    params: QuotaParams,
    points: u32,
    /// Points at the last ticks, most recent first; the first `hist_len()` entries count.
    history: [u32; MAX_HIST_LEN],
    /// Time of the last tick that has been applied.
    last_tick: Millis,
}

impl NoteQuota {
    pub fn new(params: QuotaParams, now: Millis) -> NoteQuota {
        let mut quota = NoteQuota { params, points: 0, history: [0; MAX_HIST_LEN], last_tick: now };
        quota.reset();
        quota
    }

    pub fn params(&self) -> QuotaParams {
        self.params
    }

    fn hist_len(&self) -> usize {
        self.params.max_hist_len.min(MAX_HIST_LEN)
    }

    fn reset(&mut self) {
        self.points = self.params.max;
        self.history = [self.params.max; MAX_HIST_LEN];
    }

    /// Changes the parameters; a change resets the points (§8.1 "set parameters").
    pub fn set_params(&mut self, params: QuotaParams) {
        if params != self.params {
            self.params = params;
            self.reset();
        }
    }

    fn tick(&mut self) {
        self.history.rotate_right(1);
        self.history[0] = self.points;
        if self.points < self.params.max {
            self.points = (self.points + self.params.allowance).min(self.params.max);
        }
    }

    fn catch_up(&mut self, now: Millis) {
        let due = now.since(self.last_tick) / TICK_MS;
        if due == 0 {
            return;
        }
        self.last_tick = self.last_tick.plus(due * TICK_MS);
        // After this many ticks every state has refilled to the reset state.
        let settle = u64::from(self.params.max / self.params.allowance.max(1)) + 1;
        if due > settle + self.hist_len() as u64 {
            self.reset();
        } else {
            for _ in 0..due {
                self.tick();
            }
        }
    }

    /// Spends `notes` points if the quota allows; otherwise changes nothing and refuses.
    pub fn spend(&mut self, now: Millis, notes: u32) -> bool {
        self.catch_up(now);
        let starved = self.history[..self.hist_len()].iter().map(|&p| u64::from(p)).sum::<u64>() == 0;
        let cost = if starved { u64::from(notes) * u64::from(self.params.allowance) } else { u64::from(notes) };
        if u64::from(self.points) < cost {
            return false;
        }
        self.points -= cost as u32;
        true
    }
}

/// At most `rate.count` events (or units) per window of `rate.per_ms`; a window starts with
/// the first event after the previous one ended. 16 bytes: every connection holds eight.
#[derive(Clone, Copy, Debug, Default)]
pub struct RateLimiter {
    /// Start of the current window; meaningful once `started`.
    window_start: Millis,
    /// Units used in the window (never above `rate.count`, a `u32`).
    used: u32,
    started: bool,
}

impl RateLimiter {
    /// Whether a window started and has not ended at `now` (an ended one counts for nothing).
    pub fn running(&self, now: Millis, rate: Rate) -> bool {
        self.started && self.window_start <= now && now < self.window_start.plus(rate.per_ms)
    }

    /// Records `amount` units at `now` if the window has room for them.
    pub fn allow(&mut self, now: Millis, rate: Rate, amount: u64) -> bool {
        let start = self.window_start;
        let expired = !self.started || now >= start.plus(rate.per_ms) || now < start;
        if expired {
            self.window_start = now;
            self.started = true;
            self.used = 0;
        }
        let used = u64::from(self.used) + amount;
        if used > u64::from(rate.count) {
            return false;
        }
        // At most `rate.count`, so it fits.
        self.used = u32::try_from(used).unwrap_or(u32::MAX);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Millis {
        Millis::from_ms(ms)
    }

    #[test]
    fn spends_down_to_zero_then_refuses() {
        let mut q = NoteQuota::new(PARAMS_NORMAL, at(0));
        assert!(q.spend(at(0), 1200));
        assert!(!q.spend(at(0), 1));
        // One tick later the allowance is back.
        assert!(q.spend(at(2_000), 400));
        assert!(!q.spend(at(2_000), 1));
    }

    #[test]
    fn refusal_changes_nothing() {
        let mut q = NoteQuota::new(PARAMS_LOBBY, at(0));
        assert!(q.spend(at(0), 590));
        assert!(!q.spend(at(0), 11));
        assert!(q.spend(at(0), 10));
    }

    #[test]
    fn starved_quota_charges_allowance_per_note() {
        let mut q = NoteQuota::new(PARAMS_LOBBY, at(0));
        // Points at zero when each of three ticks happens.
        assert!(q.spend(at(0), 600));
        assert!(q.spend(at(2_000), 200));
        assert!(q.spend(at(4_000), 200));
        // At 6000 the history holds three zeros: a note costs a whole allowance (200).
        assert!(!q.spend(at(6_000), 2));
        assert!(q.spend(at(6_000), 1));
        assert!(!q.spend(at(6_000), 1));
    }

    #[test]
    fn long_idle_refills_completely() {
        let mut q = NoteQuota::new(PARAMS_CROWNED, at(0));
        assert!(q.spend(at(0), 1800));
        assert!(q.spend(at(1u64 << 40), 1800));
    }

    #[test]
    fn new_params_reset_points() {
        let mut q = NoteQuota::new(PARAMS_NORMAL, at(0));
        assert!(q.spend(at(0), 1200));
        q.set_params(PARAMS_CROWNED);
        assert!(q.spend(at(0), 1800));
    }

    #[test]
    fn rate_limiter_windows() {
        let rate = Rate::new(4, 6_000);
        let mut r = RateLimiter::default();
        for _ in 0..4 {
            assert!(r.allow(at(1_000), rate, 1));
        }
        assert!(!r.allow(at(6_999), rate, 1));
        assert!(r.allow(at(7_000), rate, 1));
    }
}
