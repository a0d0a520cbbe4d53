//! Command line and environment → [`Config`]. Flags win over environment variables, which win
//! over the defaults. Every option `--some-name` also reads `MPPD_SOME_NAME`.

use crate::logging::Filter;
use mppd::Config;
use mppd::config::Rate;
use mppd::net::IpCidr;
use mppd::salt::{self, SaltSource};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    /// Print the version and exit.
    Version,
    /// Print the effective configuration (salt redacted) and exit.
    PrintConfig(Box<Config>),
    /// Run with this configuration; `seed_given` is false when the seed must be chosen at random.
    Run {
        config: Box<Config>,
        seed_given: bool,
    },
}

/// How an option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--name VALUE`
    Value(&'static str),
    /// `--name` alone turns it on; the environment variable takes `true`/`false`.
    Switch,
}

struct Opt {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    default: fn(&Config) -> String,
    set: fn(&mut Config, &str) -> Result<(), String>,
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value.trim().parse().map_err(|_| format!("expected a non-negative integer, got {value:?}"))
}

/// A rate written `COUNT/MS`: at most COUNT per window of MS milliseconds.
fn rate(value: &str) -> Result<Rate, String> {
    let (count, per_ms) = value.split_once('/').ok_or_else(|| format!("expected COUNT/MS, got {value:?}"))?;
    let rate = Rate::new(number(count)?, number(per_ms)?);
    if rate.per_ms == 0 {
        return Err(format!("the window of {value:?} must be at least 1 ms"));
    }
    Ok(rate)
}

