//! Rooms that their owners control, driven through the pure core with explicit time:
//! `chset` and the settings filter (§3.4, §5), the crown and `chown` (§3.6, §7), `kickban` and
//! `unban` (§9), `dm`, `+custom`/`-custom`/`custom` (§5), and the rate limits of §8.3. Every test
//! states what each connection receives, in order; time only moves by advancing `now`.

mod core_support;

use core_support::{Sim, ip};
use mppd::ConnId;
use mppd::config::{CoreConfig, Rate};
use serde_json::{Value, json};

const ROOM: &str = "room";
const AWKWARD: &str = "test/awkward";
/// A well-formed user id nobody has.
const NOBODY: &str = "0123456789abcdef01234567";

/// A connected user as the tests see it: one connection and the identity from its `hi`.
#[derive(Clone, Debug)]
struct U {
    c: ConnId,
    id: String,
    name: String,
    color: String,
}

impl U {
    /// Participant info without cursor (chat, DMs).
    fn info(&self) -> Value {
        json!({"id": self.id, "_id": self.id, "name": self.name, "color": self.color})
    }

    /// Participant info with a cursor (`ch.ppl`, `p`).
    fn at(&self, x: Value, y: Value) -> Value {
        let mut v = self.info();
        v["x"] = x;
        v["y"] = y;
        v
    }

    /// Participant info of someone who never moved.
    fn ppl(&self) -> Value {
        self.at(json!(200), json!(100))
    }

    /// Another connection of the same user.
    fn tab(&self, c: ConnId) -> U {
        U { c, ..self.clone() }
    }
}

/// Defaults, with a ping timeout long enough for tests that advance time by an hour.
fn config() -> CoreConfig {
    CoreConfig { ping_timeout_ms: 30 * 86_400_000, ..CoreConfig::default() }
}

fn send(sim: &mut Sim, conn: ConnId, msg: Value) {
    sim.send(conn, &Value::Array(vec![msg]).to_string());
}

