//! End to end: an agent given several controllers (`controller = [A, B]`) fails over between
//! them. Two real controllers serve copies of one data dir (same CA, server certificate and
//! host record); the agent is a real process, `kill -9` is a real crash.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use boltfleet_tests::cluster::{eventually, point_at, row, Agent, Controller};

const WAIT: Duration = Duration::from_secs(60);
const HOST: &str = "web1";

/// The host's row in `ctl`'s fleet report, once `check` holds for it.
fn host_row(
    ctl: &Controller,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    eventually(what, WAIT, || {
        let report = ctl.report().ok()?;
        row(&report, HOST).filter(|r| check(r)).cloned()
    })
}

fn online(ctl: &Controller) -> Result<bool> {
    Ok(row(&ctl.report()?, HOST).is_some_and(|r| r["online"] == true))
}

/// An agent enrolled on a fresh controller in `base/a`, not started, its passbolt root an
/// empty directory (what it reports does not matter here, only where it reports).
fn enrolled(base: &Path) -> Result<(Controller, Agent)> {
    let ctl = Controller::start(&base.join("a"))?;
    let root = base.join("passbolt");
    std::fs::create_dir_all(&root)?;
    let agent = Agent::configure(&base.join("agent"), &ctl.url, "", &root)?;
    let token = ctl.token(HOST, "acme")?;
    let out = agent.enroll(&ctl, &token, &[])?;
    ensure!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((ctl, agent))
}

#[test]
fn an_agent_fails_over_to_the_next_controller_and_stays_there() -> Result<()> {
    let base = tempfile::tempdir()?;
    let (mut a, mut agent) = enrolled(base.path())?;
    // B gets A's state (the CA, the server certificate, the host's record), copied while A is
    // stopped; A then serves again on its address.
    a.proc.take().expect("A runs").terminate()?;
    let b = a.start_copy(&base.path().join("b"))?;
    a.serve()?;
    point_at(&agent, &[&a.url, &b.url])?;
    agent.start()?;

    host_row(&a, "the host online on A, the first listed", |r| {
        r["online"] == true
    })?;
    assert!(!online(&b)?, "the agent holds one stream, on A");

    a.kill9();
    host_row(&b, "the host online on B after A was killed", |r| {
        r["online"] == true
    })?;
    let log = agent.proc.as_ref().expect("agent runs").log_text();
    assert!(
        log.contains("failing over") && log.contains(&format!("next={}", b.url)),
        "the failover is logged with the controller it moves to: {log}"
    );

    // A is back: the agent stays where it works. B keeps getting its reports (three more), and
    // all the while A never sees the host online.
    a.serve()?;
    let mut seen = BTreeSet::new();
    eventually("three more reports on B with A back", WAIT, || {
        let report = b.report().ok()?;
        let on_b = row(&report, HOST)?;
        assert_eq!(on_b["online"], true, "the agent left B: {on_b}");
        assert!(!online(&a).unwrap_or(false), "the agent went back to A");
        seen.insert(on_b["last_seen"].as_str()?.to_string());
        (seen.len() > 3).then_some(())
    })?;
    assert!(!online(&a)?, "the agent went back to A");
    Ok(())
}

#[test]
fn a_list_whose_first_controller_is_unreachable_connects_to_the_second() -> Result<()> {
    let base = tempfile::tempdir()?;
    let (ctl, mut agent) = enrolled(base.path())?;
    // A port nobody listens on: connections to it are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let dead = format!("https://{dead}");
    point_at(&agent, &[&dead, &ctl.url])?;
    agent.start()?;
    host_row(&ctl, "the host online on the second controller", |r| {
        r["online"] == true
    })?;
    let log = agent.proc.as_ref().expect("agent runs").log_text();
    assert!(
        log.contains("failing over") && log.contains(&format!("controller={dead}")),
        "the unreachable controller is named in the log: {log}"
    );
    assert!(
        log.contains(&format!("controller={}", ctl.url)) && log.contains("connected"),
        "{log}"
    );
    Ok(())
}
