//! Rollouts as operators start and steer them: the pure planner and decision of
//! [`crate::rollout`] fed from the state. The scheduler ([`crate::scheduler`]) drives running
//! rollouts; approvals are in `approval`, windows and freezes in `windows`.

use boltfleet_common::proto::{self as pb};
use jiff::Timestamp;
use tracing::info;

use crate::app::App;
use crate::error::Error;
use crate::rollout::{plan, PhaseError, Plan, Promotion, RolloutSpec, RolloutState};
use crate::state::RolloutRecord;

/// Skipped hosts named when a rollout has nothing to do.
const NAMED_SKIPS: usize = 10;

/// A new rollout id: time-ordered, short enough to type.
fn new_rollout_id(now: Timestamp) -> String {
    format!("r{:x}-{:04x}", now.as_second(), rand::random::<u16>())
}

impl App {
    /// What a rollout of `spec` would do now. Writes nothing.
    pub fn plan_rollout(&self, spec: &RolloutSpec, now: Timestamp) -> Result<Plan, Error> {
        spec.validate()?;
        let snapshot = self.fleet_snapshot()?;
        let mut hosts = snapshot.hosts.clone();
        snapshot.with_config_changes(&mut hosts, &spec.target.to_string());
        Ok(plan(&hosts, spec, now))
    }

    /// Plans `spec`, stores the rollout as running, and wakes the scheduler, which starts the
    /// canary. A rollout with no host to update is refused, naming why hosts were skipped.
    pub fn start_rollout(
        &self,
        operator: &str,
        spec: RolloutSpec,
        now: Timestamp,
    ) -> Result<String, Error> {
        let plan = self.plan_rollout(&spec, now)?;
        if plan.eligible() == 0 {
            return Err(Error::Precondition(nothing_to_do(&plan)));
        }
        let id = new_rollout_id(now);
        let mut state = RolloutState::new(spec, &plan);
        let approval = self.approval_needed(&plan)?;
        if approval.is_none() {
            state
                .start(now)
                .map_err(|source| phase_error(&id, source))?;
        }
        let mut detail = format!(
            "to {}: {} hosts in {} waves, {} skipped",
            plan.target,
            plan.eligible(),
            plan.waves.len(),
            plan.skipped().count()
        );
        if let Some(approval) = &approval {
            detail += &format!(
                "; awaiting approval (tenants {})",
                approval.tenants.join(", ")
            );
        }
        let record = RolloutRecord {
            id: id.clone(),
            created_by: operator.into(),
            created_at: now,
            plan,
            state,
            aborted_by: None,
            rollback_by: None,
            approval,
        };
        {
            let _guard = self.lock_rollouts();
            self.state.put_rollout(&record)?;
        }
        self.emit_rollout_change(None, &record, now)?;
        self.audit_entry(
            now,
            &format!("operator {operator}"),
            "rollout.start",
            &id,
            &detail,
        )?;
        info!(rollout = %id, operator, %detail, "rollout started");
        self.wake_scheduler();
        Ok(id)
    }

    /// Every rollout's status, oldest first.
    pub fn rollout_statuses(&self) -> Result<Vec<pb::RolloutStatus>, Error> {
        let records = self.state.rollouts()?;
        records
            .iter()
            .map(|r| {
                Ok(crate::wire::rollout::status_to_wire(
                    r,
                    &self.rollout_jobs(&r.id)?,
                ))
            })
            .collect()
    }

    /// One rollout's status: the state of every host with its job's progress.
    pub fn rollout_status(&self, id: &str) -> Result<pb::RolloutStatus, Error> {
        let record = self.rollout(id)?;
        Ok(crate::wire::rollout::status_to_wire(
            &record,
            &self.rollout_jobs(id)?,
        ))
    }

    pub fn rollout(&self, id: &str) -> Result<RolloutRecord, Error> {
        self.state
            .rollout(id)?
            .ok_or_else(|| Error::UnknownRollout(id.into()))
    }

