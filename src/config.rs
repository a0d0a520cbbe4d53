//! Every tunable of the server in one struct, with the defaults a fresh install runs with.
//!
//! [`CoreConfig`] holds what the protocol state machine depends on (a recording stores it, so a
//! replay rebuilds the same core); [`Config`] adds what only the shell uses.

use crate::net::IpCidr;
use crate::record::AddressMode;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A sliding-window rate limit: at most `count` events per `per_ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub count: u32,
    pub per_ms: u64,
}

impl Rate {
    pub const fn new(count: u32, per_ms: u64) -> Self {
        Rate { count, per_ms }
    }
}

/// Settings of the protocol core. Everything here can change what clients receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoreConfig {
    /// Secret mixed into the hash that turns an address into a user id (PROTOCOL.md §10).
    pub id_salt: String,
    /// Seed of the core's random generator (chat ids, crown drop positions, random ids).
    pub seed: u64,
    /// Give every connection its own random user id instead of the address-derived one.
    pub random_ids: bool,
    /// Highest `customId` a `hi` may ask for (0 disables the feature; PROTOCOL.md §10).
    pub custom_id_limit: u32,
    /// No `t` (or no `hi`) for this long closes the connection with 4004 (§11).
    pub ping_timeout_ms: u64,
    /// Operator text sent in `hi.motd` (shown as HTML by the mppnet client).
    pub motd: Option<String>,
    /// Whether `userset` may change colours (the original server did not allow it).
    pub allow_color_change: bool,
    /// Participants per lobby before newcomers overflow to the next number (§3.5).
    pub lobby_capacity: usize,
    /// Chat messages kept per channel and sent in `c` (§9).
    pub chat_history: usize,
    /// Cursor moves of one participant are broadcast at most once per this interval (§5 `m`).
    pub cursor_interval_ms: u64,
    /// A dropped crown may be taken by anyone this long after it fell (§7).
    pub crown_pickup_ms: u64,
    /// Longest kickban; larger requests are clamped (§9).
    pub kickban_max_ms: u64,
    /// Connections one user may hold at once; the next is closed with 4009 (§8.3).
    pub max_connections_per_user: usize,
    /// Every participant gets the trusted note quota (8000 per 2 s, §8.2) instead of the
    /// lobby, normal-room and crown-holder ones: for private servers of bots and MIDI players.
    pub trusted_notes: bool,
    /// Message objects per connection before a close with 4007 (§8.3).
    pub connection_messages: Rate,
    /// Inbound text bytes per connection before a close with 4002 (§8.3).
    pub connection_bytes: Rate,
    /// Chat (`a` and `dm`) per participant (§8.3).
    pub chat_rate: Rate,
    /// Chat per participant while holding the crown.
    pub chat_rate_crowned: Rate,
    /// `ch` per connection.
    pub ch_rate: Rate,
    /// `chown` per connection.
    pub chown_rate: Rate,
    /// `kickban` and `unban` per connection.
    pub kickban_rate: Rate,
    /// `userset` per connection.
    pub userset_rate: Rate,
    /// `chset` per connection.
    pub chset_rate: Rate,
    /// Serialized bytes of `custom` data per connection.
    pub custom_bytes: Rate,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            id_salt: "mppd-default-salt-change-me".to_string(),
            seed: 0,
            random_ids: false,
            custom_id_limit: 0,
            ping_timeout_ms: 60_000,
            motd: None,
            allow_color_change: true,
            lobby_capacity: 20,
            chat_history: 32,
            cursor_interval_ms: 40,
            crown_pickup_ms: 15_000,
            kickban_max_ms: 3_600_000,
            max_connections_per_user: 5,
            trusted_notes: false,
            connection_messages: Rate::new(6_000, 10_000),
            connection_bytes: Rate::new(4 << 20, 10_000),
            chat_rate: Rate::new(4, 6_000),
            chat_rate_crowned: Rate::new(10, 2_000),
            ch_rate: Rate::new(1, 500),
            chown_rate: Rate::new(10, 5_000),
            kickban_rate: Rate::new(2, 1_000),
            userset_rate: Rate::new(30, 1_800_000),
            chset_rate: Rate::new(1, 1_000),
            custom_bytes: Rate::new(16_384, 10_000),
        }
    }
}

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
    /// Read buffer of a WebSocket connection, and the most read per system call. Client
    /// messages are small; a bigger frame grows the buffer of that connection only. It is most
    /// of what an idle connection costs (README "Performance").
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
    /// at the end of every loop turn). Fewer system calls for a little latency (README
    /// "Performance").
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
    /// Log level: error, warn, info, debug or trace.
    pub log_level: String,
    /// Write every core input (and optionally output) to this file (README "Recording").
    pub record: Option<PathBuf>,
    /// Also record the core's outputs, so `mppd replay --check` can compare them.
    pub record_output: bool,
    /// What a recording keeps of client addresses.
    pub record_addresses: AddressMode,
    /// Where names, colours and room bans are saved (`state.json`); `None` keeps them in memory.
    pub data_dir: Option<PathBuf>,
    /// How long after a change of the saved state it is written (changes meanwhile join it).
    pub save_delay_ms: u64,
    /// A web client's files, served for plain HTTP requests (README "Configuration").
    pub static_dir: Option<PathBuf>,
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
            record: None,
            record_output: false,
            record_addresses: AddressMode::Raw,
            data_dir: Some(PathBuf::from("data")),
            save_delay_ms: 2_000,
            static_dir: None,
        }
    }
}
