//! mppd: a Multiplayer Piano server.
//!
//! The crate has two halves (see README.md):
//! - [`core`]: the protocol state machine, its own crate (`crates/mppd-core`). Pure: inputs
//!   (each with `now`) in, outputs out.
//! - [`net`]: the shell. The only place with sockets, clocks and files.

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod net;
pub mod record;
pub mod salt;
pub mod store;

/// The protocol state machine, its wire types and its configuration (the `mppd-core` crate).
pub use mppd_core as core;
pub use mppd_core::proto;

pub use crate::config::Config;
pub use crate::core::{ConnId, Core, Input, Millis, Output, PeerInfo};

/// This build's version, as recorded in recordings and reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