fn rate_text(rate: Rate) -> String {
    format!("{}/{}", rate.count, rate.per_ms)
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

fn address(value: &str) -> Result<SocketAddr, String> {
    value.trim().parse().map_err(|_| format!("expected an address like 0.0.0.0:8080, got {value:?}"))
}

/// Every option, in the order `--help` lists them.
const OPTIONS: &[Opt] = &[
    Opt {
        name: "listen",
        kind: Kind::Value("ADDR"),
        help: "Address to listen on; repeat for several (env: comma separated; \
               WS_PORT=N means 0.0.0.0:N)",
        default: |c| c.listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        set: |c, v| {
            c.listen = v.split(',').filter(|a| !a.trim().is_empty()).map(address).collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Opt {
        name: "salt",
        kind: Kind::Value("SECRET"),
        help: "Secret mixed into user ids (default: made at the first start and kept in the data \
               directory; random per process without one). Set it only to keep another \
               installation's ids",
        default: |_| "none".to_string(),
        set: |c, v| {
            c.core.id_salt = v.to_string();
            Ok(())
        },
    },
    Opt {
        name: "seed",
        kind: Kind::Value("N"),
        help: "Seed of the server's random generator",
        default: |_| "random at startup".to_string(),
        set: |c, v| {
            c.core.seed = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "random-ids",
        kind: Kind::Switch,
        help: "Give every connection its own random user id (testing)",
        default: |c| c.core.random_ids.to_string(),
        set: |c, v| {
            c.core.random_ids = boolean(v)?;
            Ok(())
        },
    },
    Opt {
        name: "custom-id-limit",
        kind: Kind::Value("N"),
        help: "Highest \"customId\" a \"hi\" may ask for, giving one address several user ids \
               (testing; 0: off)",
        default: |c| c.core.custom_id_limit.to_string(),
        set: |c, v| {
            c.core.custom_id_limit = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "ping-timeout-ms",
        kind: Kind::Value("MS"),
        help: "Close a connection that sends no \"t\" (or no \"hi\") for this long",
        default: |c| c.core.ping_timeout_ms.to_string(),
        set: |c, v| {
            c.core.ping_timeout_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "motd",
        kind: Kind::Value("TEXT"),
        help: "Message of the day sent in \"hi\" (empty: none)",
        default: |c| c.core.motd.clone().unwrap_or_else(|| "none".to_string()),
        set: |c, v| {
            c.core.motd = (!v.is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    Opt {
        name: "lobby-capacity",
        kind: Kind::Value("N"),
        help: "Participants per lobby before newcomers go to the next number (PROTOCOL.md §3.5)",
        default: |c| c.core.lobby_capacity.to_string(),
        set: |c, v| {
            c.core.lobby_capacity = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "chat-history",
        kind: Kind::Value("N"),
        help: "Chat messages kept per room and sent on join",
        default: |c| c.core.chat_history.to_string(),
        set: |c, v| {
            c.core.chat_history = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "cursor-interval-ms",
        kind: Kind::Value("MS"),
        help: "A participant's cursor is broadcast at most once per this interval",
        default: |c| c.core.cursor_interval_ms.to_string(),
        set: |c, v| {
            c.core.cursor_interval_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "crown-pickup-ms",
        kind: Kind::Value("MS"),
        help: "A dropped crown may be taken by anyone this long after it fell",
        default: |c| c.core.crown_pickup_ms.to_string(),
        set: |c, v| {
            c.core.crown_pickup_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "kickban-max-ms",
        kind: Kind::Value("MS"),
        help: "Longest kickban; longer requests are clamped",
        default: |c| c.core.kickban_max_ms.to_string(),
        set: |c, v| {
            c.core.kickban_max_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "max-connections-per-user",
        kind: Kind::Value("N"),
        help: "Connections one user may hold; the next is closed with 4009",
        default: |c| c.core.max_connections_per_user.to_string(),
        set: |c, v| {
            c.core.max_connections_per_user = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "allow-color-change",
        kind: Kind::Value("BOOL"),
        help: "Whether userset may change colours",
        default: |c| c.core.allow_color_change.to_string(),
        set: |c, v| {
            c.core.allow_color_change = boolean(v)?;
            Ok(())
        },
    },
    Opt {
        name: "trusted-notes",
        kind: Kind::Switch,
        help: "Give every participant the trusted note quota (8000 notes per 2 s) instead of the \
               lobby, room and crown-holder quotas",
        default: |c| c.core.trusted_notes.to_string(),
        set: |c, v| {
            c.core.trusted_notes = boolean(v)?;
            Ok(())
        },
    },
    Opt {
        name: "connection-messages",
        kind: Kind::Value("N/MS"),
        help: "Messages per connection before a close with 4007",
        default: |c| rate_text(c.core.connection_messages),
        set: |c, v| {
            c.core.connection_messages = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "connection-bytes",
        kind: Kind::Value("N/MS"),
        help: "Inbound bytes per connection before a close with 4002",
        default: |c| rate_text(c.core.connection_bytes),
        set: |c, v| {
            c.core.connection_bytes = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "chat-rate",
        kind: Kind::Value("N/MS"),
        help: "Chat messages (a and dm) per participant; more are dropped silently",
        default: |c| rate_text(c.core.chat_rate),
        set: |c, v| {
            c.core.chat_rate = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "chat-rate-crowned",
        kind: Kind::Value("N/MS"),
        help: "Chat messages per participant holding the crown; more are dropped silently",
        default: |c| rate_text(c.core.chat_rate_crowned),
        set: |c, v| {
            c.core.chat_rate_crowned = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "ch-rate",
        kind: Kind::Value("N/MS"),
        help: "Room changes (ch) per connection; more are dropped silently",
        default: |c| rate_text(c.core.ch_rate),
        set: |c, v| {
            c.core.ch_rate = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "chown-rate",
        kind: Kind::Value("N/MS"),
        help: "Crown moves (chown) per connection; more are dropped silently",
        default: |c| rate_text(c.core.chown_rate),
        set: |c, v| {
            c.core.chown_rate = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "kickban-rate",
        kind: Kind::Value("N/MS"),
        help: "kickban and unban per connection; more are dropped silently",
        default: |c| rate_text(c.core.kickban_rate),
        set: |c, v| {
            c.core.kickban_rate = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "userset-rate",
        kind: Kind::Value("N/MS"),
        help: "Name and colour changes (userset) per connection; more are dropped silently",
        default: |c| rate_text(c.core.userset_rate),
        set: |c, v| {
            c.core.userset_rate = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "chset-rate",
        kind: Kind::Value("N/MS"),
        help: "Room setting changes (chset) per connection; more are dropped silently",
        default: |c| rate_text(c.core.chset_rate),
        set: |c, v| {
            c.core.chset_rate = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "custom-bytes",
        kind: Kind::Value("N/MS"),
        help: "Bytes of custom data per connection; more are dropped silently",
        default: |c| rate_text(c.core.custom_bytes),
        set: |c, v| {
            c.core.custom_bytes = rate(v)?;
            Ok(())
        },
    },
    Opt {
        name: "handshake-timeout-ms",
        kind: Kind::Value("MS"),
        help: "Time a client has to send its HTTP request head",
        default: |c| c.handshake_timeout_ms.to_string(),
        set: |c, v| {
            c.handshake_timeout_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "max-request-head-bytes",
        kind: Kind::Value("N"),
        help: "Longest HTTP request head accepted",
        default: |c| c.max_request_head_bytes.to_string(),
        set: |c, v| {
            c.max_request_head_bytes = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "max-message-bytes",
        kind: Kind::Value("N"),
        help: "Largest WebSocket frame or message; bigger ones close with 1009",
        default: |c| c.max_message_bytes.to_string(),
        set: |c, v| {
            c.max_message_bytes = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "read-buffer-bytes",
        kind: Kind::Value("N"),
        help: "The most read from a WebSocket per system call (a buffer held only while input waits)",
        default: |c| c.read_buffer_bytes.to_string(),
        set: |c, v| {
            c.read_buffer_bytes = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "write-buffer-bytes",
        kind: Kind::Value("N"),
        help: "Outgoing bytes gathered per connection into one write",
        default: |c| c.write_buffer_bytes.to_string(),
        set: |c, v| {
            c.write_buffer_bytes = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "send-queue-soft-bytes",
        kind: Kind::Value("N"),
        help: "Unsent bytes above which notes and cursor moves are dropped for a connection",
        default: |c| c.send_queue_soft_bytes.to_string(),
        set: |c, v| {
            c.send_queue_soft_bytes = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "send-queue-hard-bytes",
        kind: Kind::Value("N"),
        help: "Unsent bytes above which a connection is closed with 4003",
        default: |c| c.send_queue_hard_bytes.to_string(),
        set: |c, v| {
            c.send_queue_hard_bytes = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "close-linger-ms",
        kind: Kind::Value("MS"),
        help: "Time a closing connection gets to take its last bytes and hang up",
        default: |c| c.close_linger_ms.to_string(),
        set: |c, v| {
            c.close_linger_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "flush-delay-ms",
        kind: Kind::Value("MS"),
        help: "How long a connection's output may wait to be written together with more (0: every loop turn)",
        default: |c| c.flush_delay_ms.to_string(),
        set: |c, v| {
            c.flush_delay_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "max-flush-delay-ms",
        kind: Kind::Value("MS"),
        help: "How long output may wait while the server is busy: the delay grows up to this under load \
               and returns to --flush-delay-ms when the load falls (0: no adaptation)",
        default: |c| c.max_flush_delay_ms.to_string(),
        set: |c, v| {
            c.max_flush_delay_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "listen-backlog",
        kind: Kind::Value("N"),
        help: "Connections the kernel queues before they are accepted (capped by net.core.somaxconn)",
        default: |c| c.listen_backlog.to_string(),
        set: |c, v| {
            c.listen_backlog = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "max-connections",
        kind: Kind::Value("N"),
        help: "Most connections held at once; more are answered 503 at once (0: no cap)",
        default: |c| c.max_connections.to_string(),
        set: |c, v| {
            c.max_connections = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "max-pending-handshakes",
        kind: Kind::Value("N"),
        help: "Most connections still sending their request head; past it the oldest is dropped \
               (0: no cap)",
        default: |c| c.max_pending_handshakes.to_string(),
        set: |c, v| {
            c.max_pending_handshakes = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "max-connections-per-ip",
        kind: Kind::Value("N"),
        help: "WebSocket connections one client address may hold; more get 429 (0: no cap)",
        default: |c| c.max_connections_per_ip.to_string(),
        set: |c, v| {
            c.max_connections_per_ip = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "connection-rate-per-ip",
        kind: Kind::Value("N"),
        help: "New WebSocket connections per client address per window; more get 429 (0: no cap)",
        default: |c| c.connection_rate_per_ip.count.to_string(),
        set: |c, v| {
            c.connection_rate_per_ip.count = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "connection-rate-window-ms",
        kind: Kind::Value("MS"),
        help: "The window of --connection-rate-per-ip",
        default: |c| c.connection_rate_per_ip.per_ms.to_string(),
        set: |c, v| {
            c.connection_rate_per_ip.per_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "per-ip-ipv6-prefix",
        kind: Kind::Value("BITS"),
        help: "IPv6 clients count against the per-IP caps by this prefix",
        default: |c| c.per_ip_ipv6_prefix.to_string(),
        set: |c, v| {
            let bits: u8 = number(v)?;
            if bits > 128 {
                return Err(format!("expected at most 128 bits, got {bits}"));
            }
            c.per_ip_ipv6_prefix = bits;
            Ok(())
        },
    },
    Opt {
        name: "per-ip-exempt",
        kind: Kind::Value("CIDR"),
        help: "Client addresses the per-IP caps do not apply to; repeat for several (env: comma \
               separated; empty: none)",
        default: |c| cidr_list(&c.per_ip_exempt),
        set: |c, v| {
            c.per_ip_exempt = cidrs(v)?;
            Ok(())
        },
    },
    Opt {
        name: "trusted-proxy",
        kind: Kind::Value("CIDR"),
        help: "Reverse proxy whose X-Forwarded-For gives the client address; repeat for several \
               (env: comma separated)",
        default: |c| cidr_list(&c.trusted_proxies),
        set: |c, v| {
            c.trusted_proxies = cidrs(v)?;
            Ok(())
        },
    },
    Opt {
        name: "allowed-origin",
        kind: Kind::Value("ORIGIN"),
        help: "Origin allowed to open a WebSocket, e.g. https://example.com; others get 403; \
               repeat for several (env: comma separated; none: all allowed)",
        default: |c| if c.allowed_origins.is_empty() { "any".to_string() } else { c.allowed_origins.join(",") },
        set: |c, v| {
            c.allowed_origins = v.split(',').map(str::trim).filter(|o| !o.is_empty()).map(String::from).collect();
            Ok(())
        },
    },
    Opt {
        name: "read-budget-frames",
        kind: Kind::Value("N"),
        help: "Frames read from one connection per loop turn before the others get their turn",
        default: |c| c.read_budget_frames.to_string(),
        set: |c, v| {
            c.read_budget_frames = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "record",
        kind: Kind::Value("FILE"),
        help: "Record every input of the protocol core to FILE (replay with `mppd replay FILE`)",
        default: |c| c.record.as_ref().map_or("none".to_string(), |p| p.display().to_string()),
        set: |c, v| {
            c.record = Some(v.into());
            Ok(())
        },
    },
    Opt {
        name: "record-output",
        kind: Kind::Switch,
        help: "Also record the outputs, for `mppd replay --check`",
        default: |c| c.record_output.to_string(),
        set: |c, v| {
            c.record_output = boolean(v)?;
            Ok(())
        },
    },
    Opt {
        name: "record-addresses",
        kind: Kind::Value("MODE"),
        help: "raw (addresses and salt, replays exactly) or pseudonymous (safe to share)",
        default: |c| format!("{:?}", c.record_addresses).to_lowercase(),
        set: |c, v| {
            c.record_addresses = v.trim().parse()?;
            Ok(())
        },
    },
    Opt {
        name: "data-dir",
        kind: Kind::Value("DIR"),
        help: "Where names, colours and room bans are saved (state.json); empty: keep them in memory only",
        default: |c| c.data_dir.as_ref().map_or("none".to_string(), |p| p.display().to_string()),
        set: |c, v| {
            c.data_dir = (!v.is_empty()).then(|| v.into());
            Ok(())
        },
    },
    Opt {
        name: "save-delay-ms",
        kind: Kind::Value("MS"),
        help: "Time from a change of names, colours or bans to its save (and at shutdown)",
        default: |c| c.save_delay_ms.to_string(),
        set: |c, v| {
            c.save_delay_ms = number(v)?;
            Ok(())
        },
    },
    Opt {
        name: "static",
        kind: Kind::Value("DIR"),
        help: "Serve a web client's files from DIR (index.html for / and for room paths) instead \
               of the built-in client",
        default: |c| c.static_dir.as_ref().map_or("none".to_string(), |p| p.display().to_string()),
        set: |c, v| {
            c.static_dir = (!v.is_empty()).then(|| v.into());
            Ok(())
        },
    },
    Opt {
        name: "no-web-client",
        kind: Kind::Switch,
        help: "Do not serve the built-in web client: without --static, plain requests other \
               than /health and /metrics get 400",
        default: |c| (!c.web_client).to_string(),
        set: |c, v| {
            c.web_client = !boolean(v)?;
            Ok(())
        },
    },
    Opt {
        name: "nats",
        kind: Kind::Value("URL"),
        help: "Serve one site with other nodes through this NATS server (nats://HOST:4222; \
               docs/cluster.md); empty: run alone",
        default: |c| c.nats.clone().unwrap_or_else(|| "none".to_string()),
        set: |c, v| {
            c.nats = (!v.trim().is_empty()).then(|| v.trim().to_string());
            Ok(())
        },
    },
    Opt {
        name: "node",
        kind: Kind::Value("NAME"),
        help: "This node's name in the cluster, unique in the site (letters, digits, - and _)",
        default: |c| c.node.clone().unwrap_or_else(|| "none".to_string()),
        set: |c, v| {
            let v = v.trim();
            let valid =
                |v: &str| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid(v) {
                return Err(format!("expected letters, digits, - and _ (at most 64), got {v:?}"));
            }
            c.node = (!v.is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    Opt {
        name: "log-level",
        kind: Kind::Value("LEVEL"),
        help: "off, error, warn, info, debug or trace, or per module as in RUST_LOG \
               (info,mppd::net=debug); env also RUST_LOG and LOG_LEVEL",
        default: |c| c.log_level.clone(),
        set: |c, v| {
            let level = v.trim().to_ascii_lowercase();
            Filter::parse(&level)?;
            c.log_level = level;
            Ok(())
        },
    },
    Opt {
        name: "log-format",
        kind: Kind::Value("FORMAT"),
        help: "text, or json: one JSON object per line (ts, level, target, msg)",
        default: |c| c.log_format.clone(),
        set: |c, v| {
            let format = v.trim().to_ascii_lowercase();
            if format != "text" && format != "json" {
                return Err(format!("expected text or json, got {v:?}"));
            }
            c.log_format = format;
            Ok(())
        },
    },
];

/// Options that may be given several times; the flags together replace the environment's list.
const REPEATABLE: [&str; 3] = ["per-ip-exempt", "trusted-proxy", "allowed-origin"];

/// A comma-separated list of networks (empty entries are skipped).
fn cidrs(value: &str) -> Result<Vec<IpCidr>, String> {
    value.split(',').filter(|n| !n.trim().is_empty()).map(str::parse).collect()
}

fn cidr_list(list: &[IpCidr]) -> String {
    if list.is_empty() {
        return "none".to_string();
    }
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn env_name(name: &str) -> String {
    format!("MPPD_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// The `--help` text.
pub fn usage() -> String {
    let defaults = Config::default();
    let mut text = String::from(
        "mppd: a Multiplayer Piano server\n\n\
         Usage: mppd [OPTIONS]\n\n\
         Every option --some-name can also be set with the environment variable MPPD_SOME_NAME;\n\
         flags win over the environment.\n\nOptions:\n",
    );
    for opt in OPTIONS {
        let head = match opt.kind {
            Kind::Value(metavar) => format!("--{} {metavar}", opt.name),
            Kind::Switch => format!("--{}", opt.name),
        };
        let _ = writeln!(text, "  {head:<30} {}", opt.help);
        let _ = writeln!(text, "  {:<30} [default: {}] [env: {}]", "", (opt.default)(&defaults), env_name(opt.name));
    }
    let _ =
        writeln!(text, "  {:<30} Print the effective configuration as JSON (salt redacted) and exit", "--print-config");
    let _ = writeln!(text, "  {:<30} Print this help", "--help");
    let _ = writeln!(text, "  {:<30} Print the version and exit", "--version");
    text.push_str(
        "\nCommands:\n  mppd replay FILE [--check]     Replay a recording made with --record\n  \
         mppd health [ADDR]             Exit 0 when the server at ADDR answers /health with 200\n",
    );
    text
}

/// Builds the configuration from `args` (without the program name) and an environment lookup.
pub fn parse(args: impl IntoIterator<Item = String>, env: impl Fn(&str) -> Option<String>) -> Result<Command, String> {
    let mut config = Config::default();
    let mut seed_given = false;
    if let Some(port) = env("WS_PORT") {
        let port: u16 = number(&port).map_err(|e| format!("WS_PORT: {e}"))?;
        config.listen = vec![SocketAddr::from(([0, 0, 0, 0], port))];
    }
    // Weakest first: LOG_LEVEL, then RUST_LOG, then MPPD_LOG_LEVEL and --log-level below.
    for var in ["LOG_LEVEL", "RUST_LOG"] {
        if let Some(level) = env(var) {
            set(&mut config, "log-level", &level).map_err(|e| format!("{var}: {e}"))?;
        }
    }
    for opt in OPTIONS {
        let var = env_name(opt.name);
        if let Some(value) = env(&var) {
            (opt.set)(&mut config, &value).map_err(|e| format!("{var}: {e}"))?;
            seed_given |= opt.name == "seed";
        }
    }

    let mut listen_flags: Vec<SocketAddr> = Vec::new();
    let mut repeated: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut print_config = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        if arg == "--version" || arg == "-V" {
            return Ok(Command::Version);
        }
        if arg == "--print-config" {
            print_config = true;
            continue;
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        let Some(opt) = OPTIONS.iter().find(|o| o.name == name) else {
            return Err(format!("unknown option --{name}"));
        };
        let value = match (opt.kind, inline) {
            (_, Some(value)) => value,
            (Kind::Switch, None) => "true".to_string(),
            (Kind::Value(_), None) => args.next().ok_or_else(|| format!("--{name} needs a value"))?,
        };
        if REPEATABLE.contains(&opt.name) {
            match repeated.iter_mut().find(|(name, _)| *name == opt.name) {
                Some((_, values)) => values.push(value),
                None => repeated.push((opt.name, vec![value])),
            }
            continue;
        }
        if opt.name == "listen" {
            listen_flags.push(address(&value).map_err(|e| format!("--listen: {e}"))?);
            continue;
        }
        (opt.set)(&mut config, &value).map_err(|e| format!("--{name}: {e}"))?;
        seed_given |= opt.name == "seed";
    }
    for (name, values) in repeated {
        set(&mut config, name, &values.join(",")).map_err(|e| format!("--{name}: {e}"))?;
    }
    if !listen_flags.is_empty() {
        config.listen = listen_flags;
    }
    if config.listen.is_empty() {
        return Err("no listen address".to_string());
    }
    if print_config {
        return Ok(Command::PrintConfig(Box::new(config)));
    }
    Ok(Command::Run { config: Box::new(config), seed_given })
}

/// The configuration as pretty JSON, with the salt replaced (it is a secret) and where it comes
/// from added as `id_salt_source`.
pub fn effective_config(config: &Config) -> String {
    let mut shown = config.clone();
    let source = salt::describe(&config.core.id_salt, config.data_dir.as_deref());
    shown.core.id_salt = match source {
        SaltSource::Configured => "<redacted>".to_string(),
        _ => String::new(),
    };
    // Plain data with string keys: serializing cannot fail.
    let mut value = serde_json::to_value(&shown).unwrap_or_default();
    value["id_salt_source"] = source.to_string().into();
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

fn set(config: &mut Config, name: &str, value: &str) -> Result<(), String> {
    match OPTIONS.iter().find(|o| o.name == name) {
        Some(opt) => (opt.set)(config, value),
        None => Err(format!("unknown option --{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<(Config, bool), String> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        match parse(args.iter().map(|a| a.to_string()), |k| env.get(k).cloned())? {
            Command::Run { config, seed_given } => Ok((*config, seed_given)),
            Command::Help => Err("help".to_string()),
            Command::Version => Err("version".to_string()),
            Command::PrintConfig(_) => Err("print-config".to_string()),
        }
    }

    #[test]
    fn persistence_and_static_options() {
        let (config, _) =
            run(&["--data-dir", "/var/lib/mppd", "--save-delay-ms", "50", "--static", "web"], &[]).unwrap();
        assert_eq!(config.data_dir, Some("/var/lib/mppd".into()));
        assert_eq!(config.save_delay_ms, 50);
        assert_eq!(config.static_dir, Some("web".into()));
        let (config, _) = run(&[], &[("MPPD_DATA_DIR", ""), ("MPPD_STATIC", "/srv/mpp")]).unwrap();
        assert_eq!(config.data_dir, None);
        assert_eq!(config.static_dir, Some("/srv/mpp".into()));
        assert!(config.web_client, "the built-in client is on by default");
        assert!(!run(&["--no-web-client"], &[]).unwrap().0.web_client);
        assert!(!run(&[], &[("MPPD_NO_WEB_CLIENT", "1")]).unwrap().0.web_client);
    }

    #[test]
    fn print_config_redacts_the_salt() {
        let parsed = parse(["--salt", "hush", "--print-config"].map(String::from), |_| None).unwrap();
        let Command::PrintConfig(config) = parsed else { panic!("expected print-config") };
        let text = effective_config(&config);
        assert!(!text.contains("hush"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["data_dir"], "data");
        assert_eq!(value["id_salt_source"], "configured (--salt or MPPD_SALT)");
        let parsed = parse(["--data-dir", "", "--print-config"].map(String::from), |_| None).unwrap();
        let Command::PrintConfig(config) = parsed else { panic!("expected print-config") };
        let value: serde_json::Value = serde_json::from_str(&effective_config(&config)).unwrap();
        assert!(value["id_salt_source"].as_str().unwrap().starts_with("random for this process"), "{value}");
        assert_eq!(value["core"]["id_salt"], "");
    }

    #[test]
    fn defaults_without_arguments() {
        let (config, seed_given) = run(&[], &[]).unwrap();
        assert_eq!(config, Config::default());
        assert!(!seed_given);
    }

    #[test]
    fn listen_flags_repeat_and_win_over_the_environment() {
        let (config, _) = run(
            &["--listen", "127.0.0.1:1", "--listen=127.0.0.1:2"],
            &[("MPPD_LISTEN", "127.0.0.1:3"), ("WS_PORT", "4")],
        )
        .unwrap();
        let want: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap()];
        assert_eq!(config.listen, want);
    }

    #[test]
    fn listen_from_the_environment() {
        let (config, _) = run(&[], &[("WS_PORT", "9000")]).unwrap();
        assert_eq!(config.listen, vec!["0.0.0.0:9000".parse::<SocketAddr>().unwrap()]);
        let (config, _) = run(&[], &[("WS_PORT", "9000"), ("MPPD_LISTEN", "127.0.0.1:1, [::1]:2")]).unwrap();
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.listen[1], "[::1]:2".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn core_options_and_switches() {
        let (config, seed_given) =
            run(&["--salt", "s", "--seed", "7", "--random-ids", "--ping-timeout-ms", "500", "--motd", "hey"], &[])
                .unwrap();
        assert_eq!(config.core.id_salt, "s");
        assert_eq!(config.core.seed, 7);
        assert!(seed_given);
        assert!(config.core.random_ids);
        assert_eq!(config.core.ping_timeout_ms, 500);
        assert_eq!(config.core.motd.as_deref(), Some("hey"));
        let (config, _) = run(&["--custom-id-limit", "8"], &[]).unwrap();
        assert_eq!(config.core.custom_id_limit, 8);
        let (config, _) = run(&[], &[("MPPD_RANDOM_IDS", "1"), ("MPPD_SALT", "e")]).unwrap();
        assert!(config.core.random_ids);
        assert_eq!(config.core.id_salt, "e");
    }

    #[test]
    fn log_level_from_flag_or_environment() {
        assert_eq!(run(&[], &[("LOG_LEVEL", "debug")]).unwrap().0.log_level, "debug");
        let (config, _) = run(&["--log-level", "WARN"], &[("LOG_LEVEL", "debug")]).unwrap();
        assert_eq!(config.log_level, "warn");
        assert!(run(&["--log-level", "loud"], &[]).is_err());
        // RUST_LOG, with per-module levels, over LOG_LEVEL; MPPD_LOG_LEVEL and the flag over both.
        let env = [("LOG_LEVEL", "debug"), ("RUST_LOG", "warn,mppd::net=trace")];
        assert_eq!(run(&[], &env).unwrap().0.log_level, "warn,mppd::net=trace");
        assert_eq!(run(&[], &[env[0], env[1], ("MPPD_LOG_LEVEL", "error")]).unwrap().0.log_level, "error");
        assert_eq!(run(&["--log-level", "info"], &env).unwrap().0.log_level, "info");
        assert!(run(&[], &[("RUST_LOG", "mppd=loud")]).is_err());
        assert_eq!(run(&["--log-format", "JSON"], &[]).unwrap().0.log_format, "json");
        assert!(run(&["--log-format", "xml"], &[]).is_err());
    }

    #[test]
    fn protocol_limits_from_flags_and_environment() {
        let (config, _) = run(
            &["--chat-rate", "10/1000", "--lobby-capacity", "5", "--allow-color-change", "false"],
            &[("MPPD_CH_RATE", "2/500"), ("MPPD_KICKBAN_MAX_MS", "60000")],
        )
        .unwrap();
        assert_eq!(config.core.chat_rate, Rate::new(10, 1000));
        assert_eq!(config.core.ch_rate, Rate::new(2, 500));
        assert_eq!(config.core.lobby_capacity, 5);
        assert_eq!(config.core.kickban_max_ms, 60_000);
        assert!(!config.core.allow_color_change);
        for bad in ["5", "5/0", "a/5", "5/b"] {
            assert!(run(&["--chat-rate", bad], &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(run(&["--bogus"], &[]).is_err());
        assert!(run(&["--seed"], &[]).is_err());
        assert!(run(&["--seed", "x"], &[]).is_err());
        assert!(run(&["positional"], &[]).is_err());
        assert!(run(&[], &[("MPPD_MAX_MESSAGE_BYTES", "big")]).is_err());
        assert_eq!(run(&["--help"], &[]).unwrap_err(), "help");
        assert_eq!(run(&["--listen", "127.0.0.1:1", "--version"], &[]).unwrap_err(), "version");
    }

    #[test]
    fn limits_proxies_and_origins() {
        let (config, _) = run(
            &[
                "--trusted-proxy",
                "10.0.0.0/8",
                "--trusted-proxy=::1",
                "--allowed-origin",
                "https://a.example",
                "--max-connections-per-ip",
                "3",
                "--connection-rate-per-ip",
                "4",
                "--connection-rate-window-ms",
                "1000",
                "--max-connections",
                "7",
                "--max-pending-handshakes",
                "8",
                "--read-budget-frames",
                "9",
                "--per-ip-ipv6-prefix",
                "56",
            ],
            &[("MPPD_TRUSTED_PROXY", "192.168.0.1"), ("MPPD_ALLOWED_ORIGIN", "https://b.example, https://c.example")],
        )
        .unwrap();
        let proxies: Vec<String> = config.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128"], "flags replace the environment's list");
        assert_eq!(config.allowed_origins, ["https://a.example"]);
        assert_eq!(config.max_connections_per_ip, 3);
        assert_eq!(config.connection_rate_per_ip, mppd::config::Rate::new(4, 1000));
        assert_eq!((config.max_connections, config.max_pending_handshakes, config.read_budget_frames), (7, 8, 9));
        assert_eq!(config.per_ip_ipv6_prefix, 56);
        assert_eq!(config.per_ip_exempt.len(), 2, "loopback by default");

        let (config, _) = run(
            &[],
            &[
                ("MPPD_TRUSTED_PROXY", "192.168.0.1, fd00::/8"),
                ("MPPD_ALLOWED_ORIGIN", "https://b.example, https://c.example"),
                ("MPPD_PER_IP_EXEMPT", ""),
            ],
        )
        .unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.allowed_origins, ["https://b.example", "https://c.example"]);
        assert!(config.per_ip_exempt.is_empty());
        assert!(run(&["--trusted-proxy", "proxy.example"], &[]).is_err());
        assert!(run(&["--per-ip-ipv6-prefix", "129"], &[]).is_err());
    }

    #[test]
    fn help_lists_every_option_with_its_default() {
        let text = usage();
        for opt in OPTIONS {
            assert!(text.contains(&format!("--{}", opt.name)), "{}", opt.name);
            assert!(text.contains(&env_name(opt.name)), "{}", opt.name);
        }
        assert!(text.contains("[default: 0.0.0.0:8080]"));
    }
}
