//! When the shell saves the core's persistent state: a configured delay after the first change
//! (later changes join that save), and once more when the event loop ends. The writing itself
//! happens on the [`Saver`] thread.

use crate::core::{Core, Millis};
use crate::store::{SaveStatus, Saver};

/// The event loop's side of saving.
pub(super) struct Persistence {
    saver: Saver,
    delay_ms: u64,
    /// The core's persist generation at the last save.
    saved: u64,
    /// When the pending change is saved, if one is pending.
    due: Option<Millis>,
    /// The last save was done (a second `finish` does nothing).
    finished: bool,
}

impl Persistence {
    /// Starts from a core whose current state is already on disk (just restored).
    pub(super) fn new(saver: Saver, delay_ms: u64, core: &Core) -> Persistence {
        Persistence { saver, delay_ms, saved: core.persist_generation(), due: None, finished: false }
    }

    /// Called after every loop turn: schedules a save after a change, and saves when due.
    pub(super) fn after_turn(&mut self, core: &Core, now: Millis) {
        if core.persist_generation() == self.saved {
            return;
        }
        let due = *self.due.get_or_insert(now.plus(self.delay_ms));
        if now >= due {
            self.save(core, now);
        }
    }

    /// When the loop must wake up to save.
    pub(super) fn deadline(&self) -> Option<Millis> {
        self.due
    }

    /// Saves any unsaved change and waits until it is on disk; why it is not, if it is not.
    pub(super) fn finish(&mut self, core: &Core, now: Millis) -> Result<(), String> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        if core.persist_generation() != self.saved {
            self.save(core, now);
        }
        self.saver.finish()
    }

    /// How saving goes (for `/health` and `/metrics`).
    pub(super) fn status(&self) -> SaveStatus {
        self.saver.status()
    }

    fn save(&mut self, core: &Core, now: Millis) {
        self.saver.submit(core.snapshot(now), now.as_ms());
        self.saved = core.persist_generation();
        self.due = None;
    }
}
