//! `boltfleet job show`, waiting for a job's outcome, and `boltfleet audit`.

use std::time::{Duration, Instant};

use boltfleet_common::proto::{
    AuditEntry, AuditLogRequest, GetJobRequest, JobRecord, StepRecord, WatchJobRequest,
};
use serde::Serialize;

use super::args::{AuditArgs, Format, JobCommand};
use super::client::{call, connect, AdminClient};
use super::config::Connection;
use super::error::CliError;
use super::rows::{kind_name, rfc3339, state_name};
use super::safe::{lines, text as show};

/// A job as `job show --format json` prints it.
#[derive(Debug, Serialize)]
pub struct JobDetail {
    pub job_id: String,
    pub host_id: String,
    pub kind: &'static str,
    pub target: Option<String>,
    pub state: &'static str,
    pub created_by: String,
    pub created_at: Option<String>,
    pub from_version: Option<String>,
    pub failed_step: Option<String>,
    pub reason: Option<String>,
    pub backup_id: Option<String>,
    pub backup_path: Option<String>,
    pub config_changes: Vec<String>,
    pub failing_before: Vec<String>,
    pub failing_after: Vec<String>,
    pub failing_after_rollback: Vec<String>,
    pub steps: Vec<StepDetail>,
}

#[derive(Debug, Serialize)]
pub struct StepDetail {
    pub name: String,
    pub state: &'static str,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_s: Option<i64>,
    pub output_tail: String,
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn step_state(state: i32) -> &'static str {
    use boltfleet_common::proto::StepState;
    match StepState::try_from(state) {
        Ok(StepState::Running) => "running",
        Ok(StepState::Succeeded) => "succeeded",
        Ok(StepState::Failed) => "failed",
        Ok(StepState::Skipped) => "skipped",
        _ => "pending",
    }
}

impl From<&JobRecord> for JobDetail {
    fn from(job: &JobRecord) -> Self {
        let event = job.event.clone().unwrap_or_default();
        let steps = event.steps.iter().map(StepDetail::from).collect();
        JobDetail {
            job_id: job.job_id.clone(),
            host_id: job.host_id.clone(),
            kind: kind_name(event.kind),
            target: text(&event.target_version),
            state: state_name(event.state),
            created_by: job.created_by.clone(),
            created_at: rfc3339(job.created_at),
            from_version: text(&event.from_version),
            failed_step: text(&event.failed_step),
            reason: text(&event.reason),
            backup_id: text(&event.backup_id),
            backup_path: text(&event.backup_path),
            config_changes: event.config_changes,
            failing_before: event.failing_before,
            failing_after: event.failing_after,
            failing_after_rollback: event.failing_after_rollback,
            steps,
        }
    }
}

impl From<&StepRecord> for StepDetail {
    fn from(step: &StepRecord) -> Self {
        let duration = (step.started_at > 0 && step.finished_at >= step.started_at)
            .then(|| step.finished_at - step.started_at);
        StepDetail {
            name: step.name.clone(),
            state: step_state(step.state),
            started_at: rfc3339(step.started_at),
            finished_at: rfc3339(step.finished_at),
            duration_s: duration,
            output_tail: step.output_tail.clone(),
        }
    }
}

/// The human rendering of a job: a summary, every step, then each step's output tail. Every
/// value from the job is shown through [`show`] (one line each); output tails through
/// [`lines`].
pub fn job_text(job: &JobDetail) -> String {
    let mut out = format!(
        "job {}  host {}  {} {}  state {}\n",
        show(&job.job_id),
        show(&job.host_id),
        job.kind,
        show(job.target.as_deref().unwrap_or("")),
        job.state
    );
    let line = |label: &str, value: &Option<String>| {
        value
            .as_ref()
            .map(|v| format!("  {label}: {}\n", show(v)))
            .unwrap_or_default()
    };
    out += &line(
        "created",
        &job.created_at
            .as_ref()
            .map(|t| format!("{t} by {}", job.created_by)),
    );
    out += &line("from", &job.from_version);
    out += &line("failed step", &job.failed_step);
    out += &line("reason", &job.reason);
    out += &line("backup", &job.backup_path.clone().or(job.backup_id.clone()));
    for (label, list) in [
        ("config defaults changed", &job.config_changes),
        ("failing before", &job.failing_before),
        ("failing after", &job.failing_after),
        ("failing after the rollback", &job.failing_after_rollback),
    ] {
        if !list.is_empty() {
            out += &format!("  {label}:\n");
            for item in list {
                out += &format!("    {}\n", show(item));
            }
        }
    }
    if !job.steps.is_empty() {
        out += &format!("\n{:<20} {:<10} {:>8}\n", "STEP", "STATE", "SECONDS");
        for step in &job.steps {
            let secs = step
                .duration_s
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into());
            out += &format!("{:<20} {:<10} {:>8}\n", show(&step.name), step.state, secs);
        }
        for step in job
            .steps
            .iter()
            .filter(|s| !s.output_tail.trim().is_empty())
        {
            out += &format!(
                "\n--- {} ({}) ---\n{}\n",
                show(&step.name),
                step.state,
                lines(step.output_tail.trim_end())
            );
        }
    }
    out
}

pub async fn run(conn: &Connection, command: JobCommand) -> Result<(), CliError> {
    let JobCommand::Show { id, format, follow } = command;
    let mut admin = connect(conn).await?;
    // With --follow: live on stderr while it runs, the whole job on stdout once it ended, and
    // the exit status of `--wait`.
    let mut outcome = Ok(());
    if let Some(timeout) = follow {
        outcome = wait_for(&mut admin, &id, timeout).await;
        if let Err(err @ (CliError::Timeout { .. } | CliError::Rpc { .. })) = outcome {
            return Err(err);
        }
    }
    let job = get(&mut admin, &id).await?;
    let detail = JobDetail::from(&job);
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&detail).expect("serializable") + "\n",
        Format::Table | Format::Csv => job_text(&detail),
    };
    super::write_output(format, &text)?;
    outcome
}

