//! Long-running passbolt commands whose process group is recorded on disk while they run, so
//! an agent restarted after being killed can stop the orphan (commands run in their own
//! process group and outlive the agent) before it rolls the host back under it.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use boltfleet_common::files::write_private;
use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::OpError;
use crate::inventory::run::{Output, Runner};

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
    let path = if program.contains('/') && Path::new(program).is_relative() {
        cwd.join(program)
    } else {
        program.into()
    };
    let mut cmd = std::process::Command::new(path);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(user) = runner.run_as() {
        cmd.uid(user.uid)
            .gid(user.gid)
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| OpError::new(format!("cannot start {program}: {e}")))?;
    let pid = child.id().unwrap_or_default();
    if let Err(e) = write_private(pidfile, format!("{pid}\n").as_bytes()) {
        tracing::warn!(error = %e, path = %pidfile.display(), "cannot record the running command");
    }
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
    let result = match finished {
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
    };
    let _ = std::fs::remove_file(pidfile);
    result
}

fn kill_group(pid: u32) {
    if let Some(group) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(group, Signal::KILL);
    }
}

/// Whether `pid` is a live (not zombie) process group leader working in `root`.
fn is_our_orphan(pid: u32, root: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let live_leader = fields.first().is_some_and(|s| *s != "Z")
        && fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pid);
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    live_leader && cwd.is_some_and(|c| c == root)
}

/// Stops the command recorded in `pidfile` by a previous agent, if it still runs in `root`;
/// returns what was done, for the log.
pub fn reap(pidfile: &Path, root: &Path) -> Option<String> {
    let pid: u32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let _ = std::fs::remove_file(pidfile);
    if !is_our_orphan(pid, root) {
        return None;
    }
    kill_group(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_our_orphan(pid, root) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(format!(
        "stopped process group {pid} left running by the previous agent"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_the_pid_while_running_and_reaps_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let runner = Runner::new(None, Duration::from_secs(10)).unwrap();
        let script = format!("cat {}; read x; echo got $x", pidfile.display());
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
        assert!(!pidfile.exists(), "removed when done");

        // An orphan: started in its own group, recorded, never waited for.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(dir.path())
            .process_group(0)
            .spawn()
            .unwrap();
        std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
        assert!(is_our_orphan(child.id(), dir.path()));
        assert!(
            !is_our_orphan(child.id(), Path::new("/")),
            "not in the root"
        );
        let done = reap(&pidfile, dir.path()).unwrap();
        assert!(done.contains(&child.id().to_string()));
        assert!(!is_our_orphan(child.id(), dir.path()));
        assert!(!child.wait().unwrap().success(), "killed");
        assert_eq!(reap(&pidfile, dir.path()), None, "record removed");
    }
}