    /// No new host starts; hosts in flight finish.
    pub fn pause_rollout(
        &self,
        operator: &str,
        id: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<RolloutRecord, Error> {
        self.change_rollout(operator, id, "rollout.pause", note, now, |r| {
            r.state.pause_by(operator, note, now)
        })
    }

    /// Goes on, accepting the failures so far.
    pub fn resume_rollout(
        &self,
        operator: &str,
        id: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<RolloutRecord, Error> {
        self.change_rollout(operator, id, "rollout.resume", note, now, |r| {
            r.state.resume(now)
        })
    }

    /// Approves the next wave of a manually promoted rollout.
    pub fn promote_rollout(
        &self,
        operator: &str,
        id: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<RolloutRecord, Error> {
        if self.rollout(id)?.state.spec.promotion == Promotion::Auto {
            return Err(Error::Precondition(format!(
                "rollout {id} promotes its waves automatically (it was not started with manual promotion)"
            )));
        }
        self.change_rollout(operator, id, "rollout.promote", note, now, |r| {
            r.state.approve_promotion()
        })
    }

    /// Stops the rollout for good; with `rollback`, the hosts it updated are rolled back too.
    /// Jobs of the rollout not yet handed to their (offline) agent are cancelled.
    pub fn abort_rollout(
        &self,
        operator: &str,
        id: &str,
        note: &str,
        rollback: bool,
        now: Timestamp,
    ) -> Result<RolloutRecord, Error> {
        let reason = if note.is_empty() {
            format!("by operator {operator}")
        } else {
            format!("by operator {operator}: {note}")
        };
        let detail = format!("{note}{}", if rollback { " (with rollback)" } else { "" });
        let record =
            self.change_rollout(operator, id, "rollout.abort", detail.trim(), now, |r| {
                if rollback {
                    r.state.abort_with_rollback(&reason, now)?;
                    r.rollback_by = Some(operator.into());
                } else {
                    r.state.abort(&reason, now)?;
                }
                r.aborted_by.get_or_insert_with(|| operator.into());
                Ok(())
            })?;
        for job in self.active_jobs_of_rollout(id)? {
            if !job.dispatched {
                self.cancel_job(&job.job_id, &format!("rollout {id} aborted"), now)?;
            }
        }
        Ok(record)
    }

    /// Applies an operator's transition under the rollout lock, stores it, then audits it.
    pub(super) fn change_rollout(
        &self,
        operator: &str,
        id: &str,
        action: &str,
        detail: &str,
        now: Timestamp,
        change: impl FnOnce(&mut RolloutRecord) -> Result<(), PhaseError>,
    ) -> Result<RolloutRecord, Error> {
        let (before, record) = {
            let _guard = self.lock_rollouts();
            let mut record = self.rollout(id)?;
            let before = record.state.phase.clone();
            change(&mut record).map_err(|source| phase_error(id, source))?;
            self.state.put_rollout(&record)?;
            (before, record)
        };
        self.emit_rollout_change(Some(&before), &record, now)?;
        self.audit_entry(now, &format!("operator {operator}"), action, id, detail)?;
        info!(rollout = %id, operator, action, "rollout changed by an operator");
        self.wake_scheduler();
        Ok(record)
    }
}

/// Keeps the newest job of each (host, kind).
fn phase_error(id: &str, source: PhaseError) -> Error {
    Error::Phase {
        id: id.into(),
        source,
    }
}

/// Why a plan has nothing to update, naming the first skipped hosts.
fn nothing_to_do(plan: &Plan) -> String {
    let skipped: Vec<String> = plan
        .skipped()
        .take(NAMED_SKIPS)
        .map(|(host, reason)| format!("{host}: {reason}"))
        .collect();
    if skipped.is_empty() {
        return format!(
            "no enrolled host matches the selection; nothing to update to {}",
            plan.target
        );
    }
    let more = plan.skipped().count().saturating_sub(NAMED_SKIPS);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "no selected host can be updated to {} now ({}{more})",
        plan.target,
        skipped.join(", ")
    )
}
