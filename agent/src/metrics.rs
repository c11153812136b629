//! The agent's own Prometheus metrics (`[metrics] listen`, off by default): its link to the
//! controller, the reports it sent, the jobs it finished and how long probing passbolt took.
//! One set per process ([`get`]); label values are job kinds and states only.

use std::sync::OnceLock;

use boltfleet_common::proto::{JobEvent, JobKind, JobState};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

pub struct AgentMetrics {
    registry: Registry,
    pub connected: Gauge,
    pub connects: Counter,
    pub reports: Counter,
    jobs: Family<Labels, Counter>,
    pub probe_seconds: Histogram,
}

/// The process's metrics (created on first use).
pub fn get() -> &'static AgentMetrics {
    static METRICS: OnceLock<AgentMetrics> = OnceLock::new();
    METRICS.get_or_init(AgentMetrics::new)
}

impl AgentMetrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let connected = Gauge::default();
        registry.register(
            "boltfleet_agent_connected",
            "1 while the stream to a controller is open",
            connected.clone(),
        );
        let connects = Counter::default();
        registry.register(
            "boltfleet_agent_connects",
            "Streams opened to a controller (reconnects included)",
            connects.clone(),
        );
        let reports = Counter::default();
        registry.register("boltfleet_agent_reports", "Reports sent", reports.clone());
        let jobs = Family::<Labels, Counter>::default();
        registry.register(
            "boltfleet_agent_jobs",
            "Jobs this agent finished, by kind and final state",
            jobs.clone(),
        );
        let probe_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "boltfleet_agent_probe_seconds",
            "How long passbolt's commands took when the agent probed the install",
            probe_seconds.clone(),
        );
        Self {
            registry,
            connected,
            connects,
            reports,
            jobs,
            probe_seconds,
        }
    }

    /// Counts `event` if it is a job's final one.
    pub fn job_event(&self, event: &JobEvent) {
        if !event.state().is_final() {
            return;
        }
        let kind = match event.kind() {
            JobKind::Update => "update",
            JobKind::Rollback => "rollback",
            JobKind::Backup => "backup",
            JobKind::Healthcheck => "healthcheck",
            JobKind::Unspecified => "unspecified",
        };
        let state = match event.state() {
            JobState::Succeeded => "succeeded",
            JobState::RolledBack => "rolled_back",
            JobState::RollbackFailed => "rollback_failed",
            JobState::Refused => "refused",
            _ => "failed",
        };
        self.jobs
            .get_or_create(&vec![("kind", kind), ("state", state)])
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text = "# EOF\n".into();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_job_events_are_counted_by_kind_and_state() {
        let m = AgentMetrics::new();
        let event = |state: JobState| JobEvent {
            kind: JobKind::Update as i32,
            state: state as i32,
            ..JobEvent::default()
        };
        m.job_event(&event(JobState::Running));
        m.job_event(&event(JobState::RolledBack));
        m.job_event(&event(JobState::RolledBack));
        let text = m.render();
        assert!(
            text.contains("boltfleet_agent_jobs_total{kind=\"update\",state=\"rolled_back\"} 2"),
            "{text}"
        );
        assert!(!text.contains("state=\"running\""), "{text}");
    }
}
