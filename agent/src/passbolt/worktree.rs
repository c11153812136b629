//! The one rule for what `git status` may show without the work tree counting as locally
//! modified: untracked entries under the install's runtime directories are passbolt's own
//! state (cache, sessions, logs, the v1.3.0 migration's `app/tmp/config/`), not a change.
//!
//! The inventory's `dirty` flag and the jobs' clean-tree preflight both go through
//! [`local_changes`], so what the report shows and what an update refuses never disagree.

use std::path::Path;

use super::version_file::{detect_layout, Layout};

/// Directories (relative to the passbolt root, with a trailing `/`) whose untracked contents
/// are the install's runtime state: CakePHP's `TMP` (and `LOGS`, which sits inside it in v1).
pub fn runtime_dirs(layout: Option<Layout>) -> &'static [&'static str] {
    match layout {
        Some(Layout::V1) => &["app/tmp/"],
        Some(Layout::Modern) => &["tmp/", "logs/"],
        None => &[],
    }
}

/// Whether one `git status --porcelain` line is runtime state: untracked (`??`) and under one
/// of `dirs`. Tracked files there (the cache placeholders) still count when changed or deleted.
pub fn is_runtime_state(line: &str, dirs: &[&str]) -> bool {
    let Some(path) = line.strip_prefix("?? ") else {
        return false;
    };
    // Paths with unusual characters come quoted; the directory prefix is plain ASCII.
    let path = path.strip_prefix('"').unwrap_or(path);
    dirs.iter().any(|dir| path.starts_with(dir))
}

/// The porcelain lines of the tree at `root` that are real local modifications (everything
/// but runtime state), and those that are runtime state.
pub fn local_changes(root: &Path, porcelain: &[String]) -> (Vec<String>, Vec<String>) {
    let dirs = runtime_dirs(detect_layout(root));
    porcelain
        .iter()
        .filter(|l| !l.trim().is_empty())
        .cloned()
        .partition(|l| !is_runtime_state(l, dirs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn untracked_runtime_entries_are_not_local_changes() {
        let dirs = runtime_dirs(Some(Layout::V1));
        for runtime in [
            "?? app/tmp/config/",
            "?? app/tmp/",
            "?? app/tmp/cache/models/myapp_cake_model",
            "?? \"app/tmp/sessions/sess \\303\\251\"",
        ] {
            assert!(is_runtime_state(runtime, dirs), "{runtime}");
        }
        for change in [
            " D app/tmp/cache/models/empty",
            " M app/tmp/cache/persistent/empty",
            "?? app/tmpfile.php",
            "?? app/Config/evil.php",
            "?? tmp/x",
            " M README.md",
        ] {
            assert!(!is_runtime_state(change, dirs), "{change}");
        }
        let modern = runtime_dirs(Some(Layout::Modern));
        assert!(is_runtime_state("?? tmp/cache/", modern));
        assert!(is_runtime_state("?? logs/error.log", modern));
        assert!(!is_runtime_state("?? app/tmp/config/", modern));
        assert!(!is_runtime_state("?? app/tmp/config/", runtime_dirs(None)));
    }

    #[test]
    fn local_changes_read_the_layout_from_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/Config")).unwrap();
        std::fs::write(dir.path().join("app/Config/version.php"), "<?php").unwrap();
        let (changes, runtime) = local_changes(
            dir.path(),
            &lines(&["?? app/tmp/config/", " M README.md", ""]),
        );
        assert_eq!(changes, [" M README.md"]);
        assert_eq!(runtime, ["?? app/tmp/config/"]);
    }
}
