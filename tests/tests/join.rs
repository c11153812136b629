//! End to end: a second controller made with `init --join` from a copy of the first one's CA
//! files, both on one etcd prefix. An agent enrolled on the first (its token, its pin)
//! connects to the second and reports there; `init --join` refuses what it cannot use.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use boltfleet_tests::cluster::point_at;
use boltfleet_tests::cluster::{bin, eventually, row, run, Agent, Controller};
use boltfleet_tests::etcd::EtcdCluster;

const WAIT: Duration = Duration::from_secs(60);
const PREFIX: &str = "/join/";

#[test]
fn an_agent_enrolled_on_one_controller_reports_to_a_joined_one() -> Result<()> {
    let cluster = EtcdCluster::start(1)?;
    let base = tempfile::tempdir()?;
    let store = |name: &str| format!("{}name = {name:?}\n", cluster.store_toml(PREFIX));
    let c0 = Controller::start_with_store(&base.path().join("c0"), &store("c0"))?;
    let mut agent = Agent::without_passbolt(base.path(), &c0, "web1")?;

    // A controller joining the fleet later (it reads the hosts from etcd as it starts);
    // start_joined checks that `init --join` printed c0's pin.
    let c1 = c0.start_joined(&base.path().join("c1"), &store("c1"))?;
    let own = |c: &Controller| std::fs::read(c.dir.join("controller.key"));
    assert_ne!(own(&c0)?, own(&c1)?, "c1 has a server key of its own");
    point_at(&agent, &[&c1.url])?;
    agent.start()?;
    let online = eventually("web1 online on c1", WAIT, || {
        let report = c1.report().ok()?;
        row(&report, "web1")
            .filter(|r| r["online"] == true)
            .cloned()
    });
    let log = agent
        .proc
        .as_ref()
        .map(|p| p.log_text())
        .unwrap_or_default();
    online.map_err(|e| e.context(format!("agent log:\n{log}")))?;
    Ok(())
}

/// `boltfleet-controller init --data-dir DIR --join FROM`.
fn join(dir: &Path, from: &Path) -> Result<std::process::Output> {
    run(Command::new(bin("boltfleet-controller"))
        .args(["init", "--data-dir"])
        .arg(dir)
        .arg("--join")
        .arg(from))
}

#[test]
fn init_join_refuses_a_missing_ca_a_foreign_key_and_an_initialized_dir() -> Result<()> {
    let base = tempfile::tempdir()?;
    let init = |name: &str| {
        run(Command::new(bin("boltfleet-controller"))
            .args(["init", "--data-dir"])
            .arg(base.path().join(name)))
    };
    ensure!(init("one")?.status.success() && init("other")?.status.success());
    let copy = base.path().join("copy");
    std::fs::create_dir(&copy)?;
    std::fs::copy(base.path().join("one/ca.crt"), copy.join("ca.crt"))?;

    let refused = |out: std::process::Output, says: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert!(stderr.contains(says), "{says:?} in {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    };
    refused(join(&base.path().join("a"), &copy)?, "no ");
    std::fs::copy(base.path().join("other/ca.key"), copy.join("ca.key"))?;
    refused(
        join(&base.path().join("b"), &copy)?,
        "is not the key of ca.crt",
    );
    std::fs::copy(base.path().join("one/ca.key"), copy.join("ca.key"))?;
    refused(join(&base.path().join("one"), &copy)?, "already holds a CA");
    let out = join(&base.path().join("c"), &copy)?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
