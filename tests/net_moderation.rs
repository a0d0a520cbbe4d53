//! Owner-controlled rooms over real 127.0.0.1 sockets against the real event loop: the flows a
//! user sees when banned and refused, when a crown falls and is picked up, and when a DM arrives.

mod common;

use common::{Client, TestServer, test_config};
use mppd::Config;
use mppd::config::Rate;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

/// `hi` with `customId` k is the k-th user of the one test address; `ch` is not rate limited
/// (the flows below change rooms faster than a person would).
fn config() -> Config {
    let mut config = test_config();
    config.core.random_ids = false;
    config.core.custom_id_limit = 16;
    config.core.ch_rate = Rate::new(1_000, 500);
    config
}

/// Connects as user `k` and returns the client with its user id.
fn user(addr: SocketAddr, k: u32) -> (Client, String) {
    let mut client = Client::connect(addr);
    assert_eq!(client.recv_json(), [json!({"m": "b", "code": "~return true"})]);
    client.send(&[json!({"m": "hi", "customId": k})]);
    let hi = client.recv_json();
    assert_eq!(hi[0]["m"], "hi");
    let id = hi[0]["u"]["_id"].as_str().expect("u._id").to_string();
    (client, id)
}

/// Sends a ping with a fresh marker and returns every message that arrived before its answer,
/// and the answer's server time. The server handles each client's messages in order, so
/// everything caused by this client's earlier messages is in the list.
fn sync(client: &mut Client, marker: u32) -> (Vec<Value>, u64) {
    client.send(&[json!({"m": "t", "e": marker})]);
    let mut before = Vec::new();
    loop {
        for message in client.recv_json() {
            if message["m"] == "t" && message["e"] == marker {
                return (before, message["t"].as_u64().expect("server time"));
            }
            before.push(message);
        }
    }
}

/// The messages before the answer to a fresh ping.
fn drain(client: &mut Client, marker: u32) -> Vec<Value> {
    sync(client, marker).0
}

fn names(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["m"].as_str().unwrap_or("?")).collect()
}

fn notice(text: &str) -> Value {
    json!({"m": "notification", "title": "Notice", "text": text, "duration": 7000, "target": "#room", "class": "short"})
}

#[test]
fn a_kickbanned_user_lands_in_awkward_and_is_refused_until_unbanned() {
    let server = TestServer::start(config());
    let (mut owner, owner_id) = user(server.addr(), 1);
    let (mut guest, guest_id) = user(server.addr(), 2);
    owner.send(&[json!({"m": "ch", "_id": "ban room"})]);
    assert_eq!(names(&drain(&mut owner, 1)), ["ch", "c", "nq"]);
    guest.send(&[json!({"m": "ch", "_id": "ban room"})]);
    assert_eq!(names(&drain(&mut guest, 1)), ["ch", "c", "nq"]);
    assert_eq!(names(&drain(&mut owner, 2)), ["p"]);

    owner.send(&[json!({"m": "kickban", "_id": guest_id, "ms": 120_000})]);
    let to_owner = drain(&mut owner, 3);
    assert_eq!(to_owner.len(), 3, "{to_owner:?}");
    assert_eq!(to_owner[0], json!({"m": "bye", "p": guest_id}));
    assert_eq!(to_owner[1], notice("Anonymous banned Anonymous from the channel for 2 minutes."));
    assert_eq!(to_owner[2]["m"], "a");
    assert_eq!(to_owner[2]["a"], "Banned Anonymous from the channel for 2 minutes.");
    assert_eq!(to_owner[2]["p"]["_id"], owner_id.as_str());

    let to_guest = drain(&mut guest, 2);
    assert_eq!(names(&to_guest), ["notification", "ch", "c", "nq"]);
    assert_eq!(to_guest[0], notice("Banned from \"ban room\" for 2 minutes."));
    assert_eq!(to_guest[1]["ch"]["_id"], "test/awkward");
    assert_eq!(to_guest[1]["p"], guest_id.as_str());
    assert_eq!(to_guest[3], json!({"m": "nq", "allowance": 200, "max": 600, "maxHistLen": 3}));

    // Asking to go back: refused, with the time left.
    guest.send(&[json!({"m": "ch", "_id": "lobby"})]);
    assert_eq!(names(&drain(&mut guest, 3)), ["ch", "c", "nq"]);
    guest.send(&[json!({"m": "ch", "_id": "ban room"})]);
    let refused = drain(&mut guest, 4);
    assert_eq!(names(&refused), ["notification", "ch", "c", "nq"]);
    assert_eq!(refused[0], notice("Currently banned from \"ban room\" for 2 minutes."));
    assert_eq!(refused[1]["ch"]["_id"], "test/awkward");
    // The room never saw the attempt.
    assert_eq!(drain(&mut owner, 4), Vec::<Value>::new());

    // Unbanned: the next attempt gets in.
    owner.send(&[json!({"m": "unban", "_id": guest_id})]);
    assert_eq!(drain(&mut owner, 5), Vec::<Value>::new());
    guest.send(&[json!({"m": "ch", "_id": "ban room"})]);
    let joined = drain(&mut guest, 5);
    assert_eq!(names(&joined), ["ch", "c", "nq"]);
    assert_eq!(joined[0]["ch"]["_id"], "ban room");
    assert_eq!(joined[0]["ch"]["count"], 2);
    let back = drain(&mut owner, 6);
    assert_eq!(names(&back), ["p"]);
    assert_eq!(back[0]["id"], guest_id.as_str());
}

