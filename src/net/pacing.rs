//! How long a connection's output may wait before it is written, adapted to the loop's load.
//!
//! A write into a TCP socket costs the kernel about the same whether it carries one small frame
//! or twenty, and under fan-out that cost is most of the server's CPU time. Waiting a little lets
//! one write carry the frames of several loop turns. That wait is pure latency while the server
//! has time to spare, so it is only taken while the loop is busy: over each window, when the loop
//! worked for at least [`BUSY_HIGH_PERCENT`] of the wall time the delay doubles (starting at
//! [`STEP_US`], up to the ceiling); at or below [`BUSY_LOW_PERCENT`] it halves back towards the
//! floor. A lightly loaded server writes every turn; a saturated one gathers more per write, so
//! its capacity grows instead of its queues.

/// Wall time over which the loop's busy share is measured.
const WINDOW_US: u64 = 50_000;
/// The first delay above zero.
const STEP_US: u64 = 250;
/// Busy share (percent of the window) at or above which the delay grows.
const BUSY_HIGH_PERCENT: u64 = 85;
/// Busy share at or below which the delay shrinks.
const BUSY_LOW_PERCENT: u64 = 40;

/// The current flush delay and the window it is measured over. Times are microseconds on the
/// shell's monotonic clock.
#[derive(Debug)]
pub(super) struct FlushPacing {
    floor_us: u64,
    ceiling_us: u64,
    current_us: u64,
    window_start_us: u64,
    busy_us: u64,
}

impl FlushPacing {
    /// A delay of at least `floor_ms` (`--flush-delay-ms`) and, under load, up to `ceiling_ms`
    /// (`--max-flush-delay-ms`; at or below the floor, the delay is fixed).
    pub(super) fn new(floor_ms: u64, ceiling_ms: u64) -> FlushPacing {
        let floor_us = floor_ms.saturating_mul(1000);
        FlushPacing {
            floor_us,
            ceiling_us: ceiling_ms.saturating_mul(1000).max(floor_us),
            current_us: floor_us,
            window_start_us: 0,
            busy_us: 0,
        }
    }

    /// How long output may wait now.
    pub(super) fn delay_us(&self) -> u64 {
        self.current_us
    }

    /// Accounts one loop turn that ended at `now_us` after working for `busy_us`, and adjusts the
    /// delay at the end of each window. Called with `busy_us` 0 when the loop wakes, so that the
    /// time it slept counts before the turn decides what to write.
    pub(super) fn after_turn(&mut self, now_us: u64, busy_us: u64) {
        self.busy_us = self.busy_us.saturating_add(busy_us);
        let elapsed = now_us.saturating_sub(self.window_start_us);
        if elapsed < WINDOW_US {
            return;
        }
        let busy_percent = self.busy_us.saturating_mul(100) / elapsed;
        if busy_percent >= BUSY_HIGH_PERCENT {
            self.current_us = self.current_us.saturating_mul(2).max(STEP_US).min(self.ceiling_us);
        } else if busy_percent <= BUSY_LOW_PERCENT {
            // A quiet stretch of several windows (the loop slept) counts as that many windows.
            for _ in 0..(elapsed / WINDOW_US).min(32) {
                let half = self.current_us / 2;
                self.current_us = if half < STEP_US { self.floor_us } else { half.max(self.floor_us) };
            }
        }
        self.window_start_us = now_us;
        self.busy_us = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `windows` windows in which the loop works `percent` of the time.
    fn load(p: &mut FlushPacing, now: &mut u64, windows: u32, percent: u64) {
        for _ in 0..windows {
            *now += WINDOW_US;
            p.after_turn(*now, WINDOW_US * percent / 100);
        }
    }

    #[test]
    fn an_idle_or_lightly_loaded_loop_writes_every_turn() {
        let mut p = FlushPacing::new(0, 2);
        let mut now = 0;
        load(&mut p, &mut now, 10, 0);
        assert_eq!(p.delay_us(), 0);
        load(&mut p, &mut now, 10, 80);
        assert_eq!(p.delay_us(), 0, "below the high mark nothing changes");
    }

    #[test]
    fn a_busy_loop_doubles_the_delay_up_to_the_ceiling() {
        let mut p = FlushPacing::new(0, 2);
        let mut now = 0;
        let mut seen = Vec::new();
        for _ in 0..6 {
            load(&mut p, &mut now, 1, 90);
            seen.push(p.delay_us());
        }
        assert_eq!(seen, [250, 500, 1000, 2000, 2000, 2000]);
    }

    #[test]
    fn the_delay_holds_between_the_marks_and_halves_back_to_the_floor() {
        let mut p = FlushPacing::new(0, 2);
        let mut now = 0;
        load(&mut p, &mut now, 3, 100);
        assert_eq!(p.delay_us(), 1000);
        load(&mut p, &mut now, 5, 50);
        assert_eq!(p.delay_us(), 1000, "a moderate load keeps the delay that made it moderate");
        let mut seen = Vec::new();
        for _ in 0..4 {
            load(&mut p, &mut now, 1, 10);
            seen.push(p.delay_us());
        }
        assert_eq!(seen, [500, 250, 0, 0]);
    }

    #[test]
    fn the_configured_delay_is_a_floor_and_a_low_ceiling_fixes_it() {
        let mut p = FlushPacing::new(1, 4);
        let mut now = 0;
        assert_eq!(p.delay_us(), 1000);
        load(&mut p, &mut now, 10, 100);
        assert_eq!(p.delay_us(), 4000);
        load(&mut p, &mut now, 10, 0);
        assert_eq!(p.delay_us(), 1000);

        let mut fixed = FlushPacing::new(2, 0);
        load(&mut fixed, &mut now, 10, 100);
        assert_eq!(fixed.delay_us(), 2000);
        let mut off = FlushPacing::new(0, 0);
        load(&mut off, &mut now, 10, 100);
        assert_eq!(off.delay_us(), 0);
    }

    #[test]
    fn turns_are_summed_over_the_window_and_a_long_pause_counts_as_idle() {
        let mut p = FlushPacing::new(0, 2);
        // Many short turns: 45 µs of work every 50 µs is 90 % busy.
        let mut now = 0;
        for _ in 0..1000 {
            now += 50;
            p.after_turn(now, 45);
        }
        assert_eq!(p.delay_us(), 250);
        // Ten idle seconds then one short turn: the window is mostly idle.
        now += 10_000_000;
        p.after_turn(now, 100);
        assert_eq!(p.delay_us(), 0);
    }

    #[test]
    fn waking_after_a_pause_drops_the_delay_at_once() {
        let mut p = FlushPacing::new(0, 2);
        let mut now = 0;
        load(&mut p, &mut now, 4, 100);
        assert_eq!(p.delay_us(), 2000);
        // The loop slept for 300 ms; on waking, before its turn writes anything:
        now += 300_000;
        p.after_turn(now, 0);
        assert_eq!(p.delay_us(), 0, "six quiet windows halve the delay six times");
    }
}
