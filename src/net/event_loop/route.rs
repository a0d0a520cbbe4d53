//! The core's side of the loop: every input goes in through `feed` (recorded first when
//! recording); `route`, called once per event, delivers the core's outputs, then tells the core
//! about the connections the shell lost meanwhile.

use super::EventLoop;
use crate::core::{Input, Millis, Output};
use crate::net::conn::Phase;
use crate::net::ws::Push;
use std::rc::Rc;

impl EventLoop {
    /// Hands one input to the core, recording it first when recording. The outputs wait in the
    /// core for [`route`](Self::route); when recording, they are taken and recorded at once, so
    /// the recording keeps each input's outputs right after it.
    pub(super) fn feed(&mut self, now: Millis, input: Input<'_>) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.input(now, &input);
        }
        self.core.handle(now, input);
        if let Some(recorder) = self.recorder.as_mut() {
            while let Some(output) = self.core.poll_output() {
                recorder.output(&output);
                self.outputs.push_back(output);
            }
        }
    }

    /// Takes every output waiting in the core into `outputs`, to look at them before routing.
    #[cfg(feature = "cluster")]
    pub(super) fn take_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            self.outputs.push_back(output);
        }
    }

    /// Delivers the outputs of the inputs fed so far, in order; then tells the core, one at a
    /// time, about the connections the shell lost meanwhile and delivers what that caused, until
    /// nothing is left. Called once per event, never from within itself.
    pub(super) fn route(&mut self, now: Millis) {
        loop {
            // Outputs taken from the core earlier are older than those still in it.
            while let Some(output) = self.outputs.pop_front().or_else(|| self.core.poll_output()) {
                #[cfg(feature = "cluster")]
                let Some(output) = self.cluster_output(output) else { continue };
                match output {
                    Output::Send { conn, frame, droppable } => self.send(conn.0, frame, droppable, now),
                    Output::Close { conn, code, reason } => {
                        self.close_ws(conn.0, code, &reason, now, false);
                    }
                }
            }
            let Some(conn) = self.lost.pop_front() else { break };
            #[cfg(feature = "cluster")]
            if let Some(relay) = self.cluster.as_mut() {
                relay.client_closed(conn.0);
            }
            // A connection the core closed itself (its close is on its way) is not reported.
            if self.shutdown_deadline.is_none() && self.core.is_open(conn) {
                self.feed(now, Input::Closed { conn });
            }
        }
    }

    pub(super) fn send(&mut self, key: usize, frame: Rc<str>, droppable: bool, now: Millis) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Phase::Open(ws) = &mut conn.phase else { return };
        if droppable && ws.is_behind(&self.limits) {
            ws.count_dropped();
            self.counters.frames_dropped += 1;
            return;
        }
        self.loop_stats.frames_out += 1;
        self.loop_stats.bytes_out += frame.len() as u64;
        match ws.push(frame, &self.limits) {
            Push::Queued => {
                // A burst for one connection within a turn is written before it reaches the
                // soft cap, unless the socket is known to be full.
                if !conn.want_write && ws.wants_early_flush(&self.limits) {
                    self.flush_conn(key, now);
                }
                self.mark_dirty(key);
            }
            Push::Overflow => self.close_overflowing(key, now),
        }
    }
}