#[test]
fn a_dropped_crown_can_be_picked_up_by_someone_else_after_the_pickup_delay() {
    const PICKUP_MS: u64 = 600;
    let mut config = config();
    config.core.crown_pickup_ms = PICKUP_MS;
    let server = TestServer::start(config);
    let (mut owner, owner_id) = user(server.addr(), 1);
    let (mut guest, guest_id) = user(server.addr(), 2);
    owner.send(&[json!({"m": "ch", "_id": "crown room"})]);
    drain(&mut owner, 1);
    guest.send(&[json!({"m": "ch", "_id": "crown room"})]);
    drain(&mut guest, 1);

    // The holder leaves: the crown falls where its (never moved) cursor was.
    owner.send(&[json!({"m": "ch", "_id": "elsewhere"})]);
    drain(&mut owner, 2);
    let fell = drain(&mut guest, 2);
    assert_eq!(names(&fell), ["bye", "ch"]);
    assert_eq!(fell[0]["p"], owner_id.as_str());
    let crown = &fell[1]["ch"]["crown"];
    assert!(fell[1].get("p").is_none());
    assert_eq!(crown["userId"], owner_id.as_str());
    assert!(crown.get("participantId").is_none());
    assert_eq!(crown["startPos"], json!({"x": 200, "y": 100}));
    assert_eq!(crown["endPos"]["x"], 90);
    let dropped_at = crown["time"].as_u64().expect("crown.time is server ms");

    // Too early: ignored (checked only if this machine answered within the delay).
    guest.send(&[json!({"m": "chown", "id": guest_id})]);
    let (early, server_now) = sync(&mut guest, 3);
    if server_now < dropped_at + PICKUP_MS {
        assert_eq!(early, Vec::<Value>::new());
    }

    // After the delay: the guest holds it and gets the crown-holder quota.
    let left = (dropped_at + PICKUP_MS).saturating_sub(server_now);
    std::thread::sleep(Duration::from_millis(left + 50));
    guest.send(&[json!({"m": "chown", "id": guest_id})]);
    let picked = drain(&mut guest, 4);
    assert_eq!(names(&picked), ["ch", "nq"]);
    let crown = &picked[0]["ch"]["crown"];
    assert_eq!((&crown["userId"], &crown["participantId"]), (&json!(guest_id), &json!(guest_id)));
    assert!(crown["time"].as_u64().expect("crown.time") >= dropped_at + PICKUP_MS);
    assert_eq!(picked[1], json!({"m": "nq", "allowance": 600, "max": 1800, "maxHistLen": 3}));

    // The former holder comes back to a held crown: it stays with the guest.
    owner.send(&[json!({"m": "ch", "_id": "crown room"})]);
    let back = drain(&mut owner, 3);
    assert_eq!(names(&back), ["ch", "c", "nq"]);
    assert_eq!(back[0]["ch"]["crown"]["participantId"], guest_id.as_str());
    assert_eq!(back[2], json!({"m": "nq", "allowance": 400, "max": 1200, "maxHistLen": 3}));
}

#[test]
fn a_dm_reaches_the_recipients_tabs_and_echoes_to_the_sender_only() {
    let server = TestServer::start(config());
    let (mut alice, alice_id) = user(server.addr(), 1);
    let (mut bob, bob_id) = user(server.addr(), 2);
    let (mut bob_tab, same) = user(server.addr(), 2);
    assert_eq!(same, bob_id);
    let (mut carol, _) = user(server.addr(), 3);
    for client in [&mut alice, &mut bob, &mut bob_tab, &mut carol] {
        client.send(&[json!({"m": "ch", "_id": "dm room"})]);
        drain(client, 1);
    }
    for client in [&mut alice, &mut bob, &mut bob_tab, &mut carol] {
        drain(client, 2);
    }

    alice.send(&[json!({"m": "dm", "_id": bob_id, "message": "psst", "reply_to": "e20f2a11"})]);
    let echo = drain(&mut alice, 3);
    assert_eq!(echo.len(), 1, "{echo:?}");
    let dm = &echo[0];
    assert_eq!(dm["m"], "dm");
    assert_eq!(dm["a"], "psst");
    assert_eq!(dm["r"], "e20f2a11");
    assert_eq!(dm["sender"]["_id"], alice_id.as_str());
    assert_eq!(dm["recipient"]["_id"], bob_id.as_str());
    assert!(dm["sender"].get("x").is_none());
    assert_eq!(drain(&mut bob, 3), echo);
    assert_eq!(drain(&mut bob_tab, 3), echo);
    assert_eq!(drain(&mut carol, 3), Vec::<Value>::new());

    // Not in the history a newcomer gets.
    let (mut dave, _) = user(server.addr(), 4);
    dave.send(&[json!({"m": "ch", "_id": "dm room"})]);
    let joined = drain(&mut dave, 1);
    assert_eq!(joined[1], json!({"m": "c", "c": []}));
}
