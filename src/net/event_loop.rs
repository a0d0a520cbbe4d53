//! The poll loop: one thread, every socket, the core.
//!
//! Each turn: wait for readiness or the next deadline, handle every event (accepting, reading,
//! handing text frames to the core and routing its outputs), run due timers, flush every
//! connection that has output (once), then free the slab entries of connections that went away.
//! Removals wait for the end of the turn because a later event in the same batch may still name
//! the key, which must not have been handed to a new socket yet.

use super::conn::{Closing, Conn, Phase, Progress, Upgrading};
use super::head::{Head, HeadStep, request_timeout};
use super::listeners::{Accepted, accept_one};
use super::peer::peer_info;
use super::persist::Persistence;
use super::timers::Timers;
use super::ws::{Flushed, Limits, Push, Ws};
use super::{Clock, WAKER};
use crate::config::Config;
use crate::core::{ConnId, Core, Input, Output, Snapshot};
use crate::record::Recorder;
use crate::store::Saver;
use log::{debug, info, warn};
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tungstenite::error::ProtocolError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message, Utf8Bytes};

/// How long accepting pauses after the process ran out of descriptors.
const ACCEPT_RETRY_MS: u64 = 100;

/// Longest time shutdown waits for clients to take their close frames, so that the process
/// exits within a second of SIGTERM whatever `close_linger_ms` says.
const SHUTDOWN_LINGER_MAX_MS: u64 = 750;

/// Close codes the shell itself uses (PROTOCOL.md §11).
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_INVALID_UTF8: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_SERVER_CLOSING: u16 = 4000;
const CLOSE_SEND_QUEUE_FULL: u16 = 4003;

/// Token of listener `index`; counted down from just below the waker's.
pub(super) fn listener_token(index: usize) -> Token {
    Token(usize::MAX - 1 - index)
}

/// Everything the running server owns.
pub(super) struct EventLoop {
    poll: Poll,
    listeners: Vec<TcpListener>,
    shutdown_requested: Arc<AtomicBool>,
    config: Config,
    ws_config: WebSocketConfig,
    limits: Limits,
    core: Core,
    clock: Clock,
    conns: Slab<Conn>,
    timers: Timers,
    next_serial: u64,
    /// Connections to flush at the end of the turn.
    dirty: Vec<usize>,
    /// Slab keys to free at the end of the turn.
    gone: Vec<usize>,
    /// Connections the shell closed; the core hears `Closed` for each, in order.
    lost: VecDeque<ConnId>,
    accept_paused_until: Option<u64>,
    /// Set once shutdown began: the loop returns when every connection is gone or at this time.
    shutdown_deadline: Option<u64>,
    /// The last broadcast frame converted for tungstenite, shared by all its recipients.
    last_frame: Option<(Rc<str>, Utf8Bytes)>,
    /// Where every core input (and output) is written, when recording.
    recorder: Option<Recorder>,
    /// Saving of names, colours and bans, when a data directory is configured.
    persistence: Option<Persistence>,
}

impl EventLoop {
    pub(super) fn new(
        poll: Poll,
        listeners: Vec<TcpListener>,
        shutdown_requested: Arc<AtomicBool>,
        config: Config,
        recorder: Option<Recorder>,
    ) -> EventLoop {
        let limits = Limits::new(&config);
        EventLoop {
            poll,
            listeners,
            shutdown_requested,
            ws_config: limits.websocket_config(&config),
            limits,
            core: Core::new(config.core.clone()),
            config,
            clock: Clock::new(),
            conns: Slab::new(),
            timers: Timers::default(),
            next_serial: 0,
            dirty: Vec::new(),
            gone: Vec::new(),
            lost: VecDeque::new(),
            accept_paused_until: None,
            shutdown_deadline: None,
            last_frame: None,
            recorder,
            persistence: None,
        }
    }

    /// Loads the saved state into the core (before any input) and saves changes from now on.
    pub(super) fn restore(&mut self, snapshot: Snapshot, saver: Saver) {
        self.core.restore(snapshot);
        self.persistence = Some(Persistence::new(saver, self.config.save_delay_ms, &self.core));
    }

