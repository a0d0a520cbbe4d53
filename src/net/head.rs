//! The HTTP stage of a connection: read the request head into a capped buffer, then decide
//! between a WebSocket upgrade (any path and query) and a plain HTTP answer.
//!
//! It never peeks: bytes read past the head belong to the WebSocket and are handed over as
//! `leftover`. It does no socket registration and keeps no deadline; the event loop does both.

use std::io::{self, Read};
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{Request, create_response, write_response};

/// How many bytes one read asks for while the head is incomplete.
const READ_CHUNK: usize = 2048;

/// A request head being read.
pub(super) struct Head {
    buf: Vec<u8>,
    cap: usize,
}

/// What the head reader decided after draining the socket.
pub(super) enum HeadStep {
    /// The head is incomplete and the socket has nothing more for now.
    Pending,
    /// The peer hung up (or the socket failed) before finishing its request.
    Gone,
    /// Not an acceptable upgrade: write this HTTP response, then close.
    Reject(Vec<u8>),
    /// A GET or HEAD that is not an upgrade: health, metrics, static files or `400`.
    Plain { request: Box<Request>, head_only: bool },
    /// A WebSocket upgrade: write `response`, then the WebSocket starts with `leftover`.
    Upgrade { request: Box<Request>, response: Vec<u8>, leftover: Vec<u8> },
}

impl Head {
    /// A reader that gives up on heads longer than `cap` bytes.
    pub(super) fn new(cap: usize) -> Head {
        Head { buf: Vec::new(), cap: cap.max(1) }
    }

    /// Reads until the head is complete, the cap is reached or the socket would block.
    pub(super) fn read_from(&mut self, stream: &mut impl Read) -> HeadStep {
        loop {
            let start = self.buf.len();
            let want = READ_CHUNK.min(self.cap - start);
            self.buf.resize(start + want, 0);
            let result = stream.read(&mut self.buf[start..]);
            let got = match &result {
                Ok(n) => *n,
                Err(_) => 0,
            };
            self.buf.truncate(start + got);
            match result {
                Ok(0) => return HeadStep::Gone,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return HeadStep::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return HeadStep::Gone,
            }
            match parse(&self.buf) {
                Ok(Some((len, request, head_only))) => return self.decide(len, request, head_only),
                Ok(None) if self.buf.len() >= self.cap => {
                    return HeadStep::Reject(http_response(431, "Request Header Fields Too Large"));
                }
                Ok(None) => {}
                Err(_) => return HeadStep::Reject(bad_request()),
            }
        }
    }

    fn decide(&mut self, len: usize, request: Request, head_only: bool) -> HeadStep {
        if head_only {
            return HeadStep::Plain { request: Box::new(request), head_only };
        }
        let Ok(response) = create_response(&request) else {
            return HeadStep::Plain { request: Box::new(request), head_only };
        };
        let mut bytes = Vec::with_capacity(160);
        if write_response(&mut bytes, &response).is_err() {
            return HeadStep::Reject(bad_request());
        }
        HeadStep::Upgrade { request: Box::new(request), response: bytes, leftover: self.buf.split_off(len) }
    }
}

/// Parses a request head with tungstenite's parser, which knows GET only: a HEAD request is
/// parsed as the same request with GET (and reported with `true`).
fn parse(buf: &[u8]) -> tungstenite::Result<Option<(usize, Request, bool)>> {
    if let Some(rest) = buf.strip_prefix(b"HEAD ") {
        let mut as_get = b"GET ".to_vec();
        as_get.extend_from_slice(rest);
        return Ok(Request::try_parse(&as_get)?.map(|(len, request)| (len + 1, request, true)));
    }
    Ok(Request::try_parse(buf)?.map(|(len, request)| (len, request, false)))
}

/// The answer to a request that is not a WebSocket upgrade.
pub(super) fn bad_request() -> Vec<u8> {
    http_response(400, "Bad Request")
}

/// The answer to a client that did not finish its request head in time.
pub(super) fn request_timeout() -> Vec<u8> {
    http_response(408, "Request Timeout")
}

