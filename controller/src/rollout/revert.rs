//! The rollback phase of an aborted rollout: which hosts it reverts and where each stands.
//!
//! `abort --rollback` keeps the update's outcome of every host and adds a [`Revert`] to each
//! host the rollout changed: updated (succeeded, or failed afterwards: unhealthy during the soak,
//! or healthy deadline passed with the job done). Hosts still in flight are reverted once their
//! job ends with the host changed. Hosts that rolled themselves back, failed before changing
//! anything or were skipped are left alone.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::plan::SkipReason;

/// An operator's request to roll back what the rollout updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    pub requested_at: Timestamp,
    /// Set once every host to revert is done and none is in flight.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
}

impl Rollback {
    pub fn is_open(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// Where the rollback of one host stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Revert {
    /// Waiting for a slot (parallel limits), its window, a thaw, or the host to come back;
    /// `not_ready_since` is set while it is offline.
    Pending {
        #[serde(default)]
        not_ready_since: Option<Timestamp>,
    },
    Running {
        started_at: Timestamp,
    },
    /// Back on the previous release.
    Done {
        started_at: Timestamp,
        finished_at: Timestamp,
    },
    /// The rollback job failed at `step` (or ran past the healthy deadline): needs a person.
    Failed {
        at: Timestamp,
        step: String,
    },
    /// Offline past the ready timeout: never reverted.
    Skipped {
        at: Timestamp,
        reason: SkipReason,
    },
}

impl Revert {
    pub fn is_done(&self) -> bool {
        !matches!(self, Revert::Pending { .. } | Revert::Running { .. })
    }

    /// A stable snake_case name: `pending`, `running`, `done`, `failed`, `skipped`.
    pub fn name(&self) -> &'static str {
        match self {
            Revert::Pending { .. } => "pending",
            Revert::Running { .. } => "running",
            Revert::Done { .. } => "done",
            Revert::Failed { .. } => "failed",
            Revert::Skipped { .. } => "skipped",
        }
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revert::Pending { .. } => f.write_str("rollback pending"),
            Revert::Running { .. } => f.write_str("rolling back"),
            Revert::Done { .. } => f.write_str("rolled back by the rollout's rollback"),
            Revert::Failed { step, .. } => write!(f, "ROLLBACK FAILED at {step}"),
            Revert::Skipped { reason, .. } => write!(f, "rollback skipped: {reason}"),
        }
    }
}
