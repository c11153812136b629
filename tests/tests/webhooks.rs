//! End to end: signed webhooks from a real controller to real HTTP receivers. A failing canary
//! on fixture hosts pages the receivers (rollout started and paused, job rolled back), every
//! delivery signed; a receiver that is down gets the events once it is up, across a
//! controller `kill -9`, and one that acknowledged them never gets them again. With played
//! agents: host.unhealthy and host.offline, admins only, and bad input refused by name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Result};
use boltfleet_common::proto::{Health, Inventory};
use boltfleet_common::tls;
use boltfleet_tests::cluster::{bin, eventually, row, run, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::raw_agent::{enrolled, report_once};
use boltfleet_tests::receiver::{free_port, Received, Receiver};
use boltfleet_tests::site::Site;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(180);
const SECRET: &str = "correct-horse-battery-staple";
/// What the fleet's hooks ask for: the rollout and job types. Host events are the played
/// agents' test's: a real agent's stream may end and come back during a rollout, which is a
/// true `host.offline`, and would make this test's counts depend on timing.
const EVENTS: &str = "rollout.started,rollout.paused,rollout.completed,rollout.aborted,job.rolled_back,job.rollback_failed";

fn secret_file(base: &Path) -> Result<String> {
    let path = base.join("webhook.secret");
    std::fs::write(&path, format!("{SECRET}\n"))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(path.display().to_string())
}

/// `boltfleet webhook add`; returns the id.
fn add(ctl: &Controller, url: &str, events: &str, tenant: &str, secret: &str) -> Result<String> {
    let mut args = vec![
        "webhook",
        "add",
        "--url",
        url,
        "--events",
        events,
        "--secret-file",
        secret,
    ];
    if !tenant.is_empty() {
        args.extend(["--tenant", tenant]);
    }
    Ok(ctl.cli_ok(&args)?.trim().to_string())
}

/// `webhook deliveries ID --format json`'s list, newest first.
fn deliveries(ctl: &Controller, hook: &str) -> Result<Vec<Value>> {
    let out: Value =
        serde_json::from_str(&ctl.cli_ok(&["webhook", "deliveries", hook, "--format", "json"])?)?;
    Ok(out["deliveries"].as_array().cloned().unwrap_or_default())
}

fn types(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.header("x-boltfleet-event").to_string())
        .collect()
}

/// The received request of type `kind` (exactly one).
fn one<'a>(received: &'a [Received], kind: &str) -> &'a Received {
    let found: Vec<&Received> = received
        .iter()
        .filter(|r| r.header("x-boltfleet-event") == kind)
        .collect();
    assert_eq!(found.len(), 1, "{kind} once: {:?}", types(received));
    found[0]
}

/// Waits until `receiver` got every type of `kinds` (and returns everything it got).
fn got(receiver: &Receiver, kinds: &[&str]) -> Result<Vec<Received>> {
    let mut last = Vec::new();
    eventually(&format!("{kinds:?} at {}", receiver.addr), WAIT, || {
        last = receiver.received();
        let seen: BTreeSet<String> = types(&last).into_iter().collect();
        kinds
            .iter()
            .all(|k| seen.contains(*k))
            .then(|| last.clone())
    })
    .map_err(|e| e.context(format!("received: {:?}", types(&last))))
}

/// Each delivery as a receiver must check it: signed with the secret over its timestamp,
/// recent, its headers naming the document's type and id.
fn assert_genuine(received: &[Received]) {
    let now = boltfleet_common::clock::unix_now();
    for r in received {
        assert!(r.signed_with(SECRET), "bad signature: {r:?}");
        assert!(!r.signed_with("another-secret-entirely"), "{r:?}");
        let at: i64 = r
            .header("x-boltfleet-timestamp")
            .parse()
            .expect("unix seconds");
        assert!((now - at).abs() < 300, "timestamp {at} vs now {now}");
        let doc = r.json();
        assert_eq!(doc["type"], r.header("x-boltfleet-event"), "{r:?}");
        assert_eq!(doc["id"], r.header("x-boltfleet-delivery"), "{r:?}");
        assert_eq!(r.header("content-type"), "application/json");
        assert!(
            doc["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{r:?}"
        );
    }
}

fn ids(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.header("x-boltfleet-delivery").to_string())
        .collect()
}

