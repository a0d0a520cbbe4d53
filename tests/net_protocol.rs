//! The base protocol over real 127.0.0.1 sockets against the real event loop: what each client
//! receives when people join, move, play, chat, leave, open a second tab, or go silent.

mod common;

use common::{Client, TestServer, test_config};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// A server where `hi` with `customId` k is the k-th user of the one test address.
fn server() -> TestServer {
    let mut config = test_config();
    config.core.random_ids = false;
    config.core.custom_id_limit = 16;
    TestServer::start(config)
}

/// Connects as user `k` and returns the client with its user id.
fn user(addr: SocketAddr, k: u32) -> (Client, String) {
    let mut client = Client::connect(addr);
    assert_eq!(client.recv_json(), [json!({"m":"b","code":"~return true"})]);
    client.send(&[json!({"m":"hi","customId":k})]);
    let hi = client.recv_json();
    assert_eq!(hi[0]["m"], "hi");
    let id = hi[0]["u"]["_id"].as_str().expect("u._id").to_string();
    (client, id)
}

/// Joins `room` and returns the `ch` (with own `p`), checking `c` and `nq` follow.
fn join(client: &mut Client, room: &str) -> Value {
    client.send(&[json!({"m":"ch","_id":room})]);
    let first = client.recv_json();
    assert_eq!(first[0]["m"], "ch");
    assert_eq!(first[1]["m"], "c");
    assert_eq!(client.recv_json()[0]["m"], "nq");
    first[0].clone()
}

/// Proves nothing else is queued for this client: the next frame is the answer to a fresh ping.
fn assert_nothing_else(client: &mut Client, marker: u32) {
    client.send(&[json!({"m":"t","e":marker})]);
    let frame = client.recv_json();
    assert_eq!(frame.len(), 1, "unexpected: {frame:?}");
    assert_eq!(frame[0]["m"], "t", "unexpected: {frame:?}");
    assert_eq!(frame[0]["e"], marker);
}

#[test]
fn two_users_see_each_other_move_play_and_chat_and_a_third_room_sees_nothing() {
    let server = server();
    let (mut alice, ida) = user(server.addr(), 1);
    let (mut bob, idb) = user(server.addr(), 2);
    let (mut carol, _) = user(server.addr(), 3);
    join(&mut carol, "elsewhere");
    let ch = join(&mut alice, "music room");
    assert_eq!(ch["p"], ida.as_str());
    assert_eq!(ch["ch"]["crown"]["userId"], ida.as_str());
    let ch = join(&mut bob, "music room");
    assert_eq!(ch["p"], idb.as_str());
    let ppl: Vec<&str> = ch["ppl"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ppl, [ida.as_str(), idb.as_str()]);

    let p = alice.recv_json();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["m"], "p");
    assert_eq!((&p[0]["id"], &p[0]["_id"]), (&json!(idb), &json!(idb)));
    assert_eq!((&p[0]["name"], &p[0]["x"], &p[0]["y"]), (&json!("Anonymous"), &json!(200), &json!(100)));

    bob.send(&[json!({"m":"m","x":"50.30","y":"26.49"})]);
    assert_eq!(alice.recv_json(), [json!({"m":"m","id":idb,"x":"50.30","y":"26.49"})]);

    alice.send_text(r#"[{"m":"n","t":1700000000000.25,"n":[{"n":"a1","v":0.5},{"n":"a1","s":1,"d":120}]}]"#);
    let n = bob.recv_json();
    assert_eq!(
        n,
        [json!({"m":"n","t":1700000000000.25_f64,"p":ida,"n":[{"n":"a1","v":0.5},{"n":"a1","d":120,"s":1}]})]
    );

    bob.send(&[json!({"m":"a","message":"hello there"})]);
    let to_bob = bob.recv_json();
    let to_alice = alice.recv_json();
    assert_eq!(to_bob, to_alice);
    assert_eq!(to_bob[0]["a"], "hello there");
    assert_eq!(to_bob[0]["p"]["_id"], idb.as_str());

    // Nothing was echoed where it must not be, and the other room heard nothing at all.
    assert_nothing_else(&mut alice, 1);
    assert_nothing_else(&mut bob, 2);
    assert_nothing_else(&mut carol, 3);
}

#[test]
fn leaving_sends_bye_and_the_empty_room_leaves_the_list() {
    let server = server();
    let (mut watcher, _) = user(server.addr(), 1);
    let (mut alice, _) = user(server.addr(), 2);
    let (mut bob, idb) = user(server.addr(), 3);
    join(&mut alice, "room");
    join(&mut bob, "room");
    alice.expect_message("p");
    watcher.send(&[json!({"m":"+ls"})]);
    let ls = watcher.recv_json();
    assert_eq!(ls[0]["c"], true);
    assert_eq!(ls[0]["u"][0]["_id"], "room");
    assert_eq!(ls[0]["u"][0]["count"], 2);

    bob.send(&[json!({"m":"bye"})]);
    assert_eq!(bob.expect_close_code(), 1000);
    assert_eq!(alice.recv_json(), [json!({"m":"bye","p":idb})]);
    let ls = watcher.recv_json();
    assert_eq!((ls[0]["c"].clone(), ls[0]["u"][0]["count"].clone()), (json!(false), json!(1)));

    drop(alice);
    let ls = watcher.recv_json();
    assert_eq!(ls[0]["u"][0]["_id"], "room");
    assert_eq!(ls[0]["u"][0]["count"], 0);
    watcher.send(&[json!({"m":"+ls"})]);
    assert_eq!(watcher.recv_json()[0]["u"], json!([]));
}

#[test]
fn two_tabs_of_one_user_are_one_participant() {
    let server = server();
    let (mut other, _) = user(server.addr(), 9);
    join(&mut other, "room");
    let (mut tab1, id) = user(server.addr(), 1);
    join(&mut tab1, "room");
    assert_eq!(other.recv_json()[0]["m"], "p");
    let (mut tab2, id2) = user(server.addr(), 1);
    assert_eq!(id, id2);
    let ch = join(&mut tab2, "room");
    assert_eq!(ch["p"], id.as_str());
    assert_eq!(ch["ch"]["count"], 2);

    tab1.send_text(r#"[{"m":"n","t":5,"n":[{"n":"c4"}]}]"#);
    assert_eq!(tab2.recv_json()[0]["p"], id.as_str());
    assert_eq!(other.recv_json()[0]["m"], "n");
    assert_nothing_else(&mut tab1, 1);

    drop(tab1);
    // No bye while the second tab stays; the ping below would arrive after one.
    assert_nothing_else(&mut other, 2);
    drop(tab2);
    assert_eq!(other.recv_json(), [json!({"m":"bye","p":id})]);
}

#[test]
fn a_client_that_stops_pinging_is_closed_with_4004() {
    let mut config = test_config();
    config.core.ping_timeout_ms = 300;
    let server = TestServer::start(config);
    let mut quiet = Client::connect(server.addr());
    quiet.recv_json();
    quiet.send(&[json!({"m":"hi"})]);
    quiet.recv_json();
    let close = quiet.expect_close().expect("a close frame");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (4004, "Timed out."));
}
