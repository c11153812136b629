//! `AdminService`: what operators ask of the controller.

use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::proto::admin_service_server::AdminService;
use boltfleet_common::proto::{
    AuditEntry, AuditLogRequest, AuditLogResponse, CreateTokenRequest, CreateTokenResponse,
    FleetReportRequest, FleetReportResponse, GetJobRequest, JobKind, JobRecord, ListHostsRequest,
    ListHostsResponse, RevokeHostRequest, RevokeHostResponse, StartJobRequest, StartJobResponse,
};
use tonic::{Request, Response, Status};

use crate::app::{App, NewToken};
use crate::auth;
use crate::error::Error;
use crate::jobs::NewJob;

pub struct Admin {
    pub app: Arc<App>,
}

impl Admin {
    /// Runs blocking domain work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&App) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Status> {
        let app = self.app.clone();
        tokio::task::spawn_blocking(move || work(&app))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::from)
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn list_hosts(
        &self,
        request: Request<ListHostsRequest>,
    ) -> Result<Response<ListHostsResponse>, Status> {
        auth::operator(&request)?;
        let report = self.blocking(|app| app.fleet_report("")).await?;
        Ok(Response::new(ListHostsResponse { hosts: report.rows }))
    }

    async fn fleet_report(
        &self,
        request: Request<FleetReportRequest>,
    ) -> Result<Response<FleetReportResponse>, Status> {
        auth::operator(&request)?;
        let latest = request.into_inner().latest;
        let report = self.blocking(move |app| app.fleet_report(&latest)).await?;
        Ok(Response::new(FleetReportResponse {
            hosts: report.rows,
            versions: report.versions.into_iter().collect(),
            latest: report.latest.map(|v| v.to_string()).unwrap_or_default(),
        }))
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let operator = auth::operator(&request)?;
        let req = request.into_inner();
        let new = NewToken {
            host_id: req.host_id,
            tenant: req.tenant,
            labels: req.labels.into_iter().collect(),
            ttl: Duration::from_secs(req.ttl_seconds),
        };
        let (token, expires_at) = self
            .blocking(move |app| app.create_token(&operator, new, crate::app::now()))
            .await?;
        Ok(Response::new(CreateTokenResponse { token, expires_at }))
    }

    async fn revoke_host(
        &self,
        request: Request<RevokeHostRequest>,
    ) -> Result<Response<RevokeHostResponse>, Status> {
        let operator = auth::operator(&request)?;
        let host_id = request.into_inner().host_id;
        self.blocking(move |app| app.revoke(&operator, &host_id))
            .await?;
        Ok(Response::new(RevokeHostResponse {}))
    }

    async fn start_job(
        &self,
        request: Request<StartJobRequest>,
    ) -> Result<Response<StartJobResponse>, Status> {
        let operator = auth::operator(&request)?;
        let req = request.into_inner();
        let kind = JobKind::try_from(req.kind)
            .map_err(|_| Status::invalid_argument(format!("unknown job kind {}", req.kind)))?;
        let new = NewJob {
            host_id: req.host_id,
            kind,
            target_version: req.target_version,
            options: req.options.unwrap_or_default(),
        };
        let job_id = self
            .blocking(move |app| app.start_job(&operator, new, crate::app::now()))
            .await?;
        Ok(Response::new(StartJobResponse { job_id }))
    }

    async fn get_job(
        &self,
        request: Request<GetJobRequest>,
    ) -> Result<Response<JobRecord>, Status> {
        auth::operator(&request)?;
        let job_id = request.into_inner().job_id;
        let job = self.blocking(move |app| app.job(&job_id)).await?;
        Ok(Response::new(job))
    }

    async fn audit_log(
        &self,
        request: Request<AuditLogRequest>,
    ) -> Result<Response<AuditLogResponse>, Status> {
        auth::operator(&request)?;
        let limit = request.into_inner().limit as usize;
        let entries = self.blocking(|app| Ok(app.store.audit_log()?)).await?;
        let skip = if limit == 0 {
            0
        } else {
            entries.len().saturating_sub(limit)
        };
        let entries = entries
            .into_iter()
            .skip(skip)
            .map(|e| AuditEntry {
                at: e.at,
                actor: e.actor,
                action: e.action,
                target: e.target,
                detail: e.detail,
            })
            .collect();
        Ok(Response::new(AuditLogResponse { entries }))
    }
}
