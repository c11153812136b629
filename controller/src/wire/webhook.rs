//! Webhooks between the wire and the domain: what `webhook list` and `webhook deliveries`
//! show. The secret never leaves the controller.

use boltfleet_common::proto as pb;

use crate::app::{NewWebhook, WebhookView};
use crate::state::Delivery;

pub fn new_webhook_from_wire(req: pb::AddWebhookRequest) -> NewWebhook {
    NewWebhook {
        url: req.url,
        events: req.events,
        tenant: req.tenant,
        secret: req.secret,
    }
}

pub fn webhook_to_wire(view: WebhookView) -> pb::WebhookInfo {
    let hook = view.hook;
    pb::WebhookInfo {
        id: hook.id,
        url: hook.url,
        events: hook.events,
        tenant: hook.tenant.unwrap_or_default(),
        created_by: hook.created_by,
        created_at: hook.created_at.as_second(),
        pending: view.pending.try_into().unwrap_or(u32::MAX),
        failed: view.failed.try_into().unwrap_or(u32::MAX),
    }
}

pub fn delivery_to_wire(d: Delivery) -> pb::WebhookDelivery {
    let pending = d.state == crate::state::DeliveryState::Pending;
    pb::WebhookDelivery {
        event_id: d.event_id,
        event_type: d.event_type,
        created_at: d.created_at.as_second(),
        state: d.state.as_str().to_string(),
        attempts: d.attempts,
        last_status: d.last_status.map_or(0, u32::from),
        last_error: d.last_error.unwrap_or_default(),
        last_attempt_at: d.last_attempt_at.map_or(0, |t| t.as_second()),
        next_attempt_at: if pending {
            d.next_attempt_at.as_second()
        } else {
            0
        },
    }
}
