//! The agent's jobs: update, rollback, backup and healthcheck of the passbolt host, run one at
//! a time from a typed request (never shell text), journaled before and after every step so a
//! restarted agent finishes or rolls back what it was doing, and reported as full events.

pub mod host;
pub mod journal;
mod kinds;
pub mod lock;
pub mod model;
mod preflight;
pub mod resume;
pub mod retention;
pub mod runner;
pub mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use boltfleet_common::clock::unix_now;
use boltfleet_common::proto::{JobEvent, JobKind, JobState, RunJob};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::host_gate::{HostGate, JobGuard};
use crate::passbolt::checks::HEALTHCHECK_TIMEOUT;
use host::{HostOps, RealHost};
use journal::{Journal, JournalError};
use lock::JobLock;
use model::{gist, JournalEntry};
use retention::Retention;
use runner::{Failed, Run};

/// Events kept for subscribers that lag behind.
const EVENT_BUFFER: usize = 256;

/// How long a job waits for the inventory's probes running when it arrived (the slowest is
/// the healthcheck command) before it is refused.
const PROBE_WAIT: std::time::Duration =
    HEALTHCHECK_TIMEOUT.saturating_add(std::time::Duration::from_secs(20));

/// The job subsystem could not start.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Every change of any job, to subscribers and as the last known event.
pub struct Events {
    tx: broadcast::Sender<JobEvent>,
    last: Mutex<Option<JobEvent>>,
}

impl Events {
    fn new(last: Option<JobEvent>) -> Self {
        Events {
            tx: broadcast::channel(EVENT_BUFFER).0,
            last: Mutex::new(last),
        }
    }

    /// Sends `event` to subscribers (none listening is fine) and remembers it.
    pub fn publish(&self, event: &JobEvent) {
        crate::metrics::get().job_event(event);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(event.clone());
        let _ = self.tx.send(event.clone());
    }
}

struct Inner<H> {
    host: H,
    journal: Journal,
    lock_path: PathBuf,
    events: Events,
    gate: HostGate,
}

/// The jobs of this host. Cheap to clone.
pub struct Jobs<H = RealHost> {
    inner: Arc<Inner<H>>,
}

impl<H> Clone for Jobs<H> {
    fn clone(&self) -> Self {
        Jobs {
            inner: self.inner.clone(),
        }
    }
}

impl Jobs<RealHost> {
    /// The jobs of the host `config` describes; opens the journal in its state dir.
    pub fn new(config: Arc<AgentConfig>) -> Result<Self, JobsError> {
        let state_dir = config.state_dir.clone();
        let retention = config.jobs.retention();
        Jobs::with_retention(&state_dir, RealHost::new(config), retention)
    }
}

impl<H: HostOps> Jobs<H> {
    /// Jobs run against `host`, journaled in `state_dir/jobs` with the default retention.
    pub fn with_host(state_dir: &Path, host: H) -> Result<Self, JobsError> {
        Jobs::with_retention(state_dir, host, Retention::default())
    }

    /// Jobs run against `host`, journaled in `state_dir/jobs`, whose old records are pruned
    /// by `retention` now and whenever a job finishes.
    pub fn with_retention(
        state_dir: &Path,
        host: H,
        retention: Retention,
    ) -> Result<Self, JobsError> {
        let journal = Journal::open(state_dir)?.with_retention(retention);
        journal.prune(None);
        let last = journal.all()?.pop().map(|r| r.event);
        Ok(Jobs {
            inner: Arc::new(Inner {
                host,
                journal,
                lock_path: state_dir.join("job.lock"),
                events: Events::new(last),
                gate: HostGate::default(),
            }),
        })
    }

