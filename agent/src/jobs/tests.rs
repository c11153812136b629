//! The runner's transitions against a fake host: step order, failures at each step, rollback,
//! resume decisions, duplicates and the one-job lock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boltfleet_common::proto::{JobEvent, JobKind, JobOptions, JobState, RunJob, StepState};
use boltfleet_common::version::{parse_release, Version};
use tokio::sync::Semaphore;

use super::host::{HealthFacts, HostOps, OpError, RepoFacts, Tags};
use super::model::{
    step, BackupInfo, JobPhase, JournalEntry, Kind, Request, ROLLBACK_STEPS, UPDATE_STEPS,
};
use super::resume::{decide, Decision};
use super::Jobs;

const HEALTHCHECK_COMMAND: &str = "./app/Console/cake passbolt healthcheck";

fn v(s: &str) -> Version {
    parse_release(s).unwrap()
}

/// A host that records what was asked of it and fails where told.
struct Fake {
    calls: Mutex<Vec<String>>,
    fail: Mutex<Vec<&'static str>>,
    /// Operations that fail the first time only.
    fail_once: Mutex<Vec<&'static str>>,
    at: Mutex<Version>,
    porcelain: Vec<String>,
    /// Release at which a check newly fails (one an update can break).
    sick_at: Option<Version>,
    /// Release at which the healthcheck command gives no checks (no healthcheck shell yet).
    blind_at: Option<Version>,
    maintenance: bool,
    dir: PathBuf,
    /// When set, the backup waits for a permit.
    gate: Option<Arc<Semaphore>>,
}

impl Fake {
    fn new(dir: &Path) -> Self {
        Fake {
            calls: Mutex::new(Vec::new()),
            fail: Mutex::new(Vec::new()),
            fail_once: Mutex::new(Vec::new()),
            at: Mutex::new(v("1.3.0")),
            porcelain: Vec::new(),
            sick_at: None,
            blind_at: None,
            maintenance: true,
            dir: dir.to_path_buf(),
            gate: None,
        }
    }

    fn failing(self, op: &'static str) -> Self {
        self.fail.lock().unwrap().push(op);
        self
    }

    fn failing_once(self, op: &'static str) -> Self {
        self.fail_once.lock().unwrap().push(op);
        self
    }

    fn call(&self, op: &str) -> Result<(), OpError> {
        self.calls.lock().unwrap().push(op.to_string());
        let mut once = self.fail_once.lock().unwrap();
        if let Some(at) = once.iter().position(|o| *o == op) {
            once.remove(at);
            return Err(OpError::new(format!("{op} broke once")));
        }
        drop(once);
        if self.fail.lock().unwrap().contains(&op) {
            return Err(OpError::new(format!("{op} broke")).with_log("fake output"));
        }
        Ok(())
    }
}

impl HostOps for Arc<Fake> {
    async fn repo(&self) -> Result<RepoFacts, OpError> {
        self.call("repo")?;
        Ok(RepoFacts {
            current: Some(self.at.lock().unwrap().clone()),
            porcelain: self.porcelain.clone(),
            ..RepoFacts::default()
        })
    }

    async fn fetch_tags(&self) -> Result<Tags, OpError> {
        self.call("fetch")?;
        Ok(Tags {
            releases: ["1.3.0", "1.3.2", "1.6.10", "2.0.0"].map(v).into(),
            log: String::new(),
            fetch_error: None,
        })
    }

    async fn database_size(&self) -> Result<u64, OpError> {
        self.call("size")?;
        Ok(100)
    }

    fn backup_free_space(&self) -> Result<u64, OpError> {
        self.call("free")?;
        Ok(1000)
    }

    async fn restore_privileges(&self) -> Result<String, OpError> {
        self.call("rights").map(|()| String::new())
    }

