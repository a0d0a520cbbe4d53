//! A driver for the pure core in tests: explicit time, numbered connections from chosen
//! addresses, and every received message kept per connection as parsed JSON.

#![allow(dead_code)]

use mppd::config::CoreConfig;
use mppd::{ConnId, Core, Input, Millis, Output, PeerInfo};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub const T0: u64 = 1_700_000_000_000;

pub struct Sim {
    pub core: Core,
    pub now: u64,
    next_conn: usize,
    open: BTreeSet<ConnId>,
    inbox: BTreeMap<ConnId, Vec<Value>>,
    pub closed: BTreeMap<ConnId, (u16, String)>,
    /// Raw frames as delivered, for byte-level assertions.
    pub frames: Vec<(ConnId, String)>,
}

impl Sim {
    pub fn new() -> Sim {
        Sim::with(CoreConfig::default())
    }

    pub fn with(config: CoreConfig) -> Sim {
        Sim {
            core: Core::new(config),
            now: T0,
            next_conn: 1,
            open: BTreeSet::new(),
            inbox: BTreeMap::new(),
            closed: BTreeMap::new(),
            frames: Vec::new(),
        }
    }

    fn input(&mut self, input: Input<'_>) {
        self.core.handle(Millis::from_ms(self.now), input);
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Send { conn, frame, .. } => {
                    assert!(self.open.contains(&conn), "output to a connection that is not open: {conn:?} {frame}");
                    self.frames.push((conn, frame.to_string()));
                    let value: Value = serde_json::from_str(&frame).expect("frames are JSON");
                    let elements = value.as_array().expect("frames are arrays").clone();
                    self.inbox.entry(conn).or_default().extend(elements);
                }
                Output::Close { conn, code, reason } => {
                    assert!(self.open.remove(&conn), "close of a connection that is not open");
                    self.closed.insert(conn, (code, reason));
                }
            }
        }
    }

    /// Opens a connection from `ip` (the `b` it receives is left in its inbox).
    pub fn connect(&mut self, ip: &str) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.open.insert(conn);
        self.input(Input::Open { conn, peer: PeerInfo { ip: ip.parse().expect("test address") } });
        conn
    }

    /// Opens a connection, sends `hi`, and returns it with the user id from the reply.
    pub fn hi(&mut self, ip: &str) -> (ConnId, String) {
        let conn = self.connect(ip);
        self.send(conn, r#"[{"m":"hi"}]"#);
        let hi = self.take_m(conn, "hi").pop().expect("hi reply");
        (conn, hi["u"]["_id"].as_str().expect("u._id").to_string())
    }

    /// `hi` then `ch` to `room`; the inbox is emptied.
    pub fn join(&mut self, ip: &str, room: &str) -> (ConnId, String) {
        let (conn, id) = self.hi(ip);
        self.ch(conn, room);
        self.take(conn);
        (conn, id)
    }

    /// Asks for a room, half a second after the previous input (the `ch` rate limit, §8.3).
    pub fn ch(&mut self, conn: ConnId, room: &str) {
        self.advance(500);
        let msg = serde_json::json!([{"m": "ch", "_id": room}]).to_string();
        self.send(conn, &msg);
    }

    pub fn send(&mut self, conn: ConnId, text: &str) {
        self.input(Input::Text { conn, text });
    }

    pub fn disconnect(&mut self, conn: ConnId) {
        self.open.remove(&conn);
        self.input(Input::Closed { conn });
    }

    /// Moves time forward, running every timer that falls due on the way, in order.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        while let Some(deadline) = self.core.next_deadline().map(Millis::as_ms) {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.input(Input::Tick);
        }
        self.now = target;
    }

    /// Everything this connection received since the last take.
    pub fn take(&mut self, conn: ConnId) -> Vec<Value> {
        self.inbox.remove(&conn).unwrap_or_default()
    }

    /// Messages named `m` among those received since the last take (the rest is discarded).
    pub fn take_m(&mut self, conn: ConnId, m: &str) -> Vec<Value> {
        self.take(conn).into_iter().filter(|v| v["m"] == m).collect()
    }

    /// Names of the messages received since the last take, in order.
    pub fn names(&mut self, conn: ConnId) -> Vec<String> {
        self.take(conn).iter().map(|v| v["m"].as_str().unwrap_or("?").to_string()).collect()
    }

    pub fn is_open(&self, conn: ConnId) -> bool {
        self.open.contains(&conn)
    }

    pub fn clear_all(&mut self) {
        self.inbox.clear();
    }
}

/// `n`, `m`, and the like need distinct users: one address each.
pub fn ip(n: u32) -> String {
    format!("10.0.{}.{}", n / 250, n % 250 + 1)
}
