//! Jobs on single hosts: created by operators, handed to agents, updated from their reports.

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::{
    CancelJob, ControllerMessage, JobEvent, JobKind, JobOptions, JobRecord, JobState, RunJob,
};
use boltfleet_common::version::{classify, parse_release, UpdateClass};
use tracing::{info, warn};

use crate::app::App;
use crate::error::Error;

/// What an operator asks for.
pub struct NewJob {
    pub host_id: String,
    pub kind: JobKind,
    pub target_version: String,
    pub options: JobOptions,
    /// The rollout creating the job; `None` for an operator's own job.
    pub rollout_id: Option<String>,
}

/// True while a job may still change the host.
pub fn is_active(state: JobState) -> bool {
    matches!(
        state,
        JobState::Unspecified | JobState::Queued | JobState::Running
    )
}

pub(crate) fn state_of(record: &JobRecord) -> JobState {
    record
        .event
        .as_ref()
        .map(|e| e.state())
        .unwrap_or(JobState::Queued)
}

/// A new job id: time-ordered, unguessable enough to not collide.
fn new_job_id(now: i64) -> String {
    format!("j{now:x}-{:08x}", rand::random::<u32>())
}

impl App {
    /// Records a job for one host and hands it to the agent if it is online.
    pub fn start_job(&self, operator: &str, req: NewJob, now: i64) -> Result<String, Error> {
        let host = HostId::new(&req.host_id)?;
        let record = self
            .store
            .hosts
            .get(host.as_str())?
            .ok_or_else(|| Error::UnknownHost(host.to_string()))?;
        if record.revoked {
            return Err(Error::Revoked(host.to_string()));
        }
        let target = match req.kind {
            JobKind::Update => {
                let target = parse_release(&req.target_version)
                    .map_err(|e| Error::invalid("target_version", e))?;
                self.check_update_class(&host, &target)?;
                target.to_string()
            }
            JobKind::Rollback | JobKind::Backup | JobKind::Healthcheck => String::new(),
            JobKind::Unspecified => return Err(Error::invalid("kind", "missing job kind")),
        };
        if let Some(active) = self
            .jobs_of(&host)?
            .into_iter()
            .find(|j| is_active(state_of(j)))
        {
            return Err(Error::Precondition(format!(
                "host {host} already has job {} ({})",
                active.job_id,
                state_of(&active).as_str_name()
            )));
        }
        let job_id = new_job_id(now);
        let request = RunJob {
            job_id: job_id.clone(),
            kind: req.kind as i32,
            target_version: target.clone(),
            options: Some(req.options),
        };
        let job = JobRecord {
            job_id: job_id.clone(),
            host_id: host.to_string(),
            created_by: operator.to_string(),
            created_at: now,
            dispatched: false,
            request: Some(request),
            event: Some(JobEvent {
                job_id: job_id.clone(),
                kind: req.kind as i32,
                target_version: target.clone(),
                state: JobState::Queued as i32,
                ..JobEvent::default()
            }),
            rollout_id: req.rollout_id.clone().unwrap_or_default(),
        };
        self.store.jobs.put(&job_id, &job)?;
        self.store.flush()?;
        let mut detail = format!("{} {target}", req.kind.as_str_name());
        if let Some(rollout) = &req.rollout_id {
            detail = format!("{} (rollout {rollout})", detail.trim_end());
        }
        self.audit_entry(
            &format!("operator {operator}"),
            "job.start",
            host.as_str(),
            &detail,
        )?;
        info!(host = %host, job = %job_id, kind = ?req.kind, target = %target, operator, "job queued");
        self.dispatch(&host)?;
        Ok(job_id)
    }

    /// Refuses updates the agent would refuse anyway, with the reason, before queuing them.
    fn check_update_class(&self, host: &HostId, target: &semver::Version) -> Result<(), Error> {
        let current = self
            .store
            .observed
            .get(host.as_str())?
            .and_then(|o| o.inventory)
            .and_then(|inv| parse_release(&inv.passbolt_version).ok());
        let Some(current) = current else {
            return Ok(()); // unknown yet: the agent decides.
        };
        let reason = match classify(&current, target) {
            UpdateClass::Patch | UpdateClass::Minor => return Ok(()),
            UpdateClass::AtTarget => format!("host {host} is already at {target}"),
            UpdateClass::Downgrade => format!("{current} -> {target} is a downgrade; refused"),
            UpdateClass::Major => format!(
                "{current} -> {target} is a major upgrade: a separate manual procedure, not a Boltfleet update"
            ),
        };
        Err(Error::Precondition(reason))
    }

