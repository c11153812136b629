//! Process groups recorded on disk while they run: a pid file holding the group leader's pid
//! and start time, so an agent restarted after being killed can stop the orphan (commands
//! run in their own process group and outlive the agent) before it converges the host under
//! it, and never a later process that reused the pid. Which commands are recorded, and where,
//! is the jobs' choice (`jobs/host/tracked.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boltfleet_common::files::write_private;
use rustix::process::{kill_process_group, Pid, Signal};

/// A pid file that exists while its command runs; removed when dropped.
#[derive(Debug)]
pub struct Recorded {
    path: PathBuf,
}

impl Recorded {
    /// Records the group led by `pid` (just started) in `pidfile`. A record that cannot be
    /// written is logged: the command still runs, it just cannot be reaped after a crash.
    pub(super) fn write(pidfile: &Path, pid: Option<u32>) -> Self {
        let pid = pid.unwrap_or_default();
        let started = start_time(pid).unwrap_or_default();
        if let Err(e) = write_private(pidfile, format!("{pid} {started}\n").as_bytes()) {
            tracing::warn!(error = %e, path = %pidfile.display(), "cannot record the running command");
        }
        Recorded {
            path: pidfile.to_path_buf(),
        }
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Kills the process group led by `pid`.
pub fn kill_group(pid: u32) {
    if let Some(group) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(group, Signal::KILL);
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// When `pid` started, in clock ticks since boot (field 22 of its stat): with the pid, it
/// names one process, never a later one that reused the pid.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether the process group recorded as `pid` (started at `started`, when recorded) still
/// runs: a live (not zombie) group leader with that start time. Records without a start time
/// (older agents) must also work in `root`.
pub(crate) fn is_our_orphan(pid: u32, started: Option<u64>, root: &Path) -> bool {
    let Some(fields) = stat_fields(pid) else {
        return false;
    };
    let live_leader = fields.first().is_some_and(|s| s != "Z")
        && fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pid);
    if !live_leader {
        return false;
    }
    match started {
        Some(started) => fields.get(19).and_then(|t| t.parse().ok()) == Some(started),
        None => {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
            cwd.is_some_and(|c| c == root)
        }
    }
}

/// Stops the command recorded in `pidfile` by a previous agent, if it still runs; returns
/// what was done, for the log.
pub fn reap(pidfile: &Path, root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    let _ = std::fs::remove_file(pidfile);
    let mut parts = text.split_whitespace();
    let pid: u32 = parts.next()?.parse().ok()?;
    let started: Option<u64> = parts.next().and_then(|t| t.parse().ok()).filter(|t| *t > 0);
    if !is_our_orphan(pid, started, root) {
        return None;
    }
    kill_group(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_our_orphan(pid, started, root) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let name = pidfile
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(format!(
        "stopped process group {pid} ({name}) left running by the previous agent"
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;
    use crate::exec::Runner;

    #[tokio::test]
    async fn records_the_pid_while_running_and_reaps_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let runner = Runner::new(None, Duration::from_secs(10)).unwrap();
        // Reads its input first: it is written once the pid is recorded.
        let script = format!("read x; cat {}; echo got $x", pidfile.display());
        let out = runner
            .run_recorded("sh", &["-c", &script], dir.path(), b"y\n", &pidfile)
            .await
            .unwrap();
        assert!(out.success());
        assert!(out.stdout.ends_with("got y\n"), "{out:?}");
        let (pid, started) = out.stdout.split_once(' ').unwrap();
        assert!(pid.parse::<u32>().is_ok() && started.starts_with(char::is_numeric));
        assert!(!pidfile.exists(), "removed when done");

        // An orphan of an older agent: started in its own group, recorded without a start
        // time, never waited for.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(dir.path())
            .process_group(0)
            .spawn()
            .unwrap();
        std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
        assert!(is_our_orphan(child.id(), None, dir.path()));
        assert!(
            !is_our_orphan(child.id(), None, Path::new("/")),
            "not in the root"
        );
        let done = reap(&pidfile, dir.path()).unwrap();
        assert!(done.contains(&child.id().to_string()));
        assert!(!is_our_orphan(child.id(), None, dir.path()));
        assert!(!child.wait().unwrap().success(), "killed");
        assert_eq!(reap(&pidfile, dir.path()), None, "record removed");
    }
}
