//! Text from the fleet made safe to show: the one escaping every table and plain renderer uses,
//! and the one CSV cell rule. JSON output does not come here: it stays exact.
//!
//! Agents run on hosts an MSP's customers have root on, so a version, tag, health reason, step
//! name or output tail may hold anything: escape sequences that clear the screen or set the
//! window title, a line break that forges a table row, a bidi override that reorders what is
//! read. Each such character is shown as a visible escape (`\x1b`, `\n`, `\u{202e}`) instead.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: C0 and C1 controls and DEL (escape sequences,
/// line breaks, tabs), Unicode line and paragraph separators, zero-width and bidi formatting
/// characters, and the byte-order mark.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// One value on one line: every unsafe character (line breaks included) escaped. Every table
/// cell and every value put into a plain line goes through here.
pub fn text(value: &str) -> Cow<'_, str> {
    if !value.chars().any(is_unsafe) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A block of lines (an output tail, or a whole rendered text): line breaks kept, every other
/// unsafe character escaped. The last guard of plain output before it is written, so that no
/// escape sequence reaches the terminal even from a value a renderer forgot to pass through
/// [`text`].
pub fn lines(block: &str) -> Cow<'_, str> {
    if !block.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(block);
    }
    let mut out = String::with_capacity(block.len() + 8);
    for c in block.chars() {
        if c != '\n' && is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One CSV cell: escaped as [`text`], and a cell a spreadsheet would run as a formula (one
/// starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`, which
/// spreadsheets show as text.
pub fn csv_cell(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let escaped = text(value);
    if formula {
        format!("'{escaped}")
    } else {
        escaped.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings a hostile host sends, each with what must not survive.
    const HOSTILE: [&str; 6] = [
        "1.6.9\x1b[2J",
        "\x1b]0;owned\x07v1.6.9",
        "ok\nweb-9  acme  1.6.10  -  online",
        "a\rb",
        "\u{9b}31m red",
        "\u{202e}gnp.exe",
    ];

    fn has_raw_control(s: &str) -> bool {
        s.chars().any(is_unsafe)
    }

    #[test]
    fn text_escapes_every_control_and_keeps_the_rest_readable() {
        for hostile in HOSTILE {
            let shown = text(hostile);
            assert!(!has_raw_control(&shown), "{hostile:?} -> {shown:?}");
        }
        assert_eq!(text("1.6.9\x1b[2J"), "1.6.9\\x1b[2J");
        assert_eq!(text("\x1b]0;x\x07"), "\\x1b]0;x\\x07");
        assert_eq!(text("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(text("\u{202e}x"), "\\u{202e}x");
        assert_eq!(text("\u{9b}"), "\\u{9b}");
        assert!(matches!(text("Café 1.6.9 — ok"), Cow::Borrowed(_)));
    }

    #[test]
    fn lines_keeps_line_breaks_only() {
        let block = "line one\x1b[2J\nline two\r\n";
        assert_eq!(lines(block), "line one\\x1b[2J\nline two\\r\n");
        assert!(matches!(lines("a\nb\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn csv_cells_that_would_run_as_formulas_are_text() {
        assert_eq!(csv_cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        for start in ["+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"] {
            let cell = csv_cell(start);
            assert!(cell.starts_with('\''), "{start:?} -> {cell:?}");
            assert!(!has_raw_control(&cell), "{cell:?}");
        }
        assert_eq!(csv_cell("1.6.9"), "1.6.9");
        assert_eq!(csv_cell("a=b"), "a=b");
        assert_eq!(csv_cell("x\ny"), "x\\ny");
    }
}
