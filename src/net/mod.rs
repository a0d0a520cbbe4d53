//! The shell: every socket, the clock and the event loop around the protocol core.
//!
//! One thread runs a mio poll loop over the listeners and a slab of connections. Each connection
//! reads its HTTP request head itself, then becomes a WebSocket (any path) or gets a plain HTTP
//! answer (health, metrics, the web client's files, or `400`).
//! Text frames go to the [`Core`](crate::core::Core) with the current time; its outputs are
//! queued per connection and flushed once per loop turn. Nothing here interprets the protocol.
//!
//! ```no_run
//! let server = mppd::net::Server::bind(mppd::Config::default())?;
//! let stop = server.shutdown_handle();
//! std::thread::spawn(move || { /* later */ stop.shutdown() });
//! server.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod admission;
mod clock;
mod conn;
mod counters;
mod event_loop;
mod head;
mod http;
mod listeners;
mod metrics;
mod pacing;
mod peer;
mod persist;
mod process;
mod realip;
#[cfg(feature = "cluster")]
mod relay;
mod stream;
mod timers;
mod web_client;
mod ws;

use crate::config::Config;
use crate::core::Snapshot;
use crate::record::Recorder;
use crate::salt::{self, SaltSource};
use crate::store::{Saver, Store};
use clock::Clock;
use event_loop::{EventLoop, listener_token};
use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use counters::ShellCounters;
pub use head::HeadOutcome;
pub use realip::{IpCidr, real_client_ip};

/// Runs the shell's HTTP request head reader over `bytes`, as if they were everything a client
/// sent so far (the connection still open), with the default head size cap. Public so that the
/// parser can be fuzzed; the server itself reads heads from its sockets.
pub fn parse_request_head(bytes: &[u8]) -> HeadOutcome {
    head::parse_chunks(&[bytes], Config::default().max_request_head_bytes, false)
}

/// [`parse_request_head`] over several reads, with a head size cap and an end of input when
/// `closed`: the same bytes must give the same outcome however they are split.
pub fn parse_request_head_chunks(chunks: &[&[u8]], cap: usize, closed: bool) -> HeadOutcome {
    head::parse_chunks(chunks, cap, closed)
}

/// The token of the waker that interrupts the poll for shutdown.
const WAKER: Token = Token(usize::MAX);

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    poll: Poll,
    listeners: Vec<TcpListener>,
    shutdown: ShutdownHandle,
    config: Config,
    recorder: Option<Recorder>,
    /// The saved state to restore and the thread that saves it, with a data directory.
    persistence: Option<(Snapshot, Saver)>,
    /// The web client's files: a `--static` directory (canonical), else the built-in client
    /// unless it is turned off.
    site: Option<http::Site>,
    /// Where the id salt came from.
    salt_source: SaltSource,
}

