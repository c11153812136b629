//! End to end, the fence itself: the leader of two controllers (three etcd members) is parked
//! mid-wave between the scheduler's decision and its write (a failpoint), then paused with
//! SIGSTOP past its lease; the other takes the scheduler over. Resumed with its tick
//! released, the old leader makes the write it decided while it led, and etcd refuses it:
//! while it alone runs (the new leader paused in turn, its lease still held) no rollout record
//! is written and no job is created. The rollout then completes with one update job per host.
//!
//! Without the fence the old leader's write lands (nothing else stops a tick under way), so
//! this test fails; pausing a leader between ticks would not show that, as it learns it lost
//! the lease before its next tick writes anything.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use boltfleet_controller::failpoint::SCHEDULER_BEFORE_WRITE;
use boltfleet_controller::state::etcd_engine::LEASE_TTL;
use boltfleet_tests::cluster::point_at;
use boltfleet_tests::cluster::{eventually, row, Controller};
use boltfleet_tests::etcd::EtcdCluster;
use boltfleet_tests::ha::{self, revisions, updates_per_host};
use boltfleet_tests::rollouts::wait_status;
use boltfleet_tests::site::Site;

const WAIT: Duration = Duration::from_secs(180);
const PREFIX: &str = "/fence/";
/// What the engine says of a write a controller that no longer leads tried to make.
const REFUSED: &str = "refused: this controller no longer leads the scheduler";

fn signal(ctl: &Controller, sig: &str) -> Result<()> {
    ctl.proc.as_ref().expect("serving").signal(sig)
}

fn log_of(ctl: &Controller) -> String {
    ctl.proc.as_ref().map(|p| p.log_text()).unwrap_or_default()
}

#[test]
fn a_leader_parked_before_its_write_and_paused_past_its_lease_has_that_write_refused() -> Result<()>
{
    let cluster = EtcdCluster::start(3)?;
    let base = tempfile::tempdir()?;
    let store = |name: &str| format!("{}name = {name:?}\n", cluster.store_toml(PREFIX));
    let points = base.path().join("failpoints-c0");
    let c0 = Controller::start_with_failpoints(&base.path().join("c0"), &store("c0"), &points)?;
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

    // c0's next tick that moves the rollout parks, decided and not written; then c0 is
    // paused past its lease, and c1 takes over and moves the rollout itself.
    let point = points.join(SCHEDULER_BEFORE_WRITE);
    std::fs::write(&point, b"")?;
    eventually("c0 to park before a write", WAIT, || {
        log_of(&c0).contains("failpoint: parked").then_some(())
    })?;
    signal(&c0, "-STOP")?;
    let parked = revisions(&cluster, PREFIX, "rollouts")?;
    eventually("c1 to lead", LEASE_TTL + Duration::from_secs(30), || {
        (ha::leader(&cluster, PREFIX).as_deref() == Some("c1")).then_some(())
    })?;
    eventually("c1 to write the rollout", WAIT, || {
        (revisions(&cluster, PREFIX, "rollouts").ok()? != parked).then_some(())
    })?;

    // c0 resumed alone with its tick released: c1 paused, its lease (and so the leader key)
    // still held. The tick writes what it decided while it led.
    signal(&c1, "-STOP")?;
    let (rollouts, jobs) = (
        revisions(&cluster, PREFIX, "rollouts")?,
        revisions(&cluster, PREFIX, "jobs")?,
    );
    std::fs::remove_file(&point)?;
    signal(&c0, "-CONT")?;
    // Refused, c0 logs it; made (the fence broken), the record moves.
    let refused = eventually("c0's released write", Duration::from_secs(30), || {
        let log = log_of(&c0);
        if !log.contains("failpoint: released") {
            return None;
        }
        if log.contains(REFUSED) {
            return Some(true);
        }
        (revisions(&cluster, PREFIX, "rollouts").ok()? != rollouts).then_some(false)
    });
    let (rollouts_after, jobs_after) = (
        revisions(&cluster, PREFIX, "rollouts")?,
        revisions(&cluster, PREFIX, "jobs")?,
    );
    let leader = ha::leader(&cluster, PREFIX);
    signal(&c1, "-CONT")?;
    let refused = refused?;
    assert_eq!(leader.as_deref(), Some("c1"), "c1 led throughout");
    assert!(
        rollouts == rollouts_after,
        "c0 wrote a rollout record after its lease ended"
    );
    let new = jobs_after.keys().filter(|k| !jobs.contains_key(*k)).count();
    assert_eq!(new, 0, "c0 created job(s) after its lease ended");
    assert!(refused, "c0's log says its write was refused");
    eventually("c0 to step down", Duration::from_secs(30), || {
        log_of(&c0)
            .contains("scheduler leadership lost")
            .then_some(())
    })?;

    let done = wait_status(&c1, &id, "the rollout to complete", |s| {
        s["state"] == "completed"
    })?;
    let updates = updates_per_host(&cluster, PREFIX)?;
    let once: BTreeMap<String, usize> = hosts.iter().map(|h| (h.clone(), 1)).collect();
    assert_eq!(updates, once, "update jobs per host: {done}");
    drop(sites);
    Ok(())
}
