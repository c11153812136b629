//! The job state machine: runs each kind's steps in order, journaling each before and after it
//! runs, and rolls an update back when a step after the backup fails. Resuming after a restart
//! is in `resume.rs`, the kinds other than update in `kinds.rs`.

use std::path::PathBuf;

use boltfleet_common::clock::unix_now;
use boltfleet_common::proto::{JobState, StepRecord, StepState};
use boltfleet_common::version::{parse_release, parse_release_tag, release_tag, Version};
use tracing::{error, info, warn};

use super::host::{partial_path, HostOps, OpError};
use super::journal::Journal;
use super::model::{gist, step, tail, BackupInfo, JobPhase, JournalEntry, Kind};
use super::{preflight, validate, Events};

/// How many times the rollback tries to restore the database before it gives up.
const RESTORE_TRIES: u32 = 3;

/// A step that failed, and why in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub step: String,
    pub reason: String,
}

impl Failed {
    pub(super) fn new(step: &str, reason: impl Into<String>) -> Self {
        Failed {
            step: step.to_string(),
            reason: reason.into(),
        }
    }
}

/// One job being run (or converged), with its record.
pub struct Run<'a, H> {
    pub(super) host: &'a H,
    pub(super) journal: &'a Journal,
    pub(super) events: &'a Events,
    pub rec: JournalEntry,
}

impl<'a, H: HostOps> Run<'a, H> {
    pub fn new(host: &'a H, journal: &'a Journal, events: &'a Events, rec: JournalEntry) -> Self {
        Run {
            host,
            journal,
            events,
            rec,
        }
    }

    pub(super) fn id(&self) -> &str {
        &self.rec.request.job_id
    }

    /// Journals the record, then publishes its event (also when journaling failed).
    pub(super) fn save(&mut self) -> Result<(), String> {
        let saved = self.journal.save(&self.rec).map_err(|e| e.to_string());
        self.events.publish(&self.rec.event);
        saved
    }

    pub(super) fn save_logged(&mut self) {
        if let Err(e) = self.save() {
            error!(job = %self.id(), error = %e, "journal write failed");
        }
    }

    /// Runs `op` as step `name`: journaled as running before, with its outcome after.
    pub(super) async fn step<T>(
        &mut self,
        name: &str,
        op: impl std::future::Future<Output = Result<(T, String), OpError>>,
    ) -> Result<T, Failed> {
        self.rec.event.steps.push(StepRecord {
            name: name.to_string(),
            state: StepState::Running as i32,
            started_at: unix_now(),
            ..StepRecord::default()
        });
        info!(job = %self.id(), step = name, "step started");
        if let Err(e) = self.save() {
            let reason = format!("cannot journal step {name}: {e}");
            self.close_step(name, StepState::Failed, &reason);
            return Err(Failed::new(name, reason));
        }
        match op.await {
            Ok((value, log)) => {
                self.close_step(name, StepState::Succeeded, &log);
                Ok(value)
            }
            Err(e) => {
                warn!(job = %self.id(), step = name, reason = %e.reason, "step failed");
                let text = format!("{}\n{}", e.log.trim_end(), e.reason);
                self.close_step(name, StepState::Failed, &text);
                Err(Failed::new(name, e.reason))
            }
        }
    }

    pub(super) fn close_step(&mut self, name: &str, state: StepState, log: &str) {
        if let Some(s) = self.rec.last_step_mut(name) {
            s.state = state as i32;
            s.finished_at = unix_now();
            s.output_tail = tail(log);
        }
        self.save_logged();
    }

    pub(super) fn skip(&mut self, name: &str, note: &str) {
        let now = unix_now();
        self.rec.event.steps.push(StepRecord {
            name: name.to_string(),
            state: StepState::Skipped as i32,
            started_at: now,
            finished_at: now,
            output_tail: note.to_string(),
        });
        self.save_logged();
    }

    pub(super) fn finish(&mut self, state: JobState, failure: Option<Failed>) {
        if let Some(f) = failure {
            self.rec.event.failed_step = f.step;
            self.rec.event.reason = gist(&f.reason, 600);
        }
        self.rec.event.state = state as i32;
        self.rec.event.finished_at = unix_now();
        self.rec.private.phase = JobPhase::Done;
        info!(job = %self.id(), state = state.as_str_name(), failed_step = %self.rec.event.failed_step, "job finished");
        // Before the outcome is published, so whoever sees it sees the pruned journal.
        self.journal.prune(Some(self.id()));
        self.save_logged();
    }

    pub(super) fn email_copy(&self) -> PathBuf {
        self.rec
            .private
            .email_copy
            .clone()
            .unwrap_or_else(|| self.journal.email_copy(self.id()))
    }

    /// Runs the job from the start.
    pub async fn run(mut self) -> JournalEntry {
        self.rec.private.phase = JobPhase::Running;
        self.rec.event.state = JobState::Running as i32;
        info!(job = %self.id(), kind = ?self.rec.request.kind, target = %self.rec.request.target, "job started");
        match self.rec.request.kind {
            Kind::Update => self.update().await,
            Kind::Rollback => self.operator_rollback().await,
            Kind::Backup => self.backup_only().await,
            Kind::Healthcheck => self.healthcheck_only().await,
        }
        self.rec
    }

