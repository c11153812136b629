//! `AdminService`: what operators ask of the controller.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::grant::{Grant, Role};
use boltfleet_common::proto::admin_service_server::AdminService;
use boltfleet_common::proto::{
    AbortRolloutRequest, AuditLogRequest, AuditLogResponse, CreateTokenRequest,
    CreateTokenResponse, EnrollHostsRequest, EnrollHostsResponse, FleetReportRequest,
    FleetReportResponse, GetJobRequest, GetRolloutRequest, JobKind, JobRecord, ListHostsRequest,
    ListHostsResponse, ListRolloutsRequest, ListRolloutsResponse, PlanRolloutRequest,
    RevokeHostRequest, RevokeHostResponse, RolloutActionRequest, RolloutPlan, RolloutStatus,
    SetFreezeRequest, SetFreezeResponse, SetWindowRequest, SetWindowResponse, StartJobRequest,
    StartJobResponse, StartRolloutRequest, StartRolloutResponse, WatchJobRequest,
};
use boltfleet_common::proto::{
    AddWebhookRequest, AddWebhookResponse, ListWebhooksRequest, ListWebhooksResponse,
    RemoveWebhookRequest, RemoveWebhookResponse, TestWebhookRequest, TestWebhookResponse,
    WebhookDeliveriesRequest, WebhookDeliveriesResponse,
};
use boltfleet_common::proto::{
    ClusterStatusRequest, ClusterStatusResponse, ListJobsRequest, ListJobsResponse,
};
use boltfleet_common::proto::{
    ForgetHostRequest, ForgetHostResponse, GetHostRequest, HostRow, IssueOperatorCertRequest,
    IssueOperatorCertResponse, ListOperatorsRequest, ListOperatorsResponse, RevokeOperatorRequest,
    RevokeOperatorResponse, SetLatestReleaseRequest, SetLatestReleaseResponse, SetPolicyRequest,
    SetPolicyResponse, WhoAmIRequest, WhoAmIResponse,
};
use jiff::Timestamp;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::app::jobs::NewJob;
use crate::app::HostCsr;
use crate::app::{App, NewToken};
use crate::auth::{self, Caller};
use crate::error::Error;
use crate::services::follow;
use crate::wire::admin as wire;
use crate::wire::rollout::plan_to_wire;

mod webhooks;

pub struct Admin {
    app: Arc<App>,
    /// Bounds the streams followed at once ([`follow::MAX_FOLLOWERS`]).
    followers: Arc<Semaphore>,
}

