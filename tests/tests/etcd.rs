//! End to end on etcd: real etcd members started here, the real controller binary with its
//! state in them, a real agent. The engine against a three-member cluster losing members, a
//! controller on etcd keeping its hosts across a restart, `migrate-store` from a sled
//! controller, and the config and connection errors an operator sees.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use boltfleet_controller::state::engine::Engine;
use boltfleet_controller::state::etcd_engine::{EtcdEngine, EtcdOptions, TIMEOUT};
use boltfleet_controller::state::State;
use boltfleet_tests::cluster::{bin, eventually, online_row, row, run, Agent, Controller};
use boltfleet_tests::etcd::EtcdCluster;

const WAIT: Duration = Duration::from_secs(60);

fn open_engine(cluster: &EtcdCluster, prefix: &str, timeout: Duration) -> Result<EtcdEngine> {
    Ok(EtcdEngine::open(&EtcdOptions {
        endpoints: cluster.endpoints(),
        prefix: prefix.into(),
        tls: None,
        timeout,
    })?)
}

/// An agent for host `id` of tenant acme, enrolled with a join token and running. Its passbolt
/// install does not exist: it reports that, which is all these tests need.
fn enrolled_agent(base: &Path, ctl: &Controller, id: &str) -> Result<Agent> {
    let mut agent = Agent::without_passbolt(base, ctl, id)?;
    agent.start()?;
    Ok(agent)
}

fn online(ctl: &Controller, id: &str) -> Result<serde_json::Value> {
    online_row(ctl, id, WAIT)
}

#[test]
fn the_engine_writes_on_with_a_member_down_and_refuses_without_a_quorum() -> Result<()> {
    let mut cluster = EtcdCluster::start(3)?;
    let engine = open_engine(&cluster, "/boltfleet/", TIMEOUT)?;
    let impatient = open_engine(&cluster, "/boltfleet/", Duration::from_secs(1))?;
    let tree = engine.tree("hosts")?;
    tree.put(b"web1", b"1")?;

    // One member gone: the other two are a quorum, and once they have a leader (they elect
    // one if the leader was killed: a write in the meantime waits for it, or fails at its
    // deadline), every write lands: the dead member refuses connections, and the engine tries
    // another member.
    cluster.kill(0);
    eventually("a leader among the other two", WAIT, || {
        (cluster.healthy(1) && cluster.healthy(2)).then_some(())
    })?;
    for i in 0..30 {
        tree.put(b"web1", format!("{i}").as_bytes())
            .map_err(|e| anyhow::anyhow!("write {i} with one member down: {e}"))?;
        assert_eq!(tree.get(b"web1")?, Some(format!("{i}").into_bytes()));
    }

    // Two gone: no quorum, so no write is acknowledged; the error names the cluster, within
    // the deadline. (The proposal may still be in the last member's log: etcd may commit it
    // when the quorum is back, so the write's outcome is unknown, as for any timeout.)
    cluster.stop(1)?;
    let err = impatient.tree("hosts")?.put(b"web1", b"x").unwrap_err();
    let err = err.to_string();
    assert!(err.contains(&cluster.endpoints()[2]), "{err}");
    assert!(err.contains("put in tree hosts"), "{err}");

    // Back: the same engine writes again, and nothing was lost.
    cluster.start_members(&[0, 1])?;
    let value = tree.get(b"web1")?.unwrap_or_default();
    assert!(value == b"29" || value == b"x", "{value:?}");
    tree.put(b"web1", b"back")?;
    assert_eq!(tree.get(b"web1")?, Some(b"back".to_vec()));
    let ids: Vec<u64> = (0..3)
        .map(|_| engine.generate_id())
        .collect::<Result<_, _>>()?;
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    Ok(())
}

