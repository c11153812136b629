//! Restoring a verified backup: checksum checked, then ONE client session that takes the
//! database's advisory lock, lists and drops every view, table and routine (which needs no
//! right beyond the passbolt database) and loads the gunzipped dump. The lock lives as long as
//! the session, so two restores — or a restore and a client a killed agent left running — can
//! never interleave; the session runs in a recorded process group, reaped after a crash.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;

use super::database::{defaults, mysql, spawn_first, CHUNK, CLIENTS};
use super::tracked::Tracked;
use super::OpError;
use crate::config::AgentConfig;
use crate::exec::Runner;
use crate::jobs::model::{gist, BackupInfo};

/// How long a restore waits at most for another holder of the database's lock (less when the
/// job's step deadline is shorter).
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Printed by the session once the objects are listed, and once everything is loaded.
const LISTED: &str = "boltfleet: listed";
const LOADED: &str = "boltfleet: loaded";

/// The sha256 of a file, hex.
fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hash.finalize()));
        }
        hash.update(&buf[..n]);
    }
}

fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The name of the advisory lock every restore of `database` takes (at most 64 characters,
/// MariaDB's limit): readable for a human checking `IS_USED_LOCK`, hashed when too long.
pub fn lock_name(database: &str) -> String {
    let name = format!("boltfleet-restore:{database}");
    if name.chars().count() <= 64 {
        return name;
    }
    let digest = hex::encode(Sha256::digest(database.as_bytes()));
    format!("boltfleet-restore:{}", &digest[..40])
}

/// The drop statements for the `type \t name` lines of the listing.
fn drops(listing: &[String]) -> String {
    let mut sql = String::from("SET FOREIGN_KEY_CHECKS=0;\n");
    for line in listing {
        let Some((kind, name)) = line.split_once('\t') else {
            continue;
        };
        let what = match kind {
            "VIEW" | "SYSTEM VIEW" => "VIEW",
            "PROCEDURE" => "PROCEDURE",
            "FUNCTION" => "FUNCTION",
            _ => "TABLE",
        };
        sql.push_str(&format!("DROP {what} IF EXISTS {};\n", ident(name)));
    }
    sql
}

/// Empties the database and loads the backup into it, in one locked session (idempotent), the
/// client running as `runner`'s user.
pub async fn restore(
    runner: &Runner,
    config: &AgentConfig,
    backup: &BackupInfo,
) -> Result<String, OpError> {
    let mut log = String::new();
    let actual = file_sha256(&backup.path).map_err(|e| {
        OpError::new(format!(
            "cannot read the backup {}: {e}",
            backup.path.display()
        ))
    })?;
    if actual != backup.sha256 {
        return Err(OpError::new(format!(
            "the backup {} does not match its checksum (sha256 {actual}, expected {})",
            backup.path.display(),
            backup.sha256
        )));
    }
    log.push_str(&format!(
        "backup {} matches its sha256\n",
        backup.path.display()
    ));
    let session = session(runner, config, backup, &mut log);
    match tokio::time::timeout(config.jobs.step_timeout, session).await {
        Ok(result) => result.map_err(|e| e.with_log(&log))?,
        Err(_) => {
            return Err(OpError::new("restoring the backup did not finish in time").with_log(&log))
        }
    }
    log.push_str("backup loaded\n");
    Ok(log)
}

/// The client session: lock, list, drop, load.
async fn session(
    runner: &Runner,
    config: &AgentConfig,
    backup: &BackupInfo,
    log: &mut String,
) -> Result<(), OpError> {
    let mysql = mysql(config)?;
    let args = [
        defaults(mysql),
        "--batch".into(),
        "--skip-column-names".into(),
        "--unbuffered".into(),
        format!("--database={}", mysql.database),
    ];
    let pidfile = Tracked::Restore.pidfile(&config.state_dir);
    let (program, mut child, _recorded) = spawn_first(
        runner,
        &mysql.client_program,
        &CLIENTS,
        &args,
        true,
        &pidfile,
    )?;
    log.push_str(&format!("$ {program} {}\n", args.join(" ")));
    let mut stdin = child.stdin.take().expect("piped");
    let mut lines = lines_of(child.stdout.take().expect("piped"));
    let mut stderr = child.stderr.take().expect("piped");
    let errors = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    let wait = LOCK_WAIT.min(config.jobs.step_timeout / 2);
    let talk = async {
        let lock = lock_name(&mysql.database);
        send(
            &mut stdin,
            &format!("SELECT GET_LOCK({}, {});\n", literal(&lock), wait.as_secs()),
        )
        .await?;
        match lines.recv().await.as_deref() {
            Some("1") => log.push_str(&format!("holding the database lock {lock}\n")),
            Some(other) => {
                return Err(format!(
                    "another restore holds the database lock {lock} (GET_LOCK answered {other} after {}s)",
                    wait.as_secs()
                ))
            }
            None => return Err("the client ended before taking the database lock".into()),
        }
        send(
            &mut stdin,
            &format!(
                "SELECT table_type, table_name FROM information_schema.TABLES WHERE table_schema = DATABASE();\n\
                 SELECT routine_type, routine_name FROM information_schema.ROUTINES WHERE routine_schema = DATABASE();\n\
                 SELECT {};\n",
                literal(LISTED)
            ),
        )
        .await?;
        let mut listing = Vec::new();
        loop {
            match lines.recv().await {
                Some(line) if line == LISTED => break,
                Some(line) => listing.push(line),
                None => return Err("the client ended while listing the database".into()),
            }
        }
        send(&mut stdin, &drops(&listing)).await?;
        log.push_str(&format!(
            "database emptied ({} objects dropped)\n",
            listing.len()
        ));
        load(&mut stdin, &backup.path).await?;
        send(&mut stdin, &format!("SELECT {};\n", literal(LOADED))).await?;
        Ok(())
    };
    let talked: Result<(), String> = talk.await;
    drop(stdin);
    let status = child
        .wait()
        .await
        .map_err(|e| OpError::new(format!("{program}: {e}")))?;
    let mut rest = Vec::new();
    while let Some(line) = lines.recv().await {
        rest.push(line);
    }
    let stderr = errors.await.unwrap_or_default();
    if !stderr.trim().is_empty() {
        log.push_str(stderr.trim_end());
        log.push('\n');
    }
    if !status.success() {
        return Err(OpError::new(format!(
            "loading the backup failed ({status}): {}",
            gist(&stderr, 300)
        )));
    }
    talked.map_err(OpError::new)?;
    if !rest.iter().any(|l| l == LOADED) {
        return Err(OpError::new(
            "the client ended before confirming the whole backup was loaded",
        ));
    }
    Ok(())
}

/// The client's output, a line at a time.
fn lines_of(stdout: tokio::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).await.is_err() {
                break;
            }
        }
    });
    rx
}

