//! What an operator runs besides the server itself, over the real binary: `--version`, and
//! `mppd health`, the container image's health check.

mod process;

use process::{Mppd, mppd_command};
use std::net::TcpListener;
use std::process::Stdio;

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
