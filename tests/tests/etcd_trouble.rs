//! End to end: a controller on three real etcd members, with a real agent, while etcd goes
//! away. One member stopped changes nothing; all three stopped: the agent's stream stays up,
//! reads answer from memory with a "stale since" note, writes are refused naming etcd, and the
//! scheduler stops; the members back, everything works again without a restart.

use std::time::Duration;

use anyhow::Result;
use boltfleet_tests::cluster::{eventually, online_row, row, run, Agent, Controller};
use boltfleet_tests::etcd::EtcdCluster;
use boltfleet_tests::ha::leader;

const WAIT: Duration = Duration::from_secs(60);
const PREFIX: &str = "/trouble/";

#[test]
fn without_etcd_streams_stay_reads_say_stale_writes_are_refused_and_all_recovers() -> Result<()> {
    let mut cluster = EtcdCluster::start(3)?;
    let base = tempfile::tempdir()?;
    let store = format!("{}name = \"c0\"\n", cluster.store_toml(PREFIX));
    let c0 = Controller::start_with_store(&base.path().join("c0"), &store)?;
    let mut agent = Agent::without_passbolt(base.path(), &c0, "web1")?;
    agent.start()?;
    online_row(&c0, "web1", WAIT)?;
    assert_eq!(c0.report()?["stale_since"], serde_json::Value::Null);

    // One member down: a quorum is left, writes go on (web2's enrollment), and the
    // controller's own calls (election, lease, presence) are tried again on a live member
    // rather than failing and being logged.
    cluster.stop(0)?;
    let mut web2 = Agent::without_passbolt(base.path(), &c0, "web2")?;
    web2.start()?;
    online_row(&c0, "web2", WAIT)?;
    let log = || c0.proc.as_ref().map(|p| p.log_text()).unwrap_or_default();
    let text = log();
    for noise in [
        "campaign failed",
        "presence not written",
        "keep-alive not opened",
        "leadership lost",
    ] {
        assert!(
            !text.contains(noise),
            "{noise:?} logged with one member of three down:\n{text}"
        );
    }

    // All down: reads from memory, marked stale; the stream stays; writes refused.
    cluster.stop(1)?;
    cluster.stop(2)?;
    let mut last = String::new();
    let report = eventually("the report to say it may be stale", WAIT, || {
        let report = c0.report().map_err(|e| last = format!("{e:#}")).ok()?;
        last = report.to_string();
        report["stale_since"].is_string().then_some(report)
    })
    .map_err(|e| e.context(format!("last: {last}")))?;
    let web1 = row(&report, "web1").expect("web1 in the stale report");
    assert_eq!(web1["online"], true, "the stream stays up: {report}");
    let table = run(c0.cli().args(["report"]))?;
    let note = String::from_utf8_lossy(&table.stderr);
    assert!(table.status.success(), "{note}");
    assert!(note.contains("state may be stale since"), "{note}");

    let refused = run(c0
        .cli()
        .args(["token", "create", "--host-id", "web3", "--tenant", "acme"]))?;
    let stderr = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success(), "a write without etcd: {stderr}");
    assert!(stderr.contains("etcd unreachable since"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    eventually("the scheduler to stop", WAIT, || {
        log().contains("scheduler leadership lost").then_some(())
    })?;
    let report = c0.report()?;
    assert_eq!(
        row(&report, "web1").expect("web1")["online"],
        true,
        "{report}"
    );

    // Back: writes work, the note goes, c0 leads again, with the same process.
    cluster.start_members(&[0, 1, 2])?;
    eventually("a write to work again", WAIT, || {
        c0.token("web3", "acme").ok()
    })?;
    eventually("the note to go", WAIT, || {
        let report = c0.report().ok()?;
        report["stale_since"].is_null().then_some(())
    })?;
    eventually("c0 to lead again", WAIT, || {
        (leader(&cluster, PREFIX).as_deref() == Some("c0")).then_some(())
    })?;
    let report = c0.report()?;
    assert_eq!(
        row(&report, "web1").expect("web1")["online"],
        true,
        "{report}"
    );
    Ok(())
}
