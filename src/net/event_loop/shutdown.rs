//! Ending things: closing a socket now, freeing slab entries at the end of the turn, and the
//! shutdown that closes every connection when the process is asked to stop.

use super::EventLoop;
use crate::core::Millis;
use crate::net::conn::Phase;
use log::{debug, info};

/// Longest time shutdown waits for clients to take their close frames, so that the process
/// exits within a second of SIGTERM whatever `close_linger_ms` says.
const SHUTDOWN_LINGER_MAX_MS: u64 = 750;

/// The close code of a server going away (PROTOCOL.md §11).
const CLOSE_SERVER_CLOSING: u16 = 4000;

impl EventLoop {
    pub(super) fn begin_shutdown(&mut self, now: Millis) {
        info!("shutting down: closing {} connections", self.conns.len());
        let c = self.counters();
        info!(
            "since start: {} accepted, HTTP answers {:?}, closes {:?}, {} frames dropped for slow readers, \
             {} heads evicted; per-IP tables hold {:?} entries",
            c.accepted,
            c.http_responses,
            c.closes,
            c.frames_dropped,
            c.handshakes_evicted,
            self.admission.table_sizes()
        );
        self.shutdown_deadline = Some(now.plus(self.config.close_linger_ms.min(SHUTDOWN_LINGER_MAX_MS)));
        self.accept_paused_until = None;
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            match self.conns.get(key).map(|c| &c.phase) {
                Some(Phase::Open(_)) => {
                    self.close_ws(key, CLOSE_SERVER_CLOSING, "Server closing.", now, false);
                }
                Some(Phase::Head { .. } | Phase::Upgrading(_)) => self.drop_conn(key),
                _ => {}
            }
        }
    }

    /// Closes the socket now; the slab entry is freed at the end of the turn.
    pub(super) fn drop_conn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if let Some(ip_key) = conn.ip_key.take() {
            self.admission.release(ip_key);
        }
        if matches!(conn.phase, Phase::Head { .. }) {
            self.pending_heads -= 1;
        }
        if let Some(source) = conn.phase.source() {
            let _ = self.poll.registry().deregister(source);
        }
        if matches!(conn.phase, Phase::Closing(_)) {
            debug!("conn {key}: {} closed", conn.peer);
        }
        conn.phase = Phase::Gone;
        self.gone.push(key);
    }

    pub(super) fn free_gone(&mut self, now: Millis) {
        if self.gone.is_empty() {
            return;
        }
        for key in self.gone.drain(..) {
            if self.conns.get(key).is_some_and(|c| matches!(c.phase, Phase::Gone)) {
                self.conns.remove(key);
            }
        }
        // A freed descriptor may be what a paused accept was waiting for.
        if self.accept_paused_until.is_some() && self.shutdown_deadline.is_none() {
            self.resume_accepting(now);
            self.route(now);
        }
    }
}
