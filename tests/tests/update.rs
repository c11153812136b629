//! End to end: single-host update jobs through the controller, with real agents, real git and
//! real MariaDB. Success, a failure rolled back with the database restored, and refusals.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use boltfleet_tests::cluster::{eventually, row, run, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::mysql;
use boltfleet_tests::site::Site;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

fn started(
    base: &Path,
    ctl: &Controller,
    name: &str,
    builder: boltfleet_tests::fixture::HostBuilder,
    health: bool,
) -> Result<Site> {
    let mut site = Site::create(base, ctl, name, builder, health)?;
    site.enroll_and_start(ctl, name, "acme")?;
    eventually("the host's first report", WAIT, || {
        ctl.report()
            .ok()
            .filter(|r| row(r, name).is_some_and(|x| x["version"].is_string()))
    })?;
    Ok(site)
}

/// `boltfleet host update NAME --to VERSION --wait`: (exit code, stdout, stderr).
fn update(ctl: &Controller, name: &str, to: &str) -> Result<(i32, String, String)> {
    let out = run(ctl
        .cli()
        .args(["host", "update", name, "--to", to, "--wait"]))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout)?,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn job_json(ctl: &Controller, id: &str) -> Result<Value> {
    Ok(serde_json::from_str(&ctl.cli_ok(&[
        "job",
        "show",
        id.trim(),
        "--format",
        "json",
    ])?)?)
}

#[test]
fn a_minor_update_succeeds_and_its_backup_restores() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let site = started(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.3.2"),
        false,
    )?;
    let before = site.db.checksum_tables()?;

    let (code, stdout, stderr) = update(&ctl, "web1", "1.4.0")?;
    ensure!(code == 0, "update failed ({code}): {stderr}");
    let job = job_json(&ctl, &stdout)?;
    let steps: Vec<&str> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "preflight",
            "maintenance_on",
            "config_review",
            "backup",
            "checkout",
            "migrate",
            "healthcheck",
            "maintenance_off"
        ]
    );
    assert!(
        job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "succeeded"),
        "{job}"
    );
    assert_eq!(job["from_version"], "1.3.2");

    // The host really moved, and the report says so.
    assert_eq!(site.head_tag()?, "v1.4.0");
    assert!(site.host.pending_migrations()?.is_empty());
    assert!(!site.maintenance_flag().exists());
    let report = eventually("the report to show 1.4.0", WAIT, || {
        ctl.report()
            .ok()
            .filter(|r| row(r, "web1").is_some_and(|x| x["version"] == "1.4.0"))
    })?;
    let last_job = &row(&report, "web1").unwrap()["last_job"];
    assert_eq!(last_job["state"], "succeeded", "{last_job}");
    assert_eq!(last_job["target"], "1.4.0");
    let backup_id = last_job["backup_id"].as_str().context("backup id")?;

    // The backup is private and restores the pre-update database exactly.
    let backup = site.backup_dir().join(backup_id);
    assert_eq!(
        std::fs::metadata(&backup)?.permissions().mode() & 0o777,
        0o600
    );
    let scratch = mysql::server().create_database()?;
    let restore = format!(
        "gzip -dc {} | {} --defaults-extra-file={} {}",
        backup.display(),
        mysql::server().client().display(),
        scratch.option_file.display(),
        scratch.name
    );
    let out = run(Command::new("bash").args(["-c", &restore]))?;
    ensure!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(scratch.checksum_tables()?, before);
    Ok(())
}

#[test]
fn a_failed_migration_is_rolled_back_with_the_database_restored() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let site = started(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.3.2"),
        false,
    )?;
    site.host.set_migration_error(Some("1.4.0"))?;
    let before = site.db.checksum_tables()?;

    let (code, stdout, stderr) = update(&ctl, "web1", "1.4.0")?;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("rolled_back") && stderr.contains("migrate"),
        "{stderr}"
    );
    let job = job_json(&ctl, &stdout)?;
    assert_eq!(job["state"], "rolled_back");
    assert_eq!(job["failed_step"], "migrate");

    assert_eq!(site.head_tag()?, "v1.3.2");
    assert_eq!(
        site.db.checksum_tables()?,
        before,
        "database identical to before the job"
    );
    assert!(!site.maintenance_flag().exists(), "site out of maintenance");
    let report = eventually("the report to show the rollback", WAIT, || {
        ctl.report()
            .ok()
            .filter(|r| row(r, "web1").is_some_and(|x| x["last_job"]["state"] == "rolled_back"))
    })?;
    let r = row(&report, "web1").unwrap();
    assert_eq!(r["version"], "1.3.2");
    assert_eq!(r["last_job"]["failed_step"], "migrate");
    Ok(())
}

#[test]
fn refused_jobs_leave_the_host_untouched() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let site = started(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.3.2").dirty(),
        false,
    )?;
    let head = site.host.git(&["rev-parse", "HEAD"])?;
    let before = site.db.checksum_tables()?;

    // The controller refuses what it can judge from the report: a major jump, a downgrade.
    for (to, why) in [("2.0.0", "major"), ("1.3.0", "downgrade")] {
        let (code, _, stderr) = update(&ctl, "web1", to)?;
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    // Shell or git-option text is not a version: refused before anything is sent.
    for bad in ["1.3.2;touch x", "--upload-pack=x"] {
        let out = run(ctl.cli().args(["host", "update", "web1", "--to", bad]))?;
        assert_eq!(out.status.code(), Some(64), "{bad}");
    }
    // The agent refuses what only the host knows: a dirty work tree, a tag that does not exist.
    for (to, why) in [("1.4.0", "modif"), ("1.3.9", "1.3.9")] {
        if to == "1.3.9" {
            site.host.git(&["checkout", "--", "README.md"])?;
        }
        let (code, stdout, stderr) = update(&ctl, "web1", to)?;
        assert_eq!(code, 1, "{stderr}");
        let job = job_json(&ctl, &stdout)?;
        assert_eq!(job["state"], "refused", "{job}");
        assert!(job["reason"].as_str().unwrap_or("").contains(why), "{job}");
    }
    assert_eq!(site.host.git(&["rev-parse", "HEAD"])?, head);
    assert_eq!(site.db.checksum_tables()?, before);
    assert!(!site.maintenance_flag().exists());
    assert!(
        std::fs::read_dir(site.backup_dir())
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "no backup taken"
    );
    Ok(())
}

