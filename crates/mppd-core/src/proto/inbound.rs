//! Reading client frames (PROTOCOL.md §1.4–§1.7): a frame is a JSON array of objects, each with a
//! string `"m"`. Every field is kept as borrowed raw JSON and checked by the handler that uses it,
//! so a field of the wrong type never rejects more than the rule for that field says.

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Parses a frame into its elements in one pass; `None` if it is not a JSON array (the frame is
/// ignored). An element that is not an object, whose `m` is not a string, or that repeats a
/// field a message reads, is `None` (it is skipped; §1.6).
pub fn parse_frame(text: &str) -> Option<Vec<Option<Message<'_>>>> {
    serde_json::from_str::<Vec<Element<'_>>>(text).ok().map(|elements| elements.into_iter().map(|e| e.0).collect())
}

/// The message names the server knows (§5), parsed once from `m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    Hi,
    T,
    Bye,
    Devices,
    Ch,
    Userset,
    SubscribeList,
    UnsubscribeList,
    SubscribeCustom,
    UnsubscribeCustom,
    A,
    Dm,
    N,
    M,
    Chset,
    Chown,
    Kickban,
    Unban,
    Custom,
    /// Any other name: ignored (§1.6).
    Other,
}

impl Name {
    /// Every name, in the order of [`Name::index`].
    pub const ALL: [Name; 20] = [
        Name::Hi,
        Name::T,
        Name::Bye,
        Name::Devices,
        Name::Ch,
        Name::Userset,
        Name::SubscribeList,
        Name::UnsubscribeList,
        Name::SubscribeCustom,
        Name::UnsubscribeCustom,
        Name::A,
        Name::Dm,
        Name::N,
        Name::M,
        Name::Chset,
        Name::Chown,
        Name::Kickban,
        Name::Unban,
        Name::Custom,
        Name::Other,
    ];

    pub fn parse(m: &str) -> Name {
        match m {
            "hi" => Name::Hi,
            "t" => Name::T,
            "bye" => Name::Bye,
            "devices" => Name::Devices,
            "ch" => Name::Ch,
            "userset" => Name::Userset,
            "+ls" => Name::SubscribeList,
            "-ls" => Name::UnsubscribeList,
            "+custom" => Name::SubscribeCustom,
            "-custom" => Name::UnsubscribeCustom,
            "a" => Name::A,
            "dm" => Name::Dm,
            "n" => Name::N,
            "m" => Name::M,
            "chset" => Name::Chset,
            "chown" => Name::Chown,
            "kickban" => Name::Kickban,
            "unban" => Name::Unban,
            "custom" => Name::Custom,
            _ => Name::Other,
        }
    }

    /// The name as written on the wire (`"other"` for unknown names).
    pub const fn as_str(self) -> &'static str {
        match self {
            Name::Hi => "hi",
            Name::T => "t",
            Name::Bye => "bye",
            Name::Devices => "devices",
            Name::Ch => "ch",
            Name::Userset => "userset",
            Name::SubscribeList => "+ls",
            Name::UnsubscribeList => "-ls",
            Name::SubscribeCustom => "+custom",
            Name::UnsubscribeCustom => "-custom",
            Name::A => "a",
            Name::Dm => "dm",
            Name::N => "n",
            Name::M => "m",
            Name::Chset => "chset",
            Name::Chown => "chown",
            Name::Kickban => "kickban",
            Name::Unban => "unban",
            Name::Custom => "custom",
            Name::Other => "other",
        }
    }

    /// Position in [`Name::ALL`], for per-name counters.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One inbound message: its name and every field any message reads, as raw JSON, checked by the
/// handler that uses it.
#[derive(Debug)]
pub struct Message<'a> {
    pub name: Name,
    pub user_or_channel_id: Option<&'a RawValue>,
    pub id: Option<&'a RawValue>,
    pub set: Option<&'a RawValue>,
    pub message: Option<&'a RawValue>,
    pub reply_to: Option<&'a RawValue>,
    pub t: Option<&'a RawValue>,
    pub e: Option<&'a RawValue>,
    pub n: Option<&'a RawValue>,
    pub x: Option<&'a RawValue>,
    pub y: Option<&'a RawValue>,
    pub ms: Option<&'a RawValue>,
    pub data: Option<&'a RawValue>,
    pub target: Option<&'a RawValue>,
    pub custom_id: Option<&'a RawValue>,
}

