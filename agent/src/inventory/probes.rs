//! The inventory's probes of passbolt's commands: migration status, PHP version and the
//! healthcheck command's checks, in their wire form. Each turns every failure into data (an
//! error text or a failing check) instead of an `Err`.

use std::path::Path;
use std::time::Duration;

use boltfleet_common::proto::{HealthCheck, MigrationState};

use crate::exec::{Output, Runner};
use crate::passbolt::checks::healthcheck_command;
use crate::passbolt::healthcheck::Check;
use crate::passbolt::migrations::{parse_status, status_command};
use crate::passbolt::version_file::Layout;
use crate::text::excerpt;

/// Deadline of `cake ... migrations status`.
pub const MIGRATIONS_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of `php -r`.
pub const PHP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs and parses the migration status in `root`. Unknown (with the reason in `error`) when
/// the command cannot run or its output cannot be read; the exit code alone is not trusted
/// (v1 exits 0 on errors).
pub async fn migration_state(runner: &Runner, root: &Path, layout: Layout) -> MigrationState {
    let (program, args) = status_command(layout);
    let unknown = |error: String| MigrationState {
        known: false,
        error,
        ..Default::default()
    };
    let out = match runner
        .with_timeout(MIGRATIONS_TIMEOUT)
        .run(program, args, root)
        .await
    {
        Ok(out) => out,
        Err(e) => return unknown(format!("migration status: {e}")),
    };
    match parse_status(layout, &out.stdout) {
        Ok(status) => MigrationState {
            known: true,
            sections: status.sections,
            pending: status.pending,
            error: String::new(),
        },
        Err(e) => unknown(format!(
            "migration status: {e} ({}){}",
            out.exit_text(),
            stderr_hint(&out)
        )),
    }
}

/// The PHP version (`php -r 'echo PHP_VERSION;'`). A missing interpreter gives `Ok("")`: not a
/// host failure by itself (the cake commands will say more); a broken one is an error.
pub async fn php_version(runner: &Runner, php: &str, cwd: &Path) -> Result<String, String> {
    let out = match runner
        .with_timeout(PHP_TIMEOUT)
        .run(php, &["-r", "echo PHP_VERSION;"], cwd)
        .await
    {
        Ok(out) => out,
        Err(e) if e.is_not_found() => {
            tracing::info!(php, "php not found; php version left empty");
            return Ok(String::new());
        }
        Err(e) => return Err(format!("php: {e}")),
    };
    let version = out.stdout.trim();
    let looks_right = version.starts_with(|c: char| c.is_ascii_digit())
        && version.len() <= 64
        && !version.contains(char::is_whitespace);
    match (out.success(), looks_right) {
        (true, true) => Ok(version.to_string()),
        (true, false) => Err(format!(
            "php: printed {:?}, not a version",
            excerpt(version, 80)
        )),
        (false, _) => Err(format!(
            "php: {} -r failed ({}){}",
            php,
            out.exit_text(),
            stderr_hint(&out)
        )),
    }
}

/// Runs the configured healthcheck command in `root` and returns its checks; `Err` says why
/// the command could not run or printed no checks.
pub async fn command_checks(
    runner: &Runner,
    argv: &[String],
    root: &Path,
) -> Result<Vec<HealthCheck>, String> {
    let checks = healthcheck_command(runner, argv, root).await?;
    Ok(checks.into_iter().map(to_proto).collect())
}

fn to_proto(check: Check) -> HealthCheck {
    HealthCheck {
        source: "command".into(),
        name: check.name,
        status: check.status.as_str().into(),
        detail: check.detail,
    }
}

fn stderr_hint(out: &Output) -> String {
    let err = out.stderr.trim();
    if err.is_empty() {
        String::new()
    } else {
        format!(": {}", excerpt(err, 300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> Runner {
        Runner::new(None, Duration::from_secs(10)).unwrap()
    }

    fn script(root: &Path, rel: &str, body: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    #[tokio::test]
    async fn runs_the_layouts_status_command() {
        let dir = tempfile::tempdir().unwrap();
        let sample = dir.path().join("sample.txt");
        std::fs::write(
            &sample,
            include_str!("../passbolt/testdata/v1_migration_status_pending.txt"),
        )
        .unwrap();
        script(
            dir.path(),
            "app/Console/cake",
            &format!(
                "[ \"$*\" = 'Migrations.migration status' ] && cat {}",
                sample.display()
            ),
        );
        let state = migration_state(&runner(), dir.path(), Layout::V1).await;
        assert!(state.known && state.pending, "{state:?}");
        assert_eq!(state.sections.len(), 2);

        script(
            dir.path(),
            "bin/cake",
            "echo 'Error: SQLSTATE[HY000] [2002] Connection refused' >&2; exit 1",
        );
        let state = migration_state(&runner(), dir.path(), Layout::Modern).await;
        assert!(!state.known);
        assert!(
            state.error.contains("exit 1") && state.error.contains("Connection refused"),
            "{}",
            state.error
        );
    }

    #[tokio::test]
    async fn missing_php_is_empty_and_broken_php_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            php_version(&runner(), "no-such-php-binary", dir.path()).await,
            Ok(String::new())
        );
        script(dir.path(), "php", "echo 8.2.20");
        assert_eq!(
            php_version(&runner(), "./php", dir.path()).await,
            Ok("8.2.20".into())
        );
        script(dir.path(), "php", "echo 'PHP Fatal error' >&2; exit 255");
        let err = php_version(&runner(), "./php", dir.path())
            .await
            .unwrap_err();
        assert!(err.contains("exit 255") && err.contains("Fatal"), "{err}");
    }

    #[tokio::test]
    async fn healthcheck_command_checks() {
        let dir = tempfile::tempdir().unwrap();
        let sample = dir.path().join("hc.txt");
        std::fs::write(
            &sample,
            include_str!("../passbolt/testdata/v5_healthcheck_posix_quiet_stderr_exit1.txt"),
        )
        .unwrap();
        script(
            dir.path(),
            "bin/cake",
            &format!("cat {} >&2; exit 1", sample.display()),
        );
        let argv: Vec<String> = ["./bin/cake", "passbolt", "healthcheck", "--posix"]
            .map(String::from)
            .into();
        let checks = command_checks(&runner(), &argv, dir.path()).await.unwrap();
        assert_eq!(checks.len(), 1);
        assert_eq!(
            (checks[0].status.as_str(), checks[0].source.as_str()),
            ("fail", "command")
        );

        let missing: Vec<String> = vec!["./nope".into()];
        let err = command_checks(&runner(), &missing, dir.path())
            .await
            .unwrap_err();
        assert!(err.contains("cannot start ./nope"), "{err}");
        script(
            dir.path(),
            "bin/cake",
            "echo 'Passbolt commands cannot be executed as root.'; exit 1",
        );
        let err = command_checks(&runner(), &argv, dir.path())
            .await
            .unwrap_err();
        assert!(
            err.contains("executed as root") && err.contains("exit 1"),
            "{err}"
        );
    }
}
