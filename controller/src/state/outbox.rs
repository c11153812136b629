//! The webhook outbox: one delivery per (event, webhook), written durably in the call that
//! records the event's fact, sent by [`crate::webhook::sender`], kept once done for
//! `webhook deliveries` and pruned.
//!
//! One tree, two key ranges: `p/HOOK/SEQ` for deliveries still to send, `d/HOOK/SEQ` for those
//! done (delivered or given up). SEQ is the engine's growing id in 16 hex digits, so each
//! hook's deliveries scan oldest first. Marking one done moves it from `p/` to `d/` in one
//! atomic batch: a delivery is never both, nor lost between.

use std::collections::HashSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::engine::Batch;
use super::{State, StoreError};

/// Deletes per batch: an engine may bound a transaction (etcd: 128 operations by default).
const CHUNK: usize = 128;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not acknowledged yet: attempted again at `next_attempt_at`.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Given up on after retrying for the give-up period.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One event for one webhook, and its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub hook_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The exact bytes POSTed and signed: the event's JSON as this webhook sees it.
    pub body: String,
    pub created_at: Timestamp,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    #[serde(default)]
    pub last_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last attempt, when it got one.
    #[serde(default)]
    pub last_status: Option<u16>,
    /// Why the last attempt got no acceptable answer (connect, TLS, timeout, a status).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// A delivery's place in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey {
    pub hook: String,
    pub seq: u64,
}

impl DeliveryKey {
    fn pending(&self) -> Vec<u8> {
        format!("p/{}/{:016x}", self.hook, self.seq).into_bytes()
    }

    fn done(&self) -> Vec<u8> {
        format!("d/{}/{:016x}", self.hook, self.seq).into_bytes()
    }

    /// The key of `p/HOOK/SEQ` or `d/HOOK/SEQ`.
    fn parse(key: &[u8]) -> Option<Self> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix("p/").or_else(|| key.strip_prefix("d/"))?;
        let (hook, seq) = rest.rsplit_once('/')?;
        Some(Self {
            hook: hook.to_string(),
            seq: u64::from_str_radix(seq, 16).ok()?,
        })
    }
}

fn prefix(range: &str, hook: &str) -> Vec<u8> {
    format!("{range}/{hook}/").into_bytes()
}

impl State {
    /// Queues `deliveries` (pending, each under a new key), durable when it returns.
    pub fn queue_deliveries(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        for chunk in deliveries.chunks(CHUNK) {
            let mut batch = Batch::default();
            for delivery in chunk {
                let key = DeliveryKey {
                    hook: delivery.hook_id.clone(),
                    seq: self.store.engine.generate_id()?,
                };
                batch.put(key.pending(), serde_json::to_vec(delivery)?);
            }
            self.store.outbox.apply(batch)?;
        }
        self.store.outbox.flush()?;
        Ok(())
    }

    /// Visits the hook's pending deliveries, oldest first, while `visit` returns true.
    pub fn pending_deliveries(
        &self,
        hook: &str,
        mut visit: impl FnMut(DeliveryKey, Delivery) -> bool,
    ) -> Result<(), StoreError> {
        for entry in self.store.outbox.scan_prefix(&prefix("p", hook)) {
            let (key, value) = entry?;
            let Some(decoded) = decode(&key, &value) else {
                continue;
            };
            if !visit(decoded.0, decoded.1) {
                break;
            }
        }
        Ok(())
    }

    /// Stores a pending delivery's new attempt count and schedule, durably.
    pub fn retry_delivery(&self, key: &DeliveryKey, delivery: &Delivery) -> Result<(), StoreError> {
        self.store
            .outbox
            .put(&key.pending(), &serde_json::to_vec(delivery)?)?;
        self.store.outbox.flush()?;
        Ok(())
    }

    /// Moves a delivery from pending to done (delivered or failed) in one atomic batch,
    /// durable when it returns: after this, it is never sent again.
    pub fn finish_delivery(
        &self,
        key: &DeliveryKey,
        delivery: &Delivery,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        batch.delete(key.pending());
        batch.put(key.done(), serde_json::to_vec(delivery)?);
        self.store.outbox.apply(batch)?;
        self.store.outbox.flush()?;
        Ok(())
    }

