//! The job journal on the host: one JSON record per job in `<state_dir>/jobs/`, written
//! durably (temp file, fsync, rename, fsync of the directory) and private (0600).

use std::path::{Path, PathBuf};

use boltfleet_common::files::{create_private_dir, write_private};

use super::model::JobRecord;

/// A journal file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the job journal {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write job record {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read job record {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
}

/// The directory of job records.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating, 0700) `<state_dir>/jobs`.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let dir = state_dir.join("jobs");
        create_private_dir(&dir).map_err(|source| JournalError::Create {
            path: dir.clone(),
            source,
        })?;
        Ok(Journal { dir })
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, job_id: &str) -> PathBuf {
        self.dir.join(format!("{job_id}.json"))
    }

    /// Where job `job_id` keeps its copy of `email.php` (0600: it holds SMTP credentials).
    pub fn email_copy(&self, job_id: &str) -> PathBuf {
        self.dir.join(format!("{job_id}.email.php"))
    }

    /// Writes the record durably, replacing the previous one.
    pub fn save(&self, record: &JobRecord) -> Result<(), JournalError> {
        let path = self.path(&record.request.job_id);
        let json = serde_json::to_vec_pretty(record).map_err(|e| JournalError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_private(&path, &json).map_err(|source| JournalError::Write { path, source })
    }

    /// The record of `job_id`, if the journal has one.
    pub fn load(&self, job_id: &str) -> Result<Option<JobRecord>, JournalError> {
        let path = self.path(job_id);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(JournalError::Read {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| JournalError::Read {
                path,
                reason: e.to_string(),
            })
    }

    /// Every readable record, oldest first (by start time, then id). Unreadable ones are
    /// logged and left out.
    pub fn all(&self) -> Result<Vec<JobRecord>, JournalError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| JournalError::Read {
            path: self.dir.clone(),
            reason: e.to_string(),
        })?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".json")
                .filter(|_| !name.starts_with('.'))
            else {
                continue;
            };
            match self.load(id) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "job record skipped"),
            }
        }
        records.sort_by(|a, b| {
            (a.event.started_at, &a.request.job_id).cmp(&(b.event.started_at, &b.request.job_id))
        });
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::jobs::model::{Kind, Request};

    fn record(id: &str, at: i64) -> JobRecord {
        JobRecord::new(
            Request {
                job_id: id.into(),
                kind: Kind::Backup,
                target: String::new(),
                answers: vec!["n".into()],
                auto_rollback: true,
            },
            at,
        )
    }

    #[test]
    fn records_are_private_and_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(journal.dir()), 0o700);
        journal.save(&record("b", 2)).unwrap();
        journal.save(&record("a", 5)).unwrap();
        journal.save(&record("c", 2)).unwrap();
        assert_eq!(mode(&journal.dir().join("a.json")), 0o600);
        std::fs::write(journal.dir().join("broken.json"), "{").unwrap();
        let ids: Vec<String> = journal
            .all()
            .unwrap()
            .into_iter()
            .map(|r| r.request.job_id)
            .collect();
        assert_eq!(ids, ["b", "c", "a"]);
        assert_eq!(journal.load("a").unwrap().unwrap(), record("a", 5));
        assert!(journal.load("zzz").unwrap().is_none());
        assert!(journal.load("broken").is_err());
    }
}
