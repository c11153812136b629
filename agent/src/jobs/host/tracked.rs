//! Which long-running job commands are recorded while they run (the migrations, the database
//! dump and the restore client), and where: one pid file each under `<state_dir>/jobs/`. The
//! recording and the reaping of what a killed agent left running are `exec::recorded`'s.

use std::path::{Path, PathBuf};

use crate::exec;

/// The recorded commands, each with its pid file under `<state_dir>/jobs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// `cake ... run all` / `bin/cake passbolt migrate`.
    Migrate,
    /// `mariadb-dump` writing the backup.
    Dump,
    /// The client session that empties the database and loads the backup.
    Restore,
}

impl Tracked {
    pub const ALL: [Tracked; 3] = [Tracked::Migrate, Tracked::Dump, Tracked::Restore];

    /// `<state_dir>/jobs/<name>.pid` (the migration keeps its historical `child.pid`).
    pub fn pidfile(self, state_dir: &Path) -> PathBuf {
        let name = match self {
            Tracked::Migrate => "child.pid",
            Tracked::Dump => "dump.pid",
            Tracked::Restore => "restore.pid",
        };
        state_dir.join("jobs").join(name)
    }
}

/// Reaps every recorded command of `state_dir` (see [`exec::reap`]); what was stopped, if any.
pub fn reap_all(state_dir: &Path, root: &Path) -> Option<String> {
    let done: Vec<String> = Tracked::ALL
        .iter()
        .filter_map(|t| exec::reap(&t.pidfile(state_dir), root))
        .collect();
    (!done.is_empty()).then(|| done.join("; "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::exec::recorded::{is_our_orphan, start_time};
    use crate::exec::Runner;

    #[tokio::test]
    async fn every_recorded_client_is_reaped_and_a_reused_pid_is_not() {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(state.path().join("jobs")).unwrap();
        let runner = Runner::new(None, Duration::from_secs(10)).unwrap();
        let mut sleepers = Vec::new();
        for which in [Tracked::Dump, Tracked::Restore] {
            let (child, recorded) = runner
                .spawn_recorded(
                    "sleep",
                    &["30"],
                    Path::new("/"),
                    false,
                    &which.pidfile(state.path()),
                )
                .unwrap();
            // The agent dies: its record stays, the child lives on.
            std::mem::forget(recorded);
            sleepers.push(child);
        }
        for child in &sleepers {
            let pid = child.id().unwrap();
            assert!(is_our_orphan(pid, start_time(pid), Path::new("/nowhere")));
            assert!(
                !is_our_orphan(pid, start_time(pid).map(|t| t + 1), Path::new("/")),
                "another process that reused the pid is left alone"
            );
        }
        let done = reap_all(state.path(), Path::new("/nowhere")).unwrap();
        assert!(
            done.contains("(dump)") && done.contains("(restore)"),
            "{done}"
        );
        for mut child in sleepers {
            assert!(
                !child.wait().await.unwrap().success(),
                "it was running and was killed"
            );
        }
        assert_eq!(reap_all(state.path(), Path::new("/nowhere")), None);
    }
}
