//! The agent's own config file: where passbolt lives on this host and how to treat it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use boltfleet_common::config::{human_duration, load_toml, ConfigError};
use serde::Deserialize;

use crate::jobs::retention::Retention;

/// Everything the agent knows about its host; read once at start and passed down.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Controller URL, `https://host:port`.
    pub controller: String,
    /// The agent's key, certificate, CA and journal live here.
    pub state_dir: PathBuf,
    /// How often a report is sent even when nothing changed.
    #[serde(
        default = "default_report_interval",
        deserialize_with = "human_duration"
    )]
    pub report_interval: Duration,
    /// How often passbolt's own commands (git, `cake` migration status, the healthcheck
    /// command, PHP) run when nothing changed; a change of HEAD or of the version file, and
    /// the end of a job, run them at once. Cheap facts go out at every report.
    #[serde(
        default = "default_probe_interval",
        deserialize_with = "human_duration"
    )]
    pub probe_interval: Duration,
    pub passbolt: PassboltConfig,
    #[serde(default)]
    pub mysql: Option<MysqlConfig>,
    #[serde(default)]
    pub backup: Option<BackupConfig>,
    #[serde(default)]
    pub maintenance: Option<MaintenanceConfig>,
    #[serde(default)]
    pub jobs: JobsConfig,
}

/// The passbolt install on this host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassboltConfig {
    /// Root of the source install (a git work tree).
    pub root: PathBuf,
    /// User that owns the files and runs git and cake; the agent's own user when absent.
    #[serde(default)]
    pub web_user: Option<String>,
    /// `/healthcheck/status.json` URL of this install.
    #[serde(default)]
    pub healthcheck_url: Option<String>,
    /// Healthcheck program and arguments, run as the web user in `root`
    /// (e.g. `["./bin/cake", "passbolt", "healthcheck"]`); never passed through a shell.
    #[serde(default)]
    pub healthcheck_command: Option<Vec<String>>,
    /// Long-standing failures of passbolt's healthcheck the operator accepts (text contained in
    /// the check's name, case-insensitive), e.g. the latest-version check of an offline host.
    /// They are still reported, but do not make the host unhealthy.
    #[serde(default)]
    pub known_failures: Vec<String>,
    /// PHP interpreter used to report the PHP version.
    #[serde(default = "default_php")]
    pub php: String,
}

/// How to reach the passbolt database; credentials stay in the option file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// MySQL option file (`[client]` user, password, host/socket), readable only by the agent.
    pub option_file: PathBuf,
    /// Name of the passbolt database.
    pub database: String,
    /// Dump program for backups; the first of `mariadb-dump`, `mysqldump` on PATH when absent.
    #[serde(default)]
    pub dump_program: Option<String>,
    /// Client program that restores backups; the first of `mariadb`, `mysql` on PATH when
    /// absent.
    #[serde(default)]
    pub client_program: Option<String>,
}

/// Where verified database backups go and how many are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    pub dir: PathBuf,
    #[serde(default = "default_keep")]
    pub keep: usize,
}

/// How the site is put into maintenance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// A file whose presence makes the web server serve a maintenance page.
    #[serde(default)]
    pub flag_file: Option<PathBuf>,
    /// Program and arguments that turn maintenance on (instead of the flag file).
    #[serde(default)]
    pub on_command: Option<Vec<String>>,
    /// Program and arguments that turn maintenance off.
    #[serde(default)]
    pub off_command: Option<Vec<String>>,
}

/// How update jobs reach their inputs and how long their commands may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Git remote that release tags are fetched from.
    #[serde(default = "default_git_remote")]
    pub git_remote: String,
    /// Composer program, run as the web user after a checkout of passbolt v2 or later.
    #[serde(default = "default_composer")]
    pub composer: String,
    /// Deadline of each long command of a job: dump, restore, checkout, composer, migrations.
    #[serde(default = "default_step_timeout", deserialize_with = "human_duration")]
    pub step_timeout: Duration,
    /// Finished job records kept in the journal however old they are (the newest ones).
    #[serde(default = "default_keep_journals")]
    pub keep_journals: usize,
    /// Finished job records younger than this are kept however many there are.
    #[serde(
        default = "default_journal_max_age",
        deserialize_with = "human_duration"
    )]
    pub journal_max_age: Duration,
}

impl JobsConfig {
    /// The journal's retention policy.
    pub fn retention(&self) -> Retention {
        Retention {
            keep: self.keep_journals,
            max_age: self.journal_max_age,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            git_remote: default_git_remote(),
            composer: default_composer(),
            step_timeout: default_step_timeout(),
            keep_journals: default_keep_journals(),
            journal_max_age: default_journal_max_age(),
        }
    }
}

fn default_git_remote() -> String {
    "origin".to_string()
}

fn default_composer() -> String {
    "composer".to_string()
}

fn default_step_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_keep_journals() -> usize {
    Retention::default().keep
}

fn default_journal_max_age() -> Duration {
    Retention::default().max_age
}

fn default_report_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(10 * 60)
}

fn default_php() -> String {
    "php".to_string()
}

fn default_keep() -> usize {
    5
}

impl AgentConfig {
    /// Loads and validates the config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = load_toml(path)?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::invalid(path, msg));
        if !self.controller.starts_with("https://") {
            return bad(format!(
                "controller: expected an https:// URL, got {:?}",
                self.controller
            ));
        }
        if self.report_interval < Duration::from_millis(100) {
            return bad("report_interval: must be at least 100ms".into());
        }
        if self.probe_interval < Duration::from_millis(100) {
            return bad("probe_interval: must be at least 100ms".into());
        }
        if !self.passbolt.root.is_absolute() {
            return bad("passbolt.root: must be an absolute path".into());
        }
        if let Some(cmd) = &self.passbolt.healthcheck_command {
            if cmd.is_empty() {
                return bad("passbolt.healthcheck_command: must name a program".into());
            }
        }
        if let Some(url) = &self.passbolt.healthcheck_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad(format!(
                    "passbolt.healthcheck_url: expected an http(s) URL, got {url:?}"
                ));
            }
        }
        let jobs = &self.jobs;
        let remote_ok = !jobs.git_remote.is_empty()
            && !jobs.git_remote.starts_with('-')
            && !jobs.git_remote.contains(char::is_whitespace);
        if !remote_ok {
            return bad(format!(
                "jobs.git_remote: expected a remote name, got {:?}",
                jobs.git_remote
            ));
        }
        if jobs.step_timeout < Duration::from_secs(10) {
            return bad("jobs.step_timeout: must be at least 10s".into());
        }
        if jobs.keep_journals == 0 {
            return bad("jobs.keep_journals: must be at least 1".into());
        }
        if jobs.journal_max_age > Duration::from_secs(100 * 365 * 24 * 3600) {
            return bad("jobs.journal_max_age: must be at most 100 years".into());
        }
        if let Some(backup) = &self.backup {
            if backup.keep == 0 {
                return bad("backup.keep: must be at least 1".into());
            }
        }
        if let Some(m) = &self.maintenance {
            if m.on_command.is_some() != m.off_command.is_some() {
                return bad("maintenance: on_command and off_command go together".into());
            }
            if m.flag_file.is_some() && m.on_command.is_some() {
                return bad("maintenance: choose flag_file or on/off commands, not both".into());
            }
        }
        Ok(())
    }

    /// The controller's address with the scheme the transport expects.
    pub fn controller_url(&self) -> &str {
        &self.controller
    }
}
