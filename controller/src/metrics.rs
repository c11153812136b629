//! The controller's Prometheus metrics (`[metrics] listen`): what the App counts as it works
//! (jobs, steps, reports, refusals, store writes) and what a scrape reads from the state (hosts,
//! streams, rollouts). Every label value comes from a bounded set: job kinds and states, known
//! step names, rollout and host states, refusal reasons, operators' tenants, valid releases.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use boltfleet_common::proto::{JobEvent, JobKind, JobState};
use boltfleet_common::steps;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// At most this many distinct versions per scrape; the rest are counted as `other`.
const MAX_VERSIONS: usize = 64;

/// Why the controller refused something ([`Metrics::refused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An agent message over a field limit.
    Limit,
    /// An agent reporting faster than allowed.
    OverRate,
    /// A job event for another host's job, a finished one, or one that does not match.
    BadJobEvent,
    /// A certificate the controller does not accept (unknown, revoked, wrong service).
    Auth,
    /// Enrollment attempts over the per-address rate.
    Enrollment,
    /// Connections over the per-address limit.
    Connections,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Limit => "limit",
            Refusal::OverRate => "over_rate",
            Refusal::BadJobEvent => "bad_job_event",
            Refusal::Auth => "auth",
            Refusal::Enrollment => "enrollment",
            Refusal::Connections => "connections",
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// What a scrape reads from the state, counted by [`crate::app::App::fleet_counts`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FleetCounts {
    /// Hosts (not revoked) by (tenant, version; `unknown` before a valid report).
    pub hosts: BTreeMap<(String, String), i64>,
    pub online: i64,
    pub unhealthy: BTreeMap<String, i64>,
    /// Running a job, or left in maintenance by a failed rollback.
    pub in_maintenance: i64,
    pub streams: i64,
    /// Rollouts by phase (`planned`, `running`, `paused`, `completed`, `aborted`).
    pub rollouts: BTreeMap<&'static str, i64>,
    /// Hosts of active rollouts by their state in it (`pending`, `running`, ...).
    pub rollout_hosts: BTreeMap<&'static str, i64>,
}

/// Every metric of the controller, registered once.
pub struct Metrics {
    registry: Registry,
    jobs: Family<Labels, Counter>,
    job_duration: Family<Labels, Histogram>,
    step_duration: Family<Labels, Histogram>,
    report_ack: Histogram,
    refused: Family<Labels, Counter>,
    ticks: Counter,
    leader: Gauge,
    hosts: Family<Labels, Gauge>,
    online: Gauge,
    unhealthy: Family<Labels, Gauge>,
    in_maintenance: Gauge,
    streams: Gauge,
    rollouts: Family<Labels, Gauge>,
    rollout_hosts: Family<Labels, Gauge>,
    /// One scrape at a time refreshes the gauges and encodes.
    scrape: Mutex<()>,
}

