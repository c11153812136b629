//! End to end: the load generator against a real controller. Its simulated agents enroll
//! through the controller's CA, report over their own mTLS streams, and answer a real rollout's
//! jobs; the controller's report and the generator's summary agree.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use boltfleet_tests::cluster::{bin, eventually, row, Controller, Proc};
use serde_json::Value;

const AGENTS: usize = 12;
const WAIT: Duration = Duration::from_secs(120);

#[test]
fn simulated_agents_report_and_run_a_rollout() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let mut cmd = Command::new(bin("boltfleet-loadgen"));
    cmd.arg("--data-dir")
        .arg(&ctl.dir)
        .args(["--agents", &AGENTS.to_string()])
        .args(["--duration", "10m", "--report-interval", "1s"])
        .args([
            "--job-seconds",
            "0.5",
            "--tenants",
            "3",
            "--source-addrs",
            "3",
        ]);
    let stdout = base.path().join("loadgen.out");
    let mut loadgen = Proc::spawn("loadgen", cmd, &stdout)?;

    let hosts: Vec<String> = (0..AGENTS).map(|i| format!("load-{i:05}")).collect();
    eventually("every simulated host online at 4.9.0", WAIT, || {
        let report = ctl.report().ok()?;
        hosts
            .iter()
            .all(|h| {
                row(&report, h).is_some_and(|r| r["online"] == true && r["version"] == "4.9.0")
            })
            .then_some(())
    })?;

    let id = ctl
        .cli_ok(&[
            "rollout",
            "start",
            "--to",
            "4.9.1",
            "--waves",
            "1,50%,100%",
            "--max-parallel",
            "4",
            "--max-failures",
            "0",
            "--soak",
            "1s",
        ])?
        .trim()
        .to_string();
    eventually("the rollout to complete", WAIT, || {
        let status: Value = serde_json::from_str(
            &ctl.cli_ok(&["rollout", "status", &id, "--format", "json"])
                .ok()?,
        )
        .ok()?;
        (status["state"] == "completed").then_some(())
    })?;
    let report = ctl.report()?;
    for h in &hosts {
        assert_eq!(row(&report, h).unwrap()["version"], "4.9.1", "{h}");
    }

    assert_eq!(loadgen.terminate()?, Some(0), "{}", loadgen.log_text());
    let log = loadgen.log_text();
    let summary: Value = serde_json::from_str(log.lines().last().unwrap_or_default())?;
    assert_eq!(summary["agents"], AGENTS);
    assert_eq!(summary["connected"], AGENTS, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["jobs_succeeded"], AGENTS, "{summary}");
    let (sent, acked) = (
        summary["reports_sent"].as_u64().unwrap(),
        summary["reports_acked"].as_u64().unwrap(),
    );
    // Reports still in flight when the run stopped are the only ones not acknowledged.
    assert!(
        acked > 0 && acked <= sent && sent - acked <= AGENTS as u64,
        "{summary}"
    );
    assert!(summary["p99_ms"].as_f64().unwrap() > 0.0, "{summary}");
    Ok(())
}

#[test]
fn bad_flags_exit_64_with_one_line_naming_the_flag() -> Result<()> {
    let out = Command::new(bin("boltfleet-loadgen"))
        .args([
            "--data-dir",
            "/nonexistent",
            "--agents",
            "5",
            "--fail-rate",
            "1.5",
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains("--fail-rate") && err.lines().count() == 1,
        "{err}"
    );
    Ok(())
}
