//! The typed trees of the state, over the engine seam ([`super::engine`]): one encoding
//! (JSON), the engine never named. Only [`super::State`] and its caches reach them.

use std::sync::Arc;

use super::engine::{Engine, Tree};
use super::jobs::Jobs;
use super::rollouts::{FreezeRecord, Rollouts};
use super::typed::{StoreError, Typed};
use super::{HostRecord, LatestRecord, Observed, OperatorRecord, TenantPolicy, TokenRecord};

pub(super) const HOSTS: &str = "hosts";
pub(super) const OBSERVED: &str = "observed";
const TOKENS: &str = "tokens";
const AUDIT: &str = "audit";
pub(super) const JOBS: &str = "jobs";
const JOBS_BY_HOST: &str = "jobs_by_host";
pub(super) const ROLLOUTS: &str = "rollouts";
pub(super) const WINDOWS: &str = "windows";
const FREEZE: &str = "freeze";
const OPERATORS: &str = "operators";
const POLICIES: &str = "policies";
const LATEST: &str = "latest";
const WEBHOOKS: &str = "webhooks";
const WEBHOOK_OUTBOX: &str = "webhook_outbox";

/// Everything the controller keeps across restarts. Cheap to clone.
#[derive(Clone)]
pub(super) struct Store {
    pub(super) engine: Arc<dyn Engine>,
    /// What operators decided about each host (tenant, labels, certificates, revocation).
    /// A running controller keeps them in memory: write through [`super::State::write_hosts`].
    pub(super) hosts: Typed<HostRecord>,
    /// What each host's agent last reported, and when it was last seen. A running controller
    /// keeps them in memory and writes them here in batches ([`super::observed`]).
    pub(super) observed: Typed<Observed>,
    /// Join tokens by the hex SHA-256 of the token (the token itself is never stored).
    pub(super) tokens: Typed<TokenRecord>,
    /// Jobs by id: what was asked (desired) and the agent's latest report of it (observed);
    /// indexed by host. A running controller indexes them in memory too: write through the
    /// App's job writer ([`super::JobCache::write`]).
    pub(super) jobs: Jobs,
    /// Rollouts by id: spec, plan snapshot and state (desired; the scheduler advances it).
    pub(super) rollouts: Rollouts,
    /// Maintenance windows by [`super::WindowKey`] (`tenant/NAME`, `host/ID`): through
    /// [`Store::windows_all`], [`Store::put_window`] and [`Store::put_windows`] only.
    pub(super) windows: Typed<crate::rollout::MaintenanceWindow>,
    /// Freezes in force by [`super::freeze_key`] (`global`, `tenant/NAME`): through
    /// [`Store::freeze_all`] and [`Store::put_freeze`] only.
    pub(super) freeze: Typed<FreezeRecord>,
    /// Operators by name, with the certificates known to carry the name ([`super::OperatorRecord`]).
    pub(super) operators: Typed<OperatorRecord>,
    /// Tenant policies by tenant (two-person rule).
    pub(super) policies: Typed<TenantPolicy>,
    /// Operators' `release latest` by [`super::freeze_key`]-style keys (`global`, `tenant/NAME`).
    pub(super) latest: Typed<LatestRecord>,
    /// Webhooks by id, with the secret each signs with ([`super::WebhookRecord`]).
    pub(super) webhooks: Typed<super::WebhookRecord>,
    /// Webhook deliveries, pending and done ([`super::outbox`]).
    pub(super) outbox: Arc<dyn Tree>,
    pub(super) audit: Arc<dyn Tree>,
}

impl Store {
    /// Opens (or creates) the store in `path`, on sled.
    #[cfg(test)]
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        Self::on(Arc::new(super::sled_engine::SledEngine::open(path)?))
    }

    /// Opens the store on `engine`.
    pub fn on(engine: Arc<dyn Engine>) -> Result<Self, StoreError> {
        let db = engine.as_ref();
        Ok(Self {
            hosts: Typed::open(db, HOSTS)?,
            observed: Typed::open(db, OBSERVED)?,
            tokens: Typed::open(db, TOKENS)?,
            jobs: Jobs::open(db, JOBS, JOBS_BY_HOST)?,
            rollouts: Rollouts::open(db, ROLLOUTS)?,
            windows: Typed::open(db, WINDOWS)?,
            freeze: Typed::open(db, FREEZE)?,
            operators: Typed::open(db, OPERATORS)?,
            policies: Typed::open(db, POLICIES)?,
            latest: Typed::open(db, LATEST)?,
            webhooks: Typed::open(db, WEBHOOKS)?,
            outbox: db.tree(WEBHOOK_OUTBOX)?,
            audit: db.tree(AUDIT)?,
            engine,
        })
    }

    /// Waits until everything written so far is on disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.engine.flush()?;
        Ok(())
    }
}

/// Opens the store in `path` again in the same process, as a restarted controller would
/// (waiting for sled to let go of its file lock).
#[cfg(test)]
pub(super) fn reopen(path: &std::path::Path) -> Store {
    let engine = super::sled_engine::tests::reopen(path);
    Store::on(Arc::new(engine)).expect("store reopened")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AuditRecord;

    fn host(id: &str) -> HostRecord {
        HostRecord {
            host_id: id.into(),
            tenant: "acme".into(),
            ..HostRecord::default()
        }
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.hosts.put("web1", &host("web1")).unwrap();
            store
                .audit(&AuditRecord::new(
                    1,
                    "operator alice",
                    "token.create",
                    "web1",
                    "",
                ))
                .unwrap();
            store.flush().unwrap();
        }
        let store = reopen(dir.path());
        assert_eq!(store.hosts.get("web1").unwrap().unwrap().tenant, "acme");
        assert_eq!(store.hosts.list().unwrap().len(), 1);
        assert_eq!(store.audit_log().unwrap()[0].action, "token.create");
    }

    #[test]
    fn compare_and_swap_refuses_a_stale_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = host("web1");
        store.hosts.put("web1", &old).unwrap();
        let mut new = old.clone();
        new.revoked = true;
        assert!(store
            .hosts
            .compare_and_swap("web1", Some(&old), &new)
            .unwrap());
        assert!(!store
            .hosts
            .compare_and_swap("web1", Some(&old), &new)
            .unwrap());
        assert!(store.hosts.get("web1").unwrap().unwrap().revoked);
    }
}
