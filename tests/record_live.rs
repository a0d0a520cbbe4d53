//! Records a live session of the real `mppd` binary (`--record --record-output`), driven over
//! real sockets by several clients, then replays the recording with the binary: `--check` finds
//! every output identical, and replaying twice, in-process and in separate processes, prints the
//! same bytes.

mod common;
mod process;

use common::Client;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// A running `mppd` process; stopped (SIGKILL) if the test fails before stopping it.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    /// Starts `mppd` on a free port of 127.0.0.1 and waits for its "listening on" log line.
    /// The port is found by binding and releasing it, so another program may take it first: the
    /// server then exits at once and the start is retried on another port.
    fn start(extra: &[&str]) -> Process {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut child = process::mppd_command()
                .args(["--listen", &addr.to_string(), "--log-level", "info", "--data-dir", ""])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start mppd");
            let stdout = child.stdout.take().expect("piped stdout");
            let (lines, listening) = mpsc::channel();
            // Reads the log to its end, so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
            let wanted = format!("listening on {addr}");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match listening.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(line) if line.contains(&wanted) => return Process { child, addr },
                    Ok(_) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break, // exited: port taken
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let _ = child.kill();
                        panic!("mppd did not log {wanted:?} within 10 s");
                    }
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("mppd could not start on a free port (5 tries)");
    }

    /// SIGTERM, then waits up to 10 s for the process to end (SIGKILL after that).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while sent && Instant::now() < deadline {
            if self.child.try_wait().expect("wait for mppd").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A client that says `hi` with `customId` (its user) and then sends `then` in the same frame.
fn client(addr: SocketAddr, user: u32, then: &[Value]) -> Client {
    let mut c = Client::connect(addr);
    c.expect_message("b");
    let mut frame = vec![json!({"m": "hi", "customId": user})];
    frame.extend_from_slice(then);
    c.send(&frame);
    c
}

fn join(addr: SocketAddr, user: u32, room: &str) -> (Client, String) {
    let mut c = client(addr, user, &[json!({"m": "ch", "_id": room})]);
    let hi = c.expect_message("hi");
    let ch = c.expect_message("ch");
    assert_eq!(ch["ch"]["_id"], room, "{ch}");
    (c, hi["u"]["_id"].as_str().expect("u._id").to_string())
}

/// The first message `m` that satisfies `pred`, skipping everything before it.
fn until(c: &mut Client, m: &str, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = c.expect_message(m);
        if pred(&message) {
            return message;
        }
    }
}

/// A `t` round trip: everything sent before it on this connection has been handled.
fn sync(c: &mut Client, e: u64) {
    c.send(&[json!({"m": "t", "e": e})]);
    loop {
        let t = c.expect_message("t");
        if t["e"] == e {
            return;
        }
    }
}

