//! mppd-bench: a load generator for mppd (and any server speaking the MPP protocol).
//!
//! One thread, one mio `Poll`, hand-written WebSocket client framing, no JSON parsing of
//! received frames. Every scenario is bounded in clients and time and stops by itself, and it
//! only talks to loopback addresses. See bench/README.md.

mod args;
mod hist;
mod procfs;
mod report;
mod scan;
mod swarm;
mod ws;

use args::Args;
use hist::Hist;
use report::{Report, si};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use swarm::{Class, Swarm, now_ms};

const USAGE: &str = "\
usage: mppd-bench <scenario> [options] [--json]

scenarios:
  fanout   R rooms x P clients; S senders per room send note messages at r/s each, carrying
           their send time; receivers measure latency, throughput and losses
           --rooms 4 --room-size 50 --senders 10 --rate 100 --notes 1
           --duration 10 --warmup 2 --drain 3
           --probes K --lazy-ms 5: only K clients per room measure latency; the rest are read
           every 5 ms in bulk, which makes the generator much cheaper at saturation
           --quiet-rooms Q --quiet-rate 10: Q more rooms of P clients where one client sends
           at 10/s and all others measure latency; reported apart from the loaded rooms
  idle     N clients join rooms of P and stay idle (a `t` every 20 s); server memory per client
           --clients 10000 --room-size 100 --hold 10 --settle 2
  storm    N clients connect, `hi`, `ch` at once; time until all have joined, failures
           --clients 10000 --room-size 100 --timeout 30
  startup  spawn the server, time until its first `hi` reply, and its memory then
           --bin target/release/mppd --runs 5 [-- server args; default: --listen <server>]

common options:
  --server 127.0.0.1:9000   server address (must be on 127.0.0.0/8); a comma-separated list
                            spreads clients over several nodes of one site (client i on the
                            (i mod n)-th)
  --server-pid PID          server process, for CPU time and memory from /proc; a comma-separated
                            list sums the CPU time of them all (memory: the first)
  --src-base 127.1.0.1      first client source address; client i uses the i-th next one
  --concurrency N           clients between connect and join at once (fanout/idle: 500)
  --join-timeout 30         seconds allowed for all clients to join
  --wait 5                  seconds to wait for the server to accept connections
  --json                    also print one JSON line with every figure
";

/// Upper bounds that keep every run finite.
const MAX_CLIENTS: usize = 60_000;
const MAX_SECONDS: f64 = 600.0;

fn main() {
    let mut raw = std::env::args().skip(1);
    let Some(scenario) = raw.next() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    if scenario == "-h" || scenario == "--help" || scenario == "help" {
        print!("{USAGE}");
        return;
    }
    let result = Args::parse(raw).and_then(|mut a| {
        let json = a.flag("json");
        let report = match scenario.as_str() {
            "fanout" => fanout(&mut a),
            "idle" => idle(&mut a),
            "storm" => storm(&mut a),
            "startup" => startup(&mut a),
            other => Err(format!("unknown scenario {other:?}")),
        }?;
        a.finish()?;
        report.print(json);
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("mppd-bench: {e}\n\n{USAGE}");
        std::process::exit(2);
    }
}

/// Options shared by the swarm scenarios.
struct Common {
    server: SocketAddr,
    servers: Vec<SocketAddr>,
    pid: Option<u32>,
    /// Every process whose CPU time counts as the server's.
    pids: Vec<u32>,
    src_base: Ipv4Addr,
    concurrency: usize,
    join_timeout_ms: f64,
}

fn common(a: &mut Args, default_concurrency: usize) -> Result<Common, String> {
    let servers: String = a.get("server", "127.0.0.1:9000".to_string())?;
    let servers: Vec<SocketAddr> = servers
        .split(',')
        .map(|s| s.trim().parse().map_err(|_| format!("--server: cannot use {s:?}")))
        .collect::<Result<_, String>>()?;
    if servers.iter().any(|s| !s.ip().is_loopback()) {
        return Err("--server must be a loopback address (127.0.0.0/8)".into());
    }
    let server = servers[0];
    let pids: Option<String> = a.opt("server-pid")?;
    let pids: Vec<u32> = pids
        .iter()
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().parse().map_err(|_| format!("--server-pid: cannot use {p:?}")))
        .collect::<Result<_, String>>()?;
    let src_base: Ipv4Addr = a.get("src-base", Ipv4Addr::new(127, 1, 0, 1))?;
    if src_base.octets()[0] != 127 {
        return Err("--src-base must be in 127.0.0.0/8".into());
    }
    let c = Common {
        server,
        servers: servers.clone(),
        pid: pids.first().copied(),
        pids: pids.clone(),
        src_base,
        concurrency: a.get("concurrency", default_concurrency)?.max(1),
        join_timeout_ms: seconds(a, "join-timeout", 30.0)? * 1000.0,
    };
    if let Some(pid) = c.pids.iter().find(|pid| !procfs::alive(**pid)) {
        return Err(format!("--server-pid {pid}: no such running process"));
    }
    let wait = seconds(a, "wait", 5.0)?;
    for server in &c.servers {
        wait_for_server(*server, wait)?;
    }
    Ok(c)
}

