//! The controller's state: every byte it keeps, behind typed methods of [`State`] only.
//!
//! [`State::open`] loads what request handlers and the scheduler read all the time into memory
//! (host records, each host's latest observation, the jobs' index, the active rollouts) and
//! keeps it in step with the store itself: host records, jobs and rollouts are written through
//! (store first, under the lock that guards the memory copy), agents' observations in a batch
//! every [`WRITE_EVERY`]. Nothing outside this module sees a tree.
//!
//! On a store shared with other controllers (etcd), what they write reaches these copies
//! through the engine's feed ([`State::apply_change`], `changes`).
//!
//! Below [`State`]: the typed trees ([`store`]), over the engine seam ([`engine`]) with sled as
//! its embedded engine ([`sled_engine`]), and the suite every engine must pass (`suite`, tests).
//!
//! Engines: sled, the embedded default ([`sled_engine`]), and etcd, the replicated one for several
//! controllers ([`etcd_engine`]); the `[store]` config picks one ([`open`]); `migrate` copies a
//! sled store into etcd; `etcd_member` starts real etcd members for tests (`testkit` feature).

mod audit;
mod changes;
pub mod engine;
pub mod etcd_engine;
#[cfg(any(test, feature = "testkit"))]
pub mod etcd_member;
pub mod fence;
pub mod health;
mod held;
mod hosts;
mod job_index;
mod jobs;
mod metered;
pub mod migrate;
mod observed;
pub mod open;
mod operators;
mod outbox;
mod records;
mod rollouts;
pub mod sled_engine;
mod store;
#[cfg(test)]
pub(crate) mod suite;
mod typed;
mod webhooks;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLockReadGuard};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tracing::info;

pub use boltfleet_common::proto::JobRecord;
pub use changes::Applied;
pub use hosts::HostWriter;
pub use job_index::{
    ActiveJob, ConfigJump, JobCache, JobIndex, JobWriter, RolloutJob, RolloutJobs,
};
pub use observed::{BatchWriter, Observations, Seen, SEEN_WRITE_EVERY, WRITE_EVERY};
pub use operators::{OperatorCert, OperatorRecord, TenantPolicy};
pub use outbox::{Delivery, DeliveryKey, DeliveryState};
pub use records::{AuditRecord, HostRecord, LatestRecord, Observed, TokenRecord};
pub use rollouts::{freeze_key, Approval, FreezeRecord, RolloutRecord, WindowKey};
pub use typed::StoreError;
pub use webhooks::WebhookRecord;

use crate::rollout::{Freeze, MaintenanceWindow, Windows};
use engine::Engine;
use hosts::HostCache;
use metered::Metered;
use sled_engine::SledEngine;
use store::Store;

/// Everything the controller knows, durable in its engine and partly held in memory.
pub struct State {
    store: Store,
    /// Every store write's duration (`boltfleet_store_write_seconds`).
    writes: Histogram,
    hosts: HostCache,
    observations: Observations,
    jobs: JobCache,
    /// A remote engine's reachability ([`health`]); `None` on sled.
    health: Option<Arc<health::Health>>,
    /// On a remote engine, each operator record as last read or written here
    /// ([`State::operator`] answers from it while the engine is unreachable).
    operators_seen: Mutex<BTreeMap<String, Option<OperatorRecord>>>,
    /// On a remote engine, what was last read of the records not kept in memory.
    held: held::LastKnown,
    /// The maintenance windows decoded (each cron and zone parsed), until one is written here
    /// or by another controller: every page of the fleet listing reads them.
    windows: Mutex<Option<Windows>>,
}