async fn get(admin: &mut AdminClient, job_id: &str) -> Result<JobRecord, CliError> {
    let request = GetJobRequest {
        job_id: job_id.to_string(),
    };
    call(&format!("get job {job_id}"), admin.get_job(request)).await
}

/// Follows the job live over the controller's stream until it ends, printing each step
/// change on stderr; the job's summary goes to stderr at the end, and anything but `succeeded`
/// is an error.
pub async fn wait_for(
    admin: &mut AdminClient,
    job_id: &str,
    timeout: Duration,
) -> Result<(), CliError> {
    let action = format!("follow job {job_id}");
    let request = WatchJobRequest {
        job_id: job_id.to_string(),
    };
    let deadline = Instant::now() + timeout;
    let timed_out = || CliError::Timeout {
        action: action.clone(),
        secs: timeout.as_secs(),
    };
    let mut stream = tokio::time::timeout_at(deadline.into(), admin.watch_job(request))
        .await
        .map_err(|_| timed_out())?
        .map_err(|status| CliError::Rpc {
            action: action.clone(),
            status,
        })?
        .into_inner();
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.message())
            .await
            .map_err(|_| timed_out())?
            .map_err(|status| CliError::Rpc {
                action: action.clone(),
                status,
            })?;
        let Some(job) = next else {
            return Err(CliError::Rpc {
                action,
                status: tonic::Status::unavailable("the controller ended the stream early"),
            });
        };
        let steps: Vec<(String, i32)> = job
            .event
            .iter()
            .flat_map(|e| e.steps.iter().map(|s| (s.name.clone(), s.state)))
            .collect();
        for (name, state) in steps.iter().filter(|s| !seen.contains(*s)) {
            eprintln!("{job_id}: {} {}", show(name), step_state(*state));
        }
        seen = steps;
        if job.state().is_final() {
            let detail = JobDetail::from(&job);
            eprint!("{}", lines(&job_text(&detail)));
            if detail.state == "succeeded" {
                return Ok(());
            }
            let extra = detail
                .failed_step
                .map(|s| format!(" at {s}"))
                .unwrap_or_default();
            let reason = detail.reason.map(|r| format!(": {r}")).unwrap_or_default();
            return Err(CliError::JobFailed {
                job_id: job.job_id,
                host_id: job.host_id,
                state: detail.state,
                detail: format!("{extra}{reason}"),
            });
        }
    }
}

/// `audit` for people: one line per entry, every value shown through [`show`].
pub fn audit_text(entries: &[AuditEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "{}  {:<20} {:<12} {:<16} {}\n",
                rfc3339(e.at).unwrap_or_default(),
                show(&e.actor),
                show(&e.action),
                show(&e.target),
                show(&e.detail)
            )
        })
        .collect()
}

pub async fn audit(conn: &Connection, args: AuditArgs) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    let entries = call(
        "read the audit log",
        admin.audit_log(AuditLogRequest { limit: args.limit }),
    )
    .await?
    .entries;
    let text = match args.format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "at": rfc3339(e.at), "actor": e.actor, "action": e.action,
                        "target": e.target, "detail": e.detail,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&serde_json::json!({ "entries": rows })).expect("json")
                + "\n"
        }
        Format::Table | Format::Csv => audit_text(&entries),
    };
    super::write_output(args.format, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use boltfleet_common::proto::{JobEvent, JobKind, JobState, StepState};

    fn job() -> JobRecord {
        JobRecord {
            job_id: "j1".into(),
            host_id: "web1".into(),
            created_by: "alice".into(),
            created_at: 1_700_000_000,
            dispatched: true,
            request: None,
            event: Some(JobEvent {
                job_id: "j1".into(),
                kind: JobKind::Update as i32,
                target_version: "1.6.10".into(),
                state: JobState::RolledBack as i32,
                failed_step: "migrate".into(),
                reason: "migration 1.6.0 failed".into(),
                config_changes: vec!["added app/Config/passbolt.php.default".into()],
                failing_before: vec!["./app/Console/cake passbolt healthcheck".into()],
                failing_after: vec![
                    "No default content found".into(),
                    "SSL peer certificate does not validate".into(),
                ],
                failing_after_rollback: vec!["./app/Console/cake passbolt healthcheck".into()],
                steps: vec![StepRecord {
                    name: "migrate".into(),
                    state: StepState::Failed as i32,
                    started_at: 1_700_000_010,
                    finished_at: 1_700_000_013,
                    output_tail: "Error: boom".into(),
                }],
                ..JobEvent::default()
            }),
            rollout_id: String::new(),
        }
    }

    #[test]
    fn a_job_shows_every_step_with_duration_and_output() {
        let detail = JobDetail::from(&job());
        assert_eq!(detail.state, "rolled_back");
        assert_eq!(detail.steps[0].duration_s, Some(3));
        let text = job_text(&detail);
        for want in [
            "rolled_back",
            "failed step: migrate",
            "migrate              failed",
            "Error: boom",
            "passbolt.php.default",
            "failing after:\n    No default content found\n    SSL peer certificate does not validate\n",
            "failing after the rollback:\n    ./app/Console/cake passbolt healthcheck\n",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
        let json = serde_json::to_value(&detail).unwrap();
        assert_eq!(json["steps"][0]["state"], "failed");
        assert_eq!(json["failed_step"], "migrate");
        assert_eq!(json["failing_after"][0], "No default content found");
        assert_eq!(json["failing_after_rollback"].as_array().unwrap().len(), 1);
        assert!(job().state().is_final());
    }
}
