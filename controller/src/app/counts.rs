//! What a metrics scrape reads from the state: hosts by tenant and version, online,
//! unhealthy, in maintenance; rollouts and their hosts by state. From memory, no record decoded
//! but the active rollouts (which the scheduler keeps decoded anyway) and every rollout once.

use boltfleet_common::proto::JobState;

use super::App;
use crate::error::Error;
use crate::metrics::FleetCounts;
use crate::rollout::{HostState, Phase};

impl App {
    /// The fleet's counts for a scrape.
    pub fn fleet_counts(&self) -> Result<FleetCounts, Error> {
        let mut counts = FleetCounts::default();
        let records: Vec<(String, String)> = self
            .state
            .hosts()
            .iter()
            .filter(|(_, r)| !r.revoked)
            .map(|(id, r)| (id.clone(), r.tenant.clone()))
            .collect();
        let ids = || records.iter().map(|(id, _)| id.as_str());
        let seen = self.state.observations().seen_all(ids());
        let online = self.registry.online_all(ids());
        let observed = self.state.observations().get_all(ids());
        let left_in_maintenance: Vec<bool> = {
            let index = self.state.jobs().read();
            ids()
                .map(|id| {
                    let running = index
                        .active(id)
                        .iter()
                        .any(|j| j.state == JobState::Running);
                    let stuck = index
                        .newest_event(id)
                        .flatten()
                        .is_some_and(|e| e.state() == JobState::RollbackFailed);
                    running || stuck
                })
                .collect()
        };
        let each = seen
            .into_iter()
            .zip(online)
            .zip(observed)
            .zip(left_in_maintenance);
        for ((_, tenant), (((seen, online), observed), maintenance)) in records.iter().zip(each) {
            let version = seen
                .as_ref()
                .and_then(|s| s.version.as_ref())
                .map_or_else(|| "unknown".to_string(), ToString::to_string);
            *counts.hosts.entry((tenant.clone(), version)).or_default() += 1;
            counts.online += i64::from(online);
            if !seen.as_ref().is_some_and(|s| s.healthy) {
                *counts.unhealthy.entry(tenant.clone()).or_default() += 1;
            }
            let job_in_progress = observed
                .as_ref()
                .and_then(|o| o.inventory.as_ref())
                .is_some_and(|inv| inv.job_in_progress);
            counts.in_maintenance += i64::from(maintenance || job_in_progress);
        }
        counts.streams = self.registry.online_count() as i64;
        for record in self.state.rollouts()? {
            let phase = match record.state.phase {
                Phase::Planned => "planned",
                Phase::Running => "running",
                Phase::Paused { .. } => "paused",
                Phase::Completed { .. } => "completed",
                Phase::Aborted { .. } => "aborted",
            };
            *counts.rollouts.entry(phase).or_default() += 1;
        }
        for record in self.state.active_rollouts() {
            for host in &record.state.hosts {
                let state = match host.state {
                    HostState::Pending { .. } => "pending",
                    HostState::Running { .. } => "running",
                    HostState::Succeeded { .. } => "succeeded",
                    HostState::RolledBack { .. } => "rolled_back",
                    HostState::RollbackFailed { .. } => "rollback_failed",
                    HostState::Failed { .. } => "failed",
                    HostState::Skipped { .. } => "skipped",
                };
                *counts.rollout_hosts.entry(state).or_default() += 1;
            }
        }
        Ok(counts)
    }

    /// The exposition text of a scrape now.
    pub fn render_metrics(&self) -> String {
        match self.fleet_counts() {
            Ok(counts) => self.metrics.render(&counts),
            Err(err) => {
                tracing::warn!(error = %err, "metrics: fleet counts unreadable");
                self.metrics.render(&FleetCounts::default())
            }
        }
    }
}
