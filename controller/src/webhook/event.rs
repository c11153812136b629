//! Webhook events: the types a hook subscribes to, what happened, which hooks it goes to
//! (type and tenant filters), and the JSON document each of them receives.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::state::WebhookRecord;

/// What a webhook can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    RolloutStarted,
    RolloutPaused,
    RolloutCompleted,
    RolloutAborted,
    JobRolledBack,
    JobRollbackFailed,
    HostOffline,
    HostUnhealthy,
    /// Sent by `webhook test` to that hook only; not subscribable.
    Test,
}

impl EventType {
    /// The types a webhook may subscribe to, in the order the help lists them.
    pub const SUBSCRIBABLE: [EventType; 8] = [
        EventType::RolloutStarted,
        EventType::RolloutPaused,
        EventType::RolloutCompleted,
        EventType::RolloutAborted,
        EventType::JobRolledBack,
        EventType::JobRollbackFailed,
        EventType::HostOffline,
        EventType::HostUnhealthy,
    ];

    /// The wire name (`X-Boltfleet-Event`, the document's `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RolloutStarted => "rollout.started",
            EventType::RolloutPaused => "rollout.paused",
            EventType::RolloutCompleted => "rollout.completed",
            EventType::RolloutAborted => "rollout.aborted",
            EventType::JobRolledBack => "job.rolled_back",
            EventType::JobRollbackFailed => "job.rollback_failed",
            EventType::HostOffline => "host.offline",
            EventType::HostUnhealthy => "host.unhealthy",
            EventType::Test => "test",
        }
    }

    /// A subscribable type by its wire name.
    pub fn subscribable(name: &str) -> Option<Self> {
        Self::SUBSCRIBABLE.into_iter().find(|t| t.as_str() == name)
    }

    /// The wire names of every subscribable type, comma-separated (for errors and help).
    pub fn names() -> String {
        Self::SUBSCRIBABLE
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the event is about: a host or a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Host {
        host: String,
        job_id: Option<String>,
        rollout_id: Option<String>,
    },
    Rollout {
        rollout: String,
    },
    /// A `webhook test`: about nothing.
    Nothing,
}

/// One thing that happened, before it is cut to each webhook's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique, the same for every webhook it goes to: receivers deduplicate by it.
    pub id: String,
    pub kind: EventType,
    pub time: Timestamp,
    /// The tenants it concerns: a host's one, a rollout's (every tenant of its hosts).
    pub tenants: BTreeSet<String>,
    pub subject: Subject,
    /// For people: what happened. Agent text in it was bounded and escaped by the door.
    pub summary: String,
}

/// A new event id: time-ordered, random enough never to collide.
pub fn new_event_id(now: Timestamp) -> String {
    format!("e{:x}-{:016x}", now.as_second(), rand::random::<u64>())
}

/// The document a receiver gets.
#[derive(Serialize)]
struct Document<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    /// The one tenant it concerns (or the hook's own); `null` for a rollout of several.
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenants: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<&'a str>,
    summary: &'a str,
}

impl Event {
    /// Whether `hook` gets this event: it subscribed to the type and, when it names a tenant,
    /// the event concerns that tenant. A test event goes only where it is sent.
    pub fn goes_to(&self, hook: &WebhookRecord) -> bool {
        if self.kind == EventType::Test {
            return false;
        }
        let subscribed = hook.events.iter().any(|e| e == self.kind.as_str());
        let tenant_ok = hook
            .tenant
            .as_ref()
            .is_none_or(|t| self.tenants.contains(t));
        subscribed && tenant_ok
    }