/// The answer to an upgrade from an Origin outside the allowlist.
pub(super) fn forbidden() -> Vec<u8> {
    http_response(403, "Forbidden")
}

/// The answer to an address over a per-IP cap.
pub(super) fn too_many_requests(retry_after_s: u64) -> Vec<u8> {
    http_response_with(429, "Too Many Requests", &format!("Retry-After: {retry_after_s}\r\n"))
}

/// The answer to a connection beyond `max_connections`.
pub(super) fn service_unavailable() -> Vec<u8> {
    http_response_with(503, "Service Unavailable", "Retry-After: 10\r\n")
}

/// A complete `Connection: close` response whose body repeats the status line.
fn http_response(status: u16, reason: &str) -> Vec<u8> {
    http_response_with(status, reason, "")
}

/// [`http_response`] with `extra` header lines (each ending in CRLF).
fn http_response_with(status: u16, reason: &str, extra: &str) -> Vec<u8> {
    let body = format!("{status} {reason}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status code of a response built here (0 if it has none).
pub(super) fn status_of(response: &[u8]) -> u16 {
    response.get(9..12).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// What [`parse_request_head`](super::parse_request_head) decided about a request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadOutcome {
    /// More bytes are needed.
    Incomplete,
    /// The connection closed before the head was complete.
    Gone,
    /// A WebSocket upgrade on `path`, with the `Origin` and `X-Forwarded-For` values the
    /// shell would look at, and how many bytes followed the head.
    Upgrade { path: String, origin: Option<Vec<u8>>, forwarded_for: Vec<Vec<u8>>, leftover: usize },
    /// An HTTP answer with this status, then close.
    Reject(u16),
    /// A plain GET or HEAD on `path` (answered by the health, metrics or static routes, or 400).
    Plain { path: String },
}

/// Runs the head reader over `chunks` (one read each, then end of input when `closed`).
pub(super) fn parse_chunks(chunks: &[&[u8]], cap: usize, closed: bool) -> HeadOutcome {
    struct Feed<'a> {
        chunks: std::slice::Iter<'a, &'a [u8]>,
        pending: &'a [u8],
        closed: bool,
    }
    impl Read for Feed<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            while self.pending.is_empty() {
                match self.chunks.next() {
                    Some(chunk) => self.pending = chunk,
                    None if self.closed => return Ok(0),
                    None => return Err(io::ErrorKind::WouldBlock.into()),
                }
            }
            let n = self.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending = &self.pending[n..];
            Ok(n)
        }
    }
    let mut feed = Feed { chunks: chunks.iter(), pending: &[], closed };
    // The reader drains its socket on every call, so one call sees every chunk.
    match Head::new(cap).read_from(&mut feed) {
        HeadStep::Pending => HeadOutcome::Incomplete,
        HeadStep::Gone => HeadOutcome::Gone,
        HeadStep::Reject(response) => HeadOutcome::Reject(status_of(&response)),
        HeadStep::Plain { request, .. } => HeadOutcome::Plain { path: request.uri().path().to_string() },
        HeadStep::Upgrade { request, leftover, .. } => {
            let headers = request.headers();
            HeadOutcome::Upgrade {
                path: request.uri().path().to_string(),
                origin: headers.get("origin").map(|v| v.as_bytes().to_vec()),
                forwarded_for: headers.get_all("x-forwarded-for").iter().map(|v| v.as_bytes().to_vec()).collect(),
                leftover: leftover.len(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A socket that yields the given chunks, then would block.
    struct Chunks(VecDeque<Vec<u8>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(mut chunk) = self.0.pop_front() else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.push_front(chunk.split_off(n));
            }
            Ok(n)
        }
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| p.to_vec()).collect())
    }

    const UPGRADE: &[u8] = b"GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn status_line(bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        text.lines().next().unwrap_or_default().to_string()
    }

    #[test]
    fn upgrade_split_across_reads_keeps_leftover() {
        let (a, b) = UPGRADE.split_at(30);
        let mut head = Head::new(8192);
        assert!(matches!(head.read_from(&mut chunks(&[a])), HeadStep::Pending));
        let mut tail = b.to_vec();
        tail.extend_from_slice(b"\x81\x80");
        match head.read_from(&mut chunks(&[&tail])) {
            HeadStep::Upgrade { request, response, leftover } => {
                assert_eq!(request.uri().path(), "/ws");
                assert_eq!(leftover, b"\x81\x80");
                let text = String::from_utf8_lossy(&response).to_string();
                assert!(text.starts_with("HTTP/1.1 101"), "{text}");
                assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
            }
            _ => panic!("expected an upgrade"),
        }
    }

    #[test]
    fn plain_get_and_head_are_plain_requests() {
        let mut head = Head::new(8192);
        match head.read_from(&mut chunks(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"])) {
            HeadStep::Plain { request, head_only: false } => assert_eq!(request.uri().path(), "/"),
            _ => panic!("expected a plain request"),
        }
        match Head::new(8192).read_from(&mut chunks(&[b"HEAD /a.js?x HTTP/1.1\r\nHost: a\r\n\r\n"])) {
            HeadStep::Plain { request, head_only: true } => assert_eq!(request.uri().path(), "/a.js"),
            _ => panic!("expected a plain HEAD request"),
        }
    }

    #[test]
    fn other_methods_and_garbage_are_rejected() {
        for input in [&b"POST / HTTP/1.1\r\n\r\n"[..], b"\x16\x03\x01garbage\r\n\r\n"] {
            let mut head = Head::new(8192);
            assert!(matches!(head.read_from(&mut chunks(&[input])), HeadStep::Reject(_)));
        }
    }

    #[test]
    fn head_over_the_cap_is_rejected_with_431() {
        let mut head = Head::new(64);
        let long = [b'a'; 100];
        match head.read_from(&mut chunks(&[b"GET / HTTP/1.1\r\nX: ", &long])) {
            HeadStep::Reject(bytes) => assert!(status_line(&bytes).contains("431")),
            _ => panic!("expected a rejection"),
        }
    }

    #[test]
    fn refusals_carry_their_status_and_retry_after() {
        let text = String::from_utf8(too_many_requests(7)).unwrap();
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{text}");
        assert!(text.contains("\r\nRetry-After: 7\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n429 Too Many Requests\n"), "{text}");
        assert_eq!(status_of(&too_many_requests(1)), 429);
        assert_eq!(status_of(&forbidden()), 403);
        assert_eq!(status_of(&service_unavailable()), 503);
        assert_eq!(status_of(b"HTTP/1."), 0);
    }

    #[test]
    fn chunked_parsing_agrees_with_one_read() {
        let whole = parse_chunks(&[UPGRADE], 8192, false);
        assert!(matches!(&whole, HeadOutcome::Upgrade { path, leftover: 0, .. } if path == "/ws"), "{whole:?}");
        for split in 0..UPGRADE.len() {
            let (a, b) = UPGRADE.split_at(split);
            assert_eq!(parse_chunks(&[a, b], 8192, false), whole, "split at {split}");
        }
        assert_eq!(parse_chunks(&[&UPGRADE[..10]], 8192, false), HeadOutcome::Incomplete);
        assert_eq!(parse_chunks(&[&UPGRADE[..10]], 8192, true), HeadOutcome::Gone);
        assert_eq!(parse_chunks(&[b"GET / HTTP/1.1\r\n\r\n"], 8192, false), HeadOutcome::Plain { path: "/".into() });
    }

    #[test]
    fn hang_up_before_the_end_is_gone() {
        let mut head = Head::new(8192);
        let mut stream = chunks(&[b"GET / HT"]);
        assert!(matches!(head.read_from(&mut stream), HeadStep::Pending));
        stream.0.push_back(Vec::new());
        assert!(matches!(head.read_from(&mut stream), HeadStep::Gone));
    }
}
