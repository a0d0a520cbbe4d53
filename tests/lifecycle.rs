//! The real binary across restarts: names, colours and bans survive SIGKILL once saved and
//! SIGTERM saves the latest state; SIGTERM closes every client with 4000 and exits 0 quickly;
//! a corrupt state file is moved aside and the server starts clean.

mod common;
mod process;

use common::Client;
use process::{Mppd, WAIT, connect_from, temp_dir};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// A client connected from 127.0.0.`host`, after `hi`; returns it with its user id.
fn user(server: &Mppd, host: u8) -> (Client, String) {
    let stream = connect_from([127, 0, 0, host], server.addr);
    let mut client = Client::handshake(stream, server.addr, "/");
    client.send(&[json!({"m": "hi"})]);
    let hi = client.expect_message("hi");
    let id = hi["u"]["_id"].as_str().expect("an id").to_string();
    (client, id)
}

fn hi_user(hi: &Value) -> (&str, &str) {
    (hi["u"]["name"].as_str().unwrap_or_default(), hi["u"]["color"].as_str().unwrap_or_default())
}

fn start(data: &Path, save_delay_ms: &str) -> Mppd {
    let data = data.to_str().expect("a UTF-8 path");
    Mppd::start(&["--data-dir", data, "--save-delay-ms", save_delay_ms, "--log-level", "debug", "--salt", "t"])
}

#[test]
fn saved_names_and_bans_survive_sigkill() {
    let data = temp_dir("sigkill");
    let mut server = start(&data, "50");
    let (mut owner, _) = user(&server, 2);
    owner.send(&[json!({"m": "userset", "set": {"name": "Keeper", "color": "#123456"}})]);
    owner.send(&[json!({"m": "ch", "_id": "durable room"})]);
    owner.expect_message("ch");
    let (mut victim, victim_id) = user(&server, 3);
    victim.send(&[json!({"m": "ch", "_id": "durable room"})]);
    victim.expect_message("ch");
    owner.send(&[json!({"m": "kickban", "_id": victim_id, "ms": 600_000})]);
    victim.expect_message("notification");
    server.expect_log("(1 names, 1 bans)");
    server.signal("KILL");
    server.wait_exit();
    drop((owner, victim));

    let mut server = start(&data, "50");
    server.expect_log("loaded");
    let (mut owner, _) = user(&server, 2);
    owner.send(&[json!({"m": "ch", "_id": "durable room"})]);
    owner.expect_message("ch");
    let stream = connect_from([127, 0, 0, 2], server.addr);
    let mut again = Client::handshake(stream, server.addr, "/");
    again.send(&[json!({"m": "hi"})]);
    assert_eq!(hi_user(&again.expect_message("hi")), ("Keeper", "#123456"));
    let (mut victim, _) = user(&server, 3);
    victim.send(&[json!({"m": "ch", "_id": "durable room"})]);
    let ch = victim.expect_message("ch");
    assert_eq!(ch["ch"]["_id"], "test/awkward", "the ban outlived the restart");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn sigterm_closes_clients_saves_the_latest_state_and_exits_zero() {
    let data = temp_dir("sigterm");
    // A long save delay: only the shutdown can have saved the rename.
    let mut server = start(&data, "600000");
    let (mut a, _) = user(&server, 4);
    let (mut b, _) = user(&server, 5);
    a.send(&[json!({"m": "userset", "set": {"name": "Last words"}})]);
    a.send(&[json!({"m": "ch", "_id": "lobby"})]);
    a.expect_message("ch");
    let started = Instant::now();
    server.signal("TERM");
    for client in [&mut a, &mut b] {
        let frame = client.expect_close().expect("a close frame");
        assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4000, "Server closing."));
    }
    let status = server.wait_exit();
    let took = started.elapsed();
    assert!(status.success(), "exit status {status:?}");
    // "Within a second" (plus process start-up noise); under emulation only that it ends.
    let bound = if process::emulated() { WAIT } else { Duration::from_millis(1_500) };
    assert!(took < bound, "shutdown took {took:?}");
    let saved = std::fs::read_to_string(data.join("state.json")).expect("state.json written at shutdown");
    assert!(saved.contains("Last words"), "{saved}");

    let server = start(&data, "600000");
    let stream = connect_from([127, 0, 0, 4], server.addr);
    let mut again = Client::handshake(stream, server.addr, "/");
    again.send(&[json!({"m": "hi"})]);
    assert_eq!(hi_user(&again.expect_message("hi")).0, "Last words");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let data = temp_dir("sigint");
    let mut server = start(&data, "50");
    let (mut a, _) = user(&server, 6);
    server.signal("INT");
    assert_eq!(a.expect_close_code(), 4000);
    assert!(server.wait_exit().success());
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_corrupt_state_file_is_moved_aside_and_the_server_starts_clean() {
    let data = temp_dir("corrupt");
    std::fs::write(data.join("state.json"), b"{\"mppd_state\":1,\"profiles\":[{\"id\":").expect("write");
    let mut server = start(&data, "50");
    let line = server.expect_log("ignored because");
    assert!(line.contains("moved it to"), "{line}");
    let aside: Vec<String> = std::fs::read_dir(&data)
        .expect("list the data directory")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let (_, _) = user(&server, 7);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
