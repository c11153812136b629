//! The outbox as the webhook sender works it: what is due, the outcome of each attempt
//! (delivered, retried later, or given up), and pruning what is done.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tracing::{debug, info, warn};

use crate::app::App;
use crate::error::Error;
use crate::state::{Delivery, DeliveryKey, DeliveryState, WebhookRecord};
use crate::webhook::backoff;

/// Done deliveries kept per webhook for `webhook deliveries`.
pub const KEEP_DONE: usize = 1000;
/// Done deliveries older than this are pruned.
pub const KEEP_DONE_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// A delivery to attempt now, with the webhook it goes to.
pub struct Due {
    pub key: DeliveryKey,
    pub delivery: Delivery,
    pub hook: WebhookRecord,
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// An HTTP answer: 2xx acknowledges, anything else (a redirect too) is a failure.
    Answered(u16),
    /// No answer: connect, TLS, exchange or timeout, with why.
    NoAnswer(String),
}

impl App {
    /// The deliveries due at `now` that are not in `in_flight`: per webhook, oldest first and
    /// at most `per_hook` in flight at once; and when the next one not due yet is.
    pub fn due_deliveries(
        &self,
        now: Timestamp,
        in_flight: &HashSet<DeliveryKey>,
        per_hook: usize,
    ) -> Result<(Vec<Due>, Option<Timestamp>), Error> {
        let mut busy: HashMap<&str, usize> = HashMap::new();
        for key in in_flight {
            *busy.entry(key.hook.as_str()).or_default() += 1;
        }
        let mut due = Vec::new();
        let mut next: Option<Timestamp> = None;
        for hook in self.state.webhooks()? {
            let mut room =
                per_hook.saturating_sub(busy.get(hook.id.as_str()).copied().unwrap_or(0));
            if room == 0 {
                continue;
            }
            self.state.pending_deliveries(&hook.id, |key, delivery| {
                if in_flight.contains(&key) {
                    return true;
                }
                if delivery.next_attempt_at > now {
                    next = Some(next.map_or(delivery.next_attempt_at, |n| {
                        n.min(delivery.next_attempt_at)
                    }));
                    return true;
                }
                due.push(Due {
                    key,
                    delivery,
                    hook: hook.clone(),
                });
                room -= 1;
                room > 0
            })?;
        }
        Ok((due, next))
    }

    /// Stores the outcome of an attempt at `now`: delivered on a 2xx (never sent again), else
    /// retried after the backoff (`jitter` in `[0, 1)`) or, a day after the event, given up.
    pub fn record_attempt(
        &self,
        key: &DeliveryKey,
        mut delivery: Delivery,
        attempt: Attempt,
        now: Timestamp,
        jitter: f64,
    ) -> Result<DeliveryState, Error> {
        delivery.attempts += 1;
        delivery.last_attempt_at = Some(now);
        let acknowledged = match &attempt {
            Attempt::Answered(status) => {
                delivery.last_status = Some(*status);
                let ok = (200..300).contains(status);
                delivery.last_error = (!ok).then(|| match status {
                    300..=399 => format!("HTTP {status}: redirects are not followed"),
                    _ => format!("HTTP {status}"),
                });
                ok
            }
            Attempt::NoAnswer(why) => {
                delivery.last_status = None;
                delivery.last_error = Some(why.clone());
                false
            }
        };
        let (hook, event, attempts) = (&key.hook, &delivery.event_id, delivery.attempts);
        if acknowledged {
            delivery.state = DeliveryState::Delivered;
            self.state.finish_delivery(key, &delivery)?;
            debug!(%hook, %event, attempts, "webhook delivered");
            return Ok(delivery.state);
        }
        let error = delivery.last_error.clone().unwrap_or_default();
        match backoff::next_attempt(delivery.created_at, attempts, now, jitter) {
            Some(at) => {
                delivery.next_attempt_at = at;
                self.state.retry_delivery(key, &delivery)?;
                info!(%hook, %event, attempts, %error, retry_at = %at, "webhook delivery failed; retrying");
            }
            None => {
                delivery.state = DeliveryState::Failed;
                self.state.finish_delivery(key, &delivery)?;
                warn!(%hook, %event, attempts, %error, "webhook delivery given up");
            }
        }
        Ok(delivery.state)
    }

    /// Drops done deliveries beyond the newest [`KEEP_DONE`] of each webhook, those older
    /// than [`KEEP_DONE_FOR`], and those of removed webhooks; returns how many.
    pub fn prune_deliveries(&self, now: Timestamp) -> Result<usize, Error> {
        let hooks: HashSet<String> = self.state.webhooks()?.into_iter().map(|h| h.id).collect();
        let age = SignedDuration::try_from(KEEP_DONE_FOR).expect("a week fits");
        let cutoff = now.saturating_sub(age).expect("a time in range");
        Ok(self.state.prune_deliveries(&hooks, KEEP_DONE, cutoff)?)
    }
}
