//! Structured sequences of operations across several connections: opens, closes, well-formed
//! and malformed messages, time passing; every invariant is checked after each step, and no
//! output may address a connection that is not open.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mppd::config::CoreConfig;
use mppd::{ConnId, Core, Input, Millis, Output, PeerInfo};
use std::collections::BTreeSet;

#[derive(Arbitrary, Debug)]
enum Op {
    Open { conn: u8, ip: u8 },
    Close { conn: u8 },
    Send { conn: u8, message: Message },
    Raw { conn: u8, text: String },
    Advance { ms: u16 },
}

#[derive(Arbitrary, Debug)]
enum Message {
    Hi,
    Ping,
    Ch { room: u8, visible: bool, limit: u8 },
    Chat { text: String },
    Dm { to: u8 },
    Notes { count: u8, d: i16 },
    Cursor { x: f32, y: f32 },
    Userset { name: String },
    Chset { crownsolo: bool, chat: bool },
    Chown { to: Option<u8> },
    Kickban { to: u8, ms: i32 },
    Unban { to: u8 },
    List,
    Unlist,
    Custom { to: u8 },
    Bye,
}

const ROOMS: [&str; 6] = ["lobby", "lobby2", "test/awkward", "room", "other", "test/x"];

/// The user id of test address `ip` under the default salt.
fn user_id(ip: u8) -> String {
    mppd::core::identity_for_address(&CoreConfig::default().id_salt, address(ip), None).id.to_hex()
}

fn address(ip: u8) -> std::net::IpAddr {
    std::net::IpAddr::from([10, 0, 0, ip % 8])
}

fn render(m: &Message) -> String {
    use serde_json::json;
    let v = match m {
        Message::Hi => json!({"m":"hi"}),
        Message::Ping => json!({"m":"t","e":1.5}),
        Message::Ch { room, visible, limit } => json!({"m":"ch","_id":ROOMS[*room as usize % ROOMS.len()],
            "set":{"visible":visible,"limit":limit % 4}}),
        Message::Chat { text } => json!({"m":"a","message":text}),
        Message::Dm { to } => json!({"m":"dm","_id":user_id(*to),"message":"hi"}),
        Message::Notes { count, d } => {
            json!({"m":"n","t":1,"n":vec![json!({"n":"a1","d":d,"v":0.5}); *count as usize % 40]})
        }
        Message::Cursor { x, y } => json!({"m":"m","x":x,"y":y}),
        Message::Userset { name } => json!({"m":"userset","set":{"name":name,"color":"#abcdef"}}),
        Message::Chset { crownsolo, chat } => json!({"m":"chset","set":{"crownsolo":crownsolo,"chat":chat}}),
        Message::Chown { to } => match to {
            Some(to) => json!({"m":"chown","id":user_id(*to)}),
            None => json!({"m":"chown"}),
        },
        Message::Kickban { to, ms } => json!({"m":"kickban","_id":user_id(*to),"ms":ms}),
        Message::Unban { to } => json!({"m":"unban","_id":user_id(*to)}),
        Message::List => json!({"m":"+ls"}),
        Message::Unlist => json!({"m":"-ls"}),
        Message::Custom { to } => json!({"m":"custom","data":{"x":1},"target":{"mode":"id","id":user_id(*to)}}),
        Message::Bye => json!({"m":"bye"}),
    };
    json!([v]).to_string()
}

fuzz_target!(|ops: Vec<Op>| {
    let mut core = Core::new(CoreConfig { lobby_capacity: 3, ..CoreConfig::default() });
    let mut now = Millis::from_ms(1_700_000_000_000);
    let mut open = BTreeSet::new();
    for op in ops.iter().take(500) {
        match op {
            Op::Open { conn, ip } => {
                let conn = ConnId(*conn as usize % 16);
                if open.contains(&conn) {
                    continue;
                }
                open.insert(conn);
                core.handle(now, Input::Open { conn, peer: PeerInfo { ip: address(*ip) } });
            }
            Op::Close { conn } => {
                let conn = ConnId(*conn as usize % 16);
                if !open.remove(&conn) {
                    continue;
                }
                core.handle(now, Input::Closed { conn });
            }
            Op::Send { conn, message } => {
                let conn = ConnId(*conn as usize % 16);
                core.handle(now, Input::Text { conn, text: &render(message) });
            }
            Op::Raw { conn, text } => {
                let conn = ConnId(*conn as usize % 16);
                core.handle(now, Input::Text { conn, text });
            }
            Op::Advance { ms } => {
                now = now.plus(u64::from(*ms) * 10);
                core.handle(now, Input::Tick);
            }
        }
        while let Some(output) = core.poll_output() {
            match output {
                Output::Send { conn, .. } => assert!(open.contains(&conn), "output to closed {conn:?}"),
                Output::Close { conn, .. } => assert!(open.remove(&conn), "close of closed {conn:?}"),
            }
        }
        if let Err(broken) = core.check_invariants() {
            panic!("{broken}");
        }
    }
});
