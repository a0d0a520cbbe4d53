//! The timing rules with clocks and durations that do not fit in 32 bits: ping timeout (§11),
//! note quota refill (§8.1), chat rate windows (§8.3), kickban expiry (§9) and the crown pickup
//! delay (§7), plus the cursor flush timer.
//!
//! Times are `u64` milliseconds everywhere. A `u32` or 32-bit `usize` anywhere on the way would
//! wrap every 2^32 ms (49.7 days), so each rule is run at several starting points: exactly 2^32,
//! windows that straddle a multiple of 2^32 (now, near the 32-bit `time_t` limit of 2038, and
//! in 2100), far in the future, and next to `u64::MAX`. Durations longer than 2^32 ms are
//! checked too. These tests matter most on 32-bit targets (armv7), where `usize` is 32 bits:
//! `scripts/cross-test.sh` runs them there under qemu.

mod core_support;

use core_support::{Sim, ip};
use mppd::ConnId;
use mppd::config::{CoreConfig, Rate};
use serde_json::{Value, json};

const TWO_32: u64 = 1 << 32;
/// 2038-01-19T03:14:08Z, where a signed 32-bit `time_t` ends.
const Y2038: u64 = (1 << 31) * 1000;
/// 2100-01-01T00:00:00Z.
const Y2100: u64 = 4_102_444_800_000;
/// 10000-01-01T00:00:00Z.
const Y10000: u64 = 253_402_300_800_000;
/// The largest integer a JavaScript client reads exactly.
const JS_SAFE: u64 = (1 << 53) - 1;

/// Where each scenario starts. The windows of every rule (up to about a minute) straddle the
/// multiples of 2^32 just after the `- 3_000` and `- 30_000` starts.
const STARTS: [u64; 9] = [
    TWO_32,
    TWO_32 - 3_000,
    396 * TWO_32 - 30_000, // November 2023
    (Y2038 / TWO_32 + 1) * TWO_32 - 30_000,
    Y2038 - 30_000,
    Y2100,
    (Y2100 / TWO_32 + 1) * TWO_32 - 3_000,
    Y10000,
    JS_SAFE - 10_000_000,
];

/// Defaults with a ping timeout (longer than 2^32 ms) that never interferes with the other rules.
fn patient() -> CoreConfig {
    CoreConfig { ping_timeout_ms: 4 * TWO_32, ..CoreConfig::default() }
}

fn sim_at(config: CoreConfig, start: u64) -> Sim {
    let mut sim = Sim::with(config);
    sim.now = start;
    sim
}

/// Moves time to `at`, running every timer due on the way.
fn advance_to(sim: &mut Sim, at: u64) {
    assert!(at >= sim.now, "time runs forwards");
    sim.advance(at - sim.now);
}

fn send(sim: &mut Sim, conn: ConnId, msg: Value) {
    sim.send(conn, &Value::Array(vec![msg]).to_string());
}

fn chat(sim: &mut Sim, conn: ConnId, text: &str) {
    send(sim, conn, json!({"m": "a", "message": text}));
}

fn notes(count: usize) -> Value {
    json!({"m": "n", "t": 1, "n": vec![json!({"n": "a1"}); count]})
}

/// `ch` sent now, without the half second [`Sim::ch`] waits first.
fn ch_now(sim: &mut Sim, conn: ConnId, room: &str) {
    send(sim, conn, json!({"m": "ch", "_id": room}));
}

// ---- ping timeout (§11) -------------------------------------------------------------------

fn ping_timeout_at(start: u64) {
    let mut sim = sim_at(CoreConfig::default(), start);
    let silent = sim.connect(&ip(1));
    let (a, _) = sim.hi(&ip(2));
    // `hi.t` is the server time, to the millisecond.
    assert_eq!(sim.frames.last().map(|f| f.0), Some(a));
    assert!(sim.frames.last().unwrap().1.contains(&format!("\"t\":{start}")), "start {start}");
    assert_eq!(sim.core.next_deadline().map(mppd::Millis::as_ms), Some(start + 60_000), "start {start}");

    sim.advance(59_999);
    assert!(sim.is_open(silent) && sim.is_open(a), "start {start}");
    send(&mut sim, a, json!({"m": "t", "e": 7}));
    assert_eq!(sim.take_m(a, "t"), [json!({"m": "t", "t": start + 59_999, "e": 7})], "start {start}");
    sim.advance(1);
    assert_eq!(sim.closed.get(&silent), Some(&(4004, "Timed out.".to_string())), "start {start}");
    assert!(sim.is_open(a), "start {start}");

    // The `t` at start + 59 999 moved the deadline to start + 119 999.
    assert_eq!(sim.core.next_deadline().map(mppd::Millis::as_ms), Some(start + 119_999), "start {start}");
    sim.advance(59_998);
    assert!(sim.is_open(a), "start {start}");
    sim.advance(1);
    assert_eq!(sim.closed.get(&a).map(|c| c.0), Some(4004), "start {start}");
    assert_eq!(sim.core.stats().connections, 0);
    assert_eq!(sim.core.next_deadline().map(mppd::Millis::as_ms), None);
}

