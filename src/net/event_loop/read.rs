//! Reading open WebSockets: text frames go to the core, within a read budget per turn (the rest
//! is resumed next turn); closes and socket failures end the connection.

use super::EventLoop;
use crate::core::{ConnId, Input, Millis};
use crate::net::conn::{Closing, Phase};
use log::{debug, info};
use std::io;
use tungstenite::error::ProtocolError;
use tungstenite::{Error, Message};

/// Close codes the shell itself uses (PROTOCOL.md §11).
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_INVALID_UTF8: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_SEND_QUEUE_FULL: u16 = 4003;

impl EventLoop {
    /// Reads and handles at most `read_budget_frames` frames; a connection with input left is
    /// resumed next turn, so that one flooding client cannot starve the others.
    pub(super) fn read_open(&mut self, key: usize, now: Millis) {
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
            let result = ws.read(self.ws_config);
            match result {
                Ok(Message::Text(text)) => {
                    self.loop_stats.bytes_in += text.len() as u64;
                    #[cfg(feature = "cluster")]
                    if self.cluster_text(key, text.as_str(), now) {
                        continue;
                    }
                    self.feed(now, Input::Text { conn: ConnId(key), text: text.as_str() });
                    if !self.core.is_open(ConnId(key)) {
                        // The core closed it; its close goes out with the next `route`.
                        return;
                    }
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
                    conn.phase = Phase::Closing(Box::new(Closing::websocket(ws.into_socket(self.ws_config))));
                    self.set_deadline(key, now.plus(self.config.close_linger_ms));
                    self.mark_dirty(key);
                    self.lost.push_back(ConnId(key));
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
    pub(super) fn backlog_conn(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.backlogged
        {
            conn.backlogged = true;
            self.backlog.push((key, conn.serial));
        }
    }

    /// Resumes reading the connections that had input left after their budget last turn.
    pub(super) fn resume_backlog(&mut self, resumed: Vec<(usize, u64)>, now: Millis) {
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
    pub(super) fn lose(&mut self, key: usize, why: &str) {
        if let Some(conn) = self.conns.get(key) {
            info!("conn {key}: {} gone: {why}", conn.peer);
        }
        self.drop_conn(key);
        self.lost.push_back(ConnId(key));
    }

    /// Starts closing an open WebSocket with `code`. `by_shell` means the core has not asked for
    /// it and must hear `Closed`; such closes also discard the unsent queue when it overflowed.
    pub(super) fn close_ws(&mut self, key: usize, code: u16, reason: &str, now: Millis, by_shell: bool) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if !matches!(conn.phase, Phase::Open(_)) {
            return;
        }
        let Phase::Open(ws) = std::mem::replace(&mut conn.phase, Phase::Gone) else { return };
        info!("conn {key}: {} closed by the server with {code} {reason}", conn.peer);
        self.counters.count_close(code);
        let discard = code == CLOSE_SEND_QUEUE_FULL;
        conn.phase = Phase::Closing(Box::new(Closing::websocket(ws.close(code, reason, discard, self.ws_config))));
        self.set_deadline(key, now.plus(self.config.close_linger_ms));
        self.mark_dirty(key);
        if by_shell {
            self.lost.push_back(ConnId(key));
        }
    }

    pub(super) fn close_overflowing(&mut self, key: usize, now: Millis) {
        let reason = format!("Message buffer length exceeded {}.", self.config.send_queue_hard_bytes);
        self.close_ws(key, CLOSE_SEND_QUEUE_FULL, &reason, now, true);
    }
}
