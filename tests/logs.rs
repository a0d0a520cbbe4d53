//! Log lines an operator can use, over the real binary: joining, leaving and kickbans at info
//! with the client's own address (behind a trusted proxy, the forwarded one), its user id and
//! the room; `RUST_LOG` honoured; `--log-format json` writes one JSON object per line.

mod common;
mod process;

use common::Client;
use mppd::core::identity_for_address;
use process::{Mppd, connect_from};
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;

const SALT: &str = "log-test";

/// A client connecting from 127.0.0.`host` (as a proxy would, with `forwarded_for`), in `room`.
fn join(server: &Mppd, host: u8, forwarded_for: Option<&str>, room: &str) -> (Client, String) {
    let stream = connect_from([127, 0, 0, host], server.addr);
    stream.set_read_timeout(Some(common::WAIT)).expect("set read timeout");
    let mut request = format!("ws://{}/", server.addr).into_client_request().expect("a request");
    if let Some(address) = forwarded_for {
        request.headers_mut().insert("X-Forwarded-For", HeaderValue::from_str(address).expect("a header value"));
    }
    let (ws, _) = tungstenite::client::client(request, stream).expect("the WebSocket handshake");
    let mut client = Client { ws };
    client.send(&[json!({"m": "hi"}), json!({"m": "ch", "_id": room})]);
    let hi = client.expect_message("hi");
    client.expect_message("ch");
    (client, hi["u"]["_id"].as_str().expect("an id").to_string())
}

fn id_of(ip: &str) -> String {
    identity_for_address(SALT, ip.parse().expect("an ip"), None).id.to_hex()
}

#[test]
fn join_leave_and_kickban_name_the_real_address_the_user_and_the_room() {
    let mut server =
        Mppd::start(&["--data-dir", "", "--salt", SALT, "--trusted-proxy", "127.0.0.1", "--log-format", "json"]);
    let startup: Value = serde_json::from_str(&server.expect_log("starting:")).expect("a JSON log line");
    let text = startup["msg"].as_str().unwrap_or_default();
    for part in
        [env!("CARGO_PKG_VERSION"), &server.addr.to_string(), "data directory none", "web client", "id salt configured"]
    {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }
    assert!(startup["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')) && startup["level"] == "INFO", "{startup}");

    // Through the proxy at 127.0.0.1 the client is 203.0.113.9; directly it is 127.0.0.8.
    let (mut owner, owner_id) = join(&server, 1, Some("203.0.113.9"), "Logged room");
    assert_eq!(owner_id, id_of("203.0.113.9"));
    let line = server.expect_log("open from 203.0.113.9 via proxy 127.0.0.1");
    let _: Value = serde_json::from_str(&line).expect("every line is JSON");
    let line = server.expect_log("join: 203.0.113.9");
    assert!(line.contains(&format!("user {owner_id}")) && line.contains("room \\\"Logged room\\\""), "{line}");

    let (mut guest, guest_id) = join(&server, 8, None, "Logged room");
    assert!(server.expect_log("join: 127.0.0.8").contains(&guest_id));

    owner.send(&[json!({"m": "kickban", "_id": guest_id, "ms": 60_000})]);
    guest.expect_message("notification");
    let line = server.expect_log("kickban: 203.0.113.9");
    for part in
        [format!("user {owner_id} banned user {guest_id} (127.0.0.8)"), "Logged room".to_string(), "60000 ms".into()]
    {
        assert!(line.contains(&part), "{part:?} missing from {line}");
    }
    let line = server.expect_log("leave: 127.0.0.8");
    assert!(line.contains(&guest_id) && line.contains("Logged room"), "{line}");
}

#[test]
fn rust_log_sets_the_level() {
    let mut server = Mppd::start_with_env(&["--data-dir", ""], &[("RUST_LOG", "info,mppd::net=debug")]);
    let _client = join(&server, 7, None, "lobby");
    let line = server.expect_log("accepted from 127.0.0.7");
    assert!(line.contains("DEBUG"), "{line}");
}