fn hi(sim: &mut Sim, addr: &str) -> U {
    let c = sim.connect(addr);
    sim.send(c, r#"[{"m":"hi"}]"#);
    let hi = sim.take_m(c, "hi").pop().expect("hi reply");
    let field = |k: &str| hi["u"][k].as_str().expect("hi.u field").to_string();
    U { c, id: field("_id"), name: field("name"), color: field("color") }
}

/// `hi`, then `ch` to `room` (half a second later); the inbox is emptied.
fn enter(sim: &mut Sim, addr: &str, room: &str) -> U {
    let u = hi(sim, addr);
    sim.ch(u.c, room);
    sim.take(u.c);
    u
}

/// Sets a user's name and empties every inbox.
fn rename(sim: &mut Sim, u: &mut U, name: &str) {
    send(sim, u.c, json!({"m": "userset", "set": {"name": name}}));
    u.name = name.to_string();
    sim.clear_all();
}

/// A holds the crown of `room` (created at the returned time); B is a member. Inboxes empty.
fn room() -> (Sim, U, U, u64) {
    room_with(config())
}

fn room_with(config: CoreConfig) -> (Sim, U, U, u64) {
    let mut sim = Sim::with(config);
    let a = enter(&mut sim, &ip(1), ROOM);
    let created = sim.now;
    let b = enter(&mut sim, &ip(2), ROOM);
    sim.clear_all();
    (sim, a, b, created)
}

fn normal() -> Value {
    json!({"visible": true, "chat": true, "crownsolo": false, "color": "#3b5054"})
}

fn lobby() -> Value {
    json!({"lobby": true, "visible": true, "chat": true, "crownsolo": false, "color": "#73b3cc", "color2": "#273546"})
}

/// Channel info (§3.3).
fn info(room: &str, count: usize, settings: Value, crown: Option<Value>) -> Value {
    let mut info = json!({"_id": room, "id": room, "count": count, "settings": settings});
    if let Some(crown) = crown {
        info["crown"] = crown;
    }
    info
}

/// A broadcast `ch` (no `p`).
fn ch(room: &str, settings: Value, crown: Option<Value>, ppl: &[Value]) -> Value {
    json!({"m": "ch", "ch": info(room, ppl.len(), settings, crown), "ppl": ppl})
}

fn held(u: &U, time: u64, start: Value, end: Value) -> Value {
    json!({"userId": u.id, "participantId": u.id, "time": time, "startPos": start, "endPos": end})
}

fn pos(x: Value, y: Value) -> Value {
    json!({"x": x, "y": y})
}

fn center() -> Value {
    pos(json!(50), json!(50))
}

/// Checks a dropped crown (§7.2): no `participantId`, `endPos.x` = clamp(startPos.x, 10, 90),
/// `endPos.y` random in [70, 90). Returns the crown as received.
fn assert_dropped(crown: &Value, last: &U, time: u64, start: Value, end_x: Value) -> Value {
    let y = crown["endPos"]["y"].clone();
    let yf = y.as_f64().expect("endPos.y is a number");
    assert!((70.0..90.0).contains(&yf), "endPos.y {yf}");
    assert_eq!(crown, &json!({"userId": last.id, "time": time, "startPos": start, "endPos": {"x": end_x, "y": y}}));
    crown.clone()
}

fn notice(text: &str) -> Value {
    json!({"m": "notification", "title": "Notice", "text": text, "duration": 7000, "target": "#room", "class": "short"})
}

fn nq(allowance: u32, max: u32) -> Value {
    json!({"m": "nq", "allowance": allowance, "max": max, "maxHistLen": 3})
}

fn nq_lobby() -> Value {
    nq(200, 600)
}

fn nq_normal() -> Value {
    nq(400, 1200)
}

fn nq_crowned() -> Value {
    nq(600, 1800)
}

fn chset(sim: &mut Sim, u: &U, set: Value) {
    send(sim, u.c, json!({"m": "chset", "set": set}));
}

fn chown(sim: &mut Sim, u: &U, id: Option<&str>) {
    match id {
        Some(id) => send(sim, u.c, json!({"m": "chown", "id": id})),
        None => send(sim, u.c, json!({"m": "chown"})),
    }
}

fn kickban(sim: &mut Sim, u: &U, target: &str, ms: Value) {
    send(sim, u.c, json!({"m": "kickban", "_id": target, "ms": ms}));
}

fn notes(sim: &mut Sim, u: &U) {
    send(sim, u.c, json!({"m": "n", "t": 1, "n": [{"n": "a1", "v": 0.5}]}));
}

fn say(sim: &mut Sim, u: &U, text: &str) {
    send(sim, u.c, json!({"m": "a", "message": text}));
}

fn assert_silent(sim: &mut Sim, users: &[&U]) {
    for u in users {
        assert_eq!(sim.take(u.c), Vec::<Value>::new(), "{} ({:?}) received something", u.name, u.c);
    }
}

/// What a connection receives when it gets exactly one message.
fn one(message: &Value) -> Vec<Value> {
    vec![message.clone()]
}

fn is_message_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------------------------------------
// chset (§3.4, §5)

#[test]
fn chset_applies_the_filtered_set_and_broadcasts_ch_without_p() {
    let (mut sim, a, b, created) = room();
    chset(
        &mut sim,
        &a,
        json!({"lobby": true, "owner_id": "x", "visible": true, "chat": "false", "crownsolo": 1,
            "color": "#ABCDEF", "color2": "#102030", "limit": "50", "noindex": true, "allowBots": false,
            "no cussing": true, "bogus": 1, "_id": "other"}),
    );
    let settings = json!({"visible": true, "chat": false, "crownsolo": false, "color": "#abcdef",
        "color2": "#102030", "no cussing": true, "limit": 50, "noindex": true, "allowBots": false});
    let expected = ch(ROOM, settings.clone(), Some(held(&a, created, center(), center())), &[a.ppl(), b.ppl()]);
    assert_eq!(sim.take(a.c), one(&expected));
    assert_eq!(sim.take(b.c), [expected]);
    // One serialization for everyone, settings in the table's order.
    let n = sim.frames.len();
    assert_eq!(sim.frames[n - 2].1, sim.frames[n - 1].1);
    assert!(sim.frames[n - 1].1.contains(
        r##""settings":{"visible":true,"chat":false,"crownsolo":false,"color":"#abcdef","color2":"#102030","no cussing":true,"limit":50,"noindex":true,"allowBots":false}"##
    ));
    // A newcomer sees the stored settings.
    let c = hi(&mut sim, &ip(3));
    sim.ch(c.c, ROOM);
    assert_eq!(sim.take_m(c.c, "ch")[0]["ch"]["settings"], settings);
}

#[test]
fn chset_booleans_are_exactly_true_and_invalid_values_are_skipped_key_by_key() {
    let (mut sim, a, b, created) = room();
    let crown = Some(held(&a, created, center(), center()));
    let ppl = [a.ppl(), b.ppl()];
    let expect = |sim: &mut Sim, settings: Value| {
        let msg = ch(ROOM, settings, crown.clone(), &ppl);
        assert_eq!(sim.take(a.c), one(&msg));
        assert_eq!(sim.take(b.c), [msg]);
    };
    chset(&mut sim, &a, json!({"color": "#112233", "color2": "#445566", "visible": "true", "chat": 1}));
    expect(
        &mut sim,
        json!({"visible": false, "chat": false, "crownsolo": false, "color": "#112233", "color2": "#445566"}),
    );
    // Invalid colours, a bad limit: those keys are skipped, the others apply. `color2` is
    // present (though invalid), so it is kept.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#fff", "color2": "#zzzzzz", "visible": true, "limit": 100, "chat": true}));
    expect(
        &mut sim,
        json!({"visible": true, "chat": true, "crownsolo": false, "color": "#112233", "color2": "#445566"}),
    );
    // `color2` absent: removed.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"visible": true, "chat": true, "color": "#112233"}));
    expect(&mut sim, json!({"visible": true, "chat": true, "crownsolo": false, "color": "#112233"}));
    // Every invalid limit is skipped on its own (and changes nothing, so nothing is sent).
    for bad in [json!(5.5), json!(-1), json!(100), json!(true), json!("abc"), json!(null), json!([1]), json!("1e999")] {
        sim.advance(1000);
        chset(&mut sim, &a, json!({"visible": true, "chat": true, "color": "#112233", "limit": bad}));
        assert_silent(&mut sim, &[&a, &b]);
    }
    // The mppnet form sends the limit as a string; "" removes it.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#112233", "visible": true, "chat": true, "limit": "7"}));
    expect(&mut sim, json!({"visible": true, "chat": true, "crownsolo": false, "color": "#112233", "limit": 7}));
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#112233", "visible": true, "chat": true, "limit": 0}));
    expect(&mut sim, json!({"visible": true, "chat": true, "crownsolo": false, "color": "#112233", "limit": 0}));
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#112233", "visible": true, "chat": true, "limit": ""}));
    expect(&mut sim, json!({"visible": true, "chat": true, "crownsolo": false, "color": "#112233"}));
    // Absent booleans keep their value.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"crownsolo": true, "color": "#112233"}));
    expect(&mut sim, json!({"visible": true, "chat": true, "crownsolo": true, "color": "#112233"}));
}

#[test]
fn chset_that_changes_nothing_sends_nothing() {
    let (mut sim, a, b, _) = room();
    // What clients send: the whole current settings object.
    chset(&mut sim, &a, normal());
    assert_silent(&mut sim, &[&a, &b]);
    sim.advance(1000);
    chset(&mut sim, &a, json!({}));
    assert_silent(&mut sim, &[&a, &b]);
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#3B5054", "lobby": true, "bogus": 2}));
    assert_silent(&mut sim, &[&a, &b]);
    // Oversized and mistyped values are invalid values: skipped.
    sim.advance(1000);
    let long = format!("#{}", "a".repeat(10_000));
    chset(&mut sim, &a, json!({"color": long, "limit": "9".repeat(10_000), "bogus": "x".repeat(100_000)}));
    assert_silent(&mut sim, &[&a, &b]);
}

#[test]
fn chset_is_ignored_from_non_holders_in_lobbies_and_with_a_bad_set() {
    let (mut sim, a, b, _) = room();
    chset(&mut sim, &b, json!({"color": "#000000"}));
    for bad in [json!("visible"), json!([{"color": "#000000"}]), json!(null), json!(5), json!(true)] {
        chset(&mut sim, &a, bad);
    }
    send(&mut sim, a.c, json!({"m": "chset"}));
    assert_silent(&mut sim, &[&a, &b]);
    // None of that counted against the holder's limit.
    chset(&mut sim, &a, json!({"color": "#000000"}));
    assert_eq!(sim.take_m(b.c, "ch").len(), 1);
    // Lobbies and test rooms have no holder.
    let l1 = enter(&mut sim, &ip(3), "lobby");
    let l2 = enter(&mut sim, &ip(4), "lobby");
    let t1 = enter(&mut sim, &ip(5), "test/x");
    sim.clear_all();
    for u in [&l1, &t1] {
        chset(&mut sim, u, json!({"color": "#000000", "lobby": false, "visible": false}));
    }
    assert_silent(&mut sim, &[&l1, &l2, &t1]);
    let c = hi(&mut sim, &ip(8));
    sim.ch(c.c, "lobby");
    assert_eq!(sim.take_m(c.c, "ch")[0]["ch"]["settings"], lobby());
    // Connected but in no channel: channel-scoped messages are ignored.
    let loose = hi(&mut sim, &ip(7));
    chset(&mut sim, &loose, json!({"color": "#000000"}));
    assert_silent(&mut sim, &[&loose, &a, &b]);
    // The former holder of a dropped crown cannot change settings either.
    sim.advance(1000);
    chown(&mut sim, &a, None);
    sim.clear_all();
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#123456"}));
    assert_silent(&mut sim, &[&a, &b]);
}

#[test]
fn chset_updates_the_list_and_an_invisible_room_gets_one_last_entry() {
    let (mut sim, a, b, created) = room();
    let w = hi(&mut sim, &ip(9));
    send(&mut sim, w.c, json!({"m": "+ls"}));
    sim.take(w.c);
    let crown = Some(held(&a, created, center(), center()));
    let settings =
        |visible: bool, color: &str| json!({"visible": visible, "chat": true, "crownsolo": false, "color": color});
    chset(&mut sim, &a, json!({"color": "#000000"}));
    assert_eq!(
        sim.take(w.c),
        [json!({"m": "ls", "c": false, "u": [info(ROOM, 2, settings(true, "#000000"), crown.clone())]})]
    );
    // Becoming invisible: one last entry showing `visible: false`.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#000000", "visible": false}));
    assert_eq!(
        sim.take(w.c),
        [json!({"m": "ls", "c": false, "u": [info(ROOM, 2, settings(false, "#000000"), crown.clone())]})]
    );
    assert_eq!(sim.take_m(a.c, "ch").last().map(|c| c["ch"]["settings"]["visible"].clone()), Some(json!(false)));
    // Then nothing while it stays invisible: settings, joins, crown changes.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#111111", "visible": false}));
    enter(&mut sim, &ip(3), ROOM);
    sim.advance(1000);
    chown(&mut sim, &a, Some(&b.id));
    assert!(sim.take_m(w.c, "ls").is_empty());
    // A complete list leaves it out.
    send(&mut sim, w.c, json!({"m": "+ls"}));
    assert_eq!(sim.take(w.c), [json!({"m": "ls", "c": true, "u": []})]);
    // Visible again: listed again.
    sim.advance(1000);
    chset(&mut sim, &b, json!({"color": "#111111", "visible": true}));
    let ls = sim.take(w.c);
    assert_eq!(ls.len(), 1);
    assert_eq!(ls[0]["u"][0]["settings"], settings(true, "#111111"));
    assert_eq!(ls[0]["u"][0]["count"], 3);
    assert_eq!(ls[0]["u"][0]["crown"]["participantId"], b.id.as_str());
}

#[test]
fn a_room_created_invisible_is_never_listed_until_visible() {
    let mut sim = Sim::with(config());
    let w = hi(&mut sim, &ip(9));
    send(&mut sim, w.c, json!({"m": "+ls"}));
    sim.take(w.c);
    let a = hi(&mut sim, &ip(1));
    sim.advance(500);
    send(&mut sim, a.c, json!({"m": "ch", "_id": "hidden", "set": {"visible": false}}));
    let created = sim.now;
    assert_eq!(sim.take_m(a.c, "ch").last().map(|c| c["ch"]["settings"]["visible"].clone()), Some(json!(false)));
    assert!(sim.take(w.c).is_empty());
    chset(&mut sim, &a, json!({"visible": true}));
    assert_eq!(
        sim.take(w.c),
        [
            json!({"m": "ls", "c": false, "u": [info("hidden", 1, normal(), Some(held(&a, created, center(), center())))]})
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The crown and chown (§3.6, §7)

#[test]
fn holder_gives_the_crown_from_its_cursor_to_the_recipients_and_quotas_follow() {
    let (mut sim, a, b, _) = room();
    let w = hi(&mut sim, &ip(9));
    send(&mut sim, w.c, json!({"m": "+ls"}));
    send(&mut sim, a.c, json!({"m": "m", "x": "10.00", "y": "20.50"}));
    send(&mut sim, b.c, json!({"m": "m", "x": 30, "y": 40}));
    sim.advance(1000);
    sim.clear_all();
    chown(&mut sim, &a, Some(&b.id));
    let crown = held(&b, sim.now, pos(json!(10), json!(20.5)), pos(json!(30), json!(40)));
    let msg = ch(
        ROOM,
        normal(),
        Some(crown.clone()),
        &[a.at(json!("10.00"), json!("20.50")), b.at(json!("30.00"), json!("40.00"))],
    );
    // §7.6: the old holder gets the normal quota, the new one the crown-holder quota.
    assert_eq!(sim.take(a.c), [msg.clone(), nq_normal()]);
    assert_eq!(sim.take(b.c), [msg, nq_crowned()]);
    assert_eq!(sim.take(w.c), [json!({"m": "ls", "c": false, "u": [info(ROOM, 2, normal(), Some(crown))]})]);
    // Now B decides the settings and A does not.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"color": "#000000"}));
    assert_silent(&mut sim, &[&a, &b]);
    chset(&mut sim, &b, json!({"color": "#000000"}));
    assert_eq!(sim.take_m(a.c, "ch").len(), 1);
}

#[test]
fn giving_the_crown_to_oneself_is_a_no_op() {
    let (mut sim, a, b, _) = room();
    chown(&mut sim, &a, Some(&a.id));
    assert_silent(&mut sim, &[&a, &b]);
}

#[test]
fn holder_drops_the_crown_without_id_or_with_an_id_not_in_the_room() {
    let (mut sim, a, b, _) = room();
    let outsider = enter(&mut sim, &ip(5), "elsewhere");
    send(&mut sim, a.c, json!({"m": "m", "x": "95.50", "y": "20.00"}));
    sim.advance(1000);
    sim.clear_all();
    let ppl = [a.at(json!("95.50"), json!("20.00")), b.ppl()];
    let drops: [Option<&str>; 3] = [None, Some(NOBODY), Some(&outsider.id)];
    for (i, id) in drops.into_iter().enumerate() {
        if i > 0 {
            // Take it back (the last holder may, at any time).
            sim.advance(1000);
            chown(&mut sim, &a, Some(&a.id));
            sim.clear_all();
        }
        sim.advance(1000);
        chown(&mut sim, &a, id);
        let to_a = sim.take(a.c);
        assert_eq!(to_a.len(), 2, "{to_a:?}");
        let crown = assert_dropped(&to_a[0]["ch"]["crown"], &a, sim.now, pos(json!(95.5), json!(20)), json!(90));
        assert_eq!(to_a, [ch(ROOM, normal(), Some(crown.clone()), &ppl), nq_normal()]);
        assert_eq!(sim.take(b.c), [ch(ROOM, normal(), Some(crown), &ppl)]);
    }
    assert_silent(&mut sim, &[&outsider]);
}

#[test]
fn anyone_may_pick_up_a_dropped_crown_after_the_pickup_delay_and_not_before() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    send(&mut sim, b.c, json!({"m": "m", "x": 60, "y": 70}));
    sim.advance(1000);
    chown(&mut sim, &a, None);
    let dropped_at = sim.now;
    sim.clear_all();
    // Held by nobody: a non-holder asking for it too early is ignored, as are drops from others.
    sim.advance(14_999);
    chown(&mut sim, &b, Some(&b.id));
    chown(&mut sim, &b, Some(&c.id));
    chown(&mut sim, &b, None);
    chown(&mut sim, &c, Some(&c.id));
    assert_silent(&mut sim, &[&a, &b, &c]);
    sim.advance(1);
    assert_eq!(sim.now, dropped_at + 15_000);
    chown(&mut sim, &b, Some(&b.id));
    let crown = held(&b, sim.now, pos(json!(60), json!(70)), pos(json!(60), json!(70)));
    let msg = ch(ROOM, normal(), Some(crown), &[a.ppl(), b.at(json!("60.00"), json!("70.00")), c.ppl()]);
    // Nobody held it, so only the new holder's quota changes.
    assert_eq!(sim.take(a.c), one(&msg));
    assert_eq!(sim.take(b.c), [msg.clone(), nq_crowned()]);
    assert_eq!(sim.take(c.c), [msg]);
    // Once held, nobody else may take or give it.
    sim.advance(20_000);
    chown(&mut sim, &c, Some(&c.id));
    chown(&mut sim, &a, Some(&a.id));
    chown(&mut sim, &a, Some(&c.id));
    chown(&mut sim, &c, None);
    assert_silent(&mut sim, &[&a, &b, &c]);
}

#[test]
fn the_pickup_delay_is_configurable() {
    let mut sim = Sim::with(CoreConfig { crown_pickup_ms: 300, ..config() });
    let a = enter(&mut sim, &ip(1), ROOM);
    let b = enter(&mut sim, &ip(2), ROOM);
    chown(&mut sim, &a, None);
    sim.clear_all();
    sim.advance(299);
    chown(&mut sim, &b, Some(&b.id));
    assert_silent(&mut sim, &[&a, &b]);
    sim.advance(1);
    chown(&mut sim, &b, Some(&b.id));
    assert_eq!(sim.take_m(a.c, "ch")[0]["ch"]["crown"]["participantId"], b.id.as_str());
}

#[test]
fn the_last_holder_may_take_back_or_give_a_dropped_crown_at_any_time() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    sim.advance(1000);
    chown(&mut sim, &a, None);
    sim.clear_all();
    // Take back, in the same millisecond.
    chown(&mut sim, &a, Some(&a.id));
    let crown = held(&a, sim.now, pos(json!(200), json!(100)), pos(json!(200), json!(100)));
    let msg = ch(ROOM, normal(), Some(crown), &[a.ppl(), b.ppl(), c.ppl()]);
    assert_eq!(sim.take(a.c), [msg.clone(), nq_crowned()]);
    assert_eq!(sim.take(b.c), one(&msg));
    assert_eq!(sim.take(c.c), [msg]);
    // Drop again and give it to C straight away.
    sim.advance(1000);
    chown(&mut sim, &a, None);
    sim.clear_all();
    sim.advance(10);
    chown(&mut sim, &a, Some(&c.id));
    let crown = held(&c, sim.now, pos(json!(200), json!(100)), pos(json!(200), json!(100)));
    let msg = ch(ROOM, normal(), Some(crown), &[a.ppl(), b.ppl(), c.ppl()]);
    assert_eq!(sim.take(a.c), one(&msg));
    assert_eq!(sim.take(b.c), one(&msg));
    assert_eq!(sim.take(c.c), [msg, nq_crowned()]);
}

#[test]
fn after_the_delay_anyone_may_also_give_the_dropped_crown_to_a_third_member() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    sim.advance(1000);
    chown(&mut sim, &a, None);
    sim.advance(15_000);
    sim.clear_all();
    chown(&mut sim, &b, Some(&c.id));
    assert_eq!(sim.take(c.c)[1], nq_crowned());
    assert_eq!(sim.take(a.c)[0]["ch"]["crown"]["participantId"], c.id.as_str());
    assert_eq!(sim.take(b.c).len(), 1);
}

#[test]
fn holder_leaving_drops_the_crown_and_the_last_holder_gets_it_back_on_return() {
    let (mut sim, a, b, _) = room();
    send(&mut sim, a.c, json!({"m": "m", "x": 5, "y": 50}));
    sim.clear_all();
    sim.ch(a.c, "elsewhere");
    let left_at = sim.now;
    let to_b = sim.take(b.c);
    assert_eq!(to_b.len(), 2);
    assert_eq!(to_b[0], json!({"m": "bye", "p": a.id}));
    let crown = assert_dropped(&to_b[1]["ch"]["crown"], &a, left_at, pos(json!(5), json!(50)), json!(10));
    assert_eq!(to_b[1], ch(ROOM, normal(), Some(crown), &[b.ppl()]));
    sim.take(a.c);
    // Back in the room: the crown returns at once (§7.3), with the crown-holder quota.
    sim.advance(3000);
    sim.ch(a.c, ROOM);
    let back = sim.now;
    let crown = held(&a, back, pos(json!(200), json!(100)), pos(json!(200), json!(100)));
    let mut own = ch(ROOM, normal(), Some(crown.clone()), &[b.ppl(), a.ppl()]);
    own["p"] = json!(a.id);
    assert_eq!(sim.take(a.c), [own, json!({"m": "c", "c": []}), nq_crowned()]);
    let mut p = a.ppl();
    p["m"] = json!("p");
    assert_eq!(sim.take(b.c), [p, ch(ROOM, normal(), Some(crown), &[b.ppl(), a.ppl()])]);
}

#[test]
fn a_second_tab_of_the_last_holder_does_not_pick_the_dropped_crown_back_up() {
    let (mut sim, a, b, _) = room();
    sim.advance(1000);
    chown(&mut sim, &a, None);
    let dropped = sim.take(b.c)[0]["ch"]["crown"].clone();
    sim.clear_all();
    // §7.3 returns the crown to a participant joining; a second tab joins no one new.
    let tab = hi(&mut sim, &ip(1));
    sim.ch(tab.c, ROOM);
    let joined = sim.take(tab.c);
    assert_eq!(joined[0]["ch"]["crown"], dropped);
    assert_eq!(joined[2], nq_normal());
    assert_silent(&mut sim, &[&a, &b]);
}

#[test]
fn every_tab_of_the_old_and_the_new_holder_gets_its_quota() {
    let (mut sim, a, b, _) = room();
    let a2 = a.tab(hi(&mut sim, &ip(1)).c);
    sim.ch(a2.c, ROOM);
    let b2 = b.tab(hi(&mut sim, &ip(2)).c);
    sim.ch(b2.c, ROOM);
    sim.clear_all();
    chown(&mut sim, &a, Some(&b.id));
    for tab in [&a, &a2] {
        let got = sim.take(tab.c);
        assert_eq!((got.len(), &got[1]), (2, &nq_normal()));
    }
    for tab in [&b, &b2] {
        let got = sim.take(tab.c);
        assert_eq!((got.len(), &got[1]), (2, &nq_crowned()));
    }
}

#[test]
fn chown_in_lobbies_and_test_rooms_is_ignored() {
    let mut sim = Sim::with(config());
    let a = enter(&mut sim, &ip(1), "lobby");
    let b = enter(&mut sim, &ip(2), "lobby");
    let t = enter(&mut sim, &ip(3), "test/x");
    sim.clear_all();
    for u in [&a, &t] {
        chown(&mut sim, u, None);
        chown(&mut sim, u, Some(&u.id));
    }
    chown(&mut sim, &a, Some(&b.id));
    assert_silent(&mut sim, &[&a, &b, &t]);
}

#[test]
fn chown_with_bad_ids_from_non_holders_changes_nothing() {
    let (mut sim, a, b, _) = room();
    sim.advance(1000);
    let long = "a".repeat(10_000);
    for id in [json!(5), json!(null), json!([a.id]), json!(""), json!(long), json!(NOBODY), json!({"id": b.id})] {
        send(&mut sim, b.c, json!({"m": "chown", "id": id}));
    }
    send(&mut sim, b.c, json!({"m": "chown"}));
    assert_silent(&mut sim, &[&a, &b]);
    // The crown is where it was: A can still give it.
    chown(&mut sim, &a, Some(&b.id));
    assert_eq!(sim.take(b.c)[1], nq_crowned());
}

#[test]
fn chown_rate_limit_drops_silently_and_is_configurable() {
    let (mut sim, a, b, _) = room();
    // Ten changes in one instant: drop, take back, drop, …
    for i in 0..10 {
        chown(&mut sim, &a, if i % 2 == 0 { None } else { Some(&a.id) });
    }
    assert_eq!(sim.take_m(b.c, "ch").len(), 10);
    let before = sim.core.counters().rate_limited;
    chown(&mut sim, &a, None);
    assert_silent(&mut sim, &[&b]);
    sim.take(a.c);
    assert_eq!(sim.core.counters().rate_limited, before + 1);
    sim.advance(4_999);
    chown(&mut sim, &a, None);
    assert_silent(&mut sim, &[&b]);
    sim.advance(1);
    chown(&mut sim, &a, None);
    assert_eq!(sim.take_m(b.c, "ch").len(), 1);

    let mut sim = Sim::with(CoreConfig { chown_rate: Rate::new(1, 1_000), ..config() });
    let a = enter(&mut sim, &ip(1), ROOM);
    let b = enter(&mut sim, &ip(2), ROOM);
    sim.clear_all();
    chown(&mut sim, &a, None);
    chown(&mut sim, &a, Some(&a.id));
    assert_eq!(sim.take_m(b.c, "ch").len(), 1);
    sim.advance(1_000);
    chown(&mut sim, &a, Some(&a.id));
    assert_eq!(sim.take_m(b.c, "ch").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// crownsolo, chat: false, limit (§3.4, §5)

#[test]
fn crownsolo_lets_only_the_holder_play() {
    let (mut sim, a, b, _) = room();
    chset(&mut sim, &a, json!({"crownsolo": "true"}));
    sim.clear_all();
    // "true" is not `=== true`: still off.
    notes(&mut sim, &b);
    assert_eq!(sim.take_m(a.c, "n").len(), 1);
    sim.advance(1000);
    chset(&mut sim, &a, json!({"crownsolo": true}));
    sim.clear_all();
    notes(&mut sim, &b);
    assert_silent(&mut sim, &[&a, &b]);
    notes(&mut sim, &a);
    assert_eq!(sim.take(b.c), [json!({"m": "n", "t": 1, "p": a.id, "n": [{"n": "a1", "v": 0.5}]})]);
    // The crown moves, and so does the right to play.
    chown(&mut sim, &a, Some(&b.id));
    sim.clear_all();
    notes(&mut sim, &a);
    assert_silent(&mut sim, &[&b]);
    notes(&mut sim, &b);
    assert_eq!(sim.take_m(a.c, "n").len(), 1);
    // A dropped crown: nobody plays.
    chown(&mut sim, &b, None);
    sim.clear_all();
    notes(&mut sim, &a);
    notes(&mut sim, &b);
    assert_silent(&mut sim, &[&a, &b]);
}

#[test]
fn chat_false_stops_chat_and_dms() {
    let (mut sim, a, b, _) = room();
    // The mppnet docs' "chat":"false" disables chat (§3.4).
    chset(&mut sim, &a, json!({"chat": "false"}));
    assert_eq!(sim.take(b.c)[0]["ch"]["settings"]["chat"], false);
    sim.clear_all();
    say(&mut sim, &a, "owner");
    say(&mut sim, &b, "member");
    send(&mut sim, b.c, json!({"m": "dm", "_id": a.id, "message": "psst"}));
    send(&mut sim, a.c, json!({"m": "dm", "_id": b.id, "message": "psst"}));
    assert_silent(&mut sim, &[&a, &b]);
    let c = hi(&mut sim, &ip(3));
    sim.ch(c.c, ROOM);
    assert_eq!(sim.take_m(c.c, "c"), [json!({"m": "c", "c": []})]);
    sim.advance(1000);
    chset(&mut sim, &a, json!({"chat": true}));
    sim.clear_all();
    say(&mut sim, &b, "back");
    assert_eq!(sim.take_m(a.c, "a")[0]["a"], "back");
}

#[test]
fn limit_sends_newcomers_to_awkward_but_not_present_users_or_the_crowns_user() {
    let (mut sim, a, b, _) = room();
    chset(&mut sim, &a, json!({"limit": 2}));
    sim.clear_all();
    let c = hi(&mut sim, &ip(3));
    sim.ch(c.c, ROOM);
    let mut awkward = ch(AWKWARD, lobby(), None, &[c.ppl()]);
    awkward["p"] = json!(c.id);
    assert_eq!(sim.take(c.c), [notice("\"room\" is full."), awkward, json!({"m": "c", "c": []}), nq_lobby()]);
    assert_silent(&mut sim, &[&a, &b]);
    // A second tab of a present user gets in.
    let b2 = hi(&mut sim, &ip(2));
    sim.ch(b2.c, ROOM);
    let joined = sim.take(b2.c);
    assert_eq!((joined[0]["ch"]["_id"].as_str(), joined[0]["ch"]["count"].as_u64()), (Some(ROOM), Some(2)));
    // The crown's user is exempt even while the crown lies dropped: limit 1, A leaves, comes back.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"limit": 1}));
    sim.ch(a.c, "elsewhere");
    sim.clear_all();
    sim.ch(c.c, ROOM);
    assert_eq!(sim.take(c.c)[0], notice("\"room\" is full."));
    sim.ch(a.c, ROOM);
    let back = sim.take(a.c);
    assert_eq!(back[0]["ch"]["_id"], ROOM);
    assert_eq!(back[0]["ch"]["crown"]["participantId"], a.id.as_str());
    // limit 0 closes the room to every newcomer.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"limit": 0}));
    let d = hi(&mut sim, &ip(4));
    sim.ch(d.c, ROOM);
    assert_eq!(sim.take(d.c)[0], notice("\"room\" is full."));
    // "" removes the limit.
    sim.advance(1000);
    chset(&mut sim, &a, json!({"limit": ""}));
    sim.ch(d.c, ROOM);
    assert_eq!(sim.take_m(d.c, "ch")[0]["ch"]["_id"], ROOM);
}

// ---------------------------------------------------------------------------------------------
// kickban and unban (§9)

#[test]
fn kickban_moves_the_target_to_awkward_and_tells_everyone() {
    let (mut sim, mut a, mut b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    rename(&mut sim, &mut a, "Owner");
    rename(&mut sim, &mut b, "Victim");
    kickban(&mut sim, &a, &b.id, json!(300_000));
    let banned_at = sim.now;
    let mut awkward = ch(AWKWARD, lobby(), None, &[b.ppl()]);
    awkward["p"] = json!(b.id);
    assert_eq!(
        sim.take(b.c),
        [notice("Banned from \"room\" for 5 minutes."), awkward, json!({"m": "c", "c": []}), nq_lobby()]
    );
    let to_a = sim.take(a.c);
    assert_eq!(to_a.len(), 3, "{to_a:?}");
    assert!(is_message_id(&to_a[2]["id"]));
    let line = json!({"m": "a", "id": to_a[2]["id"], "t": banned_at,
        "a": "Banned Victim from the channel for 5 minutes.", "p": a.info()});
    assert_eq!(
        to_a,
        [json!({"m": "bye", "p": b.id}), notice("Owner banned Victim from the channel for 5 minutes."), line.clone()]
    );
    assert_eq!(sim.take(c.c), to_a);
    // The line is in the history.
    let d = hi(&mut sim, &ip(4));
    sim.ch(d.c, ROOM);
    assert_eq!(sim.take_m(d.c, "c"), [json!({"m": "c", "c": [line]})]);
}

#[test]
fn with_chat_off_the_ban_is_not_said_in_chat() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    chset(&mut sim, &a, json!({"chat": false}));
    sim.clear_all();
    kickban(&mut sim, &a, &b.id, json!(60_000));
    let expected =
        [json!({"m": "bye", "p": b.id}), notice("Anonymous banned Anonymous from the channel for 1 minutes.")];
    assert_eq!(sim.take(a.c), expected);
    assert_eq!(sim.take(c.c), expected);
    let d = hi(&mut sim, &ip(4));
    sim.ch(d.c, ROOM);
    assert_eq!(sim.take_m(d.c, "c"), [json!({"m": "c", "c": []})]);
}

#[test]
fn a_banned_user_is_refused_with_the_remaining_minutes_rounded_up_until_the_ban_ends() {
    // Probes a millisecond apart: lift the `ch` limit out of the way.
    let (mut sim, a, b, _) = room_with(CoreConfig { ch_rate: Rate::new(100, 500), ..config() });
    kickban(&mut sim, &a, &b.id, json!(300_000));
    let until = sim.now + 300_000;
    sim.clear_all();
    // Asking from test/awkward itself: only the notification.
    sim.ch(b.c, ROOM);
    assert_eq!(sim.take(b.c), [notice("Currently banned from \"room\" for 5 minutes.")]);
    // From elsewhere: the notification, then test/awkward.
    sim.ch(b.c, "lobby");
    sim.take(b.c);
    sim.ch(b.c, ROOM);
    let refused = sim.take(b.c);
    assert_eq!(refused[0], notice("Currently banned from \"room\" for 5 minutes."));
    assert_eq!(refused[1]["ch"]["_id"], AWKWARD);
    assert_eq!(refused[1]["p"], b.id.as_str());
    assert_eq!(refused.len(), 4);
    // Remaining time rounded up: 4 min exactly is 4, a millisecond more is 5.
    for (left, minutes) in [(240_001, 5), (240_000, 4), (60_001, 2), (60_000, 1), (1, 1)] {
        sim.now = until - left - 500;
        sim.ch(b.c, ROOM);
        assert_eq!(sim.take(b.c), [notice(&format!("Currently banned from \"room\" for {minutes} minutes."))]);
    }
    assert_silent(&mut sim, &[&a]);
    // The ban ends by itself.
    sim.now = until - 500;
    sim.ch(b.c, ROOM);
    let joined = sim.take(b.c);
    assert_eq!(joined[0]["ch"]["_id"], ROOM);
    assert_eq!(joined[0]["ch"]["count"], 2);
    let mut p = b.ppl();
    p["m"] = json!("p");
    assert_eq!(sim.take(a.c), [p]);
}

#[test]
fn kickban_clamps_ms_above_the_maximum() {
    let (mut sim, a, b, _) = room();
    kickban(&mut sim, &a, &b.id, json!(1e12));
    let banned_at = sim.now;
    assert_eq!(sim.take(b.c)[0], notice("Banned from \"room\" for 60 minutes."));
    assert_eq!(sim.take(a.c)[1], notice("Anonymous banned Anonymous from the channel for 60 minutes."));
    sim.ch(b.c, ROOM);
    assert_eq!(sim.take(b.c), [notice("Currently banned from \"room\" for 60 minutes.")]);
    sim.now = banned_at + 3_600_000 - 1_000;
    sim.ch(b.c, ROOM);
    assert_eq!(sim.take(b.c), [notice("Currently banned from \"room\" for 1 minutes.")]);
    sim.advance(500);
    sim.ch(b.c, ROOM);
    assert_eq!(sim.take_m(b.c, "ch")[0]["ch"]["_id"], ROOM);

    // The maximum is configurable; fractions of a minute are floored in the notice.
    let mut sim = Sim::with(CoreConfig { kickban_max_ms: 120_000, ..config() });
    let a = enter(&mut sim, &ip(1), ROOM);
    let b = enter(&mut sim, &ip(2), ROOM);
    let c = enter(&mut sim, &ip(3), ROOM);
    sim.clear_all();
    kickban(&mut sim, &a, &b.id, json!(300_000));
    assert_eq!(sim.take(b.c)[0], notice("Banned from \"room\" for 2 minutes."));
    sim.clear_all();
    sim.advance(1000);
    kickban(&mut sim, &a, &c.id, json!(119_999.9));
    assert_eq!(sim.take(c.c)[0], notice("Banned from \"room\" for 1 minutes."));
}

#[test]
fn kickban_with_bad_input_changes_nothing() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    sim.clear_all();
    let long = "b".repeat(10_000);
    let bad = [
        json!({"m": "kickban", "_id": b.id, "ms": -1}),
        json!({"m": "kickban", "_id": b.id, "ms": -0.5}),
        json!({"m": "kickban", "_id": b.id, "ms": "300000"}),
        json!({"m": "kickban", "_id": b.id, "ms": "NaN"}),
        json!({"m": "kickban", "_id": b.id, "ms": null}),
        json!({"m": "kickban", "_id": b.id, "ms": true}),
        json!({"m": "kickban", "_id": b.id, "ms": [1000]}),
        json!({"m": "kickban", "_id": b.id}),
        json!({"m": "kickban", "ms": 1000}),
        json!({"m": "kickban", "_id": 5, "ms": 1000}),
        json!({"m": "kickban", "_id": [b.id], "ms": 1000}),
        json!({"m": "kickban", "_id": "nobody", "ms": 1000}),
        json!({"m": "kickban", "_id": long, "ms": 1000}),
        json!({"m": "kickban", "id": b.id, "ms": 1000}),
    ];
    for msg in &bad {
        send(&mut sim, a.c, msg.clone());
    }
    // Numbers JSON cannot hold as a finite f64.
    sim.send(a.c, &format!(r#"[{{"m":"kickban","_id":"{}","ms":1e999}}]"#, b.id));
    sim.send(a.c, &format!(r#"[{{"m":"kickban","_id":"{}","ms":-1e999}}]"#, b.id));
    // From someone who does not hold the crown.
    kickban(&mut sim, &b, &a.id, json!(60_000));
    kickban(&mut sim, &c, &b.id, json!(60_000));
    assert_silent(&mut sim, &[&a, &b, &c]);
    assert_eq!(sim.core.counters().rate_limited, 0, "bad input does not count against the limit");
    // Nobody is banned: B may leave and come back.
    sim.ch(b.c, "lobby");
    sim.ch(b.c, ROOM);
    assert_eq!(sim.take_m(b.c, "ch")[1]["ch"]["_id"], ROOM);
}

#[test]
fn kickban_in_lobbies_and_test_rooms_is_ignored() {
    let mut sim = Sim::with(config());
    let a = enter(&mut sim, &ip(1), "lobby");
    let b = enter(&mut sim, &ip(2), "lobby");
    let t1 = enter(&mut sim, &ip(3), "test/x");
    let t2 = enter(&mut sim, &ip(4), "test/x");
    sim.clear_all();
    kickban(&mut sim, &a, &b.id, json!(60_000));
    kickban(&mut sim, &t1, &t2.id, json!(60_000));
    send(&mut sim, a.c, json!({"m": "unban", "_id": b.id}));
    assert_silent(&mut sim, &[&a, &b, &t1, &t2]);
}

#[test]
fn self_ban_drops_the_crown_and_awards_a_certificate() {
    let (mut sim, mut a, b, _) = room();
    rename(&mut sim, &mut a, "Owner");
    kickban(&mut sim, &a, &a.id, json!(60_000));
    let at = sim.now;
    let to_a = sim.take(a.c);
    assert_eq!(to_a[0], notice("Banned from \"room\" for 1 minutes."));
    assert_eq!(to_a[1]["ch"]["_id"], AWKWARD);
    assert_eq!(to_a[3], nq_lobby());
    let to_b = sim.take(b.c);
    assert_eq!(to_b.len(), 4, "{to_b:?}");
    let crown = assert_dropped(&to_b[1]["ch"]["crown"], &a, at, pos(json!(200), json!(100)), json!(90));
    assert_eq!(
        to_b,
        [
            json!({"m": "bye", "p": a.id}),
            ch(ROOM, normal(), Some(crown), &[b.ppl()]),
            notice("Owner banned Owner from the channel for 1 minutes."),
            json!({"m": "notification", "title": "Certificate of Award",
                "text": "Let it be known that Owner kickbanned him/her self.", "duration": 7000, "target": "#room"}),
        ]
    );
    // Being the crown's last holder does not beat the ban.
    sim.ch(a.c, "lobby");
    sim.take(a.c);
    sim.ch(a.c, ROOM);
    let refused = sim.take(a.c);
    assert_eq!(refused[0], notice("Currently banned from \"room\" for 1 minutes."));
    assert_eq!(refused[1]["ch"]["_id"], AWKWARD);
    assert_silent(&mut sim, &[&b]);
    // B may pick the crown up 15 s after it fell.
    sim.now = at + 15_000;
    chown(&mut sim, &b, Some(&b.id));
    assert_eq!(sim.take(b.c)[1], nq_crowned());
}

#[test]
fn a_lone_holder_banning_itself_closes_the_room_and_the_ban_with_it() {
    let mut sim = Sim::with(config());
    let a = enter(&mut sim, &ip(1), ROOM);
    kickban(&mut sim, &a, &a.id, json!(60_000));
    assert_eq!(sim.take(a.c)[1]["ch"]["_id"], AWKWARD);
    assert_eq!(sim.core.stats().channels, 1);
    sim.ch(a.c, ROOM);
    assert_eq!(sim.take_m(a.c, "ch")[0]["ch"]["crown"]["participantId"], a.id.as_str());
}

#[test]
fn every_tab_of_the_target_is_moved_and_the_room_sees_one_bye() {
    let (mut sim, a, b, _) = room();
    let b2 = b.tab(hi(&mut sim, &ip(2)).c);
    sim.ch(b2.c, ROOM);
    sim.clear_all();
    kickban(&mut sim, &a, &b.id, json!(120_000));
    for (tab, count) in [(&b, 1), (&b2, 1)] {
        let got = sim.take(tab.c);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], notice("Banned from \"room\" for 2 minutes."));
        assert_eq!((got[1]["ch"]["_id"].as_str(), got[1]["ch"]["count"].as_u64()), (Some(AWKWARD), Some(count)));
    }
    let to_a = sim.take(a.c);
    assert_eq!(to_a[0], json!({"m": "bye", "p": b.id}));
    assert_eq!(to_a.iter().filter(|m| m["m"] == "bye").count(), 1);
    assert_eq!(sim.core.stats().participants, 2);
}

#[test]
fn an_absent_user_is_banned_silently_and_refused_later() {
    let (mut sim, a, b, _) = room();
    let d = hi(&mut sim, &ip(4));
    kickban(&mut sim, &a, &d.id, json!(600_000));
    assert_silent(&mut sim, &[&a, &b, &d]);
    sim.ch(d.c, ROOM);
    let refused = sim.take(d.c);
    assert_eq!(refused[0], notice("Currently banned from \"room\" for 10 minutes."));
    assert_eq!(refused[1]["ch"]["_id"], AWKWARD);
    assert_silent(&mut sim, &[&a, &b]);
}

#[test]
fn a_new_ban_replaces_the_earlier_one() {
    let (mut sim, a, b, _) = room();
    kickban(&mut sim, &a, &b.id, json!(600_000));
    sim.advance(1000);
    kickban(&mut sim, &a, &b.id, json!(60_000));
    let until = sim.now + 60_000;
    sim.clear_all();
    sim.ch(b.c, ROOM);
    assert_eq!(sim.take(b.c), [notice("Currently banned from \"room\" for 1 minutes.")]);
    sim.now = until - 500;
    sim.ch(b.c, ROOM);
    assert_eq!(sim.take_m(b.c, "ch")[0]["ch"]["_id"], ROOM);
}

#[test]
fn the_list_shows_banned_to_the_banned_user_only() {
    let (mut sim, a, b, created) = room();
    let w = hi(&mut sim, &ip(9));
    send(&mut sim, w.c, json!({"m": "+ls"}));
    send(&mut sim, b.c, json!({"m": "+ls"}));
    sim.clear_all();
    kickban(&mut sim, &a, &b.id, json!(60_000));
    let crown = Some(held(&a, created, center(), center()));
    let room_entry = info(ROOM, 1, normal(), crown);
    let awkward_entry = info(AWKWARD, 1, lobby(), None);
    let mut banned_entry = room_entry.clone();
    banned_entry["banned"] = json!(true);
    assert_eq!(sim.take_m(w.c, "ls"), [json!({"m": "ls", "c": false, "u": [room_entry, awkward_entry]})]);
    assert_eq!(sim.take_m(b.c, "ls"), [json!({"m": "ls", "c": false, "u": [banned_entry, awkward_entry]})]);
    sim.take(a.c);
    // A complete list too.
    send(&mut sim, b.c, json!({"m": "+ls"}));
    assert_eq!(sim.take(b.c), [json!({"m": "ls", "c": true, "u": [banned_entry, awkward_entry]})]);
    send(&mut sim, w.c, json!({"m": "+ls"}));
    assert_eq!(sim.take(w.c), [json!({"m": "ls", "c": true, "u": [room_entry, awkward_entry]})]);
    // Unban: B's entry loses the flag.
    send(&mut sim, a.c, json!({"m": "unban", "_id": b.id}));
    assert_eq!(sim.take(b.c), [json!({"m": "ls", "c": false, "u": [room_entry]})]);
    assert_silent(&mut sim, &[&a]);
    // A silent ban of someone absent shows in a complete list, until it expires.
    sim.advance(1000);
    kickban(&mut sim, &a, &b.id, json!(60_000));
    sim.clear_all();
    send(&mut sim, b.c, json!({"m": "+ls"}));
    assert_eq!(sim.take(b.c), [json!({"m": "ls", "c": true, "u": [banned_entry, awkward_entry]})]);
    sim.advance(60_000);
    send(&mut sim, b.c, json!({"m": "+ls"}));
    assert_eq!(sim.take(b.c), [json!({"m": "ls", "c": true, "u": [room_entry, awkward_entry]})]);
}

#[test]
fn unban_lifts_the_ban_without_a_broadcast() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    kickban(&mut sim, &a, &b.id, json!(600_000));
    sim.advance(1000);
    sim.clear_all();
    // Bad input and non-holders: ignored.
    for msg in [
        json!({"m": "unban", "_id": 5}),
        json!({"m": "unban"}),
        json!({"m": "unban", "_id": "nobody"}),
        json!({"m": "unban", "_id": [b.id]}),
        json!({"m": "unban", "id": b.id}),
    ] {
        send(&mut sim, a.c, msg);
    }
    send(&mut sim, c.c, json!({"m": "unban", "_id": b.id}));
    sim.ch(b.c, ROOM);
    assert_eq!(sim.take(b.c), [notice("Currently banned from \"room\" for 10 minutes.")]);
    // Unbanning someone who is not banned does nothing visible, not even to list subscribers.
    let w = hi(&mut sim, &ip(9));
    send(&mut sim, w.c, json!({"m": "+ls"}));
    sim.take(w.c);
    send(&mut sim, a.c, json!({"m": "unban", "_id": c.id}));
    assert_silent(&mut sim, &[&w]);
    send(&mut sim, a.c, json!({"m": "unban", "_id": b.id}));
    assert_silent(&mut sim, &[&a, &b, &c]);
    sim.ch(b.c, ROOM);
    let joined = sim.take(b.c);
    assert_eq!(joined.len(), 3);
    assert_eq!(joined[0]["ch"]["_id"], ROOM);
}

#[test]
fn kickban_and_unban_share_a_rate_limit() {
    let (mut sim, a, _b, _) = room();
    let d: Vec<U> = (11..14).map(|n| hi(&mut sim, &ip(n))).collect();
    let before = sim.core.counters().rate_limited;
    for u in &d {
        kickban(&mut sim, &a, &u.id, json!(600_000));
    }
    assert_eq!(sim.core.counters().rate_limited, before + 1);
    assert_silent(&mut sim, &[&a]);
    let refused = |sim: &mut Sim, u: &U| {
        sim.ch(u.c, "lobby");
        sim.ch(u.c, ROOM);
        let got = sim.take_m(u.c, "ch");
        let refused = got.last().map(|c| c["ch"]["_id"] == AWKWARD).unwrap_or(false);
        sim.ch(u.c, "lobby");
        refused
    };
    assert!(refused(&mut sim, &d[0]));
    assert!(refused(&mut sim, &d[1]));
    assert!(!refused(&mut sim, &d[2]), "the third kickban in one second was dropped");
    sim.advance(1000);
    send(&mut sim, a.c, json!({"m": "unban", "_id": d[0].id}));
    kickban(&mut sim, &a, &d[2].id, json!(600_000));
    send(&mut sim, a.c, json!({"m": "unban", "_id": d[1].id}));
    assert!(!refused(&mut sim, &d[0]));
    assert!(refused(&mut sim, &d[1]), "the third in one second was dropped");
    assert!(refused(&mut sim, &d[2]));

    // Configurable.
    let mut sim = Sim::with(CoreConfig { kickban_rate: Rate::new(1, 10_000), ..config() });
    let a = enter(&mut sim, &ip(1), ROOM);
    let d1 = hi(&mut sim, &ip(11));
    let d2 = hi(&mut sim, &ip(12));
    kickban(&mut sim, &a, &d1.id, json!(600_000));
    sim.advance(9_000);
    kickban(&mut sim, &a, &d2.id, json!(600_000));
    assert!(refused(&mut sim, &d1));
    assert!(!refused(&mut sim, &d2));
}

// ---------------------------------------------------------------------------------------------
// dm (§5)

#[test]
fn dm_goes_to_the_recipient_and_the_senders_tabs_in_the_room_and_not_into_history() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    let a2 = a.tab(hi(&mut sim, &ip(1)).c);
    sim.ch(a2.c, ROOM);
    let a3 = a.tab(hi(&mut sim, &ip(1)).c);
    sim.ch(a3.c, "elsewhere");
    let b2 = b.tab(hi(&mut sim, &ip(2)).c);
    sim.ch(b2.c, ROOM);
    let b3 = b.tab(hi(&mut sim, &ip(2)).c);
    sim.ch(b3.c, "elsewhere");
    sim.clear_all();
    send(&mut sim, a.c, json!({"m": "dm", "_id": b.id, "message": "psst", "reply_to": "e20f2a11"}));
    let got = sim.take(a.c);
    assert_eq!(got.len(), 1);
    assert!(is_message_id(&got[0]["id"]));
    let expected = json!({"m": "dm", "id": got[0]["id"], "t": sim.now, "a": "psst", "sender": a.info(),
        "recipient": b.info(), "r": "e20f2a11"});
    assert_eq!(got, one(&expected));
    for tab in [&a2, &b, &b2] {
        assert_eq!(sim.take(tab.c), one(&expected));
    }
    assert_silent(&mut sim, &[&a3, &b3, &c]);
    // Without reply_to: no `r`.
    send(&mut sim, b2.c, json!({"m": "dm", "_id": a.id, "message": "hi back"}));
    let got = sim.take(b.c);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0],
        json!({"m": "dm", "id": got[0]["id"], "t": sim.now, "a": "hi back", "sender": b.info(), "recipient": a.info()})
    );
    // Not in the history.
    let d = hi(&mut sim, &ip(4));
    sim.ch(d.c, ROOM);
    assert_eq!(sim.take_m(d.c, "c"), [json!({"m": "c", "c": []})]);
}

