//! An open WebSocket: the tungstenite socket plus the connection's outgoing queue.
//!
//! Frames from the core wait in a queue of shared buffers and are handed to tungstenite at flush
//! time, at most `batch` bytes at once, so one flush is one write system call in the common case.
//! The queue plus what tungstenite still holds is the connection's outgoing byte count, checked
//! against the soft cap (droppable frames are skipped) and the hard cap (the connection must go).

use super::stream::CountingStream;
use crate::config::Config;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tungstenite::{Error, Message, Utf8Bytes};

/// Room in tungstenite's buffer for control frames (pong, close) on top of data.
const CONTROL_SLACK: usize = 512;

/// Largest batch gathered into one write.
const MAX_BATCH: usize = 1 << 30;

/// The caps that apply to every WebSocket's outgoing side.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    batch: usize,
    /// Queued bytes at which a connection is flushed at once rather than at the end of the turn.
    early_flush: usize,
    soft: usize,
    hard: usize,
}

impl Limits {
    pub(super) fn new(config: &Config) -> Limits {
        let batch = config.write_buffer_bytes.clamp(1, MAX_BATCH);
        Limits {
            batch,
            early_flush: (config.send_queue_soft_bytes / 2).max(batch),
            soft: config.send_queue_soft_bytes,
            hard: config.send_queue_hard_bytes,
        }
    }

    /// tungstenite's settings: small read buffer, frame and message caps, and a write buffer
    /// that can hold one batch plus the largest frame the hard cap lets through.
    pub(super) fn websocket_config(&self, config: &Config) -> WebSocketConfig {
        let max_write = self.batch.saturating_add(self.hard).saturating_add(CONTROL_SLACK);
        WebSocketConfig::default()
            .read_buffer_size(config.read_buffer_bytes.max(1))
            .write_buffer_size(self.batch)
            .max_write_buffer_size(max_write)
            .max_frame_size(Some(config.max_message_bytes))
            .max_message_size(Some(config.max_message_bytes))
    }
}

/// What happened to a frame offered with [`Ws::push`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Push {
    Queued,
    /// Queued, but the connection is now over its hard cap and must be closed.
    Overflow,
}

/// The outcome of [`Ws::flush`].
pub(super) enum Flushed {
    /// Everything is written.
    Done,
    /// The socket is full; wait for WRITABLE.
    Blocked,
    /// tungstenite's buffer refused a frame: the connection is over its hard cap.
    Overflow,
    /// The connection is unusable.
    Failed(Error),
}

/// An open WebSocket and its outgoing queue.
pub(super) struct Ws {
    pub(super) socket: WebSocket<CountingStream>,
    frames: VecDeque<Utf8Bytes>,
    /// Wire bytes of the frames in `frames`.
    queued: usize,
    /// Wire bytes handed to tungstenite since it last had nothing left to write.
    handed: usize,
    /// Droppable frames skipped since the queue last drained.
    dropped: usize,
    limits: Limits,
}

impl Ws {
    /// A server socket over `stream`, starting with bytes already read past the request head.
    pub(super) fn new(stream: TcpStream, leftover: Vec<u8>, config: WebSocketConfig, limits: Limits) -> Ws {
        let socket = WebSocket::from_partially_read(CountingStream::new(stream), leftover, Role::Server, Some(config));
        Ws { socket, frames: VecDeque::new(), queued: 0, handed: 0, dropped: 0, limits }
    }

    /// Outgoing bytes not yet accepted by the kernel: the queue plus tungstenite's share.
    pub(super) fn pending(&self) -> usize {
        self.queued + self.in_tungstenite()
    }

    fn in_tungstenite(&self) -> usize {
        self.handed.saturating_sub(self.socket.get_ref().written())
    }

    /// Whether the queue grew large enough to write before the end of the turn.
    pub(super) fn wants_early_flush(&self) -> bool {
        self.queued >= self.limits.early_flush
    }

    /// Whether droppable frames are skipped: the reader is above the soft cap.
    pub(super) fn is_behind(&self) -> bool {
        self.pending() > self.limits.soft
    }

    /// Counts a droppable frame skipped because the reader is behind.
    pub(super) fn count_dropped(&mut self) {
        self.dropped += 1;
    }

    /// How many frames were skipped since the last call.
    pub(super) fn take_dropped(&mut self) -> usize {
        std::mem::take(&mut self.dropped)
    }

    /// Queues a text frame and checks the hard cap.
    pub(super) fn push(&mut self, frame: Utf8Bytes) -> Push {
        self.queued += wire_len(frame.len());
        self.frames.push_back(frame);
        if self.pending() > self.limits.hard { Push::Overflow } else { Push::Queued }
    }

    /// Writes as much as the socket takes, one batch per system call.
    pub(super) fn flush(&mut self) -> Flushed {
        loop {
            let mut in_tungstenite = self.in_tungstenite();
            while let Some(front) = self.frames.front() {
                let len = wire_len(front.len());
                if in_tungstenite > 0 && in_tungstenite + len > self.limits.batch {
                    break;
                }
                let Some(frame) = self.frames.pop_front() else { break };
                self.queued -= len;
                self.handed += len;
                in_tungstenite += len;
                match self.socket.write(Message::Text(frame)) {
                    Ok(()) => {}
                    // The frame is in tungstenite's buffer; the socket is full.
                    Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Flushed::Blocked;
                    }
                    Err(Error::WriteBufferFull(_)) => return Flushed::Overflow,
                    Err(e) => return Flushed::Failed(e),
                }
            }
            match self.socket.flush() {
                Ok(()) => {
                    self.handed = 0;
                    self.socket.get_mut().reset_written();
                    if self.frames.is_empty() {
                        return Flushed::Done;
                    }
                }
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Flushed::Blocked;
                }
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Flushed::Failed(e),
            }
        }
    }

    /// Queues a close frame behind the pending frames (or instead of them, when `discard` is
    /// set) and returns the socket, whose remaining bytes the caller flushes best-effort.
    pub(super) fn close(mut self, code: u16, reason: &str, discard: bool) -> WebSocket<CountingStream> {
        // Gather everything in tungstenite's buffer without a system call per frame.
        self.socket.set_config(|c| c.write_buffer_size = c.max_write_buffer_size - 1);
        if !discard {
            for frame in self.frames.drain(..) {
                match self.socket.write(Message::Text(frame)) {
                    Ok(()) => {}
                    Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
        }
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        // The close frame is queued even when this reports that the socket would block.
        let _ = self.socket.close(Some(frame));
        self.socket
    }
}

/// Bytes a server (unmasked) frame with this payload length takes on the wire.
fn wire_len(payload: usize) -> usize {
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

    #[test]
    fn wire_lengths_follow_rfc_6455() {
        assert_eq!(wire_len(0), 2);
        assert_eq!(wire_len(125), 127);
        assert_eq!(wire_len(126), 130);
        assert_eq!(wire_len(65_535), 65_539);
        assert_eq!(wire_len(65_536), 65_546);
    }
}
