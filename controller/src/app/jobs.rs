//! Jobs on single hosts: created by operators, handed to agents, updated from their reports.

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::{
    CancelJob, ControllerMessage, JobEvent, JobKind, JobOptions, JobRecord, JobState, RunJob,
};
use boltfleet_common::version::{classify, parse_release, UpdateClass};
use jiff::Timestamp;
use tracing::{info, warn};

use crate::app::App;
use crate::door::loggable;
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

/// What became of a job event.
enum Stored {
    /// Not the host's, not open, or not what was asked: dropped (why).
    Dropped(&'static str),
    /// The job's final event, again (a reconnecting agent re-sends it).
    Repeat,
    /// Progress of an open job.
    Progress,
    /// The event that finished the job.
    Finished,
}

/// Whether `host` may report `event` for `job`: its own job, not finished yet (a finished job
/// is final), and the same kind and target as the job's request (the target only when the
/// request names one). `Err` says why not.
pub fn job_event_fits(
    job: &JobRecord,
    host: &HostId,
    event: &JobEvent,
) -> Result<(), &'static str> {
    if job.host_id != host.as_str() {
        return Err("another host's job");
    }
    if job.state().is_final() {
        return Err("the job is finished");
    }
    if event.state() == JobState::Unspecified {
        return Err("no state");
    }
    let Some(request) = job.request.as_ref() else {
        return Err("the job has no request");
    };
    if event.kind != request.kind {
        return Err("kind differs from the job's");
    }
    // A rollback's target is the agent's to find (the release before its last update).
    if !request.target_version.is_empty() && event.target_version != request.target_version {
        return Err("target differs from the job's");
    }
    Ok(())
}

/// A new job id: time-ordered, unguessable enough to not collide.
fn new_job_id(now: i64) -> String {
    format!("j{now:x}-{:08x}", rand::random::<u32>())
}

