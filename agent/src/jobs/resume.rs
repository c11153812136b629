//! What a restarted agent does with a job the journal shows unfinished: decide from the record
//! where it stopped, stop any migration the killed agent left running, then finish the job,
//! abandon it or roll it back.

use boltfleet_common::proto::{JobState, StepState};
use tracing::{info, warn};

use super::host::HostOps;
use super::model::{JobPhase, JournalEntry, Kind};
use super::runner::{Failed, Run};

/// What a restarted agent does with a job it finds unfinished in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Finished: nothing to do.
    Nothing,
    /// Journaled but never started: it fails, the host was not touched.
    NotStarted,
    /// Stopped before its backup existed (or a kind without rollback): remove any partial
    /// backup, maintenance off, failed.
    Abandon,
    /// An update stopped after its backup: roll it back (or stop, when automatic rollback is
    /// off).
    RollBack,
    /// Stopped while rolling back: the rollback starts over (its steps are idempotent).
    RestartRollback,
    /// The update's healthcheck had passed: only maintenance off was left.
    FinishUpdate,
}

/// Decides how to converge `record` after a restart.
pub fn decide(record: &JournalEntry) -> Decision {
    if record.is_finished() {
        return Decision::Nothing;
    }
    let private = &record.private;
    match private.phase {
        JobPhase::Done => Decision::Nothing,
        JobPhase::Queued => Decision::NotStarted,
        JobPhase::RollingBack => Decision::RestartRollback,
        JobPhase::Running => match record.request.kind {
            Kind::Update if private.health_passed => Decision::FinishUpdate,
            Kind::Update if private.backup.is_some() => Decision::RollBack,
            _ => Decision::Abandon,
        },
    }
}

impl<H: HostOps> Run<'_, H> {
    /// Converges a job found unfinished after a restart.
    pub async fn resume(mut self) -> JournalEntry {
        let decision = decide(&self.rec);
        info!(job = %self.id(), ?decision, "resuming job");
        if decision != Decision::Nothing {
            if let Some(done) = self.host.reap_orphans() {
                warn!(job = %self.id(), "{done}");
            }
        }
        let interrupted = self.rec.running_step().map(str::to_string);
        if let Some(name) = &interrupted {
            self.close_step(name, StepState::Failed, "interrupted: the agent restarted");
        }
        let during = interrupted
            .or_else(|| self.rec.event.steps.last().map(|s| s.name.clone()))
            .unwrap_or_else(|| "start".into());
        let restarted = Failed::new(&during, format!("agent restarted during {during}"));
        match decision {
            Decision::Nothing => {}
            Decision::NotStarted => self.finish(
                JobState::Failed,
                Some(Failed::new("", "agent restarted before the job started")),
            ),
            Decision::Abandon => self.abandon(restarted).await,
            Decision::RollBack => {
                let failure = match self.rec.private.failure.clone() {
                    Some((step, reason)) => Failed { step, reason },
                    None => restarted,
                };
                self.after_backup_failure(failure).await;
            }
            Decision::RestartRollback if self.rec.request.kind == Kind::Rollback => {
                self.finish_rollback_job().await
            }
            Decision::RestartRollback => self.undo_update().await,
            Decision::FinishUpdate => self.finish_update().await,
        }
        self.rec
    }
}