    /// Every delivery of the hook, pending and done, newest first.
    pub fn deliveries_of(&self, hook: &str) -> Result<Vec<(DeliveryKey, Delivery)>, StoreError> {
        let mut all = Vec::new();
        for range in ["p", "d"] {
            for entry in self.store.outbox.scan_prefix(&prefix(range, hook)) {
                let (key, value) = entry?;
                all.extend(decode(&key, &value));
            }
        }
        all.sort_by_key(|(key, _)| std::cmp::Reverse(key.seq));
        Ok(all)
    }

    /// Drops done deliveries beyond the newest `keep` of each hook and those last attempted
    /// before `cutoff`, and every delivery of a hook not in `hooks` (removed while one of its
    /// deliveries was being sent). Returns how many were dropped.
    pub fn prune_deliveries(
        &self,
        hooks: &HashSet<String>,
        keep: usize,
        cutoff: Timestamp,
    ) -> Result<usize, StoreError> {
        let mut doomed = Vec::new();
        for entry in self.store.outbox.scan_prefix(b"p/") {
            let (key, _) = entry?;
            if DeliveryKey::parse(&key).is_some_and(|k| !hooks.contains(&k.hook)) {
                doomed.push(key);
            }
        }
        // Done keys of one hook are adjacent and oldest first: count each hook's from its end.
        let mut done: Vec<(DeliveryKey, Vec<u8>, Option<Timestamp>)> = Vec::new();
        for entry in self.store.outbox.scan_prefix(b"d/") {
            let (key, value) = entry?;
            let Some(parsed) = DeliveryKey::parse(&key) else {
                doomed.push(key);
                continue;
            };
            let last = serde_json::from_slice::<Delivery>(&value)
                .ok()
                .map(|d| d.last_attempt_at.unwrap_or(d.created_at));
            done.push((parsed, key, last));
        }
        let mut kept_of_hook = 0;
        let mut hook_seen: Option<&str> = None;
        for (parsed, key, last) in done.iter().rev() {
            if hook_seen != Some(parsed.hook.as_str()) {
                hook_seen = Some(&parsed.hook);
                kept_of_hook = 0;
            }
            let expired = last.is_none_or(|at| at < cutoff);
            if !hooks.contains(&parsed.hook) || expired || kept_of_hook >= keep {
                doomed.push(key.clone());
            } else {
                kept_of_hook += 1;
            }
        }
        self.delete_outbox_keys(&doomed)?;
        Ok(doomed.len())
    }

    /// Deletes every delivery of `hook`, pending and done.
    pub(super) fn remove_deliveries_of(&self, hook: &str) -> Result<(), StoreError> {
        let mut keys = Vec::new();
        for range in ["p", "d"] {
            for entry in self.store.outbox.scan_prefix(&prefix(range, hook)) {
                keys.push(entry?.0);
            }
        }
        self.delete_outbox_keys(&keys)
    }

    fn delete_outbox_keys(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        for chunk in keys.chunks(CHUNK) {
            let mut batch = Batch::default();
            for key in chunk {
                batch.delete(key.clone());
            }
            self.store.outbox.apply(batch)?;
        }
        if !keys.is_empty() {
            self.store.outbox.flush()?;
        }
        Ok(())
    }
}

