//! `xtask dist`: man pages that `man` renders and the completion scripts, from the real
//! clap definitions.

use std::path::Path;
use std::process::Command;

#[test]
fn dist_writes_man_pages_that_man_renders_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("dist")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let man = dir.path().join("man");
    for (page, says) in [
        ("controller/boltfleet.1", "rollout"),
        ("controller/boltfleet-rollout-start.1", "--max-parallel"),
        ("controller/boltfleet-controller.1", "serve"),
        ("agent/boltfleet-agent.1", "enroll"),
        ("agent/boltfleet-agent-run.1", "--config"),
    ] {
        let path = man.join(page);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(".TH"), "{page} has no .TH");
        let rendered = render(&path);
        let flat = rendered.replace('\u{2010}', "-").replace("\u{2212}", "-");
        assert!(flat.contains("NAME"), "{page}: {rendered}");
        assert!(
            flat.contains(says),
            "{page} does not mention {says}: {rendered}"
        );
    }
    for script in ["boltfleet.bash", "_boltfleet", "boltfleet.fish"] {
        let text = std::fs::read_to_string(dir.path().join("completions").join(script)).unwrap();
        assert!(text.contains("boltfleet"), "{script}");
    }
}

/// The page as `man -l` formats it (plain text, no pager).
fn render(path: &Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(path)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man is installed (scripts/ensure-deps.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