    async fn health(&self) -> HealthFacts {
        self.calls.lock().unwrap().push("health".into());
        let at = self.at.lock().unwrap().clone();
        if self.blind_at.as_ref() == Some(&at) {
            return HealthFacts {
                failing: vec![HEALTHCHECK_COMMAND.into()],
                no_checks: Some(HEALTHCHECK_COMMAND.into()),
                ..HealthFacts::default()
            };
        }
        let mut failing = vec!["SSL peer certificate does not validate".to_string()];
        let mut breakable = Vec::new();
        if self.sick_at.as_ref() == Some(&at) {
            failing.push("Cache is NOT working.".into());
            breakable.push("Cache is NOT working.".into());
        }
        HealthFacts {
            failing,
            breakable,
            ..HealthFacts::default()
        }
    }

    fn maintenance_configured(&self) -> bool {
        self.maintenance
    }

    async fn maintenance_on(&self, _job_id: &str) -> Result<String, OpError> {
        self.call("maint_on").map(|()| String::new())
    }

    async fn maintenance_off(&self) -> Result<String, OpError> {
        self.call("maint_off").map(|()| String::new())
    }

    async fn config_review(&self, _from: &Version, to: &Version) -> Result<Vec<String>, OpError> {
        self.call("review")?;
        Ok(vec![format!("changed app/Config/core.php.default ({to})")])
    }

    fn backup_path(&self, job_id: &str, _now: i64) -> Result<PathBuf, OpError> {
        Ok(self.dir.join(format!("{job_id}.sql.gz")))
    }

    async fn backup(&self, path: &Path) -> Result<(BackupInfo, String), OpError> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        self.call("backup")?;
        std::fs::write(path, "dump").unwrap();
        Ok((
            BackupInfo {
                path: path.to_path_buf(),
                sha256: "00".into(),
                bytes: 1,
            },
            "dumped".into(),
        ))
    }

    fn discard_partial(&self, _partial: &Path) -> Result<(), OpError> {
        self.call("discard")
    }

    async fn checkout(&self, tag: &Version, _copy: &Path, force: bool) -> Result<String, OpError> {
        self.call(if force { "checkout_force" } else { "checkout" })?;
        *self.at.lock().unwrap() = tag.clone();
        Ok(String::new())
    }

    async fn migrate(&self, answers: &[String]) -> Result<String, OpError> {
        self.call("migrate")?;
        Ok(answers.join(","))
    }

    async fn restore(&self, _backup: &BackupInfo) -> Result<String, OpError> {
        self.call("restore").map(|()| String::new())
    }

    fn reap_orphans(&self) -> Option<String> {
        None
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    fake: Arc<Fake>,
    jobs: Jobs<Arc<Fake>>,
    state: PathBuf,
}

fn setup(f: impl FnOnce(Fake) -> Fake) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let fake = Arc::new(f(Fake::new(dir.path())));
    let jobs = Jobs::with_host(&state, fake.clone()).unwrap();
    Setup {
        _dir: dir,
        fake,
        jobs,
        state,
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

/// Waits (with a deadline) for the outcome of job `id`.
async fn outcome(rx: &mut tokio::sync::broadcast::Receiver<JobEvent>, id: &str) -> JobEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = rx.recv().await.expect("events");
            if event.job_id == id && event.state().is_final() {
                return event;
            }
        }
    })
    .await
    .expect("job finished in time")
}

async fn run(s: &Setup, job: RunJob) -> JobEvent {
    let mut rx = s.jobs.subscribe();
    let id = job.job_id.clone();
    s.jobs.submit(job);
    outcome(&mut rx, &id).await
}

fn steps(event: &JobEvent) -> Vec<(String, StepState)> {
    event
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.state()))
        .collect()
}

fn names(event: &JobEvent) -> Vec<&str> {
    event.steps.iter().map(|s| s.name.as_str()).collect()
}

fn calls(s: &Setup) -> Vec<String> {
    s.fake.calls.lock().unwrap().clone()
}

