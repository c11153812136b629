//! The fleet as the planner and the scheduler see it, read from the store and the registry:
//! enrolled hosts with what their agents reported, the windows and freezes that apply, and
//! each host's jobs of each rollout.

use std::collections::{BTreeMap, HashMap};

use boltfleet_common::proto::{JobKind, JobRecord, JobState};
use boltfleet_common::version::parse_release;
use jiff::Timestamp;

use crate::app::App;
use crate::error::Error;
use crate::jobs::{is_active, state_of};
use crate::rollout::{FleetHost, JobStatus};
use crate::store::Observed;

/// One read of everything the scheduler needs, shared by the rollouts of a tick.
pub struct FleetSnapshot {
    /// Enrolled, not revoked hosts; no job attached.
    pub hosts: Vec<FleetHost>,
    /// The newest job of each (rollout, host, kind).
    jobs: HashMap<(String, String, JobKind), JobRecord>,
    /// Rollout ids of the active jobs of each host ("" for an operator's own job).
    active: HashMap<String, Vec<String>>,
    /// Config defaults changing per (from, to) version, from jobs that made that jump.
    config_changes: HashMap<(String, String), Vec<String>>,
}

impl FleetSnapshot {
    /// The fleet for rollout `id`: each host carries this rollout's jobs only (jobs from
    /// operators or other rollouts do not count).
    pub fn for_rollout(&self, id: &str) -> Vec<FleetHost> {
        let mut hosts = self.hosts.clone();
        for h in &mut hosts {
            h.busy = self
                .active
                .get(&h.host_id)
                .is_some_and(|owners| owners.iter().any(|owner| owner != id));
            h.job = self.job(id, &h.host_id, JobKind::Update).map(job_status);
            h.rollback_job = self.job(id, &h.host_id, JobKind::Rollback).map(job_status);
        }
        hosts
    }

    /// The newest job of `kind` rollout `id` created for `host`.
    pub fn job(&self, id: &str, host: &str, kind: JobKind) -> Option<&JobRecord> {
        self.jobs.get(&(id.to_string(), host.to_string(), kind))
    }

    /// Fills in the config defaults known to change on the way to `target`.
    pub fn with_config_changes(&self, hosts: &mut [FleetHost], target: &str) {
        for h in hosts {
            let Some(from) = h.version.as_ref() else {
                continue;
            };
            if let Some(changes) = self.config_changes.get(&(from.to_string(), target.into())) {
                h.config_changes = changes.clone();
            }
        }
    }
}

/// What the agent last said of a rollout's job, in the planner's terms.
pub fn job_status(job: &JobRecord) -> JobStatus {
    let event = job.event.clone().unwrap_or_default();
    let step = || {
        if event.failed_step.is_empty() {
            "unknown".to_string()
        } else {
            event.failed_step.clone()
        }
    };
    match state_of(job) {
        JobState::Unspecified | JobState::Queued => JobStatus::Queued,
        JobState::Running => JobStatus::Running,
        JobState::Succeeded => JobStatus::Succeeded,
        JobState::RolledBack => JobStatus::RolledBack { step: step() },
        JobState::RollbackFailed => JobStatus::RollbackFailed { step: step() },
        JobState::Refused | JobState::Failed => JobStatus::Failed { step: step() },
    }
}

/// Healthy as the fleet report judges it: a report, healthy, and no read errors.
pub fn is_healthy(observed: Option<&Observed>) -> bool {
    let Some(inv) = observed.and_then(|o| o.inventory.as_ref()) else {
        return false;
    };
    inv.health.as_ref().is_some_and(|h| h.healthy) && inv.errors.is_empty()
}

impl App {
    /// Reads the fleet: hosts, observations, online state, windows, freezes, jobs.
    pub fn fleet_snapshot(&self) -> Result<FleetSnapshot, Error> {
        let observed: BTreeMap<String, Observed> =
            self.store.observed.list()?.into_iter().collect();
        let windows = self.store.windows_all()?;
        let freeze = self.store.freeze_all()?;
        let mut hosts = Vec::new();
        for (id, record) in self.store.hosts.list()? {
            if record.revoked {
                continue;
            }
            let seen = observed.get(&id);
            let version = seen
                .and_then(|o| o.inventory.as_ref())
                .and_then(|inv| parse_release(&inv.passbolt_version).ok());
            hosts.push(FleetHost {
                online: self.registry.is_online(&id),
                healthy: is_healthy(seen),
                last_seen: seen
                    .filter(|o| o.last_seen > 0)
                    .and_then(|o| Timestamp::from_second(o.last_seen).ok()),
                window: windows.for_host(&id, &record.tenant).cloned(),
                frozen: freeze.covers(&record.tenant),
                busy: false,
                config_changes: Vec::new(),
                job: None,
                rollback_job: None,
                version,
                labels: record.labels,
                tenant: record.tenant,
                host_id: id,
            });
        }
        let mut jobs: HashMap<(String, String, JobKind), JobRecord> = HashMap::new();
        let mut config_changes = HashMap::new();
        let mut active: HashMap<String, Vec<String>> = HashMap::new();
        for (_, job) in self.store.jobs.list()? {
            if is_active(state_of(&job)) {
                let owners = active.entry(job.host_id.clone()).or_default();
                owners.push(job.rollout_id.clone());
            }
            if let Some(e) = job.event.as_ref().filter(|e| !e.config_changes.is_empty()) {
                let jump = (e.from_version.clone(), e.target_version.clone());
                config_changes.insert(jump, e.config_changes.clone());
            }
            if job.rollout_id.is_empty() {
                continue;
            }
            let kind = job
                .request
                .as_ref()
                .map(|r| r.kind())
                .unwrap_or(JobKind::Unspecified);
            let key = (job.rollout_id.clone(), job.host_id.clone(), kind);
            let newer = jobs
                .get(&key)
                .is_none_or(|old| (old.created_at, &old.job_id) < (job.created_at, &job.job_id));
            if newer {
                jobs.insert(key, job);
            }
        }
        Ok(FleetSnapshot {
            hosts,
            jobs,
            active,
            config_changes,
        })
    }
}
