//! Gathers the inventory: runs the probes together and turns every failure into data.

use std::path::Path;
use std::time::Duration;

use boltfleet_common::clock::unix_now;
use boltfleet_common::proto::{DiskSpace, GitState, HealthCheck, Inventory, MigrationState};
use boltfleet_common::version::release_tag;

use super::health::judge_health;
use super::{git, probes};
use crate::config::AgentConfig;
use crate::disk;
use crate::exec::Runner;
use crate::passbolt::checks::status_url;
use crate::passbolt::healthcheck::CheckStatus;
use crate::passbolt::version_file::{detect_layout, read_installed_version, Layout};

/// Deadline of each git command.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// What passbolt's own commands said: the costly part of an inventory (git, `cake`'s migration
/// status, the healthcheck command and PHP each start a process; a `cake` boot is a PHP run).
/// Taken when the install changed, after a job, or at the slow probe interval; see
/// [`super::Prober`].
#[derive(Debug, Clone)]
pub struct Probed {
    git: Result<(GitState, String), Option<String>>,
    migrations: MigrationState,
    php: Result<String, String>,
    command: Result<Vec<HealthCheck>, (String, String)>,
    /// Unix seconds when the commands ran.
    pub at: i64,
}

/// Takes the inventory of the host described by `config`, running every probe. Never fails:
/// each problem reading the host becomes an entry of `errors` (or a failing health check) and
/// makes the host unhealthy. Takes as long as the slowest probe (the healthcheck command can
/// take minutes offline, see [`crate::passbolt::checks::HEALTHCHECK_TIMEOUT`]).
pub async fn collect(config: &AgentConfig) -> Inventory {
    let probed = probe(config).await;
    assemble(config, &probed).await
}

/// Runs passbolt's commands concurrently: git state, migration status, PHP version, the
/// healthcheck command. Nothing here may run while a job holds the host.
pub async fn probe(config: &AgentConfig) -> Probed {
    let pb = &config.passbolt;
    let root = pb.root.as_path();
    let runner = Runner::new(pb.web_user.as_deref(), GIT_TIMEOUT).ok();
    let runner = runner.as_ref().filter(|_| root.is_dir());
    let layout = detect_layout(root);
    let (git, migrations, php, command) = tokio::join!(
        git_probe(runner, root),
        migration_probe(runner, root, layout),
        php_probe(runner, &pb.php, root),
        command_probe(runner, pb.healthcheck_command.as_deref(), root),
    );
    Probed {
        git,
        migrations,
        php,
        command,
        at: unix_now(),
    }
}

