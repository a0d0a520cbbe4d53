//! Validation of client-supplied strings, colours and numbers (PROTOCOL.md §4).

/// Longest chat or DM text, in UTF-16 code units.
pub const MAX_CHAT_LEN: usize = 512;
/// Longest user name.
pub const MAX_NAME_LEN: usize = 40;
/// Longest channel name.
pub const MAX_CHANNEL_NAME_LEN: usize = 512;
/// Longest `reply_to` id.
pub const MAX_REPLY_TO_LEN: usize = 32;
/// Longest note name.
pub const MAX_NOTE_NAME_LEN: usize = 16;

/// Characters no user string may contain: line breaks, tabs, NUL and bidi overrides (§4.1).
const FORBIDDEN: [char; 10] = [
    '\u{000A}', '\u{000D}', '\u{000B}', '\u{0000}', '\u{0009}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{202B}',
    '\u{200F}',
];

/// Length as JavaScript counts it (UTF-16 code units).
pub fn js_length(s: &str) -> usize {
    s.encode_utf16().count()
}

/// §4.1 and §4.2: not empty, not only spaces, no forbidden character, at most `max_len` units.
/// Invalid strings are rejected, never repaired.
pub fn is_valid_text(s: &str, max_len: usize) -> bool {
    !s.trim().is_empty() && !s.contains(FORBIDDEN) && js_length(s) <= max_len
}

/// §4.3: `#` and six hex digits in any case, returned lowercase. Three-digit forms are refused.
pub fn parse_color(s: &str) -> Option<String> {
    let digits = s.strip_prefix('#')?;
    if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_hexdigit()) { Some(s.to_ascii_lowercase()) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(is_valid_text("Hello", 512));
        assert!(!is_valid_text("", 512));
        assert!(!is_valid_text("   ", 512));
        for bad in
            ["a\nb", "a\rb", "a\u{b}b", "a\0b", "a\tb", "\u{202e}x", "\u{2066}x", "\u{2067}x", "\u{202b}x", "\u{200f}x"]
        {
            assert!(!is_valid_text(bad, 512), "{bad:?}");
        }
        // Length counts UTF-16 units: an emoji is two.
        assert!(is_valid_text(&"😀".repeat(20), 40));
        assert!(!is_valid_text(&"😀".repeat(21), 40));
        assert!(is_valid_text(&"é".repeat(512), 512));
    }

    #[test]
    fn colours() {
        assert_eq!(parse_color("#FF8ff9").as_deref(), Some("#ff8ff9"));
        assert_eq!(parse_color("#fff"), None);
        assert_eq!(parse_color("ff8ff9"), None);
        assert_eq!(parse_color("#ff8ff9a"), None);
        assert_eq!(parse_color("#gg8ff9"), None);
    }
}
