//! Jobs against the real passbolt-like fixture host: real git tags, the bash `cake` over a
//! real MariaDB, real dumps and restores. Each test has its own temp dir and database.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use boltfleet_agent::config::AgentConfig;
use boltfleet_agent::jobs::model::{ROLLBACK_STEPS, UPDATE_STEPS};
use boltfleet_agent::jobs::Jobs;
use boltfleet_common::proto::{JobEvent, JobKind, JobState, RunJob, StepState};
use boltfleet_tests::fixture::{HostBuilder, PassboltHost};
use boltfleet_tests::mysql::{self, TestDatabase};
use boltfleet_tests::site::KNOWN_FAILURES;
use sha2::{Digest, Sha256};

/// A job on the fixture takes a few seconds; this is only the give-up point.
const DEADLINE: Duration = Duration::from_secs(300);

struct Env {
    dir: tempfile::TempDir,
    db: TestDatabase,
    host: PassboltHost,
    jobs: Jobs,
}

impl Env {
    fn new(builder: HostBuilder, health_command: bool) -> Env {
        Env::with_extra(builder, health_command, "")
    }

    /// A host whose agent config ends with `extra` (TOML sections).
    fn with_extra(builder: HostBuilder, health_command: bool, extra: &str) -> Env {
        let db = mysql::server().create_database().expect("database");
        let dir = tempfile::tempdir().expect("temp dir");
        let host = builder.create(dir.path(), &db).expect("host");
        let mut config = config(dir.path(), &host, &db, health_command, None);
        if !extra.is_empty() {
            let path = dir.path().join("agent.toml");
            let text = std::fs::read_to_string(&path).unwrap() + extra;
            std::fs::write(&path, text).unwrap();
            config = AgentConfig::load(&path).expect("valid config");
        }
        let jobs = Jobs::new(Arc::new(config)).expect("jobs");
        Env {
            dir,
            db,
            host,
            jobs,
        }
    }

    fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn flag(&self) -> PathBuf {
        self.dir.path().join("maintenance.flag")
    }

    fn head(&self) -> String {
        self.host.git(&["rev-parse", "HEAD"]).unwrap()
    }

    fn tag(&self) -> String {
        self.host
            .git(&["describe", "--tags", "--exact-match", "HEAD"])
            .unwrap()
            .trim()
            .to_string()
    }

    fn sums(&self) -> BTreeMap<String, String> {
        self.db.checksum_tables().unwrap()
    }

    async fn run(&self, job: RunJob) -> JobEvent {
        run(&self.jobs, job).await
    }
}

/// The agent config of a fixture host; `option_file` overrides the database's.
fn config(
    base: &Path,
    host: &PassboltHost,
    db: &TestDatabase,
    health_command: bool,
    option_file: Option<&Path>,
) -> AgentConfig {
    let mut text = format!(
        "controller = \"https://127.0.0.1:1\"\nstate_dir = {:?}\n[passbolt]\nroot = {:?}\n{KNOWN_FAILURES}\n",
        base.join("state"),
        host.root
    );
    if health_command {
        text.push_str(
            "healthcheck_command = [\"./app/Console/cake\", \"passbolt\", \"healthcheck\"]\n",
        );
    }
    text.push_str(&format!(
        "[mysql]\noption_file = {:?}\ndatabase = {:?}\n[backup]\ndir = {:?}\nkeep = 2\n[maintenance]\nflag_file = {:?}\n",
        option_file.unwrap_or(&db.option_file),
        db.name,
        base.join("backups"),
        base.join("maintenance.flag"),
    ));
    let path = base.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    AgentConfig::load(&path).expect("valid config")
}

async fn run(jobs: &Jobs, job: RunJob) -> JobEvent {
    let mut rx = jobs.subscribe();
    let id = job.job_id.clone();
    jobs.submit(job);
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = rx.recv().await.expect("job events");
            if event.job_id == id && event.state().is_final() {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("job {id} did not finish within {DEADLINE:?}"))
}

