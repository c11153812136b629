//! `AdminService`: what operators ask of the controller.

use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::proto::admin_service_server::AdminService;
use boltfleet_common::proto::{
    AbortRolloutRequest, AuditEntry, AuditLogRequest, AuditLogResponse, CreateTokenRequest,
    CreateTokenResponse, EnrollHostsRequest, EnrollHostsResponse, FleetReportRequest,
    FleetReportResponse, GetJobRequest, GetRolloutRequest, JobKind, JobRecord, ListHostsRequest,
    ListHostsResponse, ListRolloutsRequest, ListRolloutsResponse, PlanRolloutRequest,
    RevokeHostRequest, RevokeHostResponse, RolloutActionRequest, RolloutPlan, RolloutStatus,
    SetFreezeRequest, SetFreezeResponse, SetWindowRequest, SetWindowResponse, StartJobRequest,
    StartJobResponse, StartRolloutRequest, StartRolloutResponse,
};
use boltfleet_common::proto::{
    ForgetHostRequest, ForgetHostResponse, GetHostRequest, HostRow, SetLatestReleaseRequest,
    SetLatestReleaseResponse,
};
use jiff::Timestamp;
use tonic::{Request, Response, Status};

use crate::app::{App, NewToken};
use crate::auth;
use crate::enroll_bulk::HostCsr;
use crate::error::Error;
use crate::jobs::NewJob;
use crate::rollout::{MaintenanceWindow, RolloutSpec, WindowError};
use crate::rollouts::wire;
use crate::store::WindowKey;

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

/// The rollout spec of a request, parsed; errors name the field.
fn spec_of(spec: Option<boltfleet_common::proto::RolloutSpec>) -> Result<RolloutSpec, Status> {
    let spec = spec.ok_or_else(|| Error::invalid("spec", "missing"))?;
    Ok(wire::spec_from_wire(&spec).map_err(Error::from)?)
}

