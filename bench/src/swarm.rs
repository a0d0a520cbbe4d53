//! Many WebSocket clients driven by one thread on one mio `Poll`.
//!
//! Each client connects from its own loopback address (127.x.y.z, so the server sees a distinct
//! user per client and ephemeral ports never run out), upgrades, sends `hi`, sends `ch` when the
//! `hi` reply arrives, and counts as joined when the `ch` reply arrives. Received note messages
//! are scanned for their embedded send time. On the hot path nothing is allocated: frames are
//! built in a reused buffer and received bytes land in one shared scratch buffer; only a partial
//! frame left at the end of a read is copied into the client's own (reused) carry buffer.

use crate::hist::Hist;
use crate::scan::Scanner;
use crate::ws::{self, Upgrade};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, with fraction: the clock of every `t` the generator sends
/// and of every latency it computes.
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

const READ_CHUNK: usize = 64 * 1024;
/// A client whose unsent bytes exceed this is closed: the server stopped reading it.
const MAX_PENDING: usize = 8 << 20;
/// A partial frame or head larger than this ends the client.
const MAX_CARRY: usize = 16 << 20;
/// Connections started per loop turn.
const START_BATCH: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    NotStarted,
    Connecting,
    Upgrading,
    AwaitHi,
    AwaitCh,
    Joined,
    Dead,
}

/// The rooms under load, and the quiet rooms (one slow sender each) that show what the load
/// does to everyone else. Each is counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Loaded = 0,
    Quiet = 1,
}

pub struct Client {
    sock: Option<TcpStream>,
    pub state: State,
    pub room: u32,
    pub class: Class,
    out: Vec<u8>,
    carry: Vec<u8>,
    /// Read only by `sweep_lazy`, never on a readiness event; excluded from latency.
    lazy: bool,
    pub started_ms: f64,
    pub connected_ms: f64,
    pub joined_ms: f64,
    next_ping_ms: f64,
}

/// Everything counted while the swarm runs.
#[derive(Default)]
pub struct Counters {
    pub joined: usize,
    pub failed: usize,
    /// Why clients failed, by reason (few distinct reasons; not on the hot path).
    pub failures: Vec<(String, usize)>,
    pub notes_received: u64,
    pub messages_received: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Read calls that returned data, and poll calls: the generator's syscall economy.
    pub reads: u64,
    pub polls: u64,
    pub notes_sent: u64,
    pub pings_sent: u64,
    /// Sends that found the socket full (the server is not keeping up with reading).
    pub send_blocked: u64,
    /// Counted apart per class of room, indexed by `Class as usize`: see `of`.
    pub rooms: [RoomCounters; 2],
}

/// What is counted apart for loaded and for quiet rooms.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomCounters {
    /// Note messages sent with a send time in the measurement window.
    pub window_sent: u64,
    /// Deliveries expected for the notes sent in the measurement window.
    pub window_expected: u64,
    /// Notes received whose send time lies in the measurement window.
    pub window_received: u64,
    /// Notes received while `counting` was on.
    pub counted_received: u64,
}

impl RoomCounters {
    /// Expected deliveries not (yet) received; negative when more arrived than expected.
    pub fn lost(&self) -> i64 {
        self.window_expected as i64 - self.window_received as i64
    }
}

impl Counters {
    pub fn of(&self, class: Class) -> &RoomCounters {
        &self.rooms[class as usize]
    }

    /// Whether some class of room still waits for deliveries of notes sent in the window.
    pub fn outstanding(&self) -> bool {
        self.rooms.iter().any(|r| r.window_received < r.window_expected)
    }
}

pub struct Config {
    pub server: SocketAddr,
    /// Every server of a site of several nodes, `server` first: client i connects to the
    /// (i mod n)-th (docs/cluster.md, measurements).
    pub servers: Vec<SocketAddr>,
    /// First source address; client i uses a distinct address derived from it.
    pub src_base: Ipv4Addr,
    pub clients: usize,
    pub room_size: usize,
    pub room_prefix: String,
    /// The last this many rooms are quiet rooms (`Class::Quiet`), named apart.
    pub quiet_rooms: usize,
    pub ping_interval_ms: f64,
}

pub struct Swarm {
    poll: Poll,
    events: Events,
    pub clients: Vec<Client>,
    ctx: Ctx,
    scratch: Vec<u8>,
    next_start: usize,
    in_flight: usize,
    last_ping_sweep: f64,
}

