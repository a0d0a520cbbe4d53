//! The loop's deadlines: request heads, upgrades and closing lingers (the shell's timer heap),
//! paused accepting, and the core's own timers.

use super::EventLoop;
use crate::core::{Input, Millis};
use crate::net::conn::Phase;
use crate::net::head::request_timeout;
use log::debug;

impl EventLoop {
    /// Drops the timer entries of connections that moved on, so they do not wake the loop.
    pub(super) fn discard_stale_timers(&mut self) {
        let conns = &self.conns;
        self.timers
            .discard_stale(|deadline, key, serial| conns.get(key).is_some_and(|conn| conn.awaits(deadline, serial)));
    }

    pub(super) fn set_deadline(&mut self, key: usize, deadline: Millis) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.deadline = Some(deadline);
            self.timers.push(deadline, key, conn.serial);
        }
    }

    pub(super) fn run_timers(&mut self, now: Millis) {
        if let Some(at) = self.accept_paused_until
            && at <= now
            && self.shutdown_deadline.is_none()
        {
            self.resume_accepting(now);
        }
        while let Some((deadline, key, serial)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get(key) else { continue };
            if !conn.awaits(deadline, serial) {
                continue;
            }
            match conn.phase {
                Phase::Head { .. } => self.answer_http(key, request_timeout(), now),
                Phase::Upgrading(_) | Phase::Closing(_) => {
                    debug!("conn {key}: {} too slow to take its last bytes", conn.peer);
                    self.drop_conn(key);
                }
                Phase::Open(_) | Phase::Gone => {}
            }
        }
        if self.shutdown_deadline.is_none() && self.core.next_deadline().is_some_and(|at| at <= now) {
            self.feed(now, Input::Tick);
        }
        #[cfg(feature = "cluster")]
        self.cluster_tick(now);
        self.route(now);
    }
}