#[test]
fn chat_reply_to_comes_back_as_r() {
    let (mut sim, a, b, _) = room();
    send(&mut sim, b.c, json!({"m": "a", "message": "yes", "reply_to": "9ad74fe6"}));
    let got = sim.take(a.c);
    assert_eq!(got, [json!({"m": "a", "id": got[0]["id"], "t": sim.now, "a": "yes", "p": b.info(), "r": "9ad74fe6"})]);
    assert_eq!(sim.take(b.c), got);
    for bad in [json!(5), json!(null), json!("x".repeat(33)), json!({"id": "x"})] {
        send(&mut sim, b.c, json!({"m": "a", "message": "no", "reply_to": bad}));
        let got = sim.take(a.c);
        assert_eq!(got.len(), 1);
        assert!(got[0].get("r").is_none(), "{got:?}");
        sim.advance(6_000);
    }
}

#[test]
fn dm_with_bad_input_or_a_recipient_elsewhere_is_ignored() {
    let (mut sim, a, b, _) = room();
    let e = enter(&mut sim, &ip(5), "elsewhere");
    let loose = hi(&mut sim, &ip(6));
    sim.clear_all();
    let long = "x".repeat(513);
    for msg in [
        json!({"m": "dm", "_id": e.id, "message": "hi"}),
        json!({"m": "dm", "_id": loose.id, "message": "hi"}),
        json!({"m": "dm", "_id": NOBODY, "message": "hi"}),
        json!({"m": "dm", "_id": "nobody", "message": "hi"}),
        json!({"m": "dm", "_id": 5, "message": "hi"}),
        json!({"m": "dm", "message": "hi"}),
        json!({"m": "dm", "id": b.id, "message": "hi"}),
        json!({"m": "dm", "_id": b.id}),
        json!({"m": "dm", "_id": b.id, "message": ""}),
        json!({"m": "dm", "_id": b.id, "message": "   "}),
        json!({"m": "dm", "_id": b.id, "message": "a\nb"}),
        json!({"m": "dm", "_id": b.id, "message": "\u{202e}x"}),
        json!({"m": "dm", "_id": b.id, "message": long}),
        json!({"m": "dm", "_id": b.id, "message": 5}),
        json!({"m": "dm", "_id": b.id, "message": ["hi"]}),
    ] {
        send(&mut sim, a.c, msg);
    }
    // Outside a channel: ignored too.
    send(&mut sim, loose.c, json!({"m": "dm", "_id": a.id, "message": "hi"}));
    assert_silent(&mut sim, &[&a, &b, &e, &loose]);
    assert_eq!(sim.core.counters().rate_limited, 0);
    // 512 units are fine; a too long reply_to is left out.
    send(&mut sim, a.c, json!({"m": "dm", "_id": b.id, "message": "x".repeat(512), "reply_to": "r".repeat(33)}));
    let got = sim.take(b.c);
    assert_eq!(got.len(), 1);
    assert!(got[0].get("r").is_none());
}