    /// Every job of a host, oldest first.
    pub fn jobs_of(&self, host: &HostId) -> Result<Vec<JobRecord>, Error> {
        let mut jobs: Vec<JobRecord> = self
            .store
            .jobs
            .list()?
            .into_iter()
            .map(|(_, j)| j)
            .filter(|j| j.host_id == host.as_str())
            .collect();
        jobs.sort_by(|a, b| (a.created_at, &a.job_id).cmp(&(b.created_at, &b.job_id)));
        Ok(jobs)
    }

    /// Sends the host's queued jobs to its agent if it is online (the agent ignores a job id
    /// it has already received, so re-sending after a reconnect is safe).
    pub fn dispatch(&self, host: &HostId) -> Result<(), Error> {
        let Some(tx) = self.registry.sender(host) else {
            return Ok(());
        };
        for mut job in self.jobs_of(host)? {
            if state_of(&job) != JobState::Queued {
                continue;
            }
            if !job.dispatched {
                job.dispatched = true;
                self.store.jobs.put(&job.job_id, &job)?;
                self.store.jobs.flush()?;
            }
            let message = ControllerMessage {
                msg: job.request.clone().map(Down::RunJob),
            };
            if tx.try_send(Ok(message)).is_err() {
                warn!(host = %host, job = %job.job_id, "agent stream full; job sent on reconnect");
            }
        }
        Ok(())
    }

    /// The agent's report of a job: stored in the job record (if the job is the host's own).
    pub fn record_job_event(&self, host: &HostId, event: JobEvent) -> Result<(), Error> {
        match self.store.jobs.get(&event.job_id)? {
            Some(mut job) if job.host_id == host.as_str() => {
                let terminal_before = !is_active(state_of(&job));
                job.event = Some(event.clone());
                self.store.jobs.put(&job.job_id, &job)?;
                let state = event.state();
                if !is_active(state) && !terminal_before {
                    self.store.jobs.flush()?;
                    let detail = format!("{} {}", state.as_str_name(), event.failed_step);
                    self.audit_entry(
                        &format!("agent {host}"),
                        "job.finish",
                        host.as_str(),
                        detail.trim(),
                    )?;
                    info!(host = %host, job = %event.job_id, state = state.as_str_name(), failed_step = %event.failed_step, "job finished");
                }
            }
            Some(_) => {
                warn!(host = %host, job = %event.job_id, "job event for another host's job ignored")
            }
            None => warn!(host = %host, job = %event.job_id, "event for an unknown job ignored"),
        }
        self.observe_job(host, event)?;
        self.wake_scheduler();
        Ok(())
    }

    /// Stops a job the controller no longer wants: one not handed to the agent yet ends here
    /// (`failed`, with `reason`) and is never sent; for one already sent, the agent is asked
    /// (it may finish it anyway: a started job runs to its end or rolls back).
    pub fn cancel_job(&self, job_id: &str, reason: &str, now: i64) -> Result<(), Error> {
        let mut job = self.job(job_id)?;
        if !is_active(state_of(&job)) {
            return Ok(());
        }
        let host = HostId::new(&job.host_id)?;
        if !job.dispatched {
            let event = job.event.get_or_insert_with(JobEvent::default);
            event.state = JobState::Failed as i32;
            event.failed_step = "cancelled".into();
            event.reason = reason.into();
            event.finished_at = now;
            self.store.jobs.put(job_id, &job)?;
            self.store.jobs.flush()?;
            self.audit_entry("controller", "job.cancel", host.as_str(), reason)?;
            info!(host = %host, job = %job_id, reason, "queued job cancelled");
            return Ok(());
        }
        if let Some(tx) = self.registry.sender(&host) {
            let cancel = ControllerMessage {
                msg: Some(Down::CancelJob(CancelJob {
                    job_id: job_id.into(),
                })),
            };
            let _ = tx.try_send(Ok(cancel));
        }
        warn!(host = %host, job = %job_id, reason, "job cancel asked of the agent");
        Ok(())
    }

