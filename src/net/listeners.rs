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

/// Binds every address, failing on the first that cannot be bound. `backlog` is how many
/// connections the kernel queues before they are accepted (capped by `net.core.somaxconn`).
pub(super) fn bind_all(addrs: &[SocketAddr], backlog: u32) -> io::Result<Vec<TcpListener>> {
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listen address configured"));
    }
    addrs
        .iter()
        .map(|addr| {
            let listener = TcpListener::bind(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            set_backlog(&listener, backlog);
            Ok(listener)
        })
        .collect()
}

/// mio listens with the standard library's backlog of 128, which a join storm overflows (the
/// kernel then drops SYNs and clients retry a second later). Listening again on a listening
/// socket only changes its backlog.
fn set_backlog(listener: &TcpListener, backlog: u32) {
    use std::ffi::c_int;
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn listen(fd: c_int, backlog: c_int) -> c_int;
    }
    let backlog = c_int::try_from(backlog).unwrap_or(c_int::MAX);
    // SAFETY: listen(2) takes two integers and touches no memory of this process; the descriptor
    // belongs to `listener`, which is alive for the whole call, so it names the right socket.
    let result = unsafe { listen(listener.as_raw_fd(), backlog) };
    if result != 0 {
        log::warn!("cannot set the listen backlog to {backlog}: {}", io::Error::last_os_error());
    }
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
