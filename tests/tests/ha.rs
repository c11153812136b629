//! End to end: two controllers on one etcd prefix (three real members), one scheduler
//! elected between them, real agents on fixture hosts that know both controllers. A rollout
//! in waves goes on across a `kill -9` of the leader: the other takes the scheduler over
//! within 15 s and every host is updated exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use boltfleet_common::proto::JobKind;
use boltfleet_controller::state::etcd_engine::{EtcdEngine, EtcdOptions, TIMEOUT};
use boltfleet_controller::state::State;
use boltfleet_tests::cluster::{eventually, point_at, row, Controller};
use boltfleet_tests::etcd::EtcdCluster;
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::rollouts::wait_status;
use boltfleet_tests::site::Site;

const WAIT: Duration = Duration::from_secs(180);
const PREFIX: &str = "/ha/";

/// Who holds the scheduler's election, read from etcd.
fn leader(cluster: &EtcdCluster) -> Option<String> {
    let engine = EtcdEngine::open(&EtcdOptions {
        endpoints: cluster.endpoints(),
        prefix: PREFIX.into(),
        tls: None,
        timeout: TIMEOUT,
    })
    .ok()?;
    engine.leader_name().ok()?
}

/// How many update jobs each host was given, counted from the jobs stored in etcd (the audit
/// entry of a job start can be lost to a `kill -9` right after the job was written).
fn updates_per_host(cluster: &EtcdCluster) -> Result<BTreeMap<String, usize>> {
    let engine = EtcdEngine::open(&EtcdOptions {
        endpoints: cluster.endpoints(),
        prefix: PREFIX.into(),
        tls: None,
        timeout: TIMEOUT,
    })?;
    let state = State::on(std::sync::Arc::new(engine))?;
    let mut counts = BTreeMap::new();
    for (_, job) in state.jobs().list()? {
        if job
            .request
            .as_ref()
            .is_some_and(|r| r.kind() == JobKind::Update)
        {
            *counts.entry(job.host_id.clone()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

#[test]
fn the_leader_killed_mid_wave_hands_the_rollout_over_and_no_host_is_updated_twice() -> Result<()> {
    let cluster = EtcdCluster::start(3)?;
    let base = tempfile::tempdir()?;
    let store = |name: &str| format!("{}name = {name:?}\n", cluster.store_toml(PREFIX));
    let mut c0 = Controller::start_with_store(&base.path().join("c0"), &store("c0"))?;
    eventually("c0 to lead", Duration::from_secs(20), || {
        (leader(&cluster).as_deref() == Some("c0")).then_some(())
    })?;
    let c1 = c0.start_copy_with_store(&base.path().join("c1"), Some(&store("c1")))?;

    let mut hosts = Vec::new();
    let mut sites = Vec::new();
    for i in 1..=6 {
        let id = format!("ha{i}");
        let mut site = Site::create(base.path(), &c0, &id, PassboltHost::builder("1.3.2"), false)?;
        let out = site.agent.enroll(&c0, &c0.token(&id, "acme")?, &[])?;
        ensure!(
            out.status.success(),
            "enroll {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        point_at(&site.agent, &[&c0.url, &c1.url])?;
        site.agent.start()?;
        hosts.push(id);
        sites.push(site);
    }
    eventually("every host's first report", WAIT, || {
        let report = c0.report().ok()?;
        hosts
            .iter()
            .all(|id| {
                row(&report, id).is_some_and(|r| r["online"] == true && r["version"].is_string())
            })
            .then_some(())
    })?;

    let id = c0
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
    wait_status(&c0, &id, "wave 2 under way", |s| {
        s["waves"][1]["hosts"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["state"] == "running"))
    })?;

    let killed = Instant::now();
    c0.kill9();
    eventually(
        "c1 to take the scheduler over",
        Duration::from_secs(15),
        || (leader(&cluster).as_deref() == Some("c1")).then_some(()),
    )?;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(15), "takeover took {took:?}");

    let done = wait_status(&c1, &id, "the rollout to complete on c1", |s| {
        s["state"] == "completed"
    })?;
    let report = c1.report()?;
    for host in &hosts {
        let r = row(&report, host).expect("host in the report");
        assert_eq!(r["version"], "1.4.0", "{host}: {done}");
    }
    let updates = updates_per_host(&cluster)?;
    let once: BTreeMap<String, usize> = hosts.iter().map(|h| (h.clone(), 1)).collect();
    assert_eq!(updates, once, "update jobs per host");
    drop(sites);
    Ok(())
}
