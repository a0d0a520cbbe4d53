//! Helpers for tests over real sockets: an in-process server on 127.0.0.1 and a small blocking
//! WebSocket client with read timeouts.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use mppd::Config;
use mppd::net::{Server, ShutdownHandle};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// How long a client waits for something it expects before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A configuration for tests: one listener on a free port of 127.0.0.1, random user ids (all
/// clients share one address), a fixed seed, short shell timeouts and nothing saved to disk.
pub fn test_config() -> Config {
    let mut config = Config {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        handshake_timeout_ms: 2_000,
        close_linger_ms: 1_000,
        data_dir: None,
        ..Config::default()
    };
    config.core.random_ids = true;
    config.core.seed = 1;
    config
}

/// A server running on its own thread; shut down (and joined) when dropped.
pub struct TestServer {
    addrs: Vec<SocketAddr>,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    /// Binds `config` and runs the event loop on a new thread.
    pub fn start(config: Config) -> TestServer {
        let server = Server::bind(config).expect("bind the test server");
        let addrs = server.local_addrs();
        let handle = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run());
        TestServer { addrs, handle, thread: Some(thread) }
    }

    /// Starts a server with [`test_config`].
    pub fn new() -> TestServer {
        TestServer::start(test_config())
    }

    /// The first listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every listen address, in configuration order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops the server and returns what `run` returned.
    pub fn stop(mut self) -> io::Result<()> {
        self.handle.shutdown();
        match self.thread.take() {
            Some(thread) => thread.join().expect("the event loop thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("the event loop thread panicked").expect("the event loop failed");
            }
        }
    }
}

/// A blocking WebSocket client.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connects to `ws://addr/`.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_path(addr, "/")
    }

    /// Connects to `ws://addr` + `path` (path and query, starting with `/`).
    pub fn connect_path(addr: SocketAddr, path: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        Client::handshake(stream, addr, path)
    }

    /// Connects to `ws://addr/` with a small, fixed receive buffer, so that a client that stops
    /// reading makes the server's queue grow after little data.
    pub fn connect_small_window(addr: SocketAddr) -> Client {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)
            .expect("create a socket");
        socket.set_recv_buffer_size(16 * 1024).expect("set the receive buffer size");
        socket.connect(&addr.into()).expect("connect");
        Client::handshake(socket.into(), addr, "/")
    }

    /// Completes the WebSocket handshake over an already connected stream.
    pub fn handshake(stream: TcpStream, addr: SocketAddr, path: &str) -> Client {
        stream.set_read_timeout(Some(WAIT)).expect("set read timeout");
        stream.set_write_timeout(Some(WAIT)).expect("set write timeout");
        let url = format!("ws://{addr}{path}");
        let (ws, response) = tungstenite::client::client(url.as_str(), stream)
            .unwrap_or_else(|e| panic!("WebSocket handshake with {url} failed: {e}"));
        assert_eq!(response.status().as_u16(), 101);
        Client { ws }
    }

    /// Sends one text frame as is.
    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send a text frame");
    }

    /// Sends messages as one frame: `[msg, …]`.
    pub fn send(&mut self, messages: &[Value]) {
        self.send_text(&Value::Array(messages.to_vec()).to_string());
    }

    /// Sends any message (binary, ping, raw frame).
    pub fn send_message(&mut self, message: Message) {
        self.ws.send(message).expect("send a message");
    }

    /// The next message of any kind; fails the test after `timeout`.
    pub fn recv_within(&mut self, timeout: Duration) -> Message {
        self.ws.get_mut().set_read_timeout(Some(timeout.max(Duration::from_millis(1)))).expect("set read timeout");
        match self.ws.read() {
            Ok(message) => message,
            Err(e) => panic!("expected a message within {timeout:?}: {e}"),
        }
    }

    /// The next message of any kind within [`WAIT`].
    pub fn recv(&mut self) -> Message {
        self.recv_within(WAIT)
    }

    /// The next text frame, parsed as the JSON array of messages it must be.
    pub fn recv_json(&mut self) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.recv_within(deadline.saturating_duration_since(Instant::now())) {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
                    match value {
                        Value::Array(messages) => return messages,
                        other => panic!("a frame that is not an array: {other}"),
                    }
                }
                Message::Close(frame) => panic!("closed while waiting for a text frame: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The first message `{"m": m, …}` to arrive within [`WAIT`], skipping everything else.
    pub fn expect_message(&mut self, m: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let message = self.recv_within(deadline.saturating_duration_since(Instant::now()));
            let Message::Text(text) = message else {
                if let Message::Close(frame) = message {
                    panic!("closed while waiting for {m:?}: {frame:?}");
                }
                continue;
            };
            let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            let found = value.as_array().and_then(|msgs| msgs.iter().find(|msg| msg["m"] == m).cloned());
            if let Some(found) = found {
                return found;
            }
        }
    }

    /// Reads until the server's close frame and returns it (`None` for a close without code).
    pub fn expect_close(&mut self) -> Option<CloseFrame> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Message::Close(frame) = self.recv_within(deadline.saturating_duration_since(Instant::now())) {
                return frame;
            }
        }
    }

    /// The code of the server's close frame.
    pub fn expect_close_code(&mut self) -> u16 {
        self.expect_close().map_or(1005, |frame| u16::from(frame.code))
    }
}

/// Connects without speaking WebSocket, for tests of the HTTP stage.
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("set read timeout");
    stream
}

/// Reads until the server closes the connection; fails the test after [`WAIT`].
pub fn read_to_end(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    if let Err(e) = stream.read_to_end(&mut bytes) {
        panic!("the server did not close the connection ({e}); got {:?}", String::from_utf8_lossy(&bytes));
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends `request` on a new connection and returns everything the server answers.
pub fn http_exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = raw_connect(addr);
    stream.write_all(request.as_bytes()).expect("send the request");
    read_to_end(&mut stream)
}