#[test]
fn ping_timeout_beyond_u32() {
    for start in STARTS {
        ping_timeout_at(start);
    }
}

#[test]
fn ping_timeout_longer_than_u32_ms() {
    let timeout = TWO_32 + 5;
    let mut sim = sim_at(CoreConfig { ping_timeout_ms: timeout, ..CoreConfig::default() }, Y2100);
    let (a, _) = sim.hi(&ip(1));
    assert_eq!(sim.core.next_deadline().map(mppd::Millis::as_ms), Some(Y2100 + timeout));
    sim.advance(timeout - 1);
    assert!(sim.is_open(a));
    sim.advance(1);
    assert_eq!(sim.closed.get(&a).map(|c| c.0), Some(4004));
}

// ---- note quota (§8.1) ----------------------------------------------------------------------

fn note_quota_at(start: u64) {
    let mut sim = sim_at(patient(), start);
    let (a, _) = sim.join(&ip(1), "lobby");
    // The quota's ticks count from the moment `a` joined.
    let joined = sim.now;
    let (b, _) = sim.join(&ip(2), "lobby");
    sim.clear_all();
    // Lobby quota: 600 points, 200 more every 2 s.
    for _ in 0..6 {
        send(&mut sim, a, notes(100));
    }
    assert_eq!(sim.take_m(b, "n").len(), 6, "start {start}");
    send(&mut sim, a, notes(1));
    assert!(sim.take(b).is_empty(), "start {start}");

    let tick = joined + 2_000;
    advance_to(&mut sim, tick - 1);
    send(&mut sim, a, notes(1));
    assert!(sim.take(b).is_empty(), "start {start}: refilled before the tick");
    sim.advance(1);
    send(&mut sim, a, notes(100));
    send(&mut sim, a, notes(100));
    send(&mut sim, a, notes(1));
    assert_eq!(sim.take_m(b, "n").len(), 2, "start {start}: one allowance per tick");

    // Idle for longer than 2^32 ms: the quota is full again (ticks are counted lazily).
    sim.advance(TWO_32 + 12_345);
    for _ in 0..6 {
        send(&mut sim, a, notes(100));
    }
    send(&mut sim, a, notes(1));
    assert_eq!(sim.take_m(b, "n").len(), 6, "start {start}: full after a long idle");
}

#[test]
fn note_quota_refill_beyond_u32() {
    for start in STARTS {
        note_quota_at(start);
    }
}

// ---- chat rate windows (§8.3) --------------------------------------------------------------

fn chat_window_at(start: u64) {
    let mut sim = sim_at(patient(), start);
    let (a, _) = sim.join(&ip(1), "lobby");
    let opened = sim.now;
    for i in 0..6 {
        chat(&mut sim, a, &format!("m{i}"));
    }
    let said = sim.take_m(a, "a");
    assert_eq!(said.len(), 4, "start {start}: four per six seconds");
    assert!(said.iter().all(|m| m["t"] == opened), "start {start}: {said:?}");

    advance_to(&mut sim, opened + 5_999);
    chat(&mut sim, a, "early");
    assert!(sim.take(a).is_empty(), "start {start}: window ended early");
    sim.advance(1);
    chat(&mut sim, a, "on time");
    assert_eq!(sim.take_m(a, "a")[0]["t"], opened + 6_000, "start {start}");
    // The history keeps the exact times too.
    let (b, _) = sim.hi(&ip(2));
    sim.ch(b, "lobby");
    let c = sim.take_m(b, "c");
    let times: Vec<&Value> = c[0]["c"].as_array().unwrap().iter().map(|m| &m["t"]).collect();
    assert_eq!(times, [opened, opened, opened, opened, opened + 6_000], "start {start}");
}

#[test]
fn chat_rate_windows_beyond_u32() {
    for start in STARTS {
        chat_window_at(start);
    }
}

