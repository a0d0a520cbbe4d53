//! Frame lengths are compared in 64 bits: a WebSocket header may announce up to 2^63 bytes,
//! and on a 32-bit target (`usize` = 32 bits) a length narrowed before the size check would
//! wrap, letting `2^32 + 12` pass as a 12-byte frame. The server must refuse such a frame with
//! 1009 whatever the target, and never act on the bytes that follow.

mod common;

use common::{Client, TestServer};
use std::io::Write;
use tungstenite::Message;

/// A masked text frame header with a 64-bit payload length, then `payload` (masked).
fn frame_with_length(length: u64, payload: &[u8]) -> Vec<u8> {
    let mask = [9u8, 8, 7, 6];
    let mut bytes = vec![0x81, 0x80 | 127];
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    bytes
}

fn refused_with_1009(length: u64) {
    let server = TestServer::new();
    let mut client = Client::connect(server.addr());
    assert_eq!(client.recv_json()[0]["m"], "b");
    let hi = br#"[{"m":"hi"}]"#;
    let stream = client.ws.get_mut();
    stream.write_all(&frame_with_length(length, hi)).expect("send the frame");
    stream.flush().expect("flush");
    // A `hi` answer here would mean the length was truncated to the 12 bytes that followed.
    loop {
        match client.recv() {
            Message::Close(frame) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1009), "length {length:#x}");
                return;
            }
            Message::Text(text) => panic!("length {length:#x}: the frame was read as {text}"),
            _ => {}
        }
    }
}

#[test]
fn length_of_2_pow_32_plus_payload_is_refused() {
    refused_with_1009((1 << 32) + 12);
}

#[test]
fn length_of_2_pow_32_is_refused() {
    refused_with_1009(1 << 32);
}

#[test]
fn length_just_over_the_limit_in_the_64_bit_form_is_refused() {
    // `max_message_bytes` defaults to 1 MiB; the 8-byte form is legal for any length.
    refused_with_1009((1 << 20) + 1);
}
