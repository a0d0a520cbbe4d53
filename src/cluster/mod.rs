//! Several mppd nodes serving one site over NATS (docs/cluster.md).
//!
//! The NATS client runs on a thread of its own with a small single-threaded runtime
//! ([`bridge`]); the event loop talks to it only through two bounded channels and wakes up on a
//! `mio::Waker` when something arrived. The loop stays the one owner of sockets and of the core;
//! nothing in here touches either.

mod bridge;
pub mod envelope;
pub mod keys;

use mio::Waker;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};

/// Where the cluster is and who this node is in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The NATS server, `nats://HOST:PORT` (a comma-separated list is tried in turn).
    pub url: String,
    /// This node's name, unique in the site.
    pub node: String,
}

/// Asks from the loop to the NATS thread.
#[derive(Debug)]
pub enum ToNats {
    /// Publish a serialized [`envelope::Batch`] to a node.
    Publish { node: String, payload: Vec<u8> },
    /// Publish this node's serialized [`envelope::Heartbeat`].
    Heartbeat(Vec<u8>),
    /// Find the room's owner, claiming the room when nobody (alive) holds it.
    Resolve { room: String },
    /// The rooms this node runs now: their leases are renewed, the others' left to expire.
    Hosting(Vec<String>),
    /// Store a profile record under a user id.
    PutProfile { user: String, record: Vec<u8> },
    /// Store a ban record under its key (an unban stores the ban as over).
    PutBan { key: String, record: Vec<u8> },
}

/// News from the NATS thread to the loop.
#[derive(Debug)]
pub enum FromNats {
    /// A serialized [`envelope::Batch`] addressed to this node.
    Batch(Vec<u8>),
    /// Another node's [`envelope::Heartbeat`], decoded on the NATS thread.
    Heartbeat(envelope::Heartbeat),
    /// `node` runs `room` (this node, when it just claimed it).
    Owner { room: String, node: String },
    /// This node's lease of `room` was taken over: its sessions there must go to the new owner.
    Lost { room: String },
    /// Node `node` (incarnation `inc`) stopped sending heartbeats, or restarted as a new one.
    NodeGone { node: String, inc: u64 },
    /// A profile record, site-wide, for user id `user`.
    Profile { user: String, record: Vec<u8> },
    /// A ban record, site-wide.
    Ban(Vec<u8>),
}

/// How many messages each direction holds before the sender drops (and counts) new ones.
const CHANNEL_CAPACITY: usize = 65_536;

/// The loop's end of the NATS thread.
pub struct Bridge {
    to_nats: tokio::sync::mpsc::Sender<ToNats>,
    from_nats: Receiver<FromNats>,
    /// Cleared before the loop drains the news, so the NATS thread wakes it once per burst.
    woken: Arc<AtomicBool>,
    /// Messages for NATS dropped because the thread was behind (for logs).
    pub dropped: u64,
}

impl Bridge {
    /// Starts the NATS thread; it connects (and reconnects) on its own and wakes `waker`
    /// whenever it queued something for [`Bridge::try_recv`].
    pub fn spawn(config: ClusterConfig, inc: u64, waker: Arc<Waker>) -> io::Result<Bridge> {
        let (to_nats, requests) = tokio::sync::mpsc::channel(CHANNEL_CAPACITY);
        let (news, from_nats) = sync_channel(CHANNEL_CAPACITY);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let woken = Arc::new(AtomicBool::new(false));
        let outbox = bridge::Outbox::new(news, waker, woken.clone());
        std::thread::Builder::new().name("mppd-nats".into()).spawn(move || {
            runtime.block_on(bridge::run(config, inc, requests, outbox));
        })?;
        Ok(Bridge { to_nats, from_nats, woken, dropped: 0 })
    }

    /// Queues a request; never blocks (a full queue drops it, counted and logged once in a while).
    pub fn send(&mut self, request: ToNats) {
        if self.to_nats.try_send(request).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                log::warn!("cluster: the NATS thread is behind; {} messages dropped so far", self.dropped);
            }
        }
    }

    /// Called before draining the news with [`Bridge::try_recv`]: news queued from now on wakes
    /// the loop again.
    pub fn rearm(&mut self) {
        self.woken.store(false, Ordering::Release);
    }

    /// The next piece of news, if any.
    pub fn try_recv(&mut self) -> Option<FromNats> {
        match self.from_nats.try_recv() {
            Ok(news) => Some(news),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => None,
        }
    }
}
