//! Whether the store's engine answers: since when its calls have been failing, if they are.
//!
//! A remote engine (etcd) records the outcome of each of its calls here; the controller then
//! tells operators that what it serves from memory may be stale since that moment and refuses
//! their writes naming it, until a call succeeds again. sled, on the local disk, has none.

use std::sync::Mutex;

use jiff::Timestamp;
use tracing::{info, warn};

/// The reachability of a remote engine, updated by the engine at each call.
#[derive(Debug)]
pub struct Health {
    /// What the engine is called in messages ("etcd").
    engine: &'static str,
    /// When the current run of failed calls began; `None` while calls succeed.
    failing_since: Mutex<Option<Timestamp>>,
}

impl Health {
    pub fn new(engine: &'static str) -> Self {
        Self {
            engine,
            failing_since: Mutex::new(None),
        }
    }

    pub fn engine(&self) -> &'static str {
        self.engine
    }

    /// A call reached the engine and was answered.
    pub fn succeeded(&self) {
        let mut since = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(was) = since.take() {
            info!(engine = self.engine, since = %was, "store reachable again");
        }
    }

    /// A call got no answer (or an error from the engine) at `now`.
    pub fn failed(&self, now: Timestamp) {
        let mut since = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        if since.is_none() {
            warn!(
                engine = self.engine,
                "store unreachable; serving reads from memory, refusing writes"
            );
            *since = Some(now);
        }
    }

    /// Since when calls have been failing, if they are now.
    pub fn unreachable_since(&self) -> Option<Timestamp> {
        *self.failing_since.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_of_a_run_is_remembered_until_a_call_succeeds() {
        let health = Health::new("etcd");
        assert_eq!(health.unreachable_since(), None);
        let first: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        health.failed(first);
        health.failed("2026-01-01T00:00:05Z".parse().unwrap());
        assert_eq!(health.unreachable_since(), Some(first));
        health.succeeded();
        assert_eq!(health.unreachable_since(), None);
    }
}