impl App {
    /// Records a job for one host and hands it to the agent if it is online.
    pub fn start_job(&self, operator: &str, req: NewJob, now: Timestamp) -> Result<String, Error> {
        let host = HostId::new(&req.host_id)?;
        let record = self
            .state
            .host(host.as_str())
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
        let job_id = new_job_id(now.as_second());
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
            created_at: now.as_second(),
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
        {
            // Checked and written under the job lock: two starts cannot both pass the check.
            let mut jobs = self.state.jobs().write();
            if let Some(active) = jobs.index().active(host.as_str()).first() {
                return Err(Error::Precondition(format!(
                    "host {host} already has job {} ({})",
                    active.job_id,
                    active.state.as_str_name()
                )));
            }
            jobs.put(&job)?;
        }
        self.state.flush()?;
        let mut detail = format!("{} {target}", req.kind.as_str_name());
        if let Some(rollout) = &req.rollout_id {
            detail = format!("{} (rollout {rollout})", detail.trim_end());
        }
        self.audit_entry(
            now,
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
            .state
            .observations()
            .get(host.as_str())
            .and_then(|o| parse_release(&o.inventory.as_ref()?.passbolt_version).ok());
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

    /// Every job of a host, oldest first (read through the store's per-host index).
    pub fn jobs_of(&self, host: &HostId) -> Result<Vec<JobRecord>, Error> {
        Ok(self.state.jobs().of_host(host.as_str())?)
    }

    /// Sends the host's queued jobs to its agent if it is online (the agent ignores a job id
    /// it has already received, so re-sending after a reconnect is safe). Reads only the
    /// host's active jobs.
    pub fn dispatch(&self, host: &HostId) -> Result<(), Error> {
        self.send_queued(host, false)
    }

    /// Sends the host's queued jobs that no controller has sent yet, if its stream is here:
    /// another controller wrote them (the scheduler's leader, an operator's call there).
    pub fn dispatch_new(&self, host: &HostId) -> Result<(), Error> {
        self.send_queued(host, true)
    }

    /// Sends the host's queued jobs (`only_new`: those not marked sent) to its stream here.
    fn send_queued(&self, host: &HostId, only_new: bool) -> Result<(), Error> {
        let Some(tx) = self.registry.sender(host) else {
            return Ok(());
        };
        let mut queued = Vec::new();
        let mut marked = false;
        {
            let mut jobs = self.state.jobs().write();
            let active: Vec<String> = jobs
                .index()
                .active(host.as_str())
                .iter()
                .filter(|j| j.state == JobState::Queued)
                .map(|j| j.job_id.clone())
                .collect();
            for id in active {
                let Some(mut job) = jobs.get(&id)? else {
                    continue;
                };
                if job.state() != JobState::Queued || (only_new && job.dispatched) {
                    continue;
                }
                if !job.dispatched {
                    job.dispatched = true;
                    jobs.put(&job)?;
                    marked = true;
                }
                queued.push(job);
            }
        }
        if marked {
            // Durable before the agent has it: a job marked sent is never cancelled locally.
            self.state.flush()?;
        }
        for job in queued {
            let message = ControllerMessage {
                msg: job.request.clone().map(Down::RunJob),
            };
            if tx.try_send(Ok(message)).is_err() {
                warn!(host = %host, job = %job.job_id, "agent stream full; job sent on reconnect");
            }
        }
        Ok(())
    }

    /// The agent's report of a job: stored in the job record when [`job_event_fits`] accepts
    /// it (the host's own job, not finished, same kind and target); anything else is dropped,
    /// counted and logged once per interval, and never reaches the host's `last_job`.
    pub fn record_job_event(
        &self,
        host: &HostId,
        event: JobEvent,
        now: Timestamp,
    ) -> Result<(), Error> {
        match self.store_job_event(host, &event)? {
            Stored::Dropped(why) => {
                self.metrics.refused(crate::metrics::Refusal::BadJobEvent);
                let instant = std::time::Instant::now();
                if let Some(n) =
                    self.door
                        .refused(host.as_str(), crate::door::Refused::BadJobEvent, instant)
                {
                    warn!(host = %host, job = %loggable(&event.job_id), dropped = n, why, "job event dropped");
                }
                return Ok(());
            }
            Stored::Repeat => return Ok(()),
            Stored::Progress => {}
            Stored::Finished => {
                self.metrics.job_finished(&event);
                let state = event.state();
                self.state.flush()?;
                let detail = format!("{} {}", state.as_str_name(), event.failed_step);
                self.audit_entry(
                    now,
                    &format!("agent {host}"),
                    "job.finish",
                    host.as_str(),
                    detail.trim(),
                )?;
                self.emit_job_finished(host, &event, now)?;
                info!(host = %host, job = %event.job_id, state = state.as_str_name(), failed_step = %loggable(&event.failed_step), "job finished");
            }
        }
        self.wake_scheduler();
        Ok(())
    }

    /// Stores `event` in its job if [`job_event_fits`] accepts it.
    fn store_job_event(&self, host: &HostId, event: &JobEvent) -> Result<Stored, Error> {
        let mut jobs = self.state.jobs().write();
        let Some(mut job) = jobs.get(&event.job_id)? else {
            return Ok(Stored::Dropped("unknown job"));
        };
        if let Err(why) = job_event_fits(&job, host, event) {
            // The agent re-sends its last job on every reconnect: the final word again is fine.
            if job.event.as_ref() == Some(event) {
                return Ok(Stored::Repeat);
            }
            return Ok(Stored::Dropped(why));
        }
        job.event = Some(event.clone());
        jobs.put(&job)?;
        Ok(if !event.state().is_final() {
            Stored::Progress
        } else {
            Stored::Finished
        })
    }

    /// Stops a job the controller no longer wants: one not handed to the agent yet ends here
    /// (`failed`, with `reason`) and is never sent; for one already sent, the agent is asked
    /// (it may finish it anyway: a started job runs to its end or rolls back).
    pub fn cancel_job(&self, job_id: &str, reason: &str, now: Timestamp) -> Result<(), Error> {
        let mut jobs = self.state.jobs().write();
        let mut job = jobs
            .get(job_id)?
            .ok_or_else(|| Error::UnknownJob(job_id.to_string()))?;
        if job.state().is_final() {
            return Ok(());
        }
        let host = HostId::new(&job.host_id)?;
        if !job.dispatched {
            let event = job.event.get_or_insert_with(JobEvent::default);
            event.state = JobState::Failed as i32;
            event.failed_step = "cancelled".into();
            event.reason = reason.into();
            event.finished_at = now.as_second();
            jobs.put(&job)?;
            drop(jobs);
            self.state.flush()?;
            self.audit_entry(now, "controller", "job.cancel", host.as_str(), reason)?;
            info!(host = %host, job = %job_id, reason, "queued job cancelled");
            return Ok(());
        }
        drop(jobs);
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
        self.state
            .jobs()
            .get(job_id)?
            .ok_or_else(|| Error::UnknownJob(job_id.to_string()))
    }

    /// The newest job of each (host, kind) of rollout `id`, as a scan of every job would find
    /// them, decoding only those.
    pub fn rollout_jobs(&self, id: &str) -> Result<crate::wire::rollout::RolloutJobRecords, Error> {
        let mut jobs = crate::wire::rollout::RolloutJobRecords::new();
        let Some(index) = self.state.jobs().read().rollout(id) else {
            return Ok(jobs);
        };
        for (host, of_host) in index.iter() {
            for newest in of_host {
                if let Some(job) = self.state.jobs().get(&newest.job_id)? {
                    jobs.insert((host.clone(), newest.kind), job);
                }
            }
        }
        Ok(jobs)
    }

    /// The active jobs rollout `id` created (for an abort to cancel), decoding only those.
    pub fn active_jobs_of_rollout(&self, id: &str) -> Result<Vec<JobRecord>, Error> {
        let ids = self.state.jobs().read().active_of_rollout(id);
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            jobs.extend(self.state.jobs().get(&id)?);
        }
        Ok(jobs)
    }

    /// The event of the newest job of every host that has one, by host id, from the index.
    pub fn latest_jobs(&self) -> std::collections::HashMap<String, Option<JobEvent>> {
        self.state
            .jobs()
            .read()
            .newest_events()
            .map(|(host, event)| (host.to_string(), event.cloned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testkit::Fleet;
    use crate::app::tests::app_with_host;
    use crate::state::JobIndex;
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
        assert!(
            refused(app.start_job("alice", update("web1", "2.0.0"), crate::app::ts(1)))
                .contains("major")
        );
        assert!(
            refused(app.start_job("alice", update("web1", "1.3.2"), crate::app::ts(1)))
                .contains("downgrade")
        );
        assert!(
            refused(app.start_job("alice", update("web1", "1.6.10"), crate::app::ts(1)))
                .contains("already")
        );
        assert!(
            refused(app.start_job("alice", update("web1", "1.6.11;rm"), crate::app::ts(1)))
                .contains("target_version")
        );
        assert!(
            refused(app.start_job("alice", update("web9", "1.6.11"), crate::app::ts(1)))
                .contains("not enrolled")
        );
        assert!(
            app.state().jobs().list().unwrap().is_empty(),
            "nothing queued"
        );
    }

    #[test]
    fn one_active_job_per_host_and_it_waits_for_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let id = app
            .start_job("alice", update("web1", "1.6.10"), crate::app::ts(1))
            .unwrap();
        let job = app.job(&id).unwrap();
        assert!(!job.dispatched, "offline host: not dispatched yet");
        assert_eq!(job.event.unwrap().state(), JobState::Queued);
        assert!(
            refused(app.start_job("alice", update("web1", "1.6.10"), crate::app::ts(2)))
                .contains(&id)
        );

        // The agent connects: the job is handed over.
        let host = HostId::new("web1").unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let _reg = app.registry.register(&host, tx);
        app.record_hello(&host, "0.1.0", None, crate::app::ts_now())
            .unwrap();
        let sent = rx.try_recv().unwrap().unwrap();
        assert!(
            matches!(sent.msg, Some(Down::RunJob(ref j)) if j.job_id == id && j.target_version == "1.6.10")
        );
        assert!(app.job(&id).unwrap().dispatched);

        // Its outcome frees the host for the next job.
        let done = JobEvent {
            job_id: id.clone(),
            kind: JobKind::Update as i32,
            target_version: "1.6.10".into(),
            state: JobState::RolledBack as i32,
            failed_step: "migrate".into(),
            ..JobEvent::default()
        };
        app.record_job_event(&host, done, crate::app::ts_now())
            .unwrap();
        assert_eq!(app.job(&id).unwrap().event.unwrap().failed_step, "migrate");
        assert!(app
            .start_job("alice", update("web1", "1.6.10"), crate::app::ts(3))
            .is_ok());
        let actions: Vec<String> = app
            .state()
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
        let id = app
            .start_job("alice", update("web1", "1.6.10"), crate::app::ts(1))
            .unwrap();
        let forged = JobEvent {
            job_id: id.clone(),
            state: JobState::Succeeded as i32,
            ..JobEvent::default()
        };
        app.record_job_event(&HostId::new("web2").unwrap(), forged, crate::app::ts_now())
            .unwrap();
        assert_eq!(
            app.job(&id).unwrap().event.unwrap().state(),
            JobState::Queued
        );
    }

    #[test]
    fn a_finished_job_is_final_and_events_must_match_its_request() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let host = HostId::new("web1").unwrap();
        let id = app
            .start_job("alice", update("web1", "1.6.10"), crate::app::ts(1))
            .unwrap();
        let ev = |kind: JobKind, target: &str, state: JobState| JobEvent {
            job_id: id.clone(),
            kind: kind as i32,
            target_version: target.into(),
            state: state as i32,
            ..JobEvent::default()
        };
        let state = || app.job(&id).unwrap().state();
        // While running: another kind or target is not this job's.
        app.record_job_event(
            &host,
            ev(JobKind::Backup, "", JobState::Running),
            crate::app::ts_now(),
        )
        .unwrap();
        app.record_job_event(
            &host,
            ev(JobKind::Update, "1.7.0", JobState::Running),
            crate::app::ts_now(),
        )
        .unwrap();
        assert_eq!(state(), JobState::Queued);
        app.record_job_event(
            &host,
            ev(JobKind::Update, "1.6.10", JobState::RolledBack),
            crate::app::ts_now(),
        )
        .unwrap();
        assert_eq!(state(), JobState::RolledBack);
        // Finished: no later word changes it, nor blocks the host.
        for (kind, target, later) in [
            (JobKind::Update, "1.6.10", JobState::Succeeded),
            (JobKind::Update, "1.6.10", JobState::Running),
            (JobKind::Rollback, "", JobState::Succeeded),
        ] {
            app.record_job_event(&host, ev(kind, target, later), crate::app::ts_now())
                .unwrap();
            assert_eq!(state(), JobState::RolledBack, "{later:?} after the end");
        }
        let record = app.job(&id).unwrap();
        assert_eq!(record.event.unwrap().kind(), JobKind::Update);
        assert_eq!(app.door.counts("web1").bad_job_events, 5);
        let views = app.host_views(crate::app::ts_now()).unwrap();
        let last = views[0].last_job.clone();
        assert_eq!(last.unwrap().state(), JobState::RolledBack);
        assert!(app
            .start_job("alice", update("web1", "1.6.10"), crate::app::ts(2))
            .is_ok());
    }

    #[test]
    fn another_hosts_job_id_never_reaches_the_senders_last_job() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let t = crate::app::tests::token(&app, "web2", 60, crate::app::now());
        app.enroll(
            &t,
            &crate::app::tests::csr("web2"),
            crate::app::ts(crate::app::now()),
        )
        .unwrap();
        let id = app
            .start_job("alice", update("web1", "1.6.10"), crate::app::ts(1))
            .unwrap();
        let forged = JobEvent {
            job_id: id.clone(),
            kind: JobKind::Update as i32,
            target_version: "1.6.10".into(),
            state: JobState::Succeeded as i32,
            ..JobEvent::default()
        };
        let web2 = HostId::new("web2").unwrap();
        app.record_job_event(&web2, forged.clone(), crate::app::ts_now())
            .unwrap();
        app.record_hello(&web2, "0.1.0", Some(forged), crate::app::ts_now())
            .unwrap();
        assert_eq!(app.job(&id).unwrap().state(), JobState::Queued);
        let views = app.host_views(crate::app::ts_now()).unwrap();
        let web2 = views.iter().find(|v| v.record.host_id == "web2").unwrap();
        let web2_last = web2.last_job.clone();
        assert_eq!(
            web2_last, None,
            "a foreign job is not the sender's last job"
        );
    }