#[test]
fn chat_window_longer_than_u32_ms() {
    let per_ms = TWO_32 + 1_000;
    let config = CoreConfig { chat_rate: Rate::new(1, per_ms), ..patient() };
    let mut sim = sim_at(config, Y2038 - 30_000);
    let (a, _) = sim.join(&ip(1), "lobby");
    let opened = sim.now;
    chat(&mut sim, a, "one");
    chat(&mut sim, a, "two");
    assert_eq!(sim.take_m(a, "a").len(), 1);
    advance_to(&mut sim, opened + per_ms - 1);
    chat(&mut sim, a, "still too early");
    assert!(sim.take(a).is_empty());
    sim.advance(1);
    chat(&mut sim, a, "next window");
    assert_eq!(sim.take_m(a, "a").len(), 1);
}

// ---- kickban expiry (§9) ---------------------------------------------------------------------

fn kickban_at(start: u64) {
    let mut sim = sim_at(patient(), start);
    let (a, _) = sim.join(&ip(1), "room");
    let (b, idb) = sim.join(&ip(2), "room");
    sim.clear_all();
    send(&mut sim, a, json!({"m": "kickban", "_id": idb, "ms": 90_000}));
    let banned_at = sim.now;
    let to_b = sim.take(b);
    assert_eq!(to_b[0]["m"], "notification");
    assert_eq!(to_b[0]["text"], "Banned from \"room\" for 1 minutes.", "start {start}");
    assert_eq!(to_b[1]["ch"]["_id"], "test/awkward", "start {start}");
    sim.clear_all();

    // Still banned a millisecond before the end; minutes are rounded up.
    advance_to(&mut sim, banned_at + 1_000);
    ch_now(&mut sim, b, "room");
    assert_eq!(sim.take(b)[0]["text"], "Currently banned from \"room\" for 2 minutes.", "start {start}");
    // Another tab of the same user asks a millisecond before the end (each connection has its
    // own `ch` rate limit).
    let (tab, _) = sim.hi(&ip(2));
    advance_to(&mut sim, banned_at + 89_999);
    ch_now(&mut sim, tab, "room");
    let refused = sim.take(tab);
    assert_eq!(refused[0]["text"], "Currently banned from \"room\" for 1 minutes.", "start {start}");
    assert_eq!(refused[1]["ch"]["_id"], "test/awkward", "start {start}");
    // Free at the exact end.
    sim.advance(1);
    ch_now(&mut sim, b, "room");
    let joined = sim.take_m(b, "ch");
    assert_eq!(joined[0]["ch"]["_id"], "room", "start {start}");
}

#[test]
fn kickban_expiry_beyond_u32() {
    for start in STARTS {
        kickban_at(start);
    }
}

#[test]
fn kickban_longer_than_u32_ms() {
    let ban = TWO_32 + 10;
    let config = CoreConfig { kickban_max_ms: 2 * TWO_32, ..patient() };
    let mut sim = sim_at(config, Y2100);
    let (a, _) = sim.join(&ip(1), "room");
    let (b, idb) = sim.join(&ip(2), "room");
    sim.clear_all();
    send(&mut sim, a, json!({"m": "kickban", "_id": idb, "ms": ban}));
    let banned_at = sim.now;
    let minutes = ban / 60_000;
    assert_eq!(sim.take(b)[0]["text"], format!("Banned from \"room\" for {minutes} minutes."));
    let (tab, _) = sim.hi(&ip(2));
    advance_to(&mut sim, banned_at + ban - 1);
    ch_now(&mut sim, tab, "room");
    assert_eq!(sim.take(tab)[0]["text"], "Currently banned from \"room\" for 1 minutes.");
    sim.advance(1);
    ch_now(&mut sim, b, "room");
    assert_eq!(sim.take_m(b, "ch")[0]["ch"]["_id"], "room");
}

// ---- crown pickup delay (§7) -----------------------------------------------------------------

