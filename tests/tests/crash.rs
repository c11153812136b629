//! End to end: `kill -9` of the real agent binary during the backup, the migrations and the
//! rollback. After a restart the host converges (restored, out of maintenance, previous tag)
//! and the controller learns the outcome.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use boltfleet_tests::cluster::{alive, eventually, run, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::site::Site;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// A wrapper around a real MariaDB program that, the first time the bash test `when` holds
/// for its arguments while `pause` exists, marks `reached` and waits as long as `pause` exists
/// (before the program runs, so a kill in the meantime leaves nothing half done). Later calls
/// run the program at once.
fn pausing_wrapper(
    dir: &Path,
    name: &str,
    real: &str,
    when: &str,
) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let script = dir.join(name);
    let pause = dir.join(format!("{name}.pause"));
    let reached = dir.join(format!("{name}.reached"));
    std::fs::write(
        &script,
        format!(
            "#!/usr/bin/env bash\nif [ -e {pause:?} ] && [ ! -e {reached:?} ] && {when}; then\n  touch {reached:?}\n  while [ -e {pause:?} ]; do sleep 0.1; done\nfi\nexec {real} \"$@\"\n"
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(&pause, "")?;
    Ok((script, pause, reached))
}

fn which(names: &[&str]) -> String {
    for name in names {
        let out =
            run(std::process::Command::new("bash").args(["-c", &format!("command -v {name}")]));
        if let Ok(out) = out {
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
        }
    }
    panic!("none of {names:?} found")
}

/// Fails when any process's command line contains `secret`.
fn assert_no_process_shows(secret: &str) -> Result<()> {
    assert!(secret.len() >= 8, "a real password to look for");
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path().join("cmdline");
        if let Ok(cmdline) = std::fs::read(&path) {
            seen += 1;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !text.contains(secret),
                "password visible in {}: {text}",
                path.display()
            );
        }
    }
    assert!(seen > 5, "processes were inspected");
    Ok(())
}

/// Adds keys to the agent config's `[mysql]` section.
fn add_mysql_keys(site: &Site, keys: &str) -> Result<()> {
    let text = std::fs::read_to_string(&site.agent.config)?;
    std::fs::write(
        &site.agent.config,
        text.replacen("[mysql]\n", &format!("[mysql]\n{keys}\n"), 1),
    )?;
    Ok(())
}

/// The pid a command recorded in the agent's `jobs/<name>.pid`, when that process runs.
fn running_recorded(site: &Site, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(site.agent.state_dir.join("jobs").join(name)).ok()?;
    let pid: u32 = text.split_whitespace().next()?.parse().ok()?;
    alive(pid).then_some(pid)
}

/// The restarted agent stopped the orphan `pid` (which was running) and said so.
fn reaped(site: &Site, pid: u32, what: &str) -> Result<()> {
    eventually(&format!("orphan {pid} to be stopped"), WAIT, || {
        (!alive(pid)).then_some(())
    })?;
    let log = site.agent.proc.as_ref().unwrap().log_text();
    assert!(
        log.contains(&format!("stopped process group {pid} ({what})")),
        "{log}"
    );
    Ok(())
}

fn start_update(ctl: &Controller, host: &str, to: &str) -> Result<String> {
    Ok(ctl
        .cli_ok(&["host", "update", host, "--to", to])?
        .trim()
        .to_string())
}

fn wait_state(ctl: &Controller, id: &str, done: &[&str]) -> Result<Value> {
    eventually(&format!("job {id} to end in {done:?}"), WAIT, || {
        ctl.job(id)
            .ok()
            .filter(|j| done.iter().any(|s| j["state"] == *s))
    })
}

/// Starts a controller and one enrolled agent on a host at 1.3.2.
fn setup(base: &Path) -> Result<(Controller, Site)> {
    let ctl = Controller::start(base)?;
    let site = Site::create(base, &ctl, "web1", PassboltHost::builder("1.3.2"), false)?;
    Ok((ctl, site))
}

fn converged_to_before(
    site: &Site,
    before: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    assert_eq!(site.head_tag()?, "v1.3.2", "host on its previous tag");
    assert_eq!(
        &site.db.checksum_tables()?,
        before,
        "database as before the job"
    );
    assert!(!site.maintenance_flag().exists(), "site out of maintenance");
    Ok(())
}

