//! Webhook events where they happen: each is written to the outbox for every webhook it goes
//! to, durably, in the call that records its fact and right after it (so a kill between the
//! two writes, microseconds apart, is the one way to lose an event).
//!
//! Rollout phases (started, paused, completed, aborted) from the scheduler and operators'
//! actions; jobs that finished rolled back or with a failed rollback; a host whose stream
//! ended with no other open, or whose controller died and that did not come back elsewhere
//! (said by the scheduler's leader, [`super::vanished`]); a host that turned unhealthy outside of a job (during a job its
//! health is the job's business, and the job's own outcome is the event). Host events come
//! at most once per host and type every [`HOST_EVENT_EVERY`]: a host whose agent reconnects or
//! flips its health in a loop (it may be hostile) cannot flood the outbox or a pager.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::{JobEvent, JobState};
use jiff::{SignedDuration, Timestamp};
use tracing::{debug, info};

use crate::app::{rollout_tenants, App};
use crate::door::text::cut;
use crate::error::Error;
use crate::rollout::Phase;
use crate::state::{Delivery, DeliveryState, RolloutRecord, WebhookRecord};
use crate::webhook::event::new_event_id;
use crate::webhook::{Event, EventType, Subject};

/// The most of agent-sent text (a job's reason, health reasons) quoted in a summary.
const QUOTED: usize = 300;

/// The least time between two events of one type about one host.
pub const HOST_EVENT_EVERY: Duration = Duration::from_secs(60);

/// What the App keeps for webhooks: the sender's wake-up, and when each host's last host
/// event of each type was queued (bounded by the enrolled hosts: an agent speaks for its own).
#[derive(Default)]
pub struct Signals {
    wake: tokio::sync::Notify,
    host_events: Mutex<HashMap<(EventType, String), Timestamp>>,
}

/// The event a rollout's move from `before` (`None`: just created) to `after` is, if any.
pub fn phase_event(before: Option<&Phase>, after: &Phase) -> Option<EventType> {
    let was = |f: fn(&Phase) -> bool| before.is_some_and(f);
    match after {
        Phase::Running if before.is_none() || was(|p| matches!(p, Phase::Planned)) => {
            Some(EventType::RolloutStarted)
        }
        Phase::Paused { .. } if !was(|p| matches!(p, Phase::Paused { .. })) => {
            Some(EventType::RolloutPaused)
        }
        Phase::Completed { .. } if !was(|p| matches!(p, Phase::Completed { .. })) => {
            Some(EventType::RolloutCompleted)
        }
        Phase::Aborted { .. } if !was(|p| matches!(p, Phase::Aborted { .. })) => {
            Some(EventType::RolloutAborted)
        }
        _ => None,
    }
}

impl App {
    /// Asks the webhook sender to look at the outbox now.
    pub fn wake_webhooks(&self) {
        self.webhooks.wake.notify_one();
    }

    /// Resolves when [`App::wake_webhooks`] was called since the last wait.
    pub async fn webhooks_woken(&self) {
        self.webhooks.wake.notified().await;
    }

