//! `--flush-delay-ms`: output waits for the delay, then goes out on its own (the loop wakes for
//! it), several frames in one write.

mod common;

use common::{Client, TestServer, test_config};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn delayed_output_is_written_once_the_delay_has_passed() {
    let mut config = test_config();
    config.flush_delay_ms = 150;
    let server = TestServer::start(config);
    let mut a = Client::connect(server.addr());
    let mut b = Client::connect(server.addr());
    for c in [&mut a, &mut b] {
        c.send(&[json!({"m":"hi"}), json!({"m":"ch","_id":"test/delay"})]);
        c.expect_message("nq");
    }
    a.expect_message("p");
    let sent = Instant::now();
    a.send_text(r#"[{"m":"n","t":1,"n":[{"n":"a1"}]}]"#);
    a.send_text(r#"[{"m":"n","t":2,"n":[{"n":"b1"}]}]"#);
    let first = b.expect_message("n");
    let waited = sent.elapsed();
    assert_eq!(first["t"], 1);
    assert_eq!(b.expect_message("n")["t"], 2, "the second note follows, in order");
    // Nothing else happened on the server: only the delay's own wake-up wrote the notes.
    assert!(waited >= Duration::from_millis(100), "written after {waited:?}, before the delay");
}
