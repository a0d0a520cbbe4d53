//! The settings of the protocol core, with the defaults a fresh install runs with. Everything
//! here can change what clients receive; a recording stores it, so a replay rebuilds the same
//! core. The shell's own settings (listening, buffers, proxies) live in the shell.

use serde::{Deserialize, Serialize};

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
    /// Secret mixed into the hash that turns an address into a user id (PROTOCOL.md §10). There
    /// is no built-in one: the server sets a configured or generated salt before it starts the
    /// core (empty only in tests that do not care).
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
            id_salt: String::new(),
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
