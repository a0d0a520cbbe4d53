//! An open WebSocket: the tungstenite socket plus the connection's outgoing queue.
//!
//! tungstenite reads; the shell writes. Frames from the core wait in a queue of shared buffers
//! and, at flush time, are encoded straight into the stream's buffer, at most `batch` bytes at
//! once, so one flush is one write system call in the common case (see `stream.rs`). The queue
//! plus the unsent encoded bytes is the connection's outgoing byte count, checked against the
//! soft cap (droppable frames are skipped) and the hard cap (the connection must go).

use super::stream::{OutStream, wire_len};
use crate::config::Config;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use tungstenite::Error;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};

/// Room in tungstenite's buffer for control frames (pong, close) on top of data.
const CONTROL_SLACK: usize = 512;

/// tungstenite's own read buffer, which every connection keeps: small, since the system calls
/// read into the stream's transient buffer of `read_buffer_bytes` (see `stream.rs`); a bigger
/// frame grows it for that connection only.
const FRAME_BUFFER: usize = 128;

/// Queue capacity (frames) an emptied queue may keep.
const IDLE_QUEUE_CAPACITY: usize = 8;

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
    /// The most read per system call (`read_buffer_bytes`).
    read_chunk: usize,
}

impl Limits {
    pub(super) fn new(config: &Config) -> Limits {
        let batch = config.write_buffer_bytes.clamp(1, MAX_BATCH);
        Limits {
            batch,
            early_flush: (config.send_queue_soft_bytes / 2).max(batch),
            soft: config.send_queue_soft_bytes,
            hard: config.send_queue_hard_bytes,
            read_chunk: config.read_buffer_bytes.max(1),
        }
    }

    /// tungstenite's settings: small read buffer, frame and message caps, and a write buffer
    /// for the control frames it still writes (pong, close).
    pub(super) fn websocket_config(&self, config: &Config) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(FRAME_BUFFER)
            .write_buffer_size(0)
            .max_write_buffer_size(CONTROL_SLACK)
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
    /// tungstenite's buffer refused a control frame: the peer does not read.
    Overflow,
    /// The connection is unusable.
    Failed(Error),
}

/// An open WebSocket and its outgoing queue.
pub(super) struct Ws {
    pub(super) socket: WebSocket<OutStream>,
    /// Frames shared with the other recipients of the same broadcast.
    frames: VecDeque<Rc<str>>,
    /// Wire bytes of the frames in `frames`.
    queued: usize,
    /// Droppable frames skipped since the queue last drained.
    dropped: usize,
    /// Frames the last flush found queued: an empty queue is given room for as many at once,
    /// so a steady stream does not regrow it frame by frame after every flush.
    last_burst: u16,
}

impl Ws {
    /// A server socket over `stream`, starting with bytes already read past the request head.
    pub(super) fn new(stream: TcpStream, leftover: Vec<u8>, config: WebSocketConfig, limits: &Limits) -> Ws {
        let stream = OutStream::new(stream, limits.read_chunk);
        let socket = WebSocket::from_partially_read(stream, leftover, Role::Server, Some(config));
        Ws { socket, frames: VecDeque::new(), queued: 0, dropped: 0, last_burst: 0 }
    }

    /// Outgoing bytes not yet accepted by the kernel: the queue plus the encoded, unsent bytes.
    pub(super) fn pending(&self) -> usize {
        self.queued + self.socket.get_ref().unsent()
    }

    /// Whether the queue grew large enough to write before the end of the turn.
    pub(super) fn wants_early_flush(&self, limits: &Limits) -> bool {
        self.queued >= limits.early_flush
    }

    /// Whether droppable frames are skipped: the reader is above the soft cap.
    pub(super) fn is_behind(&self, limits: &Limits) -> bool {
        self.pending() > limits.soft
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
    pub(super) fn push(&mut self, frame: Rc<str>, limits: &Limits) -> Push {
        if self.frames.capacity() == 0 {
            self.frames.reserve(usize::from(self.last_burst));
        }
        self.queued += wire_len(frame.len());
        self.frames.push_back(frame);
        if self.pending() > limits.hard { Push::Overflow } else { Push::Queued }
    }

    /// Writes as much as the socket takes, one batch per system call.
    pub(super) fn flush(&mut self, limits: &Limits) -> Flushed {
        // A flush for a control frame or a writable socket finds the queue empty: no burst.
        if !self.frames.is_empty() {
            self.last_burst = u16::try_from(self.frames.len()).unwrap_or(u16::MAX);
        }
        loop {
            // Writes what is already encoded, then tungstenite's control frames (a pong).
            match self.socket.flush() {
                Ok(()) => {}
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(Error::WriteBufferFull(_)) => return Flushed::Overflow,
                Err(e) => return Flushed::Failed(e),
            }
            if self.frames.is_empty() {
                // A burst's worth of queue capacity is not kept by an idle connection.
                if self.frames.capacity() > IDLE_QUEUE_CAPACITY {
                    self.frames = VecDeque::new();
                }
                return Flushed::Done;
            }
            self.encode_batch(limits);
        }
    }

    /// Moves frames from the queue into the stream's buffer, up to one batch (at least one). The
    /// buffer is sized for the whole batch first, so it is allocated once rather than regrown.
    fn encode_batch(&mut self, limits: &Limits) {
        let mut batch = 0;
        let mut count = 0;
        for frame in &self.frames {
            let len = wire_len(frame.len());
            if count > 0 && batch + len > limits.batch {
                break;
            }
            batch += len;
            count += 1;
        }
        let out = self.socket.get_mut();
        out.reserve(batch);
        for frame in self.frames.drain(..count) {
            out.push_text_frame(frame.as_bytes());
        }
        self.queued -= batch;
    }

    /// Queues a close frame behind the pending frames (or instead of them, when `discard` is
    /// set) and returns the socket, whose remaining bytes the caller flushes best-effort.
    pub(super) fn close(mut self, code: u16, reason: &str, discard: bool) -> WebSocket<OutStream> {
        // Everything queued is encoded ahead of the close frame (the queue is under the hard cap).
        if !discard {
            let out = self.socket.get_mut();
            for frame in self.frames.drain(..) {
                out.push_text_frame(frame.as_bytes());
            }
        }
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        // The close frame is queued even when this reports that the socket would block.
        let _ = self.socket.close(Some(frame));
        self.socket
    }
}
