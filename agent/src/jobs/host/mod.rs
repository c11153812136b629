//! The side effects of jobs on the host, behind one narrow trait ([`HostOps`]) so the runner's
//! transitions can be tested with a fake; [`RealHost`] runs git, cake, the dump and restore.

mod client_error;
mod database;
mod git;
mod health;
mod maintenance;
mod migrate;
mod privileges;
mod restore;
mod tracked;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::version::Version;

use super::model::BackupInfo;
use crate::config::AgentConfig;
use crate::exec::{Output, Runner};

pub use database::{backup_file_name, parse_size};
pub use health::{UPDATE_CHECK_WORDS, UPDATE_SECTIONS};
pub use migrate::{error_gist, statuses_up_to_date};
pub use restore::lock_name;

/// A host operation that failed: a one-line reason and the output that shows why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub reason: String,
    pub log: String,
}

impl OpError {
    pub fn new(reason: impl Into<String>) -> Self {
        OpError {
            reason: reason.into(),
            log: String::new(),
        }
    }

    /// The same failure with the output gathered so far.
    pub fn with_log(mut self, log: &str) -> Self {
        if !log.is_empty() {
            self.log = format!("{log}\n{}", self.log);
        }
        self
    }
}

/// The work tree as a job sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoFacts {
    /// The newest release tag on HEAD.
    pub current: Option<Version>,
    /// `git status --porcelain` lines that are local modifications.
    pub porcelain: Vec<String>,
    /// `git status --porcelain` lines that are the install's runtime state (untracked entries
    /// under its runtime directories, see `passbolt::worktree`): shown, never blocking.
    pub runtime: Vec<String>,
}

/// Release tags present after fetching, and what fetching said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags {
    pub releases: Vec<Version>,
    pub log: String,
    /// Why fetching failed, when it did (the local tags were used).
    pub fetch_error: Option<String>,
}

/// The outcome of the configured health checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthFacts {
    /// Names of the failing checks (a healthcheck command that gave no checks is one, named
    /// by its command line).
    pub failing: Vec<String>,
    /// Those of `failing` the operator accepts (`passbolt.known_failures`).
    pub accepted: Vec<String>,
    /// Those of `failing` an update can break (the status URL, and the healthcheck's checks in
    /// `health::UPDATE_SECTIONS`): what judges an update when there is no baseline to compare.
    pub breakable: Vec<String>,
    /// The healthcheck command's line when it ran but gave no checks (a v1 release before the
    /// healthcheck shell): no comparable baseline.
    pub no_checks: Option<String>,
    pub log: String,
}

/// Everything a job does to the host. Each operation returns its output for the step's
/// output tail, or why it failed.
pub trait HostOps: Send + Sync + 'static {
    /// HEAD's release and local changes.
    fn repo(&self) -> impl Future<Output = Result<RepoFacts, OpError>> + Send;
    /// Fetches tags from the configured remote (local tags when there is no remote).
    fn fetch_tags(&self) -> impl Future<Output = Result<Tags, OpError>> + Send;
    /// Size in bytes of the passbolt database; fails when the option file is unreadable or the
    /// database unreachable.
    fn database_size(&self) -> impl Future<Output = Result<u64, OpError>> + Send;
    /// Free bytes where backups go.
    fn backup_free_space(&self) -> Result<u64, OpError>;
    /// Checks, changing nothing, that the database user holds what a restore of the backup
    /// needs on the database; the error names what it lacks.
    fn restore_privileges(&self) -> impl Future<Output = Result<String, OpError>> + Send;
    /// Runs the configured health checks.
    fn health(&self) -> impl Future<Output = HealthFacts> + Send;
    /// Whether a maintenance method is configured.
    fn maintenance_configured(&self) -> bool;
    fn maintenance_on(&self, job_id: &str) -> impl Future<Output = Result<String, OpError>> + Send;
    /// Idempotent: off when already off.
    fn maintenance_off(&self) -> impl Future<Output = Result<String, OpError>> + Send;
    /// Human lines on the config templates that change from `from` to `to`.
    fn config_review(
        &self,
        from: &Version,
        to: &Version,
    ) -> impl Future<Output = Result<Vec<String>, OpError>> + Send;
    /// Where the backup of job `job_id` started at `now` goes.
    fn backup_path(&self, job_id: &str, now: i64) -> Result<PathBuf, OpError>;
    /// Dumps the database to [`partial_path`]`(path)`, verifies it, renames it to `path`,
    /// writes `<path>.sha256` and prunes older backups.
    fn backup(
        &self,
        path: &Path,
    ) -> impl Future<Output = Result<(BackupInfo, String), OpError>> + Send;
    /// Removes a partial backup, if any.
    fn discard_partial(&self, partial: &Path) -> Result<(), OpError>;
    /// Checks out release `tag` (forcing over local changes when `force`), keeping
    /// `email.php` through `email_copy`, then installs dependencies and clears caches.
    fn checkout(
        &self,
        tag: &Version,
        email_copy: &Path,
        force: bool,
    ) -> impl Future<Output = Result<String, OpError>> + Send;
    /// Runs the migrations with `answers` on stdin and checks they all applied.
    fn migrate(&self, answers: &[String]) -> impl Future<Output = Result<String, OpError>> + Send;
    /// Empties the database and loads `backup` into it (after checking its checksum).
    fn restore(&self, backup: &BackupInfo) -> impl Future<Output = Result<String, OpError>> + Send;
    /// Stops the commands a killed agent left running (a migration, a dump, a restore
    /// client), before a restarted one converges its job; says what it stopped.
    fn reap_orphans(&self) -> Option<String>;
}

