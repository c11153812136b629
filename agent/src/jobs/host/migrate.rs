//! Runs passbolt's migrations as the web user and judges them by more than the exit code:
//! v1 prints errors and still exits 0, so the output is scanned and the status re-read.

use std::path::Path;

use super::{run_logged, transcript, OpError};
use crate::exec::Runner;
use crate::jobs::model::gist;
use crate::passbolt::migrations::{parse_status, status_command, MigrationStatus};
use crate::passbolt::version_file::{detect_layout, Layout};

/// Lines (or parts of lines) that mean a migration run went wrong, whatever its exit code.
const MARKERS: [&str; 8] = [
    "There was an error during a migration",
    "An error occurred when processing the migration",
    "Do you want to mark the migration as successful",
    "fatal error",
    "Exception:",
    "Something went wrong",
    "cannot be executed as root",
    "aborting",
];

/// The gist of the errors in a migration run's output, if it shows any: the `The error was:`
/// line when there is one, else an `Error:` line, else the first marker line.
pub fn error_gist(output: &str) -> Option<String> {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let marked = |l: &&&str| {
        let lower = l.to_lowercase();
        l.starts_with("Error:")
            || l.starts_with("Exception")
            || MARKERS.iter().any(|m| lower.contains(&m.to_lowercase()))
    };
    let first = lines.iter().find(marked)?;
    let best = lines
        .iter()
        .find(|l| l.starts_with("The error was:"))
        .or_else(|| lines.iter().find(|l| l.starts_with("Error:")))
        .unwrap_or(first);
    Some(gist(best, 300))
}

/// Whether every section of the status is up to date (v1: current == latest in each; v2+:
/// nothing down).
pub fn statuses_up_to_date(status: &MigrationStatus) -> Result<(), String> {
    let behind: Vec<String> = status
        .sections
        .iter()
        .filter(|s| s.current != s.latest)
        .map(|s| {
            let current = if s.current.is_empty() {
                "none"
            } else {
                &s.current
            };
            format!("{}: at {current}, latest {}", s.name, s.latest)
        })
        .collect();
    if behind.is_empty() && !status.pending {
        Ok(())
    } else {
        Err(format!(
            "migrations still pending after the run ({})",
            behind.join("; ")
        ))
    }
}

async fn status(
    runner: &Runner,
    root: &Path,
    layout: Layout,
    log: &mut String,
) -> Result<MigrationStatus, OpError> {
    let (program, args) = status_command(layout);
    let out = run_logged(runner, program, args, root, log).await?;
    parse_status(layout, &out.stdout).map_err(|e| {
        OpError::new(format!(
            "migration status unreadable ({}): {e}",
            out.exit_text()
        ))
        .with_log(log)
    })
}

/// Status, `run all` (v1) / `passbolt migrate` (v2+) with `answers` on stdin, status again.
/// `run all` is recorded in `pidfile` while it runs (see [`crate::exec::recorded`]).
pub async fn run(
    runner: &Runner,
    root: &Path,
    answers: &[String],
    timeout: std::time::Duration,
    pidfile: &Path,
) -> Result<String, OpError> {
    let layout = detect_layout(root).ok_or_else(|| {
        OpError::new(format!("no passbolt version file under {}", root.display()))
    })?;
    let mut log = String::new();
    status(runner, root, layout, &mut log).await?;
    let (program, args): (&str, &[&str]) = match layout {
        Layout::V1 => (
            "./app/Console/cake",
            &["Migrations.migration", "run", "all"],
        ),
        Layout::Modern => ("./bin/cake", &["passbolt", "migrate"]),
    };
    let input: String = answers.iter().map(|a| format!("{a}\n")).collect();
    let line = format!("{program} {}", args.join(" "));
    let out = runner
        .with_timeout(timeout)
        .run_recorded(program, args, root, input.as_bytes(), pidfile)
        .await
        .map_err(|e| OpError::new(e.to_string()).with_log(&log))?;
    log.push_str(&transcript(&line, &out));
    let text = format!("{}\n{}", out.stdout, out.stderr);
    if let Some(why) = error_gist(&text) {
        return Err(OpError::new(format!("{line}: {why}")).with_log(&log));
    }
    if !out.success() {
        let last = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("");
        return Err(OpError::new(format!(
            "{line} failed ({}): {}",
            out.exit_text(),
            gist(last, 200)
        ))
        .with_log(&log));
    }
    let after = status(runner, root, layout, &mut log).await?;
    statuses_up_to_date(&after).map_err(|why| OpError::new(why).with_log(&log))?;
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passbolt::migrations::{parse_json_status, parse_v1_status};

    fn sample(rel: &str) -> String {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/jobs/host/testdata")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn failures_are_found_in_the_output_whatever_the_exit_code() {
        let cases = [
            (
                "reconstructed/v1/migration_run_all_error_exit0.txt",
                "The error was: 'SQLSTATE[HY000]: General error: 1205",
            ),
            (
                "captured-v1/run_all_v1.1.0_to_v1.3.0_php71_fatal_exit255.txt",
                "Fatal error: Cannot use 'String'",
            ),
            (
                "reconstructed/v1/migration_run_all_migrationexception_prompt.txt",
                "Error: SQL Error: SQLSTATE[42S02]",
            ),
            (
                "reconstructed/v4/migrate_db_refused_exit1.txt",
                "Exception: There was a problem connecting",
            ),
            (
                "reconstructed/v4/migrate_as_root_exit1.txt",
                "Passbolt commands cannot be executed as root.",
            ),
        ];
        for (file, want) in cases {
            let got = error_gist(&sample(file)).unwrap_or_else(|| panic!("{file}: no error found"));
            assert!(got.starts_with(want), "{file}: {got}");
        }
        for ok in [
            "captured-v1/run_all_v1.1.0_to_v1.6.10_prompt_answered_n_exit0.txt",
            "captured-v1/run_all_v1.2.0_to_v1.3.0_prompt_answered_n_exit0.txt",
            "reconstructed/v1/migration_run_all_nothing_to_do.txt",
            "reconstructed/v4/migrate_ok_exit0.txt",
            "reconstructed/v4/migrate_backup_ok_exit0.txt",
        ] {
            assert_eq!(error_gist(&sample(ok)), None, "{ok}");
        }
    }

    #[test]
    fn every_section_must_be_current() {
        let up = parse_v1_status(&sample(
            "reconstructed/v1/migration_status_uptodate_1.6.10.txt",
        ))
        .unwrap();
        assert_eq!(statuses_up_to_date(&up), Ok(()));
        let pending = parse_v1_status(&sample("captured-v1/status_pending_at_v1.3.2.txt")).unwrap();
        let err = statuses_up_to_date(&pending).unwrap_err();
        assert!(err.contains("Application: at #1465367816"), "{err}");
        let json =
            parse_json_status(&sample("reconstructed/v4/migrations_status_json.txt")).unwrap();
        assert!(statuses_up_to_date(&json).is_err());
    }
}
