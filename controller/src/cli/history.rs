//! `boltfleet host history ID`: every job of a host, newest first, from `ListJobs`.

use boltfleet_common::proto::{JobRecord, ListJobsRequest};
use serde::Serialize;

use super::args::Format;
use super::client::{call, AdminClient};
use super::error::CliError;
use super::render::table;
use super::rows::{kind_name, rfc3339, state_name};

/// Jobs asked for per call (the controller's most).
const PAGE: u32 = 500;

/// One job of `host history --format json`; field names are interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub job_id: String,
    /// "update", "rollback", "backup", "healthcheck".
    pub kind: &'static str,
    pub target: Option<String>,
    /// The outcome, or queued/running while it is not final.
    pub state: &'static str,
    pub created_by: String,
    pub created_at: Option<String>,
    pub finished_at: Option<String>,
    pub failed_step: Option<String>,
    pub backup_id: Option<String>,
    /// The rollout that created it; null for an operator's own job.
    pub rollout_id: Option<String>,
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl From<&JobRecord> for HistoryEntry {
    fn from(job: &JobRecord) -> Self {
        let event = job.event.clone().unwrap_or_default();
        let kind = match event.kind {
            0 => job.request.as_ref().map_or(0, |r| r.kind),
            kind => kind,
        };
        HistoryEntry {
            job_id: job.job_id.clone(),
            kind: kind_name(kind),
            target: text(&event.target_version),
            state: state_name(event.state),
            created_by: job.created_by.clone(),
            created_at: rfc3339(job.created_at),
            finished_at: rfc3339(event.finished_at),
            failed_step: text(&event.failed_step),
            backup_id: text(&event.backup_id),
            rollout_id: text(&job.rollout_id),
        }
    }
}

/// Every job of `host_id`, newest first, page after page.
pub async fn all_jobs(admin: &mut AdminClient, host_id: &str) -> Result<Vec<JobRecord>, CliError> {
    let mut jobs = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListJobsRequest {
            host_id: host_id.to_string(),
            limit: PAGE,
            page_token: page_token.clone(),
        };
        let page = call(
            &format!("list the jobs of host {host_id}"),
            admin.list_jobs(request),
        )
        .await?;
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() || page.next_page_token == page_token {
            return Ok(jobs);
        }
        page_token = page.next_page_token;
    }
}

/// Prints the history as a table or as `{"host_id": ..., "jobs": [...]}`.
pub async fn show(admin: &mut AdminClient, host_id: &str, format: Format) -> Result<(), CliError> {
    let entries: Vec<HistoryEntry> = all_jobs(admin, host_id)
        .await?
        .iter()
        .map(HistoryEntry::from)
        .collect();
    let text = match format {
        Format::Json => history_json(host_id, &entries),
        Format::Table | Format::Csv => history_table(&entries),
    };
    super::write_output(format, &text)
}

fn history_json(host_id: &str, jobs: &[HistoryEntry]) -> String {
    #[derive(Serialize)]
    struct History<'a> {
        host_id: &'a str,
        jobs: &'a [HistoryEntry],
    }
    let mut text =
        serde_json::to_string_pretty(&History { host_id, jobs }).expect("entries serialize");
    text.push('\n');
    text
}

/// Aligned columns, one job a line; every cell through the table's escaping.
pub fn history_table(jobs: &[HistoryEntry]) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.job_id.clone(),
                j.kind.to_string(),
                dash(&j.target),
                j.state.to_string(),
                dash(&j.created_at),
                dash(&j.finished_at),
                dash(&j.backup_id),
                dash(&j.failed_step),
            ]
        })
        .collect();
    table(
        &[
            "JOB",
            "KIND",
            "TARGET",
            "STATE",
            "CREATED",
            "FINISHED",
            "BACKUP",
            "FAILED STEP",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use boltfleet_common::proto::{JobEvent, JobKind, JobState};

    use super::*;

    #[test]
    fn a_job_becomes_one_escaped_table_line() {
        let job = JobRecord {
            job_id: "j1".into(),
            host_id: "web1".into(),
            created_at: 1_700_000_000,
            event: Some(JobEvent {
                kind: JobKind::Update as i32,
                target_version: "1.6.10".into(),
                state: JobState::RolledBack as i32,
                failed_step: "migrate\x1b[2J".into(),
                backup_id: "b-1".into(),
                finished_at: 1_700_000_060,
                ..JobEvent::default()
            }),
            ..JobRecord::default()
        };
        let entry = HistoryEntry::from(&job);
        assert_eq!((entry.kind, entry.state), ("update", "rolled_back"));
        assert_eq!(entry.finished_at.as_deref(), Some("2023-11-14T22:14:20Z"));
        let out = history_table(&[entry]);
        let line = out.lines().nth(1).unwrap();
        assert!(line.starts_with("j1 "), "{out}");
        assert!(line.contains("1.6.10") && line.contains("b-1"), "{out}");
        assert!(!out.contains('\x1b'), "{out:?}");
    }
}