/// A failure injected at one step: what to set up, the update, and where it must fail.
struct Injected {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    health_command: bool,
    mysql_keys: &'static str,
    maintenance_on_fails: bool,
    setup: fn(&Site) -> Result<()>,
    state: &'static str,
    failed_step: &'static str,
}

#[test]
fn a_failure_at_any_step_leaves_the_host_as_it_was() -> Result<()> {
    let cases = [
        Injected {
            name: "maintenance",
            from: "1.3.2",
            to: "1.4.0",
            health_command: false,
            mysql_keys: "",
            maintenance_on_fails: true,
            setup: |_| Ok(()),
            state: "failed",
            failed_step: "maintenance_on",
        },
        Injected {
            name: "backup",
            from: "1.3.2",
            to: "1.4.0",
            health_command: false,
            mysql_keys: "dump_program = \"false\"",
            maintenance_on_fails: false,
            setup: |_| Ok(()),
            state: "failed",
            failed_step: "backup",
        },
        Injected {
            name: "phpfatal",
            from: "1.3.2",
            to: "1.4.0",
            health_command: false,
            mysql_keys: "",
            maintenance_on_fails: false,
            setup: |site| site.host.set_php_fatal(true),
            state: "rolled_back",
            failed_step: "migrate",
        },
        Injected {
            name: "health",
            from: "1.5.1",
            to: "1.6.10",
            health_command: true,
            mysql_keys: "",
            maintenance_on_fails: false,
            setup: |site| site.host.set_health_failures(&["database_connect"]),
            state: "rolled_back",
            failed_step: "healthcheck",
        },
    ];
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    for case in cases {
        let mut site = Site::create(
            base.path(),
            &ctl,
            case.name,
            PassboltHost::builder(case.from),
            case.health_command,
        )?;
        let mut config = std::fs::read_to_string(&site.agent.config)?;
        config = config.replacen("[mysql]\n", &format!("[mysql]\n{}\n", case.mysql_keys), 1);
        if case.maintenance_on_fails {
            let flag = format!("flag_file = {:?}\n", site.maintenance_flag());
            config = config.replace(
                &flag,
                "on_command = [\"false\"]\noff_command = [\"true\"]\n",
            );
        }
        std::fs::write(&site.agent.config, config)?;
        (case.setup)(&site)?;
        site.enroll_and_start(&ctl, case.name, "acme")?;
        eventually("the first report", WAIT, || {
            ctl.report()
                .ok()
                .filter(|r| row(r, case.name).is_some_and(|x| x["version"].is_string()))
        })?;
        let head = site.host.git(&["rev-parse", "HEAD"])?;
        let before = site.db.checksum_tables()?;

        let (code, stdout, stderr) = update(&ctl, case.name, case.to)?;
        assert_eq!(code, 1, "{}: {stderr}", case.name);
        let job = job_json(&ctl, &stdout)?;
        assert_eq!(job["state"], case.state, "{}: {job}", case.name);
        assert_eq!(job["failed_step"], case.failed_step, "{}: {job}", case.name);
        assert_eq!(
            site.host.git(&["rev-parse", "HEAD"])?,
            head,
            "{}: previous release",
            case.name
        );
        assert_eq!(
            site.db.checksum_tables()?,
            before,
            "{}: database unchanged",
            case.name
        );
        assert!(
            !site.maintenance_flag().exists(),
            "{}: out of maintenance",
            case.name
        );
    }
    Ok(())
}

/// The cheap job kinds from the CLI, followed over the controller's stream: `host healthcheck
/// --wait` and `host backup --wait` succeed (the backup lands in the agent's backup dir), and
/// `job show --follow` prints the steps live on stderr and the finished job on stdout.
#[test]
fn healthcheck_and_backup_jobs_are_started_and_followed_from_the_cli() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let site = started(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.6.10"),
        true,
    )?;
    let out = run(ctl.cli().args(["host", "healthcheck", "web1", "--wait"]))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "healthcheck failed: {stderr}");
    let job = job_json(&ctl, &String::from_utf8(out.stdout)?)?;
    assert_eq!(job["kind"], "healthcheck", "{job}");
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(
        stderr.contains("healthcheck"),
        "steps followed live: {stderr}"
    );

    let backups = |dir: &Path| -> Result<usize> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".sql.gz"))
            .count())
    };
    let before = backups(&site.backup_dir()).unwrap_or(0);
    let id = ctl.cli_ok(&["host", "backup", "web1"])?;
    let out = run(ctl
        .cli()
        .args(["job", "show", id.trim(), "--follow", "--format", "json"]))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "backup failed: {stderr}");
    let job: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(job["kind"], "backup", "{job}");
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(stderr.contains("backup"), "steps followed live: {stderr}");
    assert_eq!(
        backups(&site.backup_dir())?,
        before + 1,
        "one more verified dump"
    );
    Ok(())
}
