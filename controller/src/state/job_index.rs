//! What dispatch, the reports and the scheduler need to know of jobs, in memory: the active
//! jobs of each host, the newest job of each host, the newest job of each (rollout, host,
//! kind), and the config changes seen per version jump. Built from every stored job when the
//! App opens; every job write goes through [`JobWriter`], which writes the store and then the
//! index under one lock, so the index always answers as a scan of the store would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use boltfleet_common::proto::{JobEvent, JobKind, JobRecord, JobState};

use super::jobs::Jobs;
use tokio::sync::watch;

use super::lock;
use super::StoreError;

/// A rollout's job as the scheduler follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutJob {
    pub kind: JobKind,
    pub job_id: String,
    pub created_at: i64,
    pub state: JobState,
    /// The step that failed, as the agent reported it.
    pub failed_step: String,
}

/// A job that may still change its host.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveJob {
    pub job_id: String,
    pub created_at: i64,
    pub state: JobState,
    /// The rollout that created it; "" for an operator's own job.
    pub rollout_id: String,
}

/// A host's jump from one version to another: `(host, from, to)`.
pub type ConfigJump = (String, String, String);

/// One rollout's jobs: by host, the newest job of each kind.
pub type RolloutJobs = HashMap<String, Vec<RolloutJob>>;

#[derive(Debug, Clone, PartialEq)]
struct Newest {
    created_at: i64,
    job_id: String,
    event: Option<JobEvent>,
}

/// The index. Shared maps of rollouts are copied on write, so snapshots take them cheaply.
#[derive(Debug, Default, PartialEq)]
pub struct JobIndex {
    /// By host, oldest first; hosts without one are absent.
    active: HashMap<String, Vec<ActiveJob>>,
    newest: HashMap<String, Newest>,
    rollouts: HashMap<String, Arc<RolloutJobs>>,
    /// Default config files changing per (host, from, to) version, from that host's own jobs
    /// that made that jump: never shown for another host (which may be another tenant's, and
    /// whose agent may lie).
    config_changes: HashMap<ConfigJump, Vec<String>>,
}

fn kind_of(job: &JobRecord) -> JobKind {
    job.request
        .as_ref()
        .map_or(JobKind::Unspecified, |r| r.kind())
}

impl JobIndex {
    /// The index of `jobs`, as if each had been written in turn.
    pub fn of<'a>(jobs: impl IntoIterator<Item = &'a JobRecord>) -> Self {
        let mut index = Self::default();
        for job in jobs {
            index.apply(job);
        }
        index
    }

    /// Takes in `job` as just stored (new, or a newer version of a job seen before). A job's
    /// id, host, creation time, kind and rollout never change.
    pub fn apply(&mut self, job: &JobRecord) {
        let host = job.host_id.as_str();
        let state = job.state();
        if let Some(list) = self.active.get_mut(host) {
            list.retain(|a| a.job_id != job.job_id);
        }
        if !state.is_final() {
            let list = self.active.entry(host.to_string()).or_default();
            list.push(ActiveJob {
                job_id: job.job_id.clone(),
                created_at: job.created_at,
                state,
                rollout_id: job.rollout_id.clone(),
            });
            list.sort_by(|a, b| (a.created_at, &a.job_id).cmp(&(b.created_at, &b.job_id)));
        } else if self.active.get(host).is_some_and(Vec::is_empty) {
            self.active.remove(host);
        }

        let key = (job.created_at, job.job_id.as_str());
        if self
            .newest
            .get(host)
            .is_none_or(|old| (old.created_at, old.job_id.as_str()) <= key)
        {
            let newest = Newest {
                created_at: job.created_at,
                job_id: job.job_id.clone(),
                event: job.event.clone(),
            };
            self.newest.insert(host.to_string(), newest);
        }

        if let Some(e) = job.event.as_ref().filter(|e| !e.config_changes.is_empty()) {
            let jump = (
                job.host_id.clone(),
                e.from_version.clone(),
                e.target_version.clone(),
            );
            self.config_changes.insert(jump, e.config_changes.clone());
        }

        if !job.rollout_id.is_empty() {
            let rollout = self.rollouts.entry(job.rollout_id.clone()).or_default();
            let jobs = Arc::make_mut(rollout).entry(host.to_string()).or_default();
            let entry = RolloutJob {
                kind: kind_of(job),
                job_id: job.job_id.clone(),
                created_at: job.created_at,
                state,
                failed_step: job
                    .event
                    .as_ref()
                    .map(|e| e.failed_step.clone())
                    .unwrap_or_default(),
            };
            match jobs.iter_mut().find(|j| j.kind == entry.kind) {
                Some(old) if (old.created_at, old.job_id.as_str()) <= key => *old = entry,
                Some(_) => {}
                None => jobs.push(entry),
            }
        }
    }

    /// The host's active jobs, oldest first.
    pub fn active(&self, host: &str) -> &[ActiveJob] {
        self.active.get(host).map_or(&[], Vec::as_slice)
    }

    /// The rollout ids of every host's active jobs ("" for an operator's own job).
    pub fn active_owners(&self) -> HashMap<String, Vec<String>> {
        self.active
            .iter()
            .map(|(host, jobs)| {
                let owners = jobs.iter().map(|j| j.rollout_id.clone()).collect();
                (host.clone(), owners)
            })
            .collect()
    }

    /// The event of the host's newest job (`Some(None)`: a job without one).
    pub fn newest_event(&self, host: &str) -> Option<Option<&JobEvent>> {
        self.newest.get(host).map(|n| n.event.as_ref())
    }

    /// The ids of the active jobs rollout `id` created.
    pub fn active_of_rollout(&self, id: &str) -> Vec<String> {
        self.active
            .values()
            .flatten()
            .filter(|j| j.rollout_id == id)
            .map(|j| j.job_id.clone())
            .collect()
    }

    /// The event of every host's newest job.
    pub fn newest_events(&self) -> impl Iterator<Item = (&str, Option<&JobEvent>)> {
        self.newest
            .iter()
            .map(|(host, n)| (host.as_str(), n.event.as_ref()))
    }

    /// Every rollout's jobs (shared, not copied).
    pub fn rollouts(&self) -> HashMap<String, Arc<RolloutJobs>> {
        self.rollouts.clone()
    }

    /// One rollout's jobs.
    pub fn rollout(&self, id: &str) -> Option<Arc<RolloutJobs>> {
        self.rollouts.get(id).cloned()
    }

    /// Config defaults changing per (host, from, to), from each host's own jobs.
    pub fn config_changes(&self) -> &HashMap<ConfigJump, Vec<String>> {
        &self.config_changes
    }
}

