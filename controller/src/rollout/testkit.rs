//! Small fixture builders for the rollout tests.

use boltfleet_common::version::parse_release;
use jiff::Timestamp;

use super::plan::{FleetHost, JobStatus};
use super::spec::RolloutSpec;
use super::window::MaintenanceWindow;

/// An RFC 3339 instant.
pub fn at(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 instant")
}

/// `CRON DURATION ZONE`.
pub fn window(text: &str) -> MaintenanceWindow {
    text.parse().expect("a window")
}

/// A host of tenant `acme`, online and healthy, with no version reported yet.
pub fn host(id: &str) -> FleetHost {
    FleetHost {
        host_id: id.into(),
        tenant: "acme".into(),
        labels: Default::default(),
        version: None,
        online: true,
        healthy: true,
        last_seen: None,
        window: None,
        frozen: false,
        busy: false,
        config_changes: Vec::new(),
        job: None,
        rollback_job: None,
    }
}

/// The default spec for `target`.
pub fn spec(target: &str) -> RolloutSpec {
    RolloutSpec::new(parse_release(target).expect("a release"))
}

impl FleetHost {
    pub fn version(mut self, v: &str) -> Self {
        self.version = Some(parse_release(v).expect("a release"));
        self
    }

    pub fn tenant(mut self, t: &str) -> Self {
        self.tenant = t.into();
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn offline(mut self) -> Self {
        self.online = false;
        self
    }

    pub fn unhealthy(mut self) -> Self {
        self.healthy = false;
        self
    }

    pub fn frozen(mut self) -> Self {
        self.frozen = true;
        self
    }

    pub fn window(mut self, text: &str) -> Self {
        self.window = Some(window(text));
        self
    }

    pub fn job(mut self, status: JobStatus) -> Self {
        self.job = Some(status);
        self
    }
}