#[test]
fn dm_shares_the_chat_rate_limit() {
    let (mut sim, a, b, _) = room();
    say(&mut sim, &b, "1");
    say(&mut sim, &b, "2");
    for i in 0..3 {
        send(&mut sim, b.c, json!({"m": "dm", "_id": a.id, "message": format!("dm{i}")}));
    }
    let got = sim.take(a.c);
    let names: Vec<&str> = got.iter().map(|m| m["m"].as_str().unwrap_or("?")).collect();
    assert_eq!(names, ["a", "a", "dm", "dm"]);
    assert_eq!(sim.core.counters().rate_limited, 1);
}

// ---------------------------------------------------------------------------------------------
// custom (§5)

#[test]
fn custom_reaches_subscribed_connections_in_the_room_but_never_the_sender() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    let quiet = enter(&mut sim, &ip(4), ROOM);
    let e = enter(&mut sim, &ip(5), "elsewhere");
    let a2 = a.tab(hi(&mut sim, &ip(1)).c);
    sim.ch(a2.c, ROOM);
    for u in [&a, &a2, &b, &c, &e] {
        send(&mut sim, u.c, json!({"m": "+custom"}));
    }
    sim.clear_all();
    let data = json!({"x": 1, "nested": [true, null, "s"]});
    send(&mut sim, a.c, json!({"m": "custom", "data": data, "target": {"mode": "subscribed"}}));
    let expected = json!({"m": "custom", "data": data, "p": a.id});
    for u in [&a2, &b, &c] {
        assert_eq!(sim.take(u.c), one(&expected));
    }
    assert_silent(&mut sim, &[&a, &quiet, &e]);
    // `global` is not honoured: it stays in the channel.
    send(&mut sim, a.c, json!({"m": "custom", "data": 1, "target": {"mode": "subscribed", "global": true}}));
    assert_silent(&mut sim, &[&e, &a, &quiet]);
    sim.clear_all();
    // -custom stops delivery.
    send(&mut sim, c.c, json!({"m": "-custom"}));
    send(&mut sim, b.c, json!({"m": "custom", "data": "x", "target": {"mode": "subscribed"}}));
    let expected = json!({"m": "custom", "data": "x", "p": b.id});
    assert_eq!(sim.take(a.c), one(&expected));
    assert_eq!(sim.take(a2.c), [expected]);
    assert_silent(&mut sim, &[&b, &c, &quiet, &e]);
}

