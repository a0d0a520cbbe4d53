//! A reader that falls behind: droppable frames (cursor moves) are skipped for it, and past the
//! hard cap of its outgoing queue it is closed with 4003.

mod common;

use common::{Client, TestServer, test_config};
use mppd::Config;
use mppd::config::Rate;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tungstenite::Message;

/// Limits that a test flood reaches quickly, with the core's own rate limits out of the way.
fn flood_config() -> Config {
    let mut config = test_config();
    config.send_queue_soft_bytes = 16 * 1024;
    config.send_queue_hard_bytes = 64 * 1024;
    config.write_buffer_bytes = 4 * 1024;
    config.close_linger_ms = 5_000;
    config.core.connection_messages = Rate::new(u32::MAX, 1_000);
    config.core.connection_bytes = Rate::new(u32::MAX, 1_000);
    config.core.chat_rate = Rate::new(u32::MAX, 1_000);
    config.core.ch_rate = Rate::new(u32::MAX, 1_000);
    config.core.cursor_interval_ms = 0;
    config
}

/// Bytes that surely exceed what the kernel holds for a client with a small receive window
/// that does not read: the largest send buffer the server's socket can grow to, plus a margin.
fn more_than_the_kernel_holds() -> usize {
    let largest_send_buffer = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|n| n.parse().ok()))
        .unwrap_or(4 << 20);
    largest_send_buffer * 5 / 4 + (512 << 10)
}

/// Makes `client` the recipient of at least `bytes` that cannot be dropped, from one small
/// frame: it hops between two rooms whose full chat histories come with every join. Returns the
/// clients that keep the rooms alive and the room `client` ends up in.
fn history_flood(addr: SocketAddr, client: &mut Client, bytes: usize) -> (Vec<Client>, &'static str) {
    const ROOMS: [&str; 2] = ["test/history-a", "test/history-b"];
    let line = json!({"m": "a", "message": "la".repeat(250)});
    let mut keepers = Vec::new();
    for room in ROOMS {
        let mut keeper = Client::connect(addr);
        join(&mut keeper, room);
        keeper.send(&vec![line.clone(); HISTORY_LINES]);
        for _ in 0..HISTORY_LINES {
            keeper.expect_message("a");
        }
        keepers.push(keeper);
    }
    // An odd number of hops ends in the first room.
    let hops = bytes.div_ceil(HISTORY_LINES * 600) | 1;
    let frame: Vec<Value> = (0..hops).map(|i| json!({"m": "ch", "_id": ROOMS[i % 2]})).collect();
    client.send(&frame);
    // Once another connection's answer is written, the server has handled the whole frame.
    keepers[0].send(&[json!({"m": "t", "e": 1})]);
    keepers[0].expect_message("t");
    (keepers, ROOMS[0])
}

/// Chat lines a room keeps and sends to each newcomer.
const HISTORY_LINES: usize = 32;

fn join(client: &mut Client, channel: &str) {
    client.recv_json();
    client.send(&[json!({"m": "hi"}), json!({"m": "ch", "_id": channel})]);
    client.expect_message("ch");
}

#[test]
fn cursor_moves_are_dropped_for_a_reader_that_falls_behind() {
    let mut config = flood_config();
    // Far behind, but not so far that it is closed.
    config.send_queue_hard_bytes = 1 << 30;
    let server = TestServer::start(config);
    let mut slow = Client::connect_small_window(server.addr());
    join(&mut slow, "test/slow");
    // `slow` stops reading and gets its socket and its queue filled past the soft cap.
    let (_keepers, room) = history_flood(server.addr(), &mut slow, more_than_the_kernel_holds());

    let mut mover = Client::connect(server.addr());
    join(&mut mover, room);
    let moves: Vec<Value> = (0..1_000).map(|i| json!({"m": "m", "x": i % 100, "y": 50})).collect();
    mover.send(&moves);
    mover.send(&[json!({"m": "a", "message": "after the moves"})]);
    mover.expect_message("a");

    let mut moves_received = 0;
    loop {
        match slow.recv() {
            Message::Text(text) => {
                moves_received += text.matches(r#"{"m":"m""#).count();
                if text.contains("after the moves") {
                    break;
                }
            }
            Message::Close(frame) => panic!("the slow reader was closed: {frame:?}"),
            _ => {}
        }
    }
    assert_eq!(moves_received, 0, "cursor moves were queued for a reader far behind");
}

#[test]
fn a_reader_over_the_hard_cap_is_closed_with_4003() {
    let server = TestServer::start(flood_config());
    let mut slow = Client::connect_small_window(server.addr());
    join(&mut slow, "test/slow");
    let (mut keepers, _) = history_flood(server.addr(), &mut slow, more_than_the_kernel_holds());
    let frame = slow.expect_close().expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 4003);
    assert_eq!(frame.reason.as_str(), "Message buffer length exceeded 65536.");
    // The clients that read keep being served.
    for (i, keeper) in keepers.iter_mut().enumerate() {
        keeper.send(&[json!({"m": "t", "e": 100 + i})]);
        loop {
            if keeper.expect_message("t")["e"] == 100 + i {
                break;
            }
        }
    }
}