    pub fn job(&self, job_id: &str) -> Result<JobRecord, Error> {
        self.store
            .jobs
            .get(job_id)?
            .ok_or_else(|| Error::UnknownJob(job_id.to_string()))
    }

    /// The newest job of every host, by host id.
    pub fn latest_jobs(&self) -> Result<std::collections::HashMap<String, JobRecord>, Error> {
        let mut latest: std::collections::HashMap<String, JobRecord> = Default::default();
        for (_, job) in self.store.jobs.list()? {
            let newer = latest
                .get(&job.host_id)
                .is_none_or(|old| (old.created_at, &old.job_id) < (job.created_at, &job.job_id));
            if newer {
                latest.insert(job.host_id.clone(), job);
            }
        }
        Ok(latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::app_with_host;
    use tokio::sync::mpsc;

    fn update(host: &str, to: &str) -> NewJob {
        NewJob {
            host_id: host.into(),
            kind: JobKind::Update,
            target_version: to.into(),
            options: JobOptions::default(),
            rollout_id: None,
        }
    }

    fn refused(result: Result<String, Error>) -> String {
        result.expect_err("must be refused").to_string()
    }

    #[test]
    fn updates_the_agent_would_refuse_are_refused_here_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.10");
        assert!(refused(app.start_job("alice", update("web1", "2.0.0"), 1)).contains("major"));
        assert!(refused(app.start_job("alice", update("web1", "1.3.2"), 1)).contains("downgrade"));
        assert!(refused(app.start_job("alice", update("web1", "1.6.10"), 1)).contains("already"));
        assert!(
            refused(app.start_job("alice", update("web1", "1.6.11;rm"), 1))
                .contains("target_version")
        );
        assert!(
            refused(app.start_job("alice", update("web9", "1.6.11"), 1)).contains("not enrolled")
        );
        assert!(app.store.jobs.list().unwrap().is_empty(), "nothing queued");
    }

    #[test]
    fn one_active_job_per_host_and_it_waits_for_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let id = app.start_job("alice", update("web1", "1.6.10"), 1).unwrap();
        let job = app.job(&id).unwrap();
        assert!(!job.dispatched, "offline host: not dispatched yet");
        assert_eq!(job.event.unwrap().state(), JobState::Queued);
        assert!(refused(app.start_job("alice", update("web1", "1.6.10"), 2)).contains(&id));

        // The agent connects: the job is handed over.
        let host = HostId::new("web1").unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let _reg = app.registry.register(&host, tx);
        app.record_hello(&host, "0.1.0", None).unwrap();
        let sent = rx.try_recv().unwrap().unwrap();
        assert!(
            matches!(sent.msg, Some(Down::RunJob(ref j)) if j.job_id == id && j.target_version == "1.6.10")
        );
        assert!(app.job(&id).unwrap().dispatched);

        // Its outcome frees the host for the next job.
        let done = JobEvent {
            job_id: id.clone(),
            state: JobState::RolledBack as i32,
            failed_step: "migrate".into(),
            ..JobEvent::default()
        };
        app.record_job_event(&host, done).unwrap();
        assert_eq!(app.job(&id).unwrap().event.unwrap().failed_step, "migrate");
        assert!(app.start_job("alice", update("web1", "1.6.10"), 3).is_ok());
        let actions: Vec<String> = app
            .store
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(
            actions.ends_with(&["job.start".into(), "job.finish".into(), "job.start".into()]),
            "{actions:?}"
        );
    }

    #[test]
    fn an_agent_cannot_report_another_hosts_job() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let id = app.start_job("alice", update("web1", "1.6.10"), 1).unwrap();
        let forged = JobEvent {
            job_id: id.clone(),
            state: JobState::Succeeded as i32,
            ..JobEvent::default()
        };
        app.record_job_event(&HostId::new("web2").unwrap(), forged)
            .unwrap();
        assert_eq!(
            app.job(&id).unwrap().event.unwrap().state(),
            JobState::Queued
        );
    }
}