impl Metrics {
    /// The metrics, with the state's store-write histogram among them.
    pub fn new(store_write: Histogram) -> Self {
        let mut registry = Registry::default();
        let jobs = Family::<Labels, Counter>::default();
        registry.register(
            "boltfleet_jobs",
            "Jobs finished, by kind and final state",
            jobs.clone(),
        );
        let job_duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 14))
        });
        registry.register(
            "boltfleet_job_duration_seconds",
            "How long finished jobs ran on their host, by kind",
            job_duration.clone(),
        );
        let step_duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.1, 2.0, 16))
        });
        registry.register(
            "boltfleet_job_step_duration_seconds",
            "How long the steps of finished jobs ran, by step",
            step_duration.clone(),
        );
        let report_ack = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "boltfleet_report_ack_seconds",
            "From an agent's report arriving to its acknowledgement being queued",
            report_ack.clone(),
        );
        registry.register(
            "boltfleet_store_write_seconds",
            "Writes to the store (records, batches, flushes)",
            store_write.clone(),
        );
        let refused = Family::<Labels, Counter>::default();
        registry.register(
            "boltfleet_refused",
            "What the controller refused, by reason (agent limits, rates, bad job events, certificates, enrollment and connection limits)",
            refused.clone(),
        );
        let ticks = Counter::default();
        registry.register(
            "boltfleet_scheduler_ticks",
            "Scheduler ticks",
            ticks.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "boltfleet_scheduler_leader",
            "1 while this controller runs the scheduler",
            leader.clone(),
        );
        let hosts = Family::<Labels, Gauge>::default();
        registry.register(
            "boltfleet_hosts",
            "Enrolled hosts (not revoked) by tenant and installed version",
            hosts.clone(),
        );
        let online = Gauge::default();
        registry.register(
            "boltfleet_hosts_online",
            "Hosts with an agent stream open",
            online.clone(),
        );
        let unhealthy = Family::<Labels, Gauge>::default();
        registry.register(
            "boltfleet_hosts_unhealthy",
            "Hosts whose last report was not healthy, by tenant",
            unhealthy.clone(),
        );
        let in_maintenance = Gauge::default();
        registry.register(
            "boltfleet_hosts_in_maintenance",
            "Hosts running a job, or left in maintenance by a failed rollback",
            in_maintenance.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "boltfleet_agent_streams",
            "Agent streams open on this controller",
            streams.clone(),
        );
        let rollouts = Family::<Labels, Gauge>::default();
        registry.register("boltfleet_rollouts", "Rollouts by state", rollouts.clone());
        let rollout_hosts = Family::<Labels, Gauge>::default();
        registry.register(
            "boltfleet_rollout_hosts",
            "Hosts of active rollouts by their state in the rollout",
            rollout_hosts.clone(),
        );
        Self {
            registry,
            jobs,
            job_duration,
            step_duration,
            report_ack,
            refused,
            ticks,
            leader,
            hosts,
            online,
            unhealthy,
            in_maintenance,
            streams,
            rollouts,
            rollout_hosts,
            scrape: Mutex::new(()),
        }
    }

    /// A job's final event: counted by kind and state, its duration and its steps' observed.
    pub fn job_finished(&self, event: &JobEvent) {
        let kind = kind_label(event.kind());
        self.jobs
            .get_or_create(&vec![
                ("kind", kind.into()),
                ("state", state_label(event.state()).into()),
            ])
            .inc();
        if event.finished_at >= event.started_at && event.started_at > 0 {
            self.job_duration
                .get_or_create(&vec![("kind", kind.into())])
                .observe((event.finished_at - event.started_at) as f64);
        }
        for step in &event.steps {
            if step.started_at > 0 && step.finished_at >= step.started_at {
                let name = steps::ALL
                    .iter()
                    .find(|s| **s == step.name)
                    .copied()
                    .unwrap_or("other");
                self.step_duration
                    .get_or_create(&vec![("step", name.into())])
                    .observe((step.finished_at - step.started_at) as f64);
            }
        }
    }

    pub fn report_acked(&self, seconds: f64) {
        self.report_ack.observe(seconds);
    }

    pub fn refused(&self, why: Refusal) {
        self.refused_counter(why).inc();
    }

    /// The counter of `why`, for code that counts without the App (the listener).
    pub fn refused_counter(&self, why: Refusal) -> Counter {
        self.refused
            .get_or_create(&vec![("reason", why.label().into())])
            .clone()
    }

    pub fn ticked(&self) {
        self.ticks.inc();
    }

    /// Scheduler ticks so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.get()
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The exposition text, gauges set from `counts` first.
    pub fn render(&self, counts: &FleetCounts) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.hosts.clear();
        let mut versions: HashMap<&str, ()> = HashMap::new();
        for ((tenant, version), n) in &counts.hosts {
            let known = versions.len() < MAX_VERSIONS || versions.contains_key(version.as_str());
            let version = if known {
                versions.insert(version.as_str(), ());
                version.clone()
            } else {
                "other".into()
            };
            self.hosts
                .get_or_create(&vec![("tenant", tenant.clone()), ("version", version)])
                .inc_by(*n);
        }
        self.online.set(counts.online);
        self.unhealthy.clear();
        for (tenant, n) in &counts.unhealthy {
            self.unhealthy
                .get_or_create(&vec![("tenant", tenant.clone())])
                .set(*n);
        }
        self.in_maintenance.set(counts.in_maintenance);
        self.streams.set(counts.streams);
        self.rollouts.clear();
        for (state, n) in &counts.rollouts {
            self.rollouts
                .get_or_create(&vec![("state", (*state).into())])
                .set(*n);
        }
        self.rollout_hosts.clear();
        for (state, n) in &counts.rollout_hosts {
            self.rollout_hosts
                .get_or_create(&vec![("state", (*state).into())])
                .set(*n);
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text = "# EOF\n".into();
        }
        text
    }
}

