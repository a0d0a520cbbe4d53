//! Snapshot and restore of the persistent state (names, colours, room bans): what a restarted
//! server gets back, and when the shell is told to save.

mod core_support;

use core_support::{Sim, T0, ip};
use mppd::core::{Millis, SavedBan, SavedProfile, Snapshot};
use serde_json::json;

fn send(sim: &mut Sim, conn: mppd::ConnId, msg: serde_json::Value) {
    sim.send(conn, &json!([msg]).to_string());
}

/// A room "r" owned by one user with a second user banned from it for `ms`.
fn room_with_ban(sim: &mut Sim, ms: u64) -> (String, String) {
    let (owner, owner_id) = sim.join(&ip(1), "r");
    let (_, banned_id) = sim.join(&ip(2), "r");
    sim.advance(1_000);
    send(sim, owner, json!({"m": "kickban", "_id": banned_id, "ms": ms}));
    (owner_id, banned_id)
}

#[test]
fn snapshot_holds_profiles_and_live_bans_in_a_stable_order() {
    let mut sim = Sim::new();
    let (a, _) = sim.hi(&ip(3));
    let (b, _) = sim.hi(&ip(4));
    let generation = sim.core.persist_generation();
    send(&mut sim, b, json!({"m": "userset", "set": {"name": "Bee", "color": "#ABCDEF"}}));
    send(&mut sim, a, json!({"m": "userset", "set": {"name": "Ay"}}));
    assert_ne!(sim.core.persist_generation(), generation, "a rename must ask for a save");
    let (_, banned) = room_with_ban(&mut sim, 60_000);
    let snap = sim.core.snapshot(Millis::from_ms(sim.now));
    assert_eq!(snap.profiles.len(), 2);
    assert!(snap.profiles.windows(2).all(|w| w[0].id < w[1].id), "sorted by id");
    assert!(snap.profiles.iter().any(|p| p.name == "Bee" && p.color == "#abcdef"));
    assert_eq!(snap.bans.len(), 1);
    assert_eq!(snap.bans[0].channel, "r");
    assert_eq!(snap.bans[0].user.to_hex(), banned);
    assert_eq!(snap.bans[0].until.as_ms(), sim.now + 60_000);
    // Expired bans are not saved.
    assert!(sim.core.snapshot(snap.bans[0].until).bans.is_empty());
    // The file form round-trips.
    let text = serde_json::to_string(&snap).unwrap();
    assert_eq!(serde_json::from_str::<Snapshot>(&text).unwrap(), snap);
}

#[test]
fn restored_profile_is_used_at_the_next_hi() {
    let mut sim = Sim::new();
    let (conn, id) = sim.hi(&ip(5));
    send(&mut sim, conn, json!({"m": "userset", "set": {"name": "Kept", "color": "#102030"}}));
    let snap = sim.core.snapshot(Millis::from_ms(sim.now));

    let mut restarted = Sim::new();
    restarted.core.restore(snap);
    let conn = restarted.connect(&ip(5));
    send(&mut restarted, conn, json!({"m": "hi"}));
    let hi = restarted.take_m(conn, "hi").pop().unwrap();
    assert_eq!(hi["u"]["_id"], id.as_str());
    assert_eq!(hi["u"]["name"], "Kept");
    assert_eq!(hi["u"]["color"], "#102030");
}

#[test]
fn restored_ban_applies_when_the_room_is_created_again() {
    let mut sim = Sim::new();
    let (_, banned) = room_with_ban(&mut sim, 600_000);
    let snap = sim.core.snapshot(Millis::from_ms(sim.now));

    let mut restarted = Sim::new();
    restarted.now = sim.now + 1_000;
    restarted.core.restore(snap.clone());
    // The banned user cannot create the room either.
    let (c, _) = restarted.hi(&ip(2));
    restarted.ch(c, "r");
    let got = restarted.take(c);
    assert!(got.iter().any(|m| m["m"] == "ch" && m["ch"]["_id"] == "test/awkward"), "{got:?}");
    // Someone else creates it; the ban is applied to the live room and still saved.
    let (_, _) = restarted.join(&ip(1), "r");
    restarted.ch(c, "r");
    let got = restarted.take(c);
    assert!(!got.iter().any(|m| m["m"] == "ch" && m["ch"]["_id"] == "r"), "{got:?}");
    let again = restarted.core.snapshot(Millis::from_ms(restarted.now));
    assert_eq!(again.bans, snap.bans);
    assert_eq!(again.bans[0].user.to_hex(), banned);
}

#[test]
fn expired_restored_bans_are_dropped() {
    let mut sim = Sim::new();
    room_with_ban(&mut sim, 60_000);
    let snap = sim.core.snapshot(Millis::from_ms(sim.now));

    let mut restarted = Sim::new();
    restarted.now = snap.bans[0].until.as_ms() + 1;
    restarted.core.restore(snap);
    let (c, _) = restarted.hi(&ip(2));
    restarted.ch(c, "r");
    let got = restarted.take(c);
    assert!(got.iter().any(|m| m["m"] == "ch" && m["ch"]["_id"] == "r"), "{got:?}");
    assert!(restarted.core.snapshot(Millis::from_ms(restarted.now)).bans.is_empty());
}

#[test]
fn bans_die_with_the_room_and_that_asks_for_a_save() {
    let mut sim = Sim::new();
    let (owner, _) = sim.join(&ip(1), "r");
    let (_, banned) = sim.join(&ip(2), "r");
    sim.advance(1_000);
    send(&mut sim, owner, json!({"m": "kickban", "_id": banned, "ms": 60_000}));
    let generation = sim.core.persist_generation();
    sim.disconnect(owner);
    assert_ne!(sim.core.persist_generation(), generation);
    assert!(sim.core.snapshot(Millis::from_ms(sim.now)).bans.is_empty());
}

#[test]
fn invalid_saved_entries_are_skipped() {
    let id = mppd::core::identity_for_address("s", "10.9.9.9".parse().unwrap(), None).id;
    let snap = Snapshot {
        profiles: vec![
            SavedProfile { id, name: "bad\nname".into(), color: "#000000".into() },
            SavedProfile { id, name: "ok".into(), color: "#fff".into() },
        ],
        bans: vec![SavedBan { channel: "lobby".into(), user: id, until: Millis::from_ms(T0 + 1_000_000) }],
    };
    let mut sim = Sim::new();
    sim.core.restore(snap);
    assert_eq!(sim.core.snapshot(Millis::from_ms(sim.now)), Snapshot::default());
    assert!(
        serde_json::from_str::<Snapshot>(r##"{"profiles":[{"id":"nothex","name":"a","color":"#000000"}]}"##).is_err()
    );
}
