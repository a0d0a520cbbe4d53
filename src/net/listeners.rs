//! The listening sockets: binding every configured address and accepting from them.
//!
//! Accepting stops at `WouldBlock`. Running out of descriptors (EMFILE, ENFILE) or memory leaves
//! the connection in the backlog with no new readiness edge to come, so the caller pauses
//! accepting and retries on a timer or after a connection closes.

use mio::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;

/// What one accept attempt gave.
pub(super) enum Accepted {
    Stream(TcpStream, SocketAddr),
    /// The backlog is empty.
    Drained,
    /// Accepting failed for lack of resources; pause and retry later.
    Exhausted(io::Error),
}

/// Binds every address, failing on the first that cannot be bound.
pub(super) fn bind_all(addrs: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listen address configured"));
    }
    addrs
        .iter()
        .map(|addr| {
            TcpListener::bind(*addr).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        })
        .collect()
}

/// Accepts one connection, skipping connections that died in the backlog.
pub(super) fn accept_one(listener: &TcpListener) -> Accepted {
    loop {
        match listener.accept() {
            Ok((stream, addr)) => return Accepted::Stream(stream, addr),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Drained,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => return Accepted::Exhausted(e),
        }
    }
}
