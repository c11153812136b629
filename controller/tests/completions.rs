//! `boltfleet completions SHELL`: scripts that need no controller and complete real words.

use std::process::Command;

fn completions(shell: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_boltfleet"))
        .args(["completions", shell])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run boltfleet");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completion_completes_subcommands_in_a_real_bash() {
    let script = completions("bash");
    for word in ["rollout", "host", "token", "report", "completions"] {
        assert!(script.contains(word), "{word} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boltfleet.bash");
    std::fs::write(&path, &script).unwrap();
    // What bash does on `boltfleet rol<TAB>` and `boltfleet rollout st<TAB>`.
    let probe = r#"source "$1"
        COMP_WORDS=(boltfleet rol); COMP_CWORD=1; _boltfleet boltfleet rol boltfleet
        echo "${COMPREPLY[*]}"
        COMP_WORDS=(boltfleet rollout st); COMP_CWORD=2; _boltfleet boltfleet st rollout
        echo "${COMPREPLY[*]}""#;
    let out = Command::new("bash")
        .args(["-c", probe, "bash"])
        .arg(&path)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines, ["rollout", "start status"]);
}

#[test]
fn zsh_and_fish_scripts_name_the_command() {
    assert!(completions("zsh").starts_with("#compdef boltfleet"));
    let fish = completions("fish");
    assert!(fish.contains("complete -c boltfleet"), "{fish}");
    assert!(fish.contains("rollout"));
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_boltfleet"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}
