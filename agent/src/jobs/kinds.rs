//! The kinds of job other than update: an operator's rollback of the last successful update,
//! a verified backup alone, a healthcheck alone.

use boltfleet_common::proto::JobState;

use super::host::{HostOps, OpError};
use super::model::{step, Kind};
use super::preflight;
use super::runner::{Failed, Run};

impl<H: HostOps> Run<'_, H> {
    /// An operator's rollback of the host's last successful update.
    pub(super) async fn operator_rollback(&mut self) {
        let id = self.id().to_string();
        let update = self.journal.all().ok().and_then(|all| {
            all.into_iter().rev().find(|r| {
                r.request.kind == Kind::Update
                    && r.event.state() == JobState::Succeeded
                    && r.request.job_id != id
            })
        });
        let host = self.host;
        let check = preflight::rollback(host, update.as_ref());
        if let Err(f) = self.step(step::PREFLIGHT, check).await {
            return self.finish(JobState::Refused, Some(f));
        }
        let update = update.expect("checked by the preflight");
        let backup = update
            .private
            .backup
            .clone()
            .expect("checked by the preflight");
        self.rec.event.from_version = update.event.target_version.clone();
        self.rec.event.target_version = update.event.from_version.clone();
        self.rec.event.backup_id = backup.id();
        self.rec.event.backup_path = backup.path.display().to_string();
        self.rec.event.failing_before = update.private.baseline.clone();
        self.rec.private.from_tag = update.private.from_tag.clone();
        self.rec.private.backup = Some(backup);
        self.rec.private.baseline = update.private.baseline.clone();
        self.rec.private.no_baseline = update.private.no_baseline.clone();
        self.rec.private.rollback_of = Some(update.request.job_id.clone());
        self.rec.private.email_copy = Some(self.journal.email_copy(&id));
        self.save_logged();
        if let Err(f) = self.maintenance_on().await {
            return self.abandon(f).await;
        }
        self.finish_rollback_job().await;
    }

    pub(super) async fn finish_rollback_job(&mut self) {
        match self.rollback_steps().await {
            Ok(()) => self.finish(JobState::Succeeded, None),
            Err(rf) => {
                let reason = format!(
                    "{}; maintenance stays on; the backup is {}",
                    rf.reason, self.rec.event.backup_path
                );
                self.finish(
                    JobState::RollbackFailed,
                    Some(Failed::new(&rf.step, reason)),
                );
            }
        }
    }

    pub(super) async fn backup_only(&mut self) {
        match self.backup_step().await {
            Ok(()) => self.finish(JobState::Succeeded, None),
            Err(f) => {
                self.discard_partial();
                self.finish(JobState::Failed, Some(f));
            }
        }
    }

    pub(super) async fn healthcheck_only(&mut self) {
        let host = self.host;
        let mut failing = Vec::new();
        let check = async {
            let facts = host.health().await;
            failing = facts.failing.clone();
            let counted: Vec<&String> = facts
                .failing
                .iter()
                .filter(|n| !facts.accepted.contains(n))
                .collect();
            if counted.is_empty() {
                Ok(((), facts.log))
            } else {
                let names: Vec<&str> = counted.iter().map(|s| s.as_str()).collect();
                Err(
                    OpError::new(format!("failing checks: {}", names.join("; ")))
                        .with_log(&facts.log),
                )
            }
        };
        let result = self.step(step::HEALTHCHECK, check).await;
        self.rec.event.failing_after = failing;
        match result {
            Ok(()) => self.finish(JobState::Succeeded, None),
            Err(f) => self.finish(JobState::Failed, Some(f)),
        }
    }
}
