//! `/health` and `/metrics`: what the event loop measures itself ([`LoopStats`]: frames and
//! bytes through open WebSockets, loop turn times) plus the core's and the shell's counters,
//! rendered as JSON and in the Prometheus text format (version 0.0.4).

use super::counters::ShellCounters;
use super::process::ProcessStats;
use crate::core::{Counters, Stats};
use crate::store::SaveStatus;
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
    /// The most sockets held at once (0: no cap).
    pub(super) max_connections: usize,
    /// How saving the state goes; `None` without a data directory.
    pub(super) save: Option<SaveStatus>,
}

/// The `/health` status code and body: `200` and `"status":"ok"`, or `503` and
/// `"status":"degraded"` with the reason while the last attempt to save the state failed.
pub(super) fn health(s: &Sources<'_>) -> (u16, String) {
    let reason = s.save.as_ref().and_then(|save| save.error.clone());
    let mut body = serde_json::json!({
        "status": if reason.is_some() { "degraded" } else { "ok" },
        "uptime_s": s.loop_stats.uptime_s(),
        "connections": s.stats.connections,
        "rooms": s.stats.channels,
        "participants": s.stats.participants,
        "version": crate::VERSION,
    });
    let status = match reason {
        Some(reason) => {
            body["reason"] = reason.into();
            503
        }
        None => 200,
    };
    (status, body.to_string())
}

/// The `/metrics` body.
pub(super) fn prometheus(s: &Sources<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let l = s.loop_stats;
    let c = s.shell;
    process_metrics(&mut out, &ProcessStats::read());
    header(&mut out, "mppd_build_info", "gauge", "Always 1; the version of the running build as a label.");
    let _ = writeln!(out, "mppd_build_info{{version=\"{}\"}} 1", crate::VERSION);
    gauge(&mut out, "mppd_uptime_seconds", "Seconds since the server started.", l.uptime_s());
    gauge(&mut out, "mppd_connections_open", "Open WebSocket connections.", s.stats.connections);
    counter(&mut out, "mppd_connections_total", "WebSocket connections opened since start.", c.websockets_opened);
    gauge(&mut out, "mppd_sockets_open", "Sockets in any phase: request head, WebSocket, closing.", s.sockets);
    counter(
        &mut out,
        "mppd_sockets_accepted_total",
        "Sockets accepted since start (WebSocket or plain HTTP).",
        c.accepted,
    );
    gauge(
        &mut out,
        "mppd_max_connections",
        "Most sockets held at once (--max-connections; 0: no cap).",
        s.max_connections,
    );
    counter(
        &mut out,
        "mppd_http_requests_total",
        "Plain HTTP requests (not WebSocket upgrades): /health, /metrics, files, bad requests.",
        c.http_requests,
    );
    gauge(&mut out, "mppd_rooms", "Rooms that exist.", s.stats.channels);
    gauge(&mut out, "mppd_participants", "Participants over all rooms.", s.stats.participants);
    gauge(&mut out, "mppd_users", "Identified users with at least one connection.", s.stats.users);
    header(&mut out, "mppd_messages_in_total", "counter", "Messages received, by type.");
    for (kind, n) in s.core.messages_in() {
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
    if let Some(save) = &s.save {
        counter(
            &mut out,
            "mppd_state_save_failures_total",
            "Failed attempts to save the state (retries included).",
            save.failures,
        );
        gauge(
            &mut out,
            "mppd_state_last_save_timestamp_seconds",
            "When the state was last saved, in seconds since the Unix epoch (0: not yet).",
            save.last_success_unix_s.unwrap_or(0.0),
        );
        gauge(
            &mut out,
            "mppd_state_save_failing",
            "1 while the last attempt to save the state failed.",
            u8::from(save.error.is_some()),
        );
    }
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

/// The process metrics every Prometheus client library exports, under the same names.
fn process_metrics(out: &mut String, p: &ProcessStats) {
    if let Some(bytes) = p.resident_bytes {
        gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", bytes);
    }
    if let Some(seconds) = p.cpu_seconds {
        header(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        let _ = writeln!(out, "process_cpu_seconds_total {seconds}");
    }
    if let Some(fds) = p.open_fds {
        gauge(out, "process_open_fds", "Number of open file descriptors.", fds);
    }
    if let Some(fds) = p.max_fds {
        gauge(out, "process_max_fds", "Maximum number of open file descriptors.", fds);
    }
    if let Some(start) = p.start_time_seconds {
        gauge(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", start);
    }
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
            max_connections: 7,
            save: Some(SaveStatus { failures: 3, last_success_unix_s: Some(12.5), error: None }),
        });
        assert!(text.contains("mppd_loop_turn_seconds_bucket{le=\"0.00005\"} 1\n"), "{text}");
        assert!(text.contains("mppd_loop_turn_seconds_bucket{le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("mppd_loop_turn_seconds_bucket{le=\"0.25\"} 2\n"), "{text}");
        assert!(text.contains("mppd_loop_turn_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("mppd_loop_turn_seconds_count 3\n"), "{text}");
        assert!(text.contains("mppd_flush_delay_seconds 0.00025\n"), "{text}");
        assert!(text.contains("mppd_max_connections 7\n"), "{text}");
        assert!(text.contains("mppd_state_save_failures_total 3\n"), "{text}");
        assert!(text.contains("mppd_state_last_save_timestamp_seconds 12.5\n"), "{text}");
        assert!(text.contains("mppd_state_save_failing 0\n"), "{text}");
        assert!(text.contains(&format!("mppd_build_info{{version=\"{}\"}} 1\n", crate::VERSION)), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }

    #[test]
    fn health_is_degraded_while_saving_fails() {
        let l = LoopStats::new();
        let (core, shell) = (Counters::default(), ShellCounters::default());
        let sources = |save| Sources {
            stats: Stats::default(),
            core: &core,
            shell: &shell,
            loop_stats: &l,
            sockets: 0,
            flush_delay_us: 0,
            max_connections: 0,
            save,
        };
        let (status, body) = health(&sources(None));
        assert_eq!(status, 200);
        assert!(body.contains("\"status\":\"ok\""), "{body}");
        let failing = SaveStatus { failures: 1, last_success_unix_s: None, error: Some("disk full".into()) };
        let (status, body) = health(&sources(Some(failing)));
        assert_eq!(status, 503);
        assert!(body.contains("\"status\":\"degraded\"") && body.contains("\"reason\":\"disk full\""), "{body}");
    }
}
