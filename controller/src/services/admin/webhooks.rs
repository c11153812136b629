//! The admin service's webhook calls: `AddWebhook`, `ListWebhooks`, `RemoveWebhook`,
//! `TestWebhook`, `WebhookDeliveries` (the trait methods in `admin.rs` call these).

use boltfleet_common::proto::{
    AddWebhookRequest, AddWebhookResponse, ListWebhooksRequest, ListWebhooksResponse,
    RemoveWebhookRequest, RemoveWebhookResponse, TestWebhookRequest, TestWebhookResponse,
    WebhookDeliveriesRequest, WebhookDeliveriesResponse,
};
use jiff::Timestamp;
use tonic::{Request, Response, Status};

use super::Admin;
use crate::wire::webhook as wire;

impl Admin {
    pub(super) async fn add_webhook_call(
        &self,
        request: Request<AddWebhookRequest>,
    ) -> Result<Response<AddWebhookResponse>, Status> {
        let caller = self.caller(&request)?;
        let new = wire::new_webhook_from_wire(request.into_inner());
        let id = self
            .blocking(move |app| app.add_webhook(&caller, new, Timestamp::now()))
            .await?;
        Ok(Response::new(AddWebhookResponse { id }))
    }

    pub(super) async fn list_webhooks_call(
        &self,
        request: Request<ListWebhooksRequest>,
    ) -> Result<Response<ListWebhooksResponse>, Status> {
        let caller = self.caller(&request)?;
        let views = self.blocking(move |app| app.webhook_views(&caller)).await?;
        let webhooks = views.into_iter().map(wire::webhook_to_wire).collect();
        Ok(Response::new(ListWebhooksResponse { webhooks }))
    }

    pub(super) async fn remove_webhook_call(
        &self,
        request: Request<RemoveWebhookRequest>,
    ) -> Result<Response<RemoveWebhookResponse>, Status> {
        let caller = self.caller(&request)?;
        let id = request.into_inner().id;
        self.blocking(move |app| app.remove_webhook(&caller, &id, Timestamp::now()))
            .await?;
        Ok(Response::new(RemoveWebhookResponse {}))
    }

    pub(super) async fn test_webhook_call(
        &self,
        request: Request<TestWebhookRequest>,
    ) -> Result<Response<TestWebhookResponse>, Status> {
        let caller = self.caller(&request)?;
        let id = request.into_inner().id;
        let event_id = self
            .blocking(move |app| app.test_webhook(&caller, &id, Timestamp::now()))
            .await?;
        Ok(Response::new(TestWebhookResponse { event_id }))
    }

    pub(super) async fn webhook_deliveries_call(
        &self,
        request: Request<WebhookDeliveriesRequest>,
    ) -> Result<Response<WebhookDeliveriesResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let deliveries = self
            .blocking(move |app| {
                app.webhook_deliveries(&caller, &req.id, req.limit as usize, &req.event_id)
            })
            .await?;
        let deliveries = deliveries.into_iter().map(wire::delivery_to_wire).collect();
        Ok(Response::new(WebhookDeliveriesResponse { deliveries }))
    }
}
