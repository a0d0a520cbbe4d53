//! The TCP stream under a WebSocket, with the shell's own outgoing frames in front of it.
//!
//! Text frames from the core are encoded here directly (a server frame is a two- to ten-byte
//! header and the payload, unmasked; RFC 6455 §5.2) into one buffer per connection and written
//! with one system call. tungstenite writes only control frames (pong, close) through this same
//! stream, and every write of its first drains the shell's buffer, so frames never interleave.
//!
//! Reading goes through here too: a system call reads up to a chunk into a buffer that exists
//! only while some of it waits for tungstenite, so an idle connection holds no read buffer
//! (tungstenite's own is kept small; see `ws.rs`).

use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// A non-blocking TCP stream plus the shell's frames not yet written.
pub(super) struct OutStream {
    pub(super) inner: TcpStream,
    /// Whole WebSocket frames, written before anything tungstenite writes.
    raw: Vec<u8>,
    /// How much of `raw` has reached the socket.
    sent: usize,
    /// Bytes read from the socket that tungstenite has not taken yet (empty, unallocated, when
    /// none wait).
    ahead: Vec<u8>,
    /// How much of `ahead` tungstenite has taken.
    taken: usize,
    /// The most read per system call.
    read_chunk: usize,
}

impl OutStream {
    pub(super) fn new(inner: TcpStream, read_chunk: usize) -> OutStream {
        OutStream { inner, raw: Vec::new(), sent: 0, ahead: Vec::new(), taken: 0, read_chunk: read_chunk.max(1) }
    }

    /// Bytes of the shell's frames not yet accepted by the kernel.
    pub(super) fn unsent(&self) -> usize {
        self.raw.len() - self.sent
    }

    /// Makes room for `bytes` more without reallocating on the way.
    pub(super) fn reserve(&mut self, bytes: usize) {
        self.raw.reserve(bytes);
    }

    /// Appends a whole text frame with this payload.
    pub(super) fn push_text_frame(&mut self, payload: &[u8]) {
        self.raw.reserve(wire_len(payload.len()));
        self.raw.push(0x81); // FIN, opcode 1 (text)
        let len = payload.len() as u64;
        match len {
            0..=125 => self.raw.push(len as u8),
            126..=0xFFFF => {
                self.raw.push(126);
                self.raw.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                self.raw.push(127);
                self.raw.extend_from_slice(&len.to_be_bytes());
            }
        }
        self.raw.extend_from_slice(payload);
    }

    /// Writes the shell's frames until done or the socket is full (`WouldBlock`).
    pub(super) fn drain(&mut self) -> io::Result<()> {
        while self.sent < self.raw.len() {
            match self.inner.write(&self.raw[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.sent = 0;
        // Written out: an idle connection holds no write buffer.
        self.raw = Vec::new();
        Ok(())
    }
}

impl Read for OutStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.taken == self.ahead.len() {
            if buf.len() >= self.read_chunk {
                return self.inner.read(buf);
            }
            self.ahead.resize(self.read_chunk, 0);
            self.taken = 0;
            match self.inner.read(&mut self.ahead) {
                Ok(n) => self.ahead.truncate(n),
                Err(e) => {
                    self.ahead = Vec::new();
                    return Err(e);
                }
            }
        }
        let n = (self.ahead.len() - self.taken).min(buf.len());
        buf[..n].copy_from_slice(&self.ahead[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.ahead.len() {
            self.ahead = Vec::new();
            self.taken = 0;
        }
        Ok(n)
    }
}

/// What tungstenite writes goes out only after the shell's frames.
impl Write for OutStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.drain()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }
}

/// Bytes a server (unmasked) frame with this payload length takes on the wire.
pub(super) fn wire_len(payload: usize) -> usize {
    let header = match payload {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    payload + header
}

#[cfg(test)]
mod tests {
    use super::wire_len;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    use tungstenite::protocol::frame::{Frame, FrameHeader};

    #[test]
    fn wire_lengths_follow_rfc_6455() {
        assert_eq!(wire_len(0), 2);
        assert_eq!(wire_len(125), 127);
        assert_eq!(wire_len(126), 130);
        assert_eq!(wire_len(65_535), 65_539);
        assert_eq!(wire_len(65_536), 65_546);
    }

    #[test]
    fn frames_match_what_tungstenite_writes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut out = super::OutStream::new(mio::net::TcpStream::from_std(server), 512);
        drop(client);
        for len in [0, 1, 125, 126, 65_535, 65_536, 70_000] {
            let payload = vec![b'x'; len];
            out.push_text_frame(&payload);
            let mut expected = Vec::new();
            Frame::message(payload, OpCode::Data(Data::Text), true).format(&mut expected).unwrap();
            assert_eq!(out.raw, expected, "payload of {len}");
            let mut cursor = std::io::Cursor::new(&out.raw);
            let (header, length) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(length, len as u64);
            out.raw.clear();
        }
    }
}