/// Drives one session through everything the base protocol and moderation allow.
fn drive(addr: SocketAddr) {
    // A creates a room with settings; C watches the channel list; B joins; A opens a second tab.
    let mut a1 = client(addr, 1, &[json!({"m": "ch", "_id": "Room", "set": {"color": "#112233", "chat": true}})]);
    let a_id = a1.expect_message("hi")["u"]["_id"].as_str().expect("u._id").to_string();
    assert_eq!(a1.expect_message("ch")["ch"]["crown"]["participantId"], a_id.as_str());
    let mut c = client(addr, 3, &[json!({"m": "+ls"})]);
    assert_eq!(c.expect_message("ls")["c"], true);
    let (mut b, b_id) = join(addr, 2, "Room");
    assert_eq!(a1.expect_message("p")["id"], b_id.as_str());
    let (mut a2, a2_id) = join(addr, 1, "Room");
    assert_eq!(a2_id, a_id, "a second tab of the same user");
    let (mut d, _) = join(addr, 4, "lobby");

    // Names, chat, a reply, a DM.
    a1.send(&[json!({"m": "userset", "set": {"name": "Alice"}})]);
    assert_eq!(a1.expect_message("p")["name"], "Alice");
    b.send(&[json!({"m": "userset", "set": {"name": "Bob", "color": "#ABCDEF"}})]);
    assert_eq!(until(&mut b, "p", |p| p["name"] == "Bob")["color"], "#abcdef");
    a1.send(&[json!({"m": "a", "message": "hello"})]);
    let said = b.expect_message("a");
    b.send(&[json!({"m": "a", "message": "hi Alice", "reply_to": said["id"]})]);
    assert_eq!(a1.expect_message("a")["a"], "hello");
    assert_eq!(a1.expect_message("a")["r"], said["id"]);
    a1.send(&[json!({"m": "dm", "_id": b_id, "message": "psst"})]);
    assert_eq!(b.expect_message("dm")["a"], "psst");
    assert_eq!(a1.expect_message("dm")["a"], "psst");

    // Cursor, notes (to the other tab too), custom messages.
    b.send(&[json!({"m": "m", "x": "12.50", "y": 40})]);
    assert_eq!(a1.expect_message("m")["x"], "12.50");
    a1.send(&[
        json!({"m": "n", "t": 1_700_000_000_000.25, "n": [{"n": "a1", "v": 0.5}, {"n": "a1", "s": 1, "d": 250}]}),
    ]);
    assert_eq!(b.expect_message("n")["n"].as_array().map(Vec::len), Some(2));
    assert_eq!(a2.expect_message("n")["p"], a_id.as_str());
    b.send(&[json!({"m": "+custom"})]);
    sync(&mut b, 1);
    a2.send(&[json!({"m": "custom", "data": {"k": [1, 2]}, "target": {"mode": "subscribed"}})]);
    assert_eq!(b.expect_message("custom")["data"], json!({"k": [1, 2]}));
    a2.send(&[json!({"m": "custom", "data": "to you", "target": {"mode": "id", "id": b_id}})]);
    assert_eq!(b.expect_message("custom")["data"], "to you");

    // Room settings, then the crown: give to B, B drops it, B takes it back (last holder).
    a1.send(&[json!({"m": "chset", "set": {"color": "#000000", "color2": "#ff9900", "chat": true}})]);
    assert_eq!(b.expect_message("ch")["ch"]["settings"]["color2"], "#ff9900");
    assert_eq!(c.expect_message("ls")["c"], false);
    a1.send(&[json!({"m": "chown", "id": b_id})]);
    assert_eq!(b.expect_message("ch")["ch"]["crown"]["participantId"], b_id.as_str());
    b.send(&[json!({"m": "chown"})]);
    until(&mut a1, "ch", |ch| ch["ch"]["crown"].get("participantId").is_none());
    b.send(&[json!({"m": "chown", "id": b_id})]);
    until(&mut a1, "ch", |ch| ch["ch"]["crown"]["participantId"] == b_id.as_str());

    // B bans A (both tabs go to test/awkward); a new tab of A is refused; unban; A is back.
    b.send(&[json!({"m": "kickban", "_id": a_id, "ms": 120_000})]);
    for tab in [&mut a1, &mut a2] {
        let notice = tab.expect_message("notification");
        assert!(notice["text"].as_str().is_some_and(|t| t.starts_with("Banned from")), "{notice}");
        until(tab, "ch", |ch| ch["ch"]["_id"] == "test/awkward");
    }
    let mut a3 = client(addr, 1, &[json!({"m": "ch", "_id": "Room"})]);
    let refused = a3.expect_message("notification");
    assert!(refused["text"].as_str().is_some_and(|t| t.starts_with("Currently banned")), "{refused}");
    a3.send(&[json!({"m": "bye"})]);
    assert_eq!(a3.expect_close_code(), 1000);
    b.send(&[json!({"m": "unban", "_id": a_id})]);
    sync(&mut b, 2);
    let (_a4, _) = join(addr, 1, "Room");

    // Malformed input changes nothing; D says bye; C drops its TCP connection.
    b.send_text("not json");
    b.send_text("{\"m\":\"hi\"}");
    b.send_text("[1,{\"m\":5},{\"nom\":\"a\"},{\"m\":\"nope\"},\"x\"]");
    b.send_message(Message::binary(vec![1u8, 2, 3]));
    sync(&mut b, 3);
    d.send(&[json!({"m": "bye"})]);
    assert_eq!(d.expect_close_code(), 1000);
    drop(c);
    // B sees nothing of that; A's first tab sees a `t` reply of its own. Two round trips on
    // different connections: the turn that answered the first was flushed to the recording
    // before the second could be answered.
    sync(&mut a1, 4);
    sync(&mut b, 5);
}

fn replay_in_process(path: &Path) -> Vec<u8> {
    let file = BufReader::new(std::fs::File::open(path).expect("open the recording"));
    let mut out = Vec::new();
    mppd::record::replay(file, false, &mut out).expect("replay");
    out
}

fn replay_process(path: &Path, check: bool) -> std::process::Output {
    let mut cmd = process::mppd_command();
    cmd.arg("replay").arg(path);
    if check {
        cmd.arg("--check");
    }
    cmd.output().expect("run mppd replay")
}

#[test]
fn a_recorded_live_session_replays_byte_for_byte() {
    let dir: PathBuf = std::env::temp_dir().join(format!("mppd-record-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("session.jsonl");
    let recording = path.to_str().expect("utf-8 temp path");
    let server = Process::start(&[
        "--record",
        recording,
        "--record-output",
        "--custom-id-limit",
        "8",
        "--seed",
        "7",
        "--salt",
        "record-live",
    ]);
    drive(server.addr);
    server.stop();

    let check = replay_process(&path, true);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "mppd replay --check failed: {stderr}");
    assert!(stderr.contains("all outputs identical"), "{stderr}");

    let first = replay_process(&path, false);
    let second = replay_process(&path, false);
    assert!(first.status.success() && second.status.success());
    assert_eq!(first.stdout, second.stdout, "two replay processes printed different outputs");
    let in_process = replay_in_process(&path);
    assert_eq!(in_process, replay_in_process(&path), "two in-process replays differ");
    assert_eq!(in_process, first.stdout, "the in-process replay differs from the process");

    // The replay is the whole session, not an empty one.
    let text = String::from_utf8(in_process).expect("utf-8 outputs");
    for marker in [
        r#"\"m\":\"hi\""#,
        r#"\"_id\":\"Room\""#,
        r#"\"_id\":\"lobby\""#,
        r#"\"name\":\"Alice\""#,
        r#"\"m\":\"dm\""#,
        r#"\"m\":\"m\""#,
        r#"\"m\":\"n\""#,
        r#"\"m\":\"custom\""#,
        r#"\"m\":\"ls\""#,
        r##"\"color2\":\"#ff9900\""##,
        "Banned from",
        "Currently banned",
        r#""code":1000"#,
    ] {
        assert!(text.contains(marker), "the replay lacks {marker}");
    }
    let recorded = std::fs::read_to_string(&path).expect("read the recording");
    assert!(recorded.contains(r#""in":"closed""#), "C's dropped connection is recorded");
    assert!(recorded.contains("not json"), "malformed frames are recorded");
    std::fs::remove_dir_all(&dir).expect("remove the temp dir");
}
