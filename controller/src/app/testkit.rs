//! A test fleet: a real [`App`] on a temporary sled store with enrolled hosts, agents played
//! by calling the App as the agent service would (hello, reports, job events), and a fake
//! clock passed to [`crate::scheduler::tick`] explicitly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::new_csr;
use boltfleet_common::proto::{Health, Inventory, JobEvent, JobKind, JobRecord, JobState};
use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::app::{App, NewToken};
use crate::registry::Registration;
use crate::rollout::spec::{parse_max_failures, parse_waves};
use crate::rollout::{RolloutSpec, RolloutState};
use crate::scheduler::tick;

pub const T0: &str = "2025-01-15T12:00:00Z";
pub const FROM: &str = "1.3.0";
pub const TARGET: &str = "1.3.2";

/// `minutes` after T0.
pub fn t(minutes: u64) -> Timestamp {
    T0.parse::<Timestamp>()
        .unwrap()
        .saturating_add(Duration::from_secs(minutes * 60))
        .unwrap()
}

/// A spec to TARGET over all hosts with these waves, parallelism and failure budget, a 10m
/// soak and otherwise the defaults.
pub fn spec(waves: &str, max_parallel: u32, max_failures: &str) -> RolloutSpec {
    let mut spec = RolloutSpec::new(TARGET.parse().unwrap());
    spec.waves = parse_waves(waves).unwrap();
    spec.max_parallel = max_parallel;
    spec.max_failures = parse_max_failures(max_failures).unwrap();
    spec.min_healthy_time = Duration::from_secs(600);
    spec
}

type Conn = (
    Registration,
    mpsc::Receiver<Result<boltfleet_common::proto::ControllerMessage, tonic::Status>>,
);

pub struct Fleet {
    pub app: Arc<App>,
    dir: tempfile::TempDir,
    online: BTreeMap<String, Conn>,
}

impl Fleet {
    /// Hosts `(id, tenant)`, enrolled, online, healthy at FROM.
    pub fn new(hosts: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::app::tests::app(dir.path());
        let mut fleet = Fleet {
            app,
            dir,
            online: BTreeMap::new(),
        };
        for (id, tenant) in hosts {
            fleet.enroll(id, tenant);
            fleet.report(id, FROM, true);
            fleet.connect(id);
        }
        fleet
    }

    fn enroll(&self, id: &str, tenant: &str) {
        let req = NewToken {
            host_id: id.into(),
            tenant: tenant.into(),
            labels: BTreeMap::new(),
            ttl: Duration::from_secs(60),
        };
        let now = crate::app::ts_now();
        let (token, _) = self.app.create_token("alice", req, now).unwrap();
        let csr = new_csr(&Identity::Agent(HostId::new(id).unwrap()))
            .unwrap()
            .0;
        self.app.enroll(&token, &csr, now).unwrap();
    }

    /// The agent connects (and says hello, which hands it its queued jobs).
    pub fn connect(&mut self, id: &str) {
        let host = HostId::new(id).unwrap();
        let (tx, rx) = mpsc::channel(64);
        let registration = self.app.registry.register(&host, tx);
        self.online.insert(id.into(), (registration, rx));
        self.app
            .record_hello(&host, "0.1.0", None, crate::app::ts_now())
            .unwrap();
    }

    pub fn disconnect(&mut self, id: &str) {
        let (registration, _) = self.online.remove(id).unwrap();
        let host = HostId::new(id).unwrap();
        self.app.registry.unregister(&host, registration.generation);
    }

    pub fn report(&self, id: &str, version: &str, healthy: bool) {
        let inventory = Inventory {
            passbolt_version: version.into(),
            health: Some(Health {
                healthy,
                ..Health::default()
            }),
            ..Inventory::default()
        };
        let host = HostId::new(id).unwrap();
        self.app
            .record_report(&host, inventory, crate::app::ts_now())
            .unwrap();
    }

    /// A controller killed and started again on the same store; the agents reconnect.
    pub fn restart(self) -> Self {
        let Fleet { app, dir, online } = self;
        drop(online);
        drop(app);
        let mut fleet = Fleet {
            app: reopen(dir.path()),
            dir,
            online: BTreeMap::new(),
        };
        let ids: Vec<String> = fleet.app.state().hosts().keys().cloned().collect();
        for id in ids {
            fleet.connect(&id);
        }
        fleet
    }

    pub fn tick(&self, now: Timestamp) -> Duration {
        tick(&self.app, now).unwrap()
    }

    pub fn state(&self, id: &str) -> RolloutState {
        self.app.rollout(id).unwrap().state
    }

    /// The rollout's jobs, oldest first.
    pub fn jobs(&self, id: &str) -> Vec<JobRecord> {
        let mut jobs: Vec<JobRecord> = self
            .app
            .state()
            .jobs()
            .list()
            .unwrap()
            .into_iter()
            .map(|(_, j)| j)
            .filter(|j| j.rollout_id == id)
            .collect();
        jobs.sort_by_key(|j| (j.created_at, j.job_id.clone()));
        jobs
    }

    pub fn active_jobs(&self, id: &str) -> Vec<JobRecord> {
        let mut active = self.jobs(id);
        active.retain(|j| !j.state().is_final());
        active
    }

    /// Hosts given a job of `kind` by the rollout (each once: asserted).
    pub fn hosts_with(&self, id: &str, kind: JobKind) -> BTreeSet<String> {
        let mut hosts = BTreeSet::new();
        for job in self.jobs(id).iter().filter(|j| kind_of(j) == kind) {
            assert!(
                hosts.insert(job.host_id.clone()),
                "{} got two {kind:?} jobs",
                job.host_id
            );
        }
        hosts
    }

    /// The agent ends `job` in `state`; a success changes the reported version.
    pub fn finish(&self, job: &JobRecord, state: JobState, step: &str) {
        let host = HostId::new(&job.host_id).unwrap();
        let event = JobEvent {
            job_id: job.job_id.clone(),
            kind: kind_of(job) as i32,
            target_version: job
                .request
                .as_ref()
                .map(|r| r.target_version.clone())
                .unwrap_or_default(),
            state: state as i32,
            failed_step: step.into(),
            ..JobEvent::default()
        };
        self.app
            .record_job_event(&host, event, crate::app::ts_now())
            .unwrap();
        let version = match kind_of(job) {
            JobKind::Update => TARGET,
            JobKind::Rollback => FROM,
            _ => return,
        };
        if state == JobState::Succeeded {
            self.report(&job.host_id, version, true);
        }
    }

    /// Every active job of the rollout succeeds.
    pub fn succeed_all(&self, id: &str) {
        for job in self.active_jobs(id) {
            self.finish(&job, JobState::Succeeded, "");
        }
    }
}

/// A new App on the store in `dir`, as a restarted controller.
fn reopen(dir: &std::path::Path) -> Arc<App> {
    let keys = boltfleet_common::pki::CertificateAuthority::generate().unwrap();
    let ca =
        boltfleet_common::pki::CertificateAuthority::load(&keys.cert_pem, &keys.key_pem).unwrap();
    App::open(crate::state::reopen(dir), ca, Duration::from_secs(3600))
}

pub fn kind_of(job: &JobRecord) -> JobKind {
    job.request
        .as_ref()
        .map_or(JobKind::Unspecified, |r| r.kind())
}