    /// The JSON document `hook` receives. A hook of one tenant sees only that tenant's name,
    /// even for a rollout across several.
    pub fn body_for(&self, hook: &WebhookRecord) -> String {
        let tenants: Vec<&str> = match &hook.tenant {
            Some(own) => vec![own.as_str()],
            None => self.tenants.iter().map(String::as_str).collect(),
        };
        let (host, rollout, rollout_id, job_id) = match &self.subject {
            Subject::Host {
                host,
                job_id,
                rollout_id,
            } => (
                Some(host.as_str()),
                None,
                rollout_id.as_deref(),
                job_id.as_deref(),
            ),
            Subject::Rollout { rollout } => (None, Some(rollout.as_str()), None, None),
            Subject::Nothing => (None, None, None, None),
        };
        let document = Document {
            id: &self.id,
            kind: self.kind.as_str(),
            time: self.time.to_string(),
            tenant: match tenants.as_slice() {
                [one] => Some(one),
                _ => None,
            },
            tenants: rollout.is_some().then(|| tenants.clone()),
            host,
            rollout,
            rollout_id,
            job_id,
            summary: &self.summary,
        };
        serde_json::to_string(&document).expect("an event serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::sample_webhook as hook;

    fn event(kind: EventType, tenants: &[&str], subject: Subject) -> Event {
        Event {
            id: "e1".into(),
            kind,
            time: Timestamp::from_second(1_700_000_000).unwrap(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            subject,
            summary: "something happened".into(),
        }
    }

    fn host_event(kind: EventType, tenant: &str) -> Event {
        let subject = Subject::Host {
            host: "web1".into(),
            job_id: Some("j1".into()),
            rollout_id: None,
        };
        event(kind, &[tenant], subject)
    }

    #[test]
    fn hooks_get_the_types_they_subscribed_to_of_their_tenant_only() {
        let all = hook("wh1", None, &["job.rolled_back", "rollout.paused"]);
        let acme = hook("wh2", Some("acme"), &["job.rolled_back", "rollout.paused"]);
        let rolled_back = host_event(EventType::JobRolledBack, "acme");
        let offline = host_event(EventType::HostOffline, "acme");
        let globex = host_event(EventType::JobRolledBack, "globex");
        let rollout = Subject::Rollout {
            rollout: "r1".into(),
        };
        let both = event(EventType::RolloutPaused, &["acme", "globex"], rollout);
        let cases = [
            (&all, &rolled_back, true),
            (&all, &offline, false),
            (&all, &globex, true),
            (&acme, &rolled_back, true),
            (&acme, &globex, false),
            (&acme, &both, true),
            (&all, &both, true),
        ];
        for (hook, event, expected) in cases {
            assert_eq!(event.goes_to(hook), expected, "{} {:?}", hook.id, event);
        }
        let test = event(EventType::Test, &[], Subject::Nothing);
        assert!(
            !test.goes_to(&all),
            "a test event is sent to one hook, by id"
        );
    }

    #[test]
    fn unknown_type_names_are_not_subscribable() {
        assert_eq!(
            EventType::subscribable("host.offline"),
            Some(EventType::HostOffline)
        );
        assert_eq!(EventType::subscribable("test"), None);
        assert_eq!(EventType::subscribable("host.down"), None);
        assert_eq!(EventType::names().split(", ").count(), 8);
    }

    #[test]
    fn a_documents_fields_depend_on_its_subject_and_a_tenant_hook_sees_only_its_tenant() {
        let all = hook("wh1", None, &["rollout.paused"]);
        let acme = hook("wh2", Some("acme"), &["rollout.paused"]);
        let rollout = Subject::Rollout {
            rollout: "r1".into(),
        };
        let both = event(EventType::RolloutPaused, &["acme", "globex"], rollout);
        let doc: serde_json::Value = serde_json::from_str(&both.body_for(&all)).unwrap();
        assert_eq!(doc["type"], "rollout.paused");
        assert_eq!(doc["time"], "2023-11-14T22:13:20Z");
        assert_eq!(doc["tenant"], serde_json::Value::Null);
        assert_eq!(doc["tenants"], serde_json::json!(["acme", "globex"]));
        assert_eq!(doc["rollout"], "r1");
        assert!(doc.get("host").is_none());
        let doc: serde_json::Value = serde_json::from_str(&both.body_for(&acme)).unwrap();
        assert_eq!(
            (&doc["tenant"], &doc["tenants"]),
            (&"acme".into(), &serde_json::json!(["acme"]))
        );

        let job = host_event(EventType::JobRolledBack, "acme");
        let text = job.body_for(&all);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (&doc["host"], &doc["job_id"], &doc["tenant"]),
            (&"web1".into(), &"j1".into(), &"acme".into())
        );
        assert!(doc.get("rollout_id").is_none() && doc.get("tenants").is_none());
        assert!(
            text.starts_with("{\"id\":\"e1\",\"type\":\"job.rolled_back\""),
            "{text}"
        );
    }
}