fn seconds(a: &mut Args, name: &str, default: f64) -> Result<f64, String> {
    let v: f64 = a.get(name, default)?;
    if !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(format!("--{name} must be between 0 and {MAX_SECONDS} seconds"));
    }
    Ok(v)
}

fn clients(a: &mut Args, name: &str, default: usize) -> Result<usize, String> {
    let v = a.get(name, default)?;
    if v == 0 || v > MAX_CLIENTS {
        return Err(format!("--{name} must be between 1 and {MAX_CLIENTS}"));
    }
    Ok(v)
}

fn wait_for_server(addr: SocketAddr, seconds: f64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("server {addr} does not accept connections: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn room_prefix() -> String {
    format!("bench-{:x}-", (now_ms() as u64) & 0xFFFFFF)
}

fn new_swarm(c: &Common, n: usize, room_size: usize, quiet_rooms: usize) -> Result<Swarm, String> {
    let limit = procfs::raise_fd_limit();
    if (n as u64) + 64 > limit {
        return Err(format!("{n} clients need more open files than the limit allows ({limit})"));
    }
    Swarm::new(swarm::Config {
        server: c.server,
        servers: c.servers.clone(),
        src_base: c.src_base,
        clients: n,
        room_size,
        room_prefix: room_prefix(),
        quiet_rooms,
        ping_interval_ms: 20_000.0,
    })
    .map_err(|e| format!("poll: {e}"))
}

/// Connects every client and waits until each has joined or failed; returns the time taken.
fn join_all(sw: &mut Swarm, c: &Common) -> Result<f64, String> {
    let start = now_ms();
    let n = sw.clients.len();
    sw.start_more(c.concurrency);
    while sw.settled() < n && now_ms() - start < c.join_timeout_ms {
        sw.turn(Duration::from_millis(5), c.concurrency).map_err(|e| format!("poll: {e}"))?;
    }
    Ok(now_ms() - start)
}

/// Keeps the clients alive (answering pings, sending `t`) for `ms`.
fn run_for(sw: &mut Swarm, ms: f64, concurrency: usize) -> Result<(), String> {
    let end = now_ms() + ms;
    while now_ms() < end {
        sw.turn(Duration::from_millis(10), concurrency).map_err(|e| format!("poll: {e}"))?;
    }
    Ok(())
}

fn failures(r: &mut Report, sw: &Swarm, n: usize) {
    let c = sw.counters();
    let not_settled = n - sw.settled();
    r.set("failed", c.failed + not_settled);
    let mut reasons: Vec<String> = c.failures.iter().map(|(why, k)| format!("{k}x {why}")).collect();
    if not_settled > 0 {
        reasons.push(format!("{not_settled}x no ch reply before the timeout"));
    }
    if !reasons.is_empty() {
        r.line(format!("failures:         {}", reasons.join("; ")));
        r.set("failure_reasons", reasons.join("; "));
    }
}

fn rss(pid: Option<u32>) -> Option<u64> {
    pid.and_then(procfs::rss_kib)
}

fn cpu(pid: Option<u32>) -> Option<f64> {
    pid.and_then(procfs::cpu_seconds)
}

/// The CPU time of every server process together (`None` without any, or when one is gone).
fn cpu_all(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| procfs::cpu_seconds(*pid)).sum()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Highest `--rate` and `--quiet-rate`, messages per second per sender.
const MAX_RATE: f64 = 20_000.0;
/// How often the server's RSS is sampled for its peak, in milliseconds.
const RSS_SAMPLE_MS: f64 = 100.0;

/// Who does what in a fanout run: `rooms` loaded rooms, then `quiet_rooms` quiet rooms, all of
/// `room_size` clients, numbered room by room.
#[derive(Clone, Copy)]
struct Plan {
    rooms: usize,
    quiet_rooms: usize,
    room_size: usize,
    senders: usize,
    probes: usize,
}

impl Plan {
    fn clients(&self) -> usize {
        (self.rooms + self.quiet_rooms) * self.room_size
    }

    fn class(&self, i: usize) -> Class {
        if i / self.room_size < self.rooms { Class::Loaded } else { Class::Quiet }
    }

    /// The first `senders` clients of a loaded room send; in a quiet room only the first.
    fn sends(&self, i: usize) -> bool {
        let senders = match self.class(i) {
            Class::Loaded => self.senders,
            Class::Quiet => 1,
        };
        i % self.room_size < senders
    }

    /// Clients of loaded rooms beyond the first `probes` are read in bulk; quiet rooms never.
    fn lazy(&self, i: usize) -> bool {
        self.class(i) == Class::Loaded && i % self.room_size >= self.probes
    }
}

/// One sending client's schedule: its k-th message is due at t0 + (k + phase) · period.
struct Sender {
    client: usize,
    period: f64,
    phase: f64,
    /// Messages sent at most in one go when behind: 8 ms worth, and at least 8.
    max_burst: u32,
    sent: u64,
}

/// The senders among the clients for which `joined` holds, loaded rooms at `rate` and quiet
/// rooms at `quiet_rate`, each class spread evenly over its period.
fn schedule(plan: &Plan, joined: impl Fn(usize) -> bool, rate: f64, quiet_rate: f64) -> Vec<Sender> {
    let mut out = Vec::new();
    for (class, rate) in [(Class::Loaded, rate), (Class::Quiet, quiet_rate)] {
        let ids: Vec<usize> =
            (0..plan.clients()).filter(|&i| plan.class(i) == class && plan.sends(i) && joined(i)).collect();
        let m = ids.len();
        out.extend(ids.into_iter().enumerate().map(|(j, client)| Sender {
            client,
            period: 1000.0 / rate,
            phase: j as f64 / m as f64,
            max_burst: ((rate * 0.008).ceil() as u32).max(8),
            sent: 0,
        }));
    }
    out
}

/// The warning for a sender whose notes per second exceed mppd's normal note quota.
fn quota_warning(who: &str, rate: f64, notes: usize) -> Option<String> {
    let per_s = rate * notes as f64;
    if per_s <= 200.0 {
        return None;
    }
    let mut w = format!(
        "warning: {per_s} notes/s per {who} exceeds the normal-room note quota (about 200/s). The server must \
         run with a larger note quota (mppd: --trusted-notes, which gives every participant the trusted quota of \
         8000 notes per 2 s) and a larger --connection-messages cap (default 6000/10000 = 600 messages/s per \
         connection); otherwise it drops notes and closes senders. Or add senders or rooms instead."
    );
    if per_s > 4000.0 {
        w.push_str(&format!(" Even the trusted quota allows only 4000 notes/s: {per_s} will be cut."));
    }
    Some(w)
}

fn latency_text(h: &Hist) -> String {
    format!(
        "p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({} samples)",
        ms(h.quantile(0.5)),
        ms(h.quantile(0.99)),
        ms(h.quantile(0.999)),
        ms(h.max()),
        h.count()
    )
}

fn losses_text(lost: i64, expected: u64) -> String {
    format!(
        "{} of {} expected deliveries ({:.3}%)",
        lost.max(0),
        expected,
        100.0 * lost.max(0) as f64 / expected.max(1) as f64
    )
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn fanout(a: &mut Args) -> Result<Report, String> {
    let c = common(a, 500)?;
    let rooms: usize = a.get("rooms", 4)?;
    let room_size: usize = a.get("room-size", 50)?;
    let senders: usize = a.get("senders", 10)?;
    let rate: f64 = a.get("rate", 100.0)?;
    let notes: usize = a.get("notes", 1)?;
    let duration = seconds(a, "duration", 10.0)? * 1000.0;
    let warmup = seconds(a, "warmup", 2.0)? * 1000.0;
    let drain = seconds(a, "drain", 3.0)? * 1000.0;
    let probes: usize = a.get("probes", room_size)?;
    let lazy_ms = seconds(a, "lazy-ms", 5.0)?;
    let quiet_rooms: usize = a.get("quiet-rooms", 0)?;
    let quiet_rate: f64 = a.get("quiet-rate", 10.0)?;
    if room_size < 2 || senders == 0 || senders > room_size || rooms == 0 {
        return Err("need --room-size >= 2 and 1 <= --senders <= --room-size".into());
    }
    if !(rate > 0.0 && rate <= MAX_RATE) || notes == 0 || notes > 32 || duration <= 0.0 {
        return Err(format!("need 0 < --rate <= {MAX_RATE}, 1 <= --notes <= 32, --duration > 0"));
    }
    if !(quiet_rate > 0.0 && quiet_rate <= MAX_RATE) {
        return Err(format!("need 0 < --quiet-rate <= {MAX_RATE}"));
    }
    let plan = Plan { rooms, quiet_rooms, room_size, senders, probes };
    let n = rooms.checked_add(quiet_rooms).and_then(|r| r.checked_mul(room_size)).unwrap_or(usize::MAX);
    if n > MAX_CLIENTS {
        return Err(format!("at most {MAX_CLIENTS} clients (rooms and quiet rooms together)"));
    }
    let quiet = quiet_rooms > 0;
    let warnings = [quota_warning("sender", rate, notes), quota_warning("quiet-room sender", quiet_rate, notes)];
    for w in warnings.iter().take(if quiet { 2 } else { 1 }).flatten() {
        eprintln!("{w}");
    }
    let mut sw = new_swarm(&c, n, room_size, quiet_rooms)?;
    let join_ms = join_all(&mut sw, &c)?;
    let joined = sw.counters().joined;
    let mut sched = schedule(&plan, |i| sw.clients[i].state == swarm::State::Joined, rate, quiet_rate);
    let m = sched.iter().filter(|s| plan.class(s.client) == Class::Loaded).count();
    let mq = sched.len() - m;
    let any_lazy = probes < room_size;
    for i in (0..n).filter(|&i| plan.lazy(i)) {
        sw.make_lazy(i).map_err(|e| format!("poll: {e}"))?;
    }
    let mut next_sweep = 0.0;
    let mut rss_probe = c.pid.and_then(procfs::RssProbe::open);
    let mut rss_peak: Option<u64> = None;
    let mut next_rss = 0.0;
    let t0 = now_ms() + 20.0;
    let w0 = t0 + warmup;
    let w1 = w0 + duration;
    sw.set_window(w0, w1);
    let mut snap0 = None;
    let snapshot = |pids: &[u32]| {
        (now_ms(), cpu_all(pids), procfs::cpu_seconds(0), procfs::cpu_split(0), procfs::machine_busy_seconds())
    };
    loop {
        let now = now_ms();
        if now >= w1 {
            break;
        }
        if snap0.is_none() && now >= w0 {
            snap0 = Some(snapshot(&c.pids));
            sw.set_counting(true);
        }
        let mut next_due = w1;
        if let Some(probe) = rss_probe.as_mut() {
            if now >= next_rss {
                if let Some(k) = probe.kib() {
                    rss_peak = Some(rss_peak.map_or(k, |p| p.max(k)));
                }
                next_rss = now + RSS_SAMPLE_MS;
            }
            next_due = next_due.min(next_rss);
        }
        if any_lazy {
            if now >= next_sweep {
                sw.sweep_lazy();
                next_sweep = now + lazy_ms;
            }
            next_due = next_due.min(next_sweep);
        }
        for s in sched.iter_mut() {
            let mut burst = 0;
            loop {
                let due = t0 + (s.sent as f64 + s.phase) * s.period;
                if due > now {
                    next_due = next_due.min(due);
                    break;
                }
                if burst == s.max_burst {
                    next_due = now;
                    break;
                }
                sw.send_note(s.client, notes);
                s.sent += 1;
                burst += 1;
            }
        }
        let wait = (next_due - now_ms()).max(0.0);
        sw.turn(Duration::from_micros((wait * 1000.0) as u64), c.concurrency).map_err(|e| format!("poll: {e}"))?;
    }
    let snap1 = snapshot(&c.pids);
    sw.set_counting(false);
    let rss_end = rss(c.pid);
    let rss_peak = rss_peak.max(rss_end);
    let drain_end = now_ms() + drain;
    while sw.counters().outstanding() && now_ms() < drain_end {
        sw.sweep_lazy();
        sw.turn(Duration::from_millis(5), c.concurrency).map_err(|e| format!("poll: {e}"))?;
    }
    let snap0 = snap0.unwrap_or(snap1);
    let window_s = ((snap1.0 - snap0.0) / 1000.0).max(1e-9);
    let k = sw.counters();
    let (kl, kq) = (*k.of(Class::Loaded), *k.of(Class::Quiet));
    let delivered = kl.counted_received as f64;
    let rate_rx = delivered / window_s;
    let offered = m as f64 * rate * (room_size - 1) as f64;
    let quiet_rx = kq.counted_received as f64 / window_s;
    let quiet_offered = mq as f64 * quiet_rate * (room_size - 1) as f64;
    // Messages sent with a send time in the window (which lasts `duration`), against the schedule.
    let sent_rate = kl.window_sent as f64 * 1000.0 / duration;
    let quiet_sent_rate = kq.window_sent as f64 * 1000.0 / duration;
    let server_cpu = snap0.1.zip(snap1.1).map(|(a, b)| b - a);
    let gen_cpu = snap0.2.zip(snap1.2).map(|(a, b)| b - a);
    let gen_sys = snap0.3.zip(snap1.3).map(|(a, b)| b.1 - a.1);
    // Whatever else ran on the machine during the window: it takes cores from the server and
    // the generator, and makes every figure unreliable.
    let other =
        snap0.4.zip(snap1.4).map(|(a, b)| (b - a - server_cpu.unwrap_or(0.0) - gen_cpu.unwrap_or(0.0)).max(0.0));
    // Efficiency counts every delivery the server made, quiet rooms' too.
    let per_cpu = server_cpu.filter(|s| *s > 0.0).map(|s| (kl.counted_received + kq.counted_received) as f64 / s);
    let lost = kl.lost();
    let quiet_lost = kq.lost();
    let lat = sw.latency_us(Class::Loaded);
    let qlat = sw.latency_us(Class::Quiet);

    let mut r = Report::new("fanout");
    r.set("rooms", rooms);
    r.set("room_size", room_size);
    r.set("senders_per_room", senders);
    r.set("rate_per_sender", rate);
    r.set("notes_per_message", notes);
    r.set("clients", n);
    r.set("probes_per_room", probes.min(room_size));
    r.set("lazy_ms", any_lazy.then_some(lazy_ms));
    r.set("quiet_rooms", quiet_rooms);
    r.set("quiet_rate_per_sender", quiet.then_some(quiet_rate));
    r.set("joined", joined);
    r.set("join_s", join_ms / 1000.0);
    r.set("window_s", window_s);
    r.set("offered_deliveries_per_s", offered);
    r.set("offered_total_deliveries_per_s", offered + quiet_offered);
    r.set("deliveries_per_s", rate_rx);
    r.set("messages_sent_per_s", sent_rate);
    r.set("server_cpu_s", server_cpu);
    r.set("server_cpu_util", server_cpu.map(|s| s / window_s));
    r.set("deliveries_per_server_cpu_s", per_cpu);
    r.set("expected", kl.window_expected);
    r.set("received", kl.window_received);
    r.set("lost", lost.max(0) as u64);
    // More than expected means a note reached a connection it must not (its own sender).
    r.set("unexpected", (-lost).max(0) as u64);
    r.set("latency_p50_ms", ms(lat.quantile(0.5)));
    r.set("latency_p99_ms", ms(lat.quantile(0.99)));
    r.set("latency_p999_ms", ms(lat.quantile(0.999)));
    r.set("latency_max_ms", ms(lat.max()));
    r.set("latency_mean_ms", lat.mean() / 1000.0);
    r.set("quiet_offered_deliveries_per_s", quiet_offered);
    r.set("quiet_deliveries_per_s", quiet_rx);
    r.set("quiet_messages_sent_per_s", quiet_sent_rate);
    r.set("quiet_expected", kq.window_expected);
    r.set("quiet_received", kq.window_received);
    r.set("quiet_lost", quiet_lost.max(0) as u64);
    r.set("quiet_unexpected", (-quiet_lost).max(0) as u64);
    let qh = quiet.then_some(qlat);
    r.set("quiet_latency_p50_ms", qh.map(|h| ms(h.quantile(0.5))));
    r.set("quiet_latency_p99_ms", qh.map(|h| ms(h.quantile(0.99))));
    r.set("quiet_latency_p999_ms", qh.map(|h| ms(h.quantile(0.999))));
    r.set("quiet_latency_max_ms", qh.map(|h| ms(h.max())));
    r.set("quiet_latency_mean_ms", qh.map(|h| h.mean() / 1000.0));
    r.set("quiet_latency_samples", qlat.count());
    r.set("generator_cpu_util", gen_cpu.map(|g| g / window_s));
    r.set("generator_sys_util", gen_sys.map(|g| g / window_s));
    r.set("other_cpu_util", other.map(|o| o / window_s));
    r.set("server_rss_kib", rss_end);
    r.set("server_rss_peak_kib", rss_peak);
    r.set("send_blocked", k.send_blocked);
    r.set("generator_reads", k.reads);
    r.set("generator_polls", k.polls);
    r.set("frames_received", k.frames_received);
    r.set("generator_turn_p99_ms", ms(sw.busy_us().quantile(0.99)));
    r.set("generator_turn_max_ms", ms(sw.busy_us().max()));
    let quiet_head = if quiet {
        format!("; {quiet_rooms} quiet rooms x {room_size} clients, 1 sender/room at {quiet_rate}/s")
    } else {
        String::new()
    };
    r.line(format!(
        "fanout: {rooms} rooms x {room_size} clients, {senders} senders/room at {rate}/s \
         ({notes} note(s)/message){quiet_head}; {joined}/{n} joined in {:.2} s",
        join_ms / 1000.0
    ));
    if quiet {
        r.line(format!(
            "deliveries/s:     {} (offered {}; with the quiet rooms' {} offered {} in all)",
            si(rate_rx),
            si(offered),
            si(quiet_offered),
            si(offered + quiet_offered)
        ));
    } else {
        r.line(format!("deliveries/s:     {} (offered {})", si(rate_rx), si(offered)));
    }
    r.line(format!(
        "per server CPU-s: {}  (server CPU {}){}",
        per_cpu.map_or("n/a (no --server-pid)".into(), si),
        server_cpu.map_or("n/a".into(), |s| format!("{:.0}% of a core", 100.0 * s / window_s)),
        if quiet { "; deliveries of loaded and quiet rooms" } else { "" }
    ));
    r.line(format!("latency ms:       {}", latency_text(lat)));
    r.line(format!("losses:           {}", losses_text(lost, kl.window_expected)));
    if lost < 0 {
        r.line(format!("warning: {} deliveries more than expected: is `n` echoed to its sender?", -lost));
    }
    if quiet {
        r.line(format!(
            "quiet rooms:      deliveries/s {} (offered {}); losses {}",
            si(quiet_rx),
            si(quiet_offered),
            losses_text(quiet_lost, kq.window_expected)
        ));
        r.line(format!("quiet latency ms: {}", latency_text(qlat)));
        if quiet_lost < 0 {
            r.line(format!("warning: {} quiet-room deliveries more than expected", -quiet_lost));
        }
    }
    r.line(format!(
        "generator CPU:    {}   server RSS: {}   server RSS peak: {}",
        gen_cpu.map_or("n/a".into(), |g| format!("{:.0}% of a core", 100.0 * g / window_s)),
        mib(rss_end),
        mib(rss_peak)
    ));
    if let Some(o) = other.map(|o| o / window_s)
        && o > 0.15
    {
        r.line(format!(
            "warning: other processes kept {:.0}% of a core busy during the window; figures are unreliable",
            100.0 * o
        ));
    }
    if any_lazy {
        r.line(format!(
            "                  (latency from the {probes} probe clients per room; the others are read every {lazy_ms} ms)"
        ));
    }
    if gen_cpu.is_some_and(|g| g / window_s > 0.9) {
        r.line("warning: the generator used over 90% of a core; it may be the bottleneck (try --probes 5)".into());
    }
    let nominal = m as f64 * rate;
    if sent_rate < nominal * 0.98 {
        r.line(format!(
            "warning: only {} of the scheduled {} note messages/s were sent in the window \
             (the generator fell behind, or senders were closed); offered load is overstated",
            si(sent_rate),
            si(nominal)
        ));
    }
    if rate_rx < offered * 0.98 || lost > 0 {
        r.line("note: deliveries below offered load: the server is saturated or dropping".into());
    }
    if quiet && (quiet_rx < quiet_offered * 0.98 || quiet_lost > 0) {
        r.line("note: the quiet rooms lost deliveries too: the overload reaches rooms that are not loaded".into());
    }
    failures(&mut r, &sw, n);
    sw.shutdown();
    Ok(r)
}

fn idle(a: &mut Args) -> Result<Report, String> {
    let c = common(a, 500)?;
    let n = clients(a, "clients", 10_000)?;
    let room_size: usize = a.get("room-size", 100)?;
    let settle = seconds(a, "settle", 2.0)? * 1000.0;
    let hold = seconds(a, "hold", 10.0)? * 1000.0;
    if c.pid.is_none() {
        return Err("idle needs --server-pid to read the server's memory".into());
    }
    let rss0 = rss(c.pid);
    let mut sw = new_swarm(&c, n, room_size.max(1), 0)?;
    let join_ms = join_all(&mut sw, &c)?;
    run_for(&mut sw, settle, c.concurrency)?;
    let rss1 = rss(c.pid);
    run_for(&mut sw, hold, c.concurrency)?;
    let rss2 = rss(c.pid);
    let joined = sw.counters().joined;
    let per = |after: Option<u64>| rss0.zip(after).map(|(b, a)| (a as f64 - b as f64) * 1024.0 / joined.max(1) as f64);
    let mut r = Report::new("idle");
    r.set("clients", n);
    r.set("room_size", room_size);
    r.set("joined", joined);
    r.set("join_s", join_ms / 1000.0);
    r.set("rss_before_kib", rss0);
    r.set("rss_joined_kib", rss1);
    r.set("rss_after_hold_kib", rss2);
    r.set("bytes_per_connection", per(rss1));
    r.set("bytes_per_connection_after_hold", per(rss2));
    r.set("pings_sent", sw.counters().pings_sent);
    let kib = |v: Option<u64>| v.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    r.line(format!("idle: {joined}/{n} clients joined rooms of {room_size} in {:.2} s", join_ms / 1000.0));
    r.line(format!(
        "server RSS:       before {}  joined {}  after {:.0} s idle {}",
        kib(rss0),
        kib(rss1),
        hold / 1000.0,
        kib(rss2)
    ));
    r.line(format!(
        "per connection:   {:.0} bytes (joined), {:.0} bytes (after idle)",
        per(rss1).unwrap_or(f64::NAN),
        per(rss2).unwrap_or(f64::NAN)
    ));
    failures(&mut r, &sw, n);
    sw.shutdown();
    Ok(r)
}

fn storm(a: &mut Args) -> Result<Report, String> {
    let mut c = common(a, usize::MAX)?;
    let n = clients(a, "clients", 10_000)?;
    let room_size: usize = a.get("room-size", 100)?;
    c.join_timeout_ms = seconds(a, "timeout", 30.0)? * 1000.0;
    let cpu0 = cpu(c.pid);
    let mut sw = new_swarm(&c, n, room_size.max(1), 0)?;
    let start = now_ms();
    join_all(&mut sw, &c)?;
    let cpu1 = cpu(c.pid);
    let rss_after = rss(c.pid);
    let mut joins = Hist::default();
    let mut connects = Hist::default();
    let mut last = start;
    for cl in &sw.clients {
        if cl.connected_ms > 0.0 {
            connects.record(((cl.connected_ms - cl.started_ms) * 1000.0).max(0.0) as u64);
        }
        if cl.state == swarm::State::Joined {
            joins.record(((cl.joined_ms - cl.started_ms) * 1000.0).max(0.0) as u64);
            last = last.max(cl.joined_ms);
        }
    }
    let joined = sw.counters().joined;
    let all_s = (last - start) / 1000.0;
    let mut r = Report::new("storm");
    r.set("clients", n);
    r.set("room_size", room_size);
    r.set("joined", joined);
    r.set("all_joined_s", (joined == n).then_some(all_s));
    r.set("last_join_s", all_s);
    r.set("join_p50_ms", ms(joins.quantile(0.5)));
    r.set("join_p99_ms", ms(joins.quantile(0.99)));
    r.set("join_max_ms", ms(joins.max()));
    r.set("connect_p50_ms", ms(connects.quantile(0.5)));
    r.set("connect_p99_ms", ms(connects.quantile(0.99)));
    r.set("connect_max_ms", ms(connects.max()));
    r.set("server_cpu_s", cpu0.zip(cpu1).map(|(a, b)| b - a));
    r.set("server_rss_kib", rss_after);
    r.line(format!("storm: {joined}/{n} clients joined rooms of {room_size}; last join after {all_s:.3} s"));
    r.line(format!(
        "per client, ms:   TCP connect p50 {:.1} p99 {:.1} max {:.1};  join p50 {:.1} p99 {:.1} max {:.1}",
        ms(connects.quantile(0.5)),
        ms(connects.quantile(0.99)),
        ms(connects.max()),
        ms(joins.quantile(0.5)),
        ms(joins.quantile(0.99)),
        ms(joins.max())
    ));
    r.line("                  (a TCP connect near 1000 or 3000 ms is a SYN retransmit: full listen backlog)".into());
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        r.line(format!("server CPU:       {:.2} s", b - a));
    }
    failures(&mut r, &sw, n);
    sw.shutdown();
    Ok(r)
}

fn startup(a: &mut Args) -> Result<Report, String> {
    let bin: String = a.opt("bin")?.ok_or("startup needs --bin PATH (the server binary)")?;
    let server: SocketAddr = a.get("server", SocketAddr::from(([127, 0, 0, 1], 9123)))?;
    if !server.ip().is_loopback() {
        return Err("--server must be a loopback address (127.0.0.0/8)".into());
    }
    let runs: usize = a.get("runs", 5usize)?.clamp(1, 50);
    let timeout = Duration::from_secs_f64(seconds(a, "timeout", 10.0)?);
    let server_args = if a.rest.is_empty() { vec!["--listen".to_string(), server.to_string()] } else { a.rest.clone() };
    let mut times = Vec::new();
    let mut rsses = Vec::new();
    for _ in 0..runs {
        if TcpStream::connect_timeout(&server, Duration::from_millis(100)).is_ok() {
            return Err(format!("something already listens on {server}"));
        }
        let (t, rss) = startup_once(&bin, &server_args, server, timeout)?;
        times.push(t);
        rsses.push(rss);
        std::thread::sleep(Duration::from_millis(100));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rss_f: Vec<f64> = rsses.iter().map(|k| *k as f64).collect();
    let (t_min, t_max) =
        (times.iter().copied().fold(f64::INFINITY, f64::min), times.iter().copied().fold(0.0, f64::max));
    let t_med = med(&mut times);
    let rss_med = med(&mut rss_f);
    let mut r = Report::new("startup");
    r.set("runs", runs);
    r.set("first_hi_ms_median", t_med);
    r.set("first_hi_ms_min", t_min);
    r.set("first_hi_ms_max", t_max);
    r.set("rss_kib_median", rss_med);
    r.line(format!(
        "startup: {runs} runs of {bin}; spawn to first hi reply: median {t_med:.2} ms \
         (min {t_min:.2}, max {t_max:.2})"
    ));
    r.line(format!("server RSS at that moment: median {:.2} MiB", rss_med / 1024.0));
    Ok(r)
}

/// Spawns the server once; returns milliseconds from spawn to the `hi` reply and RSS (KiB).
fn startup_once(bin: &str, server_args: &[String], addr: SocketAddr, timeout: Duration) -> Result<(f64, u64), String> {
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(server_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e}"))?;
    let result = (|| {
        let mut sock = loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("server exited before answering: {status}"));
            }
            if t0.elapsed() > timeout {
                return Err("server did not accept a connection in time".to_string());
            }
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_micros(100)),
            }
        };
        let io = |e: std::io::Error| format!("startup connection: {e}");
        sock.set_nodelay(true).map_err(io)?;
        sock.set_read_timeout(Some(timeout)).map_err(io)?;
        sock.write_all(&ws::upgrade_request(&addr.to_string())).map_err(io)?;
        let scanner = scan::Scanner::default();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        let mut upgraded = None;
        loop {
            if t0.elapsed() > timeout {
                return Err("no hi reply in time".into());
            }
            let n = sock.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Err("server closed the connection".into());
            }
            buf.extend_from_slice(&chunk[..n]);
            if upgraded.is_none() {
                match ws::parse_upgrade_response(&buf) {
                    ws::Upgrade::Partial => continue,
                    ws::Upgrade::Refused(s) => return Err(format!("upgrade refused: {s}")),
                    ws::Upgrade::Switched(used) => {
                        buf.drain(..used);
                        upgraded = Some(());
                        let mut f = Vec::new();
                        ws::encode_frame(&mut f, ws::OP_TEXT, br#"[{"m":"hi"}]"#, [7, 1, 3, 9]);
                        sock.write_all(&f).map_err(io)?;
                    }
                }
            }
            let mut used = 0;
            while let Ok(Some((frame, n))) = ws::parse_frame(&buf[used..]) {
                used += n;
                let mut hi = false;
                scanner.for_each_message(frame.payload, |kind, _| hi |= kind == b"hi");
                if hi {
                    let t = t0.elapsed().as_secs_f64() * 1000.0;
                    let rss = procfs::rss_kib(child.id()).unwrap_or(0);
                    return Ok((t, rss));
                }
            }
            buf.drain(..used);
        }
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_places_quiet_rooms_after_the_loaded_ones() {
        let plan = Plan { rooms: 2, quiet_rooms: 1, room_size: 4, senders: 2, probes: 1 };
        assert_eq!(plan.clients(), 12);
        let classes: Vec<Class> = (0..12).map(|i| plan.class(i)).collect();
        assert_eq!(classes[..8], [Class::Loaded; 8]);
        assert_eq!(classes[8..], [Class::Quiet; 4]);
        let senders: Vec<usize> = (0..12).filter(|&i| plan.sends(i)).collect();
        assert_eq!(senders, [0, 1, 4, 5, 8]);
        // Probes apply to loaded rooms only: every quiet-room client reads promptly.
        let lazy: Vec<usize> = (0..12).filter(|&i| plan.lazy(i)).collect();
        assert_eq!(lazy, [1, 2, 3, 5, 6, 7]);
        let no_quiet = Plan { quiet_rooms: 0, ..plan };
        assert_eq!(no_quiet.clients(), 8);
        assert!((0..8).all(|i| no_quiet.class(i) == Class::Loaded));
    }

    #[test]
    fn schedule_spreads_each_class_over_its_own_period() {
        let plan = Plan { rooms: 2, quiet_rooms: 2, room_size: 3, senders: 2, probes: 3 };
        // Client 4 (a loaded sender) did not join.
        let s = schedule(&plan, |i| i != 4, 100.0, 20.0);
        let got: Vec<(usize, f64, f64, u32)> = s.iter().map(|s| (s.client, s.period, s.phase, s.max_burst)).collect();
        assert_eq!(
            got,
            [(0, 10.0, 0.0, 8), (1, 10.0, 1.0 / 3.0, 8), (3, 10.0, 2.0 / 3.0, 8), (6, 50.0, 0.0, 8), (9, 50.0, 0.5, 8)]
        );
        assert!(s.iter().all(|s| s.sent == 0));
        // Fast senders may catch up 8 ms worth at once.
        assert_eq!(schedule(&plan, |_| true, 20_000.0, 10.0)[0].max_burst, 160);
        assert_eq!(schedule(&plan, |_| true, 1000.0, 10.0)[0].max_burst, 8);
    }

    #[test]
    fn quota_warning_names_the_server_options() {
        assert!(quota_warning("sender", 200.0, 1).is_none());
        assert!(quota_warning("sender", 100.0, 2).is_none());
        let w = quota_warning("sender", 2000.0, 1).unwrap();
        assert!(w.contains("--trusted-notes") && w.contains("--connection-messages"), "{w}");
        assert!(!w.contains("Even the trusted quota"));
        assert!(quota_warning("sender", 5000.0, 1).unwrap().contains("Even the trusted quota"));
    }
}
