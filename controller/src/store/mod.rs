//! The controller's durable state: typed trees over the engine seam ([`crate::state::engine`]),
//! one encoding (JSON), the engine hidden (sled by default, [`Store::open`]).

mod jobs;
mod operators;
mod records;
mod rollouts;
mod typed;

use std::path::Path;
use std::sync::Arc;

pub use boltfleet_common::proto::JobRecord;
pub use jobs::Jobs;
pub use operators::{OperatorCert, OperatorRecord, TenantPolicy};
pub use records::{AuditEntry, HostRecord, LatestRecord, Observed, TokenRecord};
/// A started rollout record for tests (the store's and the state suite's).
#[cfg(test)]
pub(crate) use rollouts::tests::record as sample_rollout;
pub use rollouts::{freeze_key, Approval, FreezeRecord, RolloutRecord, Rollouts, WindowKey};
pub use typed::{StoreError, Typed};

use crate::state::engine::{Batch, Engine, Tree};
use crate::state::sled_engine::SledEngine;

const HOSTS: &str = "hosts";
const OBSERVED: &str = "observed";
const TOKENS: &str = "tokens";
const AUDIT: &str = "audit";
const JOBS: &str = "jobs";
const JOBS_BY_HOST: &str = "jobs_by_host";
const ROLLOUTS: &str = "rollouts";
const WINDOWS: &str = "windows";
const FREEZE: &str = "freeze";
const OPERATORS: &str = "operators";
const POLICIES: &str = "policies";
const LATEST: &str = "latest";

/// Everything the controller keeps across restarts. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
    /// What operators decided about each host (tenant, labels, certificates, revocation).
    /// A running controller keeps them in memory: write through `App::put_host`.
    pub hosts: Typed<HostRecord>,
    /// What each host's agent last reported, and when it was last seen. A running controller
    /// keeps them in memory and writes them here in batches ([`crate::hot::observed`]).
    pub observed: Typed<Observed>,
    /// Join tokens by the hex SHA-256 of the token (the token itself is never stored).
    pub tokens: Typed<TokenRecord>,
    /// Jobs by id: what was asked (desired) and the agent's latest report of it (observed);
    /// indexed by host. A running controller indexes them in memory too: write through the
    /// App's job writer ([`crate::hot::JobCache::write`]).
    pub jobs: Jobs,
    /// Rollouts by id: spec, plan snapshot and state (desired; the scheduler advances it).
    pub rollouts: Rollouts,
    /// Maintenance windows by [`WindowKey`] (`tenant/NAME`, `host/ID`): through
    /// [`Store::windows_all`], [`Store::put_window`] and [`Store::put_windows`] only.
    windows: Typed<crate::rollout::MaintenanceWindow>,
    /// Freezes in force by [`freeze_key`] (`global`, `tenant/NAME`): through
    /// [`Store::freeze_all`] and [`Store::put_freeze`] only.
    freeze: Typed<FreezeRecord>,
    /// Operators by name, with the certificates known to carry the name ([`OperatorRecord`]).
    pub operators: Typed<OperatorRecord>,
    /// Tenant policies by tenant (two-person rule).
    pub policies: Typed<TenantPolicy>,
    /// Operators' `release latest` by [`freeze_key`]-style keys (`global`, `tenant/NAME`).
    pub latest: Typed<LatestRecord>,
    audit: Arc<dyn Tree>,
}

impl Store {
    /// Opens (or creates) the store in `path`, on sled.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::on(Arc::new(SledEngine::open(path)?))
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
            audit: db.tree(AUDIT)?,
            engine,
        })
    }

    /// Appends to the audit log (ordered, never rewritten) and makes it durable.
    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit_all(std::slice::from_ref(entry))
    }

    /// Appends several entries in order, made durable together (in as many batches as the
    /// engine needs: each entry stands alone).
    pub fn audit_all(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for entry in entries {
            let id = self.engine.generate_id()?;
            batch.put(id.to_be_bytes(), serde_json::to_vec(entry)?);
        }
        for part in batch.split(self.audit.batch_limit()) {
            self.audit.apply(part)?;
        }
        self.audit.flush()?;
        Ok(())
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit
            .scan_prefix(b"")
            .map(|kv| Ok(serde_json::from_slice(&kv?.1)?))
            .collect()
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
pub(crate) fn reopen(path: &Path) -> Store {
    let engine = crate::state::sled_engine::tests::reopen(path);
    Store::on(Arc::new(engine)).expect("store reopened")
}

#[cfg(test)]
mod tests {
    use super::*;

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
                .audit(&AuditEntry::new(
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