/// The inventory from `probed` and the cheap facts read now: the version file, free space and
/// the HTTP healthcheck. Judges health from all of them.
pub async fn assemble(config: &AgentConfig, probed: &Probed) -> Inventory {
    let pb = &config.passbolt;
    let root = pb.root.as_path();
    let mut errors = Vec::new();
    let root_ok = root.is_dir();
    if !root_ok {
        errors.push(format!(
            "passbolt root {} is not a directory",
            root.display()
        ));
    }
    let runner_ok = match Runner::new(pb.web_user.as_deref(), GIT_TIMEOUT) {
        Ok(_) => true,
        Err(e) => {
            errors.push(format!("web user: {e}"));
            false
        }
    };
    let mut inv = Inventory {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        collected_at: unix_now(),
        probed_at: probed.at,
        ..Default::default()
    };
    if root_ok {
        match read_installed_version(root) {
            Ok(found) => {
                inv.passbolt_version = found.version.to_string();
                inv.version_file = found.path.display().to_string();
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let http_check = match &pb.healthcheck_url {
        Some(url) => Some(status_url(url).await),
        None => None,
    };
    match &probed.git {
        Ok((state, newest)) => {
            inv.git = Some(state.clone());
            inv.newest_tag = newest.clone();
        }
        Err(e) => errors.extend(e.clone()),
    }
    let migrations = probed.migrations.clone();
    // Without a runner or a layout the cause is already among the errors.
    if !migrations.known && runner_ok && root_ok && detect_layout(root).is_some() {
        errors.push(migrations.error.clone());
    }
    inv.migrations = Some(migrations);
    match &probed.php {
        Ok(version) => inv.php_version = version.clone(),
        Err(e) => errors.push(e.clone()),
    }
    inv.disks = disks(config, root_ok, &mut errors);
    let mut checks: Vec<HealthCheck> = http_check.into_iter().collect();
    let command_failure = match &probed.command {
        Ok(found) => {
            checks.extend(found.iter().cloned());
            None
        }
        Err((name, why)) => {
            // Shown as a failing check too, so a report lists what was tried.
            checks.push(HealthCheck {
                source: "command".into(),
                name: name.clone(),
                status: CheckStatus::Fail.as_str().into(),
                detail: why.clone(),
            });
            Some(why.clone())
        }
    };
    inv.health = Some(judge_health(
        checks,
        command_failure,
        &errors,
        &pb.known_failures,
    ));
    inv.errors = errors;
    inv
}

async fn git_probe(
    runner: Option<&Runner>,
    root: &Path,
) -> Result<(GitState, String), Option<String>> {
    let runner = runner.ok_or(None)?;
    let state = git::repo_state(runner, root)
        .await
        .map_err(|e| Some(format!("git: {e}")))?;
    let newest = state
        .newest_release
        .as_ref()
        .map(release_tag)
        .unwrap_or_default();
    Ok((state.to_proto(), newest))
}

async fn migration_probe(
    runner: Option<&Runner>,
    root: &Path,
    layout: Option<Layout>,
) -> MigrationState {
    let unknown = |error: &str| MigrationState {
        known: false,
        error: error.to_string(),
        ..Default::default()
    };
    match (runner, layout) {
        (None, _) => unknown("commands cannot be run on this host (see errors)"),
        (_, None) => unknown("not a passbolt source tree: no version file (see errors)"),
        (Some(runner), Some(layout)) => probes::migration_state(runner, root, layout).await,
    }
}

/// The checks of the configured healthcheck command; `Err((command, why))` when it gave none.
async fn command_probe(
    runner: Option<&Runner>,
    argv: Option<&[String]>,
    root: &Path,
) -> Result<Vec<HealthCheck>, (String, String)> {
    let Some(argv) = argv else {
        return Ok(Vec::new());
    };
    let name = argv.join(" ");
    let runner = runner.ok_or_else(|| {
        (
            name.clone(),
            "commands cannot be run on this host (see errors)".to_string(),
        )
    })?;
    probes::command_checks(runner, argv, root)
        .await
        .map_err(|why| (name, why))
}

async fn php_probe(runner: Option<&Runner>, php: &str, root: &Path) -> Result<String, String> {
    match runner {
        Some(runner) => probes::php_version(runner, php, root).await,
        None => Ok(String::new()),
    }
}

/// Space for the install (when it exists) and for the backups (where they will go).
fn disks(config: &AgentConfig, root_ok: bool, errors: &mut Vec<String>) -> Vec<DiskSpace> {
    let mut wanted = Vec::new();
    if root_ok {
        wanted.push(("install", config.passbolt.root.as_path()));
    }
    if let Some(backup) = &config.backup {
        wanted.push(("backup", backup.dir.as_path()));
    }
    let mut rows = Vec::new();
    for (role, path) in wanted {
        match disk::disk_space(role, path) {
            Ok(row) => rows.push(row),
            Err(e) => errors.push(format!("{role} disk: {e}")),
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn config(root: &Path, extra: &str) -> AgentConfig {
        let text = format!(
            "controller = \"https://c.example:7443\"\nstate_dir = \"/tmp/x\"\n[passbolt]\nroot = {root:?}\n{extra}\n"
        );
        toml::from_str(&text).unwrap()
    }

    fn script(path: &Path, body: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    fn git(root: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e.example",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
            ])
            .args(args)
            .current_dir(root)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    #[tokio::test]
    async fn a_directory_that_is_not_passbolt_is_unhealthy_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let inv = collect(&config(dir.path(), "php = \"no-such-php-here\"\nhealthcheck_command = [\"./bin/cake\", \"passbolt\", \"healthcheck\"]\nhealthcheck_url = \"http://127.0.0.1:9/healthcheck/status.json\"")).await;
        assert_eq!(inv.agent_version, env!("CARGO_PKG_VERSION"));
        assert!(inv.collected_at > 1_600_000_000);
        assert_eq!(inv.passbolt_version, "");
        assert!(
            inv.errors
                .iter()
                .any(|e| e.contains("no passbolt version file")),
            "{:?}",
            inv.errors
        );
        assert!(
            inv.errors.iter().any(|e| e.starts_with("git:")),
            "{:?}",
            inv.errors
        );
        assert_eq!(inv.php_version, "");
        let migrations = inv.migrations.unwrap();
        assert!(!migrations.known && !migrations.error.is_empty());
        let health = inv.health.unwrap();
        assert!(!health.healthy);
        assert_eq!(health.checks.len(), 2, "{:?}", health.checks);
        assert!(health.checks.iter().all(|c| c.status == "fail"));
        assert_eq!(health.reasons.len(), 3, "{:?}", health.reasons);
        assert_eq!(inv.disks.len(), 1);
        assert_eq!(inv.disks[0].role, "install");
    }

    #[tokio::test]
    async fn a_missing_root_is_reported() {
        let inv = collect(&config(Path::new("/nonexistent/passbolt"), "")).await;
        assert!(
            inv.errors[0].contains("is not a directory"),
            "{:?}",
            inv.errors
        );
        let health = inv.health.unwrap();
        assert!(!health.healthy && health.checks.is_empty());
        assert!(inv.disks.is_empty());
        assert!(health.reasons[0].starts_with("host not fully readable"));
    }

    #[tokio::test]
    async fn an_unknown_web_user_is_reported_and_nothing_runs() {
        let dir = tempfile::tempdir().unwrap();
        let extra = "web_user = \"no-such-user-xyz\"\nhealthcheck_command = [\"./bin/cake\"]";
        let inv = collect(&config(dir.path(), extra)).await;
        assert!(
            inv.errors
                .iter()
                .any(|e| e.starts_with("web user: unknown user")),
            "{:?}",
            inv.errors
        );
        assert!(inv.git.is_none());
        let health = inv.health.unwrap();
        assert!(!health.healthy);
        assert!(
            health.reasons[0].contains("commands cannot be run"),
            "{:?}",
            health.reasons
        );
    }

    /// A v4-like install: git tree on v4.12.1, fake `bin/cake` and `php` answering from samples.
    fn fake_install(root: &Path, healthcheck_sample: &str) -> PathBuf {
        std::fs::create_dir_all(root.join("config")).unwrap();
        std::fs::write(
            root.join("config/version.php"),
            include_str!("../passbolt/testdata/v4_version.php"),
        )
        .unwrap();
        let data = root.join("testdata");
        std::fs::create_dir_all(&data).unwrap();
        let json = include_str!("../passbolt/testdata/v4_migrations_status_json.txt")
            .replace("\"down\"", "\"up\"");
        std::fs::write(data.join("status.txt"), json).unwrap();
        std::fs::write(data.join("hc.txt"), healthcheck_sample).unwrap();
        script(
            &root.join("bin/cake"),
            "case \"$*\" in\n 'migrations status -f json') cat testdata/status.txt;;\n 'passbolt healthcheck') cat testdata/hc.txt;;\n *) exit 2;;\nesac",
        );
        std::fs::write(root.join(".gitignore"), "testdata/\n").unwrap();
        git(root, &["init", "-q"]);
        git(root, &["add", "."]);
        git(root, &["commit", "-q", "-m", "v4.12.1"]);
        git(root, &["tag", "v4.12.1"]);
        git(root, &["tag", "v4.13.0-rc.1"]);
        let php = root.join("testdata/php");
        script(&php, "echo 8.2.20");
        php
    }

    #[tokio::test]
    async fn reads_a_fake_install() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let php = fake_install(
            root,
            include_str!("../passbolt/testdata/v4_healthcheck_ok_exit0.txt"),
        );
        let extra = format!("php = {php:?}\nhealthcheck_command = [\"./bin/cake\", \"passbolt\", \"healthcheck\"]\n[backup]\ndir = {:?}", root.join("backups"));
        let inv = collect(&config(root, &extra)).await;
        assert!(inv.errors.is_empty(), "{:?}", inv.errors);
        assert_eq!(inv.passbolt_version, "4.12.1");
        assert_eq!(
            inv.version_file,
            root.join("config/version.php").display().to_string()
        );
        let git = inv.git.clone().unwrap();
        assert_eq!(
            (git.tag.as_str(), git.dirty, git.head.len()),
            ("v4.12.1", false, 40)
        );
        assert_eq!(inv.newest_tag, "v4.12.1");
        let migrations = inv.migrations.clone().unwrap();
        assert!(migrations.known && !migrations.pending, "{migrations:?}");
        assert_eq!(inv.php_version, "8.2.20");
        assert_eq!(
            inv.disks
                .iter()
                .map(|d| d.role.as_str())
                .collect::<Vec<_>>(),
            ["install", "backup"]
        );
        let health = inv.health.clone().unwrap();
        assert!(health.healthy, "{:?}", health.reasons);
        assert_eq!(health.checks.len(), 53);

        std::fs::write(
            root.join("testdata/hc.txt"),
            include_str!("../passbolt/testdata/v4_healthcheck_2_errors_exit0.txt"),
        )
        .unwrap();
        let inv = collect(&config(root, &extra)).await;
        let health = inv.health.unwrap();
        assert!(!health.healthy);
        assert_eq!(
            health.reasons,
            [
                "healthcheck: This installation is not up to date. Currently using 4.11.0 and it should be 4.12.1.",
                "healthcheck: The database schema is not up to date."
            ]
        );
    }
}