impl Server {
    /// Binds every address in `config.listen` (port 0 picks a free port).
    ///
    /// Without a configured salt (`config.core.id_salt` empty) the salt comes from the data
    /// directory, made there at the first start, or is random for this process
    /// ([`crate::salt`]).
    pub fn bind(mut config: Config) -> io::Result<Server> {
        if config.send_queue_soft_bytes > config.send_queue_hard_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "send_queue_soft_bytes must not exceed send_queue_hard_bytes",
            ));
        }
        check_cluster_options(&config)?;
        let poll = Poll::new()?;
        let mut listeners = listeners::bind_all(&config.listen, config.listen_backlog)?;
        for (index, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(listener, listener_token(index), Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let shutdown = ShutdownHandle { waker, requested: Arc::new(AtomicBool::new(false)) };
        let site = match config.static_dir.as_deref() {
            Some(dir) => Some(http::Site::Directory(http::StaticRoot::open(dir)?)),
            None => config.web_client.then(|| http::Site::BuiltIn(web_client::WebClient::new())),
        };
        let (salt, salt_source) = salt::resolve(&config.core.id_salt, config.data_dir.as_deref())?;
        config.core.id_salt = salt;
        let persistence = match &config.data_dir {
            Some(dir) => {
                let store = Store::open(dir);
                let snapshot = store.load(Clock::new().now().as_ms());
                Some((snapshot, Saver::spawn(store)?))
            }
            None => None,
        };
        let recorder = match &config.record {
            Some(path) => Some(
                Recorder::create_restored(
                    path,
                    &config.core,
                    config.record_output,
                    config.record_addresses,
                    persistence.as_ref().map(|(snapshot, _)| snapshot).filter(|s| **s != Snapshot::default()),
                )
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot create the recording {}: {e}", path.display()))
                })?,
            ),
            None => None,
        };
        Ok(Server { poll, listeners, shutdown, config, recorder, persistence, site, salt_source })
    }

    /// What an operator wants to know first: version, addresses, data directory, web client,
    /// where the id salt came from.
    pub fn startup_line(&self) -> String {
        let addrs: Vec<String> = self.local_addrs().iter().map(ToString::to_string).collect();
        let data = match &self.config.data_dir {
            Some(dir) => dir.display().to_string(),
            None => "none (state kept in memory)".to_string(),
        };
        let web = match &self.site {
            Some(http::Site::Directory(_)) => match &self.config.static_dir {
                Some(dir) => format!("files from {}", dir.display()),
                None => "files from a directory".to_string(),
            },
            Some(http::Site::BuiltIn(_)) => "built in".to_string(),
            None => "off".to_string(),
        };
        format!(
            "mppd {} starting: listen {}; data directory {data}; web client {web}; id salt {}",
            crate::VERSION,
            addrs.join(", "),
            self.salt_source
        )
    }

    /// Where the id salt in use came from (never the salt itself).
    pub fn salt_source(&self) -> &SaltSource {
        &self.salt_source
    }

    /// The addresses actually bound, in the order of `config.listen`.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// A handle that stops [`run`](Server::run) from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until shutdown, then closes every WebSocket with 4000 "Server closing.", saves the
    /// persistent state (also when the loop fails or panics) and returns.
    pub fn run(self) -> io::Result<()> {
        log::info!("{}", self.startup_line());
        for addr in self.local_addrs() {
            log::info!("listening on {addr}");
        }
        #[cfg(feature = "cluster")]
        let (config_nats, config_node) = (self.config.nats.clone(), self.config.node.clone());
        #[cfg(feature = "cluster")]
        let ch_rate = self.config.core.ch_rate;
        let mut event_loop =
            EventLoop::new(self.poll, self.listeners, self.shutdown.requested, self.config, self.recorder);
        if let Some((snapshot, saver)) = self.persistence {
            event_loop.restore(snapshot, saver);
        }
        if let Some(site) = self.site {
            event_loop.serve_site(site);
        }
        #[cfg(feature = "cluster")]
        if let (Some(url), Some(node)) = (config_nats, config_node) {
            // Tells this process from an earlier one of the same node name.
            let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let inc = (started.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(40);
            let config = crate::cluster::ClusterConfig { url, node: node.clone() };
            let bridge = crate::cluster::Bridge::spawn(config, inc, self.shutdown.waker.clone())?;
            event_loop.join_cluster(relay::Relay::new(node, inc, bridge, ch_rate, Clock::new().now()));
        }
        event_loop.run()
    }
}

/// `--nats` needs `--node`, and a build with the `cluster` feature.
fn check_cluster_options(config: &Config) -> io::Result<()> {
    let invalid = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_string()));
    match (&config.nats, &config.node) {
        (Some(_), None) => invalid("--nats needs --node NAME (this node's name in the cluster)"),
        // User ids are derived from addresses with the salt: every node needs the same one.
        (Some(_), Some(_)) if config.core.id_salt.is_empty() => {
            invalid("--nats needs --salt SECRET, the same on every node of the site")
        }
        (Some(_), Some(_)) if !cfg!(feature = "cluster") => {
            invalid("--nats: this mppd was built without the cluster feature (cargo build --features cluster)")
        }
        _ => Ok(()),
    }
}

/// Stops a running [`Server`]. Cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    waker: Arc<Waker>,
    requested: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// Asks the server to close every connection and return from `run`.
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake the event loop for shutdown: {e}");
        }
    }
}
