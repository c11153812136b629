//! Rollouts on the wire: the spec parsed from its string fields (errors name the field), and
//! plans and statuses encoded for operators.

use std::collections::HashMap;
use std::time::Duration;

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::{self as pb, JobKind, JobRecord, StepState};
use boltfleet_common::version::{parse_release, Version};

use crate::rollout::spec::{parse_duration, parse_max_failures, parse_waves};
use crate::rollout::{
    FailReason, FailureBudget, HostClass, HostState, Phase, Plan, Promotion, Revert, RolloutHost,
    RolloutSpec, Selector, SkipReason, SpecError, WaveSize, Windows,
};
use crate::state::RolloutRecord;

/// Parses and validates a spec from the wire; unset and empty fields take the defaults.
pub fn spec_from_wire(w: &pb::RolloutSpec) -> Result<RolloutSpec, SpecError> {
    if w.target.trim().is_empty() {
        return Err(SpecError::new("target", "required (X.Y.Z)"));
    }
    let target = parse_release(w.target.trim())
        .map_err(|e| SpecError::new("target", format!("{:?}: {e}", w.target)))?;
    let mut spec = RolloutSpec::new(target);
    spec.selector = selector(w)?;
    if !w.waves.trim().is_empty() {
        spec.waves = parse_waves(&w.waves)?;
    }
    if let Some(n) = w.max_parallel {
        spec.max_parallel = n;
    }
    spec.max_parallel_per_tenant = w.max_parallel_per_tenant;
    if !w.max_failures.trim().is_empty() {
        spec.max_failures = parse_max_failures(&w.max_failures)?;
    }
    let duration = |field: &str, text: &str| -> Result<Option<std::time::Duration>, SpecError> {
        (!text.trim().is_empty())
            .then(|| parse_duration(field, text))
            .transpose()
    };
    if let Some(d) = duration("soak", &w.soak)? {
        spec.min_healthy_time = d;
    }
    if let Some(d) = duration("healthy_deadline", &w.healthy_deadline)? {
        spec.healthy_deadline = d;
    }
    spec.progress_deadline = duration("progress_deadline", &w.progress_deadline)?;
    if let Some(d) = duration("ready_timeout", &w.ready_timeout)? {
        spec.ready_timeout = d;
    }
    if let Some(d) = duration("expected_job_duration", &w.expected_job_duration)? {
        spec.expected_job_duration = d;
    }
    if w.manual_promote {
        spec.promotion = Promotion::Manual;
    }
    spec.validate()?;
    Ok(spec)
}

