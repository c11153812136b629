//! The controller's operations, one file per kind, shared by the gRPC services and the
//! scheduler: [`App`] is the only way to change what the controller knows.
//!
//! `enroll` (join tokens, enrollment, renewal, revocation, bulk) · `agents` (hello, reports,
//! job events, dispatch) · `jobs` (single-host jobs) · `rollouts` (and `approval`) · `windows`
//! (windows and freezes) · `fleet` (the planner's snapshot and the one health rule) · `reports`
//! (fleet reports and pages) · `operators` · `scope` (what a caller may see and steer) ·
//! `webhooks` (admins' webhooks), `webhook_events` (events where they happen),
//! `webhook_outbox` (the sender's side of the outbox) and `vanished` (hosts whose controller
//! died, until the leader says they are offline).
//!
//! Every change is written (and flushed) before anything acts on it, and audited with the
//! operator's name.

mod agents;
mod approval;
mod counts;
mod enroll;
mod enroll_bulk;
mod fleet;
mod history;
pub mod jobs;
mod operators;
pub mod peers;
mod reports;
mod rollouts;
mod scope;
pub mod vanished;
pub(crate) mod webhook_events;
pub mod webhook_outbox;
pub mod webhooks;
mod windows;

#[cfg(test)]
mod rollouts_tests;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod webhooks_tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use boltfleet_common::pki::CertificateAuthority;
use jiff::Timestamp;

pub(crate) use agents::Detail;
pub use enroll::NewToken;
pub use enroll_bulk::HostCsr;
pub use fleet::{job_status, FleetSnapshot};
pub use history::{JobPage, JOBS_PAGE, JOBS_PAGE_MAX};
pub use jobs::{job_event_fits, NewJob};
pub use reports::{FleetPage, PAGE_BYTES, PAGE_SIZE, PAGE_SIZE_MAX};
pub use scope::rollout_tenants;
pub use webhooks::{NewWebhook, WebhookView};
pub use windows::host_window;

use crate::door::Door;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::state::{AuditRecord, State, StoreError};

/// Unix seconds now (tests: the time records carry).
#[cfg(test)]
pub(crate) fn now() -> i64 {
    boltfleet_common::clock::unix_now()
}

/// `unix` seconds as the App's clock type (tests).
#[cfg(test)]
pub(crate) fn ts(unix: i64) -> Timestamp {
    Timestamp::from_second(unix).expect("a time in range")
}

/// Now, as the App's clock type (tests).
#[cfg(test)]
pub(crate) fn ts_now() -> Timestamp {
    Timestamp::now()
}

/// The controller's state and what acts on it, shared by every request handler.
pub struct App {
    state: State,
    ca: CertificateAuthority,
    registry: Registry,
    agent_cert_validity: Duration,
    /// Poked when something the scheduler looks at changed (reports, job events, connections,
    /// operator actions), so it ticks before its next timer.
    wake: tokio::sync::Notify,
    /// Serializes changes to rollout records: the scheduler's ticks and operators' actions.
    rollout_lock: Mutex<()>,
    /// Per-host rate, refusal counts and stream replacements of the agent door.
    door: Door,
    metrics: Metrics,
    /// The webhook sender's wake-up and the per-host pace of host events.
    webhooks: webhook_events::Signals,
    /// Hosts whose presence went with another controller's lease.
    vanished: vanished::Vanished,
    /// The fleet's derived latest release, for the next pages of a listing.
    latest_memo: Mutex<Option<reports::LatestMemo>>,
    /// This controller among the others on its store (`cluster status`), once serving.
    peers: std::sync::OnceLock<peers::Peers>,
}

impl App {
    /// The controller on `state`.
    pub fn open(
        state: State,
        ca: CertificateAuthority,
        agent_cert_validity: Duration,
    ) -> Arc<Self> {
        let metrics = Metrics::new(state.write_seconds());
        Arc::new(Self {
            metrics,
            state,
            ca,
            registry: Registry::default(),
            agent_cert_validity,
            wake: tokio::sync::Notify::new(),
            rollout_lock: Mutex::new(()),
            door: Door::default(),
            webhooks: webhook_events::Signals::default(),
            vanished: vanished::Vanished::default(),
            peers: std::sync::OnceLock::new(),
            latest_memo: Mutex::new(None),
        })
    }

    /// What the controller knows (typed reads; changes go through the App's operations).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The connected agents' streams.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The agent door's per-host accounting.
    pub fn door(&self) -> &Door {
        &self.door
    }

    /// What the controller counts, for `[metrics] listen`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The CA certificate (PEM) agents and operators pin.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Writes what is still batched in memory and flushes (at shutdown).
    pub fn persist(&self) -> Result<(), StoreError> {
        self.state.persist()
    }

    /// Asks the scheduler to tick soon (a permit is kept if it is busy).
    pub fn wake_scheduler(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`App::wake_scheduler`] was called since the last wait.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(crate) fn lock_rollouts(&self) -> MutexGuard<'_, ()> {
        self.rollout_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn audit_entry(
        &self,
        now: Timestamp,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), Error> {
        Ok(self.state.audit(&AuditRecord::new(
            now.as_second(),
            actor,
            action,
            target,
            detail,
        ))?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use boltfleet_common::identity::{HostId, Identity};

    use super::*;
    use boltfleet_common::pki::new_csr;
    use boltfleet_common::proto::Inventory;

    pub(crate) fn app(dir: &std::path::Path) -> Arc<App> {
        let keys = CertificateAuthority::generate().unwrap();
        let ca = CertificateAuthority::load(&keys.cert_pem, &keys.key_pem).unwrap();
        App::open(State::open(dir).unwrap(), ca, Duration::from_secs(3600))
    }

    /// An app with `host` enrolled and reporting `version`.
    pub(crate) fn app_with_host(dir: &std::path::Path, host: &str, version: &str) -> Arc<App> {
        let app = app(dir);
        let t = token(&app, host, 60, now());
        app.enroll(&t, &csr(host), crate::app::ts(now())).unwrap();
        let inventory = Inventory {
            passbolt_version: version.into(),
            ..Inventory::default()
        };
        app.record_report(&HostId::new(host).unwrap(), inventory, crate::app::ts_now())
            .unwrap();
        app
    }

    pub(crate) fn token(app: &App, host: &str, ttl: u64, now: i64) -> String {
        let req = NewToken {
            host_id: host.into(),
            tenant: "acme".into(),
            labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            ttl: Duration::from_secs(ttl),
        };
        app.create_token("alice", req, ts(now)).unwrap().0
    }

    pub(crate) fn csr(host: &str) -> String {
        new_csr(&Identity::Agent(HostId::new(host).unwrap()))
            .unwrap()
            .0
    }
}
