//! A rollout's stored state (per host and per wave) and the operators' transitions on it:
//! start, pause, resume, abort (optionally with a rollback), approve promotion.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::plan::{Plan, SkipReason};
use super::revert::{Revert, Rollback};
use super::spec::{FailureBudget, RolloutSpec};

/// Where the rollout as a whole stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Created from a plan, not started.
    Planned,
    Running,
    /// No new host starts; hosts in flight finish.
    Paused {
        reason: PauseReason,
        at: Timestamp,
    },
    Completed {
        at: Timestamp,
    },
    Aborted {
        reason: String,
        at: Timestamp,
    },
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Planned => f.write_str("planned"),
            Phase::Running => f.write_str("running"),
            Phase::Paused { reason, .. } => write!(f, "paused: {reason}"),
            Phase::Completed { .. } => f.write_str("completed"),
            Phase::Aborted { reason, .. } => write!(f, "aborted: {reason}"),
        }
    }
}

/// Why a rollout paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PauseReason {
    Operator {
        note: String,
        /// The operator's name; empty in rollouts stored before it was recorded.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        by: String,
    },
    FailureBudget {
        failures: usize,
        max_failures: FailureBudget,
        eligible: usize,
    },
    ProgressDeadline {
        deadline: Timestamp,
    },
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PauseReason::Operator { note, by } => match (by.is_empty(), note.is_empty()) {
                (true, _) => write!(f, "by an operator: {note}"),
                (false, true) => write!(f, "by operator {by}"),
                (false, false) => write!(f, "by operator {by}: {note}"),
            },
            PauseReason::FailureBudget {
                failures,
                max_failures,
                eligible,
            } => write!(
                f,
                "failure budget exceeded: {failures} failed, at most {} tolerated (max_failures {max_failures} of {eligible} hosts)",
                max_failures.allowed(*eligible)
            ),
            PauseReason::ProgressDeadline { deadline } => {
                write!(f, "progress deadline passed at {deadline}")
            }
        }
    }
}

/// Why a host counts as failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailReason {
    /// The job failed before changing the host.
    Job { step: String },
    /// Not healthy at the target within `healthy_deadline` of its start.
    HealthyDeadline,
    /// Turned unhealthy while its wave soaked.
    UnhealthyDuringSoak,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Job { step } => write!(f, "job failed at {step}"),
            FailReason::HealthyDeadline => f.write_str("not healthy at the target in time"),
            FailReason::UnhealthyDuringSoak => f.write_str("turned unhealthy during the soak"),
        }
    }
}

/// Where one host of the rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HostState {
    /// Waiting for its turn; `not_ready_since` is set while its turn has come but it is
    /// offline or unhealthy.
    Pending {
        #[serde(default)]
        not_ready_since: Option<Timestamp>,
    },
    Running {
        started_at: Timestamp,
    },
    Succeeded {
        started_at: Timestamp,
        finished_at: Timestamp,
    },
    RolledBack {
        at: Timestamp,
        step: String,
    },
    RollbackFailed {
        at: Timestamp,
        step: String,
    },
    Failed {
        at: Timestamp,
        reason: FailReason,
    },
    Skipped {
        at: Timestamp,
        reason: SkipReason,
    },
}

impl HostState {
    /// Counts against the failure budget.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            HostState::Failed { .. }
                | HostState::RolledBack { .. }
                | HostState::RollbackFailed { .. }
        )
    }

    /// Will not change any more (except a success turning unhealthy during the soak).
    pub fn is_done(&self) -> bool {
        !matches!(self, HostState::Pending { .. } | HostState::Running { .. })
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostState::Pending { .. } => f.write_str("pending"),
            HostState::Running { .. } => f.write_str("running"),
            HostState::Succeeded { .. } => f.write_str("succeeded"),
            HostState::RolledBack { step, .. } => write!(f, "rolled back after {step}"),
            HostState::RollbackFailed { step, .. } => {
                write!(f, "ROLLBACK FAILED after {step}")
            }
            HostState::Failed { reason, .. } => write!(f, "failed: {reason}"),
            HostState::Skipped { reason, .. } => write!(f, "skipped: {reason}"),
        }
    }
}

