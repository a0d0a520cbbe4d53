//! Every limit of the shell and every malformed input class over real sockets: the refusal (an
//! HTTP status before the upgrade, or a close code after it) and, each time, a second client
//! that behaves and keeps being served.

mod common;

use common::{Client, TestServer, WAIT, raw_connect, read_to_end, test_config};
use mppd::Config;
use mppd::config::Rate;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// An upgrade request as raw bytes, with extra header lines.
fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A TCP connection to `addr` from the loopback address `from` (any 127.x.y.z works on Linux).
fn connect_from(addr: SocketAddr, from: [u8; 4]) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&SocketAddr::from((from, 0)).into()).expect("bind a loopback source address");
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).expect("set read timeout");
    stream
}

/// Sends a raw upgrade request from `from` and returns the response head's status line, plus
/// the whole response when the server closed after it.
fn try_upgrade(addr: SocketAddr, from: [u8; 4], extra: &str) -> (String, TcpStream) {
    let mut stream = connect_from(addr, from);
    stream.write_all(upgrade_request(extra).as_bytes()).expect("send the request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    (String::from_utf8_lossy(&head).into_owned(), stream)
}

/// A WebSocket client from the loopback address `from`, with extra request headers.
fn client_from(addr: SocketAddr, from: [u8; 4], headers: &[(&'static str, &str)]) -> Client {
    let stream = connect_from(addr, from);
    stream.set_write_timeout(Some(WAIT)).expect("set write timeout");
    let mut request = format!("ws://{addr}/").into_client_request().expect("a request");
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().expect("a header value"));
    }
    let (ws, response) = tungstenite::client::client(request, stream).expect("the upgrade");
    assert_eq!(response.status().as_u16(), 101);
    Client { ws }
}

/// A client that joined `room` and answers for the rest of the test that it is still served.
struct Bystander(Client);

impl Bystander {
    fn join(addr: SocketAddr, from: [u8; 4], room: &str) -> Bystander {
        let mut client = client_from(addr, from, &[]);
        client.recv_json();
        client.send(&[json!({"m": "hi"}), json!({"m": "ch", "_id": room})]);
        client.expect_message("ch");
        Bystander(client)
    }

    /// A ping round trip: the server still reads and answers this client.
    fn assert_served(&mut self, marker: u64) {
        self.0.send(&[json!({"m": "t", "e": marker})]);
        loop {
            let t = self.0.expect_message("t");
            if t["e"] == marker {
                return;
            }
        }
    }
}

fn join(client: &mut Client, room: &str) {
    client.recv_json();
    client.send(&[json!({"m": "hi"}), json!({"m": "ch", "_id": room})]);
    client.expect_message("ch");
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn slow_request_heads_get_408_and_cannot_lock_others_out() {
    let config = Config { handshake_timeout_ms: 1_000, max_pending_handshakes: 8, ..test_config() };
    let server = TestServer::start(config);
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 1], "test/bystander");
    // More unfinished heads than the server keeps waiting.
    let mut slow: Vec<TcpStream> = (0..24)
        .map(|_| {
            let mut stream = raw_connect(server.addr());
            stream.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr").expect("send part of a head");
            stream
        })
        .collect();
    // A newcomer still gets in (the oldest unfinished heads make room), and others are served.
    let mut newcomer = Client::connect(server.addr());
    assert_eq!(newcomer.recv_json()[0]["m"], "b");
    bystander.assert_served(1);
    // Every slow head ends closed: dropped for a newcomer, or answered 408 at its deadline.
    let mut timed_out = 0;
    for stream in &mut slow {
        let response = read_to_end(stream);
        assert!(response.is_empty() || response.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{response:?}");
        timed_out += usize::from(!response.is_empty());
    }
    assert!(timed_out >= 1, "no slow head lasted until its deadline");
    assert!(timed_out <= 8, "{timed_out} slow heads were kept waiting at once");
    bystander.assert_served(2);
    newcomer.send(&[json!({"m": "hi"})]);
    newcomer.expect_message("hi");
}

#[test]
fn huge_frame_closes_1009_and_invalid_utf8_closes_1007_while_others_play_on() {
    let config = Config { max_message_bytes: 4_096, ..test_config() };
    let server = TestServer::start(config);
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 1], "test/bystander");

    let mut big = Client::connect(server.addr());
    join(&mut big, "test/bystander");
    big.send_text(&format!("[{{\"m\":\"a\",\"message\":\"{}\"}}]", "x".repeat(100_000)));
    assert_eq!(big.expect_close_code(), 1009);
    bystander.assert_served(1);

    let mut bad = Client::connect(server.addr());
    join(&mut bad, "test/bystander");
    let frame = Frame::message(vec![b'[', b'"', 0xc3, 0x28, b'"', b']'], OpCode::Data(Data::Text), true);
    bad.send_message(Message::Frame(frame));
    assert_eq!(bad.expect_close_code(), 1007);
    bystander.assert_served(2);
}