#[test]
fn killed_during_the_backup_the_host_is_left_as_it_was() -> Result<()> {
    let base = tempfile::tempdir()?;
    let (ctl, mut site) = setup(base.path())?;
    let (dump, pause, reached) = pausing_wrapper(
        base.path(),
        "dump",
        &which(&["mariadb-dump", "mysqldump"]),
        "true",
    )?;
    add_mysql_keys(&site, &format!("dump_program = {:?}", dump))?;
    site.enroll_and_start(&ctl, "web1", "acme")?;
    let before = site.db.checksum_tables()?;

    let id = start_update(&ctl, "web1", "1.4.0")?;
    eventually("the backup to start", WAIT, || {
        reached.exists().then_some(())
    })?;
    // Mid-job: no process shows the database password in its arguments, and the journal is
    // private.
    assert_no_process_shows(&site.db.password)?;
    for entry in std::fs::read_dir(site.agent.state_dir.join("jobs"))? {
        let path = entry?.path();
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
    }
    site.agent.proc.as_mut().unwrap().kill9();
    // The dump client outlives the agent, still paused: the restarted agent must stop it.
    let orphan = running_recorded(&site, "dump.pid").expect("the dump client runs on");
    site.agent.start()?;

    let job = wait_state(&ctl, &id, &["failed", "rolled_back"])?;
    assert!(
        job["reason"].as_str().unwrap_or("").contains("backup"),
        "{job}"
    );
    reaped(&site, orphan, "dump")?;
    std::fs::remove_file(&pause)?;
    converged_to_before(&site, &before)?;
    let leftovers: Vec<_> = std::fs::read_dir(site.backup_dir())
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|e| !e.file_name().to_string_lossy().contains("tmp")),
        "no partial backup left: {leftovers:?}"
    );
    Ok(())
}

#[test]
fn killed_during_the_migrations_the_host_is_restored() -> Result<()> {
    let base = tempfile::tempdir()?;
    let (ctl, mut site) = setup(base.path())?;
    site.enroll_and_start(&ctl, "web1", "acme")?;
    let before = site.db.checksum_tables()?;
    site.host.set_hang(true)?;

    let id = start_update(&ctl, "web1", "1.4.0")?;
    eventually("the migrations to run", WAIT, || site.host.hanging_pid())?;
    site.agent.proc.as_mut().unwrap().kill9();
    site.agent.start()?;

    let job = wait_state(&ctl, &id, &["rolled_back", "rollback_failed"])?;
    assert_eq!(job["state"], "rolled_back", "{job}");
    assert!(
        job["reason"].as_str().unwrap_or("").contains("migrate"),
        "{job}"
    );
    site.host.set_hang(false)?;
    converged_to_before(&site, &before)?;
    Ok(())
}

#[test]
fn killed_during_the_rollback_the_rollback_is_finished() -> Result<()> {
    let base = tempfile::tempdir()?;
    let (ctl, mut site) = setup(base.path())?;
    // Only the restore session (the one client run with --unbuffered) pauses.
    let (client, pause, reached) = pausing_wrapper(
        base.path(),
        "client",
        &which(&["mariadb", "mysql"]),
        r#"[[ " $* " == *" --unbuffered "* ]]"#,
    )?;
    add_mysql_keys(&site, &format!("client_program = {:?}", client))?;
    site.enroll_and_start(&ctl, "web1", "acme")?;
    let before = site.db.checksum_tables()?;
    site.host.set_migration_error(Some("1.4.0"))?;

    let id = start_update(&ctl, "web1", "1.4.0")?;
    eventually("the restore to start", WAIT, || {
        reached.exists().then_some(())
    })?;
    // Mid-job the agent reports its last facts, marked, and probes nothing.
    eventually("a report marked job_in_progress", WAIT, || {
        let report = ctl.report().ok()?;
        let row = boltfleet_tests::cluster::row(&report, "web1")?;
        (row["job_in_progress"] == true).then_some(())
    })?;
    site.agent.proc.as_mut().unwrap().kill9();
    // The restore client outlives the agent, still paused: the restarted agent stops it
    // before it restores (its own client runs at once: the wrapper pauses only once).
    let orphan = running_recorded(&site, "restore.pid").expect("the restore client runs on");
    site.agent.start()?;

    let job = wait_state(&ctl, &id, &["rolled_back", "rollback_failed"])?;
    assert_eq!(job["state"], "rolled_back", "{job}");
    reaped(&site, orphan, "restore")?;
    std::fs::remove_file(&pause)?;
    converged_to_before(&site, &before)?;
    Ok(())
}

#[test]
fn a_job_finishes_while_the_controller_is_down_and_is_reported_after() -> Result<()> {
    let base = tempfile::tempdir()?;
    let (mut ctl, mut site) = setup(base.path())?;
    site.enroll_and_start(&ctl, "web1", "acme")?;
    site.host.set_hang(true)?;

    let id = start_update(&ctl, "web1", "1.4.0")?;
    eventually("the migrations to run", WAIT, || site.host.hanging_pid())?;
    ctl.kill9();
    site.host.set_hang(false)?;
    // The agent goes on alone: the host reaches the target with the controller down.
    eventually("the update to finish on the host", WAIT, || {
        let done = site.head_tag().ok()? == "v1.4.0" && !site.maintenance_flag().exists();
        done.then_some(())
    })?;
    ctl.serve()?;
    let job = wait_state(&ctl, &id, &["succeeded", "rolled_back", "failed"])?;
    assert_eq!(job["state"], "succeeded", "{job}");
    Ok(())
}
