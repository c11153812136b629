//! The dashboard's JSON API: each handler asks the controller's admin service with the
//! operator's certificate and answers in the CLI's own JSON views (`--format json`), so the
//! page shows what the CLI prints. The controller decides what the role and scope allow.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use boltfleet_common::identity::HostId;
use boltfleet_common::proto::{
    AbortRolloutRequest, GetHostRequest, GetRolloutRequest, ListJobsRequest, ListRolloutsRequest,
    PlanRolloutRequest, RolloutActionRequest, RolloutSpec, WhoAmIRequest,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Code;

use super::fleet::{HostQuery, QueryError};
use super::guard::Session;
use super::live::{watch_rollout, Update};
use super::Ui;
use crate::cli::client::call;
use crate::cli::error::CliError;
use crate::cli::history::HistoryEntry;
use crate::cli::job::JobDetail;
use crate::cli::plan_view::{skip_text, PlanView};
use crate::cli::rollout_view::RolloutView;
use crate::cli::rows::HostLine;

/// Jobs per page of a host's history.
const JOBS_PAGE: u32 = 20;

/// A refusal or failure, as plain text with its status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
        (self.0, plain, self.1).into_response()
    }
}

impl From<CliError> for ApiError {
    fn from(err: CliError) -> Self {
        let status = match &err {
            CliError::Rpc { status, .. } => match status.code() {
                Code::NotFound => StatusCode::NOT_FOUND,
                Code::PermissionDenied | Code::Unauthenticated => StatusCode::FORBIDDEN,
                Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
                Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                    StatusCode::CONFLICT
                }
                Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_GATEWAY,
            },
            CliError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError(status, err.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        ApiError(StatusCode::BAD_REQUEST, err.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    // Views of strings, numbers and maps with string keys always serialize.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn host_id(id: &str) -> Result<HostId, ApiError> {
    HostId::new(id).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad host id: {e}")))
}

/// Who we are and the session's CSRF token (readable by our own pages only).
pub async fn session(State(ui): State<Arc<Ui>>, Extension(s): Extension<Session>) -> ApiResult {
    let mut admin = ui.admin.clone();
    let me = call("ask who we are", admin.who_am_i(WhoAmIRequest {})).await?;
    Ok(Json(json!({
        "csrf": s.csrf,
        "name": me.name,
        "role": me.role,
        "tenants": me.tenants,
        "controller": ui.controller,
    })))
}

pub async fn fleet(State(ui): State<Arc<Ui>>) -> ApiResult {
    let snap = ui.fleet.get(&ui.admin).await?;
    Ok(Json(to_value(&snap.summary())))
}

pub async fn hosts(
    State(ui): State<Arc<Ui>>,
    query: Result<Query<HostQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let snap = ui.fleet.get(&ui.admin).await?;
    Ok(Json(to_value(&snap.query(&query)?)))
}

pub async fn host(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> ApiResult {
    let id = host_id(&id)?;
    let mut admin = ui.admin.clone();
    let request = GetHostRequest {
        host_id: id.to_string(),
    };
    let row = call(&format!("show host {id}"), admin.get_host(request)).await?;
    Ok(Json(json!({
        "host": to_value(&HostLine::from(&row)),
        "inventory": to_value(&row.inventory.unwrap_or_default()),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    #[serde(default)]
    page_token: String,
}

pub async fn host_jobs(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    query: Result<Query<JobsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let id = host_id(&id)?;
    let mut admin = ui.admin.clone();
    let request = ListJobsRequest {
        host_id: id.to_string(),
        limit: JOBS_PAGE,
        page_token: query.page_token,
    };
    let page = call(
        &format!("list the jobs of host {id}"),
        admin.list_jobs(request),
    )
    .await?;
    let jobs: Vec<Value> = page
        .jobs
        .iter()
        .map(|job| {
            let mut value = to_value(&JobDetail::from(job));
            if let (Value::Object(into), Value::Object(more)) =
                (&mut value, to_value(&HistoryEntry::from(job)))
            {
                into.extend(more);
            }
            value
        })
        .collect();
    Ok(Json(
        json!({ "jobs": jobs, "next_page_token": page.next_page_token }),
    ))
}

pub async fn rollouts(State(ui): State<Arc<Ui>>) -> ApiResult {
    let mut admin = ui.admin.clone();
    let list = call("list rollouts", admin.list_rollouts(ListRolloutsRequest {})).await?;
    let views: Vec<RolloutView> = list.rollouts.iter().map(RolloutView::from).collect();
    Ok(Json(json!({ "rollouts": views })))
}

pub async fn rollout(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> ApiResult {
    let mut admin = ui.admin.clone();
    let request = GetRolloutRequest { id: id.clone() };
    let status = call(&format!("get rollout {id}"), admin.get_rollout(request)).await?;
    Ok(Json(to_value(&RolloutView::from(&status))))
}

/// The rollout's changes as server-sent events: `status` (a rollout view), `problem` (the
/// controller could not be asked; it goes on asking) and `end` (it will not change again).
pub async fn rollout_events(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let updates = ReceiverStream::new(watch_rollout(ui.admin.clone(), id));
    let events = updates.map(|update| {
        Ok(match update {
            Update::Status(status) => Event::default()
                .event("status")
                .data(to_value(&RolloutView::from(&*status)).to_string()),
            Update::Error(text) => Event::default().event("problem").data(one_line(&text)),
            Update::End => Event::default().event("end").data("final"),
        })
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// SSE data is line-based: a message is kept on one line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// What a rollout button sends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    #[serde(default)]
    reason: String,
    /// Abort only: also roll back the hosts the rollout updated.
    #[serde(default)]
    rollback: bool,
}

/// Longest reason an operator may type.
const MAX_REASON: usize = 500;

pub async fn rollout_action(
    State(ui): State<Arc<Ui>>,
    Path((id, action)): Path<(String, String)>,
    body: Result<Json<ActionBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    if body.reason.len() > MAX_REASON || body.reason.chars().any(char::is_control) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("bad reason: one line of at most {MAX_REASON} bytes"),
        ));
    }
    if body.rollback && action != "abort" {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "bad rollback: only abort rolls back".into(),
        ));
    }
    let mut admin = ui.admin.clone();
    let req = RolloutActionRequest {
        id: id.clone(),
        reason: body.reason.clone(),
    };
    let what = format!("{action} rollout {id}");
    let status = match action.as_str() {
        "pause" => call(&what, admin.pause_rollout(req)).await?,
        "resume" => call(&what, admin.resume_rollout(req)).await?,
        "promote" => call(&what, admin.promote_rollout(req)).await?,
        "approve" => call(&what, admin.approve_rollout(req)).await?,
        "abort" => {
            let req = AbortRolloutRequest {
                id,
                reason: body.reason,
                rollback: body.rollback,
            };
            call(&what, admin.abort_rollout(req)).await?
        }
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no rollout action {other:?} (pause, resume, promote, approve, abort)"),
            ))
        }
    };
    ui.fleet.invalidate();
    tracing::info!(rollout = %status.id, action, "rollout action");
    Ok(Json(to_value(&RolloutView::from(&status))))
}

/// The Plan page's form. Lists are comma- or space-separated; empty fields take the
/// controller's defaults, and the controller names any field it cannot use.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanForm {
    target: String,
    #[serde(default)]
    select_all: bool,
    #[serde(default)]
    tenants: String,
    #[serde(default)]
    hosts: String,
    /// `key=value` pairs.
    #[serde(default)]
    labels: String,
    #[serde(default)]
    waves: String,
    #[serde(default)]
    max_parallel: String,
    #[serde(default)]
    max_failures: String,
    #[serde(default)]
    soak: String,
    #[serde(default)]
    manual_promote: bool,
}

fn words(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n', '\t'])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl PlanForm {
    fn spec(&self) -> Result<RolloutSpec, ApiError> {
        let bad = |field: &str, reason: String| {
            ApiError(StatusCode::BAD_REQUEST, format!("bad {field}: {reason}"))
        };
        let mut labels = std::collections::HashMap::new();
        for pair in words(&self.labels) {
            let (k, v) = crate::cli::args::parse_label(&pair).map_err(|e| bad("labels", e))?;
            labels.insert(k, v);
        }
        let max_parallel = match self.max_parallel.trim() {
            "" => None,
            n => Some(
                n.parse::<u32>()
                    .map_err(|_| bad("max_parallel", format!("{n:?} is not a whole number")))?,
            ),
        };
        Ok(RolloutSpec {
            target: self.target.trim().to_string(),
            select_all: self.select_all,
            hosts: words(&self.hosts),
            tenants: words(&self.tenants),
            labels,
            waves: self.waves.trim().to_string(),
            max_parallel,
            max_failures: self.max_failures.trim().to_string(),
            soak: self.soak.trim().to_string(),
            manual_promote: self.manual_promote,
            ..RolloutSpec::default()
        })
    }
}

pub async fn plan(
    State(ui): State<Arc<Ui>>,
    form: Result<Json<PlanForm>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(form) = form.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let spec = form.spec()?;
    let mut admin = ui.admin.clone();
    let what = format!("plan a rollout to {}", spec.target);
    let plan = call(
        &what,
        admin.plan_rollout(PlanRolloutRequest { spec: Some(spec) }),
    )
    .await?;
    let mut value = to_value(&PlanView::from(&plan));
    if let Some(skipped) = value["skipped"].as_array_mut() {
        for skip in skipped {
            let code = skip["skip_reason"].as_str().unwrap_or("").to_string();
            skip["reason"] = Value::String(skip_text(&code));
        }
    }
    Ok(Json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_form_becomes_a_spec_and_bad_fields_are_named() {
        let form: PlanForm = serde_json::from_str(
            r#"{"target":" 1.6.10 ","tenants":"acme, globex","labels":"env=prod","max_parallel":"3"}"#,
        )
        .unwrap();
        let spec = form.spec().unwrap();
        assert_eq!(spec.target, "1.6.10");
        assert_eq!(spec.tenants, ["acme", "globex"]);
        assert_eq!(spec.labels["env"], "prod");
        assert_eq!(spec.max_parallel, Some(3));
        let form: PlanForm =
            serde_json::from_str(r#"{"target":"1.6.10","max_parallel":"many"}"#).unwrap();
        assert!(form.spec().unwrap_err().1.contains("max_parallel"));
        let form: PlanForm =
            serde_json::from_str(r#"{"target":"1.6.10","labels":"prod"}"#).unwrap();
        assert!(form.spec().unwrap_err().1.contains("labels"));
        assert!(serde_json::from_str::<PlanForm>(r#"{"target":"1","shell":"rm"}"#).is_err());
    }

    #[test]
    fn controller_refusals_keep_their_meaning() {
        let rpc = |status| CliError::Rpc {
            action: "pause rollout r1".into(),
            status,
        };
        let forbidden = ApiError::from(rpc(tonic::Status::permission_denied("viewer")));
        assert_eq!(forbidden.0, StatusCode::FORBIDDEN);
        assert!(forbidden.1.contains("pause rollout r1"), "{}", forbidden.1);
        let missing = ApiError::from(rpc(tonic::Status::not_found("no such rollout")));
        assert_eq!(missing.0, StatusCode::NOT_FOUND);
    }
}
