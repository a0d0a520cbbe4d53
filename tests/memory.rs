//! Memory stays bounded whatever clients do: 1,000 connections join a room and then never read
//! again while that room is flooded with notes. The server runs as a child process (the `mppd`
//! binary) and its resident memory is read from `/proc/<pid>/status` throughout.
//!
//! Notes are droppable: past the soft cap of a reader's queue they are skipped for it, so each
//! silent connection holds at most about `soft cap + one frame + one write batch` in the
//! server. The test asserts that the growth of the server's RSS during the flood stays under
//! `connections × (soft cap + largest frame + write batch) + 16 MiB`, that the whole run stays
//! under `idle + connections × 128 KiB + 16 MiB` (measured: about 87 KiB per connection after
//! 1,000 joins into one room, most of it the allocator keeping what the join burst of 500,000
//! participant updates used), and that the flood really overflowed the silent readers' queues
//! (`mppd_frames_dropped_total` in `/metrics`). docs/limits.md "Memory" has the numbers.

mod process;

use serde_json::{Value, json};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tungstenite::Message;

const SILENT: usize = 1_000;
const SOFT_CAP: usize = 32 * 1024;
const HARD_CAP: usize = 1024 * 1024;
const WRITE_BATCH: usize = 4 * 1024;
const FLOODERS: usize = 8;
const NOTES_PER_MESSAGE: usize = 100;
const ROOM: &str = "memory-flood";

/// The server as a child process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = process::mppd_command()
            .args(["--listen", &addr.to_string(), "--random-ids", "--data-dir", "", "--log-level", "error"])
            .args(["--send-queue-soft-bytes", &SOFT_CAP.to_string()])
            .args(["--send-queue-hard-bytes", &HARD_CAP.to_string()])
            .args(["--write-buffer-bytes", &WRITE_BATCH.to_string()])
            .args(["--max-connections", "10000", "--max-pending-handshakes", "10000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the mppd binary");
        let server = Server { child, addr };
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "the server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read the response");
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
    }

    fn participants(&self) -> u64 {
        let health: Value = serde_json::from_str(&self.get("/health")).expect("health is JSON");
        health["participants"].as_u64().expect("participants")
    }

    fn metric(&self, name: &str) -> u64 {
        let text = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse::<f64>().ok()))
            .map_or_else(|| panic!("{name} not in /metrics"), |v| v as u64)
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The soft limit on open files of this process (the child inherits it).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(1024)
}

/// A masked client text frame.
fn frame(payload: &str) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut out = vec![0x81];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&u16::try_from(n).expect("a frame under 64 KiB").to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A raw connection with a small receive window that upgrades, says `hi` and joins the room in
/// one write. Its input is drained until everyone joined; after that it is never read again.
fn silent_client(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4 * 1024).expect("small receive buffer");
    // An Internet-sized segment: over loopback's 64 KiB segments the kernel would size the
    // server's send buffer to megabytes and absorb the whole flood itself.
    socket.set_tcp_mss(1_400).expect("set the segment size");
    socket.connect(&addr.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    let mut bytes = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    bytes.extend(frame(&json!([{"m": "hi"}, {"m": "ch", "_id": ROOM}]).to_string()));
    stream.write_all(&bytes).expect("send the upgrade and the join");
    stream.set_nonblocking(true).expect("non-blocking");
    stream
}

/// Reads whatever is waiting on every socket; returns how many bytes.
fn drain(streams: &mut [TcpStream]) -> usize {
    let mut scratch = [0u8; 16 * 1024];
    let mut total = 0;
    for stream in streams {
        loop {
            match stream.read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("a silent client lost its connection while joining: {e}"),
            }
        }
    }
    total
}

/// A tungstenite client in the room.
fn player(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let (mut ws, _) = tungstenite::client::client(format!("ws://{addr}/"), stream).expect("upgrade");
    ws.send(Message::text(json!([{"m": "hi"}, {"m": "ch", "_id": ROOM}]).to_string())).expect("join");
    ws
}