#[test]
fn per_ip_concurrent_cap_answers_429_before_the_upgrade() {
    let config = Config {
        per_ip_exempt: Vec::new(),
        max_connections_per_ip: 2,
        connection_rate_per_ip: Rate::new(0, 0),
        ..test_config()
    };
    let server = TestServer::start(config);
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 9], "test/bystander");
    let first = client_from(server.addr(), [127, 0, 0, 2], &[]);
    let _second = client_from(server.addr(), [127, 0, 0, 2], &[]);
    let (head, mut stream) = try_upgrade(server.addr(), [127, 0, 0, 2], "");
    assert!(head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{head}");
    assert!(head.contains("\r\nRetry-After: "), "{head}");
    read_to_end(&mut stream);
    bystander.assert_served(1);
    // A connection that goes frees its place.
    drop(first);
    let mut attempts = 0;
    loop {
        let (head, _stream) = try_upgrade(server.addr(), [127, 0, 0, 2], "");
        if status_of(&head) == 101 {
            break;
        }
        assert_eq!(status_of(&head), 429, "{head}");
        attempts += 1;
        assert!(attempts < 100, "the place of a closed connection was never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    bystander.assert_served(2);
}

#[test]
fn per_ip_connection_rate_answers_429_with_retry_after() {
    let config = Config {
        per_ip_exempt: Vec::new(),
        max_connections_per_ip: 0,
        connection_rate_per_ip: Rate::new(3, 60_000),
        ..test_config()
    };
    let server = TestServer::start(config);
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 9], "test/bystander");
    for _ in 0..3 {
        let (head, _) = try_upgrade(server.addr(), [127, 0, 0, 3], "");
        assert_eq!(status_of(&head), 101, "{head}");
    }
    let (head, mut stream) = try_upgrade(server.addr(), [127, 0, 0, 3], "");
    assert!(head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{head}");
    // One new connection every 20 s.
    let retry: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .and_then(|s| s.trim().parse().ok())
        .expect("a Retry-After header");
    assert!((19..=20).contains(&retry), "Retry-After: {retry}");
    read_to_end(&mut stream);
    // Another address is not affected, nor is the client already connected.
    let (head, _) = try_upgrade(server.addr(), [127, 0, 0, 4], "");
    assert_eq!(status_of(&head), 101, "{head}");
    bystander.assert_served(1);
}

#[test]
fn origins_outside_the_allowlist_get_403() {
    let config = Config { allowed_origins: vec!["https://good.example".to_string()], ..test_config() };
    let server = TestServer::start(config);
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 1], "test/bystander");
    let (head, mut stream) = try_upgrade(server.addr(), [127, 0, 0, 1], "Origin: https://evil.example\r\n");
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    read_to_end(&mut stream);
    let (head, _) = try_upgrade(server.addr(), [127, 0, 0, 1], "Origin: https://GOOD.example\r\n");
    assert_eq!(status_of(&head), 101, "{head}");
    // Bots without an Origin are let in.
    let (head, _) = try_upgrade(server.addr(), [127, 0, 0, 1], "");
    assert_eq!(status_of(&head), 101, "{head}");
    bystander.assert_served(1);
}

