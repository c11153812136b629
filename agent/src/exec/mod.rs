//! The one way the agent runs a host program (git, cake, php, the database clients): directly,
//! never through a shell, as the web user or its own, in a working directory and its own
//! process group, with a deadline that kills the whole group, output captured and bounded,
//! and, for the long job commands, the group recorded on disk so a restarted agent can stop
//! what a killed one left running ([`recorded`]).

mod capture;
pub mod recorded;

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

pub use capture::OUTPUT_LIMIT;
pub use recorded::{kill_group, reap, Recorded};

/// A local account commands are switched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// A program that could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("unknown user {name:?} (not in /etc/passwd)")]
    UnknownUser { name: String },
    #[error("cannot read /etc/passwd: {0}")]
    Passwd(#[source] std::io::Error),
    #[error("cannot run commands as {user:?}: the agent runs as uid {uid}, not root")]
    NotPermitted { user: String, uid: u32 },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed while running: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {}s and was killed", after.as_secs())]
    Timeout { program: String, after: Duration },
}

impl RunError {
    /// True when the program itself does not exist (as opposed to failing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RunError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a finished program printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// How it exited, for messages: `exit 1` or `killed by a signal`.
    pub fn exit_text(&self) -> String {
        match self.code {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".to_string(),
        }
    }
}

/// Runs programs as one user with one deadline: the one place the agent starts a program.
#[derive(Debug, Clone)]
pub struct Runner {
    run_as: Option<RunAs>,
    timeout: Duration,
}

impl Runner {
    /// A runner for `web_user` (the agent's own user when `None` or when it is that user).
    /// Switching to another user needs root.
    pub fn new(web_user: Option<&str>, timeout: Duration) -> Result<Self, RunError> {
        let run_as = match web_user {
            None => None,
            Some(name) => {
                let passwd = std::fs::read_to_string("/etc/passwd").map_err(RunError::Passwd)?;
                let user = parse_passwd(&passwd, name).ok_or_else(|| RunError::UnknownUser {
                    name: name.to_string(),
                })?;
                let me = rustix::process::getuid().as_raw();
                if user.uid == me {
                    None
                } else if me != 0 {
                    return Err(RunError::NotPermitted {
                        user: name.to_string(),
                        uid: me,
                    });
                } else {
                    Some(user)
                }
            }
        };
        Ok(Runner { run_as, timeout })
    }

    /// The same user with another deadline.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Runner {
            run_as: self.run_as.clone(),
            timeout,
        }
    }

    /// The user commands are switched to; `None` when they run as the agent's own user.
    pub fn run_as(&self) -> Option<&RunAs> {
        self.run_as.as_ref()
    }

    /// Runs `program` with `args` in `cwd`, stdin empty. A program path containing `/` that is
    /// relative (`./bin/cake`) is taken relative to `cwd`.
    pub async fn run(
        &self,
        program: &str,
        args: &[impl AsRef<OsStr>],
        cwd: &Path,
    ) -> Result<Output, RunError> {
        let (child, _) = self.start(program, args, cwd, false, None)?;
        self.finish(program, child, None).await
    }

    /// Like [`Runner::run`], feeding `input` on stdin (answers to prompts).
    pub async fn run_with_stdin(
        &self,
        program: &str,
        args: &[impl AsRef<OsStr>],
        cwd: &Path,
        input: &[u8],
    ) -> Result<Output, RunError> {
        let (child, _) = self.start(program, args, cwd, true, None)?;
        self.finish(program, child, Some(input)).await
    }

    /// Like [`Runner::run_with_stdin`], with the process group recorded in `pidfile` while it
    /// runs, so that an agent restarted after a crash can stop it ([`reap`]).
    pub async fn run_recorded(
        &self,
        program: &str,
        args: &[impl AsRef<OsStr>],
        cwd: &Path,
        input: &[u8],
        pidfile: &Path,
    ) -> Result<Output, RunError> {
        let (child, _recorded) = self.start(program, args, cwd, true, Some(pidfile))?;
        self.finish(program, child, Some(input)).await
    }

    /// Starts `program` for a caller that talks to its pipes itself (the database dump and
    /// restore sessions): stdout and stderr piped, stdin piped when `stdin_piped`, recorded in
    /// `pidfile` until the returned [`Recorded`] is dropped. The child is killed when its
    /// handle is dropped; keeping a deadline is the caller's part.
    pub fn spawn_recorded(
        &self,
        program: &str,
        args: &[impl AsRef<OsStr>],
        cwd: &Path,
        stdin_piped: bool,
        pidfile: &Path,
    ) -> Result<(tokio::process::Child, Recorded), RunError> {
        let (child, recorded) = self.start(program, args, cwd, stdin_piped, Some(pidfile))?;
        Ok((child, recorded.expect("a pidfile was given")))
    }

    /// Starts the command line `program args`: in `cwd` (a relative program path containing
    /// `/` is taken from there), as the runner's user, in its own process group (so a
    /// deadline kills cake's children too, and a killed agent's orphan can be found), stdout
    /// and stderr piped, stdin piped when `stdin_piped` and empty otherwise, killed when its
    /// handle is dropped, recorded in `pidfile` when given.
    fn start(
        &self,
        program: &str,
        args: &[impl AsRef<OsStr>],
        cwd: &Path,
        stdin_piped: bool,
        pidfile: Option<&Path>,
    ) -> Result<(tokio::process::Child, Option<Recorded>), RunError> {
        let path = if program.contains('/') && Path::new(program).is_relative() {
            cwd.join(program)
        } else {
            PathBuf::from(program)
        };
        let mut cmd = std::process::Command::new(path);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(if stdin_piped {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid)
                .gid(user.gid)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| RunError::Spawn {
            program: program.to_string(),
            source,
        })?;
        let recorded = pidfile.map(|pidfile| Recorded::write(pidfile, child.id()));
        Ok((child, recorded))
    }

    /// Feeds `input`, captures the output (bounded, see [`OUTPUT_LIMIT`]) and waits within the
    /// deadline; past it, kills the whole process group.
    async fn finish(
        &self,
        program: &str,
        mut child: tokio::process::Child,
        input: Option<&[u8]>,
    ) -> Result<Output, RunError> {
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            let input = input.to_vec();
            // Written concurrently: a program that does not read must not block us.
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
            });
        }
        let pid = child.id();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let finished = tokio::time::timeout(self.timeout, async {
            let (status, out, err) = tokio::join!(
                child.wait(),
                capture::read_bounded(stdout, OUTPUT_LIMIT),
                capture::read_bounded(stderr, OUTPUT_LIMIT)
            );
            Ok::<_, std::io::Error>((status?, out?, err?))
        })
        .await;
        match finished {
            Ok(Ok((status, stdout, stderr))) => Ok(Output {
                code: status.code(),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            }),
            Ok(Err(source)) => Err(RunError::Wait {
                program: program.to_string(),
                source,
            }),
            Err(_) => {
                // The leader is not reaped yet, so its pid still names the group.
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                let _ = child.start_kill();
                Err(RunError::Timeout {
                    program: program.to_string(),
                    after: self.timeout,
                })
            }
        }
    }
}

