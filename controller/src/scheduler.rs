//! The rollout scheduler: a level-triggered loop. Each [`tick`] loads every active rollout
//! from the store, builds the fleet of their hosts, asks [`decide`] what to do, stores the
//! decision's state (flushed), and only then acts: creates jobs, cancels overdue ones, audits
//! what changed. The store keeps active rollouts decoded and the fleet is read from memory
//! ([`crate::state`]), so a tick decodes no record of the fleet and costs nothing without an
//! active rollout. Connections, job events and changes of a host's version or health wake it.
//!
//! Nothing lives only in memory: a controller killed anywhere resumes from the store. A host
//! whose state says it runs but that has no job of the rollout (killed between the write and
//! the act) gets its job on the next tick; a host that has one is never given a second, as
//! the store is checked. Jobs in flight are reconciled with what agents report on reconnect.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::proto::{JobKind, JobOptions};
use jiff::Timestamp;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::app::App;
use crate::app::FleetSnapshot;
use crate::app::NewJob;
use crate::error::Error;
use crate::failpoint;
use crate::leadership::{Leadership, Term};
use crate::rollout::{decide, Decision, Event};
use crate::state::RolloutRecord;

/// The longest the loop sleeps between ticks; reports and operator actions wake it sooner.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);
/// After a wake-up, how long to wait for more news before ticking (reports come in bursts).
const COALESCE: Duration = Duration::from_millis(100);

/// Runs ticks while this controller leads, until `stop` turns true or its sender is dropped.
/// Losing leadership stops the ticks at once (a tick under way finds its writes refused by
/// the fence); winning it again resumes them from the store.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>, mut leadership: Leadership) {
    failpoint::announce();
    while !*stop.borrow() {
        let Some(term) = leadership.current() else {
            tokio::select! {
                _ = stop.changed() => {}
                () = leadership.changed() => {}
            }
            if stop.has_changed().is_err() {
                break;
            }
            continue;
        };
        // Other controllers wrote while this one did not schedule: it reads the store
        // again first, and resumes every rollout from there.
        if matches!(term, Term::Fenced(_)) {
            let state = app.clone();
            let reloaded = tokio::task::spawn_blocking(move || state.state().reload()).await;
            if !matches!(reloaded, Ok(Ok(()))) {
                warn!(?reloaded, "cannot read the state again; not scheduling yet");
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(MAX_SLEEP) => {}
                }
                continue;
            }
        }
        info!("rollout scheduler started");
        app.metrics().set_leader(true);
        lead(&app, &mut stop, &mut leadership, &term).await;
        app.metrics().set_leader(false);
        info!("rollout scheduler stopped");
        if stop.has_changed().is_err() {
            break;
        }
    }
}

/// Ticks under `term` while it is the term in force and `stop` is not set.
async fn lead(
    app: &Arc<App>,
    stop: &mut watch::Receiver<bool>,
    leadership: &mut Leadership,
    term: &Term,
) {
    while !*stop.borrow() && leadership.current().as_ref() == Some(term) {
        let worker = app.clone();
        let fenced = term.clone();
        let ticked = tokio::task::spawn_blocking(move || {
            // On etcd, what other controllers write reaches the caches through the feed.
            fenced.run(|| {
                let now = Timestamp::now();
                // Hosts a dead controller took offline are said by the leader, once.
                if let Err(err) = worker.emit_vanished_offline(now) {
                    warn!(error = %err, "host.offline of a dead controller's hosts not queued; again");
                }
                tick(&worker, now)
            })
        });
        let wait = match ticked.await {
            Ok(Ok(wait)) => wait,
            Ok(Err(err)) => {
                warn!(error = %err, "scheduler tick failed; retrying");
                MAX_SLEEP
            }
            Err(err) => {
                warn!(error = %err, "scheduler tick panicked; retrying");
                MAX_SLEEP
            }
        };
        tokio::select! {
            () = pause(app, wait, stop) => {}
            () = leadership.changed() => {}
        }
        if stop.has_changed().is_err() {
            break;
        }
    }
}

/// Waits between two ticks: `wait`, or [`COALESCE`] after a wake-up (reports come in bursts),
/// or until `stop` changes.
async fn pause(app: &App, wait: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = stop.changed() => {}
        _ = app.woken() => tokio::time::sleep(COALESCE).await,
        _ = tokio::time::sleep(wait) => {}
    }
}

