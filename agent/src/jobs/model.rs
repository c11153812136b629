//! The vocabulary of jobs: step names, the steps each kind runs, and the journal record that
//! holds a job's event and the runner's private state.

use std::path::PathBuf;

use boltfleet_common::proto::{JobEvent, JobKind, JobState, StepRecord, StepState};
use serde::{Deserialize, Serialize};

/// Step names, exactly as reported to the controller (shared with it).
pub use boltfleet_common::steps as step;

/// The steps of an update, in order.
pub const UPDATE_STEPS: [&str; 8] = [
    step::PREFLIGHT,
    step::MAINTENANCE_ON,
    step::CONFIG_REVIEW,
    step::BACKUP,
    step::CHECKOUT,
    step::MIGRATE,
    step::HEALTHCHECK,
    step::MAINTENANCE_OFF,
];

/// The steps that undo an update once its backup exists, in order.
pub const ROLLBACK_STEPS: [&str; 4] = [
    step::ROLLBACK_CHECKOUT,
    step::RESTORE_DATABASE,
    step::ROLLBACK_HEALTHCHECK,
    step::MAINTENANCE_OFF,
];

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Update,
    Rollback,
    Backup,
    Healthcheck,
}

impl Kind {
    pub fn to_proto(self) -> JobKind {
        match self {
            Kind::Update => JobKind::Update,
            Kind::Rollback => JobKind::Rollback,
            Kind::Backup => JobKind::Backup,
            Kind::Healthcheck => JobKind::Healthcheck,
        }
    }
}

/// A job as accepted: validated, with the defaults of its options applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub job_id: String,
    pub kind: Kind,
    /// `X.Y.Z` of an update; empty for the other kinds.
    pub target: String,
    /// Answers fed to migration prompts, one a line.
    pub answers: Vec<String>,
    pub auto_rollback: bool,
}

/// Where a job stands, as far as a restarted agent must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Journaled, not started.
    #[default]
    Queued,
    /// Running its own steps.
    Running,
    /// Undoing an update: checkout back, database restored.
    RollingBack,
    /// Finished; the event holds the outcome.
    Done,
}

/// A verified backup on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub path: PathBuf,
    /// Hex sha256 of the `.sql.gz` file.
    pub sha256: String,
    pub bytes: u64,
}

impl BackupInfo {
    /// The backup id: the file name.
    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The runner's own state beside the event: what it needs to finish or undo the job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    pub phase: JobPhase,
    /// The release tag the host was on (`v1.3.2`); where a rollback goes back to.
    pub from_tag: String,
    /// A backup being written: removed when the job is abandoned.
    pub partial_backup: Option<PathBuf>,
    /// The verified backup of this job (or, for a rollback job, of the update undone).
    pub backup: Option<BackupInfo>,
    /// Where this job keeps a copy of `app/Config/email.php` across checkouts.
    pub email_copy: Option<PathBuf>,
    /// Maintenance was (or was being) switched on and is not known to be off.
    pub maintenance_on: bool,
    /// Checks failing before the job (health baseline).
    pub baseline: Vec<String>,
    /// The healthcheck command line when it gave no checks before the job: there is no
    /// comparable baseline, and the update is judged by what it can break.
    #[serde(default)]
    pub no_baseline: Option<String>,
    /// The update's healthcheck passed: only maintenance_off was left.
    pub health_passed: bool,
    /// The update step that failed and why, once one has.
    pub failure: Option<(String, String)>,
    /// For a rollback job: the update it undoes.
    pub rollback_of: Option<String>,
}

/// One job in the journal: the request, the full event as reported, the private state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub request: Request,
    pub event: JobEvent,
    pub private: Private,
}

impl JournalEntry {
    /// A new, queued job.
    pub fn new(request: Request, now: i64) -> Self {
        let event = JobEvent {
            job_id: request.job_id.clone(),
            kind: request.kind.to_proto() as i32,
            target_version: request.target.clone(),
            state: JobState::Queued as i32,
            started_at: now,
            ..JobEvent::default()
        };
        JournalEntry {
            request,
            event,
            private: Private::default(),
        }
    }

    /// Whether the job has an outcome.
    pub fn is_finished(&self) -> bool {
        self.event.state().is_final()
    }

    /// The step currently running, if any.
    pub fn running_step(&self) -> Option<&str> {
        self.event
            .steps
            .iter()
            .rev()
            .find(|s| s.state() == StepState::Running)
            .map(|s| s.name.as_str())
    }

    /// Whether step `name` has succeeded in this job.
    pub fn step_succeeded(&self, name: &str) -> bool {
        self.event
            .steps
            .iter()
            .any(|s| s.name == name && s.state() == StepState::Succeeded)
    }

    /// The record of step `name`'s latest attempt.
    pub fn last_step_mut(&mut self, name: &str) -> Option<&mut StepRecord> {
        self.event.steps.iter_mut().rev().find(|s| s.name == name)
    }
}

/// The most a step's `output_tail` holds.
pub const TAIL_BYTES: usize = 2048;

/// The last [`TAIL_BYTES`] of `text`, cut at a character boundary.
pub fn tail(text: &str) -> String {
    let text = text.trim_end();
    if text.len() <= TAIL_BYTES {
        return text.to_string();
    }
    let mut start = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// `text` on one line, cut to `max` characters: a reason for a job event.
pub fn gist(text: &str, max: usize) -> String {
    crate::text::excerpt(text, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_end_on_a_char_boundary() {
        assert_eq!(tail("short\n\n"), "short");
        let long = format!("{}é{}", "a".repeat(3000), "b".repeat(2046));
        let t = tail(&long);
        assert!(t.starts_with('…') && t.ends_with('b'));
        assert!(t.len() <= TAIL_BYTES + '…'.len_utf8());
    }

    #[test]
    fn records_round_trip_through_json() {
        let request = Request {
            job_id: "j1".into(),
            kind: Kind::Update,
            target: "1.3.2".into(),
            answers: vec!["n".into()],
            auto_rollback: true,
        };
        let mut record = JournalEntry::new(request, 10);
        record.private.phase = JobPhase::RollingBack;
        record.event.steps.push(StepRecord {
            name: step::MIGRATE.into(),
            state: StepState::Running as i32,
            ..StepRecord::default()
        });
        let json = serde_json::to_string(&record).unwrap();
        let back: JournalEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.running_step(), Some("migrate"));
        assert!(!back.is_finished());
    }
}