/// One element of a frame as it is read: a message, or `None` for anything else.
struct Element<'a>(Option<Message<'a>>);

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ElementVisitor).map(Element)
    }
}

struct ElementVisitor;

/// A scalar where a message or a note object is expected reads as `None`: that element is
/// skipped, not the frame (PROTOCOL.md §1, "element not an object").
macro_rules! scalars_are_not_elements {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
}

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Option<Message<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m: Option<&'de RawValue> = None;
        let mut msg = Message {
            name: Name::Other,
            user_or_channel_id: None,
            id: None,
            set: None,
            message: None,
            reply_to: None,
            t: None,
            e: None,
            n: None,
            x: None,
            y: None,
            ms: None,
            data: None,
            target: None,
            custom_id: None,
        };
        // Fields seen, one bit each: a repeated field makes the element invalid, as it always has.
        let mut seen = 0u32;
        let mut valid = true;
        while let Some(key) = map.next_key::<Field>()? {
            let slot = match key {
                Field::M => &mut m,
                Field::UserOrChannelId => &mut msg.user_or_channel_id,
                Field::Id => &mut msg.id,
                Field::Set => &mut msg.set,
                Field::Message => &mut msg.message,
                Field::ReplyTo => &mut msg.reply_to,
                Field::T => &mut msg.t,
                Field::E => &mut msg.e,
                Field::N => &mut msg.n,
                Field::X => &mut msg.x,
                Field::Y => &mut msg.y,
                Field::Ms => &mut msg.ms,
                Field::Data => &mut msg.data,
                Field::Target => &mut msg.target,
                Field::CustomId => &mut msg.custom_id,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let bit = 1 << key as u32;
            valid &= seen & bit == 0;
            seen |= bit;
            // `null` reads as absent.
            *slot = map.next_value::<Option<&'de RawValue>>()?;
        }
        let Some(name) = string(m).filter(|_| valid) else { return Ok(None) };
        msg.name = Name::parse(&name);
        Ok(Some(msg))
    }

    /// An array of exactly one value per field, in the order of [`Message`]'s fields, reads as
    /// that message (as serde's derived readers always allowed).
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let Some([m, user_or_channel_id, id, set, message, reply_to, t, e, n, x, y, ms, data, target, custom_id]) =
            positional(seq)?
        else {
            return Ok(None);
        };
        let Some(name) = string(m) else { return Ok(None) };
        Ok(Some(Message {
            name: Name::parse(&name),
            user_or_channel_id,
            id,
            set,
            message,
            reply_to,
            t,
            e,
            n,
            x,
            y,
            ms,
            data,
            target,
            custom_id,
        }))
    }

    scalars_are_not_elements!();
}

/// Reads an array of exactly `N` values (`null` as absent); `None` for any other length.
fn positional<'de, A: SeqAccess<'de>, const N: usize>(
    mut seq: A,
) -> Result<Option<[Option<&'de RawValue>; N]>, A::Error> {
    let mut values = [None; N];
    let mut count = 0;
    while let Some(value) = seq.next_element::<Option<&'de RawValue>>()? {
        if let Some(slot) = values.get_mut(count) {
            *slot = value;
        }
        count += 1;
    }
    Ok((count == N).then_some(values))
}

