//! The scheduler's decision: a pure, level-triggered function from the stored rollout state,
//! the fleet as observed and `now` to the next state, the jobs to hand out, and when to look
//! again.
//!
//! The caller's tick: load the state, `decide`, write `Decision::next` to the store, then act
//! on the decision alone — an update job for each host in `start` and `missing_jobs`, a
//! rollback job for each host in `revert` and `missing_rollbacks`, cancel the jobs in
//! `cancel`, audit the events — and sleep until `next_wake` or the next agent report, whichever
//! comes first. `missing_*` are the hosts already running in the stored state without their
//! job: after a crash between the write and the act, or a job the controller refused to
//! create (the host was busy); they are handed one again on every tick until they have it.

mod revert;

use std::collections::HashMap;
use std::fmt;

use jiff::Timestamp;

use super::plan::{version_class, FleetHost, JobStatus, SkipReason};
use super::revert::Revert;
use super::spec::Promotion;
use super::state::{FailReason, HostState, PauseReason, Phase, RolloutState};
use super::window::later;

/// What one tick decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The state to store before acting.
    pub next: RolloutState,
    /// Hosts to hand an update job now (already `Running` in `next`).
    pub start: Vec<String>,
    /// Hosts to hand a rollback job now (their revert already `Running` in `next`).
    pub revert: Vec<String>,
    /// Hosts `Running` before this tick whose update job does not exist (yet).
    pub missing_jobs: Vec<String>,
    /// Hosts whose revert was `Running` before this tick and whose rollback job does not exist.
    pub missing_rollbacks: Vec<String>,
    /// Hosts whose job ran past its deadline: cancel it if it still runs.
    pub cancel: Vec<String>,
    /// What changed, for the audit log.
    pub events: Vec<Event>,
    /// When to look again at the latest (a deadline, a soak end, a window opening).
    pub next_wake: Option<Timestamp>,
}

/// One change a tick made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Host { host_id: String, state: HostState },
    WaveStarted { wave: usize },
    WaveFinished { wave: usize },
    Phase(Phase),
    Revert { host_id: String, revert: Revert },
    RollbackFinished,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Host { host_id, state } => write!(f, "host {host_id}: {state}"),
            Event::WaveStarted { wave } => write!(f, "wave {} started", wave + 1),
            Event::WaveFinished { wave } => write!(f, "wave {} finished", wave + 1),
            Event::Phase(phase) => write!(f, "rollout {phase}"),
            Event::Revert { host_id, revert } => write!(f, "host {host_id}: {revert}"),
            Event::RollbackFinished => f.write_str("rollback finished"),
        }
    }
}

/// Decides one tick of `state` against `fleet` at `now`.
///
/// Hosts in flight are always followed (also when paused or aborted). Only a running rollout
/// starts hosts, skips hosts that stay offline or unhealthy past `ready_timeout` when their
/// turn has come, pauses (failure budget, progress deadline), promotes waves and completes.
/// The same inputs give the same decision; deciding again on `next` at the same `now` changes
/// nothing, so a host is never started twice.
pub fn decide(state: &RolloutState, fleet: &[FleetHost], now: Timestamp) -> Decision {
    let mut tick = Tick {
        state: state.clone(),
        fleet: fleet.iter().map(|h| (h.host_id.as_str(), h)).collect(),
        now,
        events: Vec::new(),
        cancel: Vec::new(),
    };
    let mut start = Vec::new();
    let mut revert = Vec::new();
    if !matches!(state.phase, Phase::Planned | Phase::Completed { .. }) {
        // Each pass may unlock the next (a wave finishes, soaks for 0s, the next starts).
        for _ in 0..state.waves.len() + 2 {
            let before = tick.events.len();
            tick.pass();
            if tick.events.len() == before {
                break;
            }
        }
        if tick.running() {
            start = tick.start_hosts();
        }
        if tick.rolling_back() {
            revert = tick.start_reverts();
        }
    }
    let next_wake = tick.next_wake();
    let (missing_jobs, missing_rollbacks) = tick.missing(&start, &revert);
    Decision {
        next: tick.state,
        start,
        revert,
        missing_jobs,
        missing_rollbacks,
        cancel: tick.cancel,
        events: tick.events,
        next_wake,
    }
}

