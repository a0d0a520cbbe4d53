//! The event loop's side of a cluster (docs/cluster.md): which node runs each client's session,
//! relaying sessions whose room another node owns, running other nodes' sessions here, the
//! site-wide channel list, and site-wide names and bans.
//!
//! Nothing here touches a socket or the core: every method appends [`Step`]s that the event loop
//! carries out in order (feed the core, write to a client), and what goes to other nodes is
//! batched per node and handed to the NATS thread once per turn. The core only ever sees
//! `Open`/`Text`/`Closed` inputs, for its own clients' sessions and for other nodes' ("guests",
//! with connection ids from [`GUEST_BASE`] up), so it does not know which is which.
//!
//! The one place where the shell reads client messages: a `ch` (to find the room's owner before
//! the session goes there), `hi` (kept, to replay on the next node) and `+ls`/`-ls` (the channel
//! list is the site's, merged here from every node's heartbeat).

use crate::cluster::envelope::{BanRecord, Batch, Heartbeat, Item, ProfileRecord};
use crate::cluster::keys::ban_key;
use crate::cluster::{Bridge, FromNats, ToNats};
use crate::config::Rate;
use crate::core::{ConnId, Core, Millis, PeerInfo, RateLimiter, SavedBan, SavedProfile, Snapshot, UserId};
use crate::proto::validate::{MAX_CHANNEL_NAME_LEN, is_valid_text};
use log::{debug, info, warn};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

/// The connection id of the core's own `+ls` subscriber, whose `ls` frames tell this node's rooms.
pub(super) const LISTER: ConnId = ConnId(usize::MAX / 2);
/// Connection ids of sessions whose client is connected to another node start here.
pub(super) const GUEST_BASE: usize = usize::MAX / 2 + 1;
/// How often heartbeats, lease renewals, list updates and profile checks happen.
const TICK_MS: u64 = 1_000;
/// Frames a client may send while its room's owner is being looked up; more are dropped.
const MAX_PENDING_FRAMES: usize = 64;

/// Something the event loop must do, in order.
#[derive(Debug)]
pub(super) enum Step {
    /// Open a session in the core; replay `hi` (a message object) if given. What the core sends
    /// this connection for the two is not delivered: the client already had it.
    Open {
        conn: ConnId,
        peer: PeerInfo,
        hi: Option<String>,
    },
    Text {
        conn: ConnId,
        text: String,
    },
    Closed {
        conn: ConnId,
    },
    /// Write a frame to a client of this node.
    Deliver {
        key: usize,
        frame: Rc<str>,
        droppable: bool,
    },
    /// Close a client of this node whose session's core already forgot it.
    CloseClient {
        key: usize,
        code: u16,
        reason: String,
    },
    /// Site-wide names and bans that another node stored.
    Restore(Snapshot),
}

/// Which core runs a session.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Home {
    Local,
    Node(String),
    /// Its node went away; it waits for its room's new owner.
    Nowhere,
}

/// A client connected to this node.
#[derive(Debug)]
struct Session {
    serial: u64,
    ip: IpAddr,
    /// The client's first `hi`, replayed when the session moves.
    hi: Option<String>,
    home: Home,
    /// The room the client last asked for.
    room: Option<String>,
    /// Set while the owner of this room is looked up; frames wait in `pending` meanwhile.
    waiting_for: Option<String>,
    pending: Vec<String>,
    /// The `ch` rate (§8.3), kept here with the core's limiter: a session may change cores
    /// between two `ch`.
    ch_limit: RateLimiter,
}

/// A session run here for a client connected to another node.
#[derive(Debug)]
struct Guest {
    node: String,
    inc: u64,
    serial: u64,
    room: Option<String>,
}

/// Items for one node, gathered during a turn.
#[derive(Default)]
struct Outgoing {
    items: Vec<Item>,
    /// The frame of the last `Send` item, to add recipients of the same broadcast to it.
    last_frame: Option<Rc<str>>,
}

/// A peer's last heartbeat.
struct Peer {
    rooms: Vec<Value>,
}

