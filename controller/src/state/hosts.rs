//! Enrolled hosts' records in memory, written through to the store by [`HostWriter`] only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::typed::Typed;
use super::{HostRecord, StoreError};

/// Every host record, by host id (ordered, as the store lists them).
pub struct HostCache {
    tree: Typed<HostRecord>,
    hosts: RwLock<BTreeMap<String, HostRecord>>,
    /// Moves on with every chance of a change (a writer taken, a record set from the store).
    generation: AtomicU64,
}

/// Exclusive access for changing host records: the store is written first, then memory. Held
/// across a read and the write that follows, it makes the pair atomic (the store belongs to
/// this process alone).
pub struct HostWriter<'a> {
    tree: &'a Typed<HostRecord>,
    hosts: RwLockWriteGuard<'a, BTreeMap<String, HostRecord>>,
}

impl HostCache {
    /// Reads every host record from `tree`.
    pub fn load(tree: Typed<HostRecord>) -> Result<Self, StoreError> {
        let mut hosts = BTreeMap::new();
        tree.for_each(|id, record| {
            hosts.insert(id, record);
        })?;
        Ok(Self {
            tree,
            hosts: RwLock::new(hosts),
            generation: AtomicU64::new(0),
        })
    }

    /// Reads every host record again (other controllers on the same store wrote some).
    pub fn reload(&self) -> Result<usize, StoreError> {
        let mut hosts = self.hosts.write().unwrap_or_else(|p| p.into_inner());
        let mut fresh = BTreeMap::new();
        self.tree.for_each(|id, record| {
            fresh.insert(id, record);
        })?;
        *hosts = fresh;
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(hosts.len())
    }

    pub fn get(&self, id: &str) -> Option<HostRecord> {
        self.read().get(id).cloned()
    }

    /// Sets the host's record as another controller stored it (`None`: removed).
    /// `fresh` is asked under the lock this cache's own writes hold: false skips the change.
    pub fn set_stored(&self, id: &str, stored: Option<HostRecord>, fresh: impl FnOnce() -> bool) {
        let mut hosts = self.hosts.write().unwrap_or_else(|p| p.into_inner());
        if !fresh() {
            return;
        }
        match stored {
            Some(record) => hosts.insert(id.to_string(), record),
            None => hosts.remove(id),
        };
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Differs from an earlier answer when a record may have changed since.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, HostRecord>> {
        self.hosts.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> HostWriter<'_> {
        self.generation.fetch_add(1, Ordering::Relaxed);
        HostWriter {
            tree: &self.tree,
            hosts: self.hosts.write().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

impl HostWriter<'_> {
    pub fn get(&self, id: &str) -> Option<&HostRecord> {
        self.hosts.get(id)
    }

    /// Removes a host's record (store, then memory).
    pub fn remove(&mut self, id: &str) -> Result<(), StoreError> {
        self.tree.remove(id)?;
        self.hosts.remove(id);
        Ok(())
    }

    pub fn put(&mut self, id: &str, record: HostRecord) -> Result<(), StoreError> {
        self.tree.put(id, &record)?;
        self.hosts.insert(id.to_string(), record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::{reopen, Store};

    #[test]
    fn writes_reach_the_store_and_a_reload_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let cache = HostCache::load(store.hosts.clone()).unwrap();
            let record = HostRecord {
                host_id: "web1".into(),
                tenant: "acme".into(),
                ..HostRecord::default()
            };
            cache.write().put("web1", record).unwrap();
            assert_eq!(cache.get("web1").unwrap().tenant, "acme");
            assert_eq!(store.hosts.get("web1").unwrap().unwrap().tenant, "acme");
            store.flush().unwrap();
        }
        let store = reopen(dir.path());
        let cache = HostCache::load(store.hosts.clone()).unwrap();
        assert_eq!(cache.read().keys().collect::<Vec<_>>(), ["web1"]);
    }
}