    pub(super) async fn update(&mut self) {
        let host = self.host;
        let target = self.rec.request.target.clone();
        let pre = match self
            .step(step::PREFLIGHT, preflight::update(host, &target))
            .await
        {
            Ok(pre) => pre,
            Err(f) => return self.finish(JobState::Refused, Some(f)),
        };
        let to = parse_release(&target).expect("validated by the preflight");
        self.rec.event.from_version = pre.current.to_string();
        self.rec.event.failing_before = pre.failing.clone();
        self.rec.private.from_tag = release_tag(&pre.current);
        self.rec.private.baseline = pre.failing;
        self.rec.private.no_baseline = pre.no_baseline;
        self.rec.private.email_copy = Some(self.journal.email_copy(self.id()));
        if let Err(f) = self.maintenance_on().await {
            return self.abandon(f).await;
        }
        let from = pre.current;
        let review = async {
            let lines = host.config_review(&from, &to).await?;
            let log = lines.join("\n");
            Ok((lines, log))
        };
        match self.step(step::CONFIG_REVIEW, review).await {
            Ok(lines) => {
                self.rec.event.config_changes = lines;
                self.save_logged();
            }
            Err(f) => return self.abandon(f).await,
        }
        if let Err(f) = self.backup_step().await {
            return self.abandon(f).await;
        }
        if let Err(f) = self.apply(&to).await {
            return self.after_backup_failure(f).await;
        }
        self.rec.private.health_passed = true;
        self.save_logged();
        self.finish_update().await;
    }

    /// Checkout, migrate, healthcheck.
    pub(super) async fn apply(&mut self, to: &Version) -> Result<(), Failed> {
        let host = self.host;
        let copy = self.email_copy();
        let answers = self.rec.request.answers.clone();
        let checkout = async { host.checkout(to, &copy, false).await.map(|l| ((), l)) };
        self.step(step::CHECKOUT, checkout).await?;
        let migrate = async { host.migrate(&answers).await.map(|l| ((), l)) };
        self.step(step::MIGRATE, migrate).await?;
        self.health_step(step::HEALTHCHECK).await
    }

    /// Runs the checks; fails when one fails that did not before (the baseline), or, with no
    /// baseline, when one an update can break fails ([`validate::health_failures`]).
    pub(super) async fn health_step(&mut self, name: &str) -> Result<(), Failed> {
        let host = self.host;
        let baseline = self.rec.private.baseline.clone();
        let no_baseline = self.rec.private.no_baseline.clone();
        let mut failing = Vec::new();
        let mut judged_alone = false;
        let check = async {
            let facts = host.health().await;
            failing = facts.failing.clone();
            let bad;
            (bad, judged_alone) =
                validate::health_failures(&baseline, no_baseline.is_some(), &facts);
            let mut log = facts.log;
            let what = match (&no_baseline, judged_alone) {
                (Some(command), true) => {
                    log.push_str(&format!("{}\n", preflight::no_baseline_note(command)));
                    "failing checks an update can break (no healthcheck baseline before the update)"
                }
                _ => "newly failing checks",
            };
            if bad.is_empty() {
                return Ok(((), log));
            }
            Err(OpError::new(format!("{what}: {}", bad.join("; "))).with_log(&log))
        };
        let result = self.step(name, check).await;
        if name == step::ROLLBACK_HEALTHCHECK && self.rec.request.kind == Kind::Update {
            self.rec.event.failing_after_rollback = failing;
        } else {
            self.rec.event.failing_after = failing;
        }
        // A success judged without a baseline says so in the job's outcome.
        if let (Ok(()), true, Some(command)) = (&result, judged_alone, &no_baseline) {
            if name == step::HEALTHCHECK {
                self.rec.event.reason = format!(
                    "healthy without a baseline: {command} gave no checks before the update; judged by the checks an update can break and known_failures"
                );
            }
        }
        self.save_logged();
        result
    }

    pub(super) async fn maintenance_on(&mut self) -> Result<(), Failed> {
        if !self.host.maintenance_configured() {
            self.skip(
                step::MAINTENANCE_ON,
                "no [maintenance] configured: the site stays up during the job",
            );
            return Ok(());
        }
        // Intent first: a restart during the step turns maintenance off again.
        self.rec.private.maintenance_on = true;
        let host = self.host;
        let id = self.id().to_string();
        let on = async move { host.maintenance_on(&id).await.map(|l| ((), l)) };
        self.step(step::MAINTENANCE_ON, on).await
    }

    pub(super) async fn maintenance_off(&mut self) -> Result<(), Failed> {
        if !self.host.maintenance_configured() {
            self.skip(step::MAINTENANCE_OFF, "no [maintenance] configured");
            return Ok(());
        }
        let host = self.host;
        let off = async { host.maintenance_off().await.map(|l| ((), l)) };
        self.step(step::MAINTENANCE_OFF, off).await?;
        self.rec.private.maintenance_on = false;
        self.save_logged();
        Ok(())
    }