#[test]
fn a_thousand_connections_that_never_read_keep_the_server_bounded_under_a_note_flood() {
    let limit = open_files_limit();
    let silent = SILENT.min(limit.saturating_sub(64));
    if silent < SILENT {
        eprintln!("open files limited to {limit}: running with {silent} silent connections instead of {SILENT}");
    }
    let server = Server::start();
    let idle_kib = server.rss_kib();

    let mut streams: Vec<TcpStream> = (0..silent).map(|_| silent_client(server.addr)).collect();
    let started = Instant::now();
    loop {
        drain(&mut streams);
        if server.participants() >= silent as u64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the silent clients did not all join");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the last participant updates arrive, then stop reading for good.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(300) {
        if drain(&mut streams) > 0 {
            std::thread::sleep(Duration::from_millis(10));
        } else {
            std::thread::sleep(Duration::from_millis(50));
            if drain(&mut streams) == 0 {
                break;
            }
        }
    }
    let joined_kib = server.rss_kib();

    // A reader that keeps up, to show the room is still served during the flood.
    let mut reader = player(server.addr);
    let notes_seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader_thread = {
        let (notes_seen, done) = (notes_seen.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                match reader.read() {
                    Ok(Message::Text(text)) => {
                        notes_seen.fetch_add(text.matches(r#"{"m":"n""#).count() as u64, Ordering::Relaxed);
                        if text.contains("flood over") {
                            return true;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
            false
        })
    };

    // Peak RSS, sampled while the flood runs.
    let peak = Arc::new(AtomicU64::new(joined_kib));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), server.child.id());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Acquire) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // Each flooder spends its whole note quota (a burst, then the refill every 2 s) in messages
    // of 100 notes with the longest names and every field.
    let note = json!({"n": "abcdefghijklmnop", "v": 0.5, "d": 123_456, "s": 1});
    let notes = Value::Array(vec![note; NOTES_PER_MESSAGE]);
    let mut flooders: Vec<_> = (0..FLOODERS).map(|_| player(server.addr)).collect();
    let flood_started = Instant::now();
    let mut sent = 0u64;
    while flood_started.elapsed() < Duration::from_secs(4) {
        for flooder in &mut flooders {
            let message = json!([{"m": "n", "t": 1, "n": notes}]).to_string();
            flooder.send(Message::text(message)).expect("send notes");
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    flooders[0].send(Message::text(json!([{"m": "a", "message": "flood over"}]).to_string())).expect("send chat");
    let reader_saw_the_end = reader_thread.join().expect("the reader thread");
    done.store(true, Ordering::Release);
    sampling.store(false, Ordering::Release);
    sampler.join().expect("the sampler thread");
    let peak_kib = peak.load(Ordering::Relaxed).max(server.rss_kib());

    let dropped = server.metric("mppd_frames_dropped_total");
    let largest_frame = json!([{"m": "n", "t": 1, "n": notes, "p": "0123456789abcdef01234567"}]).to_string().len() + 8;
    let per_connection = SOFT_CAP + largest_frame + WRITE_BATCH;
    let bound_kib = (silent * per_connection / 1024) as u64 + 16 * 1024;
    let growth_kib = peak_kib.saturating_sub(joined_kib);
    eprintln!(
        "memory: idle {idle_kib} KiB, {silent} joined {joined_kib} KiB, peak during the flood {peak_kib} KiB \
         (growth {growth_kib} KiB, bound {bound_kib} KiB); {sent} note messages sent, {dropped} frames dropped, \
         the reader saw {} notes",
        notes_seen.load(Ordering::Relaxed)
    );
    assert!(reader_saw_the_end, "the reader was not served to the end of the flood");
    assert!(notes_seen.load(Ordering::Relaxed) > 0, "the reader saw no notes");
    assert!(dropped >= silent as u64, "the flood did not overflow the silent readers' queues ({dropped} drops)");
    assert!(
        growth_kib <= bound_kib,
        "RSS grew by {growth_kib} KiB during the flood, over the bound of {bound_kib} KiB"
    );
    let total_bound_kib = idle_kib + (silent as u64) * 128 + 16 * 1024;
    assert!(peak_kib <= total_bound_kib, "RSS reached {peak_kib} KiB, over the bound of {total_bound_kib} KiB");
    drop(streams);
}
