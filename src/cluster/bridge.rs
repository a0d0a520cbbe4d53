//! The NATS thread: one async-nats client on a single-threaded runtime. It publishes what the
//! loop hands it, forwards what arrives for this node, keeps room leases in the `mppd_rooms`
//! bucket and watches the site-wide profile and ban buckets. It never blocks the loop: news goes
//! through a bounded channel and a `mio::Waker`.
//!
//! Leases (docs/cluster.md, "Room ownership"): a room's key holds its owner's name. A node claims
//! a free room with `create` (only if absent), renews it every second with `update` at the
//! revision it last wrote, and takes over the room of a node whose heartbeat stopped with
//! `update` at the revision it read: compare-and-set on the key's revision, so two nodes never
//! both succeed. A key nobody renews disappears after the bucket's `max_age`.

use super::envelope::Heartbeat;
use super::keys::{BANS_BUCKET, HEARTBEATS, PROFILES_BUCKET, ROOMS_BUCKET, node_subject, room_key};
use super::{ClusterConfig, FromNats, ToNats};
use async_nats::jetstream::kv::{Operation, Store, UpdateErrorKind};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::{Client, ConnectOptions, Event};
use futures_util::StreamExt;
use log::{debug, info, warn};
use mio::Waker;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A lease not renewed for this long is gone (the rooms bucket's `max_age`).
pub const LEASE: Duration = Duration::from_secs(3);
/// A node silent for this long is taken for dead (heartbeats come every second).
pub const NODE_TIMEOUT: Duration = Duration::from_secs(3);
/// Bans outlive their end by at most this (the bans bucket's `max_age`; bans last ≤ 1 h).
const BAN_RECORD_AGE: Duration = Duration::from_secs(2 * 3600);
/// The longest pause between two tries of a lookup that fails (NATS unreachable).
const RESOLVE_RETRY_MAX: Duration = Duration::from_secs(1);

/// The sending side of the news channel, with the waker that tells the loop.
pub struct Outbox {
    news: SyncSender<FromNats>,
    waker: Arc<Waker>,
    /// Set when the loop was woken and has not started draining yet: one wake-up per burst.
    woken: Arc<AtomicBool>,
}

impl Outbox {
    pub fn new(news: SyncSender<FromNats>, waker: Arc<Waker>, woken: Arc<AtomicBool>) -> Outbox {
        Outbox { news, waker, woken }
    }

    fn post(&self, news: FromNats) {
        if self.news.try_send(news).is_err() {
            debug!("cluster: the event loop is behind; news dropped");
        }
        if !self.woken.swap(true, Ordering::AcqRel)
            && let Err(e) = self.waker.wake()
        {
            warn!("cluster: cannot wake the event loop: {e}");
        }
    }
}

/// What the tasks of the thread share.
struct Shared {
    node: String,
    client: Client,
    rooms: Store,
    outbox: Outbox,
    /// Live peers: name → (incarnation, last heartbeat).
    peers: Mutex<HashMap<String, (u64, Instant)>>,
    /// Rooms leased here: key → (room, revision last written).
    leases: Mutex<HashMap<String, (String, u64)>>,
    connected: AtomicBool,
    /// When the connection (re)started; peers are judged only after a full timeout of it.
    connected_at: Mutex<Instant>,
}

impl Shared {
    /// Whether `node` counts as alive: heard from lately, or this node has not been connected
    /// long enough to know.
    fn alive(&self, node: &str) -> bool {
        if node == self.node {
            return true;
        }
        let since = *lock(&self.connected_at);
        if !self.connected.load(Ordering::Acquire) || since.elapsed() < NODE_TIMEOUT {
            return true;
        }
        lock(&self.peers).get(node).is_some_and(|(_, at)| at.elapsed() < NODE_TIMEOUT)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs until the loop's end of the request channel is dropped.
pub async fn run(config: ClusterConfig, inc: u64, mut requests: tokio::sync::mpsc::Receiver<ToNats>, outbox: Outbox) {
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let options = ConnectOptions::new()
        .name(format!("mppd {}", config.node))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| Duration::from_millis((100 * attempts as u64).min(1000)))
        .event_callback(move |event| {
            let events_tx = events_tx.clone();
            async move {
                let _ = events_tx.send(event);
            }
        });
    let client = match options.connect(config.url.as_str()).await {
        Ok(client) => client,
        Err(e) => {
            warn!("cluster: cannot use NATS at {}: {e}; this node runs alone", config.url);
            return;
        }
    };
    let js = async_nats::jetstream::new(client.clone());
    let rooms = bucket(&js, ROOMS_BUCKET, LEASE).await;
    let profiles = bucket(&js, PROFILES_BUCKET, Duration::ZERO).await;
    let bans = bucket(&js, BANS_BUCKET, BAN_RECORD_AGE).await;
    info!("cluster: node {} joined the site at {}", config.node, config.url);
    let shared = Arc::new(Shared {
        node: config.node.clone(),
        client: client.clone(),
        rooms,
        outbox,
        peers: Mutex::new(HashMap::new()),
        leases: Mutex::new(HashMap::new()),
        connected: AtomicBool::new(true),
        connected_at: Mutex::new(Instant::now()),
    });
    tokio::spawn(forward_inbox(shared.clone()));
    tokio::spawn(forward_heartbeats(shared.clone(), inc));
    tokio::spawn(watch_records(shared.clone(), profiles.clone(), true));
    tokio::spawn(watch_records(shared.clone(), bans.clone(), false));
    let mut liveness = tokio::time::interval(Duration::from_millis(500));
    let renewing = Arc::new(AtomicBool::new(false));
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { break };
                handle(&shared, &profiles, &bans, &renewing, request).await;
            }
            Some(event) = events.recv() => on_event(&shared, event),
            _ = liveness.tick() => check_peers(&shared),
        }
    }
    let _ = client.flush().await;
}

