//! What nodes send each other (docs/cluster.md, "Messages between nodes"). Room traffic carries
//! the clients' and the core's own JSON frames unchanged inside a small envelope, so a node's
//! recording holds the same frames a single node would have seen.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One NATS message on `mppd.node.<receiver>`: the items one node had for another during one
/// loop turn, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The sending node's name.
    pub node: String,
    /// The sending process's incarnation (random at start): a restarted node is a new peer.
    pub inc: u64,
    pub items: Vec<Item>,
}

/// One step of a relayed session. `c` names the session by the serial its client connection
/// has on the node holding the socket (the "origin"); the node running its room is its "home".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum Item {
    /// Origin → home: the session moves in. `hi` is the client's `hi` message, replayed so the
    /// home's core knows the same user; its reply is not sent to the client again.
    /// `room` is the room the client asked for, which the home now runs.
    Open { c: u64, ip: IpAddr, hi: Option<String>, room: Option<String> },
    /// Origin → home: a text frame from the client.
    Text { c: u64, t: String },
    /// Origin → home: the client went away, or the session moved elsewhere.
    Closed { c: u64 },
    /// Home → origin: this frame for each of these sessions (one copy for a broadcast); `d`:
    /// it may be skipped for a reader that is far behind (notes, cursors).
    Send {
        c: Vec<u64>,
        f: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        d: bool,
    },
    /// Home → origin: close the client's socket with this code and reason.
    Close { c: u64, code: u16, reason: String },
    /// Home → origin: the home no longer runs this session's room (or never knew the session);
    /// the origin looks the room's owner up again.
    Moved { c: u64 },
}

/// What every node publishes on `mppd.nodes` once a second: that it is alive, and the channel
/// list entries (PROTOCOL.md §6 `ls`) of the visible rooms its core runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    pub inc: u64,
    pub rooms: Vec<serde_json::Value>,
}

/// A site-wide record of a room ban (`mppd_bans` bucket).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub channel: String,
    pub user: String,
    pub until: u64,
    /// The node that wrote it: a node skips its own records when they come back.
    pub by: String,
}

/// A site-wide name and colour (`mppd_profiles` bucket, key = user id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRecord {
    pub name: String,
    pub color: String,
    pub by: String,
}
