//! An open WebSocket: the stream, tungstenite's protocol state over it, and the connection's
//! outgoing queue.
//!
//! A connection at rest (its input read up to a whole message, everything written) drops
//! tungstenite's state, buffer included, and makes it anew when input arrives: an idle client
//! holds no more than this struct.
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
use std::io::{self, Write};
use std::rc::Rc;
use tungstenite::Error;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Message, Result};

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

/// A stream with tungstenite's state over it: what a closing WebSocket keeps.
pub(super) struct Socket {
    pub(super) stream: OutStream,
    context: WebSocketContext,
}

impl Socket {
    /// Writes tungstenite's pending frames (a close, a pong) after the shell's.
    pub(super) fn flush(&mut self) -> Result<()> {
        self.context.flush(&mut self.stream)
    }
}

/// An open WebSocket and its outgoing queue.
pub(super) struct Ws {
    stream: OutStream,
    /// tungstenite's state; `None` while the connection is at rest.
    context: Option<Box<WebSocketContext>>,
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
        let mut stream = OutStream::new(stream, limits.read_chunk);
        stream.handed(&leftover);
        let context = WebSocketContext::from_partially_read(leftover, Role::Server, Some(config));
        Ws { stream, context: Some(Box::new(context)), frames: VecDeque::new(), queued: 0, dropped: 0, last_burst: 0 }
    }

    /// The next message from the client, tungstenite's state made anew if the connection rested.
    pub(super) fn read(&mut self, config: WebSocketConfig) -> Result<Message> {
        let context = self.context.get_or_insert_with(|| Box::new(WebSocketContext::new(Role::Server, Some(config))));
        context.read(&mut self.stream)
    }

    /// The TCP socket, for (re)registration.
    pub(super) fn tcp(&mut self) -> &mut TcpStream {
        &mut self.stream.inner
    }

    /// Outgoing bytes not yet accepted by the kernel: the queue plus the encoded, unsent bytes.
    pub(super) fn pending(&self) -> usize {
        self.queued + self.stream.unsent()
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
            let flushed = match self.context.as_mut() {
                Some(context) => context.flush(&mut self.stream),
                None => self.stream.flush().map_err(Error::Io),
            };
            match flushed {
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
                if self.stream.at_rest() {
                    self.context = None;
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
        let out = &mut self.stream;
        out.reserve(batch);
        for frame in self.frames.drain(..count) {
            out.push_text_frame(frame.as_bytes());
        }
        self.queued -= batch;
    }

    /// Queues a close frame behind the pending frames (or instead of them, when `discard` is
    /// set) and returns the socket, whose remaining bytes the caller flushes best-effort.
    pub(super) fn close(mut self, code: u16, reason: &str, discard: bool, config: WebSocketConfig) -> Socket {
        // Everything queued is encoded ahead of the close frame (the queue is under the hard cap).
        if !discard {
            for frame in self.frames.drain(..) {
                self.stream.push_text_frame(frame.as_bytes());
            }
        }
        let mut socket = self.into_socket(config);
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        // The close frame is queued even when this reports that the socket would block.
        let _ = socket.context.close(&mut socket.stream, Some(frame));
        socket
    }

    /// The stream and tungstenite's state (made anew if at rest), for closing.
    pub(super) fn into_socket(self, config: WebSocketConfig) -> Socket {
        let context = match self.context {
            Some(context) => *context,
            None => WebSocketContext::new(Role::Server, Some(config)),
        };
        Socket { stream: self.stream, context }
    }
}