    /// Converges any unfinished job found in the journal (finishes or rolls back), in a
    /// spawned task holding the job lock.
    pub fn resume(&self) {
        let unfinished: Vec<JournalEntry> = match self.inner.journal.all() {
            Ok(all) => all.into_iter().filter(|r| !r.is_finished()).collect(),
            Err(e) => {
                warn!(error = %e, "cannot read the job journal; nothing resumed");
                return;
            }
        };
        if unfinished.is_empty() {
            return;
        }
        let lock = match JobLock::try_acquire(&self.inner.lock_path) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                warn!("another process holds the job lock; unfinished jobs left as they are");
                return;
            }
            Err(e) => {
                warn!(error = %e, path = %self.inner.lock_path.display(), "cannot take the job lock");
                return;
            }
        };
        // Owned before this returns, so no report of the restarted agent probes the host
        // while the job converges.
        let owner = self.inner.gate.try_own();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _lock = lock;
            let _owner = match owner {
                Some(owner) => owner,
                None => inner.gate.own_when_free().await,
            };
            for record in unfinished {
                info!(job = %record.request.job_id, "unfinished job found");
                Run::new(&inner.host, &inner.journal, &inner.events, record)
                    .resume()
                    .await;
            }
        });
    }

    /// Accepts a job: validates it, journals it and runs it in a spawned task. A job id
    /// already received is not run again (its recorded event is sent instead); a refusal is
    /// reported as an event too. Never waits for the job.
    pub fn submit(&self, job: RunJob) {
        let inner = &self.inner;
        if validate::job_id_ok(&job.job_id) {
            match inner.journal.load(&job.job_id) {
                Ok(Some(known)) => {
                    info!(job = %job.job_id, "job already received; its state is sent again");
                    inner.events.publish(&known.event);
                    return;
                }
                Ok(None) => {}
                Err(e) => return self.refuse(&job, None, &format!("job journal: {e}")),
            }
        }
        let request = match validate::request(&job) {
            Ok(request) => request,
            Err(reason) => {
                let record = validate::raw_request(&job).map(|r| JournalEntry::new(r, unix_now()));
                return self.refuse(&job, record, &reason);
            }
        };
        let record = JournalEntry::new(request, unix_now());
        let lock = match JobLock::try_acquire(&inner.lock_path) {
            Ok(Some(lock)) => lock,
            Ok(None) => return self.refuse(&job, Some(record), "another job is running"),
            Err(e) => {
                let reason = format!(
                    "cannot take the job lock {}: {e}",
                    inner.lock_path.display()
                );
                return self.refuse(&job, Some(record), &reason);
            }
        };
        if let Err(e) = inner.journal.save(&record) {
            return self.refuse(&job, None, &e.to_string());
        }
        info!(job = %job.job_id, kind = ?record.request.kind, target = %record.request.target, "job accepted");
        inner.events.publish(&record.event);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _lock = lock;
            let run = Run::new(&inner.host, &inner.journal, &inner.events, record);
            let Some(_owner): Option<JobGuard> = inner.gate.own(PROBE_WAIT).await else {
                let reason = format!(
                    "the inventory's probes of the host still ran after {}s",
                    PROBE_WAIT.as_secs()
                );
                let mut run = run;
                return run.finish(
                    JobState::Refused,
                    Some(Failed::new(model::step::PREFLIGHT, reason)),
                );
            };
            run.run().await;
        });
    }

    /// The host's owner lock: held by every job while it runs, shared by the inventory's
    /// probes.
    pub fn gate(&self) -> &HostGate {
        &self.inner.gate
    }

    /// Reports a refused job; journals it when it has a record (a valid id).
    fn refuse(&self, job: &RunJob, record: Option<JournalEntry>, reason: &str) {
        warn!(job = %job.job_id, reason, "job refused");
        let now = unix_now();
        let event = match record {
            Some(mut record) => {
                record.event.state = JobState::Refused as i32;
                record.event.kind = job.kind;
                record.event.reason = gist(reason, 600);
                record.event.finished_at = now;
                record.private.phase = model::JobPhase::Done;
                if let Err(e) = self.inner.journal.save(&record) {
                    warn!(job = %job.job_id, error = %e, "refusal not journaled");
                }
                record.event
            }
            None => JobEvent {
                job_id: job.job_id.clone(),
                kind: JobKind::try_from(job.kind).unwrap_or_default() as i32,
                target_version: job.target_version.clone(),
                state: JobState::Refused as i32,
                reason: gist(reason, 600),
                started_at: now,
                finished_at: now,
                ..JobEvent::default()
            },
        };
        self.inner.events.publish(&event);
    }

    /// Every change of any job (each step's start and end, and the outcome) as a full event.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.tx.subscribe()
    }

    /// The current or last job's event, for the hello on every reconnect.
    pub fn last_job(&self) -> Option<JobEvent> {
        self.inner
            .events
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
