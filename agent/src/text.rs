//! Program output and failure texts shaped for a report or a job's reason: one short line.

/// `text` on one line (lines joined with ` / `), cut to `max` characters.
pub fn excerpt(text: &str, max: usize) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("  a\n\n b  \n", 10), "a / b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
