//! Writing server messages (PROTOCOL.md §6). Each function returns one JSON object; the core
//! wraps one or more of them in an array to make a frame.

use crate::time::Millis;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::rc::Rc;

/// A number written as an integer when it is whole (`50`, not `50.0`), as clients and the
/// protocol's examples show positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            s.serialize_i64(self.0 as i64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

/// A number the client sent that goes back out (`t` of notes, `e` of pings; §4.4): as written
/// when it is of ordinary length, so fractions survive untouched, otherwise as the value it
/// denotes, so a thousand-digit number cannot be multiplied across a room.
#[derive(Clone, Copy, Debug)]
pub enum Echo<'a> {
    Verbatim(&'a RawValue),
    Value(Num),
}

/// Longest number text echoed verbatim (an epoch time with a fraction is about 18 characters).
const MAX_VERBATIM_NUMBER: usize = 32;

impl<'a> Echo<'a> {
    /// `None` unless `raw` is a finite JSON number.
    pub fn of(raw: Option<&'a RawValue>) -> Option<Echo<'a>> {
        let raw = raw?;
        let value = crate::proto::inbound::number(Some(raw))?;
        Some(if raw.get().len() <= MAX_VERBATIM_NUMBER { Echo::Verbatim(raw) } else { Echo::Value(Num(value)) })
    }
}

impl Serialize for Echo<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Echo::Verbatim(raw) => raw.serialize(s),
            Echo::Value(num) => num.serialize(s),
        }
    }
}

/// A cursor coordinate: two-decimal strings once moved, the numbers 200/100 before (§3.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Coord {
    Unmoved(u32),
    At(f64),
}

impl Serialize for Coord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Coord::Unmoved(v) => s.serialize_u32(*v),
            Coord::At(v) => s.collect_str(&format_args!("{v:.2}")),
        }
    }
}

/// Participant info (§3.2). `x`/`y` are present in `ch.ppl` and `p` only.
#[derive(Clone, Debug, Serialize)]
pub struct ParticipantInfo<'a> {
    pub id: &'a str,
    #[serde(rename = "_id")]
    pub user_id: &'a str,
    pub name: &'a str,
    pub color: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<Coord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<Coord>,
}

/// A `{"x":…,"y":…}` position of the crown animation (§3.6).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Pos {
    pub x: Num,
    pub y: Num,
}

/// Channel info (§3.3), over the channel's own settings and crown types.
#[derive(Serialize)]
pub struct ChannelInfo<'a, S: Serialize, C: Serialize> {
    #[serde(rename = "_id")]
    pub name_id: &'a str,
    pub id: &'a str,
    pub count: usize,
    pub settings: &'a S,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crown: Option<C>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub banned: bool,
}

/// Serializes a message. Every type written here serializes infallibly (no maps with
/// non-string keys, no failing custom impls), so an error would be a programming mistake.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|err| {
        log::error!("cannot serialize an outbound message: {err}");
        String::from("{}")
    })
}

/// A frame of one message: `[message]`, written into `buf` (emptied first; a buffer reused
/// across messages saves an allocation each) and copied once into the shared frame.
pub fn frame_of<T: Serialize>(buf: &mut Vec<u8>, message: &T) -> Rc<str> {
    buf.clear();
    buf.push(b'[');
    if let Err(err) = serde_json::to_writer(&mut *buf, message) {
        log::error!("cannot serialize an outbound message: {err}");
        buf.truncate(1);
        buf.extend_from_slice(b"{}");
    }
    buf.push(b']');
    // serde_json writes UTF-8 only; the check is a formality that never fails.
    let frame = Rc::from(std::str::from_utf8(buf).unwrap_or("[{}]"));
    if buf.capacity() > MAX_KEPT_BUFFER {
        // A rare huge message does not keep its buffer.
        *buf = Vec::new();
    }
    frame
}

/// Capacity a reused serialization buffer keeps between messages.
const MAX_KEPT_BUFFER: usize = 64 * 1024;

pub const B: &str = r#"{"m":"b","code":"~return true"}"#;

#[derive(Serialize)]
struct Hi<'a> {
    m: &'static str,
    t: Millis,
    u: &'a ParticipantInfo<'a>,
    permissions: Empty,
    #[serde(skip_serializing_if = "Option::is_none")]
    motd: Option<&'a str>,
}

#[derive(Serialize)]
struct Empty {}

pub fn hi(now: Millis, user: &ParticipantInfo<'_>, motd: Option<&str>) -> String {
    to_json(&Hi { m: "hi", t: now, u: user, permissions: Empty {}, motd })
}

#[derive(Serialize)]
struct Pong<'a> {
    m: &'static str,
    t: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<Echo<'a>>,
}

/// `e` is echoed as the client wrote it (any finite number, fractions kept; §4.4).
pub fn pong(now: Millis, echo: Option<Echo<'_>>) -> String {
    to_json(&Pong { m: "t", t: now, e: echo })
}

/// Adds `"p":<own id>` to a serialized `ch` (§6 `ch`: only the receiver's own id).
pub fn with_own_id(ch: &str, own_id: &str) -> String {
    let body = ch.strip_suffix('}').unwrap_or(ch);
    format!("{body},\"p\":\"{own_id}\"}}")
}

/// `c`: chat history, each entry an already-serialized `a` message.
pub fn chat_history<'a>(entries: impl Iterator<Item = &'a str>) -> String {
    with_array(String::from(r#"{"m":"c","c":"#), entries)
}

/// Appends `[entries…]}` to the start of a message whose last field is that array.
fn with_array<'a>(mut out: String, entries: impl Iterator<Item = &'a str>) -> String {
    out.push('[');
    for (i, entry) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(entry);
    }
    out.push_str("]}");
    out
}