/// The window a `SetWindow` asks for: whose, and the window (`None` clears it).
fn window_of(req: SetWindowRequest) -> Result<(WindowKey, Option<MaintenanceWindow>), Error> {
    let key = match (req.tenant.is_empty(), req.host_id.is_empty()) {
        (false, true) => WindowKey::Tenant(req.tenant),
        (true, false) => WindowKey::Host(req.host_id),
        _ => {
            return Err(Error::invalid(
                "tenant",
                "give exactly one of tenant and host_id",
            ))
        }
    };
    if req.cron.trim().is_empty() {
        return Ok((key, None));
    }
    let duration = humantime::parse_duration(req.duration.trim())
        .map_err(|_| WindowError::Duration(req.duration.clone()))?;
    Ok((
        key,
        Some(MaintenanceWindow::new(&req.cron, duration, req.tz.trim())?),
    ))
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn list_hosts(
        &self,
        request: Request<ListHostsRequest>,
    ) -> Result<Response<ListHostsResponse>, Status> {
        auth::operator(&request)?;
        let req = request.into_inner();
        let page = self
            .blocking(move |app| app.fleet_page("", &req.page_token, req.page_size as usize))
            .await?;
        Ok(Response::new(ListHostsResponse {
            hosts: page.rows,
            next_page_token: page.next_page_token,
        }))
    }

    async fn fleet_report(
        &self,
        request: Request<FleetReportRequest>,
    ) -> Result<Response<FleetReportResponse>, Status> {
        auth::operator(&request)?;
        let req = request.into_inner();
        let page = self
            .blocking(move |app| {
                app.fleet_page(&req.latest, &req.page_token, req.page_size as usize)
            })
            .await?;
        let (latest, latest_source) = match page.latest {
            Some(l) => (l.version.to_string(), l.source),
            None => (String::new(), String::new()),
        };
        Ok(Response::new(FleetReportResponse {
            hosts: page.rows,
            versions: page.versions.into_iter().collect(),
            latest,
            next_page_token: page.next_page_token,
            latest_source,
            tenant_latest: page.tenant_latest.into_iter().collect(),
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

    async fn enroll_hosts(
        &self,
        request: Request<EnrollHostsRequest>,
    ) -> Result<Response<EnrollHostsResponse>, Status> {
        let operator = auth::operator(&request)?;
        let hosts = request
            .into_inner()
            .hosts
            .into_iter()
            .map(|h| HostCsr {
                host_id: h.host_id,
                tenant: h.tenant,
                labels: h.labels.into_iter().collect(),
                csr_pem: h.csr_pem,
            })
            .collect();
        let certificate_pem = self
            .blocking(move |app| app.enroll_hosts(&operator, hosts))
            .await?;
        Ok(Response::new(EnrollHostsResponse { certificate_pem }))
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
            rollout_id: None,
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

    async fn plan_rollout(
        &self,
        request: Request<PlanRolloutRequest>,
    ) -> Result<Response<RolloutPlan>, Status> {
        auth::operator(&request)?;
        let spec = spec_of(request.into_inner().spec)?;
        let plan = self
            .blocking(move |app| {
                let plan = app.plan_rollout(&spec, Timestamp::now())?;
                Ok(wire::plan_to_wire(&plan, &app.store.windows_all()?))
            })
            .await?;
        Ok(Response::new(plan))
    }

    async fn start_rollout(
        &self,
        request: Request<StartRolloutRequest>,
    ) -> Result<Response<StartRolloutResponse>, Status> {
        let operator = auth::operator(&request)?;
        let spec = spec_of(request.into_inner().spec)?;
        let id = self
            .blocking(move |app| app.start_rollout(&operator, spec, Timestamp::now()))
            .await?;
        Ok(Response::new(StartRolloutResponse { id }))
    }

    async fn list_rollouts(
        &self,
        request: Request<ListRolloutsRequest>,
    ) -> Result<Response<ListRolloutsResponse>, Status> {
        auth::operator(&request)?;
        let rollouts = self.blocking(|app| app.rollout_statuses()).await?;
        Ok(Response::new(ListRolloutsResponse { rollouts }))
    }

    async fn get_rollout(
        &self,
        request: Request<GetRolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        auth::operator(&request)?;
        let id = request.into_inner().id;
        let status = self.blocking(move |app| app.rollout_status(&id)).await?;
        Ok(Response::new(status))
    }

    async fn pause_rollout(
        &self,
        request: Request<RolloutActionRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let operator = auth::operator(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                app.pause_rollout(&operator, &req.id, &req.reason, Timestamp::now())?;
                app.rollout_status(&req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn resume_rollout(
        &self,
        request: Request<RolloutActionRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let operator = auth::operator(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                app.resume_rollout(&operator, &req.id, &req.reason, Timestamp::now())?;
                app.rollout_status(&req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn promote_rollout(
        &self,
        request: Request<RolloutActionRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let operator = auth::operator(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                app.promote_rollout(&operator, &req.id, &req.reason)?;
                app.rollout_status(&req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn abort_rollout(
        &self,
        request: Request<AbortRolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let operator = auth::operator(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                let now = Timestamp::now();
                app.abort_rollout(&operator, &req.id, &req.reason, req.rollback, now)?;
                app.rollout_status(&req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn set_window(
        &self,
        request: Request<SetWindowRequest>,
    ) -> Result<Response<SetWindowResponse>, Status> {
        let operator = auth::operator(&request)?;
        let (key, window) = window_of(request.into_inner())?;
        self.blocking(move |app| app.set_window(&operator, key, window))
            .await?;
        Ok(Response::new(SetWindowResponse {}))
    }

    async fn set_freeze(
        &self,
        request: Request<SetFreezeRequest>,
    ) -> Result<Response<SetFreezeResponse>, Status> {
        let operator = auth::operator(&request)?;
        let req = request.into_inner();
        self.blocking(move |app| {
            let tenant = (!req.tenant.is_empty()).then_some(req.tenant.as_str());
            app.set_freeze(&operator, tenant, req.on, Timestamp::now())
        })
        .await?;
        Ok(Response::new(SetFreezeResponse {}))
    }

    async fn set_latest_release(
        &self,
        request: Request<SetLatestReleaseRequest>,
    ) -> Result<Response<SetLatestReleaseResponse>, Status> {
        let operator = auth::operator(&request)?;
        let req = request.into_inner();
        self.blocking(move |app| app.set_latest(&operator, &req.tenant, &req.version))
            .await?;
        Ok(Response::new(SetLatestReleaseResponse {}))
    }

    async fn get_host(
        &self,
        request: Request<GetHostRequest>,
    ) -> Result<Response<HostRow>, Status> {
        auth::operator(&request)?;
        let host_id = request.into_inner().host_id;
        let row = self.blocking(move |app| app.host_row(&host_id)).await?;
        Ok(Response::new(row))
    }

    async fn forget_host(
        &self,
        request: Request<ForgetHostRequest>,
    ) -> Result<Response<ForgetHostResponse>, Status> {
        let operator = auth::operator(&request)?;
        let host_id = request.into_inner().host_id;
        self.blocking(move |app| app.forget_host(&operator, &host_id))
            .await?;
        Ok(Response::new(ForgetHostResponse {}))
    }
}
