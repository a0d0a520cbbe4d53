//! The base protocol, driven through the pure core with explicit time (PROTOCOL.md §1–§6,
//! §10–§11): what every connection receives, in which order.

mod core_support;

use core_support::{Sim, T0, ip};
use mppd::config::CoreConfig;
use serde_json::{Value, json};

#[test]
fn b_is_sent_first_on_every_connection() {
    let mut sim = Sim::new();
    let c = sim.connect("1.2.3.4");
    assert_eq!(sim.take(c), vec![json!({"m":"b","code":"~return true"})]);
    assert_eq!(sim.frames[0].1, r#"[{"m":"b","code":"~return true"}]"#);
}

#[test]
fn hi_identifies_with_salted_address_hash() {
    let mut sim = Sim::with(CoreConfig { id_salt: "salt".into(), ..CoreConfig::default() });
    let c = sim.connect("::ffff:1.2.3.4");
    sim.take(c);
    sim.send(c, r#"[{"m":"hi","token":"from-another-server","code":true}]"#);
    let msgs = sim.take(c);
    assert_eq!(
        msgs,
        vec![json!({"m":"hi","t":T0,"permissions":{},
            "u":{"id":"ebe8d6ed6846396327f26dde","_id":"ebe8d6ed6846396327f26dde","name":"Anonymous","color":"#537ead"}})]
    );
    // A second hi is ignored.
    sim.send(c, r#"[{"m":"hi"}]"#);
    assert!(sim.take(c).is_empty());
}

#[test]
fn motd_is_sent_when_configured() {
    let mut sim = Sim::with(CoreConfig { motd: Some("Welcome!".into()), ..CoreConfig::default() });
    let c = sim.connect("1.2.3.4");
    sim.send(c, r#"[{"m":"hi"}]"#);
    assert_eq!(sim.take_m(c, "hi")[0]["motd"], "Welcome!");
}

#[test]
fn before_hi_only_hi_and_t_act() {
    let mut sim = Sim::new();
    let c = sim.connect("1.2.3.4");
    sim.take(c);
    sim.send(c, r#"[{"m":"devices","list":[]},{"m":"m","x":"1.00","y":"2.00"},{"m":"ch","_id":"lobby"},{"m":"+ls"},{"m":"bye"}]"#);
    assert!(sim.take(c).is_empty());
    assert!(sim.is_open(c));
    sim.send(c, r#"[{"m":"t","e":5}]"#);
    assert_eq!(sim.take(c), vec![json!({"m":"t","t":T0,"e":5})]);
}

#[test]
fn t_echoes_numeric_e_exactly() {
    let mut sim = Sim::new();
    let (c, _) = sim.hi("1.2.3.4");
    sim.send(c, r#"[{"m":"t","e":1628020489306.2944}]"#);
    assert!(sim.frames.last().unwrap().1.contains(r#""e":1628020489306.2944"#));
    sim.send(c, r#"[{"m":"t","e":"x"},{"m":"t"}]"#);
    assert_eq!(sim.take(c)[1..], [json!({"m":"t","t":T0}), json!({"m":"t","t":T0})]);
}

#[test]
fn hi_and_ch_in_one_frame_are_processed_in_order() {
    let mut sim = Sim::new();
    let c = sim.connect("1.2.3.4");
    sim.take(c);
    sim.send(c, r#"[{"m":"hi"},{"m":"ch","_id":"lobby"}]"#);
    assert_eq!(sim.names(c), ["hi", "ch", "c", "nq"]);
}

#[test]
fn joining_a_new_room_sends_ch_with_own_id_then_history_then_quota() {
    let mut sim = Sim::new();
    let (c, id) = sim.hi("1.2.3.4");
    sim.send(c, r#"[{"m":"ch","_id":"My room","set":{"lobby":true,"visible":true}}]"#);
    let (_, frame) = sim.frames[sim.frames.len() - 2].clone();
    let frame: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(frame[0]["m"], "ch");
    assert_eq!(frame[1], json!({"m":"c","c":[]}));
    let ch = &frame[0];
    assert_eq!(ch["p"], id.as_str());
    assert_eq!(ch["ch"]["_id"], "My room");
    assert_eq!(ch["ch"]["id"], "My room");
    assert_eq!(ch["ch"]["count"], 1);
    assert_eq!(ch["ch"]["settings"], json!({"visible":true,"chat":true,"crownsolo":false,"color":"#3b5054"}));
    assert_eq!(
        ch["ch"]["crown"],
        json!({"userId":id,"participantId":id,"time":T0,"startPos":{"x":50,"y":50},"endPos":{"x":50,"y":50}})
    );
    assert_eq!(ch["ppl"], json!([{"id":id,"_id":id,"name":"Anonymous","color":ch["ppl"][0]["color"],"x":200,"y":100}]));
    // The creator holds the crown: crown-holder quota (§8.2).
    assert_eq!(sim.take_m(c, "nq"), [json!({"m":"nq","allowance":600,"max":1800,"maxHistLen":3})]);
}

#[test]
fn lobbies_have_lobby_settings_no_crown_and_lobby_quota() {
    let mut sim = Sim::new();
    let (c, _) = sim.hi("1.2.3.4");
    sim.ch(c, "lobby");
    let msgs = sim.take(c);
    assert_eq!(
        msgs[0]["ch"]["settings"],
        json!({"lobby":true,"visible":true,"chat":true,"crownsolo":false,"color":"#73b3cc","color2":"#273546"})
    );
    assert!(msgs[0]["ch"].get("crown").is_none());
    assert_eq!(msgs[2], json!({"m":"nq","allowance":200,"max":600,"maxHistLen":3}));
    sim.ch(c, "test/x");
    let msgs = sim.take(c);
    assert_eq!(msgs[0]["ch"]["settings"]["lobby"], true);
    assert!(msgs[0]["ch"].get("crown").is_none());
}

#[test]
fn normal_room_member_gets_normal_quota() {
    let mut sim = Sim::new();
    sim.join(&ip(1), "room");
    let (b, _) = sim.hi(&ip(2));
    sim.ch(b, "room");
    assert_eq!(sim.take_m(b, "nq"), [json!({"m":"nq","allowance":400,"max":1200,"maxHistLen":3})]);
}

#[test]
fn others_see_p_on_join_and_bye_on_leave_and_ppl_is_complete() {
    let mut sim = Sim::new();
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, idb) = sim.hi(&ip(2));
    sim.ch(b, "room");
    let to_a = sim.take(a);
    assert_eq!(to_a.len(), 1);
    assert_eq!(to_a[0]["m"], "p");
    assert_eq!(to_a[0]["id"], idb.as_str());
    assert_eq!(to_a[0]["_id"], idb.as_str());
    assert_eq!((to_a[0]["x"].clone(), to_a[0]["y"].clone()), (json!(200), json!(100)));
    let ch = &sim.take_m(b, "ch")[0];
    let ids: Vec<&str> = ch["ppl"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [ida.as_str(), idb.as_str()]);
    sim.disconnect(b);
    assert_eq!(sim.take(a), [json!({"m":"bye","p":idb})]);
}

#[test]
fn changing_room_leaves_the_old_one() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "one");
    let (b, idb) = sim.join(&ip(2), "one");
    sim.take(a);
    sim.ch(b, "two");
    assert_eq!(sim.take(a), [json!({"m":"bye","p":idb})]);
    // Asking for the room one is already in changes nothing.
    sim.take(b);
    sim.ch(b, "two");
    assert!(sim.take(b).is_empty());
}

#[test]
fn invalid_channel_names_are_ignored() {
    let mut sim = Sim::new();
    let (c, _) = sim.hi("1.2.3.4");
    for bad in [json!(""), json!("   "), json!("a\nb"), json!("x".repeat(513)), json!(5), json!(null)] {
        let msg = json!([{"m":"ch","_id":bad}]).to_string();
        sim.send(c, &msg);
        sim.now += 1000;
    }
    assert!(sim.take(c).is_empty());
    sim.ch(c, &"x".repeat(512));
    assert_eq!(sim.names(c), ["ch", "c", "nq"]);
}

#[test]
fn holder_leaving_drops_the_crown_where_the_cursor_was() {
    let mut sim = Sim::new();
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.send(a, r#"[{"m":"m","x":"5.50","y":"20"}]"#);
    sim.take(b);
    sim.now += 1000;
    sim.disconnect(a);
    let msgs = sim.take(b);
    assert_eq!(msgs[0], json!({"m":"bye","p":ida}));
    let crown = &msgs[1]["ch"]["crown"];
    assert!(msgs[1].get("p").is_none());
    assert_eq!(crown["userId"], ida.as_str());
    assert!(crown.get("participantId").is_none());
    assert_eq!(crown["time"], sim.now);
    assert_eq!(crown["startPos"], json!({"x":5.5,"y":20}));
    assert_eq!(crown["endPos"]["x"], 10);
    let y = crown["endPos"]["y"].as_f64().unwrap();
    assert!((70.0..90.0).contains(&y), "{y}");
}

#[test]
fn unmoved_holder_drops_from_200_100() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.ch(a, "elsewhere");
    let ch = &sim.take_m(b, "ch")[0];
    assert_eq!(ch["ch"]["crown"]["startPos"], json!({"x":200,"y":100}));
    assert_eq!(ch["ch"]["crown"]["endPos"]["x"], 90);
}

#[test]
fn last_holder_gets_the_crown_back_on_rejoin() {
    let mut sim = Sim::new();
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.ch(a, "elsewhere");
    sim.take(a);
    sim.take(b);
    sim.now += 5000;
    sim.ch(a, "room");
    let own = sim.take(a);
    assert_eq!(own[0]["ch"]["crown"]["participantId"], ida.as_str());
    assert_eq!(own[2]["allowance"], 600);
    let to_b = sim.take(b);
    assert_eq!(to_b[0]["m"], "p");
    assert_eq!(to_b[1]["ch"]["crown"]["participantId"], ida.as_str());
    assert_eq!(to_b[1]["ch"]["crown"]["time"], sim.now);
}

#[test]
fn empty_normal_room_is_destroyed_and_bans_with_it() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "room");
    sim.disconnect(a);
    assert_eq!(sim.core.stats().channels, 0);
    let (b, idb) = sim.join(&ip(2), "room");
    let _ = b;
    // The new room's creator is the new holder.
    let (c, _) = sim.hi(&ip(3));
    sim.ch(c, "room");
    assert_eq!(sim.take_m(c, "ch")[0]["ch"]["crown"]["userId"], idb.as_str());
}

#[test]
fn tabs_of_one_user_are_one_participant() {
    let mut sim = Sim::new();
    let (other, _) = sim.join(&ip(9), "room");
    let (tab1, id) = sim.join(&ip(1), "room");
    sim.take(other);
    let (tab2, id2) = sim.hi(&ip(1));
    assert_eq!(id, id2);
    sim.ch(tab2, "room");
    let joined = sim.take(tab2);
    assert_eq!(joined[0]["p"], id.as_str());
    assert_eq!(joined[0]["ch"]["count"], 2);
    assert!(sim.take(other).is_empty(), "no second p");
    assert!(sim.take(tab1).is_empty());
    // Notes from one tab reach the other tab and the other user, not the sender.
    sim.send(tab1, r#"[{"m":"n","t":1,"n":[{"n":"a1","v":0.5}]}]"#);
    assert_eq!(sim.take_m(tab2, "n").len(), 1);
    assert_eq!(sim.take_m(other, "n").len(), 1);
    assert!(sim.take(tab1).is_empty());
    // The first tab leaving is not a bye; the last one is.
    sim.disconnect(tab1);
    assert!(sim.take(other).is_empty());
    sim.disconnect(tab2);
    assert_eq!(sim.take(other), [json!({"m":"bye","p":id})]);
}

#[test]
fn notes_are_validated_one_by_one_and_relayed_to_everyone_but_the_sender() {
    let mut sim = Sim::new();
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.take(a);
    sim.send(
        a,
        r#"[{"m":"n","t":1700000000000.25,"n":[
            {"n":"a1","v":0.5,"extra":1},{"n":"a1","s":1,"d":120},{"n":"c2","v":7,"d":-5,"s":"yes"},
            {"n":"b3","v":"loud","s":0},{"n":"c4","d":"soon"},{"n":5},"x",{"n":"abcdefghijklmnopq"},
            {"n":"d5","d":250}]}]"#,
    );
    let raw = sim.frames.iter().rev().find(|(c, _)| *c == b).unwrap().1.clone();
    assert!(raw.contains(r#""t":1700000000000.25"#), "{raw}");
    let n = sim.take_m(b, "n");
    assert_eq!(
        n,
        [json!({"m":"n","t":1700000000000.25_f64,"p":ida,"n":[
            {"n":"a1","v":0.5},{"n":"a1","d":120,"s":1},{"n":"c2","v":1,"d":0,"s":1},{"n":"b3"},{"n":"d5","d":250}]})]
    );
    assert!(sim.take(a).is_empty(), "never echoed to the sending connection");
    for bad in [
        r#"[{"m":"n","t":1,"n":[{"n":5}]}]"#,
        r#"[{"m":"n","t":"1","n":[{"n":"a1"}]}]"#,
        r#"[{"m":"n","n":[{"n":"a1"}]}]"#,
        r#"[{"m":"n","t":1,"n":{"n":"a1"}}]"#,
        r#"[{"m":"n","t":1,"n":[]}]"#,
    ] {
        sim.send(a, bad);
    }
    assert!(sim.take(b).is_empty());
}

/// One `n` frame of 100 notes: 100 points of note quota.
fn hundred_notes() -> String {
    json!([{"m":"n","t":1,"n":vec![json!({"n":"a1"}); 100]}]).to_string()
}

#[test]
fn note_quota_refuses_silently_and_refills_every_two_seconds() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "lobby");
    let (b, _) = sim.join(&ip(2), "lobby");
    sim.take(a);
    let hundred = hundred_notes();
    for _ in 0..6 {
        sim.send(a, &hundred);
    }
    assert_eq!(sim.take_m(b, "n").len(), 6);
    sim.send(a, r#"[{"m":"n","t":1,"n":[{"n":"a1"}]}]"#);
    assert_eq!(sim.take(b), Vec::<serde_json::Value>::new());
    assert!(sim.take(a).is_empty(), "refusals are silent");
    assert_eq!(sim.core.counters().notes_over_quota, 1);
    sim.advance(2000);
    sim.send(a, &hundred);
    sim.send(a, &hundred);
    assert_eq!(sim.take_m(b, "n").len(), 2);
    sim.send(a, &hundred);
    assert!(sim.take(b).is_empty());
}

#[test]
fn trusted_notes_give_everyone_the_trusted_quota_in_every_situation() {
    let trusted = || json!({"m":"nq","allowance":8000,"max":24000,"maxHistLen":3});
    let mut sim = Sim::with(CoreConfig { trusted_notes: true, ..CoreConfig::default() });
    let join = |sim: &mut Sim, n: u32, room: &str| {
        let (c, _) = sim.hi(&ip(n));
        sim.ch(c, room);
        c
    };
    let a = join(&mut sim, 1, "room");
    assert_eq!(sim.take_m(a, "nq"), [trusted()], "crown holder");
    let b = join(&mut sim, 2, "room");
    assert_eq!(sim.take_m(b, "nq"), [trusted()], "member");
    let l = join(&mut sim, 3, "lobby");
    assert_eq!(sim.take_m(l, "nq"), [trusted()], "lobby");
    // 24000 notes go through in one burst (the normal room allows 1200), the next one not.
    sim.take(a);
    let hundred = hundred_notes();
    for _ in 0..240 {
        sim.send(b, &hundred);
    }
    assert_eq!(sim.take_m(a, "n").len(), 240);
    sim.send(b, r#"[{"m":"n","t":1,"n":[{"n":"a1"}]}]"#);
    assert!(sim.take(a).is_empty());
    assert_eq!(sim.core.counters().notes_over_quota, 1);
}

#[test]
fn cursors_are_two_decimal_strings_and_skip_the_sender() {
    let mut sim = Sim::with(CoreConfig { cursor_interval_ms: 40, ..CoreConfig::default() });
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.take(a);
    let t1 = sim.now;
    sim.send(a, r#"[{"m":"m","x":25,"y":"63.5"}]"#);
    assert_eq!(sim.take(b), [json!({"m":"m","id":ida,"x":"25.00","y":"63.50"})]);
    assert!(sim.take(a).is_empty());
    // Within the interval moves are coalesced: only the newest is sent, when it falls due.
    sim.now += 10;
    sim.send(a, r#"[{"m":"m","x":1,"y":1}]"#);
    sim.send(a, r#"[{"m":"m","x":2,"y":2}]"#);
    assert!(sim.take(b).is_empty());
    assert_eq!(sim.core.next_deadline().map(mppd::Millis::as_ms), Some(t1 + 40));
    sim.advance(30);
    assert_eq!(sim.take(b), [json!({"m":"m","id":ida,"x":"2.00","y":"2.00"})]);
    // The stored position shows in ppl for newcomers.
    let (c, _) = sim.hi(&ip(3));
    sim.ch(c, "room");
    assert_eq!(sim.take_m(c, "ch")[0]["ppl"][0]["x"], "2.00");
    // Invalid coordinates are ignored.
    sim.now += 1000;
    sim.take(b);
    for bad in [
        r#"{"m":"m","x":"abc","y":1}"#,
        r#"{"m":"m","x":1}"#,
        r#"{"m":"m","x":"Infinity","y":1}"#,
        r#"{"m":"m","x":[],"y":1}"#,
    ] {
        sim.send(a, &format!("[{bad}]"));
    }
    assert!(sim.take(b).is_empty());
}

#[test]
fn chat_goes_to_everyone_including_the_sender_with_an_id_and_history() {
    let mut sim = Sim::new();
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.take(a);
    sim.send(a, r#"[{"m":"a","message":"Hello","reply_to":"9ad74fe6"}]"#);
    let to_a = sim.take(a);
    let to_b = sim.take(b);
    assert_eq!(to_a, to_b);
    let a_msg = &to_a[0];
    assert_eq!(a_msg["m"], "a");
    assert_eq!(a_msg["a"], "Hello");
    assert_eq!(a_msg["t"], sim.now);
    assert_eq!(a_msg["r"], "9ad74fe6");
    let id = a_msg["id"].as_str().unwrap();
    assert!(id.len() == 8 && id.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a_msg["p"]["_id"], ida.as_str());
    assert_eq!(a_msg["p"]["id"], ida.as_str());
    assert!(a_msg["p"].get("x").is_none());
    // A newcomer gets it in `c`.
    let (c, _) = sim.hi(&ip(3));
    sim.ch(c, "room");
    let history = sim.take_m(c, "c");
    assert_eq!(history[0]["c"], json!([a_msg]));
}

#[test]
fn invalid_chat_is_ignored() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "room");
    for bad in [json!(""), json!(" "), json!("a\rb"), json!("x".repeat(513)), json!(5), json!(null)] {
        sim.send(a, &json!([{"m":"a","message":bad}]).to_string());
    }
    assert!(sim.take(a).is_empty());
    sim.send(a, &json!([{"m":"a","message":"x".repeat(512),"reply_to":"x".repeat(33)}]).to_string());
    let msg = &sim.take(a)[0];
    assert!(msg.get("r").is_none());
}

#[test]
fn history_keeps_the_last_32_oldest_first() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "test/history");
    for i in 0..40 {
        sim.now += 10_000;
        sim.send(a, &json!([{"m":"t"},{"m":"a","message":format!("m{i}")}]).to_string());
    }
    let (b, _) = sim.hi(&ip(2));
    sim.ch(b, "test/history");
    let c = &sim.take_m(b, "c")[0]["c"];
    let texts: Vec<&str> = c.as_array().unwrap().iter().map(|m| m["a"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 32);
    assert_eq!(texts[0], "m8");
    assert_eq!(texts[31], "m39");
    assert!(c.as_array().unwrap().iter().all(|m| m["m"] == "a" && m["p"]["name"].is_string()));
}

#[test]
fn chat_rate_limit_drops_silently() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "lobby");
    for i in 0..6 {
        sim.send(a, &json!([{"m":"a","message":format!("m{i}")}]).to_string());
    }
    assert_eq!(sim.take_m(a, "a").len(), 4);
    sim.now += 6000;
    sim.send(a, r#"[{"m":"a","message":"again"}]"#);
    assert_eq!(sim.take_m(a, "a").len(), 1);
}

#[test]
fn userset_is_echoed_to_everyone_in_every_channel_of_the_user() {
    let mut sim = Sim::new();
    let (a1, ida) = sim.join(&ip(1), "one");
    let (a2, _) = sim.join(&ip(1), "two");
    let (b, _) = sim.join(&ip(2), "one");
    let (c, _) = sim.join(&ip(3), "two");
    sim.clear_all();
    sim.send(a1, r##"[{"m":"userset","set":{"name":"Lapis","color":"#FF8FF9"}}]"##);
    let unmoved = json!({"m":"p","id":ida,"_id":ida,"name":"Lapis","color":"#ff8ff9","x":200,"y":100});
    for conn in [a1, a2, b, c] {
        assert_eq!(sim.take(conn), std::slice::from_ref(&unmoved), "{conn:?}");
    }
    // The profile persists across reconnection.
    sim.disconnect(a1);
    sim.disconnect(a2);
    let (_, again) = sim.hi(&ip(1));
    assert_eq!(again, ida);
    let conn = sim.connect(&ip(1));
    sim.send(conn, r#"[{"m":"hi"}]"#);
    let hi = &sim.take_m(conn, "hi")[0];
    assert_eq!(hi["u"]["name"], "Lapis");
    assert_eq!(hi["u"]["color"], "#ff8ff9");
}

#[test]
fn userset_applies_each_field_on_its_own_and_ignores_bad_input() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "room");
    sim.send(a, r##"[{"m":"userset","set":{"name":"Good","color":"#fff"}}]"##);
    let p = &sim.take(a)[0];
    assert_eq!(p["name"], "Good");
    sim.send(a, r##"[{"m":"userset","set":{"name":"bad\nname","color":"#00ff00"}}]"##);
    let p = &sim.take(a)[0];
    assert_eq!((p["name"].as_str(), p["color"].as_str()), (Some("Good"), Some("#00ff00")));
    for bad in [
        r#"[{"m":"userset","set":"Lapis"}]"#,
        r#"[{"m":"userset"}]"#,
        r#"[{"m":"userset","set":{"name":"   "}}]"#,
        r#"[{"m":"userset","set":{"name":"Good"}}]"#,
        r#"[{"m":"userset","set":{"name":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}]"#,
    ] {
        sim.send(a, bad);
    }
    assert!(sim.take(a).is_empty());
}

#[test]
fn colour_changes_can_be_switched_off() {
    let mut sim = Sim::with(CoreConfig { allow_color_change: false, ..CoreConfig::default() });
    let (a, _) = sim.join(&ip(1), "room");
    sim.send(a, r##"[{"m":"userset","set":{"color":"#00ff00"}}]"##);
    assert!(sim.take(a).is_empty());
}

#[test]
fn channel_list_complete_then_incremental() {
    let mut sim = Sim::new();
    let (watcher, _) = sim.hi(&ip(9));
    let (a, _) = sim.join(&ip(1), "beta");
    sim.join(&ip(2), "alpha");
    sim.send(watcher, r#"[{"m":"+ls"}]"#);
    let ls = &sim.take_m(watcher, "ls")[0];
    assert_eq!(ls["c"], true);
    let names: Vec<&str> = ls["u"].as_array().unwrap().iter().map(|c| c["_id"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(ls["u"].as_array().unwrap().iter().all(|c| c["id"] == c["_id"] && c["count"] == 1));
    // A join updates the count.
    sim.join(&ip(3), "beta");
    let ls = &sim.take_m(watcher, "ls")[0];
    assert_eq!(ls["c"], false);
    assert_eq!(ls["u"].as_array().unwrap().len(), 1);
    assert_eq!((ls["u"][0]["_id"].as_str(), ls["u"][0]["count"].as_u64()), (Some("beta"), Some(2)));
    // The last one leaving shows a final count of 0.
    sim.disconnect(a);
    let ls = &sim.take_m(watcher, "ls")[0];
    assert_eq!(ls["u"][0]["count"], 1);
    // +ls again: complete list again.
    sim.send(watcher, r#"[{"m":"+ls"}]"#);
    assert_eq!(sim.take_m(watcher, "ls")[0]["u"].as_array().unwrap().len(), 2);
    let (alpha_conn, _) = (sim.join(&ip(4), "gamma").0, ());
    sim.take(watcher);
    sim.disconnect(alpha_conn);
    let ls = &sim.take_m(watcher, "ls")[0];
    assert_eq!((ls["u"][0]["_id"].as_str(), ls["u"][0]["count"].as_u64()), (Some("gamma"), Some(0)));
    // -ls stops updates.
    sim.send(watcher, r#"[{"m":"-ls"}]"#);
    sim.join(&ip(5), "delta");
    assert!(sim.take(watcher).is_empty());
}

#[test]
fn full_lobby_overflows_to_the_next_number() {
    let mut sim = Sim::new();
    for i in 0..20 {
        sim.join(&ip(i), "lobby");
    }
    let (late, _) = sim.hi(&ip(20));
    sim.ch(late, "lobby");
    assert_eq!(sim.take_m(late, "ch")[0]["ch"]["_id"], "lobby2");
    // A second tab of someone already in the full lobby still gets in.
    let (tab, _) = sim.hi(&ip(0));
    sim.ch(tab, "lobby");
    assert_eq!(sim.take_m(tab, "ch")[0]["ch"]["_id"], "lobby");
    // lobby1 and lobby02 count as numbers too.
    for i in 100..120 {
        sim.join(&ip(i), "lobby02");
    }
    let (late2, _) = sim.hi(&ip(200));
    sim.ch(late2, "lobby02");
    assert_eq!(sim.take_m(late2, "ch")[0]["ch"]["_id"], "lobby3");
}

#[test]
fn test_rooms_have_no_cap() {
    let mut sim = Sim::new();
    for i in 0..25 {
        sim.join(&ip(i), "test/big");
    }
    assert_eq!(sim.core.stats().participants, 25);
}

#[test]
fn ping_timeout_closes_with_4004_and_t_resets_it() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "room");
    let (b, idb) = sim.join(&ip(2), "room");
    sim.take(a);
    sim.advance(50_000);
    sim.send(a, r#"[{"m":"t","e":1}]"#);
    sim.advance(10_000);
    assert_eq!(sim.closed.get(&b), Some(&(4004, "Timed out.".to_string())));
    assert!(sim.is_open(a));
    assert_eq!(sim.take_m(a, "bye"), [json!({"m":"bye","p":idb})]);
    sim.advance(49_999);
    assert!(sim.is_open(a));
    sim.advance(1);
    assert!(!sim.is_open(a));
}

#[test]
fn no_hi_within_the_timeout_closes_even_with_pings() {
    let mut sim = Sim::new();
    let c = sim.connect("1.2.3.4");
    sim.advance(30_000);
    sim.send(c, r#"[{"m":"t"}]"#);
    sim.advance(30_000);
    assert_eq!(sim.closed.get(&c).map(|c| c.0), Some(4004));
}

#[test]
fn bye_closes_with_1000_and_cleans_up() {
    let mut sim = Sim::new();
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    sim.take(b);
    sim.send(a, r#"[{"m":"bye"},{"m":"a","message":"after"}]"#);
    assert_eq!(sim.closed.get(&a), Some(&(1000, String::new())));
    assert_eq!(sim.take(b)[0], json!({"m":"bye","p":ida}));
    assert_eq!(sim.core.stats().connections, 1);
}

#[test]
fn malformed_frames_and_elements_are_skipped() {
    let mut sim = Sim::new();
    let (a, _) = sim.join(&ip(1), "room");
    for bad in ["", "not json", "{\"m\":\"t\"}", "null", "[[[[[[]]]]]]", &"[".repeat(10_000)] {
        sim.send(a, bad);
    }
    assert!(sim.take(a).is_empty());
    sim.send(a, r#"[1, "t", {"m":1}, {"m":"nope"}, {"m":"t","e":2}]"#);
    assert_eq!(sim.take(a), [json!({"m":"t","t":sim.now,"e":2})]);
    assert!(sim.is_open(a));
}

#[test]
fn too_many_connections_for_one_user_closes_4009() {
    let mut sim = Sim::with(CoreConfig { max_connections_per_user: 2, ..CoreConfig::default() });
    sim.hi(&ip(1));
    sim.hi(&ip(1));
    let c = sim.connect(&ip(1));
    sim.take(c);
    sim.send(c, r#"[{"m":"hi"}]"#);
    let note = &sim.take(c)[0];
    assert_eq!(note["m"], "notification");
    assert_eq!(note["text"], "You already have the maximum amount of clients connected.");
    assert_eq!(sim.closed.get(&c), Some(&(4009, "Client limit reached.".to_string())));
}

#[test]
fn message_and_byte_quotas_close_4007_and_4002() {
    use mppd::config::Rate;
    let mut sim = Sim::with(CoreConfig {
        connection_messages: Rate::new(10, 10_000),
        connection_bytes: Rate::new(1000, 10_000),
        ..CoreConfig::default()
    });
    let (a, _) = sim.hi(&ip(1));
    sim.send(a, &format!("[{}]", [r#"{"m":"t"}"#; 11].join(",")));
    assert_eq!(sim.closed.get(&a), Some(&(4007, "Exceeded 10 messages per 10 seconds.".to_string())));
    let (b, _) = sim.hi(&ip(2));
    sim.send(b, &" ".repeat(1001));
    assert_eq!(sim.closed.get(&b), Some(&(4002, "Exceeded 1000 bytes per 10 seconds.".to_string())));
}

#[test]
fn random_ids_switch_gives_each_connection_its_own_user() {
    let mut sim = Sim::with(CoreConfig { random_ids: true, ..CoreConfig::default() });
    let (_, a) = sim.hi(&ip(1));
    let (_, b) = sim.hi(&ip(1));
    assert_ne!(a, b);
    assert_eq!(a.len(), 24);
}

#[test]
fn custom_id_derives_extra_ids_within_the_limit() {
    let mut sim = Sim::with(CoreConfig { custom_id_limit: 3, ..CoreConfig::default() });
    let (_, plain) = sim.hi(&ip(1));
    let mut ids = vec![plain];
    for k in [1, 2, 4] {
        let c = sim.connect(&ip(1));
        sim.send(c, &json!([{"m":"hi","customId":k}]).to_string());
        ids.push(sim.take_m(c, "hi")[0]["u"]["_id"].as_str().unwrap().to_string());
    }
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_eq!(ids[0], ids[3], "4 is over the limit: the address id");
}

#[test]
fn same_inputs_give_byte_identical_outputs() {
    fn run() -> Vec<(mppd::ConnId, String)> {
        let mut sim = Sim::new();
        let (a, _) = sim.join(&ip(1), "room");
        let (b, _) = sim.join(&ip(2), "room");
        let (w, _) = sim.hi(&ip(3));
        sim.send(w, r#"[{"m":"+ls"}]"#);
        for i in 0..10 {
            sim.join(&ip(10 + i), &format!("room{i}"));
        }
        sim.send(a, r#"[{"m":"a","message":"hi"},{"m":"m","x":1,"y":2}]"#);
        sim.disconnect(a);
        sim.send(b, r#"[{"m":"n","t":5,"n":[{"n":"a1"}]}]"#);
        sim.advance(100_000);
        sim.frames
    }
    assert_eq!(run(), run());
}

#[test]
fn long_number_texts_are_echoed_as_their_value_not_verbatim() {
    let mut sim = Sim::new();
    let (a, ida) = sim.join(&ip(1), "room");
    let (b, _) = sim.join(&ip(2), "room");
    let long = format!("1700000000000.{}1", "0".repeat(2000));
    sim.send(a, &format!(r#"[{{"m":"n","t":{long},"n":[{{"n":"a1"}}]}},{{"m":"t","e":{long}}}]"#));
    let to_b = sim.frames.iter().rev().find(|(c, _)| *c == b).unwrap().1.clone();
    assert_eq!(to_b, format!(r#"[{{"m":"n","t":1700000000000,"p":"{ida}","n":[{{"n":"a1"}}]}}]"#));
    let pong = sim.frames.last().unwrap().1.clone();
    assert!(pong.ends_with(r#""e":1700000000000}]"#), "{pong}");
}
