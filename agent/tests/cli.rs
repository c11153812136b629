//! The agent binary's handling of bad input: one clear line, exit 64, nothing written.

use std::path::Path;
use std::process::Command;

use boltfleet_agent::config::AgentConfig;

const EXIT_CONFIG: i32 = 64;

fn agent(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_boltfleet-agent"))
        .args(args)
        .output()
        .expect("run agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const VALID: &str = "controller = 'https://127.0.0.1:1'\nstate_dir = '/nonexistent/state'\n[passbolt]\nroot = '/nonexistent/passbolt'\n";

#[test]
fn the_example_config_loads_with_every_section() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent.example.toml");
    let config = AgentConfig::load(&path).unwrap();
    assert_eq!(config.passbolt.web_user.as_deref(), Some("www-data"));
    assert_eq!(config.report_interval.as_secs(), 30);
    assert_eq!(config.mysql.unwrap().database, "passbolt");
    assert_eq!(config.backup.unwrap().keep, 5);
    assert_eq!(config.jobs.keep_journals, 50);
    assert_eq!(config.jobs.journal_max_age.as_secs(), 30 * 24 * 3600);
    assert!(config.maintenance.unwrap().flag_file.is_some());
    assert_eq!(
        config.passbolt.healthcheck_command.unwrap()[0],
        "./app/Console/cake"
    );
    assert_eq!(config.controllers, ["https://boltfleet.example.net:7443"]);
    // The list form it shows, commented out, loads too.
    let text = std::fs::read_to_string(&path).unwrap();
    let single = "controller = \"https://boltfleet.example.net:7443\"\n# controller = [";
    assert!(text.contains(single), "the example shows both forms");
    let dir = tempfile::tempdir().unwrap();
    let listed = write_config(dir.path(), &text.replace(single, "controller = ["));
    let config = AgentConfig::load(Path::new(&listed)).unwrap();
    assert_eq!(config.controllers.len(), 2);
}

#[test]
fn config_errors_exit_64_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "report_interval = '1s'\n[passbolt]\nroot = '/x'\n",
            "controller",
        ),
        (&format!("{VALID}bogus = 1\n"), "bogus"),
        (&VALID.replace("https://", "http://"), "controller"),
        (
            &format!("{VALID}web_user = 'www-data'\nhealthcheck_url = 'ftp://x'\n"),
            "healthcheck_url",
        ),
        (
            &VALID.replace("/nonexistent/passbolt", "relative/path"),
            "passbolt.root",
        ),
        (&format!("report_interval = 'soon'\n{VALID}"), "soon"),
        ("controller = [", "line 1"),
        (
            &VALID.replace(
                "'https://127.0.0.1:1'",
                "['https://127.0.0.1:1', 'http://127.0.0.1:2']",
            ),
            "controller[1]",
        ),
        (
            &VALID.replace(
                "'https://127.0.0.1:1'",
                "['https://127.0.0.1:1', 'https://127.0.0.1:1/']",
            ),
            "listed twice",
        ),
        (
            &VALID.replace(
                "'https://127.0.0.1:1'",
                &format!("[{}]", vec!["'https://127.0.0.1:1'"; 17].join(", ")),
            ),
            "at most 16",
        ),
        (
            &format!("{VALID}[jobs]\nkeep_journals = 0\n"),
            "jobs.keep_journals",
        ),
        (
            &format!("{VALID}[jobs]\nkeep_journals = 'many'\n"),
            "jobs.keep_journals",
        ),
        (
            &format!("{VALID}[jobs]\njournal_max_age = 'soon'\n"),
            "jobs.journal_max_age",
        ),
    ];
    for (text, named) in cases {
        let path = write_config(dir.path(), text);
        let (code, stderr) = agent(&["inventory", "--config", &path]);
        assert_eq!(code, EXIT_CONFIG, "{text:?}: {stderr}");
        assert!(stderr.contains(named), "{text:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    let (code, stderr) = agent(&["run", "--config", "/nonexistent/agent.toml"]);
    assert_eq!(code, EXIT_CONFIG);
    assert!(stderr.contains("/nonexistent/agent.toml"), "{stderr}");
}

#[test]
fn run_before_enrollment_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), VALID);
    let (code, stderr) = agent(&["run", "--config", &path]);
    assert_eq!(code, EXIT_CONFIG, "{stderr}");
    assert!(stderr.contains("enrolled"), "{stderr}");
}

#[test]
fn a_malformed_token_or_pin_is_refused_before_any_network_or_disk_work() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = VALID.replace("/nonexistent/state", &state.to_string_lossy());
    let path = write_config(dir.path(), &text);
    let pin = format!("sha256:{}", "a".repeat(64));
    for (token, pin, named) in [
        ("not-a-token", pin.as_str(), "token"),
        ("bf1.web1.00", pin.as_str(), "token"),
        (
            &format!("bf1.web1.{}", "ab".repeat(32)),
            "sha256:abc",
            "pin",
        ),
    ] {
        let (code, stderr) = agent(&[
            "enroll",
            "--controller",
            "https://127.0.0.1:1",
            "--token",
            token,
            "--ca-pin",
            pin,
            "--config",
            &path,
        ]);
        assert_eq!(code, EXIT_CONFIG, "{stderr}");
        assert!(stderr.to_lowercase().contains(named), "{stderr}");
        assert!(
            !state.exists(),
            "nothing may be written on a refused enrollment"
        );
    }
}
