//! Idle frugality: the event loop wakes only for traffic and deadlines, never at a fixed rate.
//! Loop turns are counted by `/metrics` (`mppd_loop_turn_seconds_count`).

mod common;

use common::{Client, TestServer, http_exchange, test_config};
use serde_json::json;
use std::time::Duration;

/// The loop turns the server has made so far (reading them costs a few turns itself).
fn turns(server: &TestServer) -> u64 {
    let response = http_exchange(server.addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    response
        .lines()
        .find_map(|line| line.strip_prefix("mppd_loop_turn_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no turn count in /metrics:\n{response}"))
}

/// The turns the loop made during `idle` of doing nothing, and what reading the counter costs
/// (measured back to back before).
fn turns_while_idle(server: &TestServer, idle: Duration) -> (u64, u64) {
    let first = turns(server);
    let second = turns(server);
    std::thread::sleep(idle);
    (turns(server) - second, second - first)
}

#[test]
fn an_idle_server_and_idle_clients_do_not_wake_the_loop() {
    let mut config = test_config();
    // A connection still in its handshake or closing linger may rightly wake the loop at its
    // deadline; keep those outside the measured window.
    config.handshake_timeout_ms = 60_000;
    config.close_linger_ms = 60_000;
    let server = TestServer::start(config);
    let mut clients: Vec<Client> = (0..20)
        .map(|i| {
            let mut client = Client::connect(server.addr());
            client.send(&[json!({"m":"hi"}), json!({"m":"ch","_id": format!("room {}", i % 4)})]);
            client.expect_message("nq");
            client
        })
        .collect();
    let (idle, reading) = turns_while_idle(&server, Duration::from_millis(1500));
    // A loop polling at any fixed rate of 2 Hz or more would exceed this.
    assert!(idle <= reading + 2, "{idle} turns in 1.5 s of idleness (reading the counter costs {reading})");
    // The clients are still served: a ping is answered.
    clients[0].send(&[json!({"m":"t","e":1})]);
    assert_eq!(clients[0].expect_message("t")["e"], 1);
}

#[test]
fn handshake_deadlines_of_connections_that_moved_on_do_not_wake_the_loop() {
    let mut config = test_config();
    // Every accepted socket gets a request-head deadline this far ahead; the clients below finish
    // their handshakes long before it, so none of those deadlines may wake the loop.
    config.handshake_timeout_ms = 500;
    config.close_linger_ms = 60_000;
    let server = TestServer::start(config);
    let _clients: Vec<Client> = (0..20)
        .map(|_| {
            let mut client = Client::connect(server.addr());
            client.send(&[json!({"m":"hi"})]);
            client.expect_message("hi");
            client
        })
        .collect();
    // Past every head deadline (of the clients and of the requests reading the counter).
    let (idle, reading) = turns_while_idle(&server, Duration::from_millis(1200));
    assert!(
        idle <= reading + 2,
        "{idle} turns while 20 open connections idled past their handshake deadlines (reading the counter costs {reading})"
    );
}