/// The part of the swarm that frame handling needs besides the client itself.
struct Ctx {
    cfg: Config,
    upgrade: Vec<u8>,
    hi: Vec<u8>,
    ch: Vec<Vec<u8>>,
    frame: Vec<u8>,
    payload: Vec<u8>,
    rng: u64,
    scanner: Scanner,
    room_alive: Vec<u32>,
    counters: Counters,
    /// Per class of room, indexed by `Class as usize`.
    latency_us: [Hist; 2],
    /// Time spent handling the events of one poll.
    busy_us: Hist,
    window: (f64, f64),
    counting: bool,
    finished_joins: usize,
}

/// The source address of client `i`: 127.a.b.c with c in 1..=250, skipping network and
/// broadcast-looking host parts.
pub fn source_addr(base: Ipv4Addr, i: usize) -> Ipv4Addr {
    let [_, a, b, c] = base.octets();
    let first = (((a as usize) << 8) | b as usize) * 250 + (c.clamp(1, 250) as usize - 1);
    let idx = first + i;
    let high = (idx / 250) % (1 << 16);
    Ipv4Addr::new(127, (high >> 8) as u8, high as u8, (idx % 250) as u8 + 1)
}

/// The name of room `r` when rooms from `first_quiet` on are quiet: `<prefix><r>` for loaded
/// rooms, `<prefix>quiet-<k>` for the k-th quiet room.
pub fn room_name(prefix: &str, r: usize, first_quiet: usize) -> String {
    if r < first_quiet { format!("{prefix}{r}") } else { format!("{prefix}quiet-{}", r - first_quiet) }
}

