//! The loop's part in a cluster (docs/cluster.md): what the relay (`net/relay.rs`) asks for is
//! carried out here, in order — inputs for the core, frames and closes for this node's clients,
//! names and bans other nodes stored — and the relay gets its turn, its news and its tick.

use super::EventLoop;
use crate::core::{ConnId, Input, Millis, Output};
use crate::net::relay::{Relay, Step};

impl EventLoop {
    /// Joins a cluster: sessions may run on other nodes, and other nodes' sessions here.
    pub(in crate::net) fn join_cluster(&mut self, relay: Relay) {
        self.cluster = Some(relay);
        let now = self.clock.now();
        self.apply_steps(now);
        self.route(now);
    }

    /// Handles what the NATS thread queued (called when its waker fires).
    pub(super) fn cluster_news(&mut self, now: Millis) {
        if let Some(relay) = self.cluster.as_mut() {
            relay.drain_news(now);
            self.apply_steps(now);
        }
    }

    /// A text frame from a client, when in a cluster: the relay decides which core it goes to.
    /// False when not in a cluster.
    pub(super) fn cluster_text(&mut self, key: usize, text: &str, now: Millis) -> bool {
        let Some(relay) = self.cluster.as_mut() else { return false };
        relay.client_text(key, text, now);
        self.apply_steps(now);
        true
    }

    /// The relay's once-a-second work (it knows when it is due).
    pub(super) fn cluster_tick(&mut self, now: Millis) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        if let Some(relay) = self.cluster.as_mut() {
            relay.tick(&self.core, now);
            self.apply_steps(now);
        }
    }

    /// Carries out what the relay asked for, in order.
    pub(super) fn apply_steps(&mut self, now: Millis) {
        loop {
            let Some(relay) = self.cluster.as_mut() else { return };
            let steps = relay.take_steps();
            if steps.is_empty() {
                return;
            }
            for step in steps {
                self.apply_step(now, step);
            }
        }
    }

    fn apply_step(&mut self, now: Millis, step: Step) {
        match step {
            Step::Open { conn, peer, hi } => {
                self.take_outputs();
                let first_new = self.outputs.len();
                self.feed(now, Input::Open { conn, peer });
                if let Some(hi) = hi {
                    self.feed(now, Input::Text { conn, text: &format!("[{hi}]") });
                }
                self.take_outputs();
                // The client already had `b` and the `hi` reply from the node it first reached.
                let new: Vec<Output> = self
                    .outputs
                    .drain(first_new..)
                    .filter(|o| !matches!(o, Output::Send { conn: c, .. } if *c == conn))
                    .collect();
                self.outputs.extend(new);
            }
            Step::Text { conn, text } => self.feed(now, Input::Text { conn, text: &text }),
            Step::Closed { conn } => {
                if self.core.is_open(conn) {
                    self.feed(now, Input::Closed { conn });
                }
            }
            Step::Deliver { key, frame, droppable } => {
                // Queued after what the core already said to this client; the event's one
                // `route` delivers both in order.
                self.take_outputs();
                self.outputs.push_back(Output::Send { conn: ConnId(key), frame, droppable });
            }
            Step::CloseClient { key, code, reason } => {
                self.route(now);
                self.close_ws(key, code, &reason, now, false);
            }
            Step::Restore(snapshot) => {
                if let Some(recorder) = self.recorder.as_mut() {
                    recorder.restore(now, &snapshot);
                }
                self.core.restore(snapshot);
            }
        }
    }

    /// Where a core output for `conn` goes when it is not a socket of this node: `None` when
    /// the relay took it.
    pub(super) fn cluster_output(&mut self, output: Output) -> Option<Output> {
        let Some(relay) = self.cluster.as_mut() else { return Some(output) };
        match output {
            Output::Send { conn, frame, droppable } if Relay::is_virtual(conn) => {
                relay.core_send(conn, frame, droppable);
                None
            }
            Output::Close { conn, code, reason } if Relay::is_virtual(conn) => {
                relay.core_close(conn, code, reason);
                None
            }
            Output::Close { conn, code, reason } => {
                relay.client_closed(conn.0);
                Some(Output::Close { conn, code, reason })
            }
            other => Some(other),
        }
    }
}