    /// Whether a `kind` event about `host` may go out at `now` (none in the last
    /// [`HOST_EVENT_EVERY`]); if so, it is counted as gone.
    fn host_event_due(&self, kind: EventType, host: &HostId, now: Timestamp) -> bool {
        let every = SignedDuration::try_from(HOST_EVENT_EVERY).expect("a minute fits");
        let mut last = self
            .webhooks
            .host_events
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = (kind, host.to_string());
        if last
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < every)
        {
            debug!(host = %host, %kind, "host event too soon after the last; not sent");
            return false;
        }
        last.insert(key, now);
        true
    }

    /// Queues `event` for every webhook it goes to, durably, and wakes the sender.
    pub(crate) fn emit(&self, event: &Event) -> Result<(), Error> {
        let hooks: Vec<WebhookRecord> = self
            .state
            .webhooks()?
            .into_iter()
            .filter(|hook| event.goes_to(hook))
            .collect();
        self.queue_event_for(event, &hooks)
    }

    /// Queues `event` for `hooks`, durably, and wakes the sender.
    pub(crate) fn queue_event_for(
        &self,
        event: &Event,
        hooks: &[WebhookRecord],
    ) -> Result<(), Error> {
        if hooks.is_empty() {
            return Ok(());
        }
        let deliveries: Vec<Delivery> = hooks
            .iter()
            .map(|hook| Delivery {
                hook_id: hook.id.clone(),
                event_id: event.id.clone(),
                event_type: event.kind.as_str().to_string(),
                body: event.body_for(hook),
                created_at: event.time,
                state: DeliveryState::Pending,
                attempts: 0,
                next_attempt_at: event.time,
                last_attempt_at: None,
                last_status: None,
                last_error: None,
            })
            .collect();
        self.state.queue_deliveries(&deliveries)?;
        info!(event = %event.id, kind = %event.kind, hooks = hooks.len(), "webhook event queued");
        self.wake_webhooks();
        Ok(())
    }

    /// After a rollout record moved from phase `before` (`None`: just created) to the one it
    /// has now, was stored: its event, if the move is one.
    pub(crate) fn emit_rollout_change(
        &self,
        before: Option<&Phase>,
        record: &RolloutRecord,
        now: Timestamp,
    ) -> Result<(), Error> {
        let Some(kind) = phase_event(before, &record.state.phase) else {
            return Ok(());
        };
        let (id, target) = (&record.id, &record.state.spec.target);
        let summary = match &record.state.phase {
            Phase::Running => format!(
                "rollout {id} to {target} started: {} hosts in {} waves",
                record.state.eligible,
                record.state.waves.len()
            ),
            Phase::Completed { .. } => {
                let failed = record
                    .state
                    .hosts
                    .iter()
                    .filter(|h| h.state.is_failure())
                    .count();
                format!("rollout {id} to {target} completed ({failed} hosts failed)")
            }
            phase => format!("rollout {id} to {target} {phase}"),
        };
        self.emit(&Event {
            id: new_event_id(now),
            kind,
            time: now,
            tenants: rollout_tenants(record),
            subject: Subject::Rollout {
                rollout: id.clone(),
            },
            summary,
        })
    }

    /// After a job's final event was stored: `job.rolled_back` or `job.rollback_failed`.
    pub(crate) fn emit_job_finished(
        &self,
        host: &HostId,
        event: &JobEvent,
        now: Timestamp,
    ) -> Result<(), Error> {
        let (kind, what) = match event.state() {
            JobState::RolledBack => (EventType::JobRolledBack, "was rolled back"),
            JobState::RollbackFailed => (
                EventType::JobRollbackFailed,
                "could not be rolled back: the host needs a person",
            ),
            _ => return Ok(()),
        };
        let rollout_id = self
            .state
            .jobs()
            .get(&event.job_id)?
            .map(|job| job.rollout_id)
            .filter(|id| !id.is_empty());
        let mut summary = format!(
            "host {host}: {} job {} failed at {} and {what}",
            event
                .kind()
                .as_str_name()
                .trim_start_matches("JOB_KIND_")
                .to_lowercase(),
            event.job_id,
            event.failed_step,
        );
        if !event.reason.is_empty() {
            summary = format!("{summary} ({})", cut(&event.reason, QUOTED));
        }
        self.emit(&Event {
            id: new_event_id(now),
            kind,
            time: now,
            tenants: self.tenants_of(host),
            subject: Subject::Host {
                host: host.to_string(),
                job_id: Some(event.job_id.clone()),
                rollout_id,
            },
            summary,
        })
    }

    /// After the host's stream ended: `host.offline`, unless another stream of it is open.
    pub(crate) fn emit_if_offline(&self, host: &HostId, now: Timestamp) -> Result<(), Error> {
        if self.registry.is_online(host.as_str())
            || !self.host_event_due(EventType::HostOffline, host, now)
        {
            return Ok(());
        }
        self.emit(&Event {
            id: new_event_id(now),
            kind: EventType::HostOffline,
            time: now,
            tenants: self.tenants_of(host),
            subject: host_subject(host),
            summary: format!("host {host} went offline: its agent's stream ended"),
        })
    }

    /// On the scheduler's leader: `host.offline` for each host whose presence went with its
    /// controller's lease more than [`super::vanished::GRACE`] ago, that is online nowhere now and
    /// whose controller is gone (a live one's stream ended, and it said so itself).
    pub(crate) fn emit_vanished_offline(&self, now: Timestamp) -> Result<(), Error> {
        let due = self.vanished.take_due(now);
        let Some(etcd) = self.peers.get().and_then(|p| p.etcd.as_ref()) else {
            return Ok(());
        };
        if due.is_empty() {
            return Ok(());
        }
        let alive: BTreeSet<String> = match etcd.controllers() {
            Ok(controllers) => controllers.into_iter().map(|c| c.name).collect(),
            Err(err) => {
                self.vanished.put_back(due);
                return Err(Error::Store(err.into()));
            }
        };
        for gone in due {
            let Ok(host) = HostId::new(&gone.host) else {
                continue;
            };
            if self.registry.is_online(host.as_str()) {
                debug!(host = %host, "host back within the grace; no host.offline");
                continue;
            }
            if alive.contains(&gone.holder)
                || !self.host_event_due(EventType::HostOffline, &host, now)
            {
                continue;
            }
            self.emit(&Event {
                id: new_event_id(now),
                kind: EventType::HostOffline,
                time: now,
                tenants: self.tenants_of(&host),
                subject: host_subject(&host),
                summary: format!(
                    "host {host} went offline: controller {} that held its stream is gone",
                    gone.holder
                ),
            })?;
        }
        Ok(())
    }

    /// Whether the host is healthy now, as rollouts judge it (before a report changes it).
    pub(crate) fn is_healthy_now(&self, host: &HostId) -> bool {
        self.state
            .observations()
            .seen_all([host.as_str()])
            .pop()
            .flatten()
            .is_some_and(|seen| seen.healthy)
    }

    /// After a report was recorded: `host.unhealthy` if the host was healthy before it and is
    /// not now, and no job holds it.
    pub(crate) fn emit_if_unhealthy(
        &self,
        host: &HostId,
        was_healthy: bool,
        now: Timestamp,
    ) -> Result<(), Error> {
        if !was_healthy || self.is_healthy_now(host) {
            return Ok(());
        }
        if !self.state.jobs().read().active(host.as_str()).is_empty()
            || !self.host_event_due(EventType::HostUnhealthy, host, now)
        {
            return Ok(());
        }
        let reasons = self
            .state
            .observations()
            .get(host.as_str())
            .and_then(|o| {
                let inventory = o.inventory.as_ref()?;
                let mut why: Vec<String> = inventory.health.as_ref()?.reasons.clone();
                why.extend(inventory.errors.iter().cloned());
                Some(why.join("; "))
            })
            .unwrap_or_default();
        let mut summary = format!("host {host} turned unhealthy");
        if !reasons.is_empty() {
            summary = format!("{summary}: {}", cut(&reasons, QUOTED));
        }
        self.emit(&Event {
            id: new_event_id(now),
            kind: EventType::HostUnhealthy,
            time: now,
            tenants: self.tenants_of(host),
            subject: host_subject(host),
            summary,
        })
    }

    /// The host's tenant, as a set (empty for a host the controller forgot).
    fn tenants_of(&self, host: &HostId) -> BTreeSet<String> {
        self.state
            .host(host.as_str())
            .map(|record| record.tenant)
            .into_iter()
            .collect()
    }
}

fn host_subject(host: &HostId) -> Subject {
    Subject::Host {
        host: host.to_string(),
        job_id: None,
        rollout_id: None,
    }
}
