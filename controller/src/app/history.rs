//! A host's job history as operators page through it: newest first, each job in full, read
//! from the per-host job index so that no other host's jobs are decoded.

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::JobRecord;
use prost::Message;

use super::App;
use crate::auth::Caller;
use crate::error::Error;

/// Jobs per page when the request does not say.
pub const JOBS_PAGE: usize = 50;
/// Most jobs a page holds, whatever the request says.
pub const JOBS_PAGE_MAX: usize = 500;
/// A page ends before its jobs pass this size (encoded), as fleet pages do.
pub const JOBS_PAGE_BYTES: usize = 1024 * 1024;

/// One page of a host's jobs.
#[derive(Debug, Default)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<JobRecord>,
    /// The job id to continue after; "" on the last page.
    pub next_page_token: String,
}

impl App {
    /// The jobs of `host_id`, newest first, after the job `page_token` names ("" for the
    /// newest), for a caller whose scope holds the host (`NotFound` otherwise, as for a host
    /// that does not exist).
    pub fn host_jobs(
        &self,
        caller: &Caller,
        host_id: &str,
        limit: usize,
        page_token: &str,
    ) -> Result<JobPage, Error> {
        let host = HostId::new(host_id)?;
        self.host_for(caller, host.as_str())?;
        let size = match limit {
            0 => JOBS_PAGE,
            n => n.min(JOBS_PAGE_MAX),
        };
        let mut ids = self.state.jobs().ids_of_host(host.as_str())?;
        ids.reverse();
        let start = match page_token {
            "" => 0,
            token => {
                ids.iter().position(|id| id == token).ok_or_else(|| {
                    Error::invalid("page_token", format!("{token:?} is no job of host {host}"))
                })? + 1
            }
        };
        let mut page = JobPage::default();
        let mut bytes = 0;
        let mut rest = ids[start..].iter();
        for id in rest.by_ref() {
            // An index entry without its record (a crash mid-write) is no job.
            let Some(job) = self.state.jobs().get(id)? else {
                continue;
            };
            bytes += job.encoded_len() + 8;
            if page.jobs.len() == size || (bytes > JOBS_PAGE_BYTES && !page.jobs.is_empty()) {
                page.next_page_token = page
                    .jobs
                    .last()
                    .map(|j| j.job_id.clone())
                    .unwrap_or_default();
                return Ok(page);
            }
            page.jobs.push(job);
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use boltfleet_common::grant::{Role, Scope};
    use boltfleet_common::proto::{JobEvent, JobKind, JobOptions, JobState};

    use super::*;
    use crate::app::jobs::NewJob;
    use crate::app::tests::app_with_host;

    fn backup(app: &App, host: &str, at: i64) -> String {
        let job = NewJob {
            host_id: host.into(),
            kind: JobKind::Backup,
            target_version: String::new(),
            options: JobOptions::default(),
            rollout_id: None,
        };
        let id = app.start_job("alice", job, crate::app::ts(at)).unwrap();
        // Finished, so that the next one may start.
        let done = JobEvent {
            job_id: id.clone(),
            kind: JobKind::Backup as i32,
            state: JobState::Succeeded as i32,
            ..JobEvent::default()
        };
        app.record_job_event(&HostId::new(host).unwrap(), done, crate::app::ts_now())
            .unwrap();
        id
    }

    fn ids(page: &JobPage) -> Vec<&str> {
        page.jobs.iter().map(|j| j.job_id.as_str()).collect()
    }

    #[test]
    fn a_hosts_jobs_come_newest_first_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let jobs: Vec<String> = (0..5).map(|i| backup(&app, "web1", 1000 + i)).collect();
        let admin = Caller::admin("root");
        let first = app.host_jobs(&admin, "web1", 2, "").unwrap();
        assert_eq!(ids(&first), [&*jobs[4], &*jobs[3]]);
        assert_eq!(first.next_page_token, jobs[3]);
        let second = app
            .host_jobs(&admin, "web1", 2, &first.next_page_token)
            .unwrap();
        assert_eq!(ids(&second), [&*jobs[2], &*jobs[1]]);
        let last = app
            .host_jobs(&admin, "web1", 2, &second.next_page_token)
            .unwrap();
        assert_eq!(ids(&last), [&*jobs[0]]);
        assert_eq!(last.next_page_token, "", "the last page says so");
        let all = app.host_jobs(&admin, "web1", 0, "").unwrap();
        assert_eq!(all.jobs.len(), 5);
        assert_eq!(all.next_page_token, "");
    }

    #[test]
    fn a_host_outside_the_scope_is_not_found_like_an_unknown_one() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        backup(&app, "web1", 1000);
        let outsider = Caller {
            role: Role::Viewer,
            scope: Scope::Tenants(["globex".to_string()].into()),
            ..Caller::admin("olga")
        };
        let hidden = app.host_jobs(&outsider, "web1", 0, "").unwrap_err();
        let unknown = app
            .host_jobs(&Caller::admin("root"), "nope", 0, "")
            .unwrap_err();
        assert!(matches!(hidden, Error::UnknownHost(_)), "{hidden}");
        assert!(matches!(unknown, Error::UnknownHost(_)), "{unknown}");
        let viewer = Caller {
            scope: Scope::Tenants(["acme".to_string()].into()),
            ..outsider
        };
        assert_eq!(app.host_jobs(&viewer, "web1", 0, "").unwrap().jobs.len(), 1);
    }

    #[test]
    fn a_bad_host_id_or_page_token_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let admin = Caller::admin("root");
        let err = app.host_jobs(&admin, "a/b", 0, "").unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        let err = app.host_jobs(&admin, "web1", 0, "j-nope").unwrap_err();
        assert!(err.to_string().contains("page_token"), "{err}");
    }
}
