//! One client connection as a state machine:
//! request head → upgrade response → open WebSocket → closing → gone,
//! or request head → HTTP answer (in the closing state) → gone.
//!
//! This module owns the per-phase socket work that needs no core and no registry; the event loop
//! moves connections between phases, registers them and talks to the core.

use super::head::Head;
use super::ws::Socket;
use super::ws::Ws;
use crate::core::Millis;
use crate::core::PeerInfo;
use mio::Interest;
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use tungstenite::Error;

/// A connection in the slab. Its key is its mio `Token` and its core `ConnId`.
pub(super) struct Conn {
    pub(super) phase: Phase,
    pub(super) peer: SocketAddr,
    /// Unique per accepted socket, so a timer set for an earlier holder of the key is ignored.
    pub(super) serial: u64,
    /// When the current phase times out (head, upgrade and closing phases).
    pub(super) deadline: Option<Millis>,
    /// The interest the socket is registered with.
    pub(super) interest: Interest,
    /// Bytes are waiting for the socket to become writable.
    pub(super) want_write: bool,
    /// Already in the event loop's list of connections to flush this turn.
    pub(super) dirty: bool,
    /// When the connection became dirty (the start of that loop turn, µs on the shell's clock).
    pub(super) dirty_since_us: u64,
    /// What the per-IP caps count this connection under, once admitted (released when it goes).
    pub(super) ip_key: Option<IpAddr>,
    /// Already in the event loop's list of connections with input left after their read budget.
    pub(super) backlogged: bool,
}

impl Conn {
    /// Whether a timer entry `(deadline, serial)` is still this connection's current deadline
    /// (not one it moved past, nor one set for an earlier socket under the same key).
    pub(super) fn awaits(&self, deadline: Millis, serial: u64) -> bool {
        self.serial == serial && self.deadline == Some(deadline)
    }
}

/// Where a connection is in its life.
pub(super) enum Phase {
    /// Reading the HTTP request head.
    Head { stream: TcpStream, head: Head },
    /// Writing the `101 Switching Protocols` response. Phases other than the open one are
    /// boxed or small, so that the slab entry every connection keeps stays small.
    Upgrading(Box<Upgrading>),
    /// An open WebSocket known to the core.
    Open(Box<Ws>),
    /// Writing the last bytes, then waiting for the peer to hang up.
    Closing(Box<Closing>),
    /// The socket is dropped; the slab entry goes at the end of the turn.
    Gone,
}

impl Phase {
    /// The socket, for (re)registration; `None` once gone.
    pub(super) fn source(&mut self) -> Option<&mut TcpStream> {
        match self {
            Phase::Head { stream, .. } => Some(stream),
            Phase::Upgrading(up) => Some(&mut up.stream),
            Phase::Open(ws) => Some(ws.tcp()),
            Phase::Closing(closing) => Some(closing.stream()),
            Phase::Gone => None,
        }
    }
}

/// A `101` response on its way out, the bytes that followed the request head, and what the
/// core will be told about the peer.
pub(super) struct Upgrading {
    pub(super) stream: TcpStream,
    pub(super) response: Vec<u8>,
    pub(super) written: usize,
    pub(super) leftover: Vec<u8>,
    pub(super) peer: PeerInfo,
}

/// Progress of a phase that writes to a socket.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Waiting for the socket; `want_write` tells whether WRITABLE matters.
    Waiting { want_write: bool },
    /// The phase's work is done.
    Finished,
    /// The peer is gone or the socket failed.
    Failed,
}

impl Upgrading {
    /// Writes the rest of the response.
    pub(super) fn write(&mut self) -> Progress {
        match write_all_nonblocking(&mut self.stream, &self.response, &mut self.written) {
            Ok(true) => Progress::Finished,
            Ok(false) => Progress::Waiting { want_write: true },
            Err(_) => Progress::Failed,
        }
    }
}