/// The stored jobs and their index.
pub struct JobCache {
    jobs: Jobs,
    index: Mutex<JobIndex>,
    /// Counts job writes, for those who follow jobs live ([`JobCache::subscribe`]).
    changes: watch::Sender<u64>,
}

/// Exclusive access for changing jobs: held across a read and the write that follows, it
/// makes the pair atomic (the store belongs to this process alone).
pub struct JobWriter<'a> {
    jobs: &'a Jobs,
    index: MutexGuard<'a, JobIndex>,
    changes: &'a watch::Sender<u64>,
}

impl JobCache {
    /// Reads every stored job once (indexing by host those that are not yet).
    pub fn load(jobs: Jobs) -> Result<Self, StoreError> {
        let mut index = JobIndex::default();
        jobs.load(|job| index.apply(&job))?;
        Ok(Self {
            jobs,
            index: Mutex::new(index),
            changes: watch::Sender::new(0),
        })
    }

    /// Builds the index again from every stored job (other controllers on the same store
    /// wrote some).
    pub fn reload(&self) -> Result<(), StoreError> {
        let mut index = lock(&self.index);
        let mut fresh = JobIndex::default();
        self.jobs.load(|job| fresh.apply(&job))?;
        *index = fresh;
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Indexes `job` as another controller stored it.
    /// `fresh` is asked under the lock this cache's own writes hold: false skips the change.
    pub fn set_stored(&self, job: &JobRecord, fresh: impl FnOnce() -> bool) -> bool {
        let mut index = lock(&self.index);
        if !fresh() {
            return false;
        }
        index.apply(job);
        drop(index);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        true
    }

    /// Changes whenever a job is written: wait on it, then read the jobs you follow again.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Job `id`'s record.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.jobs.get(id)
    }

    /// The ids of `host`'s jobs, oldest first.
    pub fn ids_of_host(&self, host: &str) -> Result<Vec<String>, StoreError> {
        self.jobs.ids_of_host(host)
    }

    /// `host`'s jobs, oldest first.
    pub fn of_host(&self, host: &str) -> Result<Vec<JobRecord>, StoreError> {
        self.jobs.of_host(host)
    }

    /// Every job, by id.
    pub fn list(&self) -> Result<Vec<(String, JobRecord)>, StoreError> {
        self.jobs.list()
    }