#[test]
fn a_failing_canary_pages_signed_and_a_receiver_down_across_a_controller_kill_gets_it_all(
) -> Result<()> {
    let base = tempfile::tempdir()?;
    let mut ctl = Controller::start(base.path())?;
    let mut sites = Vec::new();
    for (id, tenant) in [("h1", "acme"), ("h2", "globex")] {
        let mut site = Site::create(base.path(), &ctl, id, PassboltHost::builder("1.3.2"), false)?;
        site.enroll_and_start(&ctl, id, tenant)?;
        sites.push((id, tenant, site));
    }
    eventually("both hosts' first report", WAIT, || {
        let report = ctl.report().ok()?;
        ["h1", "h2"]
            .iter()
            .all(|id| row(&report, id).is_some_and(|r| r["version"].is_string()))
            .then_some(())
    })?;

    let secret = secret_file(base.path())?;
    let everything = Receiver::start()?;
    let globex = Receiver::start()?;
    let late_port = free_port()?;
    let every_hook = add(&ctl, &everything.url("/all"), EVENTS, "", &secret)?;
    let globex_hook = add(
        &ctl,
        &globex.url("/globex"),
        "rollout.paused,job.rolled_back",
        "globex",
        &secret,
    )?;
    let late_hook = add(
        &ctl,
        &format!("http://127.0.0.1:{late_port}/late"),
        EVENTS,
        "",
        &secret,
    )?;

    let spec = [
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
    ];
    let plan: Value = serde_json::from_str(
        &ctl.cli_ok(&[&["rollout", "plan"][..], &spec, &["--format", "json"]].concat())?,
    )?;
    let canary = plan["waves"][0]["hosts"][0]["host_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, canary_tenant, canary_site) = sites.iter().find(|(h, _, _)| *h == canary).unwrap();
    canary_site.host.set_migration_error(Some("1.4.0"))?;
    let rollout = ctl
        .cli_ok(&[&["rollout", "start"][..], &spec].concat())?
        .trim()
        .to_string();

    // The receiver that is up: started, then the canary rolled back and the rollout paused.
    let first = got(
        &everything,
        &["rollout.started", "job.rolled_back", "rollout.paused"],
    )?;
    assert_genuine(&first);
    assert_eq!(first.len(), 3, "{:?}", types(&first));
    assert!(first.iter().all(|r| r.path == "/all"));
    let started = one(&first, "rollout.started").json();
    assert_eq!(started["rollout"], rollout.as_str());
    assert_eq!(started["tenants"], serde_json::json!(["acme", "globex"]));
    let rolled_back = one(&first, "job.rolled_back").json();
    assert_eq!(rolled_back["host"], canary.as_str());
    assert_eq!(rolled_back["tenant"], *canary_tenant);
    assert_eq!(rolled_back["rollout_id"], rollout.as_str());
    let job = rolled_back["job_id"].as_str().unwrap();
    assert_eq!(
        ctl.job(job)?["state"],
        "rolled_back",
        "the job the event names"
    );
    assert!(
        rolled_back["summary"].as_str().unwrap().contains("migrate"),
        "{rolled_back}"
    );
    let paused = one(&first, "rollout.paused").json();
    assert_eq!(paused["rollout"], rollout.as_str());
    assert!(
        paused["summary"]
            .as_str()
            .unwrap()
            .contains("failure budget"),
        "{paused}"
    );

    // The tenant's hook: the rollout (it touches globex), the canary's job only if it is
    // globex's; and only globex's name.
    let mut want = vec!["rollout.paused"];
    if *canary_tenant == "globex" {
        want.push("job.rolled_back");
    }
    let of_globex = got(&globex, &want)?;
    assert_genuine(&of_globex);
    assert_eq!(of_globex.len(), want.len(), "{:?}", types(&of_globex));
    let paused_there = one(&of_globex, "rollout.paused").json();
    assert_eq!(paused_there["id"], paused["id"], "one event, one id");
    assert_eq!(paused_there["tenants"], serde_json::json!(["globex"]));

    // The receiver that is down: tried, refused, kept.
    eventually("failed attempts to the closed port", WAIT, || {
        let late = deliveries(&ctl, &late_hook).ok()?;
        (late.len() == 3
            && late.iter().all(|d| {
                d["state"] == "pending"
                    && d["attempts"].as_u64() >= Some(1)
                    && d["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("cannot connect"))
            }))
        .then_some(())
    })?;
    // Everything the receiver that is up acknowledged is marked so before the kill.
    eventually("the deliveries marked delivered", WAIT, || {
        let all = deliveries(&ctl, &every_hook).ok()?;
        (all.len() == 3
            && all
                .iter()
                .all(|d| d["state"] == "delivered" && d["last_status"] == 200))
        .then_some(())
    })?;

    ctl.kill9();
    ctl.serve()?;
    let late = Receiver::start_on(late_port, 200)?;
    let caught_up = got(
        &late,
        &["rollout.started", "job.rolled_back", "rollout.paused"],
    )?;
    assert_genuine(&caught_up);
    let before_kill: BTreeSet<String> = ids(&first).into_iter().collect();
    let late_ids: BTreeSet<String> = ids(&caught_up).into_iter().collect();
    assert_eq!(late_ids, before_kill, "the same events, by id");

    // After the restart: new events reach both; nothing acknowledged before comes again.
    ctl.cli_ok(&["rollout", "abort", &rollout])?;
    let out = run(ctl.cli().args(["webhook", "test", &every_hook]))?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("delivered (HTTP 200)"));
    let all = got(&everything, &["rollout.aborted", "test"])?;
    assert_genuine(&all);
    let all_ids = ids(&all);
    let unique: BTreeSet<&String> = all_ids.iter().collect();
    assert_eq!(
        unique.len(),
        all_ids.len(),
        "no event twice: {:?}",
        types(&all)
    );
    assert_eq!(all.len(), 5, "{:?}", types(&all));
    assert_eq!(
        &all[..3].iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
        &first.iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
        "the first three unchanged"
    );
    eventually("globex's deliveries all acknowledged", WAIT, || {
        let all = deliveries(&ctl, &globex_hook).ok()?;
        (!all.is_empty() && all.iter().all(|d| d["state"] == "delivered")).then_some(())
    })?;
    // The secret signs; it is never written to a log.
    for entry in std::fs::read_dir(&ctl.dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path)?;
            assert!(!log.contains(SECRET), "{} holds the secret", path.display());
        }
    }
    Ok(())
}

