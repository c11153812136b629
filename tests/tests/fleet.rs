//! End to end: a controller and three agents on fixture passbolt hosts, real mTLS on loopback,
//! real git and MariaDB. The fleet report, controller restarts and revocation.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use boltfleet_tests::cluster::{eventually, row, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::site::Site;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn site(
    base: &Path,
    ctl: &Controller,
    name: &str,
    version: &str,
    pending: usize,
    health_cmd: bool,
) -> Result<Site> {
    Site::create(
        base,
        ctl,
        name,
        PassboltHost::builder(version).pending(pending),
        health_cmd,
    )
}

fn report_with(ctl: &Controller, check: impl Fn(&Value) -> bool) -> Result<Value> {
    eventually("the expected fleet report", WAIT, || {
        ctl.report().ok().filter(|r| check(r))
    })
}

#[test]
fn three_agents_report_and_the_inventory_survives_a_controller_restart() -> Result<()> {
    let base = tempfile::tempdir()?;
    let mut ctl = Controller::start(base.path())?;
    let mut web1 = site(base.path(), &ctl, "web1", "1.6.10", 0, true)?;
    let mut web2 = site(base.path(), &ctl, "web2", "1.3.0", 1, false)?;
    let mut web3 = site(base.path(), &ctl, "web3", "1.6.10", 0, true)?;
    // web3's database refuses its user: migration status and the healthcheck fail for real.
    web3.db.set_user_enabled(false)?;
    // Nothing of the install changes when the database is fixed: passbolt's commands see it at
    // the agent's slow probe interval, short here.
    web3.agent.set_top_level("probe_interval = \"1s\"")?;
    web1.enroll_and_start(&ctl, "web1", "acme")?;
    web2.enroll_and_start(&ctl, "web2", "acme")?;
    web3.enroll_and_start(&ctl, "web3", "globex")?;

    let report = report_with(&ctl, |r| {
        ["web1", "web2", "web3"].iter().all(|h| {
            row(r, h).is_some_and(|row| row["online"] == true && row["version"].is_string())
        })
    })?;
    let r1_first_seen = row(&report, "web1").unwrap()["last_seen"].clone();
    let (r1, r2, r3) = (
        row(&report, "web1").unwrap(),
        row(&report, "web2").unwrap(),
        row(&report, "web3").unwrap(),
    );
    assert_eq!(r1["version"], "1.6.10");
    assert_eq!(r2["version"], "1.3.0");
    assert_eq!(r3["version"], "1.6.10");
    assert_eq!(
        (r1["tenant"].as_str(), r3["tenant"].as_str()),
        (Some("acme"), Some("globex"))
    );
    assert_eq!(r1["healthy"], true, "{r1}");
    assert_eq!(r2["healthy"], true, "{r2}");
    assert_eq!(r3["healthy"], false, "{r3}");
    assert!(r3["health_reasons"].to_string().contains("atabase"), "{r3}");
    assert_eq!(r1["migrations_pending"], false);
    assert_eq!(r2["migrations_pending"], true, "{r2}");
    assert_eq!(r1["git_tag"], "v1.6.10");
    assert!(
        r1["last_seen"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{r1}"
    );
    // The fixture repository's newest release tag is v2.0.0: every v1 host is a major behind.
    assert_eq!(report["latest"], "2.0.0");
    for r in [r1, r2, r3] {
        assert_eq!(r["update"], "major", "{r}");
    }
    assert_eq!(report["versions"]["1.6.10"], 2);
    assert_eq!(report["versions"]["1.3.0"], 1);

    let against: Value =
        serde_json::from_str(&ctl.cli_ok(&["report", "--format", "json", "--latest", "1.6.10"])?)?;
    let classes: Vec<&Value> = ["web1", "web2", "web3"]
        .iter()
        .map(|h| &row(&against, h).unwrap()["update"])
        .collect();
    assert_eq!(classes, [&Value::Null, &Value::from("minor"), &Value::Null]);
    let against: Value =
        serde_json::from_str(&ctl.cli_ok(&["report", "--format", "json", "--latest", "1.3.2"])?)?;
    assert_eq!(row(&against, "web2").unwrap()["update"], "patch");

    // A fixed database shows up at the next report.
    web3.db.set_user_enabled(true)?;
    report_with(&ctl, |r| {
        row(r, "web3").is_some_and(|row| row["healthy"] == true)
    })?;

    // kill -9 and restart: the inventory is still there before any agent reconnects.
    // Reports are written to sled without an fsync each (it flushes every 200 ms), so a kill -9
    // may lose the last fraction of a second; the first report, seconds ago, is surely on disk.
    let seen_early = r1_first_seen.clone();
    ctl.kill9();
    web1.agent.proc.as_mut().unwrap().kill9();
    ctl.serve()?;
    let after = ctl.report()?;
    let r1 = row(&after, "web1").expect("web1 kept across restart");
    assert_eq!(r1["version"], "1.6.10");
    assert_eq!(r1["online"], false);
    assert!(
        r1["last_seen"].as_str() >= seen_early.as_str(),
        "{r1} vs {seen_early}"
    );
    // The other agents reconnect by themselves.
    report_with(&ctl, |r| {
        row(r, "web2").is_some_and(|x| x["online"] == true)
            && row(r, "web3").is_some_and(|x| x["online"] == true)
    })?;

    // The table and CSV views list every host.
    let table = ctl.cli_ok(&["hosts"])?;
    let csv = ctl.cli_ok(&["report", "--format", "csv"])?;
    for h in ["web1", "web2", "web3"] {
        assert!(table.contains(h) && csv.contains(h), "{table}\n{csv}");
    }
    drop(web2.host);
    Ok(())
}

#[test]
fn a_revoked_host_is_cut_off_and_refused() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let mut web1 = site(base.path(), &ctl, "web1", "1.5.1", 0, false)?;
    web1.enroll_and_start(&ctl, "web1", "acme")?;
    report_with(&ctl, |r| {
        row(r, "web1").is_some_and(|x| x["online"] == true)
    })?;

    ctl.cli_ok(&["host", "revoke", "web1"])?;
    let report = report_with(&ctl, |r| {
        row(r, "web1").is_some_and(|x| x["online"] == false)
    })?;
    assert_eq!(row(&report, "web1").unwrap()["revoked"], true);
    // The agent keeps trying and keeps being refused.
    let proc = web1.agent.proc.as_mut().unwrap();
    eventually("the agent to be refused twice", WAIT, || {
        let log = proc.log_text();
        (log.matches("controller unreachable").count() >= 2).then_some(())
    })?;
    assert!(proc.log_text().contains("revoked"), "{}", proc.log_text());
    assert_eq!(row(&ctl.report()?, "web1").unwrap()["online"], false);
    Ok(())
}

