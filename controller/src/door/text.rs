//! Agent text made safe to show: control characters escaped, lengths cut on a char boundary.

use std::borrow::Cow;
use std::fmt;

/// `text` with every control character written as an escape (`\n`, `\t`, `\r`, `\u{1b}`, ...),
/// so that it stays one line and cannot drive a terminal; `keep_newlines` keeps `\n` and `\t`
/// as they are (multi-line output tails). Borrowed when nothing needed escaping.
pub fn escape_control(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_newlines && (c == '\n' || c == '\t');
    if !text.chars().any(|c| is_control(c) && !kept(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control(c) && !kept(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters, and the Unicode ones that reorder or hide text (bidi overrides,
/// zero-width marks, line and paragraph separators).
pub fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Agent text as a log field: escaped, one line, at most [`LOG_MAX`] bytes. Use it wherever a
/// string an agent sent is logged (`warn!(step = %loggable(&event.failed_step), ...)`).
pub fn loggable(text: &str) -> Loggable<'_> {
    Loggable(text)
}

/// Longest agent text written to a log line.
pub const LOG_MAX: usize = 256;

/// See [`loggable`].
pub struct Loggable<'a>(&'a str);

impl fmt::Display for Loggable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = cut(self.0, LOG_MAX);
        f.write_str(&escape_control(short, false))?;
        if short.len() < self.0.len() {
            write!(f, "...({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        let cases = [
            ("plain 1.6.10", false, "plain 1.6.10"),
            (
                "\x1b[2J\x1b]0;pwned\x07",
                false,
                "\\u{1b}[2J\\u{1b}]0;pwned\\u{7}",
            ),
            ("a\nb\tc\r", false, "a\\nb\\tc\\r"),
            ("a\nb\tc\r", true, "a\nb\tc\\r"),
            ("rtl\u{202e}txt", false, "rtl\\u{202e}txt"),
            ("ünïcode ok", false, "ünïcode ok"),
        ];
        for (input, keep, want) in cases {
            assert_eq!(escape_control(input, keep), want, "{input:?}");
        }
        assert!(matches!(escape_control("ok", false), Cow::Borrowed(_)));
    }

    #[test]
    fn cut_keeps_char_boundaries_and_loggable_says_how_long_it_was() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
        let long = "x".repeat(1000);
        let shown = loggable(&long).to_string();
        assert!(
            shown.len() < 300 && shown.ends_with("...(1000 bytes)"),
            "{shown}"
        );
        assert_eq!(
            loggable("forged\nINFO line").to_string(),
            "forged\\nINFO line"
        );
    }
}