/// The fields of a message that some handler reads.
#[derive(Clone, Copy)]
enum Field {
    M,
    UserOrChannelId,
    Id,
    Set,
    Message,
    ReplyTo,
    T,
    E,
    N,
    X,
    Y,
    Ms,
    Data,
    Target,
    CustomId,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "m" => Field::M,
                    "_id" => Field::UserOrChannelId,
                    "id" => Field::Id,
                    "set" => Field::Set,
                    "message" => Field::Message,
                    "reply_to" => Field::ReplyTo,
                    "t" => Field::T,
                    "e" => Field::E,
                    "n" => Field::N,
                    "x" => Field::X,
                    "y" => Field::Y,
                    "ms" => Field::Ms,
                    "data" => Field::Data,
                    "target" => Field::Target,
                    "customId" => Field::CustomId,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// The notes of an `n` message (§5 `n`), read in one pass over the list: one entry per element,
/// `None` for an element that is not an object with at most one of each field (it is skipped).
/// `None` as a whole when `n` is not an array.
pub fn parse_notes<'a>(raw: Option<&'a RawValue>) -> Option<Vec<Option<NoteIn<'a>>>> {
    let notes: Vec<NoteElement<'a>> = serde_json::from_str(raw?.get()).ok()?;
    Some(notes.into_iter().map(|n| n.0).collect())
}

/// One element of an `n` message's note list, before validation (§5 `n`).
#[derive(Debug, Default)]
pub struct NoteIn<'a> {
    pub n: Option<&'a RawValue>,
    pub v: Option<&'a RawValue>,
    pub s: Option<&'a RawValue>,
    pub d: Option<&'a RawValue>,
}

struct NoteElement<'a>(Option<NoteIn<'a>>);

/// The fields of a note.
#[derive(Clone, Copy)]
enum NoteField {
    N,
    V,
    S,
    D,
    Other,
}

impl<'de> Deserialize<'de> for NoteField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NoteFieldVisitor;
        impl Visitor<'_> for NoteFieldVisitor {
            type Value = NoteField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<NoteField, E> {
                Ok(match key {
                    "n" => NoteField::N,
                    "v" => NoteField::V,
                    "s" => NoteField::S,
                    "d" => NoteField::D,
                    _ => NoteField::Other,
                })
            }
        }
        deserializer.deserialize_identifier(NoteFieldVisitor)
    }
}

impl<'de> Deserialize<'de> for NoteElement<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoteVisitor).map(NoteElement)
    }
}

struct NoteVisitor;

impl<'de> Visitor<'de> for NoteVisitor {
    type Value = Option<NoteIn<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut note = NoteIn::default();
        let mut seen = 0u32;
        let mut valid = true;
        while let Some(key) = map.next_key::<NoteField>()? {
            let slot = match key {
                NoteField::N => &mut note.n,
                NoteField::V => &mut note.v,
                NoteField::S => &mut note.s,
                NoteField::D => &mut note.d,
                NoteField::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let bit = 1 << key as u32;
            valid &= seen & bit == 0;
            seen |= bit;
            *slot = map.next_value::<Option<&'de RawValue>>()?;
        }
        Ok(valid.then_some(note))
    }

    /// An array of exactly `[n, v, s, d]` reads as that note (as serde's derived readers always
    /// allowed).
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(positional(seq)?.map(|[n, v, s, d]| NoteIn { n, v, s, d }))
    }

    scalars_are_not_elements!();
}

/// The `target` of a `custom` message (§5 `custom`).
#[derive(Debug, Deserialize)]
pub struct CustomTarget<'a> {
    #[serde(borrow)]
    pub mode: Option<&'a RawValue>,
    #[serde(borrow)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow)]
    pub ids: Option<&'a RawValue>,
}

/// Parses a raw value as some type, `None` if it has another shape.
pub fn parse_as<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    serde_json::from_str(raw?.get()).ok()
}

/// A JSON string.
pub fn string<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    let raw = raw?;
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw.get()).ok().map(Cow::Owned),
    }
}

/// A finite JSON number (never a string; §4.4).
pub fn number(raw: Option<&RawValue>) -> Option<f64> {
    let text = raw?.get();
    // serde_json would also read a quoted number into f64 here if asked leniently; it is not.
    serde_json::from_str::<f64>(text).ok().filter(|v| v.is_finite())
}

