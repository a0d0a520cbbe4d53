//! Arbitrary bytes as a text frame from an identified connection in a room with company.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mppd::config::CoreConfig;
use mppd::{ConnId, Core, Input, Millis, Output, PeerInfo};

const NOW: Millis = Millis::from_ms(1_700_000_000_000);

fuzz_target!(|data: &[u8]| {
    // The shell only hands over valid UTF-8 (anything else is closed with 1007).
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut core = Core::new(CoreConfig::default());
    for (conn, ip) in [(1, "10.0.0.1"), (2, "10.0.0.2")] {
        let conn = ConnId(conn);
        core.handle(NOW, Input::Open { conn, peer: PeerInfo { ip: ip.parse().unwrap() } });
        core.handle(
            NOW,
            Input::Text { conn, text: r#"[{"m":"hi"},{"m":"ch","_id":"room"},{"m":"+ls"},{"m":"+custom"}]"# },
        );
    }
    while core.poll_output().is_some() {}
    core.handle(NOW.plus(1), Input::Text { conn: ConnId(1), text });
    core.handle(NOW.plus(100_000), Input::Tick);
    while let Some(output) = core.poll_output() {
        if let Output::Send { frame, .. } = output {
            // Everything the server sends is a JSON array.
            let value: serde_json::Value = serde_json::from_str(&frame).expect("output frames are JSON");
            assert!(value.is_array());
        }
    }
    if let Err(broken) = core.check_invariants() {
        panic!("{broken}");
    }
});
