//! End to end: staggered rollouts with real agents on fixture hosts. Waves across eight hosts
//! through a `kill -9` of the controller; a failing canary that stops the rollout before wave 2,
//! resume, manual promotion and abort with rollback.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use boltfleet_tests::cluster::{eventually, row, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::rollouts::wait_status;
use boltfleet_tests::site::Site;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(180);

/// Hosts `prefix1..=prefixN` at `version`, enrolled and reporting.
fn fleet(
    base: &Path,
    ctl: &Controller,
    prefix: &str,
    n: usize,
    version: &str,
) -> Result<Vec<(String, Site)>> {
    let mut sites = Vec::new();
    for i in 1..=n {
        let id = format!("{prefix}{i}");
        let mut site = Site::create(base, ctl, &id, PassboltHost::builder(version), false)?;
        let tenant = if i % 2 == 0 { "globex" } else { "acme" };
        site.enroll_and_start(ctl, &id, tenant)?;
        sites.push((id, site));
    }
    eventually("every host's first report", WAIT, || {
        let report = ctl.report().ok()?;
        sites
            .iter()
            .all(|(id, _)| {
                row(&report, id).is_some_and(|r| r["online"] == true && r["version"].is_string())
            })
            .then_some(())
    })?;
    Ok(sites)
}

