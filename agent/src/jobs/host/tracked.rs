//! Long-running job commands (the migrations, the database dump and the restore client) whose
//! process group is recorded on disk while they run, so an agent restarted after being killed
//! can stop the orphan (commands run in their own process group and outlive the agent) before
//! it converges the host under it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boltfleet_common::files::write_private;
use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::OpError;
use crate::inventory::run::{Output, Runner};

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

/// A pid file that exists while its command runs; removed when dropped.
#[derive(Debug)]
pub struct Recorded {
    path: PathBuf,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts `cmd` in its own process group (killed with the agent's handle when dropped) and
/// records its pid and start time in `pidfile`.
pub fn spawn(
    mut cmd: std::process::Command,
    pidfile: &Path,
) -> std::io::Result<(tokio::process::Child, Recorded)> {
    cmd.process_group(0);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn()?;
    let pid = child.id().unwrap_or_default();
    let started = start_time(pid).unwrap_or_default();
    if let Err(e) = write_private(pidfile, format!("{pid} {started}\n").as_bytes()) {
        tracing::warn!(error = %e, path = %pidfile.display(), "cannot record the running command");
    }
    Ok((
        child,
        Recorded {
            path: pidfile.to_path_buf(),
        },
    ))
}

/// Runs `program` like [`Runner::run_with_stdin`] (as its user, own process group, deadline),
/// with its pid in `pidfile` while it runs.
pub async fn run(
    runner: &Runner,
    program: &str,
    args: &[&str],
    cwd: &Path,
    input: &[u8],
    timeout: Duration,
    pidfile: &Path,
) -> Result<Output, OpError> {
    let cmd = runner.command(program, args, cwd, true);
    let (mut child, _recorded) =
        spawn(cmd, pidfile).map_err(|e| OpError::new(format!("cannot start {program}: {e}")))?;
    let pid = child.id().unwrap_or_default();
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let finished = tokio::time::timeout(timeout, async {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (status, _, _) = tokio::join!(
            child.wait(),
            async {
                if let Some(o) = out.as_mut() {
                    let _ = o.read_to_end(&mut a).await;
                }
            },
            async {
                if let Some(e) = err.as_mut() {
                    let _ = e.read_to_end(&mut b).await;
                }
            }
        );
        (status, a, b)
    })
    .await;
    match finished {
        Ok((Ok(status), stdout, stderr)) => Ok(Output {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
        Ok((Err(e), _, _)) => Err(OpError::new(format!("{program} failed while running: {e}"))),
        Err(_) => {
            kill_group(pid);
            let _ = child.start_kill();
            Err(OpError::new(format!(
                "{program} did not finish within {}s and was killed",
                timeout.as_secs()
            )))
        }
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
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether the process group recorded as `pid` (started at `started`, when recorded) still
/// runs: a live (not zombie) group leader with that start time. Records without a start time
/// (older agents) must also work in `root`.
fn is_our_orphan(pid: u32, started: Option<u64>, root: &Path) -> bool {
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

/// Reaps every recorded command of `state_dir` (see [`reap`]); what was stopped, if any.
pub fn reap_all(state_dir: &Path, root: &Path) -> Option<String> {
    let done: Vec<String> = Tracked::ALL
        .iter()
        .filter_map(|t| reap(&t.pidfile(state_dir), root))
        .collect();
    (!done.is_empty()).then(|| done.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_the_pid_while_running_and_reaps_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let runner = Runner::new(None, Duration::from_secs(10)).unwrap();
        // Reads its input first: it is written once the pid is recorded.
        let script = format!("read x; cat {}; echo got $x", pidfile.display());
        let out = run(
            &runner,
            "sh",
            &["-c", &script],
            dir.path(),
            b"y\n",
            Duration::from_secs(10),
            &pidfile,
        )
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

    #[tokio::test]
    async fn every_recorded_client_is_reaped_and_a_reused_pid_is_not() {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(state.path().join("jobs")).unwrap();
        let mut sleepers = Vec::new();
        for which in [Tracked::Dump, Tracked::Restore] {
            let mut cmd = std::process::Command::new("sleep");
            cmd.arg("30");
            let (child, recorded) = spawn(cmd, &which.pidfile(state.path())).unwrap();
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