#[tokio::test]
async fn an_update_runs_its_steps_in_order() {
    let s = setup(|f| f);
    let event = run(&s, update("j1", "1.3.2")).await;
    assert_eq!(event.state(), JobState::Succeeded, "{event:?}");
    assert_eq!(names(&event), UPDATE_STEPS);
    assert!(event
        .steps
        .iter()
        .all(|s| s.state() == StepState::Succeeded));
    assert_eq!(
        calls(&s),
        [
            "repo",
            "fetch",
            "size",
            "free",
            "rights",
            "health",
            "maint_on",
            "review",
            "backup",
            "checkout",
            "migrate",
            "health",
            "maint_off"
        ]
    );
    assert_eq!(event.from_version, "1.3.0");
    assert_eq!(event.target_version, "1.3.2");
    assert_eq!(event.backup_id, "j1.sql.gz");
    assert!(event.backup_path.ends_with("j1.sql.gz"));
    assert_eq!(
        event.config_changes,
        ["changed app/Config/core.php.default (1.3.2)"]
    );
    assert_eq!(
        event.failing_before,
        ["SSL peer certificate does not validate"]
    );
    assert_eq!(event.failing_after, event.failing_before);
    assert!(event.started_at > 0 && event.finished_at >= event.started_at);
    let migrate = event
        .steps
        .iter()
        .find(|s| s.name == step::MIGRATE)
        .unwrap();
    assert_eq!(migrate.output_tail, "n", "default answer fed");
    // Journaled, and the last event is the outcome.
    assert_eq!(s.jobs.last_job().unwrap(), event);
    let record = super::journal::Journal::open(&s.state)
        .unwrap()
        .load("j1")
        .unwrap()
        .unwrap();
    assert_eq!(record.event, event);
    assert_eq!(record.private.phase, JobPhase::Done);
}

#[tokio::test]
async fn without_maintenance_the_steps_are_skipped() {
    let s = setup(|mut f| {
        f.maintenance = false;
        f
    });
    let event = run(&s, update("j1", "1.3.2")).await;
    assert_eq!(event.state(), JobState::Succeeded);
    assert_eq!(
        steps(&event)[1],
        (step::MAINTENANCE_ON.into(), StepState::Skipped)
    );
    assert_eq!(
        steps(&event)[7],
        (step::MAINTENANCE_OFF.into(), StepState::Skipped)
    );
    assert!(!calls(&s).iter().any(|c| c.starts_with("maint")));
}

#[tokio::test]
async fn failures_before_the_backup_only_turn_maintenance_off() {
    let cases: [(&str, &str, JobState); 7] = [
        ("repo", step::PREFLIGHT, JobState::Refused),
        ("size", step::PREFLIGHT, JobState::Refused),
        ("rights", step::PREFLIGHT, JobState::Refused),
        ("maint_on", step::MAINTENANCE_ON, JobState::Failed),
        ("review", step::CONFIG_REVIEW, JobState::Failed),
        ("backup", step::BACKUP, JobState::Failed),
        ("fetch", step::PREFLIGHT, JobState::Refused),
    ];
    for (op, failed, state) in cases {
        let s = setup(|f| f.failing(op));
        let event = run(&s, update("j1", "1.3.2")).await;
        assert_eq!(event.state(), state, "{op}: {event:?}");
        assert_eq!(event.failed_step, failed, "{op}");
        assert_eq!(event.reason, format!("{op} broke"), "{op}");
        let calls = calls(&s);
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("checkout") || c == "restore"),
            "{op}: {calls:?}"
        );
        let maintenance_touched = calls.contains(&"maint_on".to_string());
        assert_eq!(
            calls.contains(&"maint_off".to_string()),
            maintenance_touched,
            "{op}: {calls:?}"
        );
        if failed == step::PREFLIGHT {
            assert_eq!(names(&event), [step::PREFLIGHT], "{op}");
            assert!(!maintenance_touched);
        } else {
            assert_eq!(names(&event).last(), Some(&step::MAINTENANCE_OFF), "{op}");
        }
        assert_eq!(
            calls.contains(&"discard".to_string()),
            op == "backup",
            "{op}: {calls:?}"
        );
        let failed_step = event.steps.iter().find(|s| s.name == failed).unwrap();
        assert!(
            failed_step.output_tail.contains("fake output"),
            "{op}: {failed_step:?}"
        );
    }
}