fn update(id: &str, to: &str) -> RunJob {
    RunJob {
        job_id: id.into(),
        kind: JobKind::Update as i32,
        target_version: to.into(),
        options: None,
    }
}

fn rollback(id: &str) -> RunJob {
    RunJob {
        job_id: id.into(),
        kind: JobKind::Rollback as i32,
        ..RunJob::default()
    }
}

fn names(event: &JobEvent) -> Vec<&str> {
    event.steps.iter().map(|s| s.name.as_str()).collect()
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The backup of `event` is private, has its checksum file, and loads into a fresh database
/// as exactly `expected`.
fn assert_backup_restores(event: &JobEvent, expected: &BTreeMap<String, String>) {
    let path = PathBuf::from(&event.backup_path);
    assert_eq!(path.file_name().unwrap().to_string_lossy(), event.backup_id);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "backup is private");
    let sum = std::fs::read_to_string(format!("{}.sha256", path.display())).unwrap();
    assert_eq!(sum, format!("{}  {}\n", sha256(&path), event.backup_id));
    let scratch = mysql::server().create_database().unwrap();
    let restore = format!(
        "gzip -dc {} | {} --defaults-extra-file={} {}",
        path.display(),
        mysql::server().client().display(),
        scratch.option_file.display(),
        scratch.name
    );
    let out = Command::new("bash")
        .args(["-c", &restore])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&scratch.checksum_tables().unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_update_succeeds_with_a_verified_backup() {
    let env = Env::new(PassboltHost::builder("1.3.0"), false);
    let before = env.sums();
    let event = env.run(update("patch", "1.3.2")).await;
    assert_eq!(event.state(), JobState::Succeeded, "{event:#?}");
    assert_eq!(names(&event), UPDATE_STEPS);
    assert!(
        event
            .steps
            .iter()
            .all(|s| s.state() == StepState::Succeeded),
        "{event:#?}"
    );
    assert_eq!(
        (event.from_version.as_str(), event.target_version.as_str()),
        ("1.3.0", "1.3.2")
    );
    assert_eq!(
        event.config_changes,
        ["changed app/Config/core.php.default"]
    );
    assert_eq!(env.host.installed_version().unwrap(), "1.3.2");
    assert_eq!(env.tag(), "v1.3.2");
    assert!(env.host.pending_migrations().unwrap().is_empty());
    assert!(env
        .host
        .applied_migrations()
        .unwrap()
        .contains(&"1481802101_Migration_1.3.2".to_string()));
    assert!(!env.flag().exists(), "maintenance off");
    assert_eq!(env.host.git(&["status", "--porcelain"]).unwrap(), "");
    // Cleared, but for the placeholder git tracks there.
    let left: Vec<String> = env
        .host
        .root
        .join("app/tmp/cache/models")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["empty"], "cache cleared");
    assert_backup_restores(&event, &before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minor_update_keeps_the_edited_email_config_and_rolls_back_on_request() {
    let env = Env::new(PassboltHost::builder("1.3.2").edited_email_config(), true);
    let email = env.host.root.join("app/Config/email.php");
    let before = env.sums();
    let event = env.run(update("minor", "1.6.10")).await;
    assert_eq!(event.state(), JobState::Succeeded, "{event:#?}");
    assert_eq!(env.tag(), "v1.6.10");
    assert!(env.host.pending_migrations().unwrap().is_empty());
    assert!(std::fs::read_to_string(&email)
        .unwrap()
        .contains(PassboltHost::EDITED_EMAIL_MARKER));
    assert!(
        event
            .config_changes
            .iter()
            .any(|l| l.starts_with("app/Config/email.php is saved")
                && l.contains("v1.6.10 no longer ships it")),
        "{:?}",
        event.config_changes
    );
    assert!(
        event
            .config_changes
            .contains(&"added app/Config/passbolt.php.default".to_string())
            || event
                .config_changes
                .iter()
                .any(|l| l.starts_with("changed")),
        "{:?}",
        event.config_changes
    );
    // Before: v1.3.2 has no healthcheck, so the command itself failed; after: only the
    // operator's known failures.
    assert_eq!(
        event.failing_before,
        ["./app/Console/cake passbolt healthcheck"]
    );
    assert!(!event.failing_after.is_empty());
    assert_eq!(
        env.host.git(&["status", "--porcelain"]).unwrap(),
        "",
        "email.php is ignored from 1.5.1"
    );

    // The operator rolls it back: code, database and the edited email.php as before.
    let back = env.run(rollback("undo")).await;
    assert_eq!(back.state(), JobState::Succeeded, "{back:#?}");
    assert_eq!(names(&back)[2..], ROLLBACK_STEPS);
    assert_eq!(
        (back.from_version.as_str(), back.target_version.as_str()),
        ("1.6.10", "1.3.2")
    );
    assert_eq!(env.tag(), "v1.3.2");
    assert_eq!(env.sums(), before);
    assert!(std::fs::read_to_string(&email)
        .unwrap()
        .contains(PassboltHost::EDITED_EMAIL_MARKER));
    assert_eq!(
        env.host.git(&["status", "--porcelain"]).unwrap(),
        " M app/Config/email.php\n"
    );
    assert!(!env.flag().exists());
    // Nothing left to roll back.
    let again = env.run(rollback("undo2")).await;
    assert_eq!(again.state(), JobState::Refused);
}

/// A failed update: back on the previous tag, database identical, out of maintenance.
fn assert_rolled_back(
    env: &Env,
    event: &JobEvent,
    failed_step: &str,
    tag: &str,
    before: &BTreeMap<String, String>,
) {
    assert_eq!(event.state(), JobState::RolledBack, "{event:#?}");
    assert_eq!(event.failed_step, failed_step, "{event:#?}");
    let at = names(event).iter().position(|n| *n == failed_step).unwrap();
    assert_eq!(names(event)[at + 1..], ROLLBACK_STEPS);
    assert_eq!(env.tag(), tag);
    assert_eq!(&env.sums(), before, "database identical to before the job");
    assert!(!env.flag().exists(), "maintenance off");
    assert!(env.host.pending_migrations().unwrap().is_empty());
    assert!(Path::new(&event.backup_path).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_error_is_rolled_back() {
    let env = Env::new(PassboltHost::builder("1.3.2"), false);
    env.host.set_migration_error(Some("1.4.0")).unwrap();
    let before = env.sums();
    let event = env.run(update("j-migration", "1.4.0")).await;
    assert_rolled_back(&env, &event, "migrate", "v1.3.2", &before);
    assert!(
        event.reason.contains("1205 Lock wait timeout"),
        "{}",
        event.reason
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_waits_for_the_database_lock_and_touches_nothing_without_it() {
    // Step deadline 10 s: the restore waits 5 s for the lock.
    let env = Env::with_extra(
        PassboltHost::builder("1.3.2"),
        false,
        "[jobs]\nstep_timeout = \"10s\"\n",
    );
    env.host.set_migration_error(Some("1.4.0")).unwrap();
    let before = env.sums();
    // Another session holds the lock every restore of this database takes: a restore that
    // was left running, or a second one.
    let lock = boltfleet_agent::jobs::host::lock_name(&env.db.name);
    let mut holder = std::process::Command::new(mysql::server().client())
        .arg(format!(
            "--defaults-extra-file={}",
            env.db.option_file.display()
        ))
        .args(["--batch", "--skip-column-names", "--unbuffered"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::{BufRead, Write};
        let stdin = holder.stdin.as_mut().unwrap();
        writeln!(stdin, "SELECT GET_LOCK('{lock}', 5);").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "1", "the test holds the lock");
    }
    let event = env.run(update("j-locked", "1.4.0")).await;
    assert_eq!(event.state(), JobState::RollbackFailed, "{event:#?}");
    assert!(
        event
            .reason
            .contains(&format!("another restore holds the database lock {lock}")),
        "{}",
        event.reason
    );
    let half_migrated = env.sums();
    // Left as the failed migration left it: neither restored nor emptied.
    assert_ne!(half_migrated, before, "no restore ran without the lock");
    assert!(!half_migrated.is_empty(), "nothing was dropped");
    assert!(env.flag().exists(), "maintenance stays on");
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_php_fatal_is_rolled_back() {
    let env = Env::new(PassboltHost::builder("1.3.0"), false);
    env.host.set_php_fatal(true).unwrap();
    let before = env.sums();
    let event = env.run(update("j-fatal", "1.3.2")).await;
    assert_rolled_back(&env, &event, "migrate", "v1.3.0", &before);
    assert!(event.reason.contains("Fatal error"), "{}", event.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_health_failure_is_rolled_back() {
    // v1.5.1 has no healthcheck; the switch makes v1.6.10's cache check fail.
    let env = Env::new(PassboltHost::builder("1.5.1"), true);
    env.host.set_health_failures(&["cache"]).unwrap();
    let before = env.sums();
    let event = env.run(update("j-health", "1.6.10")).await;
    assert_rolled_back(&env, &event, "healthcheck", "v1.5.1", &before);
    assert!(
        event.reason.contains("Cache is NOT working."),
        "{}",
        event.reason
    );
    // There was no baseline at 1.5.1: judged by what an update can break, and the cache is.
    assert!(
        event.reason.contains("no healthcheck baseline"),
        "{}",
        event.reason
    );
    // failing_after keeps the checks that failed the update; the rollback's are apart.
    assert!(
        event
            .failing_after
            .contains(&"Cache is NOT working.".to_string()),
        "{:?}",
        event.failing_after
    );
    assert_eq!(
        event.failing_after_rollback,
        ["./app/Console/cake passbolt healthcheck"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_leave_the_host_untouched() {
    let env = Env::new(PassboltHost::builder("1.3.2"), false);
    let head = env.head();
    let before = env.sums();
    let untouched = |event: &JobEvent, why: &str| {
        assert_eq!(event.state(), JobState::Refused, "{why}: {event:#?}");
        assert!(event.reason.contains(why), "{why}: {}", event.reason);
        assert_eq!(env.head(), head, "{why}");
        assert!(!env.flag().exists(), "{why}");
        assert!(!env.backups().exists(), "{why}: no backup taken");
        assert_eq!(
            env.host.git(&["status", "--porcelain"]).unwrap(),
            "",
            "{why}"
        );
    };
    for (i, (to, why)) in [
        ("1.3.9", "v1.3.9 does not exist"),
        ("2.0.0", "major"),
        ("1.3.0", "downgrade"),
        ("1.3.2", "already runs 1.3.2"),
        ("v1.3.2;touch x", "invalid target version"),
        ("--upload-pack=x", "invalid target version"),
        ("1.3", "invalid target version"),
    ]
    .into_iter()
    .enumerate()
    {
        let event = env.run(update(&format!("r{i}"), to)).await;
        untouched(&event, why);
    }
    assert!(!env.host.root.join("x").exists() && !Path::new("x").exists());

    env.host.make_dirty().unwrap();
    let event = env.run(update("dirty", "1.4.0")).await;
    assert_eq!(event.state(), JobState::Refused);
    assert!(
        event.reason.contains("local modifications") && event.reason.contains("README.md"),
        "{}",
        event.reason
    );
    env.host.git(&["checkout", "--", "README.md"]).unwrap();

    env.db.set_user_enabled(false).unwrap();
    let event = env.run(update("locked", "1.4.0")).await;
    env.db.set_user_enabled(true).unwrap();
    untouched(&event, "cannot connect to database");

    // An option file the agent cannot read: refused, naming it.
    let other = tempfile::tempdir().unwrap();
    let missing = other.path().join("missing.cnf");
    let jobs = Jobs::new(Arc::new(config(
        other.path(),
        &env.host,
        &env.db,
        false,
        Some(&missing),
    )))
    .unwrap();
    let event = run(&jobs, update("no-cnf", "1.4.0")).await;
    untouched(&event, &missing.display().to_string());
    assert_eq!(env.sums(), before);
}