impl Tick<'_> {
    /// Running hosts (updates, then reverts) that have no job of this rollout in the fleet,
    /// apart from those starting now.
    fn missing(&self, start: &[String], revert: &[String]) -> (Vec<String>, Vec<String>) {
        let mut jobs = Vec::new();
        let mut rollbacks = Vec::new();
        for h in &self.state.hosts {
            let fleet = self.fleet.get(h.host_id.as_str());
            if matches!(h.state, HostState::Running { .. })
                && !start.contains(&h.host_id)
                && fleet.is_some_and(|f| f.job.is_none())
            {
                jobs.push(h.host_id.clone());
            }
            if matches!(h.revert, Some(Revert::Running { .. }))
                && !revert.contains(&h.host_id)
                && fleet.is_some_and(|f| f.rollback_job.is_none())
            {
                rollbacks.push(h.host_id.clone());
            }
        }
        (jobs, rollbacks)
    }
}

struct Tick<'a> {
    state: RolloutState,
    fleet: HashMap<&'a str, &'a FleetHost>,
    now: Timestamp,
    events: Vec<Event>,
    cancel: Vec<String>,
}

impl Tick<'_> {
    fn running(&self) -> bool {
        self.state.phase == Phase::Running
    }

    fn pass(&mut self) {
        self.follow_running_hosts();
        if matches!(self.state.phase, Phase::Running | Phase::Paused { .. }) {
            self.watch_soak();
        }
        if self.running() {
            self.check_budget_and_deadline();
        }
        if self.running() {
            // Not when the check above just paused the rollout.
            self.check_waiting_hosts();
        }
        self.finish_wave();
        if self.running() {
            self.promote();
        }
        if self.rolling_back() {
            self.rollback_pass();
        }
    }

    fn set_host(&mut self, i: usize, state: HostState) {
        let host_id = self.state.hosts[i].host_id.clone();
        self.state.hosts[i].state = state.clone();
        self.events.push(Event::Host { host_id, state });
    }

    fn set_phase(&mut self, phase: Phase) {
        self.state.phase = phase.clone();
        self.events.push(Event::Phase(phase));
    }

    /// Indexes of the current wave's hosts.
    fn current_wave_hosts(&self) -> Vec<usize> {
        let wave = Some(self.state.current_wave);
        (0..self.state.hosts.len())
            .filter(|&i| self.state.hosts[i].wave == wave)
            .collect()
    }

    /// Running hosts: their job's outcome, or the healthy deadline.
    fn follow_running_hosts(&mut self) {
        let now = self.now;
        for i in 0..self.state.hosts.len() {
            let HostState::Running { started_at } = self.state.hosts[i].state else {
                continue;
            };
            let observed = self.fleet.get(self.state.hosts[i].host_id.as_str());
            let job = observed.and_then(|h| h.job.as_ref());
            let at_target = observed.is_some_and(|h| {
                h.online && h.healthy && h.version.as_ref() == Some(&self.state.spec.target)
            });
            let deadline = later(started_at, self.state.spec.healthy_deadline);
            let next = match job {
                Some(JobStatus::Succeeded) if at_target => HostState::Succeeded {
                    started_at,
                    finished_at: now,
                },
                Some(JobStatus::RolledBack { step }) => HostState::RolledBack {
                    at: now,
                    step: step.clone(),
                },
                Some(JobStatus::RollbackFailed { step }) => HostState::RollbackFailed {
                    at: now,
                    step: step.clone(),
                },
                Some(JobStatus::Failed { step }) => HostState::Failed {
                    at: now,
                    reason: FailReason::Job { step: step.clone() },
                },
                _ if now >= deadline => {
                    if !matches!(job, Some(JobStatus::Succeeded)) {
                        self.cancel.push(self.state.hosts[i].host_id.clone());
                    }
                    HostState::Failed {
                        at: now,
                        reason: FailReason::HealthyDeadline,
                    }
                }
                _ => continue,
            };
            self.set_host(i, next);
        }
    }

    /// Succeeded hosts of the current wave that turn unhealthy before it is promoted fail. An
    /// offline host says nothing about its health: it does not fail for that.
    fn watch_soak(&mut self) {
        for i in self.current_wave_hosts() {
            let host = &self.state.hosts[i];
            let sick = self
                .fleet
                .get(host.host_id.as_str())
                .is_some_and(|h| h.online && !h.healthy);
            if sick && matches!(host.state, HostState::Succeeded { .. }) {
                let reason = FailReason::UnhealthyDuringSoak;
                self.set_host(
                    i,
                    HostState::Failed {
                        at: self.now,
                        reason,
                    },
                );
            }
        }
    }

    fn check_budget_and_deadline(&mut self) {
        let state = &self.state;
        if state.budget_exceeded() {
            let reason = PauseReason::FailureBudget {
                failures: state.failures().saturating_sub(state.acknowledged_failures),
                max_failures: state.spec.max_failures,
                eligible: state.eligible,
            };
            self.set_phase(Phase::Paused {
                reason,
                at: self.now,
            });
            return;
        }
        let deadline = state
            .spec
            .progress_deadline
            .zip(state.running_since)
            .map(|(d, since)| later(since, d));
        if let Some(deadline) = deadline.filter(|d| self.now >= *d) {
            let reason = PauseReason::ProgressDeadline { deadline };
            self.set_phase(Phase::Paused {
                reason,
                at: self.now,
            });
        }
    }

    /// Pending hosts whose turn has come: skipped when their version no longer calls for the
    /// update, or when they stay offline or unhealthy past `ready_timeout`.
    fn check_waiting_hosts(&mut self) {
        let now = self.now;
        for i in self.current_wave_hosts() {
            let HostState::Pending { not_ready_since } = self.state.hosts[i].state else {
                continue;
            };
            let (reason, since) = match self.fleet.get(self.state.hosts[i].host_id.as_str()) {
                None => (SkipReason::Offline, now), // revoked or removed
                Some(h) => match version_class(h.version.as_ref(), &self.state.spec.target) {
                    Err(SkipReason::UnknownVersion) => (SkipReason::UnknownVersion, now),
                    Err(reason) => {
                        self.set_host(i, HostState::Skipped { at: now, reason });
                        continue;
                    }
                    Ok(_) if !h.online => (SkipReason::Offline, h.last_seen.unwrap_or(now)),
                    Ok(_) if !h.healthy => (SkipReason::Unhealthy, now),
                    Ok(_) => {
                        self.state.hosts[i].state = HostState::Pending {
                            not_ready_since: None,
                        };
                        continue;
                    }
                },
            };
            let since = not_ready_since.unwrap_or(since.min(now));
            if now >= later(since, self.state.spec.ready_timeout) {
                self.set_host(i, HostState::Skipped { at: now, reason });
            } else {
                self.state.hosts[i].state = HostState::Pending {
                    not_ready_since: Some(since),
                };
            }
        }
    }

    fn finish_wave(&mut self) {
        let wave = self.state.current_wave;
        let done = self
            .current_wave_hosts()
            .iter()
            .all(|&i| self.state.hosts[i].state.is_done());
        if let Some(w) = self.state.waves.get_mut(wave) {
            if w.finished_at.is_none() && done {
                w.finished_at = Some(self.now);
                self.events.push(Event::WaveFinished { wave });
            }
        }
    }

    /// The end of the current wave's soak, once it has finished.
    fn soak_end(&self) -> Option<Timestamp> {
        let finished = self.state.waves.get(self.state.current_wave)?.finished_at?;
        Some(later(finished, self.state.spec.min_healthy_time))
    }

    /// After the soak: the next wave (automatically, or once approved), or completion after
    /// the last one.
    fn promote(&mut self) {
        let state = &self.state;
        if state.current_wave >= state.waves.len() {
            return self.set_phase(Phase::Completed { at: self.now });
        }
        if self.soak_end().is_none_or(|end| self.now < end) {
            return;
        }
        if state.current_wave + 1 == state.waves.len() {
            return self.set_phase(Phase::Completed { at: self.now });
        }
        if state.spec.promotion == Promotion::Manual && !state.promotion_approved {
            return;
        }
        self.state.current_wave += 1;
        self.state.promotion_approved = false;
        let wave = self.state.current_wave;
        self.state.waves[wave].started_at = Some(self.now);
        self.events.push(Event::WaveStarted { wave });
    }

    /// Whether a host may start now: version still calls for it, ready, not frozen, not busy
    /// with another job, and its window (if any) open with at least the expected job duration
    /// left.
    fn may_start(&self, host: &FleetHost) -> bool {
        let spec = &self.state.spec;
        version_class(host.version.as_ref(), &spec.target).is_ok()
            && host.online
            && host.healthy
            && !host.frozen
            && !host.busy
            && host.window.as_ref().is_none_or(|w| {
                w.remaining(self.now)
                    .is_some_and(|left| left >= spec.expected_job_duration)
            })
    }

    /// Pending hosts of the current wave, in order, within the parallel limits.
    fn start_hosts(&mut self) -> Vec<String> {
        let spec = &self.state.spec;
        let max = spec.max_parallel as usize;
        let per_tenant = spec.max_parallel_per_tenant.map(|n| n as usize);
        let mut busy: HashMap<String, usize> = HashMap::new();
        for h in &self.state.hosts {
            if matches!(h.state, HostState::Running { .. }) {
                *busy.entry(h.tenant.clone()).or_default() += 1;
            }
        }
        let mut in_flight = self.state.in_flight();
        let mut started = Vec::new();
        for i in self.current_wave_hosts() {
            if in_flight >= max {
                break;
            }
            let host = &self.state.hosts[i];
            let tenant_busy = busy.get(&host.tenant).copied().unwrap_or(0);
            let ready = matches!(host.state, HostState::Pending { .. })
                && per_tenant.is_none_or(|limit| tenant_busy < limit)
                && self
                    .fleet
                    .get(host.host_id.as_str())
                    .is_some_and(|h| self.may_start(h));
            if !ready {
                continue;
            }
            *busy.entry(host.tenant.clone()).or_default() += 1;
            in_flight += 1;
            started.push(host.host_id.clone());
            self.set_host(
                i,
                HostState::Running {
                    started_at: self.now,
                },
            );
        }
        started
    }

    /// The earliest future instant at which this decision could change by time alone.
    fn next_wake(&self) -> Option<Timestamp> {
        let spec = &self.state.spec;
        let mut wakes = Vec::new();
        for h in &self.state.hosts {
            if let HostState::Running { started_at } = h.state {
                wakes.push(later(started_at, spec.healthy_deadline));
            }
        }
        if self.running() {
            if let (Some(d), Some(since)) = (spec.progress_deadline, self.state.running_since) {
                wakes.push(later(since, d));
            }
            let promotable = spec.promotion == Promotion::Auto
                || self.state.promotion_approved
                || self.state.current_wave + 1 == self.state.waves.len();
            wakes.extend(self.soak_end().filter(|_| promotable));
            wakes.extend(self.waiting_wakes());
        }
        if self.rolling_back() {
            wakes.extend(self.revert_wakes());
        }
        wakes.into_iter().filter(|w| *w > self.now).min()
    }

    /// When waiting hosts of the current wave may change: ready timeouts, window openings.
    fn waiting_wakes(&self) -> Vec<Timestamp> {
        let spec = &self.state.spec;
        let mut wakes = Vec::new();
        for i in self.current_wave_hosts() {
            let host = &self.state.hosts[i];
            let HostState::Pending { not_ready_since } = host.state else {
                continue;
            };
            if let Some(since) = not_ready_since {
                wakes.push(later(since, spec.ready_timeout));
                continue;
            }
            let Some(h) = self.fleet.get(host.host_id.as_str()) else {
                continue;
            };
            if let Some(window) = h.window.as_ref().filter(|_| !self.may_start(h)) {
                wakes.extend(window.next_start(self.now, spec.expected_job_duration));
            }
        }
        wakes
    }
}