/// host id -> state, over every wave.
fn host_states(status: &Value) -> BTreeMap<String, String> {
    status["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["hosts"].as_array().cloned().unwrap_or_default())
        .map(|h| {
            (
                h["host_id"].as_str().unwrap_or("").to_string(),
                h["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// How many update jobs the audit log shows started for each host.
fn jobs_started(ctl: &Controller) -> Result<BTreeMap<String, usize>> {
    let audit: Value = serde_json::from_str(&ctl.cli_ok(&["audit", "--format", "json"])?)?;
    let mut counts = BTreeMap::new();
    for entry in audit["entries"].as_array().into_iter().flatten() {
        if entry["action"] == "job.start" {
            *counts
                .entry(entry["target"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
    }
    Ok(counts)
}

#[test]
fn a_rollout_in_waves_completes_across_a_controller_kill() -> Result<()> {
    let base = tempfile::tempdir()?;
    let mut ctl = Controller::start(base.path())?;
    let sites = fleet(base.path(), &ctl, "web", 8, "1.3.2")?;

    let id = ctl
        .cli_ok(&[
            "rollout",
            "start",
            "--to",
            "1.4.0",
            "--waves",
            "1,50%,100%",
            "--max-parallel",
            "2",
            "--max-failures",
            "0",
            "--soak",
            "1s",
        ])?
        .trim()
        .to_string();
    let first = wait_status(&ctl, &id, "wave 2 under way", |s| {
        s["waves"][1]["hosts"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["state"] != "pending"))
    })?;
    // The canary finished before anything of wave 2 started.
    assert_eq!(first["waves"][0]["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(
        first["waves"][0]["hosts"][0]["state"], "succeeded",
        "{first}"
    );

    // An operator pause: hosts in flight finish, nothing new starts.
    ctl.cli_ok(&["rollout", "pause", &id])?;
    let paused = wait_status(&ctl, &id, "in-flight hosts to finish while paused", |s| {
        s["state"] == "paused" && !host_states(s).values().any(|st| st == "running")
    })?;
    let pending = host_states(&paused)
        .values()
        .filter(|s| *s == "pending")
        .count();
    assert!(pending > 0, "{paused}");
    let started = jobs_started(&ctl)?.len();
    assert_eq!(
        started + pending,
        8,
        "only the paused hosts are left: {paused}"
    );
    ctl.cli_ok(&["rollout", "resume", &id])?;

    ctl.kill9();
    ctl.serve()?;
    let done = wait_status(&ctl, &id, "the rollout to complete", |s| {
        s["state"] == "completed"
    })?;
    let states = host_states(&done);
    assert_eq!(states.len(), 8, "{done}");
    assert!(states.values().all(|s| s == "succeeded"), "{states:?}");
    for (host, site) in &sites {
        assert_eq!(site.head_tag()?, "v1.4.0", "{host}");
    }
    // No host updated twice, none forgotten, across the kill.
    let started = jobs_started(&ctl)?;
    assert_eq!(started.len(), 8, "{started:?}");
    assert!(started.values().all(|&n| n == 1), "{started:?}");
    Ok(())
}

#[test]
fn a_failing_canary_stops_the_rollout_and_abort_rolls_back_the_updated_hosts() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let sites = fleet(base.path(), &ctl, "h", 4, "1.3.2")?;
    // The same spec for the dry run and the real thing: the canary the plan names is the one
    // that runs first.
    let spec = [
        "--to",
        "1.4.0",
        "--waves",
        "1,50%,100%",
        "--max-parallel",
        "2",
        "--max-failures",
        "0",
        "--manual-promote",
        "--soak",
        "1s",
    ];
    let plan: Value = serde_json::from_str(
        &ctl.cli_ok(&[&["rollout", "plan"][..], &spec, &["--format", "json"]].concat())?,
    )?;
    let canary = plan["waves"][0]["hosts"][0]["host_id"]
        .as_str()
        .unwrap()
        .to_string();
    let site = |id: &str| &sites.iter().find(|(h, _)| h == id).unwrap().1;
    site(&canary).host.set_migration_error(Some("1.4.0"))?;
    let checksums: BTreeMap<String, BTreeMap<String, String>> = sites
        .iter()
        .map(|(h, s)| Ok((h.clone(), s.db.checksum_tables()?)))
        .collect::<Result<_>>()?;

    let id = ctl
        .cli_ok(&[&["rollout", "start"][..], &spec].concat())?
        .trim()
        .to_string();
    let paused = wait_status(&ctl, &id, "the rollout to pause", |s| {
        s["state"] == "paused"
    })?;
    assert!(
        paused["reason"].as_str().unwrap_or("").contains("fail"),
        "{paused}"
    );
    let states = host_states(&paused);
    assert_eq!(states[&canary], "rolled_back");
    assert!(
        states
            .iter()
            .filter(|(h, _)| **h != canary)
            .all(|(_, s)| s == "pending"),
        "{states:?}"
    );
    assert_eq!(jobs_started(&ctl)?.len(), 1, "nothing of wave 2 started");
    assert_eq!(site(&canary).db.checksum_tables()?, checksums[&canary]);

    // The operator accepts the failure and promotes: wave 2 runs, then waits for promotion.
    ctl.cli_ok(&["rollout", "resume", &id])?;
    wait_status(&ctl, &id, "wave 2 to wait for promotion", |s| {
        s["awaiting_promotion"] == true
    })?;
    assert_eq!(
        jobs_started(&ctl)?.len(),
        1,
        "manual promotion: wave 2 waits for the operator"
    );
    ctl.cli_ok(&["rollout", "promote", &id])?;
    let held = wait_status(&ctl, &id, "wave 2 to finish and wait for promotion", |s| {
        s["awaiting_promotion"] == true
            && s["waves"][1]["hosts"]
                .as_array()
                .is_some_and(|h| h.iter().all(|h| h["state"] == "succeeded"))
    })?;
    let wave2: Vec<String> = held["waves"][1]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(wave2.len(), 1);
    assert_eq!(site(&wave2[0]).head_tag()?, "v1.4.0");

    // Abort with rollback: the updated host goes back, the untouched ones stay untouched.
    ctl.cli_ok(&["rollout", "abort", &id, "--rollback"])?;
    let aborted = wait_status(&ctl, &id, "the rollback to finish", |s| {
        s["state"] == "aborted"
            && host_states(s)
                .get(&wave2[0])
                .is_some_and(|st| st == "rolled_back")
    })?;
    assert_eq!(site(&wave2[0]).head_tag()?, "v1.3.2", "{aborted}");
    assert_eq!(site(&wave2[0]).db.checksum_tables()?, checksums[&wave2[0]]);
    for (host, s) in &sites {
        if *host != canary && *host != wave2[0] {
            assert_eq!(s.head_tag()?, "v1.3.2", "{host} untouched");
            assert_eq!(s.db.checksum_tables()?, checksums[host], "{host} untouched");
        }
    }
    Ok(())
}
