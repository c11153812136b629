//! The database side of jobs, as the agent's user with the `[mysql]` option file (credentials
//! never on a command line): size and reachability, verified gzip backups and their pruning.
//! Restores are in `restore.rs`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use boltfleet_common::files::{create_private_dir, write_private};
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::tracked::Tracked;
use super::{client_error, partial_path, transcript, OpError};
use crate::config::{AgentConfig, MysqlConfig};
use crate::exec::{Recorded, RunError, Runner};
use crate::jobs::model::{gist, BackupInfo};

/// The first line of the last one `mysqldump` writes when it completed.
const DUMP_COMPLETED: &str = "-- Dump completed";
pub(super) const CHUNK: usize = 64 * 1024;

pub fn no_backup_dir() -> OpError {
    OpError::new("no [backup] dir in the agent config: updates need a database backup")
}

pub(super) fn mysql(config: &AgentConfig) -> Result<&MysqlConfig, OpError> {
    config.mysql.as_ref().ok_or_else(|| {
        OpError::new("no [mysql] section in the agent config: updates need a database backup")
    })
}

pub(super) fn defaults(mysql: &MysqlConfig) -> String {
    format!("--defaults-extra-file={}", mysql.option_file.display())
}

/// The configured program, or the candidates in order.
pub(super) fn programs<'a>(
    configured: &'a Option<String>,
    candidates: &'a [&'a str],
) -> Vec<&'a str> {
    match configured {
        Some(p) => vec![p.as_str()],
        None => candidates.to_vec(),
    }
}

/// Starts the configured program, or the first of `candidates` that exists, as `runner`'s
/// user in `/`, with stdout and stderr piped (and stdin piped when `feed_stdin`, else empty),
/// in its own process group recorded in `pidfile` (see [`crate::exec::recorded`]). A missing
/// program is skipped; any other failure to start is an error.
pub(super) fn spawn_first<'a>(
    runner: &Runner,
    configured: &'a Option<String>,
    candidates: &'a [&'a str],
    args: &[String],
    feed_stdin: bool,
    pidfile: &Path,
) -> Result<(&'a str, tokio::process::Child, Recorded), OpError> {
    let mut missing = Vec::new();
    for program in programs(configured, candidates) {
        match runner.spawn_recorded(program, args, Path::new("/"), feed_stdin, pidfile) {
            Ok((child, recorded)) => return Ok((program, child, recorded)),
            Err(RunError::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                missing.push(format!("{program}: {source}"))
            }
            Err(e) => return Err(OpError::new(e.to_string())),
        }
    }
    Err(OpError::new(format!(
        "no program found ({})",
        missing.join("; ")
    )))
}

pub(super) const CLIENTS: [&str; 2] = ["mariadb", "mysql"];
const DUMPS: [&str; 2] = ["mariadb-dump", "mysqldump"];

/// Fails unless the option file can be opened by the agent.
fn option_file_readable(mysql: &MysqlConfig) -> Result<(), OpError> {
    File::open(&mysql.option_file).map(drop).map_err(|e| {
        OpError::new(format!(
            "cannot read the MySQL option file {}: {e}",
            mysql.option_file.display()
        ))
    })
}

/// Runs the client on `sql` (stdin) in the database; returns stdout.
pub(super) async fn client_sql(
    runner: &Runner,
    config: &AgentConfig,
    sql: &str,
    log: &mut String,
) -> Result<String, OpError> {
    let mysql = mysql(config)?;
    let args = [
        defaults(mysql),
        "--batch".into(),
        "--skip-column-names".into(),
        format!("--database={}", mysql.database),
    ];
    let mut last = None;
    for program in programs(&mysql.client_program, &CLIENTS) {
        match runner
            .run_with_stdin(program, &args, Path::new("/"), sql.as_bytes())
            .await
        {
            Err(e) if e.is_not_found() => last = Some(e.to_string()),
            Err(e) => return Err(OpError::new(e.to_string()).with_log(log)),
            Ok(out) => {
                log.push_str(&transcript(&format!("{program} {}", args.join(" ")), &out));
                if !out.success() {
                    let why =
                        client_error::describe(&mysql.database, &out.exit_text(), &out.stderr);
                    return Err(OpError::new(why).with_log(log));
                }
                return Ok(out.stdout);
            }
        }
    }
    Err(OpError::new(format!(
        "no MySQL client found: {}",
        last.unwrap_or_default()
    )))
}