#[derive(Serialize)]
struct P<'a> {
    m: &'static str,
    #[serde(flatten)]
    info: &'a ParticipantInfo<'a>,
}

pub fn participant(info: &ParticipantInfo<'_>) -> String {
    to_json(&P { m: "p", info })
}

#[derive(Serialize)]
struct Cursor<'a> {
    m: &'static str,
    id: &'a str,
    x: Coord,
    y: Coord,
}

/// The frame of one cursor move, serialized straight into `buf` and shared by its recipients.
pub fn cursor_frame(buf: &mut Vec<u8>, id: &str, x: f64, y: f64) -> Rc<str> {
    frame_of(buf, &Cursor { m: "m", id, x: Coord::At(x), y: Coord::At(y) })
}

#[derive(Serialize)]
struct Bye<'a> {
    m: &'static str,
    p: &'a str,
}

pub fn bye(id: &str) -> String {
    to_json(&Bye { m: "bye", p: id })
}

/// A validated note, re-serialized with only the known fields (§5 `n`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoteOut<'a> {
    pub n: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s: Option<u8>,
}

#[derive(Serialize)]
struct Notes<'a> {
    m: &'static str,
    t: Echo<'a>,
    p: &'a str,
    n: &'a [NoteOut<'a>],
}

/// The frame of one `n` message, serialized straight into `buf` and shared by its recipients.
/// `t` is passed through exactly as received.
pub fn notes_frame(buf: &mut Vec<u8>, t: Echo<'_>, id: &str, notes: &[NoteOut<'_>]) -> Rc<str> {
    frame_of(buf, &Notes { m: "n", t, p: id, n: notes })
}

#[derive(Serialize)]
struct Chat<'a> {
    m: &'static str,
    id: &'a str,
    t: Millis,
    a: &'a str,
    p: &'a ParticipantInfo<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    r: Option<&'a str>,
}

pub fn chat(id: &str, now: Millis, text: &str, from: &ParticipantInfo<'_>, reply_to: Option<&str>) -> String {
    to_json(&Chat { m: "a", id, t: now, a: text, p: from, r: reply_to })
}

#[derive(Serialize)]
struct Dm<'a> {
    m: &'static str,
    id: &'a str,
    t: Millis,
    a: &'a str,
    sender: &'a ParticipantInfo<'a>,
    recipient: &'a ParticipantInfo<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    r: Option<&'a str>,
}

pub fn dm(
    id: &str,
    now: Millis,
    text: &str,
    sender: &ParticipantInfo<'_>,
    recipient: &ParticipantInfo<'_>,
    reply_to: Option<&str>,
) -> String {
    to_json(&Dm { m: "dm", id, t: now, a: text, sender, recipient, r: reply_to })
}

/// `ls` from already-serialized channel infos.
pub fn channel_list<'a>(complete: bool, entries: impl Iterator<Item = &'a str>) -> String {
    with_array(format!(r#"{{"m":"ls","c":{complete},"u":"#), entries)
}

#[derive(Serialize)]
struct Nq {
    m: &'static str,
    allowance: u32,
    max: u32,
    #[serde(rename = "maxHistLen")]
    max_hist_len: usize,
}

pub fn note_quota(allowance: u32, max: u32, max_hist_len: usize) -> String {
    to_json(&Nq { m: "nq", allowance, max, max_hist_len })
}

/// A notification (§3.8). Only operator-chosen text reaches it as `text`; never `html`.
#[derive(Debug, Serialize)]
pub struct Notification<'a> {
    pub title: &'a str,
    pub text: &'a str,
    pub duration: u32,
    pub target: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'a str>,
}

#[derive(Serialize)]
struct NotificationMsg<'a> {
    m: &'static str,
    #[serde(flatten)]
    n: &'a Notification<'a>,
}

pub fn notification(n: &Notification<'_>) -> String {
    to_json(&NotificationMsg { m: "notification", n })
}

/// The usual short notice in the room area (§9).
pub fn notice(text: &str) -> String {
    notification(&Notification { title: "Notice", text, duration: 7000, target: "#room", class: Some("short") })
}

#[derive(Serialize)]
struct Custom<'a> {
    m: &'static str,
    data: &'a RawValue,
    p: &'a str,
}

pub fn custom(data: &RawValue, sender: &str) -> String {
    to_json(&Custom { m: "custom", data, p: sender })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info<'a>(x: Option<Coord>) -> ParticipantInfo<'a> {
        ParticipantInfo { id: "a", user_id: "a", name: "N", color: "#000000", x, y: x }
    }

    #[test]
    fn coordinates() {
        assert_eq!(
            participant(&info(Some(Coord::At(50.3)))),
            r##"{"m":"p","id":"a","_id":"a","name":"N","color":"#000000","x":"50.30","y":"50.30"}"##
        );
        assert_eq!(
            participant(&info(Some(Coord::Unmoved(200)))),
            r##"{"m":"p","id":"a","_id":"a","name":"N","color":"#000000","x":200,"y":200}"##
        );
        assert_eq!(to_json(&Pos { x: Num(50.0), y: Num(77.25) }), r#"{"x":50,"y":77.25}"#);
    }

    #[test]
    fn own_id_is_appended() {
        assert_eq!(with_own_id(r#"{"m":"ch"}"#, "abc"), r#"{"m":"ch","p":"abc"}"#);
    }

    #[test]
    fn strings_are_escaped() {
        let text = "\"</script>\\";
        let out = chat("12345678", Millis::from_ms(1), text, &info(None), Some("r"));
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["a"], text);
        assert_eq!(back["r"], "r");
    }
}