#[tokio::test]
async fn failures_after_the_backup_roll_back() {
    let cases: [(&str, &str); 3] = [
        ("checkout", step::CHECKOUT),
        ("migrate", step::MIGRATE),
        ("health", step::HEALTHCHECK),
    ];
    for (op, failed) in cases {
        let s = setup(|f| {
            if op == "health" {
                Fake {
                    sick_at: Some(v("1.3.2")),
                    ..f
                }
            } else {
                f.failing(op)
            }
        });
        let event = run(&s, update("j1", "1.3.2")).await;
        assert_eq!(event.state(), JobState::RolledBack, "{op}: {event:?}");
        assert_eq!(event.failed_step, failed);
        let names = names(&event);
        let at = names.iter().position(|n| *n == failed).unwrap();
        assert_eq!(names[at + 1..], ROLLBACK_STEPS, "{op}");
        let calls = calls(&s);
        assert!(
            calls.ends_with(&[
                "checkout_force".into(),
                "restore".into(),
                "health".into(),
                "maint_off".into()
            ]),
            "{op}: {calls:?}"
        );
        assert_eq!(
            *s.fake.at.lock().unwrap(),
            v("1.3.0"),
            "back on the previous release"
        );
        if op == "health" {
            assert_eq!(event.reason, "newly failing checks: Cache is NOT working.");
        } else {
            assert_eq!(event.reason, format!("{op} broke"));
        }
    }
}

#[tokio::test]
async fn a_failed_rollback_leaves_maintenance_on_and_names_the_backup() {
    let s = setup(|f| f.failing("migrate").failing("restore"));
    let event = run(&s, update("j1", "1.3.2")).await;
    assert_eq!(event.state(), JobState::RollbackFailed, "{event:?}");
    assert_eq!(event.failed_step, step::MIGRATE);
    assert!(
        event.reason.contains("rollback failed at restore_database"),
        "{}",
        event.reason
    );
    assert!(event.reason.contains("j1.sql.gz"), "{}", event.reason);
    assert!(!calls(&s).contains(&"maint_off".to_string()));
    let restores = calls(&s).iter().filter(|c| *c == "restore").count();
    assert_eq!(restores, 3, "tried three times");
}

#[tokio::test]
async fn a_restore_that_fails_once_is_tried_again_and_the_rollback_completes() {
    let s = setup(|f| f.failing("migrate").failing_once("restore"));
    let event = run(&s, update("j1", "1.3.2")).await;
    assert_eq!(event.state(), JobState::RolledBack, "{event:?}");
    let restores: Vec<StepState> = event
        .steps
        .iter()
        .filter(|s| s.name == step::RESTORE_DATABASE)
        .map(|s| s.state())
        .collect();
    assert_eq!(restores, [StepState::Failed, StepState::Succeeded]);
    assert!(calls(&s).contains(&"maint_off".to_string()));
}

#[tokio::test]
async fn without_auto_rollback_the_job_stops_with_maintenance_on() {
    let s = setup(|f| f.failing("migrate"));
    let mut job = update("j1", "1.3.2");
    job.options = Some(JobOptions {
        migration_answers: vec!["y".into()],
        no_auto_rollback: true,
    });
    let event = run(&s, job).await;
    assert_eq!(event.state(), JobState::Failed);
    assert_eq!(event.failed_step, step::MIGRATE);
    assert!(
        event.reason.contains("needs a rollback"),
        "{}",
        event.reason
    );
    let calls = calls(&s);
    assert!(
        !calls.contains(&"restore".to_string()) && !calls.contains(&"maint_off".to_string()),
        "{calls:?}"
    );
}

#[tokio::test]
async fn refusals_before_the_host_is_touched() {
    for (target, why) in [
        ("1.3.2;touch x", "invalid target version"),
        ("--upload-pack=x", "invalid target version"),
        ("1.3", "X.Y.Z"),
        ("2.0.0", "major"),
        ("1.2.0", "downgrade"),
        ("1.3.0", "already runs"),
        ("1.3.9", "v1.3.9 does not exist"),
    ] {
        let s = setup(|f| f);
        let event = run(&s, update("j1", target)).await;
        assert_eq!(event.state(), JobState::Refused, "{target}");
        assert!(event.reason.contains(why), "{target}: {}", event.reason);
        let calls = calls(&s);
        assert!(
            calls
                .iter()
                .all(|c| ["repo", "fetch"].contains(&c.as_str())),
            "{target}: {calls:?}"
        );
        // The refusal is journaled: the same id is not run again.
        assert!(super::journal::Journal::open(&s.state)
            .unwrap()
            .load("j1")
            .unwrap()
            .is_some());
    }
    let s = setup(|f| Fake {
        porcelain: vec![" M README.md".into()],
        ..f
    });
    let event = run(&s, update("j1", "1.3.2")).await;
    assert_eq!(event.state(), JobState::Refused);
    assert!(
        event.reason.contains("local modifications"),
        "{}",
        event.reason
    );
}

