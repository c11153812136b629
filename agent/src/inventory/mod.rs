//! What the agent reports about its passbolt host: version, git state, migrations, health, PHP
//! and disk space, gathered without ever failing (problems become data).

mod collect;
pub mod disk;
mod fingerprint;
pub mod git;
mod health;
pub mod healthcheck;
pub mod http;
pub mod migrations;
mod prober;
pub mod probes;
pub mod version_file;
pub mod worktree;

pub use collect::{assemble, collect, probe, Probed};
pub use fingerprint::fingerprint;
pub use prober::Prober;

/// `text` on one line (lines joined with ` / `), cut to `max` characters.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
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
