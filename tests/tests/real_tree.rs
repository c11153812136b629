//! End to end: what a real passbolt v1 tree does that a plain fixture would not (issue 15),
//! through a real controller and agent: tracked cache placeholders, the runtime directory the
//! 1.3.0 migration writes, a database user who may not restore, and releases without a
//! healthcheck shell. Each host must stay updatable after every job.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use boltfleet_tests::cluster::{eventually, row, run, Controller};
use boltfleet_tests::fixture::{HostBuilder, PassboltHost};
use boltfleet_tests::site::{Site, KNOWN_FAILURES};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

const PLACEHOLDERS: [&str; 2] = [
    "app/tmp/cache/models/empty",
    "app/tmp/cache/persistent/empty",
];

/// A started host; `known_failures: false` leaves the operator's list empty, as on an install
/// whose long-standing failures were never listed.
fn started(
    base: &Path,
    ctl: &Controller,
    name: &str,
    builder: HostBuilder,
    health_command: bool,
    known_failures: bool,
    setup: impl FnOnce(&Site) -> Result<()>,
) -> Result<Site> {
    let mut site = Site::create(base, ctl, name, builder, health_command)?;
    if !known_failures {
        let config = std::fs::read_to_string(&site.agent.config)?;
        std::fs::write(
            &site.agent.config,
            config.replace(KNOWN_FAILURES, "known_failures = []"),
        )?;
    }
    setup(&site)?;
    site.enroll_and_start(ctl, name, "acme")?;
    eventually("the host's first report", WAIT, || {
        ctl.report()
            .ok()
            .filter(|r| row(r, name).is_some_and(|x| x["version"].is_string()))
    })?;
    Ok(site)
}

/// Runs `boltfleet host <args> --wait` and returns (exit code, the job as JSON, stderr).
fn job(ctl: &Controller, args: &[&str]) -> Result<(i32, Value, String)> {
    let out = run(ctl.cli().arg("host").args(args).arg("--wait"))?;
    let id = String::from_utf8(out.stdout)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let job =
        serde_json::from_str(&ctl.cli_ok(&["job", "show", id.trim(), "--format", "json"])?)?;
    Ok((out.status.code().unwrap_or(-1), job, stderr))
}

fn update(ctl: &Controller, name: &str, to: &str) -> Result<(i32, Value, String)> {
    job(ctl, &["update", name, "--to", to])
}

fn steps(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| s["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn step_output<'a>(job: &'a Value, name: &str) -> &'a str {
    job["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .and_then(|s| s["output_tail"].as_str())
        .unwrap_or("")
}

/// Waits for the report to show `name` on `version` after the job `job_id` ended in `state`,
/// and returns its row.
fn reported(
    ctl: &Controller,
    name: &str,
    version: &str,
    job_id: &str,
    state: &str,
) -> Result<Value> {
    let report = eventually(
        &format!("the report to show {name} on {version}"),
        WAIT,
        || {
            ctl.report().ok().filter(|r| {
                row(r, name).is_some_and(|x| {
                    x["version"] == version
                        && x["last_job"]["id"] == job_id
                        && x["last_job"]["state"] == state
                })
            })
        },
    )?;
    Ok(row(&report, name).cloned().unwrap_or_default())
}

/// The tree is as git left it: placeholders in place, nothing but runtime state untracked.
fn as_git_left_it(site: &Site) -> Result<()> {
    for placeholder in PLACEHOLDERS {
        ensure!(
            site.host.root.join(placeholder).is_file(),
            "{placeholder} was removed"
        );
    }
    let status = site.host.git(&["status", "--porcelain"])?;
    ensure!(
        status.lines().all(|l| l.starts_with("?? app/tmp/")),
        "local changes after the job:\n{status}"
    );
    Ok(())
}

#[test]
fn a_host_updates_twice_and_rolls_back_with_its_tree_clean_after_each_job() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let site = started(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.2.0"),
        false,
        true,
        |_| Ok(()),
    )?;

    // 1.2.0 -> 1.3.0: the migration writes app/tmp/config/, 1.3.0 does not ignore it.
    let (code, first, stderr) = update(&ctl, "web1", "1.3.0")?;
    ensure!(code == 0, "first update failed ({code}): {stderr}");
    let id = first["job_id"].as_str().unwrap_or_default().to_string();
    let r = reported(&ctl, "web1", "1.3.0", &id, "succeeded")?;
    assert_eq!(r["dirty"], false, "{r}");
    assert!(site.host.root.join("app/tmp/config").is_dir());
    as_git_left_it(&site)?;

    // A second patch on the same host.
    let (code, second, stderr) = update(&ctl, "web1", "1.3.2")?;
    ensure!(code == 0, "second update failed ({code}): {stderr}");
    assert!(
        step_output(&second, "preflight")
            .contains("runtime state (not a local change): ?? app/tmp/config/"),
        "{second}"
    );
    let id = second["job_id"].as_str().unwrap_or_default().to_string();
    let r = reported(&ctl, "web1", "1.3.2", &id, "succeeded")?;
    assert_eq!(r["dirty"], false, "{r}");
    as_git_left_it(&site)?;

    // The operator's rollback of the last update is not refused for local modifications.
    let (code, back, stderr) = job(&ctl, &["rollback", "web1"])?;
    ensure!(code == 0, "rollback failed ({code}): {stderr}\n{back}");
    assert_eq!(site.head_tag()?, "v1.3.0");
    let id = back["job_id"].as_str().unwrap_or_default().to_string();
    let r = reported(&ctl, "web1", "1.3.0", &id, "succeeded")?;
    assert_eq!(r["dirty"], false, "{r}");
    as_git_left_it(&site)?;
    Ok(())
}

#[test]
fn a_rollback_from_a_release_that_wrote_runtime_state_leaves_the_host_updatable() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let site = started(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.2.0"),
        false,
        true,
        |site| site.host.set_migration_error(Some("1.3.2")),
    )?;
    let before = site.db.checksum_tables()?;

    // 1.3.0's migration runs (and writes app/tmp/config/), 1.3.2's fails: back to 1.2.0.
    let (code, failed, stderr) = update(&ctl, "web1", "1.3.2")?;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(failed["state"], "rolled_back", "{failed}");
    assert_eq!(failed["failed_step"], "migrate", "{failed}");
    assert_eq!(site.head_tag()?, "v1.2.0");
    assert_eq!(site.db.checksum_tables()?, before);
    assert_eq!(
        site.host.git(&["status", "--porcelain"])?,
        "?? app/tmp/config/\n",
        "the runtime directory stays behind, as on a real tree"
    );
    as_git_left_it(&site)?;
    let id = failed["job_id"].as_str().unwrap_or_default().to_string();
    let r = reported(&ctl, "web1", "1.2.0", &id, "rolled_back")?;
    assert_eq!(r["dirty"], false, "{r}");

    // Fixed, the same update goes through.
    site.host.set_migration_error(None)?;
    let (code, retried, stderr) = update(&ctl, "web1", "1.3.2")?;
    ensure!(code == 0, "retry failed ({code}): {stderr}\n{retried}");
    assert_eq!(site.head_tag()?, "v1.3.2");
    assert!(site.host.pending_migrations()?.is_empty());
    as_git_left_it(&site)?;
    Ok(())
}