#[test]
fn an_unreachable_controller_is_retried_with_growing_delays() -> Result<()> {
    let base = tempfile::tempdir()?;
    let mut ctl = Controller::start(base.path())?;
    let mut web1 = site(base.path(), &ctl, "web1", "1.5.1", 0, false)?;
    let token = ctl.token("web1", "acme")?;
    assert!(web1.agent.enroll(&ctl, &token, &[])?.status.success());
    ctl.kill9();
    web1.agent.start()?;
    let proc = web1.agent.proc.as_mut().unwrap();
    let delays: Vec<u64> = eventually("four retries", WAIT, || {
        let delays: Vec<u64> = proc
            .log_text()
            .lines()
            .filter(|l| l.contains("controller unreachable"))
            .filter_map(|l| {
                l.split("retry_in_ms=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        (delays.len() >= 4).then_some(delays)
    })?;
    assert!(proc.is_running(), "the agent must not give up");
    // Jittered doubling: each delay lies within [ceiling/2, ceiling] of 1s, 2s, 4s, 8s.
    for (i, d) in delays.iter().take(4).enumerate() {
        let ceiling = 1000u64 << i;
        assert!(
            *d >= ceiling / 2 && *d <= ceiling,
            "delay {i} = {d} ms: {delays:?}"
        );
    }
    // And it comes back once the controller does.
    ctl.serve()?;
    report_with(&ctl, |r| {
        row(r, "web1").is_some_and(|x| x["online"] == true)
    })?;
    Ok(())
}