    /// Runs until shutdown has closed every connection (or its linger time ran out).
    pub(super) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(self.clock.now_ms());
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = self.clock.now_ms();
            for event in events.iter() {
                self.on_event(event, now);
            }
            if self.shutdown_requested.load(Ordering::Acquire) && self.shutdown_deadline.is_none() {
                self.begin_shutdown(now);
            }
            self.run_timers(now);
            self.flush_dirty(now);
            self.free_gone(now);
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.flush();
            }
            if let Some(persistence) = self.persistence.as_mut() {
                persistence.after_turn(&self.core, now);
            }
            if let Some(deadline) = self.shutdown_deadline
                && (self.conns.is_empty() || now >= deadline)
            {
                info!("stopped ({} connections left to drop)", self.conns.len());
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self, now: u64) -> Option<Duration> {
        let core = if self.shutdown_deadline.is_none() { self.core.next_deadline() } else { None };
        let save = self.persistence.as_ref().and_then(Persistence::deadline);
        [self.timers.next(), core, self.accept_paused_until, self.shutdown_deadline, save]
            .into_iter()
            .flatten()
            .min()
            .map(|at| Duration::from_millis(at.saturating_sub(now)))
    }

    fn on_event(&mut self, event: &Event, now: u64) {
        let token = event.token();
        if token == WAKER {
            return;
        }
        if let Some(index) = self.listener_index(token) {
            if self.accept_paused_until.is_none() {
                self.accept_from(index, now);
            }
            return;
        }
        let key = token.0;
        let Some(conn) = self.conns.get(key) else { return };
        match conn.phase {
            Phase::Head { .. } => self.read_head(key, now),
            Phase::Upgrading(_) => self.write_upgrade(key, now),
            Phase::Open(_) => {
                if event.is_writable() {
                    self.mark_dirty(key);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read_open(key, now);
                }
            }
            Phase::Closing(_) => self.progress_closing(key),
            Phase::Gone => {}
        }
        self.route(now);
    }

    fn listener_index(&self, token: Token) -> Option<usize> {
        let index = (usize::MAX - 1).checked_sub(token.0)?;
        (index < self.listeners.len()).then_some(index)
    }

    // ---- accepting -------------------------------------------------------------------------

    fn accept_from(&mut self, index: usize, now: u64) {
        loop {
            let Some(listener) = self.listeners.get(index) else { return };
            match accept_one(listener) {
                Accepted::Stream(stream, peer) => self.add_conn(stream, peer, now),
                Accepted::Drained => return,
                Accepted::Exhausted(e) => {
                    warn!("accept failed ({e}); pausing new connections for {ACCEPT_RETRY_MS} ms");
                    self.accept_paused_until = Some(now + ACCEPT_RETRY_MS);
                    return;
                }
            }
        }
    }

    fn resume_accepting(&mut self, now: u64) {
        self.accept_paused_until = None;
        for index in 0..self.listeners.len() {
            if self.accept_paused_until.is_some() {
                return;
            }
            self.accept_from(index, now);
        }
    }

    fn add_conn(&mut self, mut stream: mio::net::TcpStream, peer: std::net::SocketAddr, now: u64) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(key), Interest::READABLE) {
            warn!("cannot register connection from {peer}: {e}");
            return;
        }
        // Latency matters more than packet count for notes and cursors.
        let _ = stream.set_nodelay(true);
        self.next_serial += 1;
        let deadline = now + self.config.handshake_timeout_ms;
        entry.insert(Conn {
            phase: Phase::Head { stream, head: Head::new(self.config.max_request_head_bytes) },
            peer,
            serial: self.next_serial,
            deadline: Some(deadline),
            interest: Interest::READABLE,
            want_write: false,
            dirty: false,
        });
        self.timers.push(deadline, key, self.next_serial);
        debug!("conn {key}: accepted from {peer}");
    }

    // ---- HTTP stage ------------------------------------------------------------------------

    fn read_head(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Head { stream, head } = &mut conn.phase else { return };
        match head.read_from(stream) {
            HeadStep::Pending => {}
            HeadStep::Gone => {
                debug!("conn {key}: {} left during the request head", conn.peer);
                self.drop_conn(key);
            }
            HeadStep::Reject(response) => {
                debug!("conn {key}: {} sent a request that is not an upgrade", conn.peer);
                self.answer_http(key, response, now);
            }
            HeadStep::Upgrade { request, response, leftover } => {
                debug!("conn {key}: {} upgrades on {}", conn.peer, request.uri());
                // The request's headers are at hand here for whatever the core should learn.
                let peer = peer_info(conn.peer.ip());
                let Phase::Head { stream, .. } = std::mem::replace(&mut conn.phase, Phase::Gone) else {
                    return;
                };
                conn.phase = Phase::Upgrading(Upgrading { stream, response, written: 0, leftover, peer });
                self.write_upgrade(key, now);
            }
        }
    }

    /// Writes an HTTP response, then closes.
    fn answer_http(&mut self, key: usize, response: Vec<u8>, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Head { stream, .. } = std::mem::replace(&mut conn.phase, Phase::Gone) else {
            return;
        };
        conn.phase = Phase::Closing(Closing::http(stream, response));
        self.set_deadline(key, now + self.config.close_linger_ms);
        self.progress_closing(key);
    }

    fn write_upgrade(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Upgrading(up) = &mut conn.phase else { return };
        match up.write() {
            Progress::Waiting { want_write } => {
                conn.want_write = want_write;
                self.sync_interest(key);
            }
            Progress::Failed => self.drop_conn(key),
            Progress::Finished => self.open(key, now),
        }
    }

    /// The upgrade response is out: the WebSocket exists and the core learns about it.
    fn open(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Upgrading(up) = std::mem::replace(&mut conn.phase, Phase::Gone) else {
            return;
        };
        let ws = Ws::new(up.stream, up.leftover, self.ws_config, self.limits);
        conn.phase = Phase::Open(Box::new(ws));
        conn.deadline = None;
        conn.want_write = false;
        info!("conn {key}: open from {}", conn.peer);
        self.sync_interest(key);
        self.feed(now, Input::Open { conn: ConnId(key), peer: up.peer });
        self.route(now);
        // Frames may have arrived with the request head or since.
        self.read_open(key, now);
        self.mark_dirty(key);
    }

    // ---- open WebSockets -------------------------------------------------------------------

    fn read_open(&mut self, key: usize, now: u64) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else { return };
            let Phase::Open(ws) = &mut conn.phase else { return };
            let result = ws.socket.read();
            match result {
                Ok(Message::Text(text)) => {
                    self.feed(now, Input::Text { conn: ConnId(key), text: text.as_str() });
                    self.route(now);
                }
                Ok(Message::Binary(_)) => debug!("conn {key}: binary frame ignored"),
                // tungstenite queued the pong; it goes out with the next flush.
                Ok(Message::Ping(_)) => self.mark_dirty(key),
                Ok(Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(frame)) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    info!("conn {key}: {} closed by the peer with {code}", conn.peer);
                    let Phase::Open(ws) = std::mem::replace(&mut conn.phase, Phase::Gone) else {
                        return;
                    };
                    // tungstenite answers the close frame when flushed.
                    conn.phase = Phase::Closing(Closing::websocket(ws.socket));
                    self.set_deadline(key, now + self.config.close_linger_ms);
                    self.mark_dirty(key);
                    self.lost.push_back(ConnId(key));
                    self.route(now);
                    return;
                }
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(Error::Capacity(e)) => {
                    debug!("conn {key}: {e}");
                    self.close_ws(key, CLOSE_TOO_BIG, "", now, true);
                    return;
                }
                Err(Error::Utf8(e)) => {
                    debug!("conn {key}: invalid UTF-8: {e}");
                    self.close_ws(key, CLOSE_INVALID_UTF8, "", now, true);
                    return;
                }
                Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    self.lose(key, "hung up");
                    return;
                }
                Err(Error::Protocol(e)) => {
                    debug!("conn {key}: protocol error: {e}");
                    self.close_ws(key, CLOSE_PROTOCOL_ERROR, "", now, true);
                    return;
                }
                Err(e) => {
                    self.lose(key, &e.to_string());
                    return;
                }
            }
        }
    }

    /// The socket of an open WebSocket failed: drop it; the core hears `Closed` at the next
    /// [`route`](Self::route).
    fn lose(&mut self, key: usize, why: &str) {
        if let Some(conn) = self.conns.get(key) {
            info!("conn {key}: {} gone: {why}", conn.peer);
        }
        self.drop_conn(key);
        self.lost.push_back(ConnId(key));
    }

    /// Starts closing an open WebSocket with `code`. `by_shell` means the core has not asked for
    /// it and must hear `Closed`; such closes also discard the unsent queue when it overflowed.
    fn close_ws(&mut self, key: usize, code: u16, reason: &str, now: u64, by_shell: bool) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if !matches!(conn.phase, Phase::Open(_)) {
            return;
        }
        let Phase::Open(ws) = std::mem::replace(&mut conn.phase, Phase::Gone) else { return };
        info!("conn {key}: {} closed by the server with {code} {reason}", conn.peer);
        let discard = code == CLOSE_SEND_QUEUE_FULL;
        conn.phase = Phase::Closing(Closing::websocket(ws.close(code, reason, discard)));
        self.set_deadline(key, now + self.config.close_linger_ms);
        self.mark_dirty(key);
        if by_shell {
            self.lost.push_back(ConnId(key));
        }
    }

    fn close_overflowing(&mut self, key: usize, now: u64) {
        let reason = format!("Message buffer length exceeded {}.", self.config.send_queue_hard_bytes);
        self.close_ws(key, CLOSE_SEND_QUEUE_FULL, &reason, now, true);
    }

    // ---- core outputs ----------------------------------------------------------------------

    /// Hands one input to the core, recording it first when recording.
    fn feed(&mut self, now: u64, input: Input<'_>) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.input(now, &input);
        }
        self.core.handle(now, input);
    }

    /// Delivers every output of the core, then tells it about connections the shell closed
    /// meanwhile, until nothing is left. Never called from within itself.
    fn route(&mut self, now: u64) {
        loop {
            let outputs: Vec<Output> = self.core.drain_outputs().collect();
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.outputs(&outputs);
            }
            for output in outputs {
                match output {
                    Output::Send { conn, frame, droppable } => self.send(conn.0, frame, droppable, now),
                    Output::Close { conn, code, reason } => {
                        self.close_ws(conn.0, code, &reason, now, false);
                    }
                }
            }
            let Some(conn) = self.lost.pop_front() else { break };
            if self.shutdown_deadline.is_none() {
                self.feed(now, Input::Closed { conn });
            }
        }
        self.last_frame = None;
    }

    fn send(&mut self, key: usize, frame: Rc<str>, droppable: bool, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Open(ws) = &mut conn.phase else { return };
        if droppable && ws.is_behind() {
            ws.count_dropped();
            return;
        }
        let bytes = match &self.last_frame {
            Some((rc, bytes)) if Rc::ptr_eq(rc, &frame) => bytes.clone(),
            _ => {
                let bytes = Utf8Bytes::from(String::from(&*frame));
                self.last_frame = Some((frame, bytes.clone()));
                bytes
            }
        };
        match ws.push(bytes) {
            Push::Queued => {
                // A burst for one connection within a turn is written before it reaches the
                // soft cap, unless the socket is known to be full.
                if !conn.want_write && ws.wants_early_flush() {
                    self.flush_conn(key, now);
                }
                self.mark_dirty(key);
            }
            Push::Overflow => self.close_overflowing(key, now),
        }
    }

    // ---- flushing, timers, removal ---------------------------------------------------------

    fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(key);
        }
    }

    fn flush_dirty(&mut self, now: u64) {
        while let Some(key) = self.dirty.pop() {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            conn.dirty = false;
            match conn.phase {
                Phase::Open(_) => self.flush_conn(key, now),
                Phase::Closing(_) => self.progress_closing(key),
                _ => {}
            }
            self.route(now);
        }
    }

    /// Writes an open WebSocket's queue as far as the socket takes it.
    fn flush_conn(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Open(ws) = &mut conn.phase else { return };
        match ws.flush() {
            Flushed::Done => {
                let dropped = ws.take_dropped();
                if dropped > 0 {
                    debug!("conn {key}: caught up after {dropped} droppable frames were skipped");
                }
                conn.want_write = false;
                self.sync_interest(key);
            }
            Flushed::Blocked => {
                conn.want_write = true;
                self.sync_interest(key);
            }
            Flushed::Overflow => self.close_overflowing(key, now),
            Flushed::Failed(e) => self.lose(key, &e.to_string()),
        }
    }

    fn progress_closing(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Closing(closing) = &mut conn.phase else { return };
        match closing.progress() {
            Progress::Waiting { want_write } => {
                conn.want_write = want_write;
                self.sync_interest(key);
            }
            Progress::Finished | Progress::Failed => self.drop_conn(key),
        }
    }

    fn set_deadline(&mut self, key: usize, deadline: u64) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.deadline = Some(deadline);
            self.timers.push(deadline, key, conn.serial);
        }
    }

    fn run_timers(&mut self, now: u64) {
        if let Some(at) = self.accept_paused_until
            && at <= now
            && self.shutdown_deadline.is_none()
        {
            self.resume_accepting(now);
        }
        while let Some((deadline, key, serial)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get(key) else { continue };
            if conn.serial != serial || conn.deadline != Some(deadline) {
                continue;
            }
            match conn.phase {
                Phase::Head { .. } => {
                    debug!("conn {key}: {} too slow with its request head", conn.peer);
                    self.answer_http(key, request_timeout(), now);
                }
                Phase::Upgrading(_) | Phase::Closing(_) => {
                    debug!("conn {key}: {} too slow to take its last bytes", conn.peer);
                    self.drop_conn(key);
                }
                Phase::Open(_) | Phase::Gone => {}
            }
        }
        if self.shutdown_deadline.is_none() && self.core.next_deadline().is_some_and(|at| at <= now) {
            self.feed(now, Input::Tick);
            self.route(now);
        }
    }

    /// Registers WRITABLE interest only while bytes wait for the socket.
    fn sync_interest(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let wanted = if conn.want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        if wanted == conn.interest {
            return;
        }
        let Some(source) = conn.phase.source() else { return };
        match self.poll.registry().reregister(source, Token(key), wanted) {
            Ok(()) => conn.interest = wanted,
            Err(e) => {
                warn!("conn {key}: cannot change interest: {e}");
                let open = matches!(conn.phase, Phase::Open(_));
                self.drop_conn(key);
                if open {
                    self.lost.push_back(ConnId(key));
                }
            }
        }
    }

    /// Closes the socket now; the slab entry is freed at the end of the turn.
    fn drop_conn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if let Some(source) = conn.phase.source() {
            let _ = self.poll.registry().deregister(source);
        }
        if matches!(conn.phase, Phase::Closing(_)) {
            debug!("conn {key}: {} closed", conn.peer);
        }
        conn.phase = Phase::Gone;
        self.gone.push(key);
    }

    fn free_gone(&mut self, now: u64) {
        if self.gone.is_empty() {
            return;
        }
        for key in self.gone.drain(..) {
            if self.conns.get(key).is_some_and(|c| matches!(c.phase, Phase::Gone)) {
                self.conns.remove(key);
            }
        }
        // A freed descriptor may be what a paused accept was waiting for.
        if self.accept_paused_until.is_some() && self.shutdown_deadline.is_none() {
            self.resume_accepting(now);
        }
    }

    // ---- shutdown --------------------------------------------------------------------------

    fn begin_shutdown(&mut self, now: u64) {
        info!("shutting down: closing {} connections", self.conns.len());
        self.shutdown_deadline = Some(now + self.config.close_linger_ms.min(SHUTDOWN_LINGER_MAX_MS));
        self.accept_paused_until = None;
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            match self.conns.get(key).map(|c| &c.phase) {
                Some(Phase::Open(_)) => {
                    self.close_ws(key, CLOSE_SERVER_CLOSING, "Server closing.", now, false);
                }
                Some(Phase::Head { .. } | Phase::Upgrading(_)) => self.drop_conn(key),
                _ => {}
            }
        }
    }
}

/// The last save happens here, so that it also runs when the loop fails or a panic unwinds.
impl Drop for EventLoop {
    fn drop(&mut self) {
        if let Some(persistence) = self.persistence.as_mut() {
            persistence.finish(&self.core, self.clock.now_ms());
        }
    }
}