/// Size in bytes of the database (data and indexes), checking the option file and the
/// connection on the way.
pub async fn size(runner: &Runner, config: &AgentConfig) -> Result<u64, OpError> {
    option_file_readable(mysql(config)?)?;
    let mut log = String::new();
    let out = client_sql(
        runner,
        config,
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES WHERE table_schema = DATABASE();",
        &mut log,
    )
    .await?;
    parse_size(&out).ok_or_else(|| {
        OpError::new(format!("unexpected database size {:?}", gist(&out, 80))).with_log(&log)
    })
}

/// The number the size query printed.
pub fn parse_size(out: &str) -> Option<u64> {
    out.trim().parse().ok()
}

/// `<UTC timestamp>-<job id>.sql.gz`: sorts by time.
pub fn backup_file_name(job_id: &str, now: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| now.to_string());
    format!("{stamp}-{job_id}.sql.gz")
}

fn is_backup_name(name: &str) -> bool {
    let b = name.as_bytes();
    name.ends_with(".sql.gz")
        && b.len() > 17
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[16] == b'-'
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Dumps the database into `path` (through a 0600 temp file, renamed once verified), writes
/// `<path>.sha256` and prunes older backups beyond `backup.keep`. The dump runs as `runner`'s
/// user.
pub async fn backup(
    runner: &Runner,
    config: &AgentConfig,
    path: &Path,
) -> Result<(BackupInfo, String), OpError> {
    let mysql = mysql(config)?;
    let keep = config.backup.as_ref().ok_or_else(no_backup_dir)?.keep;
    option_file_readable(mysql)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        create_private_dir(dir)
            .map_err(|e| OpError::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let partial = partial_path(path);
    let pidfile = Tracked::Dump.pidfile(&config.state_dir);
    let result = tokio::time::timeout(
        config.jobs.step_timeout,
        dump(runner, mysql, &partial, &pidfile),
    )
    .await;
    let result = match result {
        Ok(r) => r,
        Err(_) => Err(OpError::new(format!(
            "the dump did not finish within {}s",
            config.jobs.step_timeout.as_secs()
        ))),
    };
    let (sha256, bytes, mut log) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let finish = || -> std::io::Result<()> {
        std::fs::rename(&partial, path)?;
        write_private(&sum_path(path), format!("{sha256}  {name}\n").as_bytes())?;
        File::open(dir)?.sync_all()
    };
    finish().map_err(|e| {
        OpError::new(format!("cannot store the backup {}: {e}", path.display())).with_log(&log)
    })?;
    log.push_str(&format!(
        "backup {} verified: {bytes} bytes, sha256 {sha256}\n",
        path.display()
    ));
    log.push_str(&prune(dir, keep));
    Ok((
        BackupInfo {
            path: path.to_path_buf(),
            sha256,
            bytes,
        },
        log,
    ))
}

fn sum_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// Runs the dump into `partial` (gzip); returns the file's sha256, its size and a log.
async fn dump(
    runner: &Runner,
    mysql: &MysqlConfig,
    partial: &Path,
    pidfile: &Path,
) -> Result<(String, u64, String), OpError> {
    let args = [
        defaults(mysql),
        "--single-transaction".into(),
        "--routines".into(),
        "--triggers".into(),
        "--hex-blob".into(),
        mysql.database.clone(),
    ];
    let (program, mut child, _recorded) =
        spawn_first(runner, &mysql.dump_program, &DUMPS, &args, false, pidfile)?;
    let mut log = format!("$ {program} {}\n", args.join(" "));
    let _ = std::fs::remove_file(partial);
    let fail =
        |what: &str, e: std::io::Error| OpError::new(format!("{what} {}: {e}", partial.display()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(|e| fail("cannot create", e))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail("cannot protect", e))?;
    let mut gz = GzEncoder::new(
        Hashing {
            inner: file,
            hash: Sha256::new(),
            bytes: 0,
        },
        Compression::default(),
    );
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errors = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    let mut buf = vec![0u8; CHUNK];
    let mut tail: Vec<u8> = Vec::new();
    let mut sql_bytes = 0u64;
    loop {
        let n = stdout
            .read(&mut buf)
            .await
            .map_err(|e| fail("reading the dump for", e))?;
        if n == 0 {
            break;
        }
        sql_bytes += n as u64;
        gz.write_all(&buf[..n])
            .map_err(|e| fail("cannot write", e))?;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 1024);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| OpError::new(format!("{program}: {e}")))?;
    let stderr = errors.await.unwrap_or_default();
    if !stderr.trim().is_empty() {
        log.push_str(stderr.trim_end());
        log.push('\n');
    }
    let mut hashing = gz.finish().map_err(|e| fail("cannot finish", e))?;
    hashing.flush().map_err(|e| fail("cannot flush", e))?;
    hashing
        .inner
        .sync_all()
        .map_err(|e| fail("cannot sync", e))?;
    let last_line = String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    let verdict = if !status.success() {
        Some(format!(
            "{program} failed ({status}): {}",
            gist(&stderr, 300)
        ))
    } else if sql_bytes == 0 {
        Some(format!("{program} wrote nothing"))
    } else if !last_line.starts_with(DUMP_COMPLETED) {
        Some(format!(
            "the dump is incomplete: its last line is {:?}, not {DUMP_COMPLETED:?}",
            gist(&last_line, 80)
        ))
    } else {
        None
    };
    if let Some(why) = verdict {
        return Err(OpError::new(why).with_log(&log));
    }
    log.push_str(&format!(
        "{sql_bytes} bytes of SQL, ends with {last_line:?}\n"
    ));
    Ok((hex::encode(hashing.hash.finalize()), hashing.bytes, log))
}

/// Removes backups (and their checksums) beyond the newest `keep`; returns a log.
fn prune(dir: &Path, keep: usize) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_backup_name(n))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    let mut log = String::new();
    for name in &names[..excess] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => log.push_str(&format!("pruned old backup {}\n", path.display())),
            Err(e) => log.push_str(&format!("cannot prune {}: {e}\n", path.display())),
        }
        let _ = std::fs::remove_file(sum_path(&path));
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_sort_by_time_and_prune_keeps_the_newest() {
        let name = backup_file_name("j1", 1_700_000_000);
        assert_eq!(name, "20231114T221320Z-j1.sql.gz");
        assert!(is_backup_name(&name));
        assert!(!is_backup_name(".20231114T221320Z-j1.sql.gz.partial"));
        assert!(!is_backup_name("notes.sql.gz"));
        let dir = tempfile::tempdir().unwrap();
        for t in [1, 3, 2] {
            let name = backup_file_name("j", 1_700_000_000 + t * 86_400);
            std::fs::write(dir.path().join(&name), "x").unwrap();
            std::fs::write(sum_path(&dir.path().join(&name)), "x").unwrap();
        }
        std::fs::write(dir.path().join("keep-me.txt"), "x").unwrap();
        let log = prune(dir.path(), 2);
        assert!(log.contains("20231115T"), "{log}");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 5, "{left:?}");
        assert_eq!(left[0], "20231116T221320Z-j.sql.gz");
        assert_eq!(parse_size("12345\n"), Some(12345));
        assert_eq!(parse_size("NULL"), None);
    }
}