/// One selected host of the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutHost {
    pub host_id: String,
    pub tenant: String,
    /// `None` for hosts the plan skipped.
    pub wave: Option<usize>,
    pub state: HostState,
    /// The rollout's rollback of this host, once an abort asked for one and the host had been
    /// updated; `state` keeps the update's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<Revert>,
}

/// When a wave started and finished (every host done).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveState {
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// A rollout as stored: the spec it runs, and where it and each host stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    pub spec: RolloutSpec,
    pub phase: Phase,
    /// Hosts in rollout order (wave by wave), then those the plan skipped.
    pub hosts: Vec<RolloutHost>,
    pub waves: Vec<WaveState>,
    pub current_wave: usize,
    /// An operator approved promoting the current wave (manual promotion).
    pub promotion_approved: bool,
    /// The start or last resume: the progress deadline counts from it.
    pub running_since: Option<Timestamp>,
    /// Failures an operator accepted by resuming; the budget counts failures after them.
    pub acknowledged_failures: usize,
    /// Hosts the plan found eligible: the base of budget percentages.
    pub eligible: usize,
    /// Set when an abort asked to roll back the hosts this rollout updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
}

/// An operator's transition that the rollout's phase does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a rollout that is {phase}")]
pub struct PhaseError {
    pub action: &'static str,
    pub phase: String,
}

impl RolloutState {
    /// A planned (not started) rollout of `plan`.
    pub fn new(spec: RolloutSpec, plan: &Plan) -> Self {
        let hosts = plan
            .hosts
            .iter()
            .map(|h| RolloutHost {
                host_id: h.host_id.clone(),
                tenant: h.tenant.clone(),
                wave: h.wave,
                state: match h.class {
                    super::plan::HostClass::Skip(reason) => HostState::Skipped {
                        at: plan.planned_at,
                        reason,
                    },
                    _ => HostState::Pending {
                        not_ready_since: None,
                    },
                },
                revert: None,
            })
            .collect();
        Self {
            spec,
            phase: Phase::Planned,
            hosts,
            waves: vec![WaveState::default(); plan.waves.len()],
            current_wave: 0,
            promotion_approved: false,
            running_since: None,
            acknowledged_failures: 0,
            eligible: plan.eligible(),
            rollback: None,
        }
    }

    pub fn start(&mut self, now: Timestamp) -> Result<(), PhaseError> {
        self.expect(matches!(self.phase, Phase::Planned), "start")?;
        self.phase = Phase::Running;
        self.running_since = Some(now);
        if let Some(wave) = self.waves.first_mut() {
            wave.started_at = Some(now);
        }
        Ok(())
    }

    pub fn pause(&mut self, note: &str, now: Timestamp) -> Result<(), PhaseError> {
        self.pause_by("", note, now)
    }

    /// Pauses on behalf of operator `by` (named in the reason).
    pub fn pause_by(&mut self, by: &str, note: &str, now: Timestamp) -> Result<(), PhaseError> {
        self.expect(matches!(self.phase, Phase::Running), "pause")?;
        let reason = PauseReason::Operator {
            note: note.into(),
            by: by.into(),
        };
        self.phase = Phase::Paused { reason, at: now };
        Ok(())
    }

    /// Resumes a paused rollout. The failures so far are accepted: the budget applies afresh
    /// to failures after this, and the progress deadline counts from now.
    pub fn resume(&mut self, now: Timestamp) -> Result<(), PhaseError> {
        self.expect(matches!(self.phase, Phase::Paused { .. }), "resume")?;
        self.phase = Phase::Running;
        self.running_since = Some(now);
        self.acknowledged_failures = self.failures();
        Ok(())
    }

    /// Stops for good: nothing new starts; hosts in flight finish and are still recorded.
    pub fn abort(&mut self, reason: &str, now: Timestamp) -> Result<(), PhaseError> {
        let open = !matches!(self.phase, Phase::Completed { .. } | Phase::Aborted { .. });
        self.expect(open, "abort")?;
        self.phase = Phase::Aborted {
            reason: reason.into(),
            at: now,
        };
        Ok(())
    }

    /// Aborts (unless already aborted) and rolls back the hosts this rollout updated: those it
    /// updated already and those in flight that end up updated. The scheduler starts rollback
    /// jobs under the same parallel limits, freezes and windows as updates.
    pub fn abort_with_rollback(&mut self, reason: &str, now: Timestamp) -> Result<(), PhaseError> {
        if self.rollback.is_some() {
            return self.expect(false, "roll back");
        }
        if !matches!(self.phase, Phase::Aborted { .. }) {
            self.abort(reason, now)?;
        }
        self.rollback = Some(Rollback {
            requested_at: now,
            finished_at: None,
        });
        Ok(())
    }