fn kind_label(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Update => "update",
        JobKind::Rollback => "rollback",
        JobKind::Backup => "backup",
        JobKind::Healthcheck => "healthcheck",
        JobKind::Unspecified => "unspecified",
    }
}

fn state_label(state: JobState) -> &'static str {
    match state {
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::RolledBack => "rolled_back",
        JobState::RollbackFailed => "rollback_failed",
        JobState::Refused => "refused",
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Unspecified => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use boltfleet_common::proto::StepRecord;

    fn names(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("boltfleet_") {
            let start = i + at;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
                end += 1;
            }
            names.insert(text[start..end].to_string());
            i = end;
        }
        names
    }

    #[test]
    fn the_grafana_dashboard_uses_only_names_the_controller_exports() {
        let metrics = Metrics::new(Histogram::new(exponential_buckets(0.001, 2.0, 4)));
        let event = JobEvent {
            kind: JobKind::Update as i32,
            state: JobState::Succeeded as i32,
            started_at: 10,
            finished_at: 20,
            steps: vec![StepRecord {
                name: "migrate".into(),
                started_at: 12,
                finished_at: 15,
                ..StepRecord::default()
            }],
            ..JobEvent::default()
        };
        metrics.job_finished(&event);
        metrics.refused(Refusal::Auth);
        metrics.report_acked(0.001);
        let mut counts = FleetCounts::default();
        counts.hosts.insert(("acme".into(), "1.6.10".into()), 2);
        counts.unhealthy.insert("acme".into(), 1);
        counts.rollouts.insert("running", 1);
        counts.rollout_hosts.insert("running", 1);
        let exported = names(&metrics.render(&counts));
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/grafana/boltfleet.json");
        let dashboard = std::fs::read_to_string(path).unwrap();
        // The agent's own metrics are exported by the agent.
        let used: BTreeSet<String> = names(&dashboard)
            .into_iter()
            .filter(|n| !n.starts_with("boltfleet_agent_") || n == "boltfleet_agent_streams")
            .collect();
        assert!(!used.is_empty());
        let missing: Vec<&String> = used.difference(&exported).collect();
        assert!(missing.is_empty(), "the dashboard names {missing:?}");
    }

    #[test]
    fn an_unknown_step_name_is_counted_as_other() {
        let metrics = Metrics::new(Histogram::new(exponential_buckets(0.001, 2.0, 4)));
        let event = JobEvent {
            kind: JobKind::Update as i32,
            state: JobState::Failed as i32,
            steps: vec![StepRecord {
                name: "<script>host-web1".into(),
                started_at: 1,
                finished_at: 2,
                ..StepRecord::default()
            }],
            ..JobEvent::default()
        };
        metrics.job_finished(&event);
        let text = metrics.render(&FleetCounts::default());
        assert!(text.contains("step=\"other\""), "{text}");
        assert!(!text.contains("script"), "{text}");
    }
}
