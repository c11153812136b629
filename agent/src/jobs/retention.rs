//! Which job records the journal may forget: a pure decision over the records, the policy and
//! `now`, so the rules are tested without a clock or a file system.

use std::collections::HashSet;
use std::time::Duration;

use boltfleet_common::proto::JobState;

use super::model::{JournalEntry, Kind};

/// How many finished job records the journal keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest `keep` records are always kept.
    pub keep: usize,
    /// Records younger than this are kept whatever their number.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep: 50,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The ids of the records in `records` (oldest first, as [`super::journal::Journal::all`]
/// lists them) that may be removed at `now` (unix seconds). Never: an unfinished job, the
/// current job `current`, the last job, one of the newest `keep`, one younger than `max_age`,
/// the last successful update (what `host rollback` undoes) or an update a kept job rolls back.
pub fn prunable(
    records: &[JournalEntry],
    policy: Retention,
    now: i64,
    current: Option<&str>,
) -> Vec<String> {
    let age_secs = i64::try_from(policy.max_age.as_secs()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(age_secs);
    let newest_kept = records.len().saturating_sub(policy.keep.max(1));
    let last_update = records
        .iter()
        .rev()
        .find(|r| r.request.kind == Kind::Update && r.event.state() == JobState::Succeeded)
        .map(|r| r.request.job_id.as_str());
    let old = |i: usize, r: &JournalEntry| {
        let at = r.event.finished_at.max(r.event.started_at);
        i < newest_kept && at < cutoff
    };
    let removable = |i: usize, r: &JournalEntry| {
        let id = r.request.job_id.as_str();
        r.is_finished() && old(i, r) && Some(id) != current && Some(id) != last_update
    };
    let referenced: HashSet<&str> = records
        .iter()
        .enumerate()
        .filter(|(i, r)| !removable(*i, r))
        .filter_map(|(_, r)| r.private.rollback_of.as_deref())
        .collect();
    records
        .iter()
        .enumerate()
        .filter(|(i, r)| removable(*i, r) && !referenced.contains(r.request.job_id.as_str()))
        .map(|(_, r)| r.request.job_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::model::{JobPhase, Request};

    const DAY: i64 = 24 * 3600;

    /// A finished job of `kind` that started and ended `days_ago` days before `NOW`.
    fn job(id: &str, kind: Kind, state: JobState, days_ago: i64) -> JournalEntry {
        let at = NOW - days_ago * DAY;
        let mut r = JournalEntry::new(
            Request {
                job_id: id.into(),
                kind,
                target: String::new(),
                answers: Vec::new(),
                auto_rollback: true,
            },
            at,
        );
        r.event.state = state as i32;
        r.event.finished_at = at;
        r.private.phase = JobPhase::Done;
        r
    }

    fn check(id: &str, days_ago: i64) -> JournalEntry {
        job(id, Kind::Healthcheck, JobState::Succeeded, days_ago)
    }

    const NOW: i64 = 1_800_000_000;

    fn policy(keep: usize, days: u64) -> Retention {
        Retention {
            keep,
            max_age: Duration::from_secs(days * 24 * 3600),
        }
    }

    #[test]
    fn old_records_beyond_the_newest_n_go() {
        let records = [
            check("a", 90),
            check("b", 80),
            check("c", 70),
            check("d", 60),
        ];
        assert_eq!(prunable(&records, policy(2, 30), NOW, None), ["a", "b"]);
    }

    #[test]
    fn young_records_stay_whatever_their_number() {
        let records = [check("a", 90), check("b", 10), check("c", 5), check("d", 1)];
        assert_eq!(prunable(&records, policy(1, 30), NOW, None), ["a"]);
    }

    #[test]
    fn unfinished_and_current_jobs_stay() {
        let mut running = check("a", 90);
        running.event.state = JobState::Running as i32;
        let records = [running, check("b", 80), check("c", 70)];
        assert!(prunable(&records, policy(1, 1), NOW, Some("b")).is_empty());
    }

    #[test]
    fn the_last_job_stays_even_with_keep_zero() {
        let records = [check("a", 90), check("b", 80)];
        assert_eq!(prunable(&records, policy(0, 1), NOW, None), ["a"]);
    }

    #[test]
    fn the_last_successful_update_stays_for_a_later_rollback() {
        let records = [
            job("u1", Kind::Update, JobState::Succeeded, 99),
            job("u2", Kind::Update, JobState::Succeeded, 90),
            job("u3", Kind::Update, JobState::RolledBack, 85),
            check("c1", 80),
            check("c2", 70),
        ];
        assert_eq!(
            prunable(&records, policy(1, 30), NOW, None),
            ["u1", "u3", "c1"]
        );
    }

    #[test]
    fn an_update_a_kept_rollback_undid_stays() {
        let mut rollback = job("r", Kind::Rollback, JobState::Succeeded, 5);
        rollback.private.rollback_of = Some("u1".into());
        let records = [
            job("u1", Kind::Update, JobState::Succeeded, 99),
            job("u2", Kind::Update, JobState::Succeeded, 90),
            rollback,
            check("c", 1),
        ];
        assert!(prunable(&records, policy(1, 30), NOW, None).is_empty());
    }
}
