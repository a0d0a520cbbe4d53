//! Accepting sockets and their HTTP request heads: the caps on sockets and unfinished heads,
//! plain HTTP answers (health, metrics, the web client), refusals, and the upgrade that opens a
//! WebSocket and tells the core.

use super::EventLoop;
use crate::core::{ConnId, Input, Millis};
use crate::net::admission::Refusal;
use crate::net::conn::{Closing, Conn, Phase, Progress, Upgrading};
use crate::net::head::{Head, HeadStep, bad_request, forbidden, service_unavailable, status_of, too_many_requests};
use crate::net::http::{response, serve_site};
use crate::net::listeners::{Accepted, accept_one};
use crate::net::metrics::{Sources, health, prometheus};
use crate::net::peer::peer_info;
use crate::net::persist::Persistence;
use crate::net::realip::real_client_ip;
use crate::net::ws::Ws;
use log::{debug, info, warn};
use mio::{Interest, Token};

/// How long accepting pauses after the process ran out of descriptors.
const ACCEPT_RETRY_MS: u64 = 100;

/// How long accepting pauses when `max_pending_handshakes` heads are all too young to drop.
const HEAD_ROOM_RETRY_MS: u64 = 20;

/// A request head younger than this is never dropped for a newcomer: its bytes may still be on
/// their way. Capped by a tenth of the handshake timeout.
const HEAD_EVICT_GRACE_MS: u64 = 1_000;

impl EventLoop {
    pub(super) fn accept_from(&mut self, index: usize, now: Millis) {
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

    pub(super) fn resume_accepting(&mut self, now: Millis) {
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
    pub(super) fn make_room_for_a_head(&mut self, now: Millis) -> bool {
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
    pub(super) fn compact_heads(&mut self) {
        if self.heads.len() > 2 * self.pending_heads + 64 {
            let conns = &self.conns;
            self.heads.retain(|&(key, serial, _)| {
                conns.get(key).is_some_and(|c| c.serial == serial && matches!(c.phase, Phase::Head { .. }))
            });
        }
    }

    /// Answers `503` (best effort, in one write) and closes a socket the server has no room for.
    pub(super) fn refuse_at_accept(
        &mut self,
        mut stream: mio::net::TcpStream,
        peer: std::net::SocketAddr,
        now: Millis,
    ) {
        use std::io::Write;
        let _ = stream.write(&service_unavailable());
        let _ = stream.shutdown(std::net::Shutdown::Write);
        self.counters.refused_max_connections += 1;
        self.counters.count_http(503);
        let max = self.config.max_connections;
        self.log_refusal("503", now, || format!("{peer} refused: the server holds {max} connections"));
    }

    pub(super) fn add_conn(&mut self, mut stream: mio::net::TcpStream, peer: std::net::SocketAddr, now: Millis) {
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

    pub(super) fn read_head(&mut self, key: usize, now: Millis) {
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
                conn.phase = Phase::Upgrading(Box::new(Upgrading { stream, response, written: 0, leftover, peer }));
                self.write_upgrade(key, now);
            }
        }
    }

    /// The answer to a plain GET or HEAD: health, metrics, a web client's file, or `400`.
    pub(super) fn plain_response(&self, request: &tungstenite::handshake::server::Request, head_only: bool) -> Vec<u8> {
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
    pub(super) fn refuse(&mut self, key: usize, ip: std::net::IpAddr, refusal: Refusal, now: Millis) {
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
    pub(super) fn answer_http(&mut self, key: usize, response: Vec<u8>, now: Millis) {
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
        conn.phase = Phase::Closing(Box::new(Closing::http(stream, response)));
        if !matches!(status, 403 | 429) {
            self.log_refusal("http", now, || format!("conn {key}: {peer} answered HTTP {status}"));
        }
        self.set_deadline(key, now.plus(self.config.close_linger_ms));
        self.progress_closing(key);
    }

    pub(super) fn write_upgrade(&mut self, key: usize, now: Millis) {
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
    pub(super) fn open(&mut self, key: usize, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Upgrading(up) = std::mem::replace(&mut conn.phase, Phase::Gone) else {
            return;
        };
        let ws = Ws::new(up.stream, up.leftover, self.ws_config, &self.limits);
        conn.phase = Phase::Open(Box::new(ws));
        self.counters.websockets_opened += 1;
        conn.deadline = None;
        conn.want_write = false;
        if up.peer.ip == conn.peer.ip() {
            info!("conn {key}: open from {}", conn.peer);
        } else {
            info!("conn {key}: open from {} via proxy {}", up.peer.ip, conn.peer);
        }
        #[cfg(feature = "cluster")]
        if let Some(relay) = self.cluster.as_mut() {
            relay.client_opened(key, conn.serial, up.peer.ip);
        }
        self.sync_interest(key);
        self.feed(now, Input::Open { conn: ConnId(key), peer: up.peer });
        // Frames may have arrived with the request head or since.
        self.read_open(key, now);
        self.mark_dirty(key);
    }
}