fn selector(w: &pb::RolloutSpec) -> Result<Selector, SpecError> {
    let narrowed = !(w.hosts.is_empty() && w.tenants.is_empty() && w.labels.is_empty());
    match (w.select_all, narrowed) {
        (false, false) => {
            return Err(SpecError::new(
                "selector",
                "choose hosts, tenants or labels, or select all hosts explicitly",
            ))
        }
        (true, true) => {
            return Err(SpecError::new(
                "selector",
                "select all excludes hosts, tenants and labels",
            ))
        }
        _ => {}
    }
    for (i, host) in w.hosts.iter().enumerate() {
        HostId::new(host).map_err(|e| SpecError::new(format!("hosts[{i}]"), e.to_string()))?;
    }
    if let Some(i) = w.tenants.iter().position(|t| t.is_empty()) {
        return Err(SpecError::new(format!("tenants[{i}]"), "empty tenant"));
    }
    if w.labels.keys().any(|k| k.is_empty()) {
        return Err(SpecError::new("labels", "empty label key"));
    }
    Ok(Selector {
        hosts: w.hosts.iter().cloned().collect(),
        tenants: w.tenants.iter().cloned().collect(),
        labels: w
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// A rollout spec as an operator writes it: what is `None` takes the controller's default.
/// The CLI builds one from its flags and a stored spec makes one with every field set, and
/// both reach the wire through [`SpecInput::to_wire`] only.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecInput {
    pub target: Version,
    /// Empty: every host (selecting all is explicit on the wire).
    pub selector: Selector,
    pub waves: Vec<WaveSize>,
    pub max_parallel: Option<u32>,
    pub max_parallel_per_tenant: Option<u32>,
    pub max_failures: Option<FailureBudget>,
    pub soak: Option<Duration>,
    pub manual_promote: bool,
    pub healthy_deadline: Option<Duration>,
    pub progress_deadline: Option<Duration>,
    pub ready_timeout: Option<Duration>,
    pub expected_job_duration: Option<Duration>,
}

impl SpecInput {
    /// The wire's text fields ("" for what is unset).
    pub fn to_wire(&self) -> pb::RolloutSpec {
        let s = &self.selector;
        let text = |d: Option<Duration>| {
            d.map(|d| humantime::format_duration(d).to_string())
                .unwrap_or_default()
        };
        pb::RolloutSpec {
            target: self.target.to_string(),
            select_all: s.hosts.is_empty() && s.tenants.is_empty() && s.labels.is_empty(),
            hosts: s.hosts.iter().cloned().collect(),
            tenants: s.tenants.iter().cloned().collect(),
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            waves: self
                .waves
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(","),
            max_parallel: self.max_parallel,
            max_parallel_per_tenant: self.max_parallel_per_tenant,
            max_failures: self.max_failures.map(|b| b.to_string()).unwrap_or_default(),
            soak: text(self.soak),
            manual_promote: self.manual_promote,
            healthy_deadline: text(self.healthy_deadline),
            progress_deadline: text(self.progress_deadline),
            ready_timeout: text(self.ready_timeout),
            expected_job_duration: text(self.expected_job_duration),
        }
    }
}

impl From<&RolloutSpec> for SpecInput {
    fn from(spec: &RolloutSpec) -> Self {
        Self {
            target: spec.target.clone(),
            selector: spec.selector.clone(),
            waves: spec.waves.clone(),
            max_parallel: Some(spec.max_parallel),
            max_parallel_per_tenant: spec.max_parallel_per_tenant,
            max_failures: Some(spec.max_failures),
            soak: Some(spec.min_healthy_time),
            manual_promote: spec.promotion == Promotion::Manual,
            healthy_deadline: Some(spec.healthy_deadline),
            progress_deadline: spec.progress_deadline,
            ready_timeout: Some(spec.ready_timeout),
            expected_job_duration: Some(spec.expected_job_duration),
        }
    }
}

/// The spec as stored, for status output.
pub fn spec_to_wire(spec: &RolloutSpec) -> pb::RolloutSpec {
    SpecInput::from(spec).to_wire()
}

/// A skip reason's stable snake_case name (`at_target`, `offline`, ...).
pub fn skip_code(reason: SkipReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn plan_to_wire(plan: &Plan, windows: &Windows) -> pb::RolloutPlan {
    let hosts = plan
        .hosts
        .iter()
        .map(|h| {
            let (class, skip) = match h.class {
                HostClass::Patch => ("patch", String::new()),
                HostClass::Minor => ("minor", String::new()),
                HostClass::Skip(reason) => ("skip", skip_code(reason)),
            };
            pb::PlannedHost {
                host_id: h.host_id.clone(),
                tenant: h.tenant.clone(),
                from_version: h.from.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                class: class.into(),
                skip_reason: skip,
                wave: h.wave.map(|w| w as u32),
                next_window: h.next_window.map_or(0, |t| t.as_second()),
                config_changes: h.config_changes.clone(),
                window: windows
                    .for_host(&h.host_id, &h.tenant)
                    .map(|w| w.to_string())
                    .unwrap_or_default(),
            }
        })
        .collect();
    pb::RolloutPlan {
        target: plan.target.to_string(),
        planned_at: plan.planned_at.as_second(),
        waves: plan.waves.len() as u32,
        hosts,
    }
}

/// The full records of a rollout's jobs by (host, kind), newest of each: what its status shows
/// (the scheduler follows the lighter [`crate::state::RolloutJobs`] of the job index).
pub type RolloutJobRecords = HashMap<(String, JobKind), JobRecord>;

pub fn status_to_wire(record: &RolloutRecord, jobs: &RolloutJobRecords) -> pb::RolloutStatus {
    let state = &record.state;
    let host = |h: &RolloutHost| host_status(h, jobs);
    let waves = (0..state.waves.len())
        .map(|i| pb::RolloutWave {
            index: i as u32,
            started_at: state.waves[i].started_at.map_or(0, |t| t.as_second()),
            finished_at: state.waves[i].finished_at.map_or(0, |t| t.as_second()),
            hosts: state
                .hosts
                .iter()
                .filter(|h| h.wave == Some(i))
                .map(host)
                .collect(),
        })
        .collect();
    let (name, reason) = match &state.phase {
        Phase::Planned if record.awaiting_approval() => (
            "awaiting_approval",
            format!(
                "tenants {} require approval by an operator other than {}: `boltfleet rollout approve {}`",
                record.approval.as_ref().map(|a| a.tenants.join(", ")).unwrap_or_default(),
                record.created_by,
                record.id
            ),
        ),
        Phase::Planned => ("planned", String::new()),
        Phase::Running => ("running", String::new()),
        Phase::Paused { reason, .. } => ("paused", reason.to_string()),
        Phase::Completed { .. } => ("completed", String::new()),
        Phase::Aborted { reason, .. } => ("aborted", reason.clone()),
    };
    let soaked_wave_waits = state
        .waves
        .get(state.current_wave)
        .is_some_and(|w| w.finished_at.is_some())
        && state.current_wave + 1 < state.waves.len();
    pb::RolloutStatus {
        id: record.id.clone(),
        target: state.spec.target.to_string(),
        state: name.into(),
        reason,
        waves,
        skipped: state
            .hosts
            .iter()
            .filter(|h| h.wave.is_none())
            .map(host)
            .collect(),
        created_by: record.created_by.clone(),
        created_at: record.created_at.as_second(),
        current_wave: state.current_wave as u32,
        eligible: state.eligible as u32,
        failures: state.failures() as u32,
        rollback: state.rollback.as_ref().map(|r| pb::RollbackStatus {
            requested_by: record.rollback_by.clone().unwrap_or_default(),
            requested_at: r.requested_at.as_second(),
            finished_at: r.finished_at.map_or(0, |t| t.as_second()),
        }),
        spec: Some(spec_to_wire(&state.spec)),
        awaiting_promotion: state.phase == Phase::Running
            && state.spec.promotion == Promotion::Manual
            && !state.promotion_approved
            && soaked_wave_waits,
        approval: record.approval.as_ref().map(|a| pb::RolloutApproval {
            tenants: a.tenants.clone(),
            approved_by: a.approved_by.clone().unwrap_or_default(),
            approved_at: a.approved_at.map_or(0, |t| t.as_second()),
        }),
    }
}

fn host_status(h: &RolloutHost, jobs: &RolloutJobRecords) -> pb::RolloutHostStatus {
    let job_of = |kind| jobs.get(&(h.host_id.clone(), kind));
    let update = job_of(JobKind::Update);
    let rollback = job_of(JobKind::Rollback);
    let secs = |t: jiff::Timestamp| t.as_second();
    let (mut state, started, mut finished, mut failed_step, skip) = match &h.state {
        HostState::Pending { .. } => ("pending", None, None, "", None),
        HostState::Running { started_at } => ("running", Some(*started_at), None, "", None),
        HostState::Succeeded {
            started_at,
            finished_at,
        } => ("succeeded", Some(*started_at), Some(*finished_at), "", None),
        HostState::RolledBack { at, step } => ("rolled_back", None, Some(*at), step.as_str(), None),
        HostState::RollbackFailed { at, step } => {
            ("rollback_failed", None, Some(*at), step.as_str(), None)
        }
        HostState::Failed { at, reason } => {
            let step = match reason {
                FailReason::Job { step } => step.as_str(),
                _ => "",
            };
            ("failed", None, Some(*at), step, None)
        }
        HostState::Skipped { at, reason } => ("skipped", None, Some(*at), "", Some(*reason)),
    };
    let mut detail = h.state.to_string();
    let mut job = update;
    if let Some(revert) = &h.revert {
        detail = format!("{detail}; {revert}");
        job = rollback.or(update);
        match revert {
            Revert::Running { .. } => (state, finished) = ("running", None),
            Revert::Done { finished_at, .. } => {
                (state, finished) = ("rolled_back", Some(*finished_at))
            }
            Revert::Failed { at, step } => {
                (state, finished, failed_step) = ("rollback_failed", Some(*at), step.as_str())
            }
            Revert::Pending { .. } | Revert::Skipped { .. } => {}
        }
    }
    let started = started
        .map(secs)
        .or_else(|| update.map(|j| j.created_at))
        .unwrap_or(0);
    let running_step = job
        .and_then(|j| j.event.as_ref())
        .filter(|_| state == "running")
        .and_then(|e| {
            e.steps
                .iter()
                .rev()
                .find(|s| s.state() == StepState::Running)
        })
        .map(|s| s.name.clone())
        .unwrap_or_default();
    pb::RolloutHostStatus {
        host_id: h.host_id.clone(),
        tenant: h.tenant.clone(),
        state: state.into(),
        started_at: started,
        finished_at: finished.map_or(0, secs),
        failed_step: failed_step.into(),
        skip_reason: skip.map(skip_code).unwrap_or_default(),
        detail,
        current_step: running_step,
        job_id: job.map(|j| j.job_id.clone()).unwrap_or_default(),
        rollback: h
            .revert
            .as_ref()
            .map(|r| r.name().to_string())
            .unwrap_or_default(),
    }
}