/// Creates a bucket (or opens it with the same settings), retrying until JetStream answers.
/// The bucket's stream is made here with the settings a key-value bucket has (`KV_<name>` on
/// `$KV.<name>.>`, one message per key, direct get) rather than through the client's bucket
/// creation, which first asks for account details in a shape NATS 2.9 does not send.
async fn bucket(js: &async_nats::jetstream::Context, name: &str, max_age: Duration) -> Store {
    let config = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    let mut logged = false;
    loop {
        let store = match js.get_or_create_stream(config.clone()).await {
            Ok(_) => js.get_key_value(name).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match store {
            Ok(store) => return store,
            Err(e) => {
                if !logged {
                    warn!("cluster: cannot open the {name} bucket yet ({e}); retrying");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn handle(shared: &Arc<Shared>, profiles: &Store, bans: &Store, renewing: &Arc<AtomicBool>, request: ToNats) {
    match request {
        ToNats::Publish { node, payload } => {
            if let Err(e) = shared.client.publish(node_subject(&node), payload.into()).await {
                debug!("cluster: publish to {node} failed: {e}");
            }
        }
        ToNats::Heartbeat(payload) => {
            if let Err(e) = shared.client.publish(HEARTBEATS, payload.into()).await {
                debug!("cluster: heartbeat failed: {e}");
            }
        }
        ToNats::Resolve { room } => {
            tokio::spawn(resolve(shared.clone(), room));
        }
        ToNats::Hosting(rooms) => {
            if !renewing.swap(true, Ordering::AcqRel) {
                let (shared, renewing) = (shared.clone(), renewing.clone());
                tokio::spawn(async move {
                    renew(&shared, rooms).await;
                    renewing.store(false, Ordering::Release);
                });
            }
        }
        ToNats::PutProfile { user, record } => {
            let profiles = profiles.clone();
            tokio::spawn(async move {
                if let Err(e) = profiles.put(&user, record.into()).await {
                    warn!("cluster: cannot store the profile of {user}: {e}");
                }
            });
        }
        ToNats::PutBan { key, record } => {
            let bans = bans.clone();
            tokio::spawn(async move {
                if let Err(e) = bans.put(&key, record.into()).await {
                    warn!("cluster: cannot store the ban {key}: {e}");
                }
            });
        }
    }
}

fn on_event(shared: &Shared, event: Event) {
    match event {
        Event::Connected => {
            info!("cluster: connected to NATS");
            *lock(&shared.connected_at) = Instant::now();
            shared.connected.store(true, Ordering::Release);
        }
        Event::Disconnected => {
            warn!("cluster: disconnected from NATS; reconnecting");
            shared.connected.store(false, Ordering::Release);
        }
        other => info!("cluster: NATS: {other}"),
    }
}

/// Declares peers silent for [`NODE_TIMEOUT`] gone, unless this node itself lost NATS.
fn check_peers(shared: &Shared) {
    if !shared.connected.load(Ordering::Acquire) || lock(&shared.connected_at).elapsed() < NODE_TIMEOUT {
        let mut peers = lock(&shared.peers);
        let now = Instant::now();
        for (_, at) in peers.values_mut() {
            *at = now;
        }
        return;
    }
    let gone: Vec<(String, u64)> = {
        let mut peers = lock(&shared.peers);
        let gone = peers.iter().filter(|(_, (_, at))| at.elapsed() >= NODE_TIMEOUT).map(|(n, (i, _))| (n.clone(), *i));
        let gone: Vec<_> = gone.collect();
        for (node, _) in &gone {
            peers.remove(node);
        }
        gone
    };
    for (node, inc) in gone {
        info!("cluster: node {node} went silent");
        shared.outbox.post(FromNats::NodeGone { node, inc });
    }
}

async fn forward_inbox(shared: Arc<Shared>) {
    loop {
        match shared.client.subscribe(node_subject(&shared.node)).await {
            Ok(mut inbox) => {
                while let Some(message) = inbox.next().await {
                    shared.outbox.post(FromNats::Batch(message.payload.to_vec()));
                }
            }
            Err(e) => warn!("cluster: cannot subscribe to this node's subject: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn forward_heartbeats(shared: Arc<Shared>, own_inc: u64) {
    loop {
        match shared.client.subscribe(HEARTBEATS).await {
            Ok(mut beats) => {
                while let Some(message) = beats.next().await {
                    let Ok(beat) = serde_json::from_slice::<Heartbeat>(&message.payload) else {
                        debug!("cluster: heartbeat that is not one ignored");
                        continue;
                    };
                    if beat.node == shared.node {
                        if beat.inc != own_inc {
                            warn!("cluster: another process also calls itself node {}", beat.node);
                        }
                        continue;
                    }
                    let replaced = lock(&shared.peers).insert(beat.node.clone(), (beat.inc, Instant::now()));
                    if let Some((old, _)) = replaced.filter(|(old, _)| *old != beat.inc) {
                        info!("cluster: node {} restarted", beat.node);
                        shared.outbox.post(FromNats::NodeGone { node: beat.node.clone(), inc: old });
                    }
                    shared.outbox.post(FromNats::Heartbeat(beat));
                }
            }
            Err(e) => warn!("cluster: cannot subscribe to heartbeats: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Forwards every record of a bucket, the stored ones first, then each change.
async fn watch_records(shared: Arc<Shared>, store: Store, profiles: bool) {
    loop {
        match store.watch_with_history(">").await {
            Ok(mut watch) => {
                while let Some(entry) = watch.next().await {
                    let Ok(entry) = entry else { break };
                    if entry.operation != Operation::Put {
                        continue;
                    }
                    let record = entry.value.to_vec();
                    shared.outbox.post(if profiles {
                        FromNats::Profile { user: entry.key, record }
                    } else {
                        FromNats::Ban(record)
                    });
                }
            }
            Err(e) => debug!("cluster: cannot watch a bucket yet: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Finds who runs `room`, claiming it when nobody alive does, and tells the loop. While NATS
/// cannot be reached it keeps trying: a room is never run without its lease, so that it never
/// runs on two nodes for longer than a cut link lasts.
async fn resolve(shared: Arc<Shared>, room: String) {
    let key = room_key(&room);
    let me = shared.node.clone();
    let mut pause = Duration::from_millis(100);
    let owner = loop {
        match shared.rooms.entry(key.clone()).await {
            Ok(Some(entry)) if entry.operation == Operation::Put => {
                let owner = String::from_utf8_lossy(&entry.value).into_owned();
                if owner == me {
                    lock(&shared.leases).insert(key.clone(), (room.clone(), entry.revision));
                    break me.clone();
                }
                if shared.alive(&owner) {
                    break owner;
                }
                // The owner is silent: take the room over, unless another node is faster.
                if let Ok(revision) = shared.rooms.update(&key, me.clone().into(), entry.revision).await {
                    info!("cluster: took room {room:?} over from silent node {owner}");
                    lock(&shared.leases).insert(key.clone(), (room.clone(), revision));
                    break me.clone();
                }
            }
            Ok(_) => {
                if let Ok(revision) = shared.rooms.create(&key, me.clone().into()).await {
                    debug!("cluster: claimed room {room:?}");
                    lock(&shared.leases).insert(key.clone(), (room.clone(), revision));
                    break me.clone();
                }
            }
            Err(e) => {
                debug!("cluster: looking up room {room:?} failed: {e}");
                pause = (pause * 2).min(RESOLVE_RETRY_MAX);
            }
        }
        tokio::time::sleep(pause).await;
    };
    shared.outbox.post(FromNats::Owner { room, node: owner });
}

/// Renews the leases of the rooms this node runs and lets the others expire. A renewal refused
/// for its revision means another node holds the room now.
async fn renew(shared: &Shared, hosting: Vec<String>) {
    let hosting: HashSet<String> = hosting.iter().map(|room| room_key(room)).collect();
    let due: Vec<(String, String, u64)> = {
        let mut leases = lock(&shared.leases);
        leases.retain(|key, _| hosting.contains(key));
        leases.iter().map(|(key, (room, revision))| (key.clone(), room.clone(), *revision)).collect()
    };
    let renewals = due.into_iter().map(|(key, room, revision)| async move {
        let result = shared.rooms.update(&key, shared.node.clone().into(), revision).await;
        (key, room, result)
    });
    for (key, room, result) in futures_util::future::join_all(renewals).await {
        match result {
            Ok(revision) => {
                if let Some(lease) = lock(&shared.leases).get_mut(&key) {
                    lease.1 = revision;
                }
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                warn!("cluster: lost room {room:?} to another node");
                lock(&shared.leases).remove(&key);
                shared.outbox.post(FromNats::Lost { room });
            }
            Err(e) => debug!("cluster: renewing room {room:?} failed: {e}"),
        }
    }
}
