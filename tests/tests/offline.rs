//! End to end: `host.offline` for the hosts of a controller that died. Two controllers on one
//! etcd prefix, a real HTTP receiver, two real agents on the second controller. Both agents
//! are stopped (SIGSTOP) and the controller is killed with `kill -9`, so no stream end says
//! anything; once its lease has taken their presence, one agent resumes and comes back on the
//! first controller within the grace, the other never does. The scheduler's leader says
//! `host.offline` once for the host that stayed away, and nothing for the one that came back.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use boltfleet_controller::app::vanished::GRACE;
use boltfleet_controller::state::etcd_engine::LEASE_TTL;
use boltfleet_tests::cluster::{eventually, point_at, Agent, Controller};
use boltfleet_tests::etcd::EtcdCluster;
use boltfleet_tests::ha;
use boltfleet_tests::receiver::{Received, Receiver};

const WAIT: Duration = Duration::from_secs(120);
const PREFIX: &str = "/offline/";

fn secret_file(base: &Path) -> Result<String> {
    let path = base.join("webhook.secret");
    std::fs::write(&path, "correct-horse-battery-staple\n")?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(path.display().to_string())
}

fn signal(agent: &Agent, sig: &str) -> Result<()> {
    agent.proc.as_ref().expect("running").signal(sig)
}

/// The host of each `host.offline` the receiver got, in order.
fn offline_hosts(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.header("x-boltfleet-event") == "host.offline")
        .map(|r| r.json()["host"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_dead_controller_s_host_that_does_not_come_back_is_said_offline_once_by_the_leader(
) -> Result<()> {
    let cluster = EtcdCluster::start(1)?;
    let base = tempfile::tempdir()?;
    let store = |name: &str| format!("{}name = {name:?}\n", cluster.store_toml(PREFIX));
    let c0 = Controller::start_with_store(&base.path().join("c0"), &store("c0"))?;
    eventually("c0 to lead", Duration::from_secs(20), || {
        (ha::leader(&cluster, PREFIX).as_deref() == Some("c0")).then_some(())
    })?;
    let mut c1 = c0.start_joined(&base.path().join("c1"), &store("c1"))?;
    let receiver = Receiver::start()?;
    c0.cli_ok(&[
        "webhook",
        "add",
        "--url",
        &receiver.url("/hook"),
        "--events",
        "host.offline",
        "--secret-file",
        &secret_file(base.path())?,
    ])?;

    // Both agents on c1; the one that may come back knows c0 too.
    let mut gone = Agent::without_passbolt(base.path(), &c1, "gone1")?;
    let mut back = Agent::without_passbolt(base.path(), &c1, "back1")?;
    point_at(&back, &[&c1.url, &c0.url])?;
    gone.start()?;
    back.start()?;
    eventually("both streams on c1", WAIT, || {
        let held = ha::presence(&cluster, PREFIX).ok()?;
        let on_c1 = |host: &str| held.get(host).map(String::as_str) == Some("c1");
        (on_c1("gone1") && on_c1("back1")).then_some(())
    })?;

    // Both agents stopped, so that neither stream moves before c1's lease ends; then back1
    // resumes and comes back on c0 within the grace.
    signal(&gone, "-STOP")?;
    signal(&back, "-STOP")?;
    c1.kill9();
    eventually(
        "c1's lease to take both hosts' presence",
        LEASE_TTL + WAIT,
        || {
            let held = ha::presence(&cluster, PREFIX).ok()?;
            (!held.contains_key("gone1") && !held.contains_key("back1")).then_some(())
        },
    )?;
    signal(&back, "-CONT")?;
    eventually("back1's agent back on c0", WAIT, || {
        let held = ha::presence(&cluster, PREFIX).ok()?;
        (held.get("back1").map(String::as_str) == Some("c0")).then_some(())
    })?;
    let said = eventually("host.offline for gone1", LEASE_TTL + GRACE + WAIT, || {
        let hosts = offline_hosts(&receiver.received());
        (!hosts.is_empty()).then_some(hosts)
    })?;
    assert_eq!(said, ["gone1"], "one event, for the host that stayed away");
    let event = receiver
        .received()
        .into_iter()
        .find(|r| r.header("x-boltfleet-event") == "host.offline")
        .expect("received");
    let summary = event.json()["summary"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(summary.contains("controller c1"), "{summary}");

    // A stream that ends still says it itself, after: had the leader said gone1 twice, or
    // back1 at all, it would have before this.
    back.proc.as_mut().expect("running").kill9();
    let said = eventually("host.offline for back1", WAIT, || {
        let hosts = offline_hosts(&receiver.received());
        (hosts.len() > 1).then_some(hosts)
    })?;
    assert_eq!(said, ["gone1", "back1"]);
    Ok(())
}