/// The `_id` the server gives a client connecting from `from` with these headers.
fn id_seen(addr: SocketAddr, from: [u8; 4], headers: &[(&'static str, &str)]) -> String {
    let mut client = client_from(addr, from, headers);
    client.recv_json();
    client.send(&[json!({"m": "hi"})]);
    client.expect_message("hi")["u"]["_id"].as_str().expect("u._id").to_string()
}

fn id_of(salt: &str, ip: &str) -> String {
    let ip: IpAddr = ip.parse().expect("an address");
    mppd::core::identity_for_address(salt, ip, None).id.to_hex()
}

#[test]
fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let salt = "limits-test-salt";
    let mut config = test_config();
    config.core.random_ids = false;
    config.core.id_salt = salt.to_string();
    config.trusted_proxies = vec!["127.0.0.2".parse().expect("a network")];
    let server = TestServer::start(config);
    let forwarded = [("X-Forwarded-For", "198.51.100.7, 203.0.113.5")];
    // From the proxy: the client address is the rightmost hop the proxy added.
    assert_eq!(id_seen(server.addr(), [127, 0, 0, 2], &forwarded), id_of(salt, "203.0.113.5"));
    // A trusted proxy chain: 127.0.0.2 forwarded for another trusted hop.
    let chain = [("X-Forwarded-For", "203.0.113.5, 127.0.0.2")];
    assert_eq!(id_seen(server.addr(), [127, 0, 0, 2], &chain), id_of(salt, "203.0.113.5"));
    // From anyone else the header is ignored.
    assert_eq!(id_seen(server.addr(), [127, 0, 0, 3], &forwarded), id_of(salt, "127.0.0.3"));
    // Without the header the proxy is the client.
    assert_eq!(id_seen(server.addr(), [127, 0, 0, 2], &[]), id_of(salt, "127.0.0.2"));
}

#[test]
fn forwarded_addresses_count_for_the_per_ip_caps() {
    let mut config = Config {
        per_ip_exempt: Vec::new(),
        max_connections_per_ip: 1,
        connection_rate_per_ip: Rate::new(0, 0),
        ..test_config()
    };
    config.trusted_proxies = vec!["127.0.0.2".parse().expect("a network")];
    let server = TestServer::start(config);
    let (head, _a) = try_upgrade(server.addr(), [127, 0, 0, 2], "X-Forwarded-For: 203.0.113.5\r\n");
    assert_eq!(status_of(&head), 101, "{head}");
    // The same proxy, another client: let in.
    let (head, _b) = try_upgrade(server.addr(), [127, 0, 0, 2], "X-Forwarded-For: 203.0.113.6\r\n");
    assert_eq!(status_of(&head), 101, "{head}");
    // The first client again: over its cap.
    let (head, _) = try_upgrade(server.addr(), [127, 0, 0, 2], "X-Forwarded-For: 203.0.113.5\r\n");
    assert_eq!(status_of(&head), 429, "{head}");
}

/// Limits with the core's quotas small enough to reach over the wire.
fn quota_config() -> Config {
    let mut config = test_config();
    config.core.connection_messages = Rate::new(20, 10_000);
    config.core.connection_bytes = Rate::new(2_000, 10_000);
    config
}

#[test]
fn message_quota_closes_4007_and_byte_quota_closes_4002() {
    let server = TestServer::start(quota_config());
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 1], "test/bystander");

    let mut chatty = Client::connect(server.addr());
    chatty.recv_json();
    let many: Vec<Value> = (0..25).map(|i| json!({"m": "t", "e": i})).collect();
    chatty.send(&many);
    let frame = chatty.expect_close().expect("a close frame");
    assert_eq!(u16::from(frame.code), 4007);
    assert_eq!(frame.reason.as_str(), "Exceeded 20 messages per 10 seconds.");
    bystander.assert_served(1);

    let mut wordy = Client::connect(server.addr());
    wordy.recv_json();
    wordy.send(&[json!({"m": "devices", "list": ["x".repeat(2_500)]})]);
    let frame = wordy.expect_close().expect("a close frame");
    assert_eq!(u16::from(frame.code), 4002);
    assert_eq!(frame.reason.as_str(), "Exceeded 2000 bytes per 10 seconds.");
    bystander.assert_served(2);
}