impl State {
    /// Opens (or creates) the state in `path`, on sled.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::on(Arc::new(SledEngine::open(path)?))
    }

    /// Opens the state on `engine` and loads what is kept in memory (indexing the jobs of a
    /// store written before the job index existed). A record that cannot be decoded is logged
    /// and skipped; only an unreadable store fails.
    pub fn on(engine: Arc<dyn Engine>) -> Result<Self, StoreError> {
        let writes = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let engine_name = engine.name();
        let health = engine.health();
        let store = Store::on(Arc::new(Metered::new(engine, writes.clone())))?;
        let hosts = HostCache::load(store.hosts.clone())?;
        let observations = Observations::load(store.observed.clone())?;
        if engine_name == "etcd" {
            observations.write_seen_every(observed::SHARED_SEEN_WRITE_EVERY);
        }
        let jobs = JobCache::load(store.jobs.clone())?;
        info!(hosts = hosts.read().len(), "controller state loaded");
        Ok(Self {
            store,
            writes,
            hosts,
            observations,
            jobs,
            health,
            operators_seen: Mutex::new(BTreeMap::new()),
            held: held::LastKnown::default(),
            windows: Mutex::new(None),
        })
    }

    /// Since when the store's engine has not been answering, if it is not now (etcd
    /// unreachable): what this controller serves from memory may be stale since then, and
    /// writes fail.
    pub fn unreachable_since(&self) -> Option<jiff::Timestamp> {
        self.health.as_ref()?.unreachable_since()
    }

    /// The engine's name, when it is a remote one that can be unreachable.
    pub fn remote_engine(&self) -> Option<&'static str> {
        self.health.as_ref().map(|h| h.engine())
    }

    /// One cheap read of the store, so that its reachability is known even while nobody
    /// writes (a remote engine only learns it from its calls).
    pub fn probe(&self) -> Result<(), StoreError> {
        self.store.tokens.get("health-probe").map(drop)
    }

    /// Reads again what is held in memory (hosts, observations not changed here, jobs'
    /// index, active rollouts): on a store shared with other controllers, before this one
    /// starts scheduling, as they wrote while it did not.
    pub fn reload(&self) -> Result<(), StoreError> {
        self.windows_changed();
        let hosts = self.hosts.reload()?;
        self.observations.reload()?;
        self.jobs.reload()?;
        let rollouts = self.store.rollouts.reload()?;
        info!(
            hosts,
            active_rollouts = rollouts,
            "controller state read again"
        );
        Ok(())
    }

    /// The histogram of store write durations, for the metrics to register.
    pub fn write_seconds(&self) -> Histogram {
        self.writes.clone()
    }

    /// Waits until everything written so far is durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }

    /// Writes the observations still batched in memory and flushes (at shutdown).
    pub fn persist(&self) -> Result<(), StoreError> {
        self.observations.persist()?;
        self.flush()
    }

    // Hosts: what operators decided about each host, in memory and written through.

    /// The host's record, if it is enrolled (revoked or not).
    pub fn host(&self, id: &str) -> Option<HostRecord> {
        self.hosts.get(id)
    }

    /// Every host record, by id.
    pub fn hosts(&self) -> RwLockReadGuard<'_, BTreeMap<String, HostRecord>> {
        self.hosts.read()
    }

    /// Differs from an earlier answer when a host record or a reported version may have
    /// changed since: what is derived from the whole fleet (its latest release) is still
    /// good while it does not.
    pub fn fleet_generation(&self) -> (u64, u64) {
        (
            self.hosts.generation(),
            self.observations.versions_generation(),
        )
    }

    /// Exclusive access for changing host records (a read and the write after it, atomic).
    pub fn write_hosts(&self) -> HostWriter<'_> {
        self.hosts.write()
    }

    // Observations: what each host's agent last said.

    pub fn observations(&self) -> &Observations {
        &self.observations
    }

    // Jobs: records and their index.

    pub fn jobs(&self) -> &JobCache {
        &self.jobs
    }

    // Join tokens, by the hash of the token.

    pub fn token(&self, key: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.store.tokens.get(key)
    }

    /// Every stored token, with its key.
    pub fn tokens(&self) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        self.store.tokens.list()
    }

    /// Stores a new token, durably.
    pub fn put_token(&self, key: &str, token: &TokenRecord) -> Result<(), StoreError> {
        self.store.tokens.put(key, token)?;
        self.flush()
    }

    /// Replaces token `key` if it is still `old`; false when another writer was first.
    pub fn swap_token(
        &self,
        key: &str,
        old: &TokenRecord,
        new: &TokenRecord,
    ) -> Result<bool, StoreError> {
        self.store.tokens.compare_and_swap(key, Some(old), new)
    }

    pub fn remove_token(&self, key: &str) -> Result<(), StoreError> {
        self.store.tokens.remove(key).map(drop)
    }

    // Rollouts, the active ones also in memory.

    pub fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        self.store.rollouts.get(id)
    }

    /// Stores a rollout record, durably.
    pub fn put_rollout(&self, record: &RolloutRecord) -> Result<(), StoreError> {
        self.store.rollouts.put(&record.id, record)?;
        self.store.rollouts.flush()
    }

    /// Every rollout, oldest first.
    pub fn rollouts(&self) -> Result<Vec<RolloutRecord>, StoreError> {
        self.store.rollouts_all()
    }

    /// Changes whenever a rollout is written: wait on it, then read the rollouts you follow.
    pub fn rollout_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.rollouts.subscribe()
    }

    /// The rollouts the scheduler still works on, oldest first, from memory.
    pub fn active_rollouts(&self) -> Vec<RolloutRecord> {
        self.store.active_rollouts()
    }

    // Maintenance windows and freezes.

    pub fn windows(&self) -> Result<Windows, StoreError> {
        let mut cached = lock(&self.windows);
        if let Some(windows) = cached.as_ref() {
            return Ok(windows.clone());
        }
        let windows = self.last_known("windows", || self.store.windows_all())?;
        if self.unreachable_since().is_none() {
            *cached = Some(windows.clone());
        }
        Ok(windows)
    }

    pub fn put_window(
        &self,
        key: &WindowKey,
        window: Option<&MaintenanceWindow>,
    ) -> Result<(), StoreError> {
        let mut cached = lock(&self.windows);
        *cached = None;
        self.store.put_window(key, window)
    }

    pub fn put_windows(&self, windows: &Windows) -> Result<(), StoreError> {
        let mut cached = lock(&self.windows);
        *cached = None;
        self.store.put_windows(windows)
    }

    /// Forgets the decoded windows (another controller wrote one).
    pub(crate) fn windows_changed(&self) {
        *lock(&self.windows) = None;
    }

    pub fn freeze(&self) -> Result<Freeze, StoreError> {
        self.last_known("freeze", || self.store.freeze_all())
    }

    pub fn put_freeze(&self, key: &str, freeze: Option<&FreezeRecord>) -> Result<(), StoreError> {
        self.store.put_freeze(key, freeze)
    }

    // Operators and tenant policies.

    /// Operator `name`'s record. While the store is unreachable, the one last read or
    /// written here (the revocations it knew of then; none can be made meanwhile), so that
    /// operators known to this controller still read what it holds.
    pub fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        match self.store.operators.get(name) {
            Ok(record) => {
                self.remember_operator(name, record.as_ref());
                Ok(record)
            }
            Err(err) if self.unreachable_since().is_some() => self
                .operators_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned()
                .ok_or(err),
            Err(err) => Err(err),
        }
    }

    fn remember_operator(&self, name: &str, record: Option<&OperatorRecord>) {
        if self.health.is_some() {
            let mut seen = self
                .operators_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            seen.insert(name.to_string(), record.cloned());
        }
    }

    pub fn operators(&self) -> Result<Vec<(String, OperatorRecord)>, StoreError> {
        self.store.operators.list()
    }

    /// Replaces operator `name`'s record if it is still `old` (`None`: absent), durably;
    /// false when another writer was first.
    pub fn swap_operator(
        &self,
        name: &str,
        old: Option<&OperatorRecord>,
        new: &OperatorRecord,
    ) -> Result<bool, StoreError> {
        let swapped = self.store.operators.compare_and_swap(name, old, new)?;
        if swapped {
            self.remember_operator(name, Some(new));
            self.flush()?;
        }
        Ok(swapped)
    }

    pub fn policy(&self, tenant: &str) -> Result<Option<TenantPolicy>, StoreError> {
        self.last_known(&format!("policy/{tenant}"), || {
            self.store.policies.get(tenant)
        })
    }

    /// Stores a tenant's policy, durably.
    pub fn put_policy(&self, tenant: &str, policy: &TenantPolicy) -> Result<(), StoreError> {
        self.store.policies.put(tenant, policy)?;
        self.flush()
    }

    // Operators' `release latest`, by `global` or `tenant/NAME`.

    /// While the store is unreachable: the list last read here (reports go on from memory).
    pub fn latest_releases(&self) -> Result<Vec<(String, LatestRecord)>, StoreError> {
        self.last_known("latest", || self.store.latest.list())
    }

    /// `read`, or while a remote store is unreachable what it last answered ([`held`]).
    fn last_known<T: Clone + Send + 'static>(
        &self,
        what: &str,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.health.is_none() {
            return read();
        }
        self.held
            .read(what, || self.unreachable_since().is_some(), read)
    }

    /// Sets (`Some`) or clears (`None`) the latest release under `key`, durably.
    pub fn put_latest(&self, key: &str, latest: Option<&LatestRecord>) -> Result<(), StoreError> {
        match latest {
            Some(record) => self.store.latest.put(key, record)?,
            None => drop(self.store.latest.remove(key)?),
        }
        self.flush()
    }

    // The audit log.

    /// Appends to the audit log (ordered, never rewritten), durably.
    pub fn audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        self.store.audit(entry)
    }

    /// Appends several entries in order, durable together.
    pub fn audit_all(&self, entries: &[AuditRecord]) -> Result<(), StoreError> {
        self.store.audit_all(entries)
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit_log()
    }
}

#[cfg(test)]
impl State {
    /// The observation as stored (not as held in memory): what a restart would load.
    pub(crate) fn stored_observation(&self, id: &str) -> Option<Observed> {
        self.store.observed.get(id).unwrap()
    }

    /// Forgets the job index, as a store written before it existed.
    pub(crate) fn drop_job_index(&self) {
        self.store.jobs.drop_index();
    }
}

/// Opens the state in `path` again in the same process, as a restarted controller would
/// (waiting for sled to let go of its file lock).
#[cfg(test)]
pub(crate) fn reopen(path: &Path) -> State {
    let engine = sled_engine::tests::reopen(path);
    State::on(Arc::new(engine)).expect("state reopened")
}

/// A started rollout record for tests (the state's and the suite's).
#[cfg(test)]
pub(crate) use rollouts::tests::record as sample_rollout;

/// A webhook record for tests.
#[cfg(test)]
pub(crate) use webhooks::tests::hook as sample_webhook;

/// Locks `mutex`, going on after a panic elsewhere (the data is a cache of the store, and
/// every change to it is a single insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
