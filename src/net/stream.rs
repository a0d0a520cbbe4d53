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
    /// Where the bytes handed to tungstenite end in the client's frames.
    given: FrameTrack,
    /// The last read found the socket empty (nothing handed since).
    drained: bool,
}

/// Follows the client's frames (RFC 6455 §5.2) through the bytes handed to tungstenite, so the
/// shell knows when tungstenite holds no part of a frame or message.
#[derive(Default)]
struct FrameTrack {
    /// Header bytes seen of the frame being read (at most 14).
    header: [u8; 14],
    have: usize,
    /// Payload bytes still to come of the current frame.
    payload_left: u64,
    /// Inside a fragmented data message (a data frame without FIN, until the final continuation).
    in_message: bool,
}

impl FrameTrack {
    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let k = usize::try_from(self.payload_left).unwrap_or(usize::MAX).min(bytes.len());
                self.payload_left -= k as u64;
                bytes = &bytes[k..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have < 2 {
                continue;
            }
            let extended = match self.header[1] & 0x7F {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
            if self.have < 2 + extended + mask {
                continue;
            }
            self.payload_left = match extended {
                2 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                8 => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(&self.header[2..10]);
                    u64::from_be_bytes(len)
                }
                _ => u64::from(self.header[1] & 0x7F),
            };
            let fin = self.header[0] & 0x80 != 0;
            // Data frames (continuation 0, text 1, binary 2) open or close a message; control
            // frames (8 and up) may come between fragments and change nothing.
            if self.header[0] & 0x0F < 8 {
                self.in_message = !fin;
            }
            self.have = 0;
        }
    }

    fn at_message_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0 && !self.in_message
    }
}

impl OutStream {
    pub(super) fn new(inner: TcpStream, read_chunk: usize) -> OutStream {
        OutStream {
            inner,
            raw: Vec::new(),
            sent: 0,
            ahead: Vec::new(),
            taken: 0,
            read_chunk: read_chunk.max(1),
            given: FrameTrack::default(),
            drained: false,
        }
    }

    /// Counts bytes handed to tungstenite other than through `read` (those that came with the
    /// request head).
    pub(super) fn handed(&mut self, bytes: &[u8]) {
        self.given.advance(bytes);
    }

    /// Whether tungstenite holds no input: the socket was found empty and what it was given
    /// ends with a whole message. Its state can then be dropped and made anew.
    pub(super) fn at_rest(&self) -> bool {
        self.drained && self.ahead.is_empty() && self.given.at_message_boundary()
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
        let result = self.read_ahead(buf);
        match &result {
            Ok(n) => {
                self.drained = false;
                self.given.advance(&buf[..*n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.drained = true,
            Err(_) => {}
        }
        result
    }
}

impl OutStream {
    fn read_ahead(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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

    /// A client frame: FIN and opcode, masked, with this payload.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        Frame::message(payload.to_vec(), OpCode::Data(Data::Text), fin).format(&mut frame).unwrap();
        frame[0] = (frame[0] & 0xF0) | opcode;
        // Set the mask bit and insert a zero mask key (XOR with zeros keeps the payload).
        frame[1] |= 0x80;
        let header_len = match payload.len() {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        frame.splice(header_len..header_len, [0u8; 4]);
        frame
    }

    #[test]
    fn frame_track_finds_message_boundaries_byte_by_byte() {
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for (fin, opcode, len) in [(true, 1, 5), (false, 1, 200), (true, 9, 3), (true, 0, 70_000), (true, 1, 0)] {
            stream.extend(client_frame(fin, opcode, &vec![b'a'; len]));
            ends.push(stream.len());
        }
        // After the unfinished text frame, the ping between its fragments is no message boundary.
        let expected = [true, false, false, true, true];
        let mut track = super::FrameTrack::default();
        let mut at = 0;
        for (i, end) in ends.iter().enumerate() {
            while at < *end {
                track.advance(&stream[at..at + 1]);
                at += 1;
                if at < *end {
                    assert!(!track.at_message_boundary(), "inside frame {i} at {at}");
                }
            }
            assert_eq!(track.at_message_boundary(), expected[i], "after frame {i}");
        }
    }

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
