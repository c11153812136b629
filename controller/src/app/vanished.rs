//! Hosts whose presence went with the controller that held their streams, waiting out a grace
//! before the scheduler's leader says `host.offline` for them.
//!
//! A stream that ends says `host.offline` on the controller that held it
//! ([`crate::app::App::emit_if_offline`]). A controller that dies says nothing: its hosts'
//! presence keys go with its lease, and every controller's feed sees them go. Each notes
//! those hosts here (so that a new leader knows them too); the leader, one for the cluster,
//! says it once for each host that is online nowhere after [`GRACE`] (an agent that came back
//! on another controller within it gets no event) and whose holder is gone (a live holder's
//! stream ended, and it spoke).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// How long a host whose controller is gone may take to come back on another before it is
/// said to be offline: agents see their stream break at once and retry with a backoff of a
/// few seconds, so most are back before the dead controller's lease even ends.
pub const GRACE: Duration = Duration::from_secs(30);

/// How long after it went a host is forgotten unsaid: a leader elected later than that was
/// not the first to see it due (the one before may have said it already).
const FORGET: Duration = Duration::from_secs(2 * GRACE.as_secs());

/// A host whose presence went, and who held its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub host: String,
    pub holder: String,
    pub at: Timestamp,
}

/// The hosts whose presence went with another controller's lease, by host.
#[derive(Default)]
pub struct Vanished {
    hosts: Mutex<HashMap<String, Gone>>,
}

impl Vanished {
    /// `host`'s presence key went at `now`; controller `holder` had put it.
    pub fn noted(&self, host: &str, holder: String, now: Timestamp) {
        let mut hosts = self.lock();
        hosts.retain(|_, gone| !past(gone, FORGET, now));
        let host = host.to_string();
        hosts.insert(
            host.clone(),
            Gone {
                host,
                holder,
                at: now,
            },
        );
    }

    /// `host`'s stream is open again, on some controller.
    pub fn back(&self, host: &str) {
        self.lock().remove(host);
    }

    /// Takes the hosts whose grace has passed at `now`, forgetting those gone for longer
    /// than a leader may still say them.
    pub fn take_due(&self, now: Timestamp) -> Vec<Gone> {
        let mut hosts = self.lock();
        let mut due: Vec<Gone> = Vec::new();
        hosts.retain(|_, gone| {
            if !past(gone, GRACE, now) {
                return true;
            }
            if !past(gone, FORGET, now) {
                due.push(gone.clone());
            }
            false
        });
        due.sort_by(|a, b| a.host.cmp(&b.host));
        due
    }

    /// Puts back hosts taken by [`Vanished::take_due`] that could not be judged yet, unless
    /// they went again or came back meanwhile.
    pub fn put_back(&self, due: Vec<Gone>) {
        let mut hosts = self.lock();
        for gone in due {
            hosts.entry(gone.host.clone()).or_insert(gone);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Gone>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether more than `span` has passed since `gone` went, at `now`.
fn past(gone: &Gone, span: Duration, now: Timestamp) -> bool {
    let span = SignedDuration::try_from(span).expect("minutes fit");
    now.duration_since(gone.at) >= span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::ts;

    fn hosts(due: &[Gone]) -> Vec<(&str, &str)> {
        due.iter()
            .map(|g| (g.host.as_str(), g.holder.as_str()))
            .collect()
    }

    #[test]
    fn a_host_is_due_once_after_the_grace_and_not_when_it_came_back() {
        let vanished = Vanished::default();
        vanished.noted("web1", "c1".into(), ts(100));
        vanished.noted("web2", "c1".into(), ts(100));
        assert!(vanished.take_due(ts(129)).is_empty(), "within the grace");
        vanished.back("web2");
        assert_eq!(hosts(&vanished.take_due(ts(130))), [("web1", "c1")]);
        assert!(vanished.take_due(ts(131)).is_empty(), "taken once");
    }

    #[test]
    fn a_host_gone_too_long_ago_is_forgotten_unsaid() {
        let vanished = Vanished::default();
        vanished.noted("web1", "c1".into(), ts(100));
        assert!(vanished.take_due(ts(160)).is_empty(), "a leader too late");
        vanished.noted("web2", "c1".into(), ts(200));
        vanished.noted("web3", "c2".into(), ts(300));
        assert_eq!(hosts(&vanished.take_due(ts(330))), [("web3", "c2")]);
    }

    #[test]
    fn hosts_put_back_are_due_again_unless_they_went_again_meanwhile() {
        let vanished = Vanished::default();
        vanished.noted("web1", "c1".into(), ts(100));
        vanished.noted("web2", "c1".into(), ts(100));
        let due = vanished.take_due(ts(130));
        vanished.noted("web2", "c2".into(), ts(131));
        vanished.put_back(due);
        assert_eq!(hosts(&vanished.take_due(ts(135))), [("web1", "c1")]);
        assert_eq!(hosts(&vanished.take_due(ts(161))), [("web2", "c2")]);
    }
}