#[test]
fn a_controller_on_etcd_keeps_its_hosts_across_a_restart() -> Result<()> {
    let cluster = EtcdCluster::start(3)?;
    let base = tempfile::tempdir()?;
    let mut ctl = Controller::start_with_store(base.path(), &cluster.store_toml("/fleet-a/"))?;
    let _agent = enrolled_agent(base.path(), &ctl, "web1")?;
    let before = online(&ctl, "web1")?;
    assert_eq!(before["tenant"], "acme");
    assert!(
        ctl.proc
            .as_ref()
            .unwrap()
            .log_text()
            .contains("engine=\"etcd\""),
        "the controller says which engine it runs on"
    );

    // The state is in etcd, under the prefix, not in the data dir.
    let state = State::on(Arc::new(open_engine(&cluster, "/fleet-a/", TIMEOUT)?))?;
    let host = state.host("web1").expect("web1 in etcd");
    assert_eq!(host.tenant, "acme");
    assert_eq!(state.tokens()?.len(), 1, "the token, stored hashed");
    drop(state);
    assert!(
        !ctl.dir.join("store").exists(),
        "no sled store beside the CA"
    );

    // kill -9 and serve again: the host is there before its agent is back, then online.
    ctl.kill9();
    ctl.serve()?;
    let report = ctl.report()?;
    let row = row(&report, "web1").expect("web1 kept across the restart");
    assert_eq!(row["tenant"], "acme");
    online(&ctl, "web1")?;
    // Another controller's prefix on the same cluster is another fleet.
    let other = State::on(Arc::new(open_engine(&cluster, "/fleet-b/", TIMEOUT)?))?;
    assert!(other.hosts().is_empty());
    Ok(())
}

#[test]
fn migrate_store_moves_a_sled_controller_onto_etcd() -> Result<()> {
    let cluster = EtcdCluster::start(1)?;
    let base = tempfile::tempdir()?;
    let mut ctl = Controller::start(base.path())?;
    let mut agent = enrolled_agent(base.path(), &ctl, "web1")?;
    online(&ctl, "web1")?;
    let migrate = |extra: &[&str]| {
        run(Command::new(bin("boltfleet-controller"))
            .args(["migrate-store", "--from-data-dir"])
            .arg(&ctl.dir)
            .args(["--to-etcd", &cluster.endpoints().join(",")])
            .args(extra))
    };

    // While its controller runs, sled's store is locked: nothing copied.
    let out = migrate(&[])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop its controller first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ctl.proc.as_mut().unwrap().terminate()?, Some(0));
    let out = migrate(&[])?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Vec<(&str, usize)> = stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(tree, n)| (tree, n.parse().unwrap()))
        .collect();
    assert!(counts.contains(&("hosts", 1)), "{stdout}");
    assert!(counts.contains(&("tokens", 1)), "{stdout}");
    assert!(
        counts.iter().any(|(t, n)| *t == "audit" && *n >= 2),
        "{stdout}"
    );

    // A second copy into the same prefix is refused, and says how to force it.
    let out = migrate(&[])?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/boltfleet/") && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(migrate(&["--force"])?.status.success());

    // The same controller, now on etcd: its host and its agent carry on.
    agent.proc.as_mut().unwrap().kill9();
    ctl.use_store(Some(&cluster.store_toml("/boltfleet/")));
    ctl.serve()?;
    let row = row(&ctl.report()?, "web1").cloned().expect("web1 migrated");
    assert_eq!(row["tenant"], "acme");
    agent.start()?;
    online(&ctl, "web1")?;
    let audit = ctl.cli_ok(&["audit"])?;
    assert!(audit.contains("token.create"), "{audit}");
    Ok(())
}

#[test]
fn a_bad_store_is_a_usage_error_and_an_unreachable_etcd_names_itself() -> Result<()> {
    let base = tempfile::tempdir()?;
    let dir = base.path().join("controller");
    let init = run(Command::new(bin("boltfleet-controller"))
        .args(["init", "--data-dir"])
        .arg(&dir))?;
    assert!(init.status.success());
    let serve = |store: &str| -> Result<std::process::Output> {
        let config = base.path().join("controller.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n{store}\n",
                dir.display().to_string()
            ),
        )?;
        run(Command::new(bin("boltfleet-controller"))
            .args(["serve", "--config"])
            .arg(&config))
    };
    let out = serve("[store]\nengine = \"etcd\"\nendpoints = [\"etcd1:2379\"]")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("store.endpoints"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let port = boltfleet_controller::state::etcd_member::free_port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = serve(&format!(
        "[store]\nengine = \"etcd\"\nendpoints = [{endpoint:?}]"
    ))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&endpoint), "{stderr}");

    let out = run(Command::new(bin("boltfleet-controller"))
        .args(["migrate-store", "--from-data-dir"])
        .arg(&dir)
        .args(["--to-etcd", "http://127.0.0.1:2379", "--prefix", "nope"]))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("--prefix"), "{stderr}");
    Ok(())
}
