//! The shell's own deadlines (request head, upgrade, closing linger) in one min-heap.
//!
//! Entries are not removed when a connection moves on (a heap cannot remove from its middle);
//! such a stale entry, or one for a key that now belongs to another socket (see `Conn::serial`),
//! is dropped once it reaches the top, before the loop sleeps, so it never wakes the loop.

use crate::core::Millis;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Pending deadlines, each naming a slab key and the serial of the socket it was set for.
#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Millis, usize, u64)>>,
}

impl Timers {
    pub(super) fn push(&mut self, deadline: Millis, key: usize, serial: u64) {
        self.heap.push(Reverse((deadline, key, serial)));
    }

    /// The earliest deadline, if any.
    pub(super) fn next(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Drops entries from the top while `is_live(deadline, key, serial)` says they are stale.
    pub(super) fn discard_stale(&mut self, is_live: impl Fn(Millis, usize, u64) -> bool) {
        while let Some(Reverse((deadline, key, serial))) = self.heap.peek() {
            if is_live(*deadline, *key, *serial) {
                return;
            }
            self.heap.pop();
        }
    }

    /// Takes one entry that is due at `now`: `(deadline, key, serial)`.
    pub(super) fn pop_due(&mut self, now: Millis) -> Option<(Millis, usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((deadline, _, _))) if *deadline <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Timers;
    use crate::core::Millis;

    fn at(ms: u64) -> Millis {
        Millis::from_ms(ms)
    }

    #[test]
    fn due_entries_come_out_in_deadline_order() {
        let mut timers = Timers::default();
        timers.push(at(30), 1, 1);
        timers.push(at(10), 2, 2);
        timers.push(at(20), 3, 3);
        assert_eq!(timers.next(), Some(at(10)));
        assert_eq!(timers.pop_due(at(25)), Some((at(10), 2, 2)));
        assert_eq!(timers.pop_due(at(25)), Some((at(20), 3, 3)));
        assert_eq!(timers.pop_due(at(25)), None);
        assert_eq!(timers.next(), Some(at(30)));
    }

    #[test]
    fn stale_entries_at_the_top_are_discarded_up_to_the_first_live_one() {
        let mut timers = Timers::default();
        for (deadline, key) in [(10, 1), (20, 2), (30, 3), (40, 4)] {
            timers.push(at(deadline), key, 0);
        }
        // Keys 1, 2 and 4 moved on; 3 is still waiting.
        timers.discard_stale(|_, key, _| key == 3);
        assert_eq!(timers.next(), Some(at(30)), "the live entry is kept and what lies behind it too");
        assert_eq!(timers.pop_due(at(100)), Some((at(30), 3, 0)));
        assert_eq!(timers.pop_due(at(100)), Some((at(40), 4, 0)));
        timers.discard_stale(|_, _, _| false);
        assert_eq!(timers.next(), None);
    }
}
