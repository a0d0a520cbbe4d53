//! What an operator sees of the real binary: `--version`; `mppd health`, the container image's
//! health check; a state save that fails is loud (`/health` 503 "degraded" with the reason,
//! metrics), retried until it succeeds, and a failed final save exits non-zero.

mod common;
mod process;

use common::{Client, http_exchange};
use process::{Mppd, WAIT, connect_from, mppd_command, temp_dir};
use serde_json::{Value, json};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> (bool, String) {
    let output = mppd_command().args(args).stdin(Stdio::null()).output().expect("run mppd");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn version_prints_the_package_version() {
    for flag in ["--version", "-V"] {
        let (ok, text) = run(&[flag]);
        assert!(ok, "{text}");
        assert_eq!(text.trim(), format!("mppd {}", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn health_succeeds_against_a_running_server_and_fails_without_one() {
    let server = Mppd::start(&["--data-dir", ""]);
    let (ok, text) = run(&["health", &server.addr.to_string()]);
    assert!(ok, "{text}");
    assert!(text.contains("\"status\":\"ok\""), "{text}");

    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let (ok, text) = run(&["health", &closed.to_string()]);
    assert!(!ok, "{text}");
    assert!(text.contains("mppd health"), "{text}");
}

/// `GET path`: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = http_exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string())
}

/// The value of an unlabelled metric in `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, body) = get(addr, "/metrics");
    body.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

/// Polls `check` until it holds, failing the test after [`WAIT`] with `what`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "{what} did not happen within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client from 127.0.0.`host` in room "ops" after `hi`.
fn user(server: &Mppd, host: u8) -> Client {
    let mut client = Client::handshake(connect_from([127, 0, 0, host], server.addr), server.addr, "/");
    client.send(&[json!({"m": "hi"}), json!({"m": "ch", "_id": "ops"})]);
    client.expect_message("ch");
    client
}

fn rename(client: &mut Client, name: &str) {
    client.send(&[json!({"m": "userset", "set": {"name": name}})]);
}

/// The data directory becomes a file while the server runs: saving fails, which `/health`,
/// `/metrics` and `mppd health` show; when the directory is back the retry saves the latest
/// state and the server is healthy again.
#[test]
fn a_failing_save_is_reported_and_retried() {
    let root = temp_dir("save-failure");
    let data = root.join("data");
    let moved = root.join("data.moved");
    let data_arg = data.to_str().expect("a UTF-8 path");
    let server = Mppd::start(&["--data-dir", data_arg, "--save-delay-ms", "20"]);
    let mut client = user(&server, 7);

    rename(&mut client, "Saved");
    eventually("the first save", || fs::read_to_string(data.join("state.json")).is_ok_and(|s| s.contains("Saved")));
    eventually("a save time in /metrics", || metric(server.addr, "mppd_state_last_save_timestamp_seconds") > 0.0);
    assert_eq!(metric(server.addr, "mppd_state_save_failures_total"), 0.0);
    let first_save = metric(server.addr, "mppd_state_last_save_timestamp_seconds");

    fs::rename(&data, &moved).expect("move the data directory away");
    fs::write(&data, b"not a directory").expect("put a file in its place");
    rename(&mut client, "Unsaved");
    eventually("/health turning degraded", || get(server.addr, "/health").0 == 503);
    let (_, body) = get(server.addr, "/health");
    let health: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(health["status"], "degraded", "{health}");
    let reason = health["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot save state") && reason.contains(data_arg), "{health}");
    assert!(metric(server.addr, "mppd_state_save_failures_total") >= 1.0);
    assert_eq!(metric(server.addr, "mppd_state_save_failing"), 1.0);
    let (ok, text) = run(&["health", &server.addr.to_string()]);
    assert!(!ok && text.starts_with("503"), "mppd health fails while saving fails: {text}");
    // It keeps trying (with backoff) while nothing changes.
    let failures = metric(server.addr, "mppd_state_save_failures_total");
    eventually("a retry", || metric(server.addr, "mppd_state_save_failures_total") > failures);

    fs::remove_file(&data).expect("remove the file");
    fs::rename(&moved, &data).expect("put the data directory back");
    eventually("/health turning ok", || get(server.addr, "/health").0 == 200);
    assert!(fs::read_to_string(data.join("state.json")).expect("state.json").contains("Unsaved"));
    assert!(metric(server.addr, "mppd_state_last_save_timestamp_seconds") >= first_save);
    assert_eq!(metric(server.addr, "mppd_state_save_failing"), 0.0);
    let _ = fs::remove_dir_all(&root);
}

/// A final save that fails at shutdown makes the process exit non-zero.
#[test]
fn a_failed_final_save_exits_non_zero() {
    let root = temp_dir("final-save");
    let data = root.join("data");
    // A long delay: the change is saved only at shutdown.
    let mut server = Mppd::start(&["--data-dir", data.to_str().expect("a UTF-8 path"), "--save-delay-ms", "600000"]);
    let mut client = user(&server, 7);
    rename(&mut client, "Never saved");
    // The change reached the core when the room hears of it.
    let update = client.expect_message("p");
    assert_eq!(update["name"], "Never saved", "{update}");
    fs::remove_dir_all(&data).expect("remove the data directory");
    fs::write(&data, b"not a directory").expect("put a file in its place");
    server.signal("TERM");
    let status = server.wait_exit();
    assert!(!status.success(), "exit status {status} after a failed final save");
    server.expect_log("the final save failed");
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn without_a_data_directory_health_is_ok_and_no_save_metrics_are_shown() {
    let server = Mppd::start(&["--data-dir", ""]);
    assert_eq!(get(server.addr, "/health").0, 200);
    let (_, body) = get(server.addr, "/metrics");
    assert!(!body.contains("mppd_state_save"), "{body}");
}
