//! mppd: a Multiplayer Piano server.
//!
//! The crate has two halves (see README.md):
//! - [`core`]: the protocol state machine. Pure: inputs (each with `now`) in, outputs out.
//! - [`net`]: the shell. The only place with sockets, clocks and files.

pub mod config;
pub mod core;
pub mod net;
pub mod proto;
pub mod record;
pub mod store;

pub use crate::config::Config;
pub use crate::core::{ConnId, Core, Input, Output, PeerInfo};

/// This build's version, as recorded in recordings and reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
