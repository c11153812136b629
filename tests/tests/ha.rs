//! End to end: two controllers on one etcd prefix (three real members), one scheduler
//! elected between them, real agents on fixture hosts that know both controllers. A rollout
//! in waves goes on across a `kill -9` of the leader: the other takes the scheduler over
//! within 15 s and every host is updated exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use boltfleet_tests::cluster::point_at;
use boltfleet_tests::cluster::{eventually, row, Controller};
use boltfleet_tests::etcd::EtcdCluster;
use boltfleet_tests::ha::{self, updates_per_host};
use boltfleet_tests::rollouts::wait_status;
use boltfleet_tests::site::Site;

const WAIT: Duration = Duration::from_secs(180);
const PREFIX: &str = "/ha/";

fn leader(cluster: &EtcdCluster) -> Option<String> {
    ha::leader(cluster, PREFIX)
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
    let c1 = c0.start_joined(&base.path().join("c1"), &store("c1"))?;

    let mut hosts = Vec::new();
    let mut sites = Vec::new();
    for i in 1..=6 {
        let id = format!("ha{i}");
        let mut site = Site::at(base.path(), &c0, &id, "1.3.2")?;
        site.enroll(&c0, &id, "acme")?;
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
    let updates = updates_per_host(&cluster, PREFIX)?;
    let once: BTreeMap<String, usize> = hosts.iter().map(|h| (h.clone(), 1)).collect();
    assert_eq!(updates, once, "update jobs per host");
    drop(sites);
    Ok(())
}