    /// The job index and the per-host reads answer as scans of every stored job would.
    fn answers_as_a_scan(app: &App, hosts: &[&str]) {
        let all: Vec<JobRecord> = app
            .state()
            .jobs()
            .list()
            .unwrap()
            .into_iter()
            .map(|(_, j)| j)
            .collect();
        assert_eq!(*app.state().jobs().read(), JobIndex::of(&all));
        for host in hosts {
            let mut scan: Vec<&JobRecord> = all.iter().filter(|j| j.host_id == *host).collect();
            scan.sort_by(|a, b| (a.created_at, &a.job_id).cmp(&(b.created_at, &b.job_id)));
            let read = app.jobs_of(&HostId::new(host).unwrap()).unwrap();
            assert_eq!(read.iter().collect::<Vec<_>>(), scan, "jobs of {host}");
        }
    }

    fn backup(host: &str) -> NewJob {
        NewJob {
            kind: JobKind::Backup,
            ..update(host, "")
        }
    }

    fn event(id: &str, state: JobState) -> JobEvent {
        JobEvent {
            job_id: id.into(),
            kind: JobKind::Backup as i32,
            state: state as i32,
            ..JobEvent::default()
        }
    }

    #[test]
    fn the_index_follows_starts_dispatches_events_and_cancels() {
        let mut fleet = Fleet::new(&[("web0", "acme"), ("web1", "acme"), ("web2", "acme")]);
        let hosts = ["web0", "web1", "web2"];
        let app = fleet.app.clone();
        fleet.disconnect("web2");
        let web0 = HostId::new("web0").unwrap();
        let a = app
            .start_job("alice", backup("web0"), crate::app::ts(10))
            .unwrap();
        let b = app
            .start_job("alice", update("web1", "1.3.2"), crate::app::ts(10))
            .unwrap();
        let c = app
            .start_job("alice", backup("web2"), crate::app::ts(11))
            .unwrap();
        answers_as_a_scan(&app, &hosts);
        assert!(app.job(&a).unwrap().dispatched && !app.job(&c).unwrap().dispatched);
        app.record_job_event(&web0, event(&a, JobState::Running), crate::app::ts_now())
            .unwrap();
        answers_as_a_scan(&app, &hosts);
        app.record_job_event(&web0, event(&a, JobState::Succeeded), crate::app::ts_now())
            .unwrap();
        app.cancel_job(&c, "not needed", crate::app::ts(12))
            .unwrap(); // never sent: ends here
        app.cancel_job(&b, "not needed", crate::app::ts(12))
            .unwrap(); // sent: the agent is asked
        answers_as_a_scan(&app, &hosts);
        assert_eq!(app.job(&c).unwrap().state(), JobState::Failed);
        assert!(!app.job(&b).unwrap().state().is_final());
        let d = app
            .start_job("alice", backup("web0"), crate::app::ts(9))
            .unwrap(); // clock went back
        fleet.connect("web2");
        answers_as_a_scan(&app, &hosts);
        let web0_jobs: Vec<String> = app
            .jobs_of(&web0)
            .unwrap()
            .into_iter()
            .map(|j| j.job_id)
            .collect();
        assert_eq!(web0_jobs, [d.clone(), a.clone()]);
        let latest = app.latest_jobs();
        assert_eq!(
            latest["web0"].as_ref().unwrap().job_id,
            a,
            "newest by creation time"
        );
        assert!(refused(app.start_job("alice", backup("web0"), crate::app::ts(13))).contains(&d));
    }

