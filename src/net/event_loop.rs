//! The poll loop: one thread, every socket, the core.
//!
//! Each turn: wait for readiness or the next deadline, handle every event (accepting, reading,
//! handing text frames to the core and routing its outputs), run due timers, flush every
//! connection that has output (once), then free the slab entries of connections that went away.
//! Removals wait for the end of the turn because a later event in the same batch may still name
//! the key, which must not have been handed to a new socket yet.

use super::admission::{Admission, AdmissionConfig, Refusal};
use super::conn::{Closing, Conn, Phase, Progress, Upgrading};
use super::counters::{LogLimiter, ShellCounters};
use super::head::{
    Head, HeadStep, bad_request, forbidden, request_timeout, service_unavailable, status_of, too_many_requests,
};
use super::http::{Site, response, serve_site};
use super::listeners::{Accepted, accept_one};
use super::metrics::{LoopStats, Sources, health, prometheus};
use super::pacing::FlushPacing;
use super::peer::peer_info;
use super::persist::Persistence;
use super::realip::real_client_ip;
use super::timers::Timers;
use super::ws::{Flushed, Limits, Push, Ws};
use super::{Clock, WAKER};
use crate::config::Config;
use crate::core::{ConnId, Core, Input, Millis, Output, Snapshot};
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
use tungstenite::{Error, Message};

/// How long accepting pauses after the process ran out of descriptors.
const ACCEPT_RETRY_MS: u64 = 100;

/// How long accepting pauses when `max_pending_handshakes` heads are all too young to drop.
const HEAD_ROOM_RETRY_MS: u64 = 20;