/// A controller with operator certificates of other roles, for refusals.
fn operator_cli(ctl: &Controller, name: &str, role: &str) -> Result<impl Fn(&[&str]) -> Output> {
    let dir = ctl.dir.join(format!("ops-{name}"));
    let done = run(std::process::Command::new(bin("boltfleet-controller"))
        .args([
            "operator-cert",
            "--name",
            name,
            "--role",
            role,
            "--all-tenants",
            "--data-dir",
        ])
        .arg(&ctl.dir)
        .arg("--out")
        .arg(&dir))?;
    ensure!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let (url, name) = (ctl.url.clone(), name.to_string());
    Ok(move |args: &[&str]| {
        let file = |ext: &str| dir.join(format!("{name}.{ext}"));
        run(std::process::Command::new(bin("boltfleet"))
            .env_remove("HOME")
            .env("BOLTFLEET_CONTROLLER", &url)
            .env("BOLTFLEET_CA", dir.join("ca.crt"))
            .env("BOLTFLEET_CERT", file("crt"))
            .env("BOLTFLEET_KEY", file("key"))
            .args(args))
        .expect("boltfleet runs")
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn inventory(healthy: bool, reasons: &[&str]) -> Inventory {
    Inventory {
        agent_version: "0.0.0-test".into(),
        passbolt_version: "1.6.9".into(),
        health: Some(Health {
            healthy,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            ..Health::default()
        }),
        ..Inventory::default()
    }
}

#[test]
fn webhooks_are_for_admins_refuse_bad_input_by_name_and_tell_of_hosts_gone_bad() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let secret = secret_file(base.path())?;
    let receiver = Receiver::start()?;
    let url = receiver.url("/hook");

    for role in ["viewer", "operator"] {
        let cli = operator_cli(&ctl, &format!("{role}1"), role)?;
        let add = [
            "webhook",
            "add",
            "--url",
            &url,
            "--events",
            "host.offline",
            "--secret-file",
            &secret,
        ];
        for args in [&add[..], &["webhook", "list"]] {
            let out = cli(args);
            assert!(!out.status.success(), "{role} {args:?}");
            assert!(
                stderr(&out).contains(role) && stderr(&out).contains("admin"),
                "{}",
                stderr(&out)
            );
        }
    }
    let refused = |args: &[&str]| -> Result<(Option<i32>, String)> {
        let out = run(ctl.cli().args(args))?;
        ensure!(!out.status.success(), "{args:?} succeeded");
        Ok((out.status.code(), stderr(&out)))
    };
    let (code, err) = refused(&[
        "webhook",
        "add",
        "--url",
        &url,
        "--events",
        "host.offline,host.gone",
        "--secret-file",
        &secret,
    ])?;
    assert_eq!(code, Some(64));
    assert!(err.contains("host.gone"), "{err}");
    let (_, err) = refused(&[
        "webhook",
        "add",
        "--url",
        "ftp://127.0.0.1/x",
        "--events",
        "host.offline",
        "--secret-file",
        &secret,
    ])?;
    assert!(err.contains("url") && err.contains("http://"), "{err}");
    let (_, err) = refused(&[
        "webhook",
        "add",
        "--url",
        "http://me:pw@127.0.0.1/x",
        "--events",
        "host.offline",
        "--secret-file",
        &secret,
    ])?;
    assert!(err.contains("user:password@"), "{err}");
    let missing = base.path().join("no-such-secret");
    let missing = missing.display().to_string();
    let (code, err) = refused(&[
        "webhook",
        "add",
        "--url",
        &url,
        "--events",
        "host.offline",
        "--secret-file",
        &missing,
    ])?;
    assert_eq!(code, Some(64));
    assert!(err.contains("no-such-secret"), "{err}");
    let short = base.path().join("short.secret");
    std::fs::write(&short, "tiny")?;
    let (_, err) = refused(&[
        "webhook",
        "add",
        "--url",
        &url,
        "--events",
        "host.offline",
        "--secret-file",
        &short.display().to_string(),
    ])?;
    assert!(err.contains("secret") && err.contains("16"), "{err}");

    let hook = add(&ctl, &url, "host.offline,host.unhealthy", "acme", &secret)?;
    let globex_only = add(&ctl, &url, "host.offline,host.unhealthy", "globex", &secret)?;
    let listed = ctl.cli_ok(&["webhook", "list", "--format", "json"])?;
    assert!(listed.contains(&hook) && listed.contains(&globex_only));
    assert!(!listed.contains(SECRET), "the secret is never shown");
    let redirected = Receiver::start_on(0, 302)?;
    let moved = add(&ctl, &redirected.url("/moved"), "host.offline", "", &secret)?;
    let (code, err) = refused(&["webhook", "test", &moved])?;
    assert_eq!(code, Some(1));
    assert!(
        err.contains("HTTP 302") && err.contains("redirects are not followed"),
        "{err}"
    );
    assert_eq!(redirected.received().len(), 1);

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let agent = enrolled(&ctl, "a1", "acme").await?;
        let mut stream = report_once(&ctl, &agent, inventory(true, &[])).await?;
        stream
            .report_acked(2, inventory(false, &["database unreachable"]))
            .await?;
        let unhealthy = got(&receiver, &["host.unhealthy"])?;
        let doc = one(&unhealthy, "host.unhealthy").json();
        assert_eq!(
            (&doc["host"], &doc["tenant"]),
            (&"a1".into(), &"acme".into())
        );
        assert!(
            doc["summary"]
                .as_str()
                .unwrap()
                .contains("database unreachable"),
            "{doc}"
        );
        stream
            .report_acked(3, inventory(false, &["still down"]))
            .await?;
        drop(stream);
        anyhow::Ok(())
    })?;
    let all = got(&receiver, &["host.unhealthy", "host.offline"])?;
    assert_genuine(&all);
    assert_eq!(
        types(&all),
        ["host.unhealthy", "host.offline"],
        "once each, acme's hook only"
    );
    let counts: BTreeMap<String, usize> = deliveries(&ctl, &globex_only)?
        .iter()
        .map(|d| (d["type"].as_str().unwrap_or("").to_string(), 1))
        .collect();
    assert!(counts.is_empty(), "globex's hook got nothing: {counts:?}");

    ctl.cli_ok(&["webhook", "remove", &hook])?;
    let listed = ctl.cli_ok(&["webhook", "list", "--format", "json"])?;
    assert!(!listed.contains(&hook), "{listed}");
    let (_, err) = refused(&["webhook", "deliveries", &hook])?;
    assert!(err.contains("not found"), "{err}");
    Ok(())
}