pub(super) struct Relay {
    node: String,
    /// The core's `ch` rate (§8.3).
    ch_rate: Rate,
    inc: u64,
    bridge: Bridge,
    steps: Vec<Step>,
    sessions: HashMap<usize, Session>,
    by_serial: HashMap<u64, usize>,
    guests: HashMap<(String, u64, u64), ConnId>,
    guest_of: HashMap<ConnId, Guest>,
    next_guest: usize,
    /// Sessions waiting for a room's owner: room → (key, serial).
    waiting: HashMap<String, Vec<(usize, u64)>>,
    outgoing: BTreeMap<String, Outgoing>,
    peers: BTreeMap<String, Peer>,
    /// This node's visible rooms, as its core lists them: name → `ls` entry.
    local_rooms: BTreeMap<String, Value>,
    /// Clients of this node subscribed to the channel list, and the list they were last sent.
    listeners: BTreeSet<usize>,
    listed: BTreeMap<String, Value>,
    next_tick: Millis,
    /// The core's persist generation when names and bans were last published.
    persist_seen: Option<u64>,
    published_profiles: HashMap<UserId, (String, String)>,
    published_bans: HashMap<(String, UserId), Millis>,
}

#[derive(Deserialize)]
struct ElementHead {
    #[serde(default)]
    m: Option<Value>,
    #[serde(default, rename = "_id")]
    id: Option<Value>,
}