#[tokio::test]
async fn a_job_id_is_run_once() {
    let s = setup(|f| f);
    let first = run(&s, update("j1", "1.3.2")).await;
    let count = calls(&s).len();
    let mut rx = s.jobs.subscribe();
    s.jobs.submit(update("j1", "1.6.10"));
    let again = outcome(&mut rx, "j1").await;
    assert_eq!(again, first, "the recorded state is sent again");
    assert_eq!(calls(&s).len(), count, "not run twice");
}

#[tokio::test]
async fn a_second_job_while_one_runs_is_refused() {
    let gate = Arc::new(Semaphore::new(0));
    let s = setup(|f| Fake {
        gate: Some(gate.clone()),
        ..f
    });
    let mut rx = s.jobs.subscribe();
    s.jobs.submit(update("j1", "1.3.2"));
    // Wait for the first job's backup to start.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = rx.recv().await.unwrap();
            if e.steps
                .last()
                .is_some_and(|s| s.name == step::BACKUP && s.state() == StepState::Running)
            {
                break;
            }
        }
    })
    .await
    .unwrap();
    let second = run(&s, update("j2", "1.3.2")).await;
    assert_eq!(second.state(), JobState::Refused);
    assert_eq!(second.reason, "another job is running");
    gate.add_permits(1);
    let first = outcome(&mut rx, "j1").await;
    assert_eq!(first.state(), JobState::Succeeded);
}

#[tokio::test]
async fn other_kinds() {
    let s = setup(|f| f);
    let backup = RunJob {
        job_id: "b1".into(),
        kind: JobKind::Backup as i32,
        target_version: String::new(),
        options: None,
    };
    let event = run(&s, backup).await;
    assert_eq!(
        (event.state(), names(&event)),
        (JobState::Succeeded, vec![step::BACKUP])
    );
    assert_eq!(event.backup_id, "b1.sql.gz");
    let health = RunJob {
        job_id: "h1".into(),
        kind: JobKind::Healthcheck as i32,
        ..RunJob::default()
    };
    let event = run(&s, health).await;
    assert_eq!(
        event.state(),
        JobState::Failed,
        "the fake has a failing check"
    );
    assert_eq!(
        event.failing_after,
        ["SSL peer certificate does not validate"]
    );

    // An operator's rollback of the last successful update.
    let rollback = |id: &str| RunJob {
        job_id: id.into(),
        kind: JobKind::Rollback as i32,
        ..RunJob::default()
    };
    let event = run(&s, rollback("r0")).await;
    assert_eq!(event.state(), JobState::Refused);
    assert!(
        event.reason.contains("no successful update"),
        "{}",
        event.reason
    );
    run(&s, update("u1", "1.3.2")).await;
    let event = run(&s, rollback("r1")).await;
    assert_eq!(event.state(), JobState::Succeeded, "{event:?}");
    assert_eq!(names(&event)[..2], [step::PREFLIGHT, step::MAINTENANCE_ON]);
    assert_eq!(names(&event)[2..], ROLLBACK_STEPS);
    assert_eq!(
        (event.from_version.as_str(), event.target_version.as_str()),
        ("1.3.2", "1.3.0")
    );
    assert_eq!(*s.fake.at.lock().unwrap(), v("1.3.0"));
    let event = run(&s, rollback("r2")).await;
    assert_eq!(event.state(), JobState::Refused);
    assert!(event.reason.contains("moved"), "{}", event.reason);
}

