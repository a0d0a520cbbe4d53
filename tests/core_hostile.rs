//! Hostile frames into the pure core (PROTOCOL.md §1.6): deep JSON nesting and huge arrays are
//! handled without a stack overflow, without quadratic work, and without hurting anyone else.

mod core_support;

use core_support::{Sim, ip};
use mppd::config::{CoreConfig, Rate};
use std::time::{Duration, Instant};

/// Generous per-connection caps, so that the frames below reach the handlers.
fn open_config() -> CoreConfig {
    CoreConfig {
        connection_messages: Rate::new(u32::MAX, 10_000),
        connection_bytes: Rate::new(u32::MAX, 10_000),
        ..CoreConfig::default()
    }
}

/// Runs `f` and fails if it takes longer than `limit` (linear work on these sizes takes
/// milliseconds even unoptimised; quadratic work takes minutes).
fn within(limit: Duration, what: &str, f: impl FnOnce()) {
    let started = Instant::now();
    f();
    let took = started.elapsed();
    assert!(took < limit, "{what} took {took:?}");
}

/// Two users in one room; returns the sim, the sender and the listener.
fn room() -> (Sim, mppd::ConnId, mppd::ConnId) {
    let mut sim = Sim::with(open_config());
    let (a, _) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.clear_all();
    (sim, a, b)
}

/// After whatever came before, the sender and the listener still talk.
fn still_served(sim: &mut Sim, a: mppd::ConnId, b: mppd::ConnId) {
    sim.advance(10_000);
    sim.clear_all();
    sim.send(a, r#"[{"m":"a","message":"still here"}]"#);
    let got = sim.take_m(b, "a");
    assert_eq!(got.len(), 1, "the listener no longer hears the sender");
    assert!(sim.is_open(a) && sim.is_open(b));
}

#[test]
fn deeply_nested_arrays_and_objects_are_ignored() {
    let (mut sim, a, b) = room();
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let unclosed = "[".repeat(depth);
    let inside_a_field = format!(
        r#"[{{"m":"custom","data":{}1{},"target":{{"mode":"subscribed"}}}}]"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let inside_notes = format!(r#"[{{"m":"n","t":1,"n":{}{}}}]"#, "[".repeat(depth), "]".repeat(depth));
    within(Duration::from_secs(5), "deep nesting", || {
        for frame in [&arrays, &objects, &unclosed, &inside_a_field, &inside_notes] {
            sim.send(a, frame);
        }
    });
    assert!(sim.take(b).is_empty(), "a deeply nested frame produced output");
    still_served(&mut sim, a, b);
}

#[test]
fn a_hundred_thousand_notes_in_one_message_cost_linear_time() {
    let (mut sim, a, b) = room();
    let note = r#"{"n":"a0","v":0.5}"#;
    let notes = vec![note; 100_000].join(",");
    let frame = format!(r#"[{{"m":"n","t":1,"n":[{notes}]}}]"#);
    within(Duration::from_secs(5), "100k notes", || sim.send(a, &frame));
    // Far over the note quota: refused as a whole, silently.
    assert!(sim.take_m(b, "n").is_empty());
    assert_eq!(sim.core.counters().notes_over_quota, 100_000);
    // Invalid notes in bulk are skipped one by one.
    let junk = vec![r#"{"n":5}"#; 100_000].join(",");
    within(Duration::from_secs(5), "100k invalid notes", || {
        sim.send(a, &format!(r#"[{{"m":"n","t":1,"n":[{junk}]}}]"#))
    });
    still_served(&mut sim, a, b);
}

#[test]
fn a_hundred_thousand_elements_in_one_frame_are_linear() {
    let (mut sim, a, b) = room();
    let frame = format!("[{}]", vec![r#"{"m":"nonexistent"}"#; 100_000].join(","));
    within(Duration::from_secs(5), "100k unknown messages", || sim.send(a, &frame));
    let frame = format!("[{}]", vec!["1"; 100_000].join(","));
    within(Duration::from_secs(5), "100k non-objects", || sim.send(a, &frame));
    let frame = format!("[{}]", vec![r#"{"m":"t","e":1}"#; 100_000].join(","));
    within(Duration::from_secs(5), "100k pings", || sim.send(a, &frame));
    assert_eq!(sim.take_m(a, "t").len(), 100_000);
    still_served(&mut sim, a, b);
}

#[test]
fn huge_arrays_over_the_message_cap_close_with_4007() {
    let mut sim = Sim::with(CoreConfig::default());
    let (a, _) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    let frame = format!("[{}]", vec![r#"{"m":"t","e":1}"#; 100_000].join(","));
    within(Duration::from_secs(5), "100k pings over the cap", || sim.send(a, &frame));
    assert_eq!(sim.closed.get(&a).map(|(code, _)| *code), Some(4007));
    let listener = b;
    let (c, _) = sim.join(&ip(3), "room");
    sim.clear_all();
    sim.send(c, r#"[{"m":"a","message":"after"}]"#);
    assert_eq!(sim.take_m(listener, "a").len(), 1);
}