    #[test]
    fn a_store_from_before_the_job_index_is_indexed_when_the_app_opens() {
        let fleet = Fleet::new(&[("web0", "acme"), ("web1", "acme")]);
        let a = fleet
            .app
            .start_job("alice", backup("web0"), crate::app::ts(10))
            .unwrap();
        let b = fleet
            .app
            .start_job("alice", backup("web1"), crate::app::ts(11))
            .unwrap();
        fleet.app.state().drop_job_index();
        assert!(fleet
            .app
            .jobs_of(&HostId::new("web0").unwrap())
            .unwrap()
            .is_empty());
        let fleet = fleet.restart();
        answers_as_a_scan(&fleet.app, &["web0", "web1"]);
        let web1 = fleet.app.jobs_of(&HostId::new("web1").unwrap()).unwrap();
        assert_eq!(web1[0].job_id, b);
        assert!(refused(
            fleet
                .app
                .start_job("alice", backup("web0"), crate::app::ts(12))
        )
        .contains(&a));
    }

    #[test]
    fn a_rollouts_jobs_are_read_from_the_index_as_a_scan_finds_them() {
        use crate::app::testkit::{spec, t};
        let fleet = Fleet::new(&[("web0", "acme"), ("web1", "acme"), ("web2", "acme")]);
        let id = fleet
            .app
            .start_rollout("alice", spec("100%", 2, "0"), t(0))
            .unwrap();
        fleet.tick(t(0));
        let first = fleet.active_jobs(&id);
        fleet.finish(&first[0], JobState::Succeeded, "");
        fleet.tick(t(5));
        let mut scan = crate::wire::rollout::RolloutJobRecords::new();
        for job in fleet.jobs(&id) {
            let kind = job.request.as_ref().unwrap().kind();
            scan.insert((job.host_id.clone(), kind), job); // oldest first: the newest stays
        }
        assert_eq!(fleet.app.rollout_jobs(&id).unwrap(), scan);
        assert!(fleet.app.rollout_jobs("r0").unwrap().is_empty());
        let mut active: Vec<String> = fleet
            .app
            .active_jobs_of_rollout(&id)
            .unwrap()
            .into_iter()
            .map(|j| j.job_id)
            .collect();
        active.sort();
        let mut expected: Vec<String> = fleet
            .active_jobs(&id)
            .into_iter()
            .map(|j| j.job_id)
            .collect();
        expected.sort();
        assert_eq!((active.len(), active), (2, expected));
    }
}