/// What a closing connection still has to write.
enum Tail {
    /// A WebSocket whose buffer ends with a close frame.
    WebSocket(Box<Socket>),
    /// A plain HTTP response.
    Raw { stream: TcpStream, bytes: Vec<u8>, written: usize },
}

/// A connection on its way out: flush the tail, half-close, and read and discard input until the
/// peer hangs up, so that the peer never blocks on a full socket and unread input never turns
/// the close into a reset that loses the tail.
pub(super) struct Closing {
    tail: Tail,
    flushed: bool,
    /// The peer has hung up its sending side.
    peer_done: bool,
    /// Input was left unread when the read budget ran out; no readiness event will announce it.
    pub(super) more_input: bool,
}

impl Closing {
    pub(super) fn websocket(socket: Socket) -> Closing {
        Closing { tail: Tail::WebSocket(Box::new(socket)), flushed: false, peer_done: false, more_input: false }
    }

    pub(super) fn http(stream: TcpStream, response: Vec<u8>) -> Closing {
        Closing {
            tail: Tail::Raw { stream, bytes: response, written: 0 },
            flushed: false,
            peer_done: false,
            more_input: false,
        }
    }

    fn stream(&mut self) -> &mut TcpStream {
        match &mut self.tail {
            Tail::WebSocket(socket) => &mut socket.stream.inner,
            Tail::Raw { stream, .. } => stream,
        }
    }

    /// Moves the close along as far as the socket allows. `Finished` means the tail is written
    /// and the peer hung up.
    pub(super) fn progress(&mut self) -> Progress {
        if !self.flushed {
            let done = match &mut self.tail {
                Tail::WebSocket(socket) => match socket.flush() {
                    Ok(()) | Err(Error::ConnectionClosed | Error::AlreadyClosed) => Ok(true),
                    Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                    Err(_) => Err(()),
                },
                Tail::Raw { stream, bytes, written } => write_all_nonblocking(stream, bytes, written).map_err(|_| ()),
            };
            match done {
                Ok(true) => {
                    self.flushed = true;
                    // Errors only mean the peer is already gone, which the read below sees.
                    let _ = self.stream().shutdown(Shutdown::Write);
                }
                Ok(false) => {}
                Err(()) => return Progress::Failed,
            }
        }
        self.more_input = false;
        if !self.peer_done {
            match discard_input(self.stream()) {
                Ok(Discarded::HungUp) => self.peer_done = true,
                Ok(Discarded::Drained) => {}
                Ok(Discarded::Budget) => self.more_input = true,
                Err(_) => return Progress::Failed,
            }
        }
        match (self.flushed, self.peer_done) {
            (true, true) => Progress::Finished,
            (flushed, _) => Progress::Waiting { want_write: !flushed },
        }
    }
}

/// Writes `bytes[*written..]`; `Ok(true)` once all is written, `Ok(false)` if the socket is full.
fn write_all_nonblocking(stream: &mut TcpStream, bytes: &[u8], written: &mut usize) -> io::Result<bool> {
    while *written < bytes.len() {
        match stream.write(&bytes[*written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads a closing connection may do per call, so that a peer that keeps sending cannot hold
/// the loop: 64 × 4 KiB.
const DISCARD_READS: usize = 64;

/// How far [`discard_input`] got.
enum Discarded {
    HungUp,
    /// The socket would block.
    Drained,
    /// The read budget ran out with input possibly left.
    Budget,
}

/// Reads and drops input until the socket would block, the peer hung up or the budget is spent.
fn discard_input(stream: &mut TcpStream) -> io::Result<Discarded> {
    let mut scratch = [0u8; 4096];
    let mut reads = 0;
    while reads < DISCARD_READS {
        match stream.read(&mut scratch) {
            Ok(0) => return Ok(Discarded::HungUp),
            Ok(_) => reads += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Discarded::Drained),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Discarded::Budget)
}
