//! The poll loop: one thread, every socket, the core.
//!
//! Each turn: wait for readiness or the next deadline, handle every event (accepting, reading,
//! handing text frames to the core and routing its outputs), run due timers, flush every
//! connection that has output (once), then free the slab entries of connections that went away.
//! Removals wait for the end of the turn because a later event in the same batch may still name
//! the key, which must not have been handed to a new socket yet.

mod accept;
#[cfg(feature = "cluster")]
mod cluster;
mod deadlines;
mod flush;
mod read;
mod route;
mod shutdown;

use super::admission::{Admission, AdmissionConfig};
use super::conn::{Conn, Phase};
use super::counters::{LogLimiter, ShellCounters};
use super::http::Site;
use super::metrics::LoopStats;
use super::pacing::FlushPacing;
use super::persist::Persistence;
use super::timers::Timers;
use super::ws::Limits;
use super::{Clock, WAKER};
use crate::config::Config;
use crate::core::{ConnId, Core, Millis, Output, Snapshot};
use crate::record::Recorder;
use crate::store::Saver;
use log::{debug, info};
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tungstenite::protocol::WebSocketConfig;

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
    /// Outputs taken from the core before [`route`](Self::route) (to record them, or for the
    /// cluster to look at them), in order; the rest wait in the core.
    outputs: VecDeque<Output>,
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
    /// This node's part in a cluster, with `--nats` (docs/cluster.md).
    #[cfg(feature = "cluster")]
    cluster: Option<super::relay::Relay>,
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
            outputs: VecDeque::new(),
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
            #[cfg(feature = "cluster")]
            cluster: None,
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
            #[cfg(feature = "cluster")]
            if let Some(relay) = self.cluster.as_mut() {
                relay.flush();
            }
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

    fn poll_timeout(&self, now: Millis) -> Option<Duration> {
        if !self.backlog.is_empty() {
            return Some(Duration::ZERO);
        }
        let core = if self.shutdown_deadline.is_none() { self.core.next_deadline() } else { None };
        let save = self.persistence.as_ref().and_then(Persistence::deadline);
        #[cfg(feature = "cluster")]
        let cluster = self.cluster.as_ref().map(super::relay::Relay::deadline);
        #[cfg(not(feature = "cluster"))]
        let cluster = None;
        let deadline = [self.timers.next(), core, self.accept_paused_until, self.shutdown_deadline, save, cluster]
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
            #[cfg(feature = "cluster")]
            {
                self.cluster_news(now);
                self.route(now);
            }
            return;
        }
        if let Some(index) = self.listener_index(token) {
            if self.accept_paused_until.is_none() {
                // Making room for a head may finish an older one's upgrade, which the core hears.
                self.accept_from(index, now);
                self.route(now);
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
