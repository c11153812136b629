//! End to end: three controllers on one etcd prefix (three real members), real agents spread
//! over them. Every controller sees every host online and at its version (presence keys and
//! the feed), `cluster status` names the three and their agents, the scheduler's jobs reach
//! hosts whose streams other controllers hold, and a `kill -9` of a controller holding agent
//! streams mid-job brings its agents back on the others within 30 s, the job in flight
//! reported once, every host updated exactly once, while one etcd member is stopped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use boltfleet_tests::cluster::{eventually, point_at, row, Controller};
use boltfleet_tests::etcd::EtcdCluster;
use boltfleet_tests::ha::updates_per_host;
use boltfleet_tests::rollouts;
use boltfleet_tests::site::Site;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(180);
const PREFIX: &str = "/presence/";

fn cluster_status(ctl: &Controller) -> Result<Value> {
    Ok(serde_json::from_str(
        &ctl.cli_ok(&["cluster", "status", "--format", "json"])?,
    )?)
}

/// Agents connected to each controller, by name, as `cluster status` on `ctl` says.
fn agents_by_controller(status: &Value) -> BTreeMap<String, u64> {
    status["controllers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["agents"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

fn ctl(controllers: &[Option<Controller>], i: usize) -> &Controller {
    controllers[i].as_ref().expect("running")
}

#[test]
fn three_controllers_share_the_fleet_and_a_killed_one_s_agents_come_back_on_the_others(
) -> Result<()> {
    let mut cluster = EtcdCluster::start(3)?;
    let base = tempfile::tempdir()?;
    let store = |name: &str| format!("{}name = {name:?}\n", cluster.store_toml(PREFIX));
    let c0 = Controller::start_with_store(&base.path().join("c0"), &store("c0"))?;
    let c1 = c0.start_copy_with_store(&base.path().join("c1"), Some(&store("c1")))?;
    let c2 = c0.start_copy_with_store(&base.path().join("c2"), Some(&store("c2")))?;
    let mut controllers = vec![Some(c0), Some(c1), Some(c2)];
    let urls: Vec<String> = controllers
        .iter()
        .map(|c| c.as_ref().expect("running").url.clone())
        .collect();

    // Host i first tries controller i % 3, then the next one.
    let mut sites = Vec::new();
    let mut home = BTreeMap::new();
    for i in 0..6 {
        let id = format!("p{i}");
        let first = ctl(&controllers, 0);
        let mut site = Site::at(base.path(), first, &id, "1.3.2")?;
        site.enroll(first, &id, "acme")?;
        point_at(&site.agent, &[&urls[i % 3], &urls[(i + 1) % 3]])?;
        site.agent.start()?;
        home.insert(id, i % 3);
        sites.push(site);
    }
    let hosts: Vec<String> = home.keys().cloned().collect();

    // Every controller sees every host online and at its version, wherever its stream is.
    for i in 0..3 {
        eventually(&format!("c{i} to see every host"), WAIT, || {
            let report = ctl(&controllers, i).report().ok()?;
            hosts
                .iter()
                .all(|id| {
                    row(&report, id).is_some_and(|r| r["online"] == true && r["version"] == "1.3.2")
                })
                .then_some(())
        })?;
    }
    let status = eventually("cluster status to count two agents each", WAIT, || {
        let status = cluster_status(ctl(&controllers, 2)).ok()?;
        let counts = agents_by_controller(&status);
        (counts.values().copied().collect::<Vec<_>>() == [2, 2, 2]).then_some(status)
    })?;
    let names: Vec<&str> = status["controllers"]
        .as_array()
        .context("controllers")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2"], "{status}");
    let leaders: Vec<&Value> = status["controllers"]
        .as_array()
        .context("controllers")?
        .iter()
        .filter(|c| c["leader"] == true)
        .collect();
    assert_eq!(leaders.len(), 1, "one leader: {status}");
    let leader = leaders[0]["name"].as_str().context("leader")?.to_string();
    assert_eq!(status["leader"], leader.as_str());
    let members = status["members"].as_array().context("members")?;
    assert_eq!(members.len(), 3, "{status}");
    assert!(members.iter().all(|m| m["healthy"] == true), "{status}");

    // The victim holds agent streams and does not lead: its agents' jobs come from the
    // leader's writes, and one of them is in flight when it dies.
    let victim = (0..3)
        .find(|i| format!("c{i}") != leader)
        .expect("a controller that does not lead");
    let survivor = (0..3).find(|i| *i != victim).expect("another controller");
    let in_flight = home
        .iter()
        .find(|(_, c)| **c == victim)
        .map(|(h, _)| h.clone())
        .expect("a host on the victim");
    // Site i is host p{i}.
    let hanging: usize = in_flight[1..].parse()?;
    sites[hanging].host.set_hang(true)?;

    let id = ctl(&controllers, survivor)
        .cli_ok(&[
            "rollout",
            "start",
            "--to",
            "1.4.0",
            "--waves",
            "100%",
            "--max-parallel",
            "6",
            "--max-failures",
            "0",
            "--soak",
            "1s",
        ])?
        .trim()
        .to_string();
    eventually("the in-flight host's migrations to hang", WAIT, || {
        sites[hanging].host.hanging_pid()
    })?;

    let killed = Instant::now();
    controllers[victim].as_mut().expect("running").kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    eventually(
        "the victim's agents to be back on the others",
        Duration::from_secs(30),
        || {
            let status = cluster_status(ctl(&controllers, survivors[0])).ok()?;
            let counts = agents_by_controller(&status);
            let on_survivors: u64 = survivors
                .iter()
                .map(|i| counts.get(&format!("c{i}")).copied().unwrap_or(0))
                .sum();
            (on_survivors == 6).then_some(())
        },
    )?;
    let back = killed.elapsed();
    assert!(back < Duration::from_secs(30), "reconnected after {back:?}");
    controllers[victim] = None;

    // One etcd member stopped: nothing stops (the engine and the feed go on with the others).
    cluster.stop(0)?;
    sites[hanging].host.set_hang(false)?;
    let mut last = Value::Null;
    eventually("the rollout to complete", WAIT, || {
        let s = rollouts::status(ctl(&controllers, survivor), &id).ok()?;
        last = s.clone();
        (s["state"] == "completed").then_some(())
    })
    .map_err(|e| {
        for (i, c) in controllers.iter().enumerate() {
            if let Some(c) = c {
                let log = c.proc.as_ref().map(|p| p.log_text()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(80).collect();
                eprintln!(
                    "---- c{i} log, last lines, newest first:\n{}",
                    tail.join("\n")
                );
            }
        }
        e.context(format!("last status: {last}"))
    })?;
    let report = ctl(&controllers, survivor).report()?;
    for host in &hosts {
        let r = row(&report, host).context("host in the report")?;
        assert_eq!(r["version"], "1.4.0", "{host}: {r}");
    }
    let once: BTreeMap<String, usize> = hosts.iter().map(|h| (h.clone(), 1)).collect();
    assert_eq!(
        updates_per_host(&cluster, PREFIX)?,
        once,
        "update jobs per host"
    );

    // The in-flight job finished once: one `job.finish` entry for its host in the audit log.
    let audit: Value =
        serde_json::from_str(&ctl(&controllers, survivor).cli_ok(&["audit", "--format", "json"])?)?;
    let finished = audit["entries"]
        .as_array()
        .context("entries")?
        .iter()
        .filter(|e| e["action"] == "job.finish" && e["target"] == in_flight.as_str())
        .count();
    assert_eq!(finished, 1, "job.finish entries of {in_flight}: {audit}");
    drop(sites);
    Ok(())
}