impl Swarm {
    pub fn new(cfg: Config) -> io::Result<Swarm> {
        assert!(cfg.server.ip().is_loopback(), "the server must be on 127.0.0.0/8");
        let rooms = cfg.clients.div_ceil(cfg.room_size.max(1));
        let first_quiet = rooms.saturating_sub(cfg.quiet_rooms);
        let ch = (0..rooms)
            .map(|r| {
                let name = room_name(&cfg.room_prefix, r, first_quiet);
                format!("[{{\"m\":\"ch\",\"_id\":\"{name}\",\"set\":{{}}}}]").into_bytes()
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|i| Client {
                sock: None,
                state: State::NotStarted,
                room: (i / cfg.room_size.max(1)) as u32,
                class: if i / cfg.room_size.max(1) < first_quiet { Class::Loaded } else { Class::Quiet },
                out: Vec::new(),
                carry: Vec::new(),
                lazy: false,
                started_ms: 0.0,
                connected_ms: 0.0,
                joined_ms: 0.0,
                next_ping_ms: 0.0,
            })
            .collect();
        let seed = now_ms().to_bits() | 1;
        Ok(Swarm {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            clients,
            ctx: Ctx {
                upgrade: ws::upgrade_request(&cfg.server.to_string()),
                hi: br#"[{"m":"hi"}]"#.to_vec(),
                ch,
                frame: Vec::with_capacity(256),
                payload: Vec::with_capacity(256),
                rng: seed,
                scanner: Scanner::default(),
                room_alive: vec![0; rooms],
                counters: Counters::default(),
                latency_us: [Hist::default(), Hist::default()],
                busy_us: Hist::default(),
                window: (f64::INFINITY, f64::INFINITY),
                counting: false,
                finished_joins: 0,
                cfg,
            },
            scratch: vec![0; READ_CHUNK * 2],
            next_start: 0,
            in_flight: 0,
            last_ping_sweep: 0.0,
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.ctx.counters
    }

    /// Latency samples (microseconds) of one class of room.
    pub fn latency_us(&self, class: Class) -> &Hist {
        &self.ctx.latency_us[class as usize]
    }

    /// How long the generator took to handle the events of one poll: when this grows towards
    /// the latencies measured, the generator is adding them.
    pub fn busy_us(&self) -> &Hist {
        &self.ctx.busy_us
    }

    /// Notes whose send time falls in `[start, end)` count towards losses and latency.
    pub fn set_window(&mut self, start: f64, end: f64) {
        self.ctx.window = (start, end);
    }

    /// While on, every received note counts towards throughput.
    pub fn set_counting(&mut self, on: bool) {
        self.ctx.counting = on;
    }

    /// Clients that reached `Joined` or `Dead` (the connect phase is over for them).
    pub fn settled(&self) -> usize {
        self.ctx.finished_joins
    }

    /// Starts connecting clients until `concurrency` are between connect and join.
    /// At most `START_BATCH` per call, so that answers to earlier connects are read in between.
    pub fn start_more(&mut self, concurrency: usize) {
        let mut started = 0;
        while self.in_flight < concurrency && self.next_start < self.clients.len() && started < START_BATCH {
            started += 1;
            let i = self.next_start;
            self.next_start += 1;
            self.in_flight += 1;
            if let Err(e) = self.start(i) {
                let c = &mut self.clients[i];
                self.ctx.fail(c, format!("connect: {e}"));
                self.in_flight -= 1;
            }
        }
    }

    fn start(&mut self, i: usize) -> io::Result<()> {
        let src = source_addr(self.ctx.cfg.src_base, i);
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        sock.set_nonblocking(true)?;
        sock.set_tcp_nodelay(true)?;
        sock.bind(&SockAddr::from(SocketAddrV4::new(src, 0)))?;
        let servers = &self.ctx.cfg.servers;
        let server = if servers.is_empty() { self.ctx.cfg.server } else { servers[i % servers.len()] };
        match sock.connect(&SockAddr::from(server)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(sock.into());
        self.poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        let c = &mut self.clients[i];
        c.sock = Some(stream);
        c.state = State::Connecting;
        c.started_ms = now_ms();
        Ok(())
    }

    /// Waits for events for at most `timeout` and handles them, then starts clients freed slots
    /// allow (`concurrency`) and sends due `t` pings.
    pub fn turn(&mut self, timeout: Duration, concurrency: usize) -> io::Result<()> {
        let starts_waiting = self.in_flight < concurrency && self.next_start < self.clients.len();
        let timeout = if starts_waiting { Duration::ZERO } else { timeout };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.ctx.counters.polls += 1;
        let busy_since = std::time::Instant::now();
        let settled_before = self.ctx.finished_joins;
        let Swarm { events, clients, ctx, scratch, .. } = self;
        for ev in events.iter() {
            let Some(c) = clients.get_mut(ev.token().0) else {
                continue;
            };
            if ev.is_writable() || ev.is_readable() || ev.is_error() {
                ctx.handle_event(c, scratch, ev.is_writable());
            }
        }
        self.in_flight -= self.ctx.finished_joins - settled_before;
        self.start_more(concurrency);
        let now = now_ms();
        if now - self.last_ping_sweep >= 1000.0 {
            self.last_ping_sweep = now;
            self.ping_sweep(now);
        }
        self.ctx.busy_us.record(busy_since.elapsed().as_micros() as u64);
        Ok(())
    }

    fn ping_sweep(&mut self, now: f64) {
        let Swarm { clients, ctx, .. } = self;
        for c in clients.iter_mut() {
            if c.state == State::Joined && now >= c.next_ping_ms {
                c.next_ping_ms = now + ctx.cfg.ping_interval_ms;
                ctx.payload.clear();
                let _ = write!(ctx.payload, "[{{\"m\":\"t\",\"e\":{}}}]", now as u64);
                ctx.counters.pings_sent += 1;
                ctx.send_payload(c, ws::OP_TEXT);
            }
        }
    }

    /// Sends one note message from client `i` carrying the current time in `t`, with `notes`
    /// notes. Returns false if the client is not joined.
    pub fn send_note(&mut self, i: usize, notes: usize) -> bool {
        let Swarm { clients, ctx, .. } = self;
        let c = &mut clients[i];
        if c.state != State::Joined {
            return false;
        }
        let now = now_ms();
        let us = (now * 1000.0) as u64;
        ctx.payload.clear();
        let _ = write!(ctx.payload, "[{{\"m\":\"n\",\"t\":{}.{:03},\"n\":[", us / 1000, us % 1000);
        for k in 0..notes.max(1) {
            if k > 0 {
                ctx.payload.push(b',');
            }
            ctx.payload.extend_from_slice(br#"{"n":"a1","v":0.5}"#);
        }
        ctx.payload.extend_from_slice(b"]}]");
        ctx.counters.notes_sent += 1;
        let t = (us / 1000) as f64 + (us % 1000) as f64 / 1000.0;
        if t >= ctx.window.0 && t < ctx.window.1 {
            let rc = &mut ctx.counters.rooms[c.class as usize];
            rc.window_sent += 1;
            rc.window_expected += ctx.room_alive[c.room as usize].saturating_sub(1) as u64;
        }
        ctx.send_payload(c, ws::OP_TEXT);
        true
    }

    /// Stops reading client `i` on readiness: from now on only `sweep_lazy` reads it, so that
    /// several server writes gather in its socket and one read takes them all.
    pub fn make_lazy(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.clients[i];
        if let Some(sock) = c.sock.as_mut() {
            self.poll.registry().reregister(sock, Token(i), Interest::WRITABLE)?;
            c.lazy = true;
        }
        Ok(())
    }

    /// Reads every lazy client once (until its socket is empty).
    pub fn sweep_lazy(&mut self) {
        let Swarm { clients, ctx, scratch, .. } = self;
        for c in clients.iter_mut().filter(|c| c.lazy) {
            ctx.read_all(c, scratch);
        }
    }

    /// Closes all sockets.
    pub fn shutdown(&mut self) {
        for c in &mut self.clients {
            if let Some(mut s) = c.sock.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
            c.state = State::Dead;
        }
    }
}

impl Ctx {
    fn fail(&mut self, c: &mut Client, reason: String) {
        if c.state == State::Dead {
            return;
        }
        if c.state == State::Joined {
            self.room_alive[c.room as usize] -= 1;
        } else {
            self.finished_joins += 1;
        }
        c.state = State::Dead;
        c.sock = None;
        self.counters.failed += 1;
        match self.counters.failures.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.counters.failures.push((reason, 1)),
        }
    }

    fn handle_event(&mut self, c: &mut Client, scratch: &mut Vec<u8>, writable: bool) {
        if c.state == State::Connecting {
            let Some(sock) = c.sock.as_ref() else { return };
            match sock.take_error() {
                Ok(Some(e)) | Err(e) => return self.fail(c, format!("connect: {e}")),
                Ok(None) => {}
            }
            match sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.fail(c, format!("connect: {e}")),
            }
            c.state = State::Upgrading;
            c.connected_ms = now_ms();
            let req = std::mem::take(&mut self.upgrade);
            self.send_raw(c, &req);
            self.upgrade = req;
        } else if writable && !c.out.is_empty() {
            self.flush(c);
        }
        self.read_all(c, scratch);
    }

    fn read_all(&mut self, c: &mut Client, scratch: &mut Vec<u8>) {
        loop {
            if c.state == State::Dead {
                return;
            }
            let Some(sock) = c.sock.as_mut() else { return };
            let carried = c.carry.len();
            if scratch.len() < carried + READ_CHUNK {
                scratch.resize(carried + READ_CHUNK, 0);
            }
            scratch[..carried].copy_from_slice(&c.carry);
            let room = scratch.len() - carried;
            let n = match sock.read(&mut scratch[carried..]) {
                Ok(0) => return self.fail(c, "closed by server".into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(c, format!("read: {e}")),
            };
            self.counters.bytes_received += n as u64;
            self.counters.reads += 1;
            c.carry.clear();
            let data = &scratch[..carried + n];
            let used = self.process(c, data);
            if c.state != State::Dead {
                if data.len() - used > MAX_CARRY {
                    return self.fail(c, "oversized frame".into());
                }
                c.carry.extend_from_slice(&data[used..]);
            }
            if n < room {
                // A short read emptied the socket; data arriving later raises a new edge, so
                // the read that would only return WouldBlock is skipped.
                return;
            }
        }
    }

    /// Handles the complete frames (or the upgrade response) in `data`; returns bytes used.
    fn process(&mut self, c: &mut Client, data: &[u8]) -> usize {
        let mut used = 0;
        if c.state == State::Upgrading {
            match ws::parse_upgrade_response(data) {
                Upgrade::Partial => return 0,
                Upgrade::Refused(status) => {
                    self.fail(c, format!("upgrade refused: {status}"));
                    return data.len();
                }
                Upgrade::Switched(n) => {
                    used = n;
                    c.state = State::AwaitHi;
                    let hi = std::mem::take(&mut self.hi);
                    self.payload.clear();
                    self.payload.extend_from_slice(&hi);
                    self.hi = hi;
                    self.send_payload(c, ws::OP_TEXT);
                }
            }
        }
        let now = now_ms();
        while c.state != State::Dead {
            let (frame, n) = match ws::parse_frame(&data[used..]) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    self.fail(c, e.into());
                    return data.len();
                }
            };
            used += n;
            self.counters.frames_received += 1;
            match frame.opcode {
                ws::OP_TEXT | ws::OP_CONT => self.on_text(c, frame.payload, now),
                ws::OP_PING => {
                    self.payload.clear();
                    self.payload.extend_from_slice(frame.payload);
                    self.send_payload(c, ws::OP_PONG);
                }
                ws::OP_CLOSE => {
                    let code = ws::close_code(frame.payload).unwrap_or(1005);
                    let reason = String::from_utf8_lossy(frame.payload.get(2..).unwrap_or(&[]));
                    self.fail(c, format!("closed by server: {code} {reason}"));
                }
                _ => {}
            }
        }
        used
    }

    fn on_text(&mut self, c: &mut Client, payload: &[u8], now: f64) {
        let mut reply = None;
        let scanner = &self.scanner;
        let Counters { messages_received, notes_received, rooms, .. } = &mut self.counters;
        let room_counters = &mut rooms[c.class as usize];
        let latency = &mut self.latency_us[c.class as usize];
        let (w0, w1) = self.window;
        let counting = self.counting;
        let state = c.state;
        let probe = !c.lazy;
        scanner.for_each_message(payload, |kind, rest| {
            *messages_received += 1;
            match kind {
                b"n" => {
                    *notes_received += 1;
                    if counting {
                        room_counters.counted_received += 1;
                    }
                    if let Some(t) = scanner.time(rest)
                        && t >= w0
                        && t < w1
                    {
                        room_counters.window_received += 1;
                        if probe {
                            latency.record(((now - t) * 1000.0).max(0.0) as u64);
                        }
                    }
                }
                b"hi" if state == State::AwaitHi => reply = Some(State::AwaitCh),
                b"ch" if state == State::AwaitCh => reply = Some(State::Joined),
                _ => {}
            }
        });
        match reply {
            Some(State::AwaitCh) => {
                c.state = State::AwaitCh;
                let room = c.room as usize;
                self.payload.clear();
                self.payload.extend_from_slice(&self.ch[room]);
                self.send_payload(c, ws::OP_TEXT);
            }
            Some(State::Joined) => {
                c.state = State::Joined;
                c.joined_ms = now;
                c.next_ping_ms = now + self.cfg.ping_interval_ms * (0.5 + self.random_unit() / 2.0);
                self.room_alive[c.room as usize] += 1;
                self.counters.joined += 1;
                self.finished_joins += 1;
            }
            _ => {}
        }
    }

    fn random_unit(&mut self) -> f64 {
        (self.next_random() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Frames `self.payload` as one masked frame and sends it.
    fn send_payload(&mut self, c: &mut Client, opcode: u8) {
        let mask = (self.next_random() as u32).to_ne_bytes();
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        ws::encode_frame(&mut frame, opcode, &self.payload, mask);
        self.send_raw(c, &frame);
        self.frame = frame;
    }

    /// Writes `bytes` now if nothing is queued, queueing what the socket does not take.
    fn send_raw(&mut self, c: &mut Client, bytes: &[u8]) {
        if !c.out.is_empty() {
            self.counters.send_blocked += 1;
            c.out.extend_from_slice(bytes);
        } else {
            let Some(sock) = c.sock.as_mut() else { return };
            let mut written = 0;
            while written < bytes.len() {
                match sock.write(&bytes[written..]) {
                    Ok(0) => return self.fail(c, "write: zero".into()),
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return self.fail(c, format!("write: {e}")),
                }
            }
            if written < bytes.len() {
                self.counters.send_blocked += 1;
                c.out.extend_from_slice(&bytes[written..]);
            }
        }
        if c.out.len() > MAX_PENDING {
            self.fail(c, "server stopped reading".into());
        }
    }

    fn flush(&mut self, c: &mut Client) {
        let Some(sock) = c.sock.as_mut() else { return };
        let mut written = 0;
        while written < c.out.len() {
            match sock.write(&c.out[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(c, format!("write: {e}")),
            }
        }
        c.out.drain(..written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_distinct_and_usable() {
        let base = Ipv4Addr::new(127, 1, 0, 1);
        let mut seen = std::collections::HashSet::new();
        for i in 0..70_000 {
            let a = source_addr(base, i);
            let o = a.octets();
            assert_eq!(o[0], 127);
            assert!((1..=250).contains(&o[3]));
            assert!(seen.insert(a), "{a} repeated");
        }
        assert_eq!(source_addr(base, 0), base);
        assert_eq!(source_addr(base, 250), Ipv4Addr::new(127, 1, 1, 1));
    }

    /// A swarm that never connects: enough to drive sending and receiving by hand.
    fn offline(clients: usize, room_size: usize, quiet_rooms: usize) -> Swarm {
        Swarm::new(Config {
            server: SocketAddr::from(([127, 0, 0, 1], 9)),
            servers: Vec::new(),
            src_base: Ipv4Addr::new(127, 1, 0, 1),
            clients,
            room_size,
            room_prefix: "p-".into(),
            quiet_rooms,
            ping_interval_ms: 20_000.0,
        })
        .unwrap()
    }

    fn note_frame(t: f64) -> String {
        format!(r#"[{{"m":"n","t":{t:.3},"p":"ab","n":[{{"n":"a1","v":0.5}}]}}]"#)
    }

    #[test]
    fn rooms_are_named_apart() {
        assert_eq!(room_name("p-", 0, 2), "p-0");
        assert_eq!(room_name("p-", 1, 2), "p-1");
        assert_eq!(room_name("p-", 2, 2), "p-quiet-0");
        assert_eq!(room_name("p-", 3, 2), "p-quiet-1");
        let sw = offline(6, 2, 1);
        let names: Vec<String> = sw.ctx.ch.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        assert!(names[1].contains(r#""_id":"p-1""#), "{}", names[1]);
        assert!(names[2].contains(r#""_id":"p-quiet-0""#), "{}", names[2]);
        let classes: Vec<Class> = sw.clients.iter().map(|c| c.class).collect();
        assert_eq!(classes, [Class::Loaded, Class::Loaded, Class::Loaded, Class::Loaded, Class::Quiet, Class::Quiet]);
        // Without quiet rooms (idle, storm, default fanout) nothing changes.
        let sw = offline(4, 2, 0);
        assert!(sw.clients.iter().all(|c| c.class == Class::Loaded));
        assert!(String::from_utf8_lossy(&sw.ctx.ch[1]).contains(r#""_id":"p-1""#));
    }

    #[test]
    fn loaded_and_quiet_rooms_are_counted_apart() {
        // Rooms 0 and 1 loaded, room 2 quiet; two clients each.
        let mut sw = offline(6, 2, 1);
        for c in &mut sw.clients {
            c.state = State::Joined;
        }
        sw.ctx.room_alive = vec![2, 2, 2];
        sw.clients[3].lazy = true;
        let now = now_ms();
        sw.set_window(now - 1000.0, now + 1000.0);
        sw.set_counting(true);
        assert!(sw.send_note(0, 1));
        assert!(sw.send_note(2, 1));
        assert!(sw.send_note(4, 1));
        let k = sw.counters();
        assert_eq!((k.of(Class::Loaded).window_sent, k.of(Class::Loaded).window_expected), (2, 2));
        assert_eq!((k.of(Class::Quiet).window_sent, k.of(Class::Quiet).window_expected), (1, 1));

        let fresh = note_frame(now - 5.0);
        let stale = note_frame(now - 5000.0);
        let Swarm { clients, ctx, .. } = &mut sw;
        ctx.on_text(&mut clients[1], fresh.as_bytes(), now);
        ctx.on_text(&mut clients[3], fresh.as_bytes(), now); // lazy: counted, no latency sample
        ctx.on_text(&mut clients[5], stale.as_bytes(), now); // sent before the window
        let k = sw.counters();
        let loaded = *k.of(Class::Loaded);
        let quiet = *k.of(Class::Quiet);
        assert_eq!((loaded.window_received, loaded.counted_received, loaded.lost()), (2, 2, 0));
        assert_eq!((quiet.window_received, quiet.counted_received, quiet.lost()), (0, 1, 1));
        assert!(k.outstanding());
        assert_eq!(sw.latency_us(Class::Loaded).count(), 1);
        assert_eq!(sw.latency_us(Class::Quiet).count(), 0);

        let Swarm { clients, ctx, .. } = &mut sw;
        ctx.on_text(&mut clients[5], fresh.as_bytes(), now);
        let k = sw.counters();
        assert_eq!(k.of(Class::Quiet).lost(), 0);
        assert!(!k.outstanding());
        let q = sw.latency_us(Class::Quiet);
        assert_eq!(q.count(), 1);
        assert!(q.max().abs_diff(5000) <= 2, "{}", q.max());
        assert_eq!(k.notes_received, 4);
    }
}
