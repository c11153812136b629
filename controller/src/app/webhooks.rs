//! Webhooks as admins manage them: add (URL, event types, tenant, secret), list, remove,
//! test, and the deliveries of one. Admins only; an admin scoped to tenants manages only the
//! webhooks of its tenants, and only an admin over the whole fleet one for every tenant.

use boltfleet_common::grant::{Role, Scope};
use jiff::Timestamp;
use tracing::info;

use crate::app::App;
use crate::auth::Caller;
use crate::error::Error;
use crate::state::{Delivery, DeliveryState, WebhookRecord};
use crate::webhook::post::Target;
use crate::webhook::{event, Event, EventType, Subject};

/// The shortest secret accepted: a signature is as strong as its key.
pub const MIN_SECRET: usize = 16;
/// The longest secret accepted.
pub const MAX_SECRET: usize = 1024;
/// Deliveries listed when the caller gives no limit.
pub const DELIVERIES_SHOWN: usize = 50;

/// What an admin asks for.
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    /// Empty: every tenant.
    pub tenant: String,
    pub secret: String,
}

/// A webhook as listed: its record (secret and all; the wire leaves the secret out) and how
/// its deliveries stand.
pub struct WebhookView {
    pub hook: WebhookRecord,
    pub pending: usize,
    pub failed: usize,
}

/// A new webhook id.
fn new_webhook_id() -> String {
    format!("wh-{:08x}", rand::random::<u32>())
}

/// The event types asked for, each checked, in the order given, without repeats.
fn check_events(names: &[String]) -> Result<Vec<String>, Error> {
    if names.is_empty() {
        let known = EventType::names();
        return Err(Error::invalid(
            "events",
            format!("give at least one of {known}"),
        ));
    }
    let mut events: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim();
        if EventType::subscribable(name).is_none() {
            let known = EventType::names();
            return Err(Error::invalid(
                "events",
                format!("unknown event type {name:?} (known: {known})"),
            ));
        }
        if !events.iter().any(|e| e == name) {
            events.push(name.to_string());
        }
    }
    Ok(events)
}

fn check_secret(secret: &str) -> Result<(), Error> {
    let fail = |why: String| Err(Error::invalid("secret", why));
    if secret.len() < MIN_SECRET {
        return fail(format!(
            "must be at least {MIN_SECRET} bytes (it is {})",
            secret.len()
        ));
    }
    if secret.len() > MAX_SECRET {
        return fail(format!("must be at most {MAX_SECRET} bytes"));
    }
    if secret.chars().any(char::is_control) {
        return fail("must be one line of text (no control characters)".into());
    }
    Ok(())
}

impl App {
    /// Adds a webhook; returns its id. The secret is stored to sign with, never returned.
    pub fn add_webhook(
        &self,
        caller: &Caller,
        new: NewWebhook,
        now: Timestamp,
    ) -> Result<String, Error> {
        caller.require(Role::Admin, "adding webhooks")?;
        let target = Target::parse(new.url.trim()).map_err(|e| Error::invalid("url", e))?;
        let events = check_events(&new.events)?;
        let tenant = Some(new.tenant.trim().to_string()).filter(|t| !t.is_empty());
        match &tenant {
            Some(tenant) => caller.require_tenant(tenant)?,
            None if caller.scope != Scope::All => {
                return Err(Error::Forbidden(format!(
                    "operator {} may act on {}: a webhook for every tenant needs an admin of the whole fleet; give --tenant",
                    caller.name, caller.scope
                )))
            }
            None => {}
        }
        check_secret(&new.secret)?;
        let mut hook = WebhookRecord {
            id: new_webhook_id(),
            url: new.url.trim().to_string(),
            events,
            tenant,
            secret: new.secret,
            created_by: caller.name.clone(),
            created_at: now,
        };
        while !self.state.add_webhook(&hook)? {
            hook.id = new_webhook_id();
        }
        let detail = format!(
            "{} for {} of {}",
            target.origin(),
            hook.events.join(","),
            hook.tenant.as_deref().unwrap_or("every tenant")
        );
        self.audit_entry(
            now,
            &format!("operator {}", caller.name),
            "webhook.add",
            &hook.id,
            &detail,
        )?;
        info!(hook = %hook.id, by = %caller.name, %detail, "webhook added");
        Ok(hook.id)
    }

    /// The webhooks the caller manages, with how their deliveries stand.
    pub fn webhook_views(&self, caller: &Caller) -> Result<Vec<WebhookView>, Error> {
        caller.require(Role::Admin, "listing webhooks")?;
        let mut views = Vec::new();
        for hook in self.state.webhooks()? {
            if !manages(caller, &hook) {
                continue;
            }
            let deliveries = self.state.deliveries_of(&hook.id)?;
            let count = |state| deliveries.iter().filter(|(_, d)| d.state == state).count();
            views.push(WebhookView {
                pending: count(DeliveryState::Pending),
                failed: count(DeliveryState::Failed),
                hook,
            });
        }
        Ok(views)
    }

    /// Removes a webhook with every delivery of it.
    pub fn remove_webhook(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<(), Error> {
        caller.require(Role::Admin, "removing webhooks")?;
        self.webhook_for(caller, id)?;
        if !self.state.remove_webhook(id)? {
            return Err(Error::UnknownWebhook(id.to_string()));
        }
        self.audit_entry(
            now,
            &format!("operator {}", caller.name),
            "webhook.remove",
            id,
            "",
        )?;
        info!(hook = id, by = %caller.name, "webhook removed");
        Ok(())
    }

    /// Queues a `test` event for one webhook; returns its id (its delivery shows in
    /// [`App::webhook_deliveries`]).
    pub fn test_webhook(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<String, Error> {
        caller.require(Role::Admin, "testing webhooks")?;
        let hook = self.webhook_for(caller, id)?;
        let event = Event {
            id: event::new_event_id(now),
            kind: EventType::Test,
            time: now,
            tenants: hook.tenant.iter().cloned().collect(),
            subject: Subject::Nothing,
            summary: format!("test event from operator {}", caller.name),
        };
        self.queue_event_for(&event, &[hook])?;
        Ok(event.id)
    }

    /// The webhook's newest deliveries (at most `limit`, 0: [`DELIVERIES_SHOWN`]), or only
    /// that of `event_id` when given.
    pub fn webhook_deliveries(
        &self,
        caller: &Caller,
        id: &str,
        limit: usize,
        event_id: &str,
    ) -> Result<Vec<Delivery>, Error> {
        caller.require(Role::Admin, "reading webhook deliveries")?;
        self.webhook_for(caller, id)?;
        let limit = if limit == 0 { DELIVERIES_SHOWN } else { limit };
        Ok(self
            .state
            .deliveries_of(id)?
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| event_id.is_empty() || d.event_id == event_id)
            .take(limit)
            .collect())
    }

    /// The webhook if the caller manages it; `NotFound` alike when it does not exist.
    fn webhook_for(&self, caller: &Caller, id: &str) -> Result<WebhookRecord, Error> {
        self.state
            .webhook(id)?
            .filter(|hook| manages(caller, hook))
            .ok_or_else(|| Error::UnknownWebhook(id.to_string()))
    }
}

/// A webhook of one tenant is managed by admins of that tenant; one of every tenant by admins
/// of the whole fleet.
fn manages(caller: &Caller, hook: &WebhookRecord) -> bool {
    match &hook.tenant {
        Some(tenant) => caller.allows(tenant),
        None => caller.scope == Scope::All,
    }
}
