//! Three real `mppd` nodes serving one site through a real `nats-server` (docs/cluster.md), with
//! real WebSocket clients: rooms, notes and chat across nodes, the site-wide channel list, crown
//! and kickban across nodes, a site-wide name; then the owner of a busy room is killed, and then
//! NATS restarts.
//!
//! Needs `nats-server` (Debian package `nats-server`, which `.ci/run` installs); without it the
//! test prints `SKIPPED: cluster: …` and passes.
#![cfg(feature = "cluster")]

mod common;
mod process;

use common::Client;
use process::{Mppd, connect_from, temp_dir};
use serde_json::{Value, json};
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::Message;

const SALT: &str = "cluster-test-salt";

/// How long anything that crosses nodes may take (a takeover waits for a silent node's timeout).
const CROSS: Duration = Duration::from_secs(20);

fn nats_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .chain([PathBuf::from("/usr/sbin/nats-server"), PathBuf::from("/usr/bin/nats-server")])
        .find(|p| p.is_file())
}

/// A `nats-server` with JetStream on a loopback port; killed when dropped.
struct Nats {
    binary: PathBuf,
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl Nats {
    fn start(binary: PathBuf, store: &Path) -> Nats {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut nats = Nats { binary, port, store: store.to_path_buf(), child: None };
        nats.spawn();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + CROSS;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_node(nats: &Nats, name: &str, data: &Path) -> Mppd {
    start_node_at(&nats.url(), name, data)
}

fn start_node_at(url: &str, name: &str, data: &Path) -> Mppd {
    start_node_with(url, name, data, &[])
}

fn start_node_with(url: &str, name: &str, data: &Path, extra: &[&str]) -> Mppd {
    let dir = data.join(name);
    let mut args = vec![
        "--nats",
        url,
        "--node",
        name,
        "--salt",
        SALT,
        "--seed",
        "1",
        "--data-dir",
        dir.to_str().expect("a UTF-8 path"),
        "--save-delay-ms",
        "10",
        "--log-level",
        "debug",
    ];
    args.extend_from_slice(extra);
    let mut node = Mppd::start(&args);
    node.expect_log("joined the site");
    node
}

/// A client from its own loopback address (so its own user), identified.
struct User {
    client: Client,
    id: String,
}

impl User {
    fn connect(from: u8, node: &Mppd) -> User {
        User::connect_to(from, node.addr)
    }

    fn connect_to(from: u8, addr: SocketAddr) -> User {
        let stream = connect_from([127, 0, 0, from], addr);
        let mut client = Client::handshake(stream, addr, "/");
        client.send(&[json!({"m": "hi"})]);
        let hi = client.expect_message("hi");
        let id = hi["u"]["_id"].as_str().expect("an id").to_string();
        User { client, id }
    }

    fn send(&mut self, message: Value) {
        self.client.send(&[message]);
    }

    /// Joins `room` and returns its `ch` reply.
    fn join(&mut self, room: &str) -> Value {
        self.send(json!({"m": "ch", "_id": room}));
        self.until(|m| m["m"] == "ch" && m["ch"]["_id"] == room && m["p"].is_string()).expect("the ch reply")
    }

    /// The first message that satisfies `wanted` within [`CROSS`], skipping the others.
    fn until(&mut self, wanted: impl FnMut(&Value) -> bool) -> Option<Value> {
        self.until_within(CROSS, wanted)
    }

    fn until_within(&mut self, wait: Duration, mut wanted: impl FnMut(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.client.ws.get_mut().set_read_timeout(Some(left)).expect("set read timeout");
            match self.client.ws.read() {
                Ok(Message::Text(text)) => {
                    let frame: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
                    for message in frame.as_array().into_iter().flatten() {
                        if wanted(message) {
                            return Some(message.clone());
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Sends chat until another user sees it (or [`CROSS`] passes): rooms being taken over after
    /// a node's death drop what arrives meanwhile.
    fn chat_until_heard(&mut self, text: &str, listener: &mut User) -> bool {
        let deadline = Instant::now() + CROSS;
        while Instant::now() < deadline {
            self.send(json!({"m": "a", "message": text}));
            if listener.until_within(Duration::from_millis(1500), |m| m["m"] == "a" && m["a"] == text).is_some() {
                return true;
            }
        }
        false
    }

    /// Asks to join `room` until refused as banned (or [`CROSS`] passes); whether it was. `ch` is
    /// limited to one per 500 ms (PROTOCOL.md §8.3), so it is asked again until answered.
    fn refused_from(&mut self, room: &str) -> bool {
        let deadline = Instant::now() + CROSS;
        while Instant::now() < deadline {
            self.send(json!({"m": "ch", "_id": room}));
            if self.until_within(Duration::from_millis(600), is_ban_refusal).is_some() {
                return true;
            }
        }
        false
    }
}

fn is_ban_refusal(m: &Value) -> bool {
    m["m"] == "notification" && m["text"].as_str().is_some_and(|t| t.starts_with("Currently banned"))
}

fn ids_in(ch: &Value) -> Vec<String> {
    ch["ppl"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_str().map(str::to_string)).collect()
}

#[test]
fn three_nodes_serve_one_site_and_survive_losing_one() {
    let Some(binary) = nats_binary() else {
        let _ =
            writeln!(std::io::stderr(), "SKIPPED: cluster: nats-server is not installed (Debian package nats-server)");
        return;
    };
    let data = temp_dir("cluster");
    let mut nats = Nats::start(binary, &data.join("nats"));
    // n1 records its core's inputs and outputs: a node's recording replays like a single node's.
    let recording = data.join("n1.jsonl");
    let record_args = ["--record", recording.to_str().expect("a UTF-8 path"), "--record-output"];
    let mut n1 = start_node_with(&nats.url(), "n1", &data, &record_args);
    let mut n2 = start_node(&nats, "n2", &data);
    let n3 = start_node(&nats, "n3", &data);

    // Cross-node membership: alice (n1) creates the room, bob (n2) joins it through n1.
    let mut alice = User::connect(11, &n1);
    let mut bob = User::connect(12, &n2);
    let ch = alice.join("room one");
    assert_eq!(ch["ch"]["crown"]["participantId"], alice.id.as_str(), "the creator holds the crown");
    let ch = bob.join("room one");
    let ids = ids_in(&ch);
    assert!(ids.contains(&alice.id) && ids.contains(&bob.id), "bob sees both: {ch}");
    alice.until(|m| m["m"] == "p" && m["id"] == bob.id.as_str()).expect("alice sees bob join");

    // Notes and chat, both ways.
    bob.send(json!({"m": "n", "t": 1, "n": [{"n": "a1", "v": 0.5}]}));
    let n = alice.until(|m| m["m"] == "n").expect("alice hears bob's note");
    assert_eq!(n["p"], bob.id.as_str());
    alice.send(json!({"m": "n", "t": 2, "n": [{"n": "c4", "v": 0.5}]}));
    let n = bob.until(|m| m["m"] == "n").expect("bob hears alice's note");
    assert_eq!(n["p"], alice.id.as_str());
    bob.send(json!({"m": "a", "message": "hello from n2"}));
    let bob_id = bob.id.clone();
    for user in [&mut alice, &mut bob] {
        let a = user.until(|m| m["m"] == "a" && m["a"] == "hello from n2").expect("chat from bob");
        assert_eq!(a["p"]["_id"], bob_id.as_str());
    }
    alice.send(json!({"m": "a", "message": "hello from n1"}));
    bob.until(|m| m["m"] == "a" && m["a"] == "hello from n1").expect("chat from alice");

    // The channel list holds every room of the site with its count.
    let mut carol = User::connect(13, &n3);
    carol.join("room two");
    let mut dave = User::connect(14, &n3);
    dave.send(json!({"m": "+ls"}));
    let mut counts = std::collections::BTreeMap::new();
    dave.until(|m| {
        if m["m"] == "ls" {
            for entry in m["u"].as_array().into_iter().flatten() {
                counts.insert(entry["_id"].as_str().unwrap_or("").to_string(), entry["count"].as_u64().unwrap_or(0));
            }
        }
        counts.get("room one") == Some(&2) && counts.get("room two") == Some(&1)
    })
    .unwrap_or_else(|| panic!("ls never listed both rooms with their counts: {counts:?}"));

    // The crown passes across nodes; the new holder (on n2) kickbans a user of n1.
    alice.send(json!({"m": "chown", "id": bob.id}));
    bob.until(|m| m["m"] == "ch" && m["ch"]["crown"]["participantId"] == bob_id.as_str()).expect("bob holds the crown");
    let mut erin = User::connect(15, &n1);
    erin.join("room one");
    bob.until(|m| m["m"] == "p" && m["id"] == erin.id.as_str()).expect("bob sees erin");
    bob.send(json!({"m": "kickban", "_id": erin.id, "ms": 60_000}));
    erin.until(|m| m["m"] == "notification" && m["text"].as_str().is_some_and(|t| t.starts_with("Banned from")))
        .expect("erin is told of the ban");
    erin.until(|m| m["m"] == "ch" && m["ch"]["_id"] == "test/awkward").expect("erin is moved out");
    alice.until(|m| m["m"] == "bye" && m["p"] == erin.id.as_str()).expect("alice sees erin leave");
    assert!(erin.refused_from("room one"), "erin was never refused");
    // The crown holder on n2 lifts the ban of the user on n1, who may come back.
    bob.send(json!({"m": "unban", "_id": erin.id}));
    let deadline = Instant::now() + CROSS;
    loop {
        erin.send(json!({"m": "ch", "_id": "room one"}));
        if erin.until_within(Duration::from_millis(600), |m| m["m"] == "ch" && m["ch"]["_id"] == "room one").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "erin could not come back after the unban");
    }
    bob.until(|m| m["m"] == "p" && m["id"] == erin.id.as_str()).expect("bob sees erin back");

    // A name set on n3 holds on n1 (and is stored site-wide).
    carol.send(json!({"m": "userset", "set": {"name": "Carol"}}));
    carol.until(|m| m["m"] == "p" && m["name"] == "Carol").expect("carol's own echo");
    let deadline = Instant::now() + CROSS;
    loop {
        let again = User::connect(13, &n1);
        let mut c = again.client;
        c.send(&[json!({"m": "ch", "_id": "room two"})]);
        let named = User { client: c, id: again.id }
            .until_within(Duration::from_secs(2), |m| m["m"] == "ch" && ids_in(m).len() == 1)
            .is_some_and(|ch| ch["ppl"][0]["name"] == "Carol");
        if named {
            break;
        }
        assert!(Instant::now() < deadline, "carol's name never reached n1");
    }

    // Two nodes claim one new room at the same moment: one of them owns it, and both users meet
    // there (neither runs a room of its own).
    for k in 0..4u8 {
        let room = format!("race {k}");
        let mut r1 = User::connect(60 + k, &n1);
        let mut r3 = User::connect(70 + k, &n3);
        r1.send(json!({"m": "ch", "_id": room}));
        r3.send(json!({"m": "ch", "_id": room}));
        let (id1, id3) = (r1.id.clone(), r3.id.clone());
        for (me, other) in [(&mut r1, id3), (&mut r3, id1)] {
            me.until(|m| {
                (m["m"] == "ch" && ids_in(m).contains(&other)) || (m["m"] == "p" && m["id"] == other.as_str())
            })
            .unwrap_or_else(|| panic!("the two claimants of {room:?} never met"));
        }
    }

    // A busy room owned by n2, with members on every node; a quiet room owned by n1.
    let mut b2 = User::connect(21, &n2);
    b2.join("busy");
    let mut b1 = User::connect(22, &n1);
    b1.join("busy");
    let mut b3 = User::connect(23, &n3);
    let ch = b3.join("busy");
    assert_eq!(ids_in(&ch).len(), 3, "three in busy: {ch}");
    let mut q1 = User::connect(31, &n1);
    q1.join("quiet");
    let mut q3 = User::connect(33, &n3);
    q3.join("quiet");
    assert!(q3.chat_until_heard("quiet before", &mut q1));

    // b2 (on n2, the crown holder of busy) bans a user of n3 from it. The ban is stored
    // site-wide, so it outlives the room's owner: both survivors have it on disk before the kill.
    let mut x3 = User::connect(24, &n3);
    x3.join("busy");
    let x3_id = x3.id.clone();
    b2.until(|m| m["m"] == "p" && m["id"] == x3_id.as_str()).expect("b2 sees x3");
    b2.send(json!({"m": "kickban", "_id": x3_id, "ms": 600_000}));
    x3.until(|m| m["m"] == "ch" && m["ch"]["_id"] == "test/awkward").expect("x3 is moved out");
    survivors_store(&data, "the ban of x3", |state| state.contains(&x3_id));
    // b2 also bans y3 and lifts the ban again: the lift is site-wide too.
    let mut y3 = User::connect(25, &n3);
    y3.join("busy");
    let y3_id = y3.id.clone();
    b2.until(|m| m["m"] == "p" && m["id"] == y3_id.as_str()).expect("b2 sees y3");
    b2.send(json!({"m": "kickban", "_id": y3_id, "ms": 600_000}));
    y3.until(|m| m["m"] == "ch" && m["ch"]["_id"] == "test/awkward").expect("y3 is moved out");
    survivors_store(&data, "the ban of y3", |state| state.contains(&y3_id));
    b2.send(json!({"m": "unban", "_id": y3_id}));
    survivors_store(&data, "the end of y3's ban", |state| !state.contains(&y3_id));
    let deadline = Instant::now() + CROSS;
    while y3
        .until_within(Duration::from_millis(600), |m| m["m"] == "ch" && m["ch"]["_id"] == "busy" && m["p"].is_string())
        .is_none()
    {
        assert!(Instant::now() < deadline, "y3 could not come back after the unban");
        y3.send(json!({"m": "ch", "_id": "busy"}));
    }

    n2.signal("KILL");
    let killed = Instant::now();
    n2.wait_exit();
    // b2's client reconnects to a survivor and finds the room with its members.
    let mut b2 = User::connect(21, &n1);
    let deadline = Instant::now() + CROSS;
    let mut seen = std::collections::BTreeSet::new();
    let b2_id = b2.id.clone();
    b2.send(json!({"m": "ch", "_id": "busy"}));
    while seen.len() < 3 && Instant::now() < deadline {
        let _ = b2.until_within(Duration::from_millis(500), |m| {
            if m["m"] == "ch" && m["ch"]["_id"] == "busy" {
                seen.extend(ids_in(m));
            }
            if m["m"] == "p" {
                seen.extend(m["id"].as_str().map(str::to_string));
            }
            false
        });
    }
    assert!(seen.contains(&b1.id) && seen.contains(&b3.id) && seen.contains(&b2_id), "busy after the kill: {seen:?}");
    assert!(b1.chat_until_heard("busy after", &mut b3), "busy carries chat again");
    let _ = writeln!(
        std::io::stderr(),
        "cluster: busy room back for its members {:?} after its owner was killed",
        killed.elapsed()
    );
    // y3's session moves to the new owner too, and the lifted ban stays lifted there.
    let y3_back = y3.until(|m| (m["m"] == "ch" && m["ch"]["_id"] == "busy" && m["p"].is_string()) || is_ban_refusal(m));
    assert_eq!(y3_back.map(|m| m["m"].clone()), Some(json!("ch")), "y3 is back in busy on its new owner");
    // The ban set on the dead owner holds on the new one.
    assert!(x3.refused_from("busy"), "x3's ban did not survive its room's owner");
    // The quiet room saw nothing of it: nobody left, chat still flows.
    assert!(q1.until_within(Duration::from_millis(200), |m| m["m"] == "bye").is_none(), "quiet room lost nobody");
    assert!(q3.chat_until_heard("quiet after", &mut q1));

    // NATS restarts: the site recovers on its own.
    nats.kill();
    nats.spawn();
    let mut f1 = User::connect(41, &n1);
    f1.join("after");
    let mut f3 = User::connect(43, &n3);
    let deadline = Instant::now() + CROSS;
    loop {
        let ch = f3.join("after");
        if ids_in(&ch).len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "a room across nodes never worked again after NATS restarted: {ch}");
        f3 = User::connect(43, &n3);
    }
    assert!(f3.chat_until_heard("after restart", &mut f1));
    assert!(q3.chat_until_heard("quiet after restart", &mut q1));

    // A node that never saw carol, started after NATS restarted, knows her name: names live in
    // the site's store, not only in the nodes that saw them change.
    let n4 = start_node(&nats, "n4", &data);
    let deadline = Instant::now() + CROSS;
    loop {
        let mut again = User::connect(13, &n4);
        again.send(json!({"m": "ch", "_id": "carol's new room"}));
        let named = again
            .until_within(Duration::from_secs(2), |m| m["m"] == "ch" && ids_in(m).len() == 1)
            .is_some_and(|ch| ch["ppl"][0]["name"] == "Carol");
        if named {
            break;
        }
        assert!(Instant::now() < deadline, "a new node never learnt carol's name");
    }
    drop(n4);

    n1.signal("TERM");
    assert!(n1.wait_exit().success());
    let check = process::mppd_command().arg("replay").arg(&recording).arg("--check").output().expect("run mppd replay");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success() && stderr.contains("all outputs identical"), "replay of n1: {stderr}");
    let recorded = std::fs::read_to_string(&recording).expect("the recording");
    assert!(recorded.contains(r#""in":"restore""#), "n1 learnt names and bans from the others");
    drop(n3);
    let _ = std::fs::remove_dir_all(&data);
}

/// A TCP relay between one node and NATS that can cut the link: while cut, every relayed
/// connection is shut down and new ones are dropped at once.
struct Link {
    port: u16,
    open: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Link {
    fn to(nats_port: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the link");
        let port = listener.local_addr().expect("its address").port();
        let open = Arc::new(AtomicBool::new(true));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (open2, streams2) = (open.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !open2.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", nats_port)) else { continue };
                let pairs = [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())];
                for (from, to) in pairs {
                    if let (Ok(mut from), Ok(mut to)) = (from, to) {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(Shutdown::Both);
                        });
                    }
                }
                let mut kept = streams2.lock().expect("the stream list");
                kept.push(client);
                kept.push(server);
            }
        });
        Link { port, open, streams }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for stream in self.streams.lock().expect("the stream list").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_node_cut_off_from_nats_for_five_seconds_rejoins_its_rooms() {
    cut_and_heal("cluster-cut-5", Duration::from_secs(5));
}

#[test]
fn a_node_cut_off_from_nats_for_a_minute_rejoins_its_rooms() {
    cut_and_heal("cluster-cut-60", Duration::from_secs(60));
}

/// Two nodes; the owner of a room shared by both loses its link to NATS for `cut`, then gets it
/// back. Clients keep their sockets (and ping as clients do) throughout.
fn cut_and_heal(name: &str, cut: Duration) {
    let Some(binary) = nats_binary() else {
        let _ =
            writeln!(std::io::stderr(), "SKIPPED: cluster: nats-server is not installed (Debian package nats-server)");
        return;
    };
    let data = temp_dir(name);
    let nats = Nats::start(binary, &data.join("nats"));
    let link = Link::to(nats.port);
    let n1 = start_node(&nats, "n1", &data);
    let n2 = start_node_at(&link.url(), "n2", &data);

    // The room is n2's (its first member is there); a member on n1 plays in it through n2.
    let mut u2 = User::connect(52, &n2);
    u2.join("cut room");
    let mut u1 = User::connect(51, &n1);
    let ch = u1.join("cut room");
    assert_eq!(ids_in(&ch).len(), 2, "both in the room before the cut: {ch}");
    assert!(u1.chat_until_heard("before the cut", &mut u2));

    link.cut();
    let cut_at = Instant::now();
    // n1 takes the room over once n2 is silent; u1 keeps a room to play in meanwhile.
    u1.until(|m| m["m"] == "ch" && m["ch"]["_id"] == "cut room" && m["p"].is_string())
        .expect("u1 is moved to the room's new owner");
    // The cut lasts `cut` in all (the scenario, not a wait for something to happen); clients
    // ping every 10 s as browsers do (every 20 s), so nobody times out meanwhile.
    while cut_at.elapsed() < cut {
        u1.send(json!({"m": "t", "e": 1}));
        u2.send(json!({"m": "t", "e": 1}));
        std::thread::sleep((cut_at + cut).saturating_duration_since(Instant::now()).min(Duration::from_secs(10)));
    }
    link.heal();

    // Back together: n2 finds its lease taken and hands u2's session to the new owner.
    let u1_id = u1.id.clone();
    u2.until(|m| (m["m"] == "ch" && ids_in(m).contains(&u1_id)) || (m["m"] == "p" && m["id"] == u1_id.as_str()))
        .expect("u2 sees u1 again after the link healed");
    assert!(u1.chat_until_heard("after the cut", &mut u2), "chat from n1 to n2");
    assert!(u2.chat_until_heard("after the cut, back", &mut u1), "chat from n2 to n1");
    drop(n1);
    drop(n2);
    let _ = std::fs::remove_dir_all(&data);
}

/// Waits until the state files of the surviving nodes n1 and n3 satisfy `stored`.
fn survivors_store(data: &Path, what: &str, stored: impl Fn(&str) -> bool) {
    for name in ["n1", "n3"] {
        let state = data.join(name).join("state.json");
        let deadline = Instant::now() + CROSS;
        while !std::fs::read_to_string(&state).is_ok_and(|text| stored(&text)) {
            assert!(Instant::now() < deadline, "{name} never stored {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
