//! End to end: the leader of two controllers (three etcd members) is paused with SIGSTOP
//! mid-wave past its lease; the other takes the scheduler over. Resumed, the old leader
//! writes no scheduler decision: while it alone runs (the new leader paused in turn, its
//! lease still held) no rollout record changes and no job is created. The rollout then
//! completes with one update job per host.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use boltfleet_controller::state::engine::Engine;
use boltfleet_controller::state::etcd_engine::LEASE_TTL;
use boltfleet_tests::cluster::point_at;
use boltfleet_tests::cluster::{eventually, row, run, Controller};
use boltfleet_tests::etcd::EtcdCluster;
use boltfleet_tests::ha::{self, updates_per_host};
use boltfleet_tests::rollouts::wait_status;
use boltfleet_tests::site::Site;

const WAIT: Duration = Duration::from_secs(180);
const PREFIX: &str = "/fence/";

fn signal(ctl: &Controller, sig: &str) -> Result<()> {
    let pid = ctl.proc.as_ref().expect("serving").child.id().to_string();
    ensure!(run(Command::new("kill").args([sig, &pid]))?
        .status
        .success());
    Ok(())
}

/// Every key and value of `tree` under the prefix, as stored.
fn tree(cluster: &EtcdCluster, name: &str) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let engine = ha::engine(cluster, PREFIX)?;
    let tree = engine.tree(name)?;
    let entries = tree
        .scan_prefix(b"")
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(entries)
}

#[test]
fn a_leader_paused_past_its_lease_writes_no_scheduler_decision_when_resumed() -> Result<()> {
    let cluster = EtcdCluster::start(3)?;
    let base = tempfile::tempdir()?;
    let store = |name: &str| format!("{}name = {name:?}\n", cluster.store_toml(PREFIX));
    let mut c0 = Controller::start_with_store(&base.path().join("c0"), &store("c0"))?;
    eventually("c0 to lead", Duration::from_secs(20), || {
        (ha::leader(&cluster, PREFIX).as_deref() == Some("c0")).then_some(())
    })?;
    let mut hosts = Vec::new();
    let mut sites = Vec::new();
    for i in 1..=4 {
        let id = format!("fence{i}");
        let mut site = Site::at(base.path(), &c0, &id, "1.3.2")?;
        site.enroll(&c0, &id, "acme")?;
        hosts.push(id);
        sites.push(site);
    }
    let c1 = c0.start_joined(&base.path().join("c1"), &store("c1"))?;
    for site in &mut sites {
        point_at(&site.agent, &[&c0.url, &c1.url])?;
        site.agent.start()?;
    }
    eventually("every host's first report", WAIT, || {
        let report = c0.report().ok()?;
        hosts
            .iter()
            .all(|id| row(&report, id).is_some_and(|r| r["version"].is_string()))
            .then_some(())
    })?;
    let id = c0
        .cli_ok(&[
            "rollout",
            "start",
            "--to",
            "1.4.0",
            "--waves",
            "1,100%",
            "--max-parallel",
            "1",
            "--max-failures",
            "0",
            "--soak",
            "1s",
        ])?
        .trim()
        .to_string();
    wait_status(&c0, &id, "the first wave under way", |s| {
        s["waves"][0]["hosts"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["state"] == "running"))
    })?;

    // Paused past its lease: c1 takes over.
    signal(&c0, "-STOP")?;
    std::thread::sleep(LEASE_TTL + Duration::from_secs(2));
    eventually("c1 to lead", Duration::from_secs(20), || {
        (ha::leader(&cluster, PREFIX).as_deref() == Some("c1")).then_some(())
    })?;

    // c0 resumed alone: c1 paused, its lease (and so the leader key) still held.
    signal(&c1, "-STOP")?;
    let (rollouts, jobs) = (tree(&cluster, "rollouts")?, tree(&cluster, "jobs")?);
    signal(&c0, "-CONT")?;
    std::thread::sleep(Duration::from_secs(4));
    let (rollouts_after, jobs_after) = (tree(&cluster, "rollouts")?, tree(&cluster, "jobs")?);
    assert_eq!(ha::leader(&cluster, PREFIX).as_deref(), Some("c1"));
    signal(&c1, "-CONT")?;
    assert!(
        rollouts == rollouts_after,
        "c0 changed a rollout record after its lease ended"
    );
    let new: Vec<_> = jobs_after
        .keys()
        .filter(|k| !jobs.contains_key(*k))
        .collect();
    assert!(
        new.is_empty(),
        "c0 created {} job(s) after its lease ended",
        new.len()
    );
    let log = c0.proc.as_ref().map(|p| p.log_text()).unwrap_or_default();
    assert!(log.contains("scheduler leadership lost"), "c0 stepped down");
    // Agents that went back to c0 while c1 was paused stay there, and a host's reports reach
    // only the controller holding its stream until presence is shared: c0 goes, so that
    // they report to the leader again.
    c0.kill9();

    let done = wait_status(&c1, &id, "the rollout to complete", |s| {
        s["state"] == "completed"
    })?;
    let updates = updates_per_host(&cluster, PREFIX)?;
    let once: BTreeMap<String, usize> = hosts.iter().map(|h| (h.clone(), 1)).collect();
    assert_eq!(updates, once, "update jobs per host: {done}");
    drop(sites);
    Ok(())
}