async fn send(stdin: &mut ChildStdin, sql: &str) -> Result<(), String> {
    stdin
        .write_all(sql.as_bytes())
        .await
        .map_err(|e| format!("the client stopped reading: {e}"))
}

/// Streams the gunzipped backup into the session.
async fn load(stdin: &mut ChildStdin, path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut gz = GzDecoder::new(file);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = gz
            .read(&mut buf)
            .map_err(|e| format!("cannot decompress {}: {e}", path.display()))?;
        if n == 0 {
            // A dump may end without a newline after its last statement.
            return send(stdin, "\n").await;
        }
        stdin
            .write_all(&buf[..n])
            .await
            .map_err(|e| format!("loading the backup failed: {e}"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_mariadb_and_literals_are_quoted() {
        assert_eq!(lock_name("passbolt"), "boltfleet-restore:passbolt");
        let long = "d".repeat(64);
        let name = lock_name(&long);
        assert!(
            name.len() <= 64 && name.starts_with("boltfleet-restore:"),
            "{name}"
        );
        assert_ne!(lock_name(&long), lock_name(&"e".repeat(64)));
        assert_eq!(literal(r"a'b\c"), r"'a\'b\\c'");
        let sql = drops(&[
            "BASE TABLE\tusers".into(),
            "VIEW\tv`1".into(),
            "PROCEDURE\tp".into(),
        ]);
        assert_eq!(
            sql,
            "SET FOREIGN_KEY_CHECKS=0;\nDROP TABLE IF EXISTS `users`;\nDROP VIEW IF EXISTS `v``1`;\nDROP PROCEDURE IF EXISTS `p`;\n"
        );
    }
}