/// The temporary name a backup is written under until verified.
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Deadline of quick git commands.
const GIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of `git fetch`.
const FETCH_TIMEOUT: Duration = Duration::from_secs(180);

/// The real host described by the agent config.
#[derive(Debug, Clone)]
pub struct RealHost {
    config: Arc<AgentConfig>,
    /// Runs as the web user (git, cake, composer); why not, when it cannot.
    web: Result<Runner, String>,
    /// Runs as the agent's own user (dump, restore, maintenance commands).
    agent: Runner,
}

impl RealHost {
    pub fn new(config: Arc<AgentConfig>) -> Self {
        let timeout = config.jobs.step_timeout;
        let web = Runner::new(config.passbolt.web_user.as_deref(), timeout)
            .map_err(|e| format!("web user: {e}"));
        let agent = Runner::new(None, timeout).expect("the agent's own user needs no lookup");
        RealHost { config, web, agent }
    }

    fn root(&self) -> &Path {
        &self.config.passbolt.root
    }

    /// Where the running migration's pid is kept (`<state_dir>/jobs/child.pid`).
    fn pidfile(&self) -> PathBuf {
        tracked::Tracked::Migrate.pidfile(&self.config.state_dir)
    }

    fn web(&self) -> Result<&Runner, OpError> {
        self.web.as_ref().map_err(|e| OpError::new(e.clone()))
    }
}

/// Runs `program args` in `cwd` with `runner`, appending its transcript to the step's `log`;
/// an error naming the command line only when it cannot run at all (exit codes are the
/// caller's to judge).
async fn run_logged<S: AsRef<str> + AsRef<std::ffi::OsStr>>(
    runner: &Runner,
    program: &str,
    args: &[S],
    cwd: &Path,
    log: &mut String,
) -> Result<Output, OpError> {
    let line: Vec<&str> = std::iter::once(program)
        .chain(args.iter().map(|a| AsRef::<str>::as_ref(a)))
        .collect();
    let line = line.join(" ");
    let out = runner
        .run(program, args, cwd)
        .await
        .map_err(|e| OpError::new(format!("{line}: {e}")).with_log(log))?;
    log.push_str(&transcript(&line, &out));
    Ok(out)
}

/// A command line and what it printed, for step logs.
fn transcript(cmd: &str, out: &Output) -> String {
    let mut text = format!("$ {cmd}\n");
    for part in [&out.stdout, &out.stderr] {
        let part = part.replace('\u{8}', "");
        if !part.trim().is_empty() {
            text.push_str(part.trim_end());
            text.push('\n');
        }
    }
    if !out.success() {
        text.push_str(&format!("({})\n", out.exit_text()));
    }
    text
}

impl HostOps for RealHost {
    async fn repo(&self) -> Result<RepoFacts, OpError> {
        git::repo_facts(self.web()?, self.root()).await
    }

    async fn fetch_tags(&self) -> Result<Tags, OpError> {
        git::fetch_tags(self.web()?, self.root(), &self.config.jobs.git_remote).await
    }

    async fn database_size(&self) -> Result<u64, OpError> {
        database::size(&self.agent, &self.config).await
    }

    async fn restore_privileges(&self) -> Result<String, OpError> {
        privileges::check(&self.agent, &self.config).await
    }

    fn backup_free_space(&self) -> Result<u64, OpError> {
        let backup = self
            .config
            .backup
            .as_ref()
            .ok_or_else(database::no_backup_dir)?;
        crate::disk::space(&backup.dir)
            .map(|s| s.free_bytes)
            .map_err(|e| OpError::new(e.to_string()))
    }

    async fn health(&self) -> HealthFacts {
        health::check(self.web.as_ref().ok(), &self.config).await
    }

    fn maintenance_configured(&self) -> bool {
        maintenance::configured(&self.config)
    }

    async fn maintenance_on(&self, job_id: &str) -> Result<String, OpError> {
        maintenance::on(&self.agent, &self.config, job_id).await
    }

    async fn maintenance_off(&self) -> Result<String, OpError> {
        maintenance::off(&self.agent, &self.config).await
    }

    async fn config_review(&self, from: &Version, to: &Version) -> Result<Vec<String>, OpError> {
        git::config_review(self.web()?, self.root(), from, to).await
    }

    fn backup_path(&self, job_id: &str, now: i64) -> Result<PathBuf, OpError> {
        let backup = self
            .config
            .backup
            .as_ref()
            .ok_or_else(database::no_backup_dir)?;
        Ok(backup.dir.join(backup_file_name(job_id, now)))
    }

    async fn backup(&self, path: &Path) -> Result<(BackupInfo, String), OpError> {
        database::backup(&self.agent, &self.config, path).await
    }

    fn discard_partial(&self, partial: &Path) -> Result<(), OpError> {
        match std::fs::remove_file(partial) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(OpError::new(format!(
                "cannot remove {}: {e}",
                partial.display()
            ))),
        }
    }

    async fn checkout(
        &self,
        tag: &Version,
        email_copy: &Path,
        force: bool,
    ) -> Result<String, OpError> {
        git::checkout(self.web()?, &self.config, tag, email_copy, force).await
    }

    async fn migrate(&self, answers: &[String]) -> Result<String, OpError> {
        let timeout = self.config.jobs.step_timeout;
        migrate::run(self.web()?, self.root(), answers, timeout, &self.pidfile()).await
    }

    fn reap_orphans(&self) -> Option<String> {
        tracked::reap_all(&self.config.state_dir, self.root())
    }

    async fn restore(&self, backup: &BackupInfo) -> Result<String, OpError> {
        restore::restore(&self.agent, &self.config, backup).await
    }
}
