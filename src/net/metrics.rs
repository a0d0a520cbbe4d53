//! `/health` and `/metrics`: what the event loop measures itself ([`LoopStats`]: frames and
//! bytes through open WebSockets, loop turn times) plus the core's and the shell's counters,
//! rendered as JSON and in the Prometheus text format (version 0.0.4).

use super::counters::ShellCounters;
use crate::core::{Counters, Stats};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Upper bounds of the loop turn histogram, in seconds.
const TURN_BUCKETS: [f64; 12] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/// Measurements the event loop takes as it goes.
pub(super) struct LoopStats {
    started: Instant,
    /// Text frames queued to open WebSockets.
    pub(super) frames_out: u64,
    /// Payload bytes of text frames received.
    pub(super) bytes_in: u64,
    /// Payload bytes of text frames queued.
    pub(super) bytes_out: u64,
    /// Per bucket of [`TURN_BUCKETS`] (not cumulative), then one for longer turns.
    turn_counts: [u64; TURN_BUCKETS.len() + 1],
    turn_sum: Duration,
}

impl LoopStats {
    pub(super) fn new() -> LoopStats {
        LoopStats {
            started: Instant::now(),
            frames_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            turn_counts: [0; TURN_BUCKETS.len() + 1],
            turn_sum: Duration::ZERO,
        }
    }

    /// Records how long one loop turn worked (from the end of its poll to its end).
    pub(super) fn turn(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = TURN_BUCKETS.iter().position(|le| secs <= *le).unwrap_or(TURN_BUCKETS.len());
        self.turn_counts[bucket] += 1;
        self.turn_sum += took;
    }

    fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// Everything a report is made of, borrowed from the event loop.
pub(super) struct Sources<'a> {
    pub(super) stats: Stats,
    pub(super) core: &'a Counters,
    pub(super) shell: &'a ShellCounters,
    pub(super) loop_stats: &'a LoopStats,
    /// Sockets in any phase (request head, WebSocket, closing).
    pub(super) sockets: usize,
    /// How long output may wait now (see `pacing.rs`).
    pub(super) flush_delay_us: u64,
}

/// The `/health` body.
pub(super) fn health_json(s: &Sources<'_>) -> String {
    serde_json::json!({
        "status": "ok",
        "uptime_s": s.loop_stats.uptime_s(),
        "connections": s.stats.connections,
        "rooms": s.stats.channels,
        "participants": s.stats.participants,
        "version": crate::VERSION,
    })
    .to_string()
}

/// The `/metrics` body.
pub(super) fn prometheus(s: &Sources<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let l = s.loop_stats;
    let c = s.shell;
    gauge(&mut out, "mppd_uptime_seconds", "Seconds since the server started.", l.uptime_s());
    gauge(&mut out, "mppd_connections_open", "Open WebSocket connections.", s.stats.connections);
    gauge(&mut out, "mppd_sockets_open", "Sockets in any phase: request head, WebSocket, closing.", s.sockets);
    counter(&mut out, "mppd_connections_total", "Sockets accepted since start.", c.accepted);
    gauge(&mut out, "mppd_rooms", "Rooms that exist.", s.stats.channels);
    gauge(&mut out, "mppd_participants", "Participants over all rooms.", s.stats.participants);
    gauge(&mut out, "mppd_users", "Identified users with at least one connection.", s.stats.users);
    header(&mut out, "mppd_messages_in_total", "counter", "Messages received, by type.");
    for (kind, n) in &s.core.messages_in {
        let _ = writeln!(out, "mppd_messages_in_total{{type=\"{kind}\"}} {n}");
    }
    counter(
        &mut out,
        "mppd_frames_out_total",
        "Text frames queued to clients (each holds one or more messages).",
        l.frames_out,
    );
    counter(&mut out, "mppd_bytes_in_total", "Payload bytes of text frames received.", l.bytes_in);
    counter(&mut out, "mppd_bytes_out_total", "Payload bytes of text frames queued to clients.", l.bytes_out);
    counter(&mut out, "mppd_notes_over_quota_total", "Notes dropped by the note quota.", s.core.notes_over_quota);
    counter(&mut out, "mppd_rate_limited_total", "Messages dropped by a rate limit.", s.core.rate_limited);
    counter(&mut out, "mppd_malformed_total", "Frames and elements that were not valid messages.", s.core.malformed);
    counter(
        &mut out,
        "mppd_frames_dropped_total",
        "Notes and cursor moves skipped for slow readers.",
        c.frames_dropped,
    );
    header(&mut out, "mppd_refusals_total", "counter", "Connections refused before the upgrade, by reason.");
    for (reason, n) in [
        ("origin", c.refused_origin),
        ("per_ip_concurrent", c.refused_per_ip_concurrent),
        ("per_ip_rate", c.refused_per_ip_rate),
        ("max_connections", c.refused_max_connections),
        ("handshake_evicted", c.handshakes_evicted),
    ] {
        let _ = writeln!(out, "mppd_refusals_total{{reason=\"{reason}\"}} {n}");
    }
    header(&mut out, "mppd_closes_total", "counter", "WebSocket closes sent by the server, by close code.");
    for (code, n) in &c.closes {
        let _ = writeln!(out, "mppd_closes_total{{code=\"{code}\"}} {n}");
    }
    header(&mut out, "mppd_http_responses_total", "counter", "Plain HTTP responses, by status.");
    for (status, n) in &c.http_responses {
        let _ = writeln!(out, "mppd_http_responses_total{{status=\"{status}\"}} {n}");
    }
    counter(
        &mut out,
        "mppd_read_budget_exhausted_total",
        "Reads cut short to let other connections in.",
        c.read_budget_exhausted,
    );
    gauge(
        &mut out,
        "mppd_flush_delay_seconds",
        "How long output may wait to be written with more, now (grows while the server is busy).",
        s.flush_delay_us as f64 / 1e6,
    );
    header(&mut out, "mppd_loop_turn_seconds", "histogram", "Time the event loop worked per turn (waiting excluded).");
    let mut cumulative = 0;
    for (le, n) in TURN_BUCKETS.iter().zip(&l.turn_counts) {
        cumulative += n;
        let _ = writeln!(out, "mppd_loop_turn_seconds_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += l.turn_counts[TURN_BUCKETS.len()];
    let _ = writeln!(out, "mppd_loop_turn_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "mppd_loop_turn_seconds_sum {}", l.turn_sum.as_secs_f64());
    let _ = writeln!(out, "mppd_loop_turn_seconds_count {cumulative}");
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut l = LoopStats::new();
        l.turn(Duration::from_micros(10));
        l.turn(Duration::from_millis(3));
        l.turn(Duration::from_secs(1));
        let core = Counters::default();
        let shell = ShellCounters::default();
        let text = prometheus(&Sources {
            stats: Stats::default(),
            core: &core,
            shell: &shell,
            loop_stats: &l,
            sockets: 0,
            flush_delay_us: 250,
        });
        assert!(text.contains("mppd_loop_turn_seconds_bucket{le=\"0.00005\"} 1\n"), "{text}");
        assert!(text.contains("mppd_loop_turn_seconds_bucket{le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("mppd_loop_turn_seconds_bucket{le=\"0.25\"} 2\n"), "{text}");
        assert!(text.contains("mppd_loop_turn_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("mppd_loop_turn_seconds_count 3\n"), "{text}");
        assert!(text.contains("mppd_flush_delay_seconds 0.00025\n"), "{text}");
    }
}
