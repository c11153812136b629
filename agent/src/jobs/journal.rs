//! The job journal on the host: one JSON record per job in `<state_dir>/jobs/`, written
//! durably (temp file, fsync, rename, fsync of the directory) and private (0600), and pruned
//! by its [`Retention`] policy.

use std::path::{Path, PathBuf};

use boltfleet_common::clock::unix_now;
use boltfleet_common::files::{create_private_dir, write_private};

use super::model::JournalEntry;
use super::retention::{prunable, Retention};

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
    #[error("cannot remove old job record {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The directory of job records.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    retention: Retention,
}

impl Journal {
    /// Opens (creating, 0700) `<state_dir>/jobs`.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let dir = state_dir.join("jobs");
        create_private_dir(&dir).map_err(|source| JournalError::Create {
            path: dir.clone(),
            source,
        })?;
        Ok(Journal {
            dir,
            retention: Retention::default(),
        })
    }

    /// The same journal, pruned by `retention` instead of the default policy.
    pub fn with_retention(self, retention: Retention) -> Self {
        Journal { retention, ..self }
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
    pub fn save(&self, record: &JournalEntry) -> Result<(), JournalError> {
        let path = self.path(&record.request.job_id);
        let json = serde_json::to_vec_pretty(record).map_err(|e| JournalError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_private(&path, &json).map_err(|source| JournalError::Write { path, source })
    }

    /// The record of `job_id`, if the journal has one.
    pub fn load(&self, job_id: &str) -> Result<Option<JournalEntry>, JournalError> {
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
    pub fn all(&self) -> Result<Vec<JournalEntry>, JournalError> {
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

impl Journal {
    /// Removes the records (and saved `email.php` copies) the retention policy lets go at
    /// `now`, never `current`'s; returns the ids removed. A record that cannot be removed
    /// stops the pruning with an error naming its file.
    pub fn prune_at(&self, now: i64, current: Option<&str>) -> Result<Vec<String>, JournalError> {
        let ids = prunable(&self.all()?, self.retention, now, current);
        for id in &ids {
            // The copy first: a record without its copy is harmless, the reverse is a leak.
            for path in [self.email_copy(id), self.path(id)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(JournalError::Remove { path, source }),
                }
            }
        }
        if !ids.is_empty() {
            tracing::info!(removed = ids.len(), "old job records pruned");
        }
        Ok(ids)
    }

    /// [`Journal::prune_at`] now, logging instead of failing: pruning never fails a job.
    pub fn prune(&self, current: Option<&str>) {
        if let Err(e) = self.prune_at(unix_now(), current) {
            tracing::warn!(error = %e, "job journal not pruned");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::jobs::model::{Kind, Request};

    fn record(id: &str, at: i64) -> JournalEntry {
        JournalEntry::new(
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

    #[test]
    fn pruning_removes_old_records_and_their_email_copies_only() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            keep: 3,
            max_age: std::time::Duration::from_secs(100),
        };
        let journal = Journal::open(dir.path()).unwrap().with_retention(retention);
        let now = 10_000;
        for (i, id) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            let mut r = record(id, i as i64);
            r.event.state = boltfleet_common::proto::JobState::Succeeded as i32;
            r.event.finished_at = i as i64;
            journal.save(&r).unwrap();
            write_private(&journal.email_copy(id), b"<?php").unwrap();
        }
        let mut unfinished = record("g", 0);
        unfinished.event.state = boltfleet_common::proto::JobState::Running as i32;
        journal.save(&unfinished).unwrap();
        journal.save(&record("young", now - 10)).unwrap();
        std::fs::write(journal.dir().join("broken.json"), "{").unwrap();

        let removed = journal.prune_at(now, Some("young")).unwrap();
        assert_eq!(removed, ["a", "b", "c", "d"]);
        let mut left: Vec<String> = std::fs::read_dir(journal.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "broken.json",
                "e.email.php",
                "e.json",
                "f.email.php",
                "f.json",
                "g.json",
                "young.json"
            ]
        );
        assert!(journal.prune_at(now, None).unwrap().is_empty());
    }
}