/// One pass over every active rollout at `now`; returns how long to sleep before the next.
pub fn tick(app: &App, now: Timestamp) -> Result<Duration, Error> {
    let _guard = app.lock_rollouts();
    app.metrics().ticked();
    let active: Vec<RolloutRecord> = app.state().active_rollouts();
    let mut wake = MAX_SLEEP;
    if active.is_empty() {
        return Ok(wake);
    }
    let hosts: BTreeSet<&str> = active
        .iter()
        .flat_map(|r| r.state.hosts.iter().map(|h| h.host_id.as_str()))
        .collect();
    let snapshot = app.fleet_snapshot_of(&hosts)?;
    for record in active {
        let decision = decide(&record.state, &snapshot.for_rollout(&record.id), now);
        let mut next = record.clone();
        next.state = decision.next.clone();
        if next != record {
            // The fencing test parks a tick here: decided, not written, while it pauses the
            // process past its lease.
            failpoint::park(failpoint::SCHEDULER_BEFORE_WRITE);
            app.state().put_rollout(&next)?;
            app.emit_rollout_change(Some(&record.state.phase), &next, now)?;
        }
        act(app, &snapshot, &next, &decision, now)?;
        if let Some(at) = decision.next_wake {
            let until = Duration::try_from(at.duration_since(now)).unwrap_or_default();
            wake = wake.min(until);
        }
    }
    Ok(wake)
}

/// Carries out a stored decision: jobs for running hosts that have none, cancels, audit.
fn act(
    app: &App,
    snapshot: &FleetSnapshot,
    record: &RolloutRecord,
    decision: &Decision,
    now: Timestamp,
) -> Result<(), Error> {
    let id = &record.id;
    for event in &decision.events {
        let (action, target) = match event {
            Event::Host { host_id, .. } | Event::Revert { host_id, .. } => {
                ("rollout.host", host_id.as_str())
            }
            Event::WaveStarted { .. } | Event::WaveFinished { .. } => ("rollout.wave", id.as_str()),
            Event::Phase(_) => ("rollout.phase", id.as_str()),
            Event::RollbackFinished => ("rollout.rollback", id.as_str()),
        };
        let detail = match event {
            Event::Phase(phase) => format!("rollout {id} {phase}"),
            _ => format!("rollout {id}: {event}"),
        };
        app.audit_entry(now, "controller", action, target, &detail)?;
        info!(rollout = %id, %event, "rollout event");
    }
    for host_id in decision.start.iter().chain(&decision.missing_jobs) {
        ensure_job(app, snapshot, record, host_id, JobKind::Update, now)?;
    }
    for host_id in decision.revert.iter().chain(&decision.missing_rollbacks) {
        ensure_job(app, snapshot, record, host_id, JobKind::Rollback, now)?;
    }
    for host_id in &decision.cancel {
        for kind in [JobKind::Update, JobKind::Rollback] {
            let overdue = snapshot
                .job(id, host_id, kind)
                .filter(|job| !job.state.is_final());
            if let Some(job) = overdue {
                let reason = format!("rollout {id}: healthy deadline passed");
                app.cancel_job(&job.job_id, &reason, now)?;
            }
        }
    }
    Ok(())
}

/// Creates the host's job of `kind` for the rollout unless the store already holds one.
/// A refusal (the host is busy with another job, revoked, ...) is logged and retried on the
/// next tick; the rollout's healthy deadline bounds the retries.
fn ensure_job(
    app: &App,
    snapshot: &FleetSnapshot,
    record: &RolloutRecord,
    host_id: &str,
    kind: JobKind,
    now: Timestamp,
) -> Result<(), Error> {
    if snapshot.job(&record.id, host_id, kind).is_some() {
        return Ok(());
    }
    let (operator, target) = match kind {
        JobKind::Rollback => (
            record.rollback_by.as_deref().unwrap_or(&record.created_by),
            String::new(),
        ),
        _ => (
            record.created_by.as_str(),
            record.state.spec.target.to_string(),
        ),
    };
    let job = NewJob {
        host_id: host_id.into(),
        kind,
        target_version: target,
        options: JobOptions::default(),
        rollout_id: Some(record.id.clone()),
    };
    match app.start_job(operator, job, now) {
        Ok(job_id) => {
            debug!(rollout = %record.id, host = host_id, job = %job_id, "rollout job created");
            Ok(())
        }
        Err(err @ Error::Store(_)) => Err(err),
        Err(err) => {
            warn!(rollout = %record.id, host = host_id, kind = kind.as_str_name(), error = %err, "rollout job not created; retrying");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
