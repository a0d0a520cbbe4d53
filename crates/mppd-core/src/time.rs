//! The core's notion of time: [`Millis`], milliseconds since the Unix epoch, handed in with
//! every input. The core never reads a clock; every deadline it keeps and reports is a `Millis`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time: milliseconds since the Unix epoch (the unit of PROTOCOL.md's timestamps).
/// Serialized as the plain number, so recordings, saved state and the wire keep their format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(u64);

impl Millis {
    /// The epoch itself.
    pub const ZERO: Millis = Millis(0);

    pub const fn from_ms(ms: u64) -> Millis {
        Millis(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_ms(self) -> u64 {
        self.0
    }

    /// This time plus `ms` milliseconds, saturating at the end of time.
    #[must_use]
    pub const fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to this time; 0 if `earlier` is not earlier.
    pub const fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Millis;

    #[test]
    fn arithmetic_saturates() {
        let t = Millis::from_ms(1_000);
        assert_eq!(t.plus(500).as_ms(), 1_500);
        assert_eq!(Millis::from_ms(u64::MAX).plus(1).as_ms(), u64::MAX);
        assert_eq!(t.plus(500).since(t), 500);
        assert_eq!(t.since(t.plus(500)), 0);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1000");
    }
}
