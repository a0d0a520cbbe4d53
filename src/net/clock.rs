//! The shell's clock: [`Millis`] since the Unix epoch that never go backwards.
//!
//! The wall clock is read once at start; after that only the monotonic clock advances it, so a
//! system clock step cannot reorder the core's timers.

use crate::core::Millis;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic milliseconds since the Unix epoch.
pub(super) struct Clock {
    start_ms: u64,
    start: Instant,
}

impl Clock {
    pub(super) fn new() -> Clock {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock { start_ms, start: Instant::now() }
    }

    /// The current time for the core and for the shell's own deadlines.
    pub(super) fn now(&self) -> Millis {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Millis::from_ms(self.start_ms).plus(elapsed)
    }

    /// Monotonic microseconds since the server started, for the shell's finer timing.
    pub(super) fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}
