//! The fleet as the planner and the scheduler see it, read from memory (see [`crate::state`])
//! and the registry: enrolled hosts with what their agents reported, the windows and freezes
//! that apply, and each host's jobs of each rollout. No record is decoded but the windows and
//! freezes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use boltfleet_common::proto::{JobKind, JobRecord, JobState};
use jiff::Timestamp;

use crate::app::App;
use crate::error::Error;
use crate::rollout::{FleetHost, JobStatus};
use crate::state::HostRecord;
use crate::state::{RolloutJob, RolloutJobs};

/// One read of everything the scheduler needs, shared by the rollouts of a tick.
pub struct FleetSnapshot {
    /// Enrolled, not revoked hosts; no job attached.
    pub hosts: Vec<FleetHost>,
    /// By rollout: the newest job of each kind of each host.
    jobs: HashMap<String, Arc<RolloutJobs>>,
    /// Rollout ids of the active jobs of each host ("" for an operator's own job).
    active: HashMap<String, Vec<String>>,
    /// Config defaults changing per (host, from, to) version, from the host's own jobs.
    config_changes: HashMap<crate::state::ConfigJump, Vec<String>>,
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
            h.job = self
                .job(id, &h.host_id, JobKind::Update)
                .map(rollout_job_status);
            h.rollback_job = self
                .job(id, &h.host_id, JobKind::Rollback)
                .map(rollout_job_status);
        }
        hosts
    }

    /// The newest job of `kind` rollout `id` created for `host`.
    pub fn job(&self, id: &str, host: &str, kind: JobKind) -> Option<&RolloutJob> {
        self.jobs
            .get(id)?
            .get(host)?
            .iter()
            .find(|j| j.kind == kind)
    }

    /// Fills in the config defaults known to change on the way to `target`, from each host's
    /// own earlier job that made that jump (never from another host's).
    pub fn with_config_changes(&self, hosts: &mut [FleetHost], target: &str) {
        for h in hosts {
            let Some(from) = h.version.as_ref() else {
                continue;
            };
            let jump = (h.host_id.clone(), from.to_string(), target.to_string());
            if let Some(changes) = self.config_changes.get(&jump) {
                h.config_changes = changes.clone();
            }
        }
    }
}

/// What the agent last said of a rollout's job, in the planner's terms.
pub fn job_status(job: &JobRecord) -> JobStatus {
    let step = job.event.as_ref().map_or("", |e| e.failed_step.as_str());
    status_of(job.state(), step)
}

/// [`job_status`] of a job as the index keeps it.
pub fn rollout_job_status(job: &RolloutJob) -> JobStatus {
    status_of(job.state, &job.failed_step)
}

fn status_of(state: JobState, failed_step: &str) -> JobStatus {
    let step = || {
        if failed_step.is_empty() {
            "unknown".to_string()
        } else {
            failed_step.to_string()
        }
    };
    match state {
        JobState::Unspecified | JobState::Queued => JobStatus::Queued,
        JobState::Running => JobStatus::Running,
        JobState::Succeeded => JobStatus::Succeeded,
        JobState::RolledBack => JobStatus::RolledBack { step: step() },
        JobState::RollbackFailed => JobStatus::RollbackFailed { step: step() },
        JobState::Refused | JobState::Failed => JobStatus::Failed { step: step() },
    }
}

impl App {
    /// Reads the whole fleet: hosts, observations, online state, windows, freezes, jobs.
    pub fn fleet_snapshot(&self) -> Result<FleetSnapshot, Error> {
        self.snapshot(None)
    }

    /// Reads the fleet restricted to `hosts` (those of the active rollouts, for a tick).
    pub fn fleet_snapshot_of(&self, hosts: &BTreeSet<&str>) -> Result<FleetSnapshot, Error> {
        self.snapshot(Some(hosts))
    }

    fn snapshot(&self, only: Option<&BTreeSet<&str>>) -> Result<FleetSnapshot, Error> {
        let windows = self.state.windows()?;
        let freeze = self.state.freeze()?;
        // Each part of memory is read in turn, never two locks at once.
        let records: Vec<(String, HostRecord)> = {
            let hosts = self.state.hosts();
            let enrolled =
                |(id, r): (&String, &HostRecord)| (!r.revoked).then(|| (id.clone(), r.clone()));
            match only {
                None => hosts.iter().filter_map(enrolled).collect(),
                Some(ids) => ids
                    .iter()
                    .filter_map(|id| hosts.get_key_value(*id))
                    .filter_map(enrolled)
                    .collect(),
            }
        };
        let ids = || records.iter().map(|(id, _)| id.as_str());
        let seen = self.state.observations().seen_all(ids());
        let online = self.registry.online_all(ids());
        let (jobs, active, config_changes) = {
            let index = self.state.jobs().read();
            let changes = index.config_changes().clone();
            (index.rollouts(), index.active_owners(), changes)
        };
        let each = seen.into_iter().zip(online);
        let hosts = records
            .into_iter()
            .zip(each)
            .map(|((id, record), (seen, online))| {
                let seen = seen.unwrap_or_default();
                FleetHost {
                    online,
                    healthy: seen.healthy,
                    last_seen: Some(seen.last_seen)
                        .filter(|&s| s > 0)
                        .and_then(|s| Timestamp::from_second(s).ok()),
                    window: windows.for_host(&id, &record.tenant).cloned(),
                    frozen: freeze.covers(&record.tenant),
                    busy: false,
                    config_changes: Vec::new(),
                    job: None,
                    rollback_job: None,
                    version: seen.version,
                    labels: record.labels,
                    tenant: record.tenant,
                    host_id: id,
                }
            })
            .collect();
        Ok(FleetSnapshot {
            hosts,
            jobs,
            active,
            config_changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::app::testkit::{Fleet, TARGET};

    #[test]
    fn a_snapshot_of_some_hosts_holds_only_those_enrolled() {
        let fleet = Fleet::new(&[("web0", "acme"), ("web1", "globex"), ("web2", "acme")]);
        fleet.report("web1", TARGET, false);
        fleet
            .app
            .revoke("alice", "web2", crate::app::ts_now())
            .unwrap();
        let only: BTreeSet<&str> = ["web1", "web2", "web9"].into();
        let snapshot = fleet.app.fleet_snapshot_of(&only).unwrap();
        let hosts: Vec<_> = snapshot
            .hosts
            .iter()
            .map(|h| {
                let version = h.version.as_ref().map(ToString::to_string);
                (
                    h.host_id.as_str(),
                    h.tenant.as_str(),
                    h.online,
                    h.healthy,
                    version,
                )
            })
            .collect();
        assert_eq!(
            hosts,
            [("web1", "globex", true, false, Some(TARGET.to_string()))]
        );
        assert!(snapshot.hosts[0].last_seen.is_some());
        let all = fleet.app.fleet_snapshot().unwrap();
        assert_eq!(all.hosts.len(), 2, "the revoked host is left out");
    }
}