type Followed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Admin {
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            followers: Arc::new(Semaphore::new(follow::MAX_FOLLOWERS)),
        }
    }

    /// A permit to follow one more stream, or why not.
    fn follower(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.followers.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} streams are followed already; try again later",
                follow::MAX_FOLLOWERS
            ))
        })
    }

    /// Runs domain work off the async threads ([`super::blocking`]).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&App) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Status> {
        let app = self.app.clone();
        super::blocking(&self.app, work)
            .await?
            .map_err(|err| super::status_of(&app, err))
    }

    /// Since when what this controller serves may be stale (its store unreachable), RFC
    /// 3339; empty while the store answers.
    fn stale_since(&self) -> String {
        self.app
            .state()
            .unreachable_since()
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    /// The operator calling, with its role and scope ([`auth::operator`]).
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        Ok(auth::operator(request, &self.app)?)
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    type WatchJobStream = Followed<JobRecord>;
    type WatchRolloutStream = Followed<RolloutStatus>;

    async fn watch_job(
        &self,
        request: Request<WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = self.caller(&request)?;
        let job_id = request.into_inner().job_id;
        let permit = self.follower()?;
        let changes = self.app.state().jobs().subscribe();
        let stream = follow::follow(self.app.clone(), changes, permit, move |app| {
            let job = app.job_for(&caller, &job_id)?;
            let over = job.state().is_final();
            Ok((job, over))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn watch_rollout(
        &self,
        request: Request<GetRolloutRequest>,
    ) -> Result<Response<Self::WatchRolloutStream>, Status> {
        let caller = self.caller(&request)?;
        let id = request.into_inner().id;
        let permit = self.follower()?;
        let changes = self.app.state().rollout_changes();
        let stream = follow::follow(self.app.clone(), changes, permit, move |app| {
            app.rollout_watch_for(&caller, &id)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_hosts(
        &self,
        request: Request<ListHostsRequest>,
    ) -> Result<Response<ListHostsResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let page = self
            .blocking(move |app| {
                app.fleet_page(
                    &caller,
                    "",
                    &req.page_token,
                    req.page_size as usize,
                    Timestamp::now(),
                )
            })
            .await?;
        Ok(Response::new(ListHostsResponse {
            hosts: page.rows,
            next_page_token: page.next_page_token,
            stale_since: self.stale_since(),
        }))
    }

    async fn fleet_report(
        &self,
        request: Request<FleetReportRequest>,
    ) -> Result<Response<FleetReportResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let page = self
            .blocking(move |app| {
                app.fleet_page(
                    &caller,
                    &req.latest,
                    &req.page_token,
                    req.page_size as usize,
                    Timestamp::now(),
                )
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
            stale_since: self.stale_since(),
        }))
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let new = NewToken {
            host_id: req.host_id,
            tenant: req.tenant,
            labels: req.labels.into_iter().collect(),
            ttl: Duration::from_secs(req.ttl_seconds),
        };
        let (token, expires_at) = self
            .blocking(move |app| {
                app.check_enrollment(&caller, &new.host_id, &new.tenant)?;
                app.create_token(&caller.name, new, Timestamp::now())
            })
            .await?;
        Ok(Response::new(CreateTokenResponse { token, expires_at }))
    }

    async fn enroll_hosts(
        &self,
        request: Request<EnrollHostsRequest>,
    ) -> Result<Response<EnrollHostsResponse>, Status> {
        let caller = self.caller(&request)?;
        let hosts: Vec<HostCsr> = request
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
            .blocking(move |app| {
                for host in &hosts {
                    app.check_enrollment(&caller, &host.host_id, &host.tenant)?;
                }
                app.enroll_hosts(&caller.name, hosts, Timestamp::now())
            })
            .await?;
        Ok(Response::new(EnrollHostsResponse { certificate_pem }))
    }

    async fn revoke_host(
        &self,
        request: Request<RevokeHostRequest>,
    ) -> Result<Response<RevokeHostResponse>, Status> {
        let caller = self.caller(&request)?;
        let host_id = request.into_inner().host_id;
        self.blocking(move |app| {
            caller.require(Role::Operator, "revoking hosts")?;
            app.host_for(&caller, &host_id)?;
            app.revoke(&caller.name, &host_id, Timestamp::now())
        })
        .await?;
        Ok(Response::new(RevokeHostResponse {}))
    }

    async fn start_job(
        &self,
        request: Request<StartJobRequest>,
    ) -> Result<Response<StartJobResponse>, Status> {
        let caller = self.caller(&request)?;
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
            .blocking(move |app| {
                caller.require(Role::Operator, "starting jobs")?;
                app.host_for(&caller, &new.host_id)?;
                app.start_job(&caller.name, new, Timestamp::now())
            })
            .await?;
        Ok(Response::new(StartJobResponse { job_id }))
    }

    async fn get_job(
        &self,
        request: Request<GetJobRequest>,
    ) -> Result<Response<JobRecord>, Status> {
        let caller = self.caller(&request)?;
        let job_id = request.into_inner().job_id;
        let job = self
            .blocking(move |app| app.job_for(&caller, &job_id))
            .await?;
        Ok(Response::new(job))
    }

    async fn audit_log(
        &self,
        request: Request<AuditLogRequest>,
    ) -> Result<Response<AuditLogResponse>, Status> {
        let caller = self.caller(&request)?;
        let limit = request.into_inner().limit as usize;
        let entries = self.blocking(move |app| app.audit_for(&caller)).await?;
        let skip = if limit == 0 {
            0
        } else {
            entries.len().saturating_sub(limit)
        };
        let entries = entries
            .into_iter()
            .skip(skip)
            .map(wire::audit_to_wire)
            .collect();
        Ok(Response::new(AuditLogResponse { entries }))
    }

    async fn plan_rollout(
        &self,
        request: Request<PlanRolloutRequest>,
    ) -> Result<Response<RolloutPlan>, Status> {
        let caller = self.caller(&request)?;
        let spec = wire::spec_from_request(request.into_inner().spec)?;
        let plan = self
            .blocking(move |app| {
                let spec = app.spec_for(&caller, spec)?;
                let plan = app.plan_rollout(&spec, Timestamp::now())?;
                Ok(plan_to_wire(&plan, &app.state().windows()?))
            })
            .await?;
        Ok(Response::new(plan))
    }

    async fn start_rollout(
        &self,
        request: Request<StartRolloutRequest>,
    ) -> Result<Response<StartRolloutResponse>, Status> {
        let caller = self.caller(&request)?;
        let spec = wire::spec_from_request(request.into_inner().spec)?;
        let id = self
            .blocking(move |app| {
                caller.require(Role::Operator, "starting rollouts")?;
                let spec = app.spec_for(&caller, spec)?;
                app.start_rollout(&caller.name, spec, Timestamp::now())
            })
            .await?;
        Ok(Response::new(StartRolloutResponse { id }))
    }

    async fn list_rollouts(
        &self,
        request: Request<ListRolloutsRequest>,
    ) -> Result<Response<ListRolloutsResponse>, Status> {
        let caller = self.caller(&request)?;
        let rollouts = self
            .blocking(move |app| app.rollout_statuses_for(&caller))
            .await?;
        Ok(Response::new(ListRolloutsResponse { rollouts }))
    }

    async fn get_rollout(
        &self,
        request: Request<GetRolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let caller = self.caller(&request)?;
        let id = request.into_inner().id;
        let status = self
            .blocking(move |app| app.rollout_status_for(&caller, &id))
            .await?;
        Ok(Response::new(status))
    }

    async fn pause_rollout(
        &self,
        request: Request<RolloutActionRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                app.rollout_to_steer(&caller, &req.id)?;
                app.pause_rollout(&caller.name, &req.id, &req.reason, Timestamp::now())?;
                app.rollout_status_for(&caller, &req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn resume_rollout(
        &self,
        request: Request<RolloutActionRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                app.rollout_to_steer(&caller, &req.id)?;
                app.resume_rollout(&caller.name, &req.id, &req.reason, Timestamp::now())?;
                app.rollout_status_for(&caller, &req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn promote_rollout(
        &self,
        request: Request<RolloutActionRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                app.rollout_to_steer(&caller, &req.id)?;
                app.promote_rollout(&caller.name, &req.id, &req.reason, Timestamp::now())?;
                app.rollout_status_for(&caller, &req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn abort_rollout(
        &self,
        request: Request<AbortRolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                app.rollout_to_steer(&caller, &req.id)?;
                let now = Timestamp::now();
                app.abort_rollout(&caller.name, &req.id, &req.reason, req.rollback, now)?;
                app.rollout_status_for(&caller, &req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn set_window(
        &self,
        request: Request<SetWindowRequest>,
    ) -> Result<Response<SetWindowResponse>, Status> {
        let caller = self.caller(&request)?;
        caller.require(Role::Admin, "setting maintenance windows")?;
        let (key, window) = wire::window_from_wire(request.into_inner())?;
        self.blocking(move |app| app.set_window(&caller.name, key, window, Timestamp::now()))
            .await?;
        Ok(Response::new(SetWindowResponse {}))
    }

    async fn set_freeze(
        &self,
        request: Request<SetFreezeRequest>,
    ) -> Result<Response<SetFreezeResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        self.blocking(move |app| {
            let tenant = (!req.tenant.is_empty()).then_some(req.tenant.as_str());
            match tenant {
                None => caller.require(Role::Admin, "the global freeze")?,
                Some(t) => {
                    caller.require(Role::Operator, "freezing a tenant")?;
                    caller.require_tenant(t)?;
                }
            }
            app.set_freeze(&caller.name, tenant, req.on, Timestamp::now())
        })
        .await?;
        Ok(Response::new(SetFreezeResponse {}))
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(WhoAmIResponse {
            name: caller.name,
            role: caller.role.to_string(),
            tenants: caller.scope.tenant_list(),
        }))
    }

    async fn issue_operator_cert(
        &self,
        request: Request<IssueOperatorCertRequest>,
    ) -> Result<Response<IssueOperatorCertResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let role = req.role.parse::<Role>().map_err(Error::from)?;
        let grant = Grant::new(role, &req.tenants).map_err(Error::from)?;
        let certificate_pem = self
            .blocking(move |app| {
                app.issue_operator_cert(&caller, &req.name, &grant, &req.csr_pem, Timestamp::now())
            })
            .await?;
        Ok(Response::new(IssueOperatorCertResponse {
            certificate_pem,
            ca_pem: self.app.ca_pem().to_string(),
        }))
    }

    async fn list_operators(
        &self,
        request: Request<ListOperatorsRequest>,
    ) -> Result<Response<ListOperatorsResponse>, Status> {
        let caller = self.caller(&request)?;
        let records = self.blocking(move |app| app.operators(&caller)).await?;
        let operators = records.into_iter().map(wire::operator_to_wire).collect();
        Ok(Response::new(ListOperatorsResponse { operators }))
    }

    async fn revoke_operator(
        &self,
        request: Request<RevokeOperatorRequest>,
    ) -> Result<Response<RevokeOperatorResponse>, Status> {
        let caller = self.caller(&request)?;
        let name = request.into_inner().name;
        self.blocking(move |app| app.revoke_operator(&caller, &name, Timestamp::now()))
            .await?;
        Ok(Response::new(RevokeOperatorResponse {}))
    }

    async fn set_policy(
        &self,
        request: Request<SetPolicyRequest>,
    ) -> Result<Response<SetPolicyResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        self.blocking(move |app| {
            app.set_policy(&caller, &req.tenant, req.require_approval, Timestamp::now())
        })
        .await?;
        Ok(Response::new(SetPolicyResponse {}))
    }

    async fn approve_rollout(
        &self,
        request: Request<RolloutActionRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let status = self
            .blocking(move |app| {
                app.approve_rollout(&caller, &req.id, &req.reason, Timestamp::now())?;
                app.rollout_status_for(&caller, &req.id)
            })
            .await?;
        Ok(Response::new(status))
    }

    async fn set_latest_release(
        &self,
        request: Request<SetLatestReleaseRequest>,
    ) -> Result<Response<SetLatestReleaseResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        self.blocking(move |app| {
            app.set_latest(&caller, &req.tenant, &req.version, Timestamp::now())
        })
        .await?;
        Ok(Response::new(SetLatestReleaseResponse {}))
    }

    async fn get_host(
        &self,
        request: Request<GetHostRequest>,
    ) -> Result<Response<HostRow>, Status> {
        let caller = self.caller(&request)?;
        let host_id = request.into_inner().host_id;
        let row = self
            .blocking(move |app| app.host_row(&caller, &host_id, Timestamp::now()))
            .await?;
        Ok(Response::new(row))
    }

    async fn forget_host(
        &self,
        request: Request<ForgetHostRequest>,
    ) -> Result<Response<ForgetHostResponse>, Status> {
        let caller = self.caller(&request)?;
        let host_id = request.into_inner().host_id;
        self.blocking(move |app| app.forget_host(&caller, &host_id, Timestamp::now()))
            .await?;
        Ok(Response::new(ForgetHostResponse {}))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let page = self
            .blocking(move |app| {
                app.host_jobs(&caller, &req.host_id, req.limit as usize, &req.page_token)
            })
            .await?;
        Ok(Response::new(ListJobsResponse {
            jobs: page.jobs,
            next_page_token: page.next_page_token,
        }))
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let caller = self.caller(&request)?;
        let status = self
            .blocking(move |app| app.cluster_status(&caller, Timestamp::now()))
            .await?;
        Ok(Response::new(wire::cluster_to_wire(status)))
    }

    // Webhooks: in `admin/webhooks.rs`.

    async fn add_webhook(
        &self,
        request: Request<AddWebhookRequest>,
    ) -> Result<Response<AddWebhookResponse>, Status> {
        self.add_webhook_call(request).await
    }

    async fn list_webhooks(
        &self,
        request: Request<ListWebhooksRequest>,
    ) -> Result<Response<ListWebhooksResponse>, Status> {
        self.list_webhooks_call(request).await
    }

    async fn remove_webhook(
        &self,
        request: Request<RemoveWebhookRequest>,
    ) -> Result<Response<RemoveWebhookResponse>, Status> {
        self.remove_webhook_call(request).await
    }

    async fn test_webhook(
        &self,
        request: Request<TestWebhookRequest>,
    ) -> Result<Response<TestWebhookResponse>, Status> {
        self.test_webhook_call(request).await
    }

    async fn webhook_deliveries(
        &self,
        request: Request<WebhookDeliveriesRequest>,
    ) -> Result<Response<WebhookDeliveriesResponse>, Status> {
        self.webhook_deliveries_call(request).await
    }
}
