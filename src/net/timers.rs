//! The shell's own deadlines (request head, upgrade, closing linger) in one min-heap.
//!
//! Entries are never removed early: a connection that moved on, or a key that now belongs to
//! another socket, is recognised when the entry comes due (see `Conn::serial`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Pending deadlines, each naming a slab key and the serial of the socket it was set for.
#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(u64, usize, u64)>>,
}

impl Timers {
    pub(super) fn push(&mut self, deadline: u64, key: usize, serial: u64) {
        self.heap.push(Reverse((deadline, key, serial)));
    }

    /// The earliest deadline, if any.
    pub(super) fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Takes one entry that is due at `now`: `(deadline, key, serial)`.
    pub(super) fn pop_due(&mut self, now: u64) -> Option<(u64, usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((deadline, _, _))) if *deadline <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Timers;

    #[test]
    fn due_entries_come_out_in_deadline_order() {
        let mut timers = Timers::default();
        timers.push(30, 1, 1);
        timers.push(10, 2, 2);
        timers.push(20, 3, 3);
        assert_eq!(timers.next(), Some(10));
        assert_eq!(timers.pop_due(25), Some((10, 2, 2)));
        assert_eq!(timers.pop_due(25), Some((20, 3, 3)));
        assert_eq!(timers.pop_due(25), None);
        assert_eq!(timers.next(), Some(30));
    }
}
