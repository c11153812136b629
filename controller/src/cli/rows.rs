//! The CLI's stable view of a host row: what `--format json` prints and the other formats read.
//!
//! Field names are part of the CLI's interface (scripts parse them): snake_case, never renamed.
//! Empty strings and zero times from the wire become `null`.

use std::collections::BTreeMap;

use boltfleet_common::proto::{HostRow, HostWindow, JobEvent, JobKind, JobState};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One host, as printed by `hosts` and `report`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostLine {
    pub host_id: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    /// Installed passbolt version; null when the agent could not read it.
    pub version: Option<String>,
    pub online: bool,
    pub healthy: bool,
    /// RFC 3339 UTC; null when never seen.
    pub last_seen: Option<String>,
    pub migrations_pending: bool,
    /// "patch", "minor" or "major" relative to the report's latest; null when none.
    pub update: Option<String>,
    pub health_reasons: Vec<String>,
    pub revoked: bool,
    pub agent_version: Option<String>,
    pub php_version: Option<String>,
    /// The release tag HEAD sits on.
    pub git_tag: Option<String>,
    /// Whether the install's work tree has local changes; null without an inventory.
    pub dirty: Option<bool>,
    pub last_job: Option<JobView>,
    /// The maintenance window that applies; null: updates may start any time.
    pub window: Option<WindowView>,
    /// A freeze (global or of its tenant) covers the host: no update starts.
    pub frozen: bool,
    /// The agent's last report came while a job held the host: its facts are from before it.
    pub job_in_progress: bool,
}

/// A host's maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    /// 5-field cron of the openings, read in `tz`.
    pub cron: String,
    /// How long each opening lasts, e.g. "4h".
    pub duration: String,
    pub tz: String,
    /// "host" (its own) or "tenant".
    pub source: String,
    pub open_now: bool,
    /// The next opening (now when open); null when none within 14 days.
    pub next_open: Option<String>,
}

impl WindowView {
    /// `0 22 * * * 4h Europe/Paris`, as `window set` takes it.
    pub fn text(&self) -> String {
        format!("{} {} {}", self.cron, self.duration, self.tz)
    }
}

impl From<&HostWindow> for WindowView {
    fn from(w: &HostWindow) -> Self {
        WindowView {
            cron: w.cron.clone(),
            duration: w.duration.clone(),
            tz: w.tz.clone(),
            source: w.source.clone(),
            open_now: w.open_now,
            next_open: rfc3339(w.next_open),
        }
    }
}

/// The current or last job of a host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub id: String,
    /// "update", "rollback", "backup", "healthcheck" or "unspecified".
    pub kind: &'static str,
    /// Target version (update jobs).
    pub target: Option<String>,
    /// "queued", "running", "succeeded", "rolled_back", "rollback_failed", "refused", "failed"
    /// or "unspecified".
    pub state: &'static str,
    pub failed_step: Option<String>,
    pub backup_id: Option<String>,
    pub config_changes: Vec<String>,
    /// Why the job was refused or failed, in the agent's words.
    pub reason: Option<String>,
}

impl From<&HostRow> for HostLine {
    fn from(row: &HostRow) -> Self {
        let inventory = row.inventory.as_ref();
        let inv_text = |pick: fn(&boltfleet_common::proto::Inventory) -> &str| {
            inventory.and_then(|inv| non_empty(pick(inv)))
        };
        HostLine {
            host_id: row.host_id.clone(),
            tenant: row.tenant.clone(),
            labels: row
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            version: non_empty(&row.version),
            online: row.online,
            healthy: row.healthy,
            last_seen: rfc3339(row.last_seen),
            migrations_pending: row.migrations_pending,
            update: non_empty(&row.update),
            health_reasons: row.health_reasons.clone(),
            revoked: row.revoked,
            agent_version: inv_text(|inv| &inv.agent_version),
            php_version: inv_text(|inv| &inv.php_version),
            git_tag: inventory
                .and_then(|inv| inv.git.as_ref())
                .and_then(|git| non_empty(&git.tag)),
            dirty: inventory
                .and_then(|inv| inv.git.as_ref())
                .map(|git| git.dirty),
            // Agents without a job send an empty event: that is no job.
            last_job: row
                .last_job
                .as_ref()
                .filter(|job| !job.job_id.is_empty())
                .map(JobView::from),
            window: row.window.as_ref().map(WindowView::from),
            frozen: row.frozen,
            job_in_progress: inventory.is_some_and(|inv| inv.job_in_progress),
        }
    }
}

impl From<&JobEvent> for JobView {
    fn from(job: &JobEvent) -> Self {
        JobView {
            id: job.job_id.clone(),
            kind: kind_name(job.kind),
            target: non_empty(&job.target_version),
            state: state_name(job.state),
            failed_step: non_empty(&job.failed_step),
            backup_id: non_empty(&job.backup_id),
            config_changes: job.config_changes.clone(),
            reason: non_empty(&job.reason),
        }
    }
}

