//! The agent's own config file: where passbolt lives on this host and how to treat it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use boltfleet_common::config::{human_duration, load_toml, ConfigError};
use serde::{Deserialize, Deserializer};

use crate::jobs::retention::Retention;

/// Everything the agent knows about its host; read once at start and passed down.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Controller URLs, `https://host:port`: the `controller` key, one URL or a list of them
    /// (controllers sharing one CA; see [`crate::rotation`]).
    #[serde(rename = "controller", deserialize_with = "one_or_many")]
    pub controllers: Vec<String>,
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
    /// `[metrics] listen = "127.0.0.1:9465"`: the agent's own metrics (off by default).
    #[serde(default)]
    pub metrics: boltfleet_common::metrics::MetricsConfig,
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
        if let Err(msg) = check_controllers(&self.controllers) {
            return bad(msg);
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
}

/// The most controllers one agent may be given.
pub const MAX_CONTROLLERS: usize = 16;

/// `controller = "https://a:7443"` or `controller = ["https://a:7443", "https://b:7443"]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Urls;
    impl<'de> serde::de::Visitor<'de> for Urls {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a controller URL or a list of them")
        }

        fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<Self::Value, E> {
            Ok(vec![url.to_string()])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut urls = Vec::new();
            // Bounded while reading, so a huge list is refused before it is held.
            while let Some(url) = seq.next_element::<String>()? {
                if urls.len() == MAX_CONTROLLERS {
                    return Err(serde::de::Error::custom(format!(
                        "at most {MAX_CONTROLLERS} controller URLs"
                    )));
                }
                urls.push(url);
            }
            Ok(urls)
        }
    }
    d.deserialize_any(Urls)
}

/// Every controller URL is `https://host[:port]` with nothing after the authority but `/`, and
/// none twice; the error names the bad entry.
fn check_controllers(urls: &[String]) -> Result<(), String> {
    if urls.is_empty() {
        return Err("controller: expected at least one https:// URL".into());
    }
    let name = |i: usize| {
        if urls.len() == 1 {
            "controller".to_string()
        } else {
            format!("controller[{i}]")
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let key = controller_key(url).map_err(|why| format!("{}: {why}, got {url:?}", name(i)))?;
        if let Some(first) = seen.iter().position(|k| *k == key) {
            return Err(format!(
                "{}: {url:?} is listed twice (also {})",
                name(i),
                name(first)
            ));
        }
        seen.push(key);
    }
    Ok(())
}

/// The scheme-less, lower-cased `host:port` of a valid controller URL: two URLs with the same
/// key reach the same controller.
fn controller_key(url: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "expected an https://host:port URL";
    let uri: hyper::Uri = url.parse().map_err(|_| EXPECTED)?;
    if uri.scheme_str() != Some("https") {
        return Err("expected an https:// URL");
    }
    let authority = uri.authority().ok_or(EXPECTED)?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(EXPECTED);
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("expected no path or query after host:port");
    }
    let port = authority.port_u16().unwrap_or(443);
    Ok(format!("{}:{port}", authority.host().to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(controller: &str) -> Result<AgentConfig, String> {
        let text = format!(
            "controller = {controller}\nstate_dir = \"/tmp/x\"\n[passbolt]\nroot = \"/srv\"\n"
        );
        let config: AgentConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        check_controllers(&config.controllers)?;
        Ok(config)
    }

    #[test]
    fn controller_is_one_url_or_a_list() {
        let one = parse("\"https://a.example:7443\"").unwrap();
        assert_eq!(one.controllers, ["https://a.example:7443"]);
        let two = parse("[\"https://a.example:7443\", \"https://10.0.0.2:7443/\"]").unwrap();
        assert_eq!(
            two.controllers,
            ["https://a.example:7443", "https://10.0.0.2:7443/"]
        );
        let sixteen: Vec<String> = (0..16).map(|i| format!("\"https://c{i}:1\"")).collect();
        assert_eq!(
            parse(&format!("[{}]", sixteen.join(",")))
                .unwrap()
                .controllers
                .len(),
            16
        );
    }

    #[test]
    fn every_bad_controller_entry_is_named() {
        let seventeen: Vec<String> = (0..17).map(|i| format!("\"https://c{i}:1\"")).collect();
        let seventeen = format!("[{}]", seventeen.join(","));
        for (controller, says) in [
            (
                "\"http://a:7443\"",
                "controller: expected an https:// URL, got \"http://a:7443\"",
            ),
            (
                "[\"https://a:1\", \"http://b:1\"]",
                "controller[1]: expected an https:// URL",
            ),
            (
                "[\"https://a:1\", \"https:// b\"]",
                "controller[1]: expected an https://host:port URL",
            ),
            (
                "[\"https://a:1/api\"]",
                "controller: expected no path or query",
            ),
            (
                "[\"https://u@a:1\"]",
                "controller: expected an https://host:port URL",
            ),
            (
                "[\"https://a:1\", \"https://b:1\", \"https://A:1/\"]",
                "controller[2]: \"https://A:1/\" is listed twice (also controller[0])",
            ),
            (
                "[\"https://a:443\", \"https://a\"]",
                "controller[1]: \"https://a\" is listed twice",
            ),
            ("[]", "controller: expected at least one https:// URL"),
            (&seventeen, "at most 16 controller URLs"),
            ("[1]", "expected a string"),
            ("7443", "a controller URL or a list of them"),
        ] {
            let err = parse(controller).unwrap_err();
            assert!(err.contains(says), "{controller}: {err}");
        }
    }
}
