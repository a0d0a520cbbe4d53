//! Thousands of seeded pseudo-random steps across many connections (opens, closes, valid and
//! malformed messages, time passing), with every core invariant checked after each step and no
//! output ever addressed to a closed connection (the driver asserts that).

mod core_support;

use core_support::{Sim, ip};
use mppd::ConnId;
use mppd::config::CoreConfig;

/// A small deterministic generator for the test's choices (independent of the core's).
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ROOMS: &[&str] = &["lobby", "lobby2", "test/awkward", "test/x", "room", "Room", "other", "x"];

fn message(d: &mut Dice, ids: &[String]) -> String {
    let room = d.pick(ROOMS);
    let id =
        if ids.is_empty() || d.below(5) == 0 { "0123456789abcdef01234567".to_string() } else { d.pick(ids).clone() };
    let templates = [
        r#"{"m":"hi"}"#.to_string(),
        r#"{"m":"t","e":1.5}"#.to_string(),
        format!(r#"{{"m":"ch","_id":"{room}","set":{{"visible":false,"limit":2}}}}"#),
        r#"{"m":"chset","set":{"crownsolo":true}}"#.to_string(),
        format!(r#"{{"m":"ch","_id":"{room}"}}"#),
        r#"{"m":"a","message":"hello"}"#.to_string(),
        format!(r#"{{"m":"dm","_id":"{id}","message":"psst"}}"#),
        r#"{"m":"n","t":5,"n":[{"n":"a1","v":0.5},{"n":"b2","s":1}]}"#.to_string(),
        r#"{"m":"n","t":6,"n":[{"n":"c3","d":20}]}"#.to_string(),
        r#"{"m":"m","x":"12.5","y":3}"#.to_string(),
        r##"{"m":"userset","set":{"name":"Someone","color":"#123456"}}"##.to_string(),
        r##"{"m":"chset","set":{"color":"#654321","visible":true,"limit":""}}"##.to_string(),
        format!(r#"{{"m":"chown","id":"{id}"}}"#),
        r#"{"m":"chown"}"#.to_string(),
        format!(r#"{{"m":"kickban","_id":"{id}","ms":120000}}"#),
        format!(r#"{{"m":"unban","_id":"{id}"}}"#),
        r#"{"m":"+ls"}"#.to_string(),
        r#"{"m":"-ls"}"#.to_string(),
        r#"{"m":"+custom"}"#.to_string(),
        format!(r#"{{"m":"custom","data":{{"k":[1,2]}},"target":{{"mode":"ids","ids":["{id}"]}}}}"#),
        r#"{"m":"custom","data":1,"target":{"mode":"subscribed"}}"#.to_string(),
        r#"{"m":"n","t":"x","n":5}"#.to_string(),
        r#"{"m":"ch","_id":""}"#.to_string(),
        r#"{"m":"kickban","_id":5,"ms":-1}"#.to_string(),
        r#"{"m":"chset","set":[]}"#.to_string(),
        r#"5"#.to_string(),
        r#"{"m":null}"#.to_string(),
    ];
    if d.below(100) == 0 {
        return r#"[{"m":"bye"}]"#.to_string();
    }
    let count = 1 + d.below(3);
    let picked: Vec<&str> = (0..count).map(|_| d.pick(&templates).as_str()).collect();
    match d.below(20) {
        0 => "not json".to_string(),
        1 => format!("[{}", picked.join(",")),
        // Keep most connections alive past the ping timeout.
        _ => format!(r#"[{{"m":"t"}},{}]"#, picked.join(",")),
    }
}

fn run(seed: u64, steps: usize, config: CoreConfig) {
    let mut sim = Sim::with(config);
    let mut d = Dice(seed);
    let mut open: Vec<ConnId> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for step in 0..steps {
        match d.below(10) {
            0 | 1 if open.len() < 40 => {
                let conn = sim.connect(&ip(d.below(12) as u32));
                sim.send(conn, r#"[{"m":"hi"}]"#);
                if let Some(hi) = sim.take_m(conn, "hi").pop() {
                    ids.push(hi["u"]["_id"].as_str().unwrap_or_default().to_string());
                }
                if sim.is_open(conn) {
                    open.push(conn);
                }
            }
            2 if !open.is_empty() => {
                let conn = open.swap_remove(d.below(open.len()));
                if sim.is_open(conn) {
                    sim.disconnect(conn);
                }
            }
            3 => sim.advance(d.below(5_000) as u64),
            _ if !open.is_empty() => {
                let conn = *d.pick(&open);
                if sim.is_open(conn) {
                    let text = message(&mut d, &ids);
                    sim.send(conn, &text);
                }
                sim.now += d.below(300) as u64;
            }
            _ => {}
        }
        open.retain(|c| sim.is_open(*c));
        sim.clear_all();
        if let Err(broken) = sim.core.check_invariants() {
            panic!("seed {seed}, step {step}: {broken}");
        }
    }
    // The run reached the interesting states, not only refusals.
    let delivered = |m: &str| sim.frames.iter().filter(|(_, f)| f.contains(&format!(r#""m":"{m}""#))).count();
    for m in ["ch", "n", "a", "p", "bye", "ls"] {
        assert!(delivered(m) > 10, "seed {seed}: only {} {m} messages delivered", delivered(m));
    }
}

#[test]
fn invariants_hold_over_random_sessions() {
    for seed in 1..=8 {
        run(seed * 0x9e37_79b9, 2_500, CoreConfig { seed, ..CoreConfig::default() });
    }
}

#[test]
fn invariants_hold_with_tight_limits_and_small_lobbies() {
    let config =
        CoreConfig { lobby_capacity: 2, max_connections_per_user: 2, chat_history: 3, ..CoreConfig::default() };
    for seed in 1..=4 {
        run(seed * 7919, 2_500, config.clone());
    }
}