    pub fn read(&self) -> MutexGuard<'_, JobIndex> {
        lock(&self.index)
    }

    pub fn write(&self) -> JobWriter<'_> {
        JobWriter {
            jobs: &self.jobs,
            index: lock(&self.index),
            changes: &self.changes,
        }
    }
}

impl JobWriter<'_> {
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.jobs.get(id)
    }

    pub fn put(&mut self, job: &JobRecord) -> Result<(), StoreError> {
        self.jobs.put(&job.job_id, job)?;
        self.index.apply(job);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    pub fn index(&self) -> &JobIndex {
        &self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boltfleet_common::proto::RunJob;

    fn job(id: &str, host: &str, at: i64, rollout: &str, kind: JobKind) -> JobRecord {
        JobRecord {
            job_id: id.into(),
            host_id: host.into(),
            created_at: at,
            rollout_id: rollout.into(),
            request: Some(RunJob {
                job_id: id.into(),
                kind: kind as i32,
                ..RunJob::default()
            }),
            event: Some(JobEvent {
                job_id: id.into(),
                state: JobState::Queued as i32,
                ..JobEvent::default()
            }),
            ..JobRecord::default()
        }
    }

    fn ended(mut job: JobRecord, state: JobState, step: &str) -> JobRecord {
        let event = job.event.get_or_insert_with(JobEvent::default);
        event.state = state as i32;
        event.failed_step = step.into();
        job
    }

    #[test]
    fn the_index_answers_as_a_scan_after_every_write() {
        use JobKind::{Backup, Rollback, Update};
        let a = job("ja", "web1", 10, "r1", Update);
        let b = job("jb", "web2", 10, "r1", Update);
        let c = job("jc", "web1", 20, "", Backup);
        let d = job("jd", "web1", 30, "r1", Rollback);
        let e = job("je", "web2", 40, "r1", Update);
        let mut changes = ended(b.clone(), JobState::Succeeded, "");
        let ev = changes.event.as_mut().unwrap();
        (ev.from_version, ev.target_version) = ("1.3.0".into(), "1.3.2".into());
        ev.config_changes = vec!["app.php".into()];
        let writes = [
            a.clone(),
            b.clone(),
            ended(a.clone(), JobState::RolledBack, "migrate"),
            c.clone(),
            changes,
            d.clone(),
            e.clone(),
            ended(c, JobState::Succeeded, ""),
            ended(e, JobState::Running, ""),
        ];
        let mut stored: HashMap<String, JobRecord> = HashMap::new();
        let mut index = JobIndex::default();
        for write in &writes {
            index.apply(write);
            stored.insert(write.job_id.clone(), write.clone());
            let mut scan: Vec<&JobRecord> = stored.values().collect();
            scan.sort_by(|x, y| x.job_id.cmp(&y.job_id));
            assert_eq!(index, JobIndex::of(scan), "after {}", write.job_id);
        }
        let active: Vec<&str> = index
            .active("web1")
            .iter()
            .map(|j| j.job_id.as_str())
            .collect();
        assert_eq!(active, ["jd"]);
        assert_eq!(index.active_owners()["web2"], ["r1"]);
        assert_eq!(index.newest_event("web1").unwrap().unwrap().job_id, "jd");
        let r1 = index.rollout("r1").unwrap();
        let web1: Vec<(JobKind, &str)> = r1["web1"]
            .iter()
            .map(|j| (j.kind, j.failed_step.as_str()))
            .collect();
        assert_eq!(web1, [(Update, "migrate"), (Rollback, "")]);
        assert_eq!(r1["web2"][0].job_id, "je", "the newest update of web2");
        let jump = |host: &str| (host.to_string(), "1.3.0".to_string(), "1.3.2".to_string());
        assert_eq!(index.config_changes()[&jump("web2")], ["app.php"]);
        assert!(
            !index.config_changes().contains_key(&jump("web1")),
            "web2's changes are web2's alone"
        );
    }

    #[test]
    fn a_snapshot_of_a_rollout_does_not_change_with_later_writes() {
        let mut index = JobIndex::of([&job("ja", "web1", 10, "r1", JobKind::Update)]);
        let before = index.rollout("r1").unwrap();
        index.apply(&ended(
            job("ja", "web1", 10, "r1", JobKind::Update),
            JobState::Succeeded,
            "",
        ));
        assert_eq!(before["web1"][0].state, JobState::Queued);
        assert_eq!(
            index.rollout("r1").unwrap()["web1"][0].state,
            JobState::Succeeded
        );
    }
}
