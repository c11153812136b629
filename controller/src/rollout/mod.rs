//! Staggered rollouts: the spec, maintenance windows, the planner and the scheduler's decision.
//!
//! Everything here is pure: the caller reads the store and the clock, passes a fleet snapshot
//! and `now`, stores what comes back, then acts on it. The semantics, in one place:
//!
//! - Waves are cumulative targets over the eligible hosts: `1,10%,100%` is one canary, then up
//!   to 10% in total, then the rest. Percentages round up; every wave takes at least one host
//!   while hosts remain; the last wave must be `100%` (the selector limits a rollout, not the
//!   waves). See [`sizes::wave_sizes`].
//! - The plan is a snapshot: hosts it skips (at target, major, downgrade, offline, unhealthy,
//!   frozen, no window, unknown version) are not part of the rollout. Eligible hosts are
//!   ordered by interleaving tenants (by name; hosts by id), so early waves sample many
//!   customers.
//! - A host with no window (neither its own nor its tenant's) may start at any time. A host
//!   with one starts only while it is open for at least `expected_job_duration` more.
//! - `max_failures` is tolerated: the rollout pauses when failures exceed it (`0`: pause on
//!   the first). Percentages are of the eligible hosts, compared exactly (5% of 7 tolerates
//!   none). Failed, rolled-back, rollback-failed hosts and hosts turning unhealthy during the
//!   soak count. Resuming accepts the failures so far.
//! - A wave finishes when all its hosts are done; the next starts after `min_healthy_time`
//!   (and an operator's approval under manual promotion); the rollout completes after the last
//!   wave's soak.
//! - Freezes and closed windows make hosts wait; hosts whose turn has come but stay offline or
//!   unhealthy past `ready_timeout` are skipped.
//! - An abort may ask for a rollback: the hosts the rollout updated get rollback jobs, under
//!   the same limits, freezes and windows. See [`revert`].

pub mod decide;
pub mod plan;
pub mod revert;
pub mod sizes;
pub mod spec;
pub mod state;
pub mod window;

pub use decide::{decide, Decision, Event};
pub use plan::{plan, FleetHost, HostClass, JobStatus, Plan, PlannedHost, SkipReason};
pub use revert::{Revert, Rollback};
pub use spec::{FailureBudget, Promotion, RolloutSpec, Selector, SpecError, WaveSize};
pub use state::{FailReason, HostState, PauseReason, Phase, PhaseError, RolloutHost, RolloutState};
pub use window::{Freeze, MaintenanceWindow, WindowError, Windows};

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod revert_sim_tests;
#[cfg(test)]
mod revert_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod testkit;