#[tokio::test]
async fn the_journal_is_pruned_at_start_and_when_a_job_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let journal = super::journal::Journal::open(&state).unwrap();
    for (i, id) in ["old1", "old2", "old3"].iter().enumerate() {
        let mut r = JournalEntry::new(record_request(id), 1000 + i as i64);
        r.event.state = JobState::Succeeded as i32;
        r.event.finished_at = 1000 + i as i64;
        r.private.phase = JobPhase::Done;
        journal.save(&r).unwrap();
    }
    let listed = |j: &super::journal::Journal| -> Vec<String> {
        j.all()
            .unwrap()
            .into_iter()
            .map(|r| r.request.job_id)
            .collect()
    };
    let retention = super::retention::Retention {
        keep: 2,
        max_age: Duration::from_secs(3600),
    };
    let fake = Arc::new(Fake::new(dir.path()));
    let jobs = Jobs::with_retention(&state, fake, retention).unwrap();
    assert_eq!(listed(&journal), ["old2", "old3"], "pruned at start");
    let mut rx = jobs.subscribe();
    jobs.submit(RunJob {
        job_id: "b1".into(),
        kind: JobKind::Backup as i32,
        ..RunJob::default()
    });
    assert_eq!(outcome(&mut rx, "b1").await.state(), JobState::Succeeded);
    assert_eq!(listed(&journal), ["old3", "b1"], "pruned when b1 finished");
}

fn record_request(id: &str) -> Request {
    Request {
        job_id: id.into(),
        kind: Kind::Healthcheck,
        target: String::new(),
        answers: Vec::new(),
        auto_rollback: true,
    }
}

/// A record of an update to 1.3.2 left by an agent killed at `phase` with these steps done
/// and `running` in progress.
fn left_at(done: &[&str], running: &str, private: impl FnOnce(&mut JournalEntry)) -> JournalEntry {
    let request = Request {
        job_id: "j1".into(),
        kind: Kind::Update,
        target: "1.3.2".into(),
        answers: vec!["n".into()],
        auto_rollback: true,
    };
    let mut rec = JournalEntry::new(request, 1);
    rec.event.state = JobState::Running as i32;
    rec.private.phase = JobPhase::Running;
    rec.private.from_tag = "v1.3.0".into();
    rec.private.baseline = vec!["SSL peer certificate does not validate".into()];
    rec.event.from_version = "1.3.0".into();
    for (name, state) in done
        .iter()
        .map(|n| (n, StepState::Succeeded))
        .chain([(&running, StepState::Running)])
    {
        rec.event.steps.push(boltfleet_common::proto::StepRecord {
            name: name.to_string(),
            state: state as i32,
            ..Default::default()
        });
    }
    if done.contains(&step::MAINTENANCE_ON) || running == step::MAINTENANCE_ON {
        rec.private.maintenance_on = true;
    }
    private(&mut rec);
    rec
}

fn backed_up(rec: &mut JournalEntry) {
    rec.private.backup = Some(BackupInfo {
        path: "/b/j1.sql.gz".into(),
        sha256: "00".into(),
        bytes: 1,
    });
    rec.event.backup_path = "/b/j1.sql.gz".into();
}

