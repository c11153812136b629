//! The scheduler's decision while an aborted rollout rolls back the hosts it updated: which
//! hosts to revert, which to start now (same parallel limits, freezes and windows as updates;
//! health is not required, a sick host is the reason to roll back), and when it is over.

use std::collections::HashMap;

use jiff::Timestamp;

use super::{Event, Tick};
use crate::rollout::plan::{FleetHost, JobStatus, SkipReason};
use crate::rollout::revert::Revert;
use crate::rollout::state::{FailReason, HostState};
use crate::rollout::window::later;

impl Tick<'_> {
    /// An abort asked for a rollback that is not over.
    pub(super) fn rolling_back(&self) -> bool {
        self.state.rollback.as_ref().is_some_and(|r| r.is_open())
    }

    pub(super) fn rollback_pass(&mut self) {
        self.follow_reverts();
        self.mark_reverts();
        self.check_waiting_reverts();
        self.finish_rollback();
    }

    fn set_revert(&mut self, i: usize, revert: Revert) {
        let host_id = self.state.hosts[i].host_id.clone();
        self.state.hosts[i].revert = Some(revert.clone());
        self.events.push(Event::Revert { host_id, revert });
    }

    fn fleet_host(&self, i: usize) -> Option<&FleetHost> {
        self.fleet
            .get(self.state.hosts[i].host_id.as_str())
            .copied()
    }

    /// Whether the rollout left the host changed: updated, even if it failed afterwards.
    fn changed(&self, i: usize) -> bool {
        match &self.state.hosts[i].state {
            HostState::Succeeded { .. } => true,
            HostState::Failed { reason, .. } => match reason {
                FailReason::UnhealthyDuringSoak => true,
                FailReason::HealthyDeadline => self
                    .fleet_host(i)
                    .is_some_and(|h| h.job == Some(JobStatus::Succeeded)),
                FailReason::Job { .. } => false,
            },
            _ => false,
        }
    }

    /// Running rollbacks: their job's outcome, or the healthy deadline.
    fn follow_reverts(&mut self) {
        let now = self.now;
        for i in 0..self.state.hosts.len() {
            let Some(Revert::Running { started_at }) = self.state.hosts[i].revert else {
                continue;
            };
            let job = self.fleet_host(i).and_then(|h| h.rollback_job.clone());
            let next = match job {
                Some(JobStatus::Succeeded) => Revert::Done {
                    started_at,
                    finished_at: now,
                },
                Some(
                    JobStatus::RolledBack { step }
                    | JobStatus::RollbackFailed { step }
                    | JobStatus::Failed { step },
                ) => Revert::Failed { at: now, step },
                _ if now >= later(started_at, self.state.spec.healthy_deadline) => {
                    self.cancel.push(self.state.hosts[i].host_id.clone());
                    Revert::Failed {
                        at: now,
                        step: "healthy deadline".into(),
                    }
                }
                _ => continue,
            };
            self.set_revert(i, next);
        }
    }

    /// Hosts the rollout changed get a pending revert.
    fn mark_reverts(&mut self) {
        for i in 0..self.state.hosts.len() {
            if self.state.hosts[i].revert.is_none() && self.changed(i) {
                let pending = Revert::Pending {
                    not_ready_since: None,
                };
                self.set_revert(i, pending);
            }
        }
    }

    /// Pending reverts of offline hosts are skipped past the ready timeout.
    fn check_waiting_reverts(&mut self) {
        let now = self.now;
        for i in 0..self.state.hosts.len() {
            let Some(Revert::Pending { not_ready_since }) = self.state.hosts[i].revert else {
                continue;
            };
            let since = match self.fleet_host(i) {
                None => now, // revoked or removed
                Some(h) if !h.online => h.last_seen.unwrap_or(now),
                Some(_) => {
                    self.state.hosts[i].revert = Some(Revert::Pending {
                        not_ready_since: None,
                    });
                    continue;
                }
            };
            let since = not_ready_since.unwrap_or(since.min(now));
            if now >= later(since, self.state.spec.ready_timeout) {
                let reason = SkipReason::Offline;
                self.set_revert(i, Revert::Skipped { at: now, reason });
            } else {
                self.state.hosts[i].revert = Some(Revert::Pending {
                    not_ready_since: Some(since),
                });
            }
        }
    }

    /// Over once no update is in flight and every revert is done.
    fn finish_rollback(&mut self) {
        let busy = self.state.hosts.iter().any(|h| {
            matches!(h.state, HostState::Running { .. })
                || h.revert.as_ref().is_some_and(|r| !r.is_done())
        });
        if busy {
            return;
        }
        if let Some(rollback) = self.state.rollback.as_mut() {
            rollback.finished_at = Some(self.now);
            self.events.push(Event::RollbackFinished);
        }
    }

    /// Whether a revert may start on the host now: online, not frozen, not busy with another
    /// job, inside its window.
    fn may_revert(&self, host: &FleetHost) -> bool {
        let spec = &self.state.spec;
        host.online
            && !host.frozen
            && !host.busy
            && host.window.as_ref().is_none_or(|w| {
                w.remaining(self.now)
                    .is_some_and(|left| left >= spec.expected_job_duration)
            })
    }

    /// Pending reverts, in rollout order, within the parallel limits (updates still in flight
    /// count against them).
    pub(super) fn start_reverts(&mut self) -> Vec<String> {
        let spec = &self.state.spec;
        let max = spec.max_parallel as usize;
        let per_tenant = spec.max_parallel_per_tenant.map(|n| n as usize);
        let mut busy: HashMap<String, usize> = HashMap::new();
        let mut in_flight = 0;
        for h in &self.state.hosts {
            let updating = matches!(h.state, HostState::Running { .. });
            let reverting = matches!(h.revert, Some(Revert::Running { .. }));
            if updating || reverting {
                *busy.entry(h.tenant.clone()).or_default() += 1;
                in_flight += 1;
            }
        }
        let mut started = Vec::new();
        for i in 0..self.state.hosts.len() {
            if in_flight >= max {
                break;
            }
            let host = &self.state.hosts[i];
            let tenant_busy = busy.get(&host.tenant).copied().unwrap_or(0);
            let ready = matches!(host.revert, Some(Revert::Pending { .. }))
                && per_tenant.is_none_or(|limit| tenant_busy < limit)
                && self.fleet_host(i).is_some_and(|h| self.may_revert(h));
            if !ready {
                continue;
            }
            *busy.entry(host.tenant.clone()).or_default() += 1;
            in_flight += 1;
            started.push(host.host_id.clone());
            let running = Revert::Running {
                started_at: self.now,
            };
            self.set_revert(i, running);
        }
        started
    }

    /// Rollback deadlines, ready timeouts and window openings of pending reverts.
    pub(super) fn revert_wakes(&self) -> Vec<Timestamp> {
        let spec = &self.state.spec;
        let mut wakes = Vec::new();
        for (i, h) in self.state.hosts.iter().enumerate() {
            match h.revert {
                Some(Revert::Running { started_at }) => {
                    wakes.push(later(started_at, spec.healthy_deadline));
                }
                Some(Revert::Pending {
                    not_ready_since: Some(since),
                }) => wakes.push(later(since, spec.ready_timeout)),
                Some(Revert::Pending { .. }) => {
                    let Some(fleet) = self.fleet_host(i) else {
                        continue;
                    };
                    if let Some(w) = fleet.window.as_ref().filter(|_| !self.may_revert(fleet)) {
                        wakes.extend(w.next_start(self.now, spec.expected_job_duration));
                    }
                }
                _ => {}
            }
        }
        wakes
    }
}
