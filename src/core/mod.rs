//! The protocol state machine. It owns every registry (connections, users, channels) and never
//! does I/O: no sockets, no clock, no randomness except its own seeded generator.
//!
//! Driving it: call [`Core::handle`] with `now` (ms since the Unix epoch) and an [`Input`], then
//! take the [`Output`]s with [`Core::drain_outputs`], and call `handle(now, Input::Tick)` no later
//! than [`Core::next_deadline`].

use crate::config::CoreConfig;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::rc::Rc;

/// A connection's id, chosen by the shell (its slab key). Reused only after `Closed` or a `Close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnId(pub usize);

/// What the shell knows about a new connection's peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The client's address: the socket peer, or the forwarded address from a trusted proxy.
    pub ip: IpAddr,
}

/// Everything that can happen to the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input<'a> {
    /// A WebSocket finished its handshake.
    Open { conn: ConnId, peer: PeerInfo },
    /// A text frame arrived.
    Text { conn: ConnId, text: &'a str },
    /// The peer went away (or the shell closed it). Never sent after an `Output::Close`.
    Closed { conn: ConnId },
    /// Time passed; due timers run.
    Tick,
}

/// Everything the core asks the shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send this text frame. The same `Rc` is shared by every recipient of a broadcast.
    /// `droppable` frames (notes, cursor moves) may be skipped for a reader that is far behind.
    Send { conn: ConnId, frame: Rc<str>, droppable: bool },
    /// Close the connection with this code and reason. The core has already forgotten it.
    Close { conn: ConnId, code: u16, reason: String },
}

/// Counts for health and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub connections: usize,
    pub users: usize,
    pub channels: usize,
    pub participants: usize,
}

/// The state machine. See the module documentation for how to drive it.
pub struct Core {
    config: CoreConfig,
    outputs: Vec<Output>,
}

impl Core {
    pub fn new(config: CoreConfig) -> Core {
        Core { config, outputs: Vec::new() }
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Feed one input at time `now`; its outputs are queued for [`Core::drain_outputs`].
    pub fn handle(&mut self, now: u64, input: Input<'_>) {
        let _ = (now, input);
    }

    /// Take every queued output, in order.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// When the next `Tick` is due, if any timer is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        None
    }

    pub fn stats(&self) -> Stats {
        Stats::default()
    }
}
