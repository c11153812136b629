//! End to end: one owner of the host at a time. A job holds the host against the agent's own
//! probes (which write: the migration plugin's `status` creates `schema_migrations` in an
//! emptied database), and two agents never share a state dir. (That a restore never runs
//! without the database's lock is in `agent/tests/jobs_real.rs`; that a killed agent's clients
//! are stopped, in `crash.rs`.)

use std::time::Duration;

use anyhow::Result;
use boltfleet_tests::cluster::{eventually, run, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::site::Site;

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn a_rollback_under_fast_reports_restores_every_table_schema_migrations_included() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let mut site = Site::create(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.3.2"),
        false,
    )?;
    // Reports and passbolt's commands ten times a second, as every report ran them before:
    // before the host had one owner, the migration status probe ran inside every restore.
    site.agent.set_top_level("probe_interval = \"100ms\"")?;
    let text = std::fs::read_to_string(&site.agent.config)?;
    std::fs::write(
        &site.agent.config,
        text.replace("report_interval = \"2s\"", "report_interval = \"100ms\""),
    )?;
    // The restore's client holds back the rest of the dump for a moment once it has created
    // `schema_migrations` (still empty): the window a probe of the migration status wrote into.
    let client = base.path().join("slow-restore-client");
    std::fs::write(
        &client,
        format!(
            "#!/usr/bin/env bash\nif [[ \" $* \" == *\" --unbuffered \"* ]]; then\n  awk '{{print; fflush()}} /^CREATE TABLE `schema_migrations`/ {{w=1}} w && /;$/ {{system(\"sleep 1.5\"); w=0}}' | {real} \"$@\"\n  exit ${{PIPESTATUS[1]}}\nfi\nexec {real} \"$@\"\n",
            real = boltfleet_tests::mysql::client_binary()?.display()
        ),
    )?;
    std::fs::set_permissions(&client, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let text = std::fs::read_to_string(&site.agent.config)?;
    std::fs::write(
        &site.agent.config,
        text.replacen(
            "[mysql]\n",
            &format!("[mysql]\nclient_program = {client:?}\n"),
            1,
        ),
    )?;
    site.enroll_and_start(&ctl, "web1", "acme")?;
    let before = site.db_state()?;
    assert!(before.1.contains_key("schema_migrations"), "{:?}", before.1);

    for round in 0..3 {
        site.host.set_migration_error(Some("1.4.0"))?;
        let id = ctl
            .cli_ok(&["host", "update", "web1", "--to", "1.4.0"])?
            .trim()
            .to_string();
        let done = eventually(&format!("round {round}: job {id} to end"), WAIT, || {
            ctl.job(&id)
                .ok()
                .filter(|j| !matches!(j["state"].as_str(), Some("queued" | "running")))
        })?;
        assert_eq!(done["state"], "rolled_back", "round {round}: {done}");
        assert_eq!(site.head_tag()?, "v1.3.2");
        assert_eq!(
            site.db_state()?,
            before,
            "round {round}: every table as before the job"
        );
    }
    Ok(())
}

#[test]
fn a_second_agent_on_one_state_dir_exits_64_naming_the_first() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let mut site = Site::at(base.path(), &ctl, "web1", "1.5.1")?;
    site.enroll_and_start(&ctl, "web1", "acme")?;
    eventually("the agent to report", WAIT, || {
        let report = ctl.report().ok()?;
        boltfleet_tests::cluster::row(&report, "web1")
            .is_some_and(|r| r["online"] == true)
            .then_some(())
    })?;
    let first = site.agent.proc.as_ref().unwrap().child.id();
    let out = run(
        std::process::Command::new(boltfleet_tests::cluster::bin("boltfleet-agent"))
            .arg("run")
            .arg("--config")
            .arg(&site.agent.config),
    )?;
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "boltfleet-agent: another boltfleet-agent (pid {first}) uses {}",
            site.agent.state_dir.display()
        )
    );
    assert!(
        site.agent.proc.as_mut().unwrap().is_running(),
        "the first runs on"
    );
    Ok(())
}