/// Stable names, independent of the proto's SCREAMING_CASE.
pub fn kind_name(kind: i32) -> &'static str {
    match JobKind::try_from(kind) {
        Ok(JobKind::Update) => "update",
        Ok(JobKind::Rollback) => "rollback",
        Ok(JobKind::Backup) => "backup",
        Ok(JobKind::Healthcheck) => "healthcheck",
        Ok(JobKind::Unspecified) | Err(_) => "unspecified",
    }
}

/// Stable names, independent of the proto's SCREAMING_CASE.
pub fn state_name(state: i32) -> &'static str {
    match JobState::try_from(state) {
        Ok(JobState::Queued) => "queued",
        Ok(JobState::Running) => "running",
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::RolledBack) => "rolled_back",
        Ok(JobState::RollbackFailed) => "rollback_failed",
        Ok(JobState::Refused) => "refused",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Unspecified) | Err(_) => "unspecified",
    }
}

/// Unix seconds as RFC 3339 UTC; `None` for 0 (never) or a time out of range.
pub fn rfc3339(unix_seconds: i64) -> Option<String> {
    if unix_seconds == 0 {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Hand-built rows shared by the rendering tests.

    use boltfleet_common::proto::{GitState, HostRow, Inventory, JobEvent, JobKind, JobState};

    /// A healthy, fully reported host on 1.6.9 with a patch available and a finished update.
    pub fn full_row() -> HostRow {
        HostRow {
            host_id: "web-1".into(),
            tenant: "acme".into(),
            labels: [("env".to_string(), "prod".to_string())].into(),
            version: "1.6.9".into(),
            online: true,
            healthy: true,
            last_seen: 1_700_000_000,
            migrations_pending: false,
            update: "patch".into(),
            revoked: false,
            health_reasons: vec![],
            inventory: Some(Inventory {
                agent_version: "0.1.0".into(),
                passbolt_version: "1.6.9".into(),
                php_version: "8.2.7".into(),
                git: Some(GitState {
                    head: "abc123".into(),
                    tag: "v1.6.9".into(),
                    dirty: false,
                }),
                ..Default::default()
            }),
            last_job: Some(JobEvent {
                job_id: "job-7".into(),
                kind: JobKind::Update as i32,
                target_version: "1.6.9".into(),
                state: JobState::RolledBack as i32,
                failed_step: "migrate".into(),
                backup_id: "bk-1".into(),
                config_changes: vec!["app.php".into()],
                ..Default::default()
            }),
            window: Some(boltfleet_common::proto::HostWindow {
                cron: "0 22 * * *".into(),
                duration: "4h".into(),
                tz: "Europe/Paris".into(),
                source: "tenant".into(),
                open_now: false,
                next_open: 1_700_082_000,
            }),
            frozen: false,
            summary: true,
        }
    }

    /// A host that enrolled but never reported.
    pub fn bare_row() -> HostRow {
        HostRow {
            host_id: "db-2".into(),
            health_reasons: vec!["never reported".into()],
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn full_row_maps_every_field() {
        let view = HostLine::from(&full_row());
        assert_eq!(view.version.as_deref(), Some("1.6.9"));
        assert_eq!(view.last_seen.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(view.update.as_deref(), Some("patch"));
        assert_eq!(view.git_tag.as_deref(), Some("v1.6.9"));
        assert_eq!(view.dirty, Some(false));
        let job = view.last_job.unwrap();
        assert_eq!((job.kind, job.state), ("update", "rolled_back"));
        assert_eq!(job.failed_step.as_deref(), Some("migrate"));
        assert_eq!(job.reason, None);
    }

    #[test]
    fn empty_fields_become_none() {
        let view = HostLine::from(&bare_row());
        assert_eq!(view.version, None);
        assert_eq!(view.last_seen, None);
        assert_eq!(view.update, None);
        assert_eq!(view.agent_version, None);
        assert_eq!(view.dirty, None);
        assert_eq!(view.last_job, None);
        let mut row = bare_row();
        row.last_job = Some(JobEvent::default());
        assert_eq!(HostLine::from(&row).last_job, None);
    }

    #[test]
    fn every_job_state_has_a_stable_name() {
        let names: Vec<_> = (1..=7).map(state_name).collect();
        assert_eq!(
            names,
            [
                "queued",
                "running",
                "succeeded",
                "rolled_back",
                "rollback_failed",
                "refused",
                "failed"
            ]
        );
        assert_eq!(state_name(99), "unspecified");
        assert_eq!(kind_name(JobKind::Rollback as i32), "rollback");
    }
}