    pub(super) async fn backup_step(&mut self) -> Result<(), Failed> {
        let host = self.host;
        let path = match host.backup_path(self.id(), unix_now()) {
            Ok(path) => path,
            Err(e) => {
                let fail = async { Err::<((), String), _>(e) };
                return self.step(step::BACKUP, fail).await;
            }
        };
        self.rec.private.partial_backup = Some(partial_path(&path));
        let info = self.step(step::BACKUP, host.backup(&path)).await?;
        self.rec.private.partial_backup = None;
        self.rec.event.backup_id = info.id();
        self.rec.event.backup_path = info.path.display().to_string();
        self.rec.private.backup = Some(info);
        self.save_logged();
        Ok(())
    }

    pub(super) fn discard_partial(&mut self) {
        if let Some(partial) = self.rec.private.partial_backup.take() {
            if let Err(e) = self.host.discard_partial(&partial) {
                warn!(job = %self.id(), error = %e.reason, "partial backup left behind");
            }
        }
    }

    /// A failure before any backup exists: maintenance off (if it was turned on), failed.
    pub(super) async fn abandon(&mut self, failure: Failed) {
        let mut reason = failure.reason;
        self.discard_partial();
        if self.rec.private.maintenance_on {
            if let Err(off) = self.maintenance_off().await {
                reason = format!(
                    "{reason}; maintenance could not be turned off: {}",
                    off.reason
                );
            }
        }
        self.finish(JobState::Failed, Some(Failed::new(&failure.step, reason)));
    }

    /// A failure after the backup: roll back, or stop when automatic rollback is off.
    pub(super) async fn after_backup_failure(&mut self, failure: Failed) {
        self.rec.private.failure = Some((failure.step.clone(), failure.reason.clone()));
        if !self.rec.request.auto_rollback {
            let reason = format!(
                "{}; automatic rollback is off: maintenance stays on and the host needs a rollback to {} with the backup {}",
                failure.reason, self.rec.private.from_tag, self.rec.event.backup_path
            );
            return self.finish(JobState::Failed, Some(Failed::new(&failure.step, reason)));
        }
        self.undo_update().await;
    }

    pub(super) async fn undo_update(&mut self) {
        let (step, why) = self
            .rec
            .private
            .failure
            .clone()
            .unwrap_or_else(|| ("unknown".into(), "the update failed".into()));
        match self.rollback_steps().await {
            Ok(()) => self.finish(JobState::RolledBack, Some(Failed { step, reason: why })),
            Err(rf) => {
                let reason = format!(
                    "{why}; rollback failed at {}: {}; maintenance stays on; restore the pre-update backup {} by hand",
                    rf.step, rf.reason, self.rec.event.backup_path
                );
                self.finish(JobState::RollbackFailed, Some(Failed { step, reason }));
            }
        }
    }

    /// Checkout of the previous release, database restored, healthcheck, maintenance off.
    /// Each step is idempotent, so a restarted rollback starts over.
    pub(super) async fn rollback_steps(&mut self) -> Result<(), Failed> {
        self.rec.private.phase = JobPhase::RollingBack;
        self.save_logged();
        let host = self.host;
        let from = parse_release_tag(&self.rec.private.from_tag)
            .ok_or_else(|| Failed::new(step::ROLLBACK_CHECKOUT, "no previous release recorded"))?;
        let backup = self
            .rec
            .private
            .backup
            .clone()
            .ok_or_else(|| Failed::new(step::RESTORE_DATABASE, "no backup recorded"))?;
        let copy = self.email_copy();
        let checkout = async { host.checkout(&from, &copy, true).await.map(|l| ((), l)) };
        self.step(step::ROLLBACK_CHECKOUT, checkout).await?;
        self.restore_step(&backup).await?;
        self.health_step(step::ROLLBACK_HEALTHCHECK).await?;
        self.maintenance_off().await
    }

    /// Restores `backup`, again when a try fails before the end (a client killed, a dropped
    /// connection): each try empties the database and loads the whole dump, so a later try
    /// never builds on a partial one.
    async fn restore_step(&mut self, backup: &BackupInfo) -> Result<(), Failed> {
        let host = self.host;
        let mut tries = 0;
        loop {
            tries += 1;
            let restore = async { host.restore(backup).await.map(|l| ((), l)) };
            match self.step(step::RESTORE_DATABASE, restore).await {
                Ok(()) => return Ok(()),
                Err(f) if tries < RESTORE_TRIES => {
                    warn!(job = %self.id(), tries, reason = %f.reason, "restore failed, trying again");
                }
                Err(f) => return Err(f),
            }
        }
    }

    pub(super) async fn finish_update(&mut self) {
        match self.maintenance_off().await {
            Ok(()) => self.finish(JobState::Succeeded, None),
            Err(f) => {
                let reason = format!("the update is applied and healthy, but {}", f.reason);
                self.finish(JobState::Failed, Some(Failed::new(&f.step, reason)));
            }
        }
    }
}
