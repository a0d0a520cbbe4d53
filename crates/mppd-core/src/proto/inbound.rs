//! Reading client frames (PROTOCOL.md §1.4–§1.7): a frame is a JSON array of objects, each with a
//! string `"m"`. Every field is kept as borrowed raw JSON and checked by the handler that uses it,
//! so a field of the wrong type never rejects more than the rule for that field says.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Splits a frame into its elements; `None` if it is not a JSON array (the frame is ignored).
pub fn split_frame(text: &str) -> Option<Vec<&RawValue>> {
    serde_json::from_str(text).ok()
}

/// One inbound message: its name and every field any message reads, as raw JSON.
/// An element that is not an object, or whose `m` is not a string, does not parse (it is skipped).
#[derive(Debug, Default, Deserialize)]
pub struct Message<'a> {
    #[serde(borrow)]
    pub m: Cow<'a, str>,
    #[serde(borrow, rename = "_id")]
    pub user_or_channel_id: Option<&'a RawValue>,
    #[serde(borrow)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow)]
    pub set: Option<&'a RawValue>,
    #[serde(borrow)]
    pub message: Option<&'a RawValue>,
    #[serde(borrow)]
    pub reply_to: Option<&'a RawValue>,
    #[serde(borrow)]
    pub t: Option<&'a RawValue>,
    #[serde(borrow)]
    pub e: Option<&'a RawValue>,
    #[serde(borrow)]
    pub n: Option<&'a RawValue>,
    #[serde(borrow)]
    pub x: Option<&'a RawValue>,
    #[serde(borrow)]
    pub y: Option<&'a RawValue>,
    #[serde(borrow)]
    pub ms: Option<&'a RawValue>,
    #[serde(borrow)]
    pub data: Option<&'a RawValue>,
    #[serde(borrow)]
    pub target: Option<&'a RawValue>,
    #[serde(borrow, rename = "customId")]
    pub custom_id: Option<&'a RawValue>,
}

impl<'a> Message<'a> {
    pub fn parse(element: &'a RawValue) -> Option<Message<'a>> {
        serde_json::from_str(element.get()).ok()
    }
}

/// One element of an `n` message's note list, before validation (§5 `n`).
#[derive(Debug, Deserialize)]
pub struct NoteIn<'a> {
    #[serde(borrow)]
    pub n: Option<&'a RawValue>,
    #[serde(borrow)]
    pub v: Option<&'a RawValue>,
    #[serde(borrow)]
    pub s: Option<&'a RawValue>,
    #[serde(borrow)]
    pub d: Option<&'a RawValue>,
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
    fn frames_and_elements() {
        assert!(split_frame("{\"m\":\"hi\"}").is_none());
        assert!(split_frame("not json").is_none());
        let elements = split_frame(r#"[{"m":"hi"}, 5, {"m":3}, {"x":1}, {"m":"t","e":1.5}]"#).unwrap();
        let parsed: Vec<_> = elements.iter().map(|e| Message::parse(e).map(|m| m.m.into_owned())).collect();
        assert_eq!(parsed, vec![Some("hi".into()), None, None, None, Some("t".into())]);
    }

    #[test]
    fn escaped_names_parse() {
        let elements = split_frame(r#"[{"m":"\u0068i"}]"#).unwrap();
        assert_eq!(Message::parse(elements[0]).unwrap().m, "hi");
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
