//! The shell over real sockets: upgrades, the HTTP stage, frame limits, control frames,
//! several listeners and shutdown.

mod common;

use common::{Client, TestServer, http_exchange, raw_connect, read_to_end, test_config};
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

fn hi() -> Value {
    json!({"m": "hi"})
}

#[test]
fn upgrade_is_accepted_on_any_path_and_b_comes_first() {
    let server = TestServer::new();
    for path in ["/", "/ws", "/?x=1", "/some/where?a=b&c"] {
        let mut client = Client::connect_path(server.addr(), path);
        let first = client.recv_json();
        assert_eq!(first, vec![json!({"m": "b", "code": "~return true"})], "path {path}");
    }
}

#[test]
fn plain_get_gets_a_complete_400_and_the_connection_closes() {
    let server = TestServer::start(mppd::Config { web_client: false, ..test_config() });
    let response = http_exchange(server.addr(), "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response head");
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Content-Length");
    assert_eq!(body.len(), length, "{response:?}");
}

#[test]
fn unfinished_request_head_is_closed_after_the_handshake_timeout() {
    let mut config = test_config();
    config.handshake_timeout_ms = 200;
    let server = TestServer::start(config);
    let mut stream = raw_connect(server.addr());
    let started = Instant::now();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: loc").expect("send part of a head");
    let response = read_to_end(&mut stream);
    let waited = started.elapsed();
    assert!(response.starts_with("HTTP/1.1 408 "), "{response:?}");
    assert!(waited >= Duration::from_millis(150), "closed after {waited:?}");
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[test]
fn request_head_over_the_cap_is_refused() {
    let mut config = test_config();
    config.max_request_head_bytes = 512;
    let server = TestServer::start(config);
    let request = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(2_000));
    let response = http_exchange(server.addr(), &request);
    assert!(response.starts_with("HTTP/1.1 431 "), "{response:?}");
}

#[test]
fn oversized_frame_closes_with_1009() {
    let mut config = test_config();
    config.max_message_bytes = 1_024;
    let server = TestServer::start(config);
    let mut client = Client::connect(server.addr());
    client.recv_json();
    client.send_text(&format!("[{{\"m\":\"a\",\"message\":\"{}\"}}]", "x".repeat(4_000)));
    assert_eq!(client.expect_close_code(), 1009);
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let server = TestServer::new();
    let mut client = Client::connect(server.addr());
    client.recv_json();
    let frame = Frame::message(vec![b'[', 0xff, 0xfe, b']'], OpCode::Data(Data::Text), true);
    client.send_message(Message::Frame(frame));
    assert_eq!(client.expect_close_code(), 1007);
}

#[test]
fn binary_frames_are_ignored_and_the_connection_keeps_working() {
    let server = TestServer::new();
    let mut client = Client::connect(server.addr());
    client.recv_json();
    client.send_message(Message::binary(vec![1, 2, 3]));
    client.send(&[hi()]);
    let hi = client.expect_message("hi");
    assert!(hi["u"]["_id"].is_string(), "{hi}");
}

#[test]
fn ping_is_answered_with_pong() {
    let server = TestServer::new();
    let mut client = Client::connect(server.addr());
    client.recv_json();
    client.send_message(Message::Ping(b"are you there".to_vec().into()));
    loop {
        match client.recv() {
            Message::Pong(payload) => {
                assert_eq!(&payload[..], b"are you there");
                break;
            }
            Message::Text(_) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

#[test]
fn frames_sent_with_the_request_head_are_read() {
    let server = TestServer::new();
    let mut stream = raw_connect(server.addr());
    // The head and a masked text frame `[{"m":"hi"}]` in one write.
    let mut bytes = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    let payload = br#"[{"m":"hi"}]"#;
    let mask = [1u8, 2, 3, 4];
    bytes.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&bytes).expect("send head and frame");
    let mut client =
        Client { ws: tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Client, None) };
    // Skip the 101 response: the raw client did the handshake by hand.
    skip_http_head(&mut client);
    client.expect_message("hi");
}

/// Reads the `101` head byte by byte off the client's socket.
fn skip_http_head(client: &mut Client) {
    use std::io::Read;
    let stream = client.ws.get_mut();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read the response head");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
}

#[test]
fn every_listen_address_accepts() {
    let mut config = test_config();
    config.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0)), SocketAddr::from(([127, 0, 0, 1], 0))];
    let server = TestServer::start(config);
    assert_eq!(server.addrs().len(), 2);
    assert_ne!(server.addrs()[0], server.addrs()[1]);
    for addr in server.addrs() {
        let mut client = Client::connect(*addr);
        assert_eq!(client.recv_json()[0]["m"], "b");
    }
}

#[test]
fn shutdown_closes_clients_with_4000() {
    let server = TestServer::new();
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(server.addr())).collect();
    for client in &mut clients {
        client.recv_json();
    }
    let addr = server.addr();
    let stopper = std::thread::spawn(move || server.stop());
    for mut client in clients {
        let frame = client.expect_close().expect("a close code");
        assert_eq!(u16::from(frame.code), 4000);
        assert_eq!(frame.reason.as_str(), "Server closing.");
    }
    let stopped = Instant::now();
    stopper.join().expect("stop thread").expect("run returned an error");
    assert!(stopped.elapsed() < Duration::from_millis(900), "run returned only after the linger time");
    assert!(std::net::TcpStream::connect(addr).is_err(), "still listening after shutdown");
}