    /// Whether the scheduler still has work here: running or paused, or aborted with hosts in
    /// flight or a rollback under way.
    pub fn is_active(&self) -> bool {
        match self.phase {
            Phase::Running | Phase::Paused { .. } => true,
            Phase::Planned | Phase::Completed { .. } => false,
            Phase::Aborted { .. } => {
                self.in_flight() > 0 || self.rollback.as_ref().is_some_and(Rollback::is_open)
            }
        }
    }

    /// Lets the current wave's successor start once the soak is over (manual promotion).
    pub fn approve_promotion(&mut self) -> Result<(), PhaseError> {
        let open = matches!(self.phase, Phase::Running | Phase::Paused { .. });
        self.expect(open, "promote")?;
        self.promotion_approved = true;
        Ok(())
    }

    fn expect(&self, allowed: bool, action: &'static str) -> Result<(), PhaseError> {
        if allowed {
            Ok(())
        } else {
            Err(PhaseError {
                action,
                phase: self.phase.to_string(),
            })
        }
    }

    /// Hosts that failed, rolled back, or failed to roll back.
    pub fn failures(&self) -> usize {
        self.hosts.iter().filter(|h| h.state.is_failure()).count()
    }

    /// Hosts updating now.
    pub fn in_flight(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| matches!(h.state, HostState::Running { .. }))
            .count()
    }

    pub fn host(&self, host_id: &str) -> Option<&RolloutHost> {
        self.hosts.iter().find(|h| h.host_id == host_id)
    }

    /// Whether the budget is spent (failures since the last resume exceed it).
    pub fn budget_exceeded(&self) -> bool {
        let counted = self.failures().saturating_sub(self.acknowledged_failures);
        self.spec.max_failures.exceeded(counted, self.eligible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::plan::plan;
    use crate::rollout::testkit::{at, host, spec};

    #[test]
    fn operators_move_the_phase_and_wrong_moves_say_why() {
        let now = at("2025-01-15T12:00:00Z");
        let fleet = [host("a").version("1.3.0"), host("b").version("1.3.2")];
        let s = spec("1.3.2");
        let mut state = RolloutState::new(s.clone(), &plan(&fleet, &s, now));
        assert_eq!(state.eligible, 1);
        assert!(matches!(
            state.host("b").unwrap().state,
            HostState::Skipped {
                reason: SkipReason::AtTarget,
                ..
            }
        ));
        let err = state.resume(now).unwrap_err();
        assert_eq!(err.to_string(), "cannot resume a rollout that is planned");
        state.start(now).unwrap();
        assert_eq!(state.waves[0].started_at, Some(now));
        state.pause("lunch", now).unwrap();
        assert_eq!(state.phase.to_string(), "paused: by an operator: lunch");
        state.approve_promotion().unwrap();
        state.resume(now).unwrap();
        state.abort("wrong target", now).unwrap();
        assert!(state.abort("again", now).is_err());
        assert!(state.approve_promotion().is_err());
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<RolloutState>(&json).unwrap(), state);
        assert!(json.contains(r#""phase":"aborted""#), "{json}");
        assert!(!json.contains("rollback"), "absent until asked: {json}");
        assert!(!state.is_active());
        state.abort_with_rollback("bad release", now).unwrap();
        assert!(state.is_active());
        let err = state.abort_with_rollback("again", now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot roll back a rollout that is aborted: wrong target"
        );
    }

    #[test]
    fn an_operator_pause_names_the_operator() {
        let now = at("2025-01-15T12:00:00Z");
        let s = spec("1.3.2");
        let mut state = RolloutState::new(s.clone(), &plan(&[], &s, now));
        state.start(now).unwrap();
        state.pause_by("alice", "", now).unwrap();
        assert_eq!(state.phase.to_string(), "paused: by operator alice");
        state.resume(now).unwrap();
        state.pause_by("alice", "lunch", now).unwrap();
        assert_eq!(state.phase.to_string(), "paused: by operator alice: lunch");
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<RolloutState>(&json).unwrap(), state);
    }
}