/// Finds `name` in `/etc/passwd`-formatted text.
pub fn parse_passwd(text: &str, name: &str) -> Option<RunAs> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 || fields[0] != name {
            return None;
        }
        Some(RunAs {
            name: name.to_string(),
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: PathBuf::from(fields[5]),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ARGS: [&str; 0] = [];

    fn runner(secs: u64) -> Runner {
        Runner::new(None, Duration::from_secs(secs)).unwrap()
    }

    #[test]
    fn passwd_lookup() {
        let text = "# comment\nroot:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nbroken:x:nan:1::/:/bin/sh\n";
        assert_eq!(
            parse_passwd(text, "www-data"),
            Some(RunAs {
                name: "www-data".into(),
                uid: 33,
                gid: 33,
                home: "/var/www".into()
            })
        );
        assert_eq!(parse_passwd(text, "www"), None);
        assert_eq!(parse_passwd(text, "broken"), None);
        assert!(matches!(
            Runner::new(Some("no-such-user-here"), Duration::from_secs(1)),
            Err(RunError::UnknownUser { .. })
        ));
    }

    #[tokio::test]
    async fn captures_output_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let out = runner(10)
            .run("sh", &["-c", "pwd; echo err >&2; exit 3"], dir.path())
            .await
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert!(!out.success());
        assert_eq!(out.exit_text(), "exit 3");
        let cwd = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(out.stdout.trim(), cwd.to_str().unwrap());
        assert_eq!(out.stderr, "err\n");
    }

    #[tokio::test]
    async fn relative_programs_are_taken_from_the_working_dir() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("bin/cake");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "#!/bin/sh\necho cake \"$@\"\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = runner(10)
            .run("./bin/cake", &["a b", "c"], dir.path())
            .await
            .unwrap();
        assert_eq!(out.stdout, "cake a b c\n");
    }

    #[tokio::test]
    async fn feeds_stdin() {
        let out = runner(10)
            .run_with_stdin("cat", &NO_ARGS, Path::new("/"), b"n\n")
            .await
            .unwrap();
        assert_eq!(out.stdout, "n\n");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = runner(10)
            .run("no-such-program-xyz", &NO_ARGS, Path::new("/"))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let err = runner(10)
            .run("true", &NO_ARGS, Path::new("/no/such/dir"))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err}");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let quick = runner(10).with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let err = quick
            .run("sh", &["-c", &script], dir.path())
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !marker.exists(),
            "a child of the timed-out program lived on"
        );
    }

    #[tokio::test]
    async fn output_past_the_limit_is_cut_in_the_middle() {
        let script = format!(
            "echo BEGIN; head -c {} /dev/zero | tr '\\0' a; echo; echo END",
            2 * OUTPUT_LIMIT
        );
        let out = runner(60)
            .run("sh", &["-c", &script], Path::new("/"))
            .await
            .unwrap();
        assert!(out.success(), "{}", out.stderr);
        assert!(
            out.stdout.len() < OUTPUT_LIMIT + 100,
            "{}",
            out.stdout.len()
        );
        assert!(out.stdout.starts_with("BEGIN\naaa"));
        assert!(out.stdout.ends_with("aaa\nEND\n"));
        assert!(out.stdout.contains("bytes of output cut"));
    }

    #[tokio::test]
    async fn switches_user_when_root() {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        if parse_passwd(&passwd, "nobody").is_none() {
            return; // nothing to switch to on this machine
        }
        if rustix::process::getuid().as_raw() != 0 {
            let err = Runner::new(Some("nobody"), Duration::from_secs(5)).unwrap_err();
            assert!(matches!(err, RunError::NotPermitted { .. }), "{err}");
            return;
        }
        let runner = Runner::new(Some("nobody"), Duration::from_secs(5)).unwrap();
        let user = runner.run_as().unwrap().clone();
        let out = runner
            .run("sh", &["-c", "id -u; id -g; echo $HOME"], Path::new("/"))
            .await
            .unwrap();
        let expected = format!("{}\n{}\n{}\n", user.uid, user.gid, user.home.display());
        assert_eq!(out.stdout, expected);
        // Naming the agent's own user switches nothing.
        assert!(Runner::new(Some("root"), Duration::from_secs(5))
            .unwrap()
            .run_as()
            .is_none());
    }
}