#[tokio::test]
async fn a_restarted_agent_converges_each_unfinished_job() {
    let pre = [step::PREFLIGHT, step::MAINTENANCE_ON, step::CONFIG_REVIEW];
    let after_backup = [
        step::PREFLIGHT,
        step::MAINTENANCE_ON,
        step::CONFIG_REVIEW,
        step::BACKUP,
    ];
    let cases: Vec<(JournalEntry, Decision, JobState, &str, &[&str])> = vec![
        (
            left_at(&pre, step::BACKUP, |r| {
                r.private.partial_backup = Some("/b/.j1.partial".into())
            }),
            Decision::Abandon,
            JobState::Failed,
            "agent restarted during backup",
            &["discard", "maint_off"],
        ),
        (
            left_at(&[step::PREFLIGHT], step::MAINTENANCE_ON, |_| {}),
            Decision::Abandon,
            JobState::Failed,
            "agent restarted during maintenance_on",
            &["maint_off"],
        ),
        (
            left_at(&[], step::PREFLIGHT, |_| {}),
            Decision::Abandon,
            JobState::Failed,
            "agent restarted during preflight",
            &[],
        ),
        (
            left_at(&after_backup, step::MIGRATE, backed_up),
            Decision::RollBack,
            JobState::RolledBack,
            "agent restarted during migrate",
            &["checkout_force", "restore", "health", "maint_off"],
        ),
        (
            left_at(&after_backup, step::RESTORE_DATABASE, |r| {
                backed_up(r);
                r.private.phase = JobPhase::RollingBack;
                r.private.failure = Some(("migrate".into(), "migrate broke".into()));
            }),
            Decision::RestartRollback,
            JobState::RolledBack,
            "migrate broke",
            &["checkout_force", "restore", "health", "maint_off"],
        ),
        (
            left_at(&after_backup, step::MAINTENANCE_OFF, |r| {
                backed_up(r);
                r.private.health_passed = true;
            }),
            Decision::FinishUpdate,
            JobState::Succeeded,
            "",
            &["maint_off"],
        ),
        (
            left_at(&after_backup, step::CHECKOUT, |r| {
                backed_up(r);
                r.request.auto_rollback = false;
            }),
            Decision::RollBack,
            JobState::Failed,
            "needs a rollback",
            &[],
        ),
    ];
    for (i, (record, decision, state, reason, expected_calls)) in cases.into_iter().enumerate() {
        assert_eq!(decide(&record), decision, "case {i}");
        let s = setup(|f| f);
        super::journal::Journal::open(&s.state)
            .unwrap()
            .save(&record)
            .unwrap();
        let jobs = Jobs::with_host(&s.state, s.fake.clone()).unwrap();
        let mut rx = jobs.subscribe();
        jobs.resume();
        let event = outcome(&mut rx, "j1").await;
        assert_eq!(event.state(), state, "case {i}: {event:?}");
        assert!(event.reason.contains(reason), "case {i}: {}", event.reason);
        assert_eq!(calls(&s), *expected_calls, "case {i}");
        assert!(
            event.steps.iter().all(|s| s.state() != StepState::Running),
            "case {i}: no step left running"
        );
        // Converged once: a second restart has nothing to do.
        let again = super::journal::Journal::open(&s.state)
            .unwrap()
            .load("j1")
            .unwrap()
            .unwrap();
        assert_eq!(decide(&again), Decision::Nothing, "case {i}");
    }
    let mut queued = left_at(&[], step::PREFLIGHT, |_| {});
    queued.private.phase = JobPhase::Queued;
    assert_eq!(decide(&queued), Decision::NotStarted);
}

#[tokio::test]
async fn without_a_baseline_an_update_is_judged_by_what_it_can_break() {
    // Good: the long-standing failure after the update was never compared, and the job says
    // there was no baseline.
    let s = setup(|mut f| {
        f.blind_at = Some(v("1.3.0"));
        f
    });
    let event = run(&s, update("j1", "1.3.2")).await;
    assert_eq!(event.state(), JobState::Succeeded, "{event:?}");
    assert_eq!(event.failing_before, [HEALTHCHECK_COMMAND]);
    assert_eq!(
        event.failing_after,
        ["SSL peer certificate does not validate"]
    );
    assert!(
        event.reason.contains("without a baseline"),
        "{}",
        event.reason
    );
    let health = event
        .steps
        .iter()
        .find(|s| s.name == step::HEALTHCHECK)
        .unwrap();
    assert!(
        health.output_tail.contains("no healthcheck baseline"),
        "{}",
        health.output_tail
    );

    // Broken: a check an update can break fails, so it rolls back; job show keeps the checks
    // that decided it apart from the rollback's own healthcheck.
    let s = setup(|mut f| {
        f.blind_at = Some(v("1.3.0"));
        f.sick_at = Some(v("1.3.2"));
        f
    });
    let event = run(&s, update("j2", "1.3.2")).await;
    assert_eq!(event.state(), JobState::RolledBack, "{event:?}");
    assert_eq!(event.failed_step, step::HEALTHCHECK);
    assert!(
        event.reason.contains("no healthcheck baseline") && event.reason.contains("Cache is NOT"),
        "{}",
        event.reason
    );
    assert!(event
        .failing_after
        .contains(&"Cache is NOT working.".to_string()));
    assert_eq!(event.failing_after_rollback, [HEALTHCHECK_COMMAND]);
}
