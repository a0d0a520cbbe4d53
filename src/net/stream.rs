//! A TCP stream that counts the bytes it has written.
//!
//! tungstenite keeps its own output buffer and does not say how full it is; counting what
//! actually reached the socket lets the outbox know how many handed-over bytes are still waiting.

use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// A non-blocking TCP stream plus the number of bytes written since the last [`reset`].
///
/// [`reset`]: CountingStream::reset_written
pub(super) struct CountingStream {
    pub(super) inner: TcpStream,
    written: usize,
}

impl CountingStream {
    pub(super) fn new(inner: TcpStream) -> CountingStream {
        CountingStream { inner, written: 0 }
    }

    /// Bytes written since the last reset.
    pub(super) fn written(&self) -> usize {
        self.written
    }

    pub(super) fn reset_written(&mut self) {
        self.written = 0;
    }
}

impl Read for CountingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for CountingStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written = self.written.saturating_add(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