/// A stored delivery; one that does not decode is logged and skipped (it is never sent).
fn decode(key: &[u8], value: &[u8]) -> Option<(DeliveryKey, Delivery)> {
    let parsed = DeliveryKey::parse(key)?;
    match serde_json::from_slice(value) {
        Ok(delivery) => Some((parsed, delivery)),
        Err(err) => {
            warn!(hook = %parsed.hook, seq = parsed.seq, error = %err, "corrupt webhook delivery skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::reopen;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    pub(crate) fn delivery(hook: &str, event: &str, created: i64) -> Delivery {
        Delivery {
            hook_id: hook.into(),
            event_id: event.into(),
            event_type: "host.offline".into(),
            body: format!("{{\"id\":\"{event}\"}}"),
            created_at: at(created),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: at(created),
            last_attempt_at: None,
            last_status: None,
            last_error: None,
        }
    }

    fn pending(state: &State, hook: &str) -> Vec<(DeliveryKey, Delivery)> {
        let mut all = Vec::new();
        state
            .pending_deliveries(hook, |k, d| {
                all.push((k, d));
                true
            })
            .unwrap();
        all
    }

    #[test]
    fn queued_deliveries_survive_a_restart_and_a_finished_one_is_never_pending_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = State::open(dir.path()).unwrap();
            let queued = [
                delivery("wh-a", "e1", 10),
                delivery("wh-b", "e1", 10),
                delivery("wh-a", "e2", 11),
            ];
            state.queue_deliveries(&queued).unwrap();
            let (key, mut first) = pending(&state, "wh-a").remove(0);
            assert_eq!(first.event_id, "e1", "oldest first");
            first.state = DeliveryState::Delivered;
            first.attempts = 1;
            state.finish_delivery(&key, &first).unwrap();
            // Dropped without a shutdown: what was flushed is all there is.
        }
        let state = reopen(dir.path());
        let a: Vec<String> = pending(&state, "wh-a")
            .into_iter()
            .map(|(_, d)| d.event_id)
            .collect();
        assert_eq!(a, ["e2"]);
        assert_eq!(pending(&state, "wh-b").len(), 1);
        let all = state.deliveries_of("wh-a").unwrap();
        let listed: Vec<(&str, DeliveryState)> = all
            .iter()
            .map(|(_, d)| (d.event_id.as_str(), d.state))
            .collect();
        assert_eq!(
            listed,
            [
                ("e2", DeliveryState::Pending),
                ("e1", DeliveryState::Delivered)
            ],
            "newest first"
        );
    }

    #[test]
    fn pruning_keeps_the_newest_done_deliveries_of_each_hook_and_drops_old_and_orphaned_ones() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let mut queued = Vec::new();
        for i in 0..5 {
            queued.push(delivery("wh-a", &format!("a{i}"), 100 + i));
            queued.push(delivery("wh-b", &format!("b{i}"), 100 + i));
        }
        queued.push(delivery("wh-gone", "g", 100));
        state.queue_deliveries(&queued).unwrap();
        for hook in ["wh-a", "wh-b"] {
            for (key, mut d) in pending(&state, hook) {
                d.state = DeliveryState::Delivered;
                // b0 was last tried long ago.
                let last = if d.event_id == "b0" { 1 } else { 200 };
                d.last_attempt_at = Some(at(last));
                state.finish_delivery(&key, &d).unwrap();
            }
        }
        state
            .queue_deliveries(&[delivery("wh-a", "a-pending", 300)])
            .unwrap();
        let hooks: HashSet<String> = ["wh-a".to_string(), "wh-b".to_string()].into();
        let dropped = state.prune_deliveries(&hooks, 3, at(150)).unwrap();
        let ids = |hook: &str| -> Vec<String> {
            state
                .deliveries_of(hook)
                .unwrap()
                .into_iter()
                .map(|(_, d)| d.event_id)
                .collect()
        };
        assert_eq!(
            ids("wh-a"),
            ["a-pending", "a4", "a3", "a2"],
            "pending is never pruned"
        );
        assert_eq!(ids("wh-b"), ["b4", "b3", "b2"]);
        assert!(ids("wh-gone").is_empty());
        assert_eq!(dropped, 2 + 2 + 1);
    }

    #[test]
    fn removing_a_hook_removes_its_deliveries_beyond_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let hook = crate::state::webhooks::tests::hook("wh-a", None, &["host.offline"]);
        state.add_webhook(&hook).unwrap();
        let many: Vec<Delivery> = (0..CHUNK as i64 * 2 + 5)
            .map(|i| delivery("wh-a", &format!("e{i}"), i))
            .collect();
        state.queue_deliveries(&many).unwrap();
        state.queue_deliveries(&[delivery("wh-b", "x", 1)]).unwrap();
        assert!(state.remove_webhook("wh-a").unwrap());
        assert!(state.deliveries_of("wh-a").unwrap().is_empty());
        assert_eq!(state.deliveries_of("wh-b").unwrap().len(), 1);
    }
}
