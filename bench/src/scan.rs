//! Finding what the generator needs in server frames without parsing JSON: the kind of every
//! message (`"m":"kind"`) and the send time of notes (`"t":number`). This relies on the
//! server writing compact JSON (no spaces after `:`), which serde_json does. A `"m":"` inside a
//! string value cannot be mistaken for a key: quotes in strings are escaped.

use memchr::memmem::Finder;

pub struct Scanner {
    kind: Finder<'static>,
    time: Finder<'static>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner { kind: Finder::new(b"\"m\":\""), time: Finder::new(b"\"t\":") }
    }
}

impl Scanner {
    /// Calls `f(kind, rest)` for every message key in `payload`, in order; `rest` is the text
    /// after the kind's closing quote. Nested messages (chat history in `c`) are reported too.
    pub fn for_each_message(&self, payload: &[u8], mut f: impl FnMut(&[u8], &[u8])) {
        let mut pos = 0;
        while let Some(found) = self.kind.find(&payload[pos..]) {
            let start = pos + found + 5;
            let Some(len) = memchr::memchr(b'"', &payload[start..]) else {
                return;
            };
            let kind = &payload[start..start + len];
            pos = start + len + 1;
            f(kind, &payload[pos..]);
        }
    }

    /// The number after the first `"t":` in `text`.
    pub fn time(&self, text: &[u8]) -> Option<f64> {
        let at = self.time.find(text)? + 4;
        parse_number(&text[at..])
    }
}

/// Parses the JSON number at the start of `text`. Plain decimals (`1700000000123.456`, what the
/// generator sends and the server echoes) take a fast path; anything else goes to `str::parse`.
pub fn parse_number(text: &[u8]) -> Option<f64> {
    let mut int: u64 = 0;
    let mut i = 0;
    while i < text.len() && text[i].is_ascii_digit() && i < 18 {
        int = int * 10 + (text[i] - b'0') as u64;
        i += 1;
    }
    if i > 0 {
        let mut frac: u64 = 0;
        let mut scale = 1.0;
        let mut j = i;
        if text.get(i) == Some(&b'.') {
            j += 1;
            while j < text.len() && text[j].is_ascii_digit() && j - i <= 9 {
                frac = frac * 10 + (text[j] - b'0') as u64;
                scale *= 10.0;
                j += 1;
            }
        }
        if !matches!(text.get(j), Some(b'0'..=b'9' | b'e' | b'E' | b'.')) && j != i + 1 {
            return Some(int as f64 + frac as f64 / scale);
        }
    }
    parse_number_slow(text)
}

fn parse_number_slow(text: &[u8]) -> Option<f64> {
    let len =
        text.iter().position(|b| !matches!(b, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E')).unwrap_or(text.len());
    std::str::from_utf8(&text[..len]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_kinds_and_note_times_in_a_batch() {
        let s = Scanner::default();
        let frame = br#"[{"m":"n","t":1700000000123.456,"p":"ab","n":[{"n":"a1","v":0.5}]},{"m":"a","a":"say \"m\":\"n\"","t":5},{"m":"n","p":"cd","n":[{"n":"b2"}],"t":17}]"#;
        let mut seen = Vec::new();
        s.for_each_message(frame, |kind, rest| {
            seen.push((String::from_utf8(kind.to_vec()).unwrap(), (kind == b"n").then(|| s.time(rest)).flatten()))
        });
        assert_eq!(
            seen,
            vec![("n".to_string(), Some(1700000000123.456)), ("a".to_string(), None), ("n".to_string(), Some(17.0)),]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"12.5,"), Some(12.5));
        assert_eq!(parse_number(b"1700000000123.456}"), Some(1700000000123.456));
        assert_eq!(parse_number(b"1700000000123,"), Some(1700000000123.0));
        assert_eq!(parse_number(b"-3.25"), Some(-3.25));
        assert_eq!(parse_number(b"0.1234567890123"), Some(0.1234567890123));
        assert_eq!(parse_number(b"12345678901234567890"), Some(12345678901234567890.0));
        assert_eq!(parse_number(b"1e3}"), Some(1000.0));
        assert_eq!(parse_number(b"\"x\""), None);
    }
}
