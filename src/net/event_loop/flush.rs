//! Writing: connections with output are flushed once per turn (or once the adaptive flush
//! delay has passed), and WRITABLE interest is registered only while bytes wait.

use super::EventLoop;
use crate::core::{ConnId, Millis};
use crate::net::conn::{Phase, Progress};
use crate::net::ws::Flushed;
use log::{debug, warn};
use mio::{Interest, Token};

impl EventLoop {
    pub(super) fn mark_dirty(&mut self, key: usize) {
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
    pub(super) fn flush_dirty(&mut self, now: Millis) {
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
    pub(super) fn flush_conn(&mut self, key: usize, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Open(ws) = &mut conn.phase else { return };
        match ws.flush(&self.limits) {
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

    pub(super) fn progress_closing(&mut self, key: usize) {
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

    /// Registers WRITABLE interest only while bytes wait for the socket.
    pub(super) fn sync_interest(&mut self, key: usize) {
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
}