#[test]
fn custom_targets_one_id_or_up_to_32_ids() {
    let (mut sim, a, b, _) = room();
    let c = enter(&mut sim, &ip(3), ROOM);
    let a2 = a.tab(hi(&mut sim, &ip(1)).c);
    sim.ch(a2.c, ROOM);
    for u in [&a, &a2, &b, &c] {
        send(&mut sim, u.c, json!({"m": "+custom"}));
    }
    sim.clear_all();
    send(&mut sim, a.c, json!({"m": "custom", "data": 1, "target": {"mode": "id", "id": b.id}}));
    assert_eq!(sim.take(b.c), [json!({"m": "custom", "data": 1, "p": a.id})]);
    assert_silent(&mut sim, &[&a, &a2, &c]);
    // To oneself: the other tab only.
    send(&mut sim, a.c, json!({"m": "custom", "data": 2, "target": {"mode": "id", "id": a.id}}));
    assert_eq!(sim.take(a2.c), [json!({"m": "custom", "data": 2, "p": a.id})]);
    assert_silent(&mut sim, &[&a, &b, &c]);
    // ids: unknown and malformed entries are skipped.
    let mut ids = vec![json!(c.id), json!("junk"), json!(NOBODY), json!(a.id)];
    send(&mut sim, b.c, json!({"m": "custom", "data": 3, "target": {"mode": "ids", "ids": ids}}));
    let expected = json!({"m": "custom", "data": 3, "p": b.id});
    for u in [&a, &a2, &c] {
        assert_eq!(sim.take(u.c), one(&expected));
    }
    assert_silent(&mut sim, &[&b]);
    // 32 ids are fine, 33 are not.
    while ids.len() < 32 {
        ids.push(json!(NOBODY));
    }
    send(&mut sim, b.c, json!({"m": "custom", "data": 4, "target": {"mode": "ids", "ids": ids}}));
    assert_eq!(sim.take(c.c).len(), 1);
    sim.clear_all();
    ids.push(json!(NOBODY));
    send(&mut sim, b.c, json!({"m": "custom", "data": 5, "target": {"mode": "ids", "ids": ids}}));
    assert_silent(&mut sim, &[&a, &a2, &c]);
}