fn crown_pickup_at(start: u64, pickup_ms: u64) {
    let config = CoreConfig { crown_pickup_ms: pickup_ms, ..patient() };
    let mut sim = sim_at(config, start);
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, idb) = sim.join(&ip(2), "room");
    sim.advance(1_000);
    send(&mut sim, a, json!({"m": "chown"}));
    let dropped_at = sim.now;
    let crown = &sim.take_m(b, "ch")[0]["ch"]["crown"];
    assert_eq!(crown["userId"], ida.as_str());
    assert!(crown.get("participantId").is_none());
    assert_eq!(crown["time"], dropped_at, "start {start}");
    sim.clear_all();

    advance_to(&mut sim, dropped_at + pickup_ms - 1);
    send(&mut sim, b, json!({"m": "chown", "id": idb}));
    assert!(sim.take(a).is_empty() && sim.take(b).is_empty(), "start {start}: picked up too early");
    sim.advance(1);
    send(&mut sim, b, json!({"m": "chown", "id": idb}));
    let crown = &sim.take_m(a, "ch")[0]["ch"]["crown"];
    assert_eq!(crown["participantId"], idb.as_str(), "start {start}");
    assert_eq!(crown["time"], dropped_at + pickup_ms, "start {start}");
}

#[test]
fn crown_pickup_after_15_s_beyond_u32() {
    for start in STARTS {
        crown_pickup_at(start, 15_000);
    }
}

#[test]
fn crown_pickup_delay_longer_than_u32_ms() {
    crown_pickup_at(Y2100, TWO_32 + 7);
    crown_pickup_at(TWO_32 - 3_000, TWO_32 + 7);
}

// ---- cursor flush timer (§5 `m`) ---------------------------------------------------------------

fn cursor_flush_at(start: u64) {
    let mut sim = sim_at(patient(), start);
    let (a, _) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.clear_all();
    send(&mut sim, a, json!({"m": "m", "x": 1, "y": 1}));
    let sent_at = sim.now;
    assert_eq!(sim.take_m(b, "m").len(), 1, "start {start}");
    sim.advance(10);
    send(&mut sim, a, json!({"m": "m", "x": 2, "y": 2}));
    assert!(sim.take(b).is_empty(), "start {start}: not coalesced");
    assert_eq!(sim.core.next_deadline().map(mppd::Millis::as_ms), Some(sent_at + 40), "start {start}");
    sim.advance(29);
    assert!(sim.take(b).is_empty(), "start {start}: flushed early");
    sim.advance(1);
    assert_eq!(sim.take_m(b, "m")[0]["x"], "2.00", "start {start}");
}

#[test]
fn cursor_flush_timer_beyond_u32() {
    for start in STARTS {
        cursor_flush_at(start);
    }
}

// ---- the end of time --------------------------------------------------------------------------

/// Next to `u64::MAX` deadlines saturate instead of wrapping: nothing panics (tests build with
/// overflow checks), nothing fires early, and times are written exactly.
#[test]
fn deadlines_saturate_next_to_u64_max() {
    let start = u64::MAX - 100_000;
    let mut sim = sim_at(CoreConfig::default(), start);
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, idb) = sim.join(&ip(2), "room");
    sim.clear_all();
    // Ping deadlines are start + 60 s, still representable.
    assert_eq!(sim.core.next_deadline().map(mppd::Millis::as_ms), Some(start + 60_000));
    advance_to(&mut sim, start + 59_000);
    send(&mut sim, a, json!({"m": "t"}));
    send(&mut sim, b, json!({"m": "t"}));
    // 59 000 + 60 000 > 100 000: both deadlines are now u64::MAX.
    assert_eq!(sim.core.next_deadline().map(mppd::Millis::as_ms), Some(u64::MAX));
    chat(&mut sim, a, "hello");
    assert_eq!(sim.take_m(b, "a")[0]["t"], sim.now);
    send(&mut sim, a, notes(3));
    assert_eq!(sim.take_m(b, "n").len(), 1);
    send(&mut sim, a, json!({"m": "m", "x": 3, "y": 4}));
    send(&mut sim, a, json!({"m": "m", "x": 5, "y": 6}));
    send(&mut sim, a, json!({"m": "kickban", "_id": idb, "ms": 3_600_000}));
    assert_eq!(sim.take_m(b, "ch")[0]["ch"]["_id"], "test/awkward");
    // The ban ends at u64::MAX: still refused a little later.
    sim.advance(1_000);
    ch_now(&mut sim, b, "room");
    assert!(sim.take(b)[0]["text"].as_str().unwrap().starts_with("Currently banned"));
    send(&mut sim, a, json!({"m": "chown"}));
    sim.advance(39_000);
    assert!(sim.is_open(a) && sim.is_open(b));
    assert_eq!(sim.now, u64::MAX - 1_000);
    chat(&mut sim, a, "still here");
    let said = sim.take_m(a, "a");
    assert_eq!(said.last().unwrap()["t"], u64::MAX - 1_000);
    assert_eq!(said.last().unwrap()["p"]["_id"], ida.as_str());
}