#[test]
fn connections_per_user_over_the_cap_close_4009() {
    let mut config = test_config();
    config.core.random_ids = false;
    config.core.max_connections_per_user = 2;
    let server = TestServer::start(config);
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 9], "test/bystander");
    let mut tabs: Vec<Client> = (0..2).map(|_| client_from(server.addr(), [127, 0, 0, 5], &[])).collect();
    for tab in &mut tabs {
        tab.recv_json();
        tab.send(&[json!({"m": "hi"})]);
        tab.expect_message("hi");
    }
    let mut third = client_from(server.addr(), [127, 0, 0, 5], &[]);
    third.recv_json();
    third.send(&[json!({"m": "hi"})]);
    let notice = third.expect_message("notification");
    assert_eq!(notice["text"], "You already have the maximum amount of clients connected.");
    let frame = third.expect_close().expect("a close frame");
    assert_eq!(u16::from(frame.code), 4009);
    assert_eq!(frame.reason.as_str(), "Client limit reached.");
    bystander.assert_served(1);
    tabs[0].send(&[json!({"m": "t", "e": 7})]);
    assert_eq!(tabs[0].expect_message("t")["e"], 7);
}

#[test]
fn connections_over_max_connections_get_503_at_once() {
    let config = Config { max_connections: 3, ..test_config() };
    let server = TestServer::start(config);
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 1], "test/bystander");
    let held: Vec<Client> = (0..2).map(|_| Client::connect(server.addr())).collect();
    let mut refused = raw_connect(server.addr());
    // Best effort: the 503 is written at once; the peer may see a reset instead if its request
    // raced the close.
    let _ = refused.write_all(upgrade_request("").as_bytes());
    let mut bytes = Vec::new();
    let _ = refused.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text:?}");
    assert!(!text.contains(" 101 "), "{text:?}");
    bystander.assert_served(1);
    drop(held);
    // Room again once connections go.
    let mut attempts = 0;
    loop {
        let mut stream = raw_connect(server.addr());
        let _ = stream.write_all(upgrade_request("").as_bytes());
        let mut head = [0u8; 12];
        if stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 101" {
            break;
        }
        attempts += 1;
        assert!(attempts < 100, "no room after connections closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    bystander.assert_served(2);
}

#[test]
fn a_read_budget_of_one_frame_per_turn_loses_nothing() {
    let mut config = quota_config();
    config.read_budget_frames = 1;
    config.core.connection_messages = Rate::new(u32::MAX, 1_000);
    config.core.connection_bytes = Rate::new(u32::MAX, 1_000);
    let server = TestServer::start(config);
    let mut bystander = Bystander::join(server.addr(), [127, 0, 0, 1], "test/bystander");
    let mut flooder = Client::connect(server.addr());
    flooder.recv_json();
    // Hundreds of frames in a few writes: the server reads one per turn and must come back for
    // the rest without a new readiness event.
    let frames = 500;
    let mut bytes = Vec::new();
    for i in 0..frames {
        let payload = format!(r#"[{{"m":"t","e":{i}}}]"#);
        let mask = [7u8, 1, 2, 3];
        bytes.push(0x81);
        bytes.push(0x80 | u8::try_from(payload.len()).expect("a short frame"));
        bytes.extend_from_slice(&mask);
        bytes.extend(payload.bytes().enumerate().map(|(j, b)| b ^ mask[j % 4]));
    }
    flooder.ws.get_mut().write_all(&bytes).expect("send the frames");
    bystander.assert_served(1);
    for i in 0..frames {
        assert_eq!(flooder.expect_message("t")["e"], i, "frame {i}");
    }
    bystander.assert_served(2);
}
