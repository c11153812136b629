//! Webhook records: where an admin asked events to be POSTed, which ones, and the secret they
//! are signed with. Desired state, written by admins only.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{State, StoreError};

/// One webhook. The secret is stored as given (it must be readable to sign; the store is
/// private to the controller's user) and never logged: `Debug` leaves it out, and nothing
/// returns it over the API.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub id: String,
    pub url: String,
    /// Event types, as their wire names (`rollout.paused`, ...).
    pub events: Vec<String>,
    /// Only events of this tenant's hosts and rollouts; `None`: every tenant.
    pub tenant: Option<String>,
    pub secret: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

impl fmt::Debug for WebhookRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRecord")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("tenant", &self.tenant)
            .field("secret", &"<hidden>")
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl State {
    pub fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>, StoreError> {
        self.store.webhooks.get(id)
    }

    /// Every webhook, by id.
    pub fn webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        let mut hooks = Vec::new();
        self.store.webhooks.for_each(|_, hook| hooks.push(hook))?;
        Ok(hooks)
    }

    /// Stores a new webhook, durably; false (writing nothing) when the id is taken.
    pub fn add_webhook(&self, hook: &WebhookRecord) -> Result<bool, StoreError> {
        let added = self.store.webhooks.compare_and_swap(&hook.id, None, hook)?;
        if added {
            self.store.webhooks.flush()?;
        }
        Ok(added)
    }

    /// Removes a webhook and then every delivery of it, durably; false when there was none.
    pub fn remove_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let removed = self.store.webhooks.remove(id)?.is_some();
        self.remove_deliveries_of(id)?;
        self.flush()?;
        Ok(removed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hook(id: &str, tenant: Option<&str>, events: &[&str]) -> WebhookRecord {
        WebhookRecord {
            id: id.into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            tenant: tenant.map(str::to_string),
            secret: "s3cret-s3cret-s3cret".into(),
            created_by: "alice".into(),
            created_at: Timestamp::from_second(1_700_000_000).unwrap(),
        }
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let text = format!("{:?}", hook("wh1", None, &["host.offline"]));
        assert!(text.contains("wh1") && text.contains("<hidden>"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn webhooks_are_added_once_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let a = hook("wh-a", None, &["host.offline"]);
        assert!(state.add_webhook(&a).unwrap());
        assert!(!state.add_webhook(&a).unwrap(), "the id is taken");
        state
            .add_webhook(&hook("wh-b", Some("acme"), &["job.rolled_back"]))
            .unwrap();
        let ids: Vec<String> = state
            .webhooks()
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(ids, ["wh-a", "wh-b"]);
        assert!(state.remove_webhook("wh-a").unwrap());
        assert!(!state.remove_webhook("wh-a").unwrap());
        assert_eq!(state.webhook("wh-a").unwrap(), None);
        assert_eq!(
            state.webhook("wh-b").unwrap().unwrap().tenant.as_deref(),
            Some("acme")
        );
    }
}