#[test]
fn a_database_user_who_may_not_drop_is_refused_before_maintenance() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let site = started(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.3.2"),
        false,
        true,
        |site| site.db.revoke(&["DROP"]),
    )?;
    let head = site.host.git(&["rev-parse", "HEAD"])?;
    let before = site.db.checksum_tables()?;

    let (code, refused, stderr) = update(&ctl, "web1", "1.4.0")?;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(refused["state"], "refused", "{refused}");
    assert_eq!(refused["failed_step"], "preflight", "{refused}");
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("lacks DROP") && reason.contains(&site.db.name),
        "{reason}"
    );
    assert!(!reason.contains("unreachable"), "{reason}");
    // The host never entered maintenance: nothing ran after the preflight.
    assert_eq!(steps(&refused), ["preflight"], "{refused}");
    assert!(!site.maintenance_flag().exists());
    assert_eq!(site.host.git(&["rev-parse", "HEAD"])?, head);
    assert_eq!(site.db.checksum_tables()?, before);
    assert!(
        std::fs::read_dir(site.backup_dir())
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "no backup taken"
    );
    Ok(())
}

#[test]
fn without_a_healthcheck_baseline_a_good_update_succeeds_and_a_broken_one_rolls_back() -> Result<()>
{
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    // 1.5.1 has no healthcheck shell; nobody listed 1.6.10's long-standing failures.
    let good = started(
        base.path(),
        &ctl,
        "good",
        PassboltHost::builder("1.5.1"),
        true,
        false,
        |_| Ok(()),
    )?;
    let broken = started(
        base.path(),
        &ctl,
        "broken",
        PassboltHost::builder("1.5.1"),
        true,
        false,
        |site| site.host.set_health_failures(&["database_content"]),
    )?;

    let (code, job, stderr) = update(&ctl, "good", "1.6.10")?;
    ensure!(code == 0, "good update failed ({code}): {stderr}\n{job}");
    assert_eq!(good.head_tag()?, "v1.6.10");
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("without a baseline"), "{job}");
    assert!(
        step_output(&job, "healthcheck").contains("no healthcheck baseline"),
        "{job}"
    );
    let after: Vec<&str> = job["failing_after"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        after.contains(&"SSL peer certificate does not validate"),
        "the long-standing failures are shown: {job}"
    );

    let before = broken.db.checksum_tables()?;
    let (code, job, stderr) = update(&ctl, "broken", "1.6.10")?;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(job["state"], "rolled_back", "{job}");
    assert_eq!(job["failed_step"], "healthcheck", "{job}");
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("No default content found") && reason.contains("no healthcheck baseline"),
        "{reason}"
    );
    assert!(
        !reason.contains("SSL peer"),
        "only what an update breaks: {reason}"
    );
    assert_eq!(broken.head_tag()?, "v1.5.1");
    assert_eq!(broken.db.checksum_tables()?, before);
    // job show lists the checks that failed the update, and the rollback's own result apart.
    let id = job["job_id"].as_str().unwrap_or_default();
    let text = ctl.cli_ok(&["job", "show", id])?;
    assert!(
        text.contains("failing after:\n") && text.contains("    No default content found\n"),
        "{text}"
    );
    assert!(
        text.contains("failing after the rollback:\n    ./app/Console/cake passbolt healthcheck\n"),
        "{text}"
    );
    Ok(())
}