impl Relay {
    pub(super) fn new(node: String, inc: u64, bridge: Bridge, ch_rate: Rate, now: Millis) -> Relay {
        let mut relay = Relay {
            node,
            ch_rate,
            inc,
            bridge,
            steps: Vec::new(),
            sessions: HashMap::new(),
            by_serial: HashMap::new(),
            guests: HashMap::new(),
            guest_of: HashMap::new(),
            next_guest: GUEST_BASE,
            waiting: HashMap::new(),
            outgoing: BTreeMap::new(),
            peers: BTreeMap::new(),
            local_rooms: BTreeMap::new(),
            listeners: BTreeSet::new(),
            listed: BTreeMap::new(),
            next_tick: now,
            persist_seen: None,
            published_profiles: HashMap::new(),
            published_bans: HashMap::new(),
        };
        // The core's channel list of this node comes to an internal subscriber.
        let peer = PeerInfo { ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
        relay.steps.push(Step::Open { conn: LISTER, peer, hi: None });
        relay.steps.push(Step::Text { conn: LISTER, text: r#"[{"m":"hi"},{"m":"+ls"}]"#.to_string() });
        relay
    }

    /// The steps to carry out now.
    pub(super) fn take_steps(&mut self) -> Vec<Step> {
        std::mem::take(&mut self.steps)
    }

    /// When [`Relay::tick`] is due.
    pub(super) fn deadline(&self) -> Millis {
        self.next_tick
    }

    // ---- clients of this node ------------------------------------------------------------

    pub(super) fn client_opened(&mut self, key: usize, serial: u64, ip: IpAddr) {
        let session = Session {
            serial,
            ip,
            hi: None,
            home: Home::Local,
            room: None,
            waiting_for: None,
            pending: Vec::new(),
            ch_limit: RateLimiter::default(),
        };
        if let Some(old) = self.sessions.insert(key, session) {
            self.by_serial.remove(&old.serial);
        }
        self.by_serial.insert(serial, key);
    }

    /// A client of this node went away (or its core closed it).
    pub(super) fn client_closed(&mut self, key: usize) {
        let Some(session) = self.sessions.remove(&key) else { return };
        self.by_serial.remove(&session.serial);
        self.listeners.remove(&key);
        if let Home::Node(node) = &session.home {
            self.push(node.clone(), Item::Closed { c: session.serial });
        }
    }

    /// A text frame from a client of this node.
    pub(super) fn client_text(&mut self, key: usize, text: &str, now: Millis) {
        let Some(session) = self.sessions.get_mut(&key) else {
            self.steps.push(Step::Text { conn: ConnId(key), text: text.to_string() });
            return;
        };
        if session.waiting_for.is_some() {
            if session.pending.len() < MAX_PENDING_FRAMES {
                session.pending.push(text.to_string());
            } else {
                debug!("conn {key}: frame dropped while its room's owner is looked up");
            }
            return;
        }
        self.route_text(key, text, now);
    }

    /// Sends a client's frame to its session's core, handling `hi`, `ch`, `+ls` and `-ls` first.
    fn route_text(&mut self, key: usize, text: &str, now: Millis) {
        // Most frames (notes, cursors, chat) name none of them: they go through unparsed.
        let mentions =
            text.contains("\"ch\"") || text.contains("\"hi\"") || text.contains("ls\"") || text.contains('\\');
        let elements = match mentions.then(|| serde_json::from_str::<Vec<&RawValue>>(text)) {
            Some(Ok(elements)) => elements,
            _ => {
                self.send_home(key, text.to_string());
                return;
            }
        };
        let mut run: Vec<&str> = Vec::new();
        for (index, element) in elements.iter().enumerate() {
            let head = serde_json::from_str::<ElementHead>(element.get()).ok();
            let name = head.as_ref().and_then(|h| h.m.as_ref()).and_then(Value::as_str).unwrap_or("");
            let Some(session) = self.sessions.get_mut(&key) else { return };
            match name {
                "hi" => {
                    if session.hi.is_none() {
                        session.hi = Some(element.get().to_string());
                    }
                    run.push(element.get());
                }
                "+ls" | "-ls" if session.hi.is_some() => {
                    self.flush_run(key, &mut run);
                    self.list_request(key, name == "+ls");
                }
                "ch" if session.hi.is_some() => {
                    let room = head.as_ref().and_then(|h| h.id.as_ref()).and_then(Value::as_str);
                    // An invalid name goes to the core, which ignores it (§5 `ch`).
                    let Some(room) = room.filter(|r| is_valid_text(r, MAX_CHANNEL_NAME_LEN)) else {
                        run.push(element.get());
                        continue;
                    };
                    if !session.ch_limit.allow(now, self.ch_rate, 1) {
                        debug!("conn {key}: ch dropped by the ch rate");
                        continue;
                    }
                    self.flush_run(key, &mut run);
                    let rest: Vec<&str> = elements[index..].iter().map(|e| e.get()).collect();
                    self.await_owner(key, room.to_string(), frame_of(&rest));
                    return;
                }
                _ => run.push(element.get()),
            }
        }
        self.flush_run(key, &mut run);
    }

    fn flush_run(&mut self, key: usize, run: &mut Vec<&str>) {
        if !run.is_empty() {
            self.send_home(key, frame_of(run));
            run.clear();
        }
    }

    /// Holds `frame` (a `ch` first) until the owner of `room` is known.
    fn await_owner(&mut self, key: usize, room: String, frame: String) {
        let Some(session) = self.sessions.get_mut(&key) else { return };
        session.room = Some(room.clone());
        session.waiting_for = Some(room.clone());
        session.pending.insert(0, frame);
        let waiters = self.waiting.entry(room.clone()).or_default();
        if waiters.is_empty() {
            self.bridge.send(ToNats::Resolve { room });
        }
        waiters.push((key, session.serial));
    }

    fn send_home(&mut self, key: usize, text: String) {
        let Some(session) = self.sessions.get(&key) else { return };
        match &session.home {
            Home::Local => self.steps.push(Step::Text { conn: ConnId(key), text }),
            Home::Node(node) => {
                let item = Item::Text { c: session.serial, t: text };
                self.push(node.clone(), item);
            }
            Home::Nowhere => debug!("conn {key}: frame dropped while its room moves"),
        }
    }

    /// The owner of `room` is known: the sessions waiting for it move there, then get their frames.
    fn owner_found(&mut self, room: &str, owner: String, now: Millis) {
        let target = if owner == self.node { Home::Local } else { Home::Node(owner) };
        for (key, serial) in self.waiting.remove(room).unwrap_or_default() {
            let Some(session) = self.sessions.get_mut(&key) else { continue };
            if session.serial != serial || session.waiting_for.as_deref() != Some(room) {
                continue;
            }
            session.waiting_for = None;
            let pending = std::mem::take(&mut session.pending);
            self.move_session(key, target.clone());
            let mut frames = pending.into_iter();
            if let Some(first) = frames.next() {
                self.send_home(key, first);
            }
            for frame in frames {
                self.client_text(key, &frame, now);
            }
        }
    }

    fn move_session(&mut self, key: usize, target: Home) {
        let Some(session) = self.sessions.get_mut(&key) else { return };
        if session.home == target {
            return;
        }
        let old = std::mem::replace(&mut session.home, target.clone());
        let (serial, ip, hi, room) = (session.serial, session.ip, session.hi.clone(), session.room.clone());
        debug!("conn {key}: session moves from {old:?} to {target:?}");
        match old {
            Home::Local => self.steps.push(Step::Closed { conn: ConnId(key) }),
            Home::Node(node) => self.push(node, Item::Closed { c: serial }),
            Home::Nowhere => {}
        }
        match target {
            Home::Local => self.steps.push(Step::Open { conn: ConnId(key), peer: PeerInfo { ip }, hi }),
            Home::Node(node) => self.push(node, Item::Open { c: serial, ip, hi, room }),
            Home::Nowhere => {}
        }
    }

    /// The session's core lost it (its node died, or its room went elsewhere): ask its room
    /// again, which finds (or makes) the room's new owner.
    fn rehome(&mut self, key: usize) {
        let Some(session) = self.sessions.get_mut(&key) else { return };
        if let Home::Node(_) = session.home {
            session.home = Home::Nowhere;
        }
        let Some(room) = session.room.clone() else {
            self.move_session(key, Home::Local);
            return;
        };
        if session.waiting_for.is_some() {
            return;
        }
        let ask = format!(r#"[{{"m":"ch","_id":{}}}]"#, Value::from(room.as_str()));
        self.await_owner(key, room, ask);
    }

    // ---- the channel list ----------------------------------------------------------------

    fn list_request(&mut self, key: usize, subscribe: bool) {
        if !subscribe {
            self.listeners.remove(&key);
            return;
        }
        self.listeners.insert(key);
        // The full list for the newcomer only: `listed` stays what the other subscribers were last
        // told, so the next update still carries every change since to them.
        let merged = self.merged_list();
        let frame = format!(r#"[{{"m":"ls","c":true,"u":{}}}]"#, Value::from(merged.into_values().collect::<Vec<_>>()));
        self.steps.push(Step::Deliver { key, frame: Rc::from(frame), droppable: false });
    }

    /// Every visible room of the site, by name: this node's and its live peers'.
    fn merged_list(&self) -> BTreeMap<String, Value> {
        let mut merged = self.local_rooms.clone();
        for peer in self.peers.values() {
            for entry in &peer.rooms {
                if let Some(id) = entry.get("_id").and_then(Value::as_str) {
                    merged.entry(id.to_string()).or_insert_with(|| entry.clone());
                }
            }
        }
        merged
    }

    /// Reads the core's `ls` frames to the internal subscriber.
    fn lister_frame(&mut self, frame: &str) {
        let Ok(messages) = serde_json::from_str::<Vec<Value>>(frame) else { return };
        for message in messages {
            if message.get("m").and_then(Value::as_str) != Some("ls") {
                continue;
            }
            if message.get("c") == Some(&Value::Bool(true)) {
                self.local_rooms.clear();
            }
            for entry in message.get("u").and_then(Value::as_array).into_iter().flatten() {
                let Some(id) = entry.get("_id").and_then(Value::as_str) else { continue };
                let gone = entry.get("count").and_then(Value::as_u64) == Some(0)
                    || entry.pointer("/settings/visible") == Some(&Value::Bool(false));
                if gone {
                    self.local_rooms.remove(id);
                } else {
                    self.local_rooms.insert(id.to_string(), entry.clone());
                }
            }
        }
    }

    /// Sends list subscribers the entries that changed since the last update, and a last entry
    /// with `count: 0` for rooms that are gone (PROTOCOL.md §6 `ls`).
    fn update_listeners(&mut self) {
        let merged = self.merged_list();
        if self.listeners.is_empty() {
            self.listed = merged;
            return;
        }
        let mut changes: Vec<Value> =
            merged.iter().filter(|(id, e)| self.listed.get(*id) != Some(e)).map(|(_, e)| e.clone()).collect();
        for (id, entry) in &self.listed {
            if !merged.contains_key(id) {
                let mut last = entry.clone();
                last["count"] = Value::from(0);
                changes.push(last);
            }
        }
        self.listed = merged;
        if changes.is_empty() {
            return;
        }
        let frame: Rc<str> = Rc::from(format!(r#"[{{"m":"ls","c":false,"u":{}}}]"#, Value::from(changes)));
        for key in &self.listeners {
            self.steps.push(Step::Deliver { key: *key, frame: frame.clone(), droppable: false });
        }
    }

    // ---- outputs of the core for guests and the lister -----------------------------------

    /// Whether `conn` is not a socket of this node (a guest or the lister).
    pub(super) fn is_virtual(conn: ConnId) -> bool {
        conn.0 >= LISTER.0
    }

    pub(super) fn core_send(&mut self, conn: ConnId, frame: Rc<str>, droppable: bool) {
        if conn == LISTER {
            self.lister_frame(&frame);
            return;
        }
        let Some(guest) = self.guest_of.get(&conn) else { return };
        let (node, serial) = (guest.node.clone(), guest.serial);
        let out = self.outgoing.entry(node).or_default();
        if let (Some(last), Some(Item::Send { c, d, .. })) = (&out.last_frame, out.items.last_mut())
            && Rc::ptr_eq(last, &frame)
            && *d == droppable
        {
            c.push(serial);
            return;
        }
        out.items.push(Item::Send { c: vec![serial], f: frame.to_string(), d: droppable });
        out.last_frame = Some(frame);
    }

    pub(super) fn core_close(&mut self, conn: ConnId, code: u16, reason: String) {
        if conn == LISTER {
            warn!("cluster: the core closed the channel list subscriber ({code} {reason})");
            return;
        }
        let Some(guest) = self.guest_of.remove(&conn) else { return };
        self.guests.remove(&(guest.node.clone(), guest.inc, guest.serial));
        self.push(guest.node, Item::Close { c: guest.serial, code, reason });
    }

    fn push(&mut self, node: String, item: Item) {
        let out = self.outgoing.entry(node).or_default();
        out.items.push(item);
        out.last_frame = None;
    }

    /// Hands this turn's batches to the NATS thread.
    pub(super) fn flush(&mut self) {
        for (node, out) in std::mem::take(&mut self.outgoing) {
            if out.items.is_empty() {
                continue;
            }
            let batch = Batch { node: self.node.clone(), inc: self.inc, items: out.items };
            match serde_json::to_vec(&batch) {
                Ok(payload) => self.bridge.send(ToNats::Publish { node, payload }),
                Err(e) => warn!("cluster: cannot encode a batch: {e}"),
            }
        }
    }

    // ---- news from NATS ------------------------------------------------------------------

    /// Handles everything the NATS thread queued.
    pub(super) fn drain_news(&mut self, now: Millis) {
        self.bridge.rearm();
        while let Some(news) = self.bridge.try_recv() {
            match news {
                FromNats::Batch(payload) => match serde_json::from_slice::<Batch>(&payload) {
                    Ok(batch) => self.on_batch(batch),
                    Err(e) => debug!("cluster: batch that is not one ignored: {e}"),
                },
                FromNats::Heartbeat(beat) => {
                    self.peers.insert(beat.node, Peer { rooms: beat.rooms });
                }
                FromNats::Owner { room, node } => self.owner_found(&room, node, now),
                FromNats::Lost { room } => self.room_lost(&room),
                FromNats::NodeGone { node, inc } => self.node_gone(&node, inc),
                FromNats::Profile { user, record } => self.remote_profile(&user, &record),
                FromNats::Ban(record) => self.remote_ban(&record, now),
            }
        }
    }

    fn on_batch(&mut self, batch: Batch) {
        let Batch { node, inc, items } = batch;
        for item in items {
            match item {
                Item::Open { c, ip, hi, room } => {
                    if let Some(old) = self.guests.remove(&(node.clone(), inc, c)) {
                        self.guest_of.remove(&old);
                        self.steps.push(Step::Closed { conn: old });
                    }
                    let conn = ConnId(self.next_guest);
                    self.next_guest = self.next_guest.wrapping_add(1).max(GUEST_BASE);
                    self.guests.insert((node.clone(), inc, c), conn);
                    self.guest_of.insert(conn, Guest { node: node.clone(), inc, serial: c, room });
                    self.steps.push(Step::Open { conn, peer: PeerInfo { ip }, hi });
                }
                Item::Text { c, t } => match self.guests.get(&(node.clone(), inc, c)) {
                    Some(conn) => self.steps.push(Step::Text { conn: *conn, text: t }),
                    None => self.push(node.clone(), Item::Moved { c }),
                },
                Item::Closed { c } => {
                    if let Some(conn) = self.guests.remove(&(node.clone(), inc, c)) {
                        self.guest_of.remove(&conn);
                        self.steps.push(Step::Closed { conn });
                    }
                }
                Item::Send { c, f, d } => {
                    let frame: Rc<str> = Rc::from(f);
                    for serial in c {
                        if let Some(key) = self.session_at(serial, &node) {
                            self.steps.push(Step::Deliver { key, frame: frame.clone(), droppable: d });
                        }
                    }
                }
                Item::Close { c, code, reason } => {
                    if let Some(key) = self.session_at(c, &node) {
                        if let Some(session) = self.sessions.get_mut(&key) {
                            session.home = Home::Nowhere;
                        }
                        self.client_closed(key);
                        self.steps.push(Step::CloseClient { key, code, reason });
                    }
                }
                Item::Moved { c } => {
                    if let Some(key) = self.session_at(c, &node) {
                        self.rehome(key);
                    }
                }
            }
        }
    }

    /// The key of the client with `serial` whose session `node` runs.
    fn session_at(&self, serial: u64, node: &str) -> Option<usize> {
        let key = *self.by_serial.get(&serial)?;
        let session = self.sessions.get(&key)?;
        matches!(&session.home, Home::Node(n) if n == node).then_some(key)
    }

    /// Another node holds `room` now: this node's sessions there go to it.
    fn room_lost(&mut self, room: &str) {
        let keys: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.home == Home::Local && s.room.as_deref() == Some(room))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.rehome(key);
        }
        let guests: Vec<ConnId> =
            self.guest_of.iter().filter(|(_, g)| g.room.as_deref() == Some(room)).map(|(c, _)| *c).collect();
        for conn in guests {
            if let Some(guest) = self.guest_of.remove(&conn) {
                self.guests.remove(&(guest.node.clone(), guest.inc, guest.serial));
                self.steps.push(Step::Closed { conn });
                self.push(guest.node, Item::Moved { c: guest.serial });
            }
        }
    }

    fn node_gone(&mut self, node: &str, inc: u64) {
        info!("cluster: moving the sessions node {node} ran");
        self.peers.remove(node);
        let keys: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| matches!(&s.home, Home::Node(n) if n == node))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.rehome(key);
        }
        let guests: Vec<ConnId> =
            self.guest_of.iter().filter(|(_, g)| g.node == node && g.inc == inc).map(|(c, _)| *c).collect();
        for conn in guests {
            if let Some(guest) = self.guest_of.remove(&conn) {
                self.guests.remove(&(guest.node, guest.inc, guest.serial));
                self.steps.push(Step::Closed { conn });
            }
        }
    }

    // ---- site-wide names and bans --------------------------------------------------------

    fn remote_profile(&mut self, user: &str, record: &[u8]) {
        let (Some(id), Ok(record)) = (UserId::parse(user), serde_json::from_slice::<ProfileRecord>(record)) else {
            debug!("cluster: profile record of {user:?} ignored");
            return;
        };
        // Its own records come back, and a watch started again after NATS restarted sends every
        // record again: only news reaches the core.
        let value = (record.name.clone(), record.color.clone());
        if record.by == self.node || self.published_profiles.get(&id) == Some(&value) {
            return;
        }
        self.published_profiles.insert(id, value);
        let profile = SavedProfile { id, name: record.name, color: record.color };
        self.steps.push(Step::Restore(Snapshot { profiles: vec![profile], bans: Vec::new() }));
    }

    /// A ban record of another node: a ban to load, or (ended before its time: an unban) the end
    /// of one this node loaded. A saved ban is lifted by loading it again as already over.
    fn remote_ban(&mut self, record: &[u8], now: Millis) {
        let Ok(record) = serde_json::from_slice::<BanRecord>(record) else { return };
        let Some(user) = UserId::parse(&record.user) else { return };
        if record.by == self.node {
            return;
        }
        let until = Millis::from_ms(record.until);
        let key = (record.channel.clone(), user);
        let ban = if until <= now {
            if self.published_bans.remove(&key).is_none() {
                return;
            }
            SavedBan { channel: record.channel, user, until: Millis::ZERO }
        } else {
            if self.published_bans.get(&key) == Some(&until) {
                return;
            }
            self.published_bans.insert(key, until);
            SavedBan { channel: record.channel, user, until }
        };
        self.steps.push(Step::Restore(Snapshot { profiles: Vec::new(), bans: vec![ban] }));
    }

    /// Stores the names and bans this node's core changed since the last call.
    fn publish_persistent(&mut self, core: &Core, now: Millis) {
        let generation = core.persist_generation();
        if self.persist_seen == Some(generation) {
            return;
        }
        self.persist_seen = Some(generation);
        let snapshot = core.snapshot(now);
        for p in snapshot.profiles {
            let value = (p.name, p.color);
            if self.published_profiles.get(&p.id) != Some(&value) {
                let record = ProfileRecord { name: value.0.clone(), color: value.1.clone(), by: self.node.clone() };
                if let Ok(record) = serde_json::to_vec(&record) {
                    self.bridge.send(ToNats::PutProfile { user: p.id.to_hex(), record });
                }
                self.published_profiles.insert(p.id, value);
            }
        }
        let mut current: HashMap<(String, UserId), Millis> = HashMap::new();
        for ban in snapshot.bans {
            current.insert((ban.channel, ban.user), ban.until);
        }
        for ((channel, user), until) in &current {
            if self.published_bans.get(&(channel.clone(), *user)) != Some(until) {
                let record = BanRecord {
                    channel: channel.clone(),
                    user: user.to_hex(),
                    until: until.as_ms(),
                    by: self.node.clone(),
                };
                if let Ok(record) = serde_json::to_vec(&record) {
                    self.bridge.send(ToNats::PutBan { key: ban_key(&user.to_hex(), channel), record });
                }
            }
        }
        // A ban gone before its end was lifted (`unban`): its record says it is over.
        for ((channel, user), until) in &self.published_bans {
            if !current.contains_key(&(channel.clone(), *user)) && *until > now {
                let record =
                    BanRecord { channel: channel.clone(), user: user.to_hex(), until: 0, by: self.node.clone() };
                if let Ok(record) = serde_json::to_vec(&record) {
                    self.bridge.send(ToNats::PutBan { key: ban_key(&user.to_hex(), channel), record });
                }
            }
        }
        self.published_bans = current;
    }

    // ---- once a second -------------------------------------------------------------------

    /// Heartbeat, lease renewals, list updates, site-wide names and bans.
    pub(super) fn tick(&mut self, core: &Core, now: Millis) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now.plus(TICK_MS);
        // Keeps the internal list subscriber from timing out (§11).
        self.steps.push(Step::Text { conn: LISTER, text: r#"[{"m":"t"}]"#.to_string() });
        let beat =
            Heartbeat { node: self.node.clone(), inc: self.inc, rooms: self.local_rooms.values().cloned().collect() };
        if let Ok(payload) = serde_json::to_vec(&beat) {
            self.bridge.send(ToNats::Heartbeat(payload));
        }
        let mut hosting: BTreeSet<String> =
            self.sessions.values().filter(|s| s.home == Home::Local).filter_map(|s| s.room.clone()).collect();
        hosting.extend(self.guest_of.values().filter_map(|g| g.room.clone()));
        self.bridge.send(ToNats::Hosting(hosting.into_iter().collect()));
        self.update_listeners();
        self.publish_persistent(core, now);
    }
}

/// A frame holding these message objects.
fn frame_of(elements: &[&str]) -> String {
    let mut frame = String::with_capacity(elements.iter().map(|e| e.len() + 1).sum::<usize>() + 1);
    frame.push('[');
    frame.push_str(&elements.join(","));
    frame.push(']');
    frame
}
