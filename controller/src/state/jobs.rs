//! Jobs by id, with an index of each host's jobs written along with them, so that one host's
//! jobs are read without decoding anyone else's.
//!
//! The index holds one empty entry per job, keyed `host_id \0 created_at \0 job_id` with
//! `created_at` as 16 hex digits (sign bit flipped), so a prefix scan lists a host's jobs
//! oldest first. The entry is written before the record: a crash in between leaves an entry
//! without a record (skipped when read), never a record the index misses. A store written
//! before the index existed (or by an older controller) is indexed by [`Jobs::load`].

use std::sync::Arc;

use boltfleet_common::proto::JobRecord;
use tracing::{debug, info};

use super::typed::Typed;
use super::StoreError;
use crate::state::engine::{Batch, Engine, Tree};

/// Index entries written per batch when indexing an older store.
const INDEX_BATCH: usize = 10_000;

/// The jobs tree and its per-host index.
#[derive(Clone)]
pub struct Jobs {
    records: Typed<JobRecord>,
    by_host: Arc<dyn Tree>,
}

/// The index key prefix of `host`'s jobs (host ids hold no NUL byte).
fn host_prefix(host: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(host.len() + 1);
    key.extend_from_slice(host.as_bytes());
    key.push(0);
    key
}

fn index_key(host: &str, created_at: i64, job_id: &str) -> Vec<u8> {
    let mut key = host_prefix(host);
    // Flipping the sign bit orders negative times before positive ones, byte by byte.
    let ordered = (created_at as u64) ^ (1 << 63);
    key.extend_from_slice(format!("{ordered:016x}").as_bytes());
    key.push(0);
    key.extend_from_slice(job_id.as_bytes());
    key
}

impl Jobs {
    pub(super) fn open(db: &dyn Engine, records: &str, index: &str) -> Result<Self, StoreError> {
        Ok(Self {
            records: Typed::open(db, records)?,
            by_host: db.tree(index)?,
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.records.get(id)
    }

    /// Stores job `id` (`job.job_id`), its index entry first.
    pub fn put(&self, id: &str, job: &JobRecord) -> Result<(), StoreError> {
        self.by_host
            .put(&index_key(&job.host_id, job.created_at, id), &[])?;
        self.records.put(id, job)
    }

    /// Every job, ordered by id.
    pub fn list(&self) -> Result<Vec<(String, JobRecord)>, StoreError> {
        self.records.list()
    }

    /// The ids of `host`'s jobs, oldest first (by creation time, then id).
    pub fn ids_of_host(&self, host: &str) -> Result<Vec<String>, StoreError> {
        let prefix = host_prefix(host);
        self.by_host
            .scan_prefix(&prefix)
            .map(|kv| {
                let (key, _) = kv?;
                // Past the prefix, 16 hex digits of time and a NUL.
                let id = key.get(prefix.len() + 17..).unwrap_or_default();
                Ok(String::from_utf8_lossy(id).into_owned())
            })
            .collect()
    }

    /// Every job of `host`, oldest first, reading only that host's records.
    pub fn of_host(&self, host: &str) -> Result<Vec<JobRecord>, StoreError> {
        let mut jobs = Vec::new();
        for id in self.ids_of_host(host)? {
            match self.records.get(&id)? {
                Some(job) => jobs.push(job),
                None => {
                    debug!(host, job = %id, "index entry without a job (crash mid-write) skipped")
                }
            }
        }
        Ok(jobs)
    }

    /// Reads every job once, in id order (at startup), and adds the index entries missing.
    /// Returns how many were added.
    pub fn load(&self, mut visit: impl FnMut(JobRecord)) -> Result<usize, StoreError> {
        let mut missing = Vec::new();
        let mut failed = None;
        self.records.for_each(|id, job| {
            let key = index_key(&job.host_id, job.created_at, &id);
            match self.by_host.get(&key) {
                Ok(Some(_)) => {}
                Ok(None) => missing.push(key),
                Err(err) => {
                    failed.get_or_insert(err);
                }
            }
            visit(job);
        })?;
        if let Some(err) = failed {
            return Err(err.into());
        }
        for chunk in missing.chunks(INDEX_BATCH) {
            let mut batch = Batch::default();
            for key in chunk {
                batch.put(key.as_slice(), []);
            }
            for part in batch.split(self.by_host.batch_limit()) {
                self.by_host.apply(part)?;
            }
        }
        if !missing.is_empty() {
            self.by_host.flush()?;
            info!(added = missing.len(), "job index completed");
        }
        Ok(missing.len())
    }

    /// Makes the jobs' writes durable now.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.records.flush()
    }

    /// Forgets the index, as a store written before it existed.
    #[cfg(test)]
    pub(crate) fn drop_index(&self) {
        let mut batch = Batch::default();
        for kv in self.by_host.scan_prefix(b"") {
            batch.delete(kv.unwrap().0);
        }
        self.by_host.apply(batch).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::{reopen, Store};

    fn job(id: &str, host: &str, created_at: i64) -> JobRecord {
        JobRecord {
            job_id: id.into(),
            host_id: host.into(),
            created_at,
            ..JobRecord::default()
        }
    }

    fn ids(jobs: &[JobRecord]) -> Vec<&str> {
        jobs.iter().map(|j| j.job_id.as_str()).collect()
    }

    #[test]
    fn a_hosts_jobs_come_oldest_first_and_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for j in [
            job("jb", "web1", 5),
            job("ja", "web1", 5),
            job("jc", "web1", -3),
            job("jd", "web10", 1),
            job("je", "web1", 300),
        ] {
            store.jobs.put(&j.job_id, &j).unwrap();
        }
        // An update of a job keeps one entry.
        let mut again = job("ja", "web1", 5);
        again.dispatched = true;
        store.jobs.put("ja", &again).unwrap();
        let web1 = store.jobs.of_host("web1").unwrap();
        assert_eq!(ids(&web1), ["jc", "ja", "jb", "je"]);
        assert!(web1[1].dispatched);
        assert_eq!(ids(&store.jobs.of_host("web10").unwrap()), ["jd"]);
        assert!(store.jobs.of_host("web").unwrap().is_empty());
    }

    #[test]
    fn a_store_from_before_the_index_is_indexed_on_load() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for j in [
                job("j1", "web1", 1),
                job("j2", "web2", 2),
                job("j3", "web1", 3),
            ] {
                store.jobs.put(&j.job_id, &j).unwrap();
            }
            store.jobs.drop_index();
            store.flush().unwrap();
        }
        let store = reopen(dir.path());
        assert!(
            store.jobs.of_host("web1").unwrap().is_empty(),
            "not indexed"
        );
        let mut seen = Vec::new();
        assert_eq!(store.jobs.load(|j| seen.push(j.job_id)).unwrap(), 3);
        assert_eq!(seen, ["j1", "j2", "j3"]);
        assert_eq!(ids(&store.jobs.of_host("web1").unwrap()), ["j1", "j3"]);
        assert_eq!(store.jobs.load(|_| {}).unwrap(), 0, "indexed once");
    }

    #[test]
    fn an_index_entry_without_its_record_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let j = job("j1", "web1", 1);
        store.jobs.put("j1", &j).unwrap();
        // Killed between the index entry and the record.
        store
            .jobs
            .by_host
            .put(&index_key("web1", 2, "j2"), &[])
            .unwrap();
        assert_eq!(ids(&store.jobs.of_host("web1").unwrap()), ["j1"]);
    }
}
