//! `--flush-delay-ms`: output waits for the delay, then goes out on its own (the loop wakes for
//! it), several frames in one write. `--max-flush-delay-ms`: the delay grows while the loop is
//! busy and returns to the configured one when the load is gone.

mod common;

use common::{Client, TestServer, WAIT, http_exchange, test_config};
use mppd::config::Rate;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[test]
fn delayed_output_is_written_once_the_delay_has_passed() {
    let mut config = test_config();
    config.flush_delay_ms = 150;
    let server = TestServer::start(config);
    let mut a = Client::connect(server.addr());
    let mut b = Client::connect(server.addr());
    for c in [&mut a, &mut b] {
        c.send(&[json!({"m":"hi"}), json!({"m":"ch","_id":"test/delay"})]);
        c.expect_message("nq");
    }
    a.expect_message("p");
    let sent = Instant::now();
    a.send_text(r#"[{"m":"n","t":1,"n":[{"n":"a1"}]}]"#);
    a.send_text(r#"[{"m":"n","t":2,"n":[{"n":"b1"}]}]"#);
    let first = b.expect_message("n");
    let waited = sent.elapsed();
    assert_eq!(first["t"], 1);
    assert_eq!(b.expect_message("n")["t"], 2, "the second note follows, in order");
    // Nothing else happened on the server: only the delay's own wake-up wrote the notes.
    assert!(waited >= Duration::from_millis(100), "written after {waited:?}, before the delay");
}

/// The flush delay now, from `/metrics`.
fn flush_delay(addr: SocketAddr) -> f64 {
    let response = http_exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    response
        .lines()
        .find_map(|line| line.strip_prefix("mppd_flush_delay_seconds "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no flush delay in /metrics:\n{response}"))
}

/// Polls `/metrics` until the flush delay satisfies `want`, for at most `WAIT`.
fn wait_for_delay(addr: SocketAddr, want: impl Fn(f64) -> bool) -> f64 {
    let start = Instant::now();
    loop {
        let delay = flush_delay(addr);
        if want(delay) || start.elapsed() > WAIT {
            return delay;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_busy_loop_lets_output_wait_longer_and_an_idle_one_writes_at_once_again() {
    let mut config = test_config();
    config.max_flush_delay_ms = 2;
    config.core.trusted_notes = true;
    config.core.connection_messages = Rate::new(u32::MAX, 1_000);
    config.core.connection_bytes = Rate::new(u32::MAX, 1_000);
    let server = TestServer::start(config);
    let addr = server.addr();
    let mut listeners = Vec::new();
    for _ in 0..5 {
        let mut c = Client::connect(addr);
        c.send(&[json!({"m":"hi"}), json!({"m":"ch","_id":"test/busy"})]);
        c.expect_message("nq");
        listeners.push(c);
    }
    // Joining may itself keep a slow machine busy for a moment; once idle, output goes at once.
    assert_eq!(wait_for_delay(addr, |d| d == 0.0), 0.0, "an idle server writes every turn");

    // One client sends notes as fast as the server takes them: the loop never waits.
    let mut flooder = Client::connect(addr);
    flooder.send(&[json!({"m":"hi"}), json!({"m":"ch","_id":"test/busy"})]);
    flooder.expect_message("nq");
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let notes = r#"[{"m":"n","t":1,"n":[{"n":"a1","v":0.5},{"n":"b1","v":0.5},{"n":"c1","s":1}]}]"#;
            while !stop.load(Ordering::Relaxed) {
                flooder.send_text(notes);
            }
        })
    };
    let busy = wait_for_delay(addr, |d| d > 0.0);
    stop.store(true, Ordering::Relaxed);
    flooding.join().expect("the flooder");
    assert!(busy > 0.0 && busy <= 0.002, "delay under load: {busy} s");

    let idle = wait_for_delay(addr, |d| d == 0.0);
    assert_eq!(idle, 0.0, "the delay returns to the configured 0 once the load is gone");
    drop(listeners);
}
