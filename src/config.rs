//! Every tunable of the server in one struct, with the defaults a fresh install runs with.
//!
//! [`CoreConfig`] holds what the protocol state machine depends on (a recording stores it, so a
//! replay rebuilds the same core; it lives in the core crate); [`Config`] adds what only the
//! shell uses.

pub use mppd_core::config::{CoreConfig, Rate};

use crate::net::IpCidr;
use crate::record::AddressMode;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole server configuration: the core's settings plus the shell's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub core: CoreConfig,
    /// Addresses to listen on; WebSocket upgrades are accepted on any path (§1).
    pub listen: Vec<SocketAddr>,
    /// A client must finish its HTTP request head within this time.
    pub handshake_timeout_ms: u64,
    /// Longest HTTP request head accepted.
    pub max_request_head_bytes: usize,
    /// Largest WebSocket frame or message; bigger ones close with 1009 (§1).
    pub max_message_bytes: usize,
    /// The most read from a WebSocket per system call, into a buffer that exists only while
    /// that input waits to be handled, so idle connections hold none (docs/performance.md).
    pub read_buffer_bytes: usize,
    /// Outgoing bytes gathered for one connection before they are written in one system call.
    pub write_buffer_bytes: usize,
    /// Outgoing bytes queued for one connection above which notes and cursor moves are dropped.
    pub send_queue_soft_bytes: usize,
    /// Outgoing bytes queued for one connection above which it is closed with 4003.
    pub send_queue_hard_bytes: usize,
    /// How long a closing connection may take to receive its last bytes and hang up.
    pub close_linger_ms: u64,
    /// How long an open WebSocket's output may wait to be written together with more (0: written
    /// at the end of every loop turn). Fewer system calls for a little latency
    /// (docs/performance.md).
    pub flush_delay_ms: u64,
    /// How long output may wait while the loop is busy: the delay grows from
    /// `flush_delay_ms` up to this under load and shrinks back when the load falls (0 or at most
    /// `flush_delay_ms`: fixed).
    pub max_flush_delay_ms: u64,
    /// Connections the kernel queues for accepting; a join storm needs thousands.
    pub listen_backlog: u32,
    /// Most sockets held at once, in any phase; past it a new one is answered `503` and closed
    /// at once. 0: no cap.
    pub max_connections: usize,
    /// Most connections still sending their request head; past it the oldest unfinished one is
    /// dropped for the newcomer, so slow heads cannot lock others out. 0: no cap.
    pub max_pending_handshakes: usize,
    /// WebSocket connections one client address may hold at once; past it `429`. 0: no cap.
    pub max_connections_per_ip: usize,
    /// New WebSocket connections per client address (a burst of `count`, then one every
    /// `per_ms / count` ms); past it `429`. A count of 0: no cap.
    pub connection_rate_per_ip: Rate,
    /// IPv6 clients are counted by this prefix for the per-IP caps (one host owns a /64).
    pub per_ip_ipv6_prefix: u8,
    /// Client addresses the per-IP caps never apply to (default: loopback, for local tools).
    pub per_ip_exempt: Vec<IpCidr>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (nginx realip, recursive).
    pub trusted_proxies: Vec<IpCidr>,
    /// `Origin`s allowed to open a WebSocket; others get `403`. Empty allows every origin;
    /// a request without `Origin` (bots) is always allowed.
    pub allowed_origins: Vec<String>,
    /// Frames read from one connection per loop turn before the others get their turn.
    pub read_budget_frames: usize,
    /// Log level: off, error, warn, info, debug or trace, or per module as in `RUST_LOG`
    /// (`info,mppd::net=debug`).
    pub log_level: String,
    /// Log line format: `text` or `json` (one JSON object per line).
    pub log_format: String,
    /// Write every core input (and optionally output) to this file (docs/recording.md).
    pub record: Option<PathBuf>,
    /// Also record the core's outputs, so `mppd replay --check` can compare them.
    pub record_output: bool,
    /// What a recording keeps of client addresses.
    pub record_addresses: AddressMode,
    /// Where names, colours and room bans are saved (`state.json`); `None` keeps them in memory.
    pub data_dir: Option<PathBuf>,
    /// How long after a change of the saved state it is written (changes meanwhile join it).
    pub save_delay_ms: u64,
    /// A web client's files, served for plain HTTP requests (docs/options.md).
    pub static_dir: Option<PathBuf>,
    /// Serve the built-in web client at `/` and room paths when there is no `static_dir`.
    pub web_client: bool,
    /// The NATS server of a cluster of nodes (docs/cluster.md); `None`: this server runs alone.
    pub nats: Option<String>,
    /// This node's name in the cluster (letters, digits, `-`, `_`); needed with `nats`.
    pub node: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            core: CoreConfig::default(),
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 8080))],
            handshake_timeout_ms: 10_000,
            max_request_head_bytes: 8 * 1024,
            max_message_bytes: 1 << 20,
            read_buffer_bytes: 512,
            write_buffer_bytes: 16 * 1024,
            send_queue_soft_bytes: 256 * 1024,
            send_queue_hard_bytes: 1024 * 1024,
            close_linger_ms: 2_000,
            flush_delay_ms: 0,
            max_flush_delay_ms: 2,
            listen_backlog: 4096,
            max_connections: 20_000,
            max_pending_handshakes: 16_384,
            max_connections_per_ip: 10,
            connection_rate_per_ip: Rate::new(20, 10_000),
            per_ip_ipv6_prefix: 64,
            per_ip_exempt: vec![IpCidr::LOOPBACK_V4, IpCidr::LOOPBACK_V6],
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            read_budget_frames: 8,
            log_level: "info".to_string(),
            log_format: "text".to_string(),
            record: None,
            record_output: false,
            record_addresses: AddressMode::Raw,
            data_dir: Some(PathBuf::from("data")),
            save_delay_ms: 2_000,
            static_dir: None,
            web_client: true,
            nats: None,
            node: None,
        }
    }
}
