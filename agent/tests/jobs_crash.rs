//! A job process killed with SIGKILL in the middle of a migration, and the restarted jobs
//! converging: the orphaned migration is stopped and the host rolled back from the journal.
//! The job runs in a child process (this test binary, re-run) so the kill is real.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boltfleet_agent::config::AgentConfig;
use boltfleet_agent::jobs::Jobs;
use boltfleet_common::proto::{JobEvent, JobKind, JobState, RunJob};
use boltfleet_tests::cluster::alive;
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::mysql;

/// Set in the child: the agent config it runs the job with.
const CHILD_ENV: &str = "BOLTFLEET_JOBS_CRASH_CONFIG";
const DEADLINE: Duration = Duration::from_secs(180);

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn update(id: &str, to: &str) -> RunJob {
    RunJob {
        job_id: id.into(),
        kind: JobKind::Update as i32,
        target_version: to.into(),
        options: None,
    }
}

fn write_config(base: &Path, host: &PassboltHost) -> PathBuf {
    let text = format!(
        "controller = \"https://127.0.0.1:1\"\nstate_dir = {:?}\n[passbolt]\nroot = {:?}\n[mysql]\noption_file = {:?}\ndatabase = {:?}\n[backup]\ndir = {:?}\n[maintenance]\nflag_file = {:?}\n",
        base.join("state"),
        host.root,
        host.db_option_file,
        host.db_name,
        base.join("backups"),
        base.join("maintenance.flag"),
    );
    let path = base.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_job_killed_mid_migration_is_rolled_back_on_restart() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // this process is the child
    }
    let db = mysql::server().create_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = PassboltHost::create(dir.path(), "1.3.2", &db).unwrap();
    let before = db.checksum_tables().unwrap();
    let config = write_config(dir.path(), &host);
    host.set_hang(true).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_runs_an_update",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, &config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The migrations are applied and `run all` waits: kill the job process there.
    let orphan = eventually("the migration to hang", || host.hanging_pid());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(alive(orphan), "the migration outlives the killed agent");
    assert!(dir.path().join("maintenance.flag").exists());
    assert_ne!(db.checksum_tables().unwrap(), before, "migrated");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let event: JobEvent = runtime.block_on(async {
        let config = AgentConfig::load(&config).unwrap();
        let jobs = Jobs::new(Arc::new(config)).unwrap();
        let mut rx = jobs.subscribe();
        jobs.resume();
        tokio::time::timeout(DEADLINE, async {
            loop {
                let e = rx.recv().await.unwrap();
                if e.job_id == "crash" && e.state().is_final() {
                    return e;
                }
            }
        })
        .await
        .expect("resumed job finished")
    });
    assert_eq!(event.state(), JobState::RolledBack, "{event:#?}");
    assert_eq!(event.failed_step, "migrate");
    assert_eq!(event.reason, "agent restarted during migrate");
    assert!(!alive(orphan), "the orphaned migration was stopped");
    let tag = host
        .git(&["describe", "--tags", "--exact-match", "HEAD"])
        .unwrap();
    assert_eq!(tag.trim(), "v1.3.2");
    assert_eq!(db.checksum_tables().unwrap(), before, "database restored");
    assert!(!dir.path().join("maintenance.flag").exists());
    host.set_hang(false).unwrap();
}

/// Run by the test above in a child process: submits the update and waits to be killed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by a_job_killed_mid_migration_is_rolled_back_on_restart"]
async fn child_runs_an_update() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let config = AgentConfig::load(Path::new(&path)).unwrap();
    let jobs = Jobs::new(Arc::new(config)).unwrap();
    let mut rx = jobs.subscribe();
    jobs.submit(update("crash", "1.4.0"));
    loop {
        let event = rx.recv().await.unwrap();
        assert!(
            !event.state().is_final(),
            "the job ended before it was killed: {event:?}"
        );
    }
}