#[test]
fn custom_without_data_sends_null() {
    let (mut sim, a, b, _) = room();
    send(&mut sim, b.c, json!({"m": "+custom"}));
    send(&mut sim, a.c, json!({"m": "custom", "target": {"mode": "subscribed"}}));
    assert_eq!(sim.take(b.c), [json!({"m": "custom", "data": null, "p": a.id})]);
    let n = sim.frames.len();
    assert!(sim.frames[n - 1].1.contains(r#""data":null"#));
}

#[test]
fn custom_data_has_a_byte_budget_per_connection() {
    let (mut sim, a, b, _) = room();
    let a2 = a.tab(hi(&mut sim, &ip(1)).c);
    sim.ch(a2.c, ROOM);
    send(&mut sim, b.c, json!({"m": "+custom"}));
    sim.clear_all();
    // A JSON string of 16382 characters serializes to exactly 16384 bytes.
    let big = json!("x".repeat(16_382));
    let target = json!({"mode": "subscribed"});
    send(&mut sim, a.c, json!({"m": "custom", "data": big, "target": target}));
    assert_eq!(sim.take(b.c).len(), 1);
    send(&mut sim, a.c, json!({"m": "custom", "data": 1, "target": target}));
    assert_silent(&mut sim, &[&b]);
    assert_eq!(sim.core.counters().rate_limited, 1);
    // Per connection: the other tab has its own budget.
    send(&mut sim, a2.c, json!({"m": "custom", "data": 1, "target": target}));
    assert_eq!(sim.take(b.c).len(), 1);
    sim.advance(9_999);
    send(&mut sim, a.c, json!({"m": "custom", "data": 1, "target": target}));
    assert_silent(&mut sim, &[&b]);
    sim.advance(1);
    send(&mut sim, a.c, json!({"m": "custom", "data": 1, "target": target}));
    assert_eq!(sim.take(b.c).len(), 1);
    // Over the budget in one message: dropped.
    sim.advance(10_000);
    send(&mut sim, a.c, json!({"m": "custom", "data": "x".repeat(16_383), "target": target}));
    assert_silent(&mut sim, &[&b]);

    let mut sim = Sim::with(CoreConfig { custom_bytes: Rate::new(10, 1_000), ..config() });
    let a = enter(&mut sim, &ip(1), ROOM);
    let b = enter(&mut sim, &ip(2), ROOM);
    send(&mut sim, b.c, json!({"m": "+custom"}));
    sim.clear_all();
    send(&mut sim, a.c, json!({"m": "custom", "data": "12345678", "target": target}));
    send(&mut sim, a.c, json!({"m": "custom", "data": 1, "target": target}));
    assert_eq!(sim.take(b.c).len(), 1);
}

#[test]
fn custom_with_a_bad_target_is_ignored_and_costs_nothing() {
    let (mut sim, a, b, _) = room();
    let loose = hi(&mut sim, &ip(6));
    send(&mut sim, b.c, json!({"m": "+custom"}));
    send(&mut sim, loose.c, json!({"m": "+custom"}));
    sim.clear_all();
    let big = json!("x".repeat(16_382));
    for target in [
        None,
        Some(json!("subscribed")),
        Some(json!(null)),
        Some(json!({})),
        Some(json!({"mode": "everyone"})),
        Some(json!({"mode": 1})),
        Some(json!({"mode": "id"})),
        Some(json!({"mode": "id", "id": 5})),
        Some(json!({"mode": "id", "id": [b.id]})),
        Some(json!({"mode": "ids"})),
        Some(json!({"mode": "ids", "ids": b.id})),
        Some(json!({"mode": "ids", "ids": [b.id, 5]})),
    ] {
        let mut msg = json!({"m": "custom", "data": big});
        if let Some(target) = target {
            msg["target"] = target;
        }
        send(&mut sim, a.c, msg);
    }
    // Outside a channel: ignored.
    send(&mut sim, loose.c, json!({"m": "custom", "data": 1, "target": {"mode": "subscribed"}}));
    assert_silent(&mut sim, &[&a, &b, &loose]);
    // None of it used the byte budget.
    send(&mut sim, a.c, json!({"m": "custom", "data": big, "target": {"mode": "id", "id": b.id}}));
    assert_eq!(sim.take(b.c).len(), 1);
    // +custom before hi does not subscribe.
    let early = sim.connect(&ip(7));
    sim.send(early, r#"[{"m":"+custom"},{"m":"hi"}]"#);
    sim.ch(early, ROOM);
    sim.take(early);
    sim.advance(10_000);
    send(&mut sim, a.c, json!({"m": "custom", "data": 1, "target": {"mode": "subscribed"}}));
    assert_eq!(sim.take(early), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// Rate limits (§8.3): silent drops, configurable

#[test]
fn chat_limit_is_four_per_six_seconds_and_ten_per_two_for_the_crown_holder() {
    let (mut sim, a, b, _) = room();
    for i in 0..5 {
        say(&mut sim, &b, &format!("b{i}"));
    }
    assert_eq!(sim.take_m(a.c, "a").len(), 4);
    assert!(sim.take(b.c).iter().all(|m| m["a"] != "b4"), "dropped silently, no echo");
    sim.advance(5_999);
    say(&mut sim, &b, "late");
    assert!(sim.take(a.c).is_empty());
    sim.advance(1);
    say(&mut sim, &b, "again");
    assert_eq!(sim.take_m(a.c, "a").len(), 1);
    // The holder: 10 per 2 s.
    sim.clear_all();
    for i in 0..11 {
        say(&mut sim, &a, &format!("a{i}"));
    }
    assert_eq!(sim.take_m(b.c, "a").len(), 10);
    sim.advance(1_999);
    say(&mut sim, &a, "late");
    assert!(sim.take(b.c).is_empty());
    sim.advance(1);
    say(&mut sim, &a, "again");
    assert_eq!(sim.take_m(b.c, "a").len(), 1);
}

#[test]
fn chat_limits_are_configurable() {
    let mut sim =
        Sim::with(CoreConfig { chat_rate: Rate::new(2, 1_000), chat_rate_crowned: Rate::new(3, 1_000), ..config() });
    let a = enter(&mut sim, &ip(1), ROOM);
    let b = enter(&mut sim, &ip(2), ROOM);
    sim.clear_all();
    for i in 0..5 {
        say(&mut sim, &a, &format!("a{i}"));
        say(&mut sim, &b, &format!("b{i}"));
    }
    let texts: Vec<String> = sim.take_m(a.c, "a").iter().map(|m| m["a"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(texts, ["a0", "b0", "a1", "b1", "a2"]);
}

#[test]
fn ch_limit_is_one_per_half_second_and_configurable() {
    let mut sim = Sim::with(config());
    let a = hi(&mut sim, &ip(1));
    send(&mut sim, a.c, json!({"m": "ch", "_id": "one"}));
    send(&mut sim, a.c, json!({"m": "ch", "_id": "two"}));
    sim.advance(499);
    send(&mut sim, a.c, json!({"m": "ch", "_id": "three"}));
    let rooms: Vec<Value> = sim.take_m(a.c, "ch").iter().map(|c| c["ch"]["_id"].clone()).collect();
    assert_eq!(rooms, [json!("one")]);
    sim.advance(1);
    send(&mut sim, a.c, json!({"m": "ch", "_id": "four"}));
    assert_eq!(sim.take_m(a.c, "ch")[0]["ch"]["_id"], "four");

    let mut sim = Sim::with(CoreConfig { ch_rate: Rate::new(2, 5_000), ..config() });
    let a = hi(&mut sim, &ip(1));
    for room in ["one", "two", "three"] {
        send(&mut sim, a.c, json!({"m": "ch", "_id": room}));
        sim.now += 1_000;
    }
    assert_eq!(sim.take_m(a.c, "ch").len(), 2);
}

#[test]
fn userset_limit_is_thirty_per_half_hour_and_configurable() {
    let mut sim = Sim::with(config());
    let a = enter(&mut sim, &ip(1), ROOM);
    for i in 0..31 {
        send(&mut sim, a.c, json!({"m": "userset", "set": {"name": format!("n{i}")}}));
    }
    let names = sim.take_m(a.c, "p");
    assert_eq!(names.len(), 30);
    assert_eq!(names[29]["name"], "n29");
    sim.advance(1_799_999);
    send(&mut sim, a.c, json!({"m": "userset", "set": {"name": "late"}}));
    assert!(sim.take(a.c).is_empty());
    sim.advance(1);
    send(&mut sim, a.c, json!({"m": "userset", "set": {"name": "late"}}));
    assert_eq!(sim.take_m(a.c, "p").len(), 1);

    let mut sim = Sim::with(CoreConfig { userset_rate: Rate::new(2, 60_000), ..config() });
    let a = enter(&mut sim, &ip(1), ROOM);
    for i in 0..3 {
        send(&mut sim, a.c, json!({"m": "userset", "set": {"name": format!("n{i}")}}));
    }
    assert_eq!(sim.take_m(a.c, "p").len(), 2);
}

#[test]
fn chset_limit_is_one_per_second_and_configurable() {
    let (mut sim, a, b, _) = room();
    chset(&mut sim, &a, json!({"color": "#000001"}));
    chset(&mut sim, &a, json!({"color": "#000002"}));
    sim.advance(999);
    chset(&mut sim, &a, json!({"color": "#000003"}));
    let colors: Vec<Value> = sim.take_m(b.c, "ch").iter().map(|c| c["ch"]["settings"]["color"].clone()).collect();
    assert_eq!(colors, [json!("#000001")]);
    assert_eq!(sim.core.counters().rate_limited, 2);
    sim.advance(1);
    chset(&mut sim, &a, json!({"color": "#000004"}));
    assert_eq!(sim.take_m(b.c, "ch")[0]["ch"]["settings"]["color"], "#000004");

    let mut sim = Sim::with(CoreConfig { chset_rate: Rate::new(3, 1_000), ..config() });
    let a = enter(&mut sim, &ip(1), ROOM);
    for i in 0..4 {
        chset(&mut sim, &a, json!({"color": format!("#00000{i}")}));
    }
    assert_eq!(sim.take_m(a.c, "ch").len(), 3);
}

#[test]
fn channel_messages_before_joining_a_channel_are_ignored() {
    let mut sim = Sim::with(config());
    let a = enter(&mut sim, &ip(1), ROOM);
    let loose = hi(&mut sim, &ip(2));
    let early = sim.connect(&ip(3));
    sim.clear_all();
    for conn in [loose.c, early] {
        for msg in [
            json!({"m": "chset", "set": {"color": "#000000"}}),
            json!({"m": "chown", "id": a.id}),
            json!({"m": "chown"}),
            json!({"m": "kickban", "_id": a.id, "ms": 1000}),
            json!({"m": "unban", "_id": a.id}),
            json!({"m": "dm", "_id": a.id, "message": "hi"}),
            json!({"m": "custom", "data": 1, "target": {"mode": "subscribed"}}),
        ] {
            send(&mut sim, conn, msg);
        }
    }
    assert_silent(&mut sim, &[&a, &loose]);
    assert!(sim.take(early).is_empty());
}