/// A request head younger than this is never dropped for a newcomer: its bytes may still be on
/// their way. Capped by a tenth of the handshake timeout.
const HEAD_EVICT_GRACE_MS: u64 = 1_000;

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
    /// Connections to flush at the end of the turn (or, with a flush delay, once it has passed).
    dirty: Vec<usize>,
    /// When the first connection kept back by the flush delay is due (µs on the shell's clock).
    next_flush_us: Option<u64>,
    /// How long output may wait for more, adapted to the load.
    pacing: FlushPacing,
    /// When the current loop turn started (µs on the shell's clock).
    turn_start_us: u64,
    /// Slab keys to free at the end of the turn.
    gone: Vec<usize>,
    /// Connections the shell closed; the core hears `Closed` for each, in order.
    lost: VecDeque<ConnId>,
    accept_paused_until: Option<Millis>,
    /// Set once shutdown began: the loop returns when every connection is gone or at this time.
    shutdown_deadline: Option<Millis>,
    /// Where every core input (and output) is written, when recording.
    recorder: Option<Recorder>,
    /// Per-IP caps and the Origin allowlist.
    admission: Admission,
    /// Refusals, closes and drops, for metrics.
    counters: ShellCounters,
    /// Keeps refusal log lines from flooding the log.
    log_limiter: LogLimiter,
    /// Connections reading their request head, oldest first: (key, serial, accepted at).
    /// Entries of connections that moved on are skipped when met and compacted away.
    heads: VecDeque<(usize, u64, Millis)>,
    /// Connections in the request head phase.
    pending_heads: usize,
    /// Connections with input left when their read budget ran out: (key, serial). Edge-triggered
    /// readiness will not announce that input again, so the next turn resumes them.
    backlog: Vec<(usize, u64)>,
    /// Saving of names, colours and bans, when a data directory is configured.
    persistence: Option<Persistence>,
    /// The web client's files: built in, or a `--static` directory; none with `--no-web-client`.
    site: Option<Site>,
    /// Frames, bytes and turn times, for metrics.
    loop_stats: LoopStats,
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
        let pacing = FlushPacing::new(config.flush_delay_ms, config.max_flush_delay_ms);
        let admission = Admission::new(AdmissionConfig {
            max_per_ip: config.max_connections_per_ip,
            rate: config.connection_rate_per_ip,
            exempt: config.per_ip_exempt.clone(),
            ipv6_prefix: config.per_ip_ipv6_prefix,
            allowed_origins: config.allowed_origins.clone(),
        });
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
            next_flush_us: None,
            pacing,
            turn_start_us: 0,
            gone: Vec::new(),
            lost: VecDeque::new(),
            accept_paused_until: None,
            shutdown_deadline: None,
            recorder,
            admission,
            counters: ShellCounters::default(),
            log_limiter: LogLimiter::default(),
            heads: VecDeque::new(),
            pending_heads: 0,
            backlog: Vec::new(),
            persistence: None,
            site: None,
            loop_stats: LoopStats::new(),
        }
    }

    /// Serves a web client's files to plain HTTP requests.
    pub(super) fn serve_site(&mut self, site: Site) {
        self.site = Some(site);
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
            self.discard_stale_timers();
            let timeout = self.poll_timeout(self.clock.now());
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = self.clock.now();
            self.turn_start_us = self.clock.now_us();
            self.pacing.after_turn(self.turn_start_us, 0);
            // Connections left with input by the previous turn are read once more this turn, after
            // the new events; those that run out of budget now wait for the next turn.
            let resumed = std::mem::take(&mut self.backlog);
            for event in events.iter() {
                self.on_event(event, now);
            }
            self.resume_backlog(resumed, now);
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
            let turn_end_us = self.clock.now_us();
            let worked_us = turn_end_us.saturating_sub(self.turn_start_us);
            self.loop_stats.turn(Duration::from_micros(worked_us));
            self.pacing.after_turn(turn_end_us, worked_us);
            if let Some(deadline) = self.shutdown_deadline
                && (self.conns.is_empty() || now >= deadline)
            {
                info!("stopped ({} connections left to drop)", self.conns.len());
                return self.finish_saving();
            }
        }
    }

    /// Drops the timer entries of connections that moved on, so they do not wake the loop.
    fn discard_stale_timers(&mut self) {
        let conns = &self.conns;
        self.timers
            .discard_stale(|deadline, key, serial| conns.get(key).is_some_and(|conn| conn.awaits(deadline, serial)));
    }

    fn poll_timeout(&self, now: Millis) -> Option<Duration> {
        if !self.backlog.is_empty() {
            return Some(Duration::ZERO);
        }
        let core = if self.shutdown_deadline.is_none() { self.core.next_deadline() } else { None };
        let save = self.persistence.as_ref().and_then(Persistence::deadline);
        let deadline = [self.timers.next(), core, self.accept_paused_until, self.shutdown_deadline, save]
            .into_iter()
            .flatten()
            .min()
            .map(|at| Duration::from_millis(at.since(now)));
        let flush = self.next_flush_us.map(|at| Duration::from_micros(at.saturating_sub(self.clock.now_us())));
        [deadline, flush].into_iter().flatten().min()
    }

    fn on_event(&mut self, event: &Event, now: Millis) {
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
                let backlogged = conn.backlogged;
                if event.is_writable() {
                    self.mark_dirty(key);
                }
                // A backlogged connection is read from the backlog, once per turn like the others.
                if (event.is_readable() || event.is_read_closed() || event.is_error()) && !backlogged {
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

    /// What the shell refused, closed and dropped so far (for metrics).
    pub(super) fn counters(&self) -> &ShellCounters {
        &self.counters
    }

    /// Writes a debug line about a refusal of `kind`, unless too many came this second.
    fn log_refusal(&mut self, kind: &'static str, now: Millis, line: impl FnOnce() -> String) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        if let Some(suppressed) = self.log_limiter.allow(kind, now) {
            let more = if suppressed > 0 { format!(" ({suppressed} more since, not logged)") } else { String::new() };
            debug!("{}{more}", line());
        }
    }

    // ---- accepting -------------------------------------------------------------------------

    fn accept_from(&mut self, index: usize, now: Millis) {
        loop {
            if !self.make_room_for_a_head(now) {
                self.accept_paused_until = Some(now.plus(HEAD_ROOM_RETRY_MS));
                return;
            }
            let Some(listener) = self.listeners.get(index) else { return };
            match accept_one(listener) {
                Accepted::Stream(stream, peer) => self.add_conn(stream, peer, now),
                Accepted::Drained => return,
                Accepted::Exhausted(e) => {
                    warn!("accept failed ({e}); pausing new connections for {ACCEPT_RETRY_MS} ms");
                    self.accept_paused_until = Some(now.plus(ACCEPT_RETRY_MS));
                    return;
                }
            }
        }
    }

    fn resume_accepting(&mut self, now: Millis) {
        self.accept_paused_until = None;
        for index in 0..self.listeners.len() {
            if self.accept_paused_until.is_some() {
                return;
            }
            self.accept_from(index, now);
        }
    }

    /// Whether a new connection may start reading its head: below `max_pending_handshakes`, or
    /// after the oldest unfinished head, past its grace time, got a last read and was dropped.
    fn make_room_for_a_head(&mut self, now: Millis) -> bool {
        let cap = self.config.max_pending_handshakes;
        if cap == 0 || self.pending_heads < cap {
            return true;
        }
        let grace = HEAD_EVICT_GRACE_MS.min(self.config.handshake_timeout_ms / 10);
        while let Some(&(key, serial, accepted_at)) = self.heads.front() {
            let current =
                self.conns.get(key).is_some_and(|c| c.serial == serial && matches!(c.phase, Phase::Head { .. }));
            if !current {
                self.heads.pop_front();
                continue;
            }
            if accepted_at.plus(grace) > now {
                return false;
            }
            self.heads.pop_front();
            // Its bytes may have arrived meanwhile; only a head still unfinished is dropped.
            self.read_head(key, now);
            if self.conns.get(key).is_some_and(|c| matches!(c.phase, Phase::Head { .. })) {
                self.counters.handshakes_evicted += 1;
                let peer = self.conns.get(key).map(|c| c.peer);
                self.log_refusal("evicted", now, || {
                    format!("conn {key}: {peer:?} dropped: request head unfinished while {cap} others wait")
                });
                self.drop_conn(key);
            }
            return self.pending_heads < cap;
        }
        self.pending_heads < cap
    }

    /// Drops entries of connections that left the head phase once they outnumber the rest.
    fn compact_heads(&mut self) {
        if self.heads.len() > 2 * self.pending_heads + 64 {
            let conns = &self.conns;
            self.heads.retain(|&(key, serial, _)| {
                conns.get(key).is_some_and(|c| c.serial == serial && matches!(c.phase, Phase::Head { .. }))
            });
        }
    }

    /// Answers `503` (best effort, in one write) and closes a socket the server has no room for.
    fn refuse_at_accept(&mut self, mut stream: mio::net::TcpStream, peer: std::net::SocketAddr, now: Millis) {
        use std::io::Write;
        let _ = stream.write(&service_unavailable());
        let _ = stream.shutdown(std::net::Shutdown::Write);
        self.counters.refused_max_connections += 1;
        self.counters.count_http(503);
        let max = self.config.max_connections;
        self.log_refusal("503", now, || format!("{peer} refused: the server holds {max} connections"));
    }

    fn add_conn(&mut self, mut stream: mio::net::TcpStream, peer: std::net::SocketAddr, now: Millis) {
        self.counters.accepted += 1;
        if self.config.max_connections > 0 && self.conns.len() >= self.config.max_connections {
            self.refuse_at_accept(stream, peer, now);
            return;
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(key), Interest::READABLE) {
            warn!("cannot register connection from {peer}: {e}");
            return;
        }
        // Latency matters more than packet count for notes and cursors.
        let _ = stream.set_nodelay(true);
        self.next_serial += 1;
        let deadline = now.plus(self.config.handshake_timeout_ms);
        entry.insert(Conn {
            phase: Phase::Head { stream, head: Head::new(self.config.max_request_head_bytes) },
            peer,
            serial: self.next_serial,
            deadline: Some(deadline),
            interest: Interest::READABLE,
            want_write: false,
            dirty: false,
            dirty_since_us: 0,
            ip_key: None,
            backlogged: false,
        });
        self.timers.push(deadline, key, self.next_serial);
        self.heads.push_back((key, self.next_serial, now));
        self.pending_heads += 1;
        self.compact_heads();
        debug!("conn {key}: accepted from {peer}");
    }

    // ---- HTTP stage ------------------------------------------------------------------------

    fn read_head(&mut self, key: usize, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Head { stream, head } = &mut conn.phase else { return };
        match head.read_from(stream) {
            HeadStep::Pending => {}
            HeadStep::Gone => {
                debug!("conn {key}: {} left during the request head", conn.peer);
                self.drop_conn(key);
            }
            HeadStep::Reject(response) => self.answer_http(key, response, now),
            HeadStep::Plain { request, head_only } => {
                self.counters.http_requests += 1;
                let response = self.plain_response(&request, head_only);
                self.answer_http(key, response, now);
            }
            HeadStep::Upgrade { request, response, leftover } => {
                let headers = request.headers();
                let forwarded = headers.get_all("x-forwarded-for").into_iter().map(|v| v.as_bytes());
                let ip = real_client_ip(conn.peer.ip(), forwarded, &self.config.trusted_proxies);
                let origin = headers.get("origin").map(|v| v.as_bytes());
                match self.admission.admit(ip, origin, now) {
                    Ok(ip_key) => conn.ip_key = ip_key,
                    Err(refusal) => {
                        self.refuse(key, ip, refusal, now);
                        return;
                    }
                }
                debug!("conn {key}: {} ({ip}) upgrades on {}", conn.peer, request.uri());
                let peer = peer_info(ip);
                let Phase::Head { stream, .. } = std::mem::replace(&mut conn.phase, Phase::Gone) else {
                    return;
                };
                self.pending_heads -= 1;
                conn.phase = Phase::Upgrading(Upgrading { stream, response, written: 0, leftover, peer });
                self.write_upgrade(key, now);
            }
        }
    }

    /// The answer to a plain GET or HEAD: health, metrics, a web client's file, or `400`.
    fn plain_response(&self, request: &tungstenite::handshake::server::Request, head_only: bool) -> Vec<u8> {
        let sources = || Sources {
            stats: self.core.stats(),
            core: self.core.counters(),
            shell: &self.counters,
            loop_stats: &self.loop_stats,
            sockets: self.conns.len(),
            flush_delay_us: self.pacing.delay_us(),
            max_connections: self.config.max_connections,
            save: self.persistence.as_ref().map(Persistence::status),
        };
        let no_store = "Cache-Control: no-store\r\n";
        match request.uri().path() {
            "/health" => {
                let (status, body) = health(&sources());
                response(status, "application/json", no_store, body.as_bytes(), head_only)
            }
            "/metrics" => {
                let body = prometheus(&sources());
                response(200, "text/plain; version=0.0.4; charset=utf-8", no_store, body.as_bytes(), head_only)
            }
            _ => serve_site(self.site.as_ref(), request, head_only).unwrap_or_else(bad_request),
        }
    }

    /// Answers an upgrade that the Origin allowlist or a per-IP cap refuses.
    fn refuse(&mut self, key: usize, ip: std::net::IpAddr, refusal: Refusal, now: Millis) {
        let (response, kind, why) = match refusal {
            Refusal::Origin => {
                self.counters.refused_origin += 1;
                (forbidden(), "403", "Origin not allowed".to_string())
            }
            Refusal::Concurrent { retry_after_s } => {
                self.counters.refused_per_ip_concurrent += 1;
                let max = self.config.max_connections_per_ip;
                (too_many_requests(retry_after_s), "429", format!("holds {max} connections"))
            }
            Refusal::Rate { retry_after_s } => {
                self.counters.refused_per_ip_rate += 1;
                (too_many_requests(retry_after_s), "429", "connects too often".to_string())
            }
        };
        self.log_refusal(kind, now, || format!("conn {key}: {ip} refused: {why}"));
        self.answer_http(key, response, now);
    }

    /// Writes an HTTP response, then closes.
    fn answer_http(&mut self, key: usize, response: Vec<u8>, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if !matches!(conn.phase, Phase::Head { .. }) {
            return;
        }
        let Phase::Head { stream, .. } = std::mem::replace(&mut conn.phase, Phase::Gone) else {
            return;
        };
        self.pending_heads -= 1;
        let status = status_of(&response);
        self.counters.count_http(status);
        let peer = conn.peer;
        conn.phase = Phase::Closing(Closing::http(stream, response));
        if !matches!(status, 403 | 429) {
            self.log_refusal("http", now, || format!("conn {key}: {peer} answered HTTP {status}"));
        }
        self.set_deadline(key, now.plus(self.config.close_linger_ms));
        self.progress_closing(key);
    }

    fn write_upgrade(&mut self, key: usize, now: Millis) {
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
    fn open(&mut self, key: usize, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Upgrading(up) = std::mem::replace(&mut conn.phase, Phase::Gone) else {
            return;
        };
        let ws = Ws::new(up.stream, up.leftover, self.ws_config, self.limits);
        conn.phase = Phase::Open(Box::new(ws));
        self.counters.websockets_opened += 1;
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

    /// Reads and handles at most `read_budget_frames` frames; a connection with input left is
    /// resumed next turn, so that one flooding client cannot starve the others.
    fn read_open(&mut self, key: usize, now: Millis) {
        let budget = self.config.read_budget_frames.max(1);
        let mut reads = 0;
        loop {
            if reads == budget {
                self.counters.read_budget_exhausted += 1;
                self.backlog_conn(key);
                return;
            }
            reads += 1;
            let Some(conn) = self.conns.get_mut(key) else { return };
            let Phase::Open(ws) = &mut conn.phase else { return };
            let result = ws.socket.read();
            match result {
                Ok(Message::Text(text)) => {
                    self.loop_stats.bytes_in += text.len() as u64;
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
                    self.set_deadline(key, now.plus(self.config.close_linger_ms));
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

    /// Puts a connection whose read budget ran out on the list resumed next turn.
    fn backlog_conn(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.backlogged
        {
            conn.backlogged = true;
            self.backlog.push((key, conn.serial));
        }
    }

    /// Resumes reading the connections that had input left after their budget last turn.
    fn resume_backlog(&mut self, resumed: Vec<(usize, u64)>, now: Millis) {
        for (key, serial) in resumed {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            if conn.serial != serial || !conn.backlogged {
                continue;
            }
            conn.backlogged = false;
            match conn.phase {
                Phase::Open(_) => self.read_open(key, now),
                Phase::Closing(_) => self.progress_closing(key),
                _ => {}
            }
            self.route(now);
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
    fn close_ws(&mut self, key: usize, code: u16, reason: &str, now: Millis, by_shell: bool) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if !matches!(conn.phase, Phase::Open(_)) {
            return;
        }
        let Phase::Open(ws) = std::mem::replace(&mut conn.phase, Phase::Gone) else { return };
        info!("conn {key}: {} closed by the server with {code} {reason}", conn.peer);
        self.counters.count_close(code);
        let discard = code == CLOSE_SEND_QUEUE_FULL;
        conn.phase = Phase::Closing(Closing::websocket(ws.close(code, reason, discard)));
        self.set_deadline(key, now.plus(self.config.close_linger_ms));
        self.mark_dirty(key);
        if by_shell {
            self.lost.push_back(ConnId(key));
        }
    }

    fn close_overflowing(&mut self, key: usize, now: Millis) {
        let reason = format!("Message buffer length exceeded {}.", self.config.send_queue_hard_bytes);
        self.close_ws(key, CLOSE_SEND_QUEUE_FULL, &reason, now, true);
    }

    // ---- core outputs ----------------------------------------------------------------------

    /// Hands one input to the core, recording it first when recording.
    fn feed(&mut self, now: Millis, input: Input<'_>) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.input(now, &input);
        }
        self.core.handle(now, input);
    }

    /// Delivers every output of the core, then tells it about connections the shell closed
    /// meanwhile, until nothing is left. Never called from within itself.
    fn route(&mut self, now: Millis) {
        loop {
            while let Some(output) = self.core.poll_output() {
                if let Some(recorder) = self.recorder.as_mut() {
                    recorder.output(&output);
                }
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
    }

    fn send(&mut self, key: usize, frame: Rc<str>, droppable: bool, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Open(ws) = &mut conn.phase else { return };
        if droppable && ws.is_behind() {
            ws.count_dropped();
            self.counters.frames_dropped += 1;
            return;
        }
        self.loop_stats.frames_out += 1;
        self.loop_stats.bytes_out += frame.len() as u64;
        match ws.push(frame) {
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
            conn.dirty_since_us = self.turn_start_us;
            self.dirty.push(key);
        }
    }

    /// Flushes the connections with output. With a flush delay (see `pacing.rs`), an open
    /// WebSocket waits until its oldest unsent frame is that old, so one write carries more frames.
    fn flush_dirty(&mut self, now: Millis) {
        let delay = self.pacing.delay_us();
        let now_us = self.clock.now_us();
        let mut waiting = Vec::new();
        self.next_flush_us = None;
        while let Some(key) = self.dirty.pop() {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            let due = conn.dirty_since_us.saturating_add(delay);
            if due > now_us && self.shutdown_deadline.is_none() && matches!(conn.phase, Phase::Open(_)) {
                self.next_flush_us = Some(self.next_flush_us.map_or(due, |at| at.min(due)));
                waiting.push(key);
                continue;
            }
            conn.dirty = false;
            match conn.phase {
                Phase::Open(_) => self.flush_conn(key, now),
                Phase::Closing(_) => self.progress_closing(key),
                _ => {}
            }
            self.route(now);
        }
        self.dirty = waiting;
    }

    /// Writes an open WebSocket's queue as far as the socket takes it.
    fn flush_conn(&mut self, key: usize, now: Millis) {
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
                let more_input = closing.more_input;
                conn.want_write = want_write;
                self.sync_interest(key);
                if more_input {
                    self.backlog_conn(key);
                }
            }
            Progress::Finished | Progress::Failed => self.drop_conn(key),
        }
    }

    fn set_deadline(&mut self, key: usize, deadline: Millis) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.deadline = Some(deadline);
            self.timers.push(deadline, key, conn.serial);
        }
    }

    fn run_timers(&mut self, now: Millis) {
        if let Some(at) = self.accept_paused_until
            && at <= now
            && self.shutdown_deadline.is_none()
        {
            self.resume_accepting(now);
        }
        while let Some((deadline, key, serial)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get(key) else { continue };
            if !conn.awaits(deadline, serial) {
                continue;
            }
            match conn.phase {
                Phase::Head { .. } => self.answer_http(key, request_timeout(), now),
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
        if let Some(ip_key) = conn.ip_key.take() {
            self.admission.release(ip_key);
        }
        if matches!(conn.phase, Phase::Head { .. }) {
            self.pending_heads -= 1;
        }
        if let Some(source) = conn.phase.source() {
            let _ = self.poll.registry().deregister(source);
        }
        if matches!(conn.phase, Phase::Closing(_)) {
            debug!("conn {key}: {} closed", conn.peer);
        }
        conn.phase = Phase::Gone;
        self.gone.push(key);
    }

    fn free_gone(&mut self, now: Millis) {
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

    fn begin_shutdown(&mut self, now: Millis) {
        info!("shutting down: closing {} connections", self.conns.len());
        let c = self.counters();
        info!(
            "since start: {} accepted, HTTP answers {:?}, closes {:?}, {} frames dropped for slow readers, \
             {} heads evicted; per-IP tables hold {:?} entries",
            c.accepted,
            c.http_responses,
            c.closes,
            c.frames_dropped,
            c.handshakes_evicted,
            self.admission.table_sizes()
        );
        self.shutdown_deadline = Some(now.plus(self.config.close_linger_ms.min(SHUTDOWN_LINGER_MAX_MS)));
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

impl EventLoop {
    /// The last save: an error when it failed, so that the process exits non-zero.
    fn finish_saving(&mut self) -> io::Result<()> {
        match self.persistence.as_mut() {
            Some(persistence) => persistence
                .finish(&self.core, self.clock.now())
                .map_err(|e| io::Error::other(format!("the final save failed: {e}"))),
            None => Ok(()),
        }
    }
}

/// The last save also happens here, so that it runs when the loop fails or a panic unwinds.
impl Drop for EventLoop {
    fn drop(&mut self) {
        if let Err(e) = self.finish_saving() {
            log::error!("{e}");
        }
    }
}