/// A finite number given as a JSON number or as a numeric string (cursor coordinates, `limit`).
pub fn number_or_numeric_string(raw: Option<&RawValue>) -> Option<f64> {
    number(raw).or_else(|| {
        let s = string(raw)?;
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return None;
        }
        trimmed.parse::<f64>().ok().filter(|v| v.is_finite())
    })
}

/// JavaScript truthiness of a JSON value.
pub fn is_truthy(raw: Option<&RawValue>) -> bool {
    let Some(raw) = raw else { return false };
    match raw.get().trim() {
        "false" | "null" | "\"\"" => false,
        text if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) => {
            number(Some(raw)).is_some_and(|v| v != 0.0)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn a_message_may_be_an_array_of_every_field() {
        let fields = r#"["n",null,null,null,null,null,5,null,[],null,null,null,null,null,null]"#;
        let frame = format!("[{fields}]");
        let elements = parse_frame(&frame).unwrap();
        let n = elements[0].as_ref().unwrap();
        assert_eq!((n.name, n.t.map(RawValue::get)), (Name::N, Some("5")));
        assert!(parse_frame(r#"[["n"]]"#).unwrap()[0].is_none());
    }

    #[test]
    fn frames_and_elements() {
        assert!(parse_frame("{\"m\":\"hi\"}").is_none());
        assert!(parse_frame("not json").is_none());
        assert!(parse_frame("[{\"m\":\"hi\"}] x").is_none());
        let elements = parse_frame(
            r#"[{"m":"hi"}, 5, {"m":3}, {"x":1}, {"m":"t","e":1.5}, {"m":"a","m":"a"}, {"m":"zz"}, [1], null]"#,
        )
        .unwrap();
        let names: Vec<_> = elements.iter().map(|e| e.as_ref().map(|m| m.name)).collect();
        assert_eq!(names, vec![Some(Name::Hi), None, None, None, Some(Name::T), None, Some(Name::Other), None, None]);
        assert_eq!(elements[4].as_ref().and_then(|m| m.e).map(RawValue::get), Some("1.5"));
    }

    #[test]
    fn escaped_names_parse() {
        let elements = parse_frame(r#"[{"m":"\u0068i","\u0065":2}]"#).unwrap();
        let hi = elements[0].as_ref().unwrap();
        assert_eq!(hi.name, Name::Hi);
        assert_eq!(hi.e.map(RawValue::get), Some("2"));
    }

    #[test]
    fn notes_in_one_pass() {
        let list = raw(r#"[{"n":"a","v":0.5,"d":null}, 3, {"n":"b","n":"c"}, ["c",1,null,null], ["d"], {"x":1}]"#);
        let notes = parse_notes(Some(&list)).unwrap();
        let names: Vec<_> = notes.iter().map(|n| n.as_ref().map(|n| n.n.map(RawValue::get))).collect();
        assert_eq!(names, vec![Some(Some("\"a\"")), None, None, Some(Some("\"c\"")), None, Some(None)]);
        assert!(notes[0].as_ref().unwrap().d.is_none(), "null reads as absent");
        assert!(parse_notes(Some(&raw("{}"))).is_none());
        assert!(parse_notes(None).is_none());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(Some(&raw("1628020489306.2944"))), Some(1628020489306.2944));
        assert_eq!(number(Some(&raw("\"5\""))), None);
        assert_eq!(number_or_numeric_string(Some(&raw("\"50.30\""))), Some(50.3));
        assert_eq!(number_or_numeric_string(Some(&raw("\"Infinity\""))), None);
        assert_eq!(number_or_numeric_string(Some(&raw("\"\""))), None);
        assert_eq!(number(Some(&raw("1e999"))), None);
    }

    #[test]
    fn truthiness() {
        for t in ["true", "1", "-1", "\"x\"", "{}", "[]", "0.5"] {
            assert!(is_truthy(Some(&raw(t))), "{t}");
        }
        for f in ["false", "0", "-0", "\"\"", "null", "0.0"] {
            assert!(!is_truthy(Some(&raw(f))), "{f}");
        }
        assert!(!is_truthy(None));
    }
}
