//! Restoring a verified backup: checksum checked, the database emptied (views, tables and
//! routines dropped, which needs no right beyond the passbolt database), the gunzipped dump
//! streamed into the client.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::database::{client_sql, defaults, mysql, spawn_first, CHUNK, CLIENTS};
use super::OpError;
use crate::config::{AgentConfig, MysqlConfig};
use crate::inventory::run::Runner;
use crate::jobs::model::{gist, BackupInfo};

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

/// Drops every view, table and routine of the database (idempotent), then loads the backup
/// into it through the client.
pub async fn restore(config: &AgentConfig, backup: &BackupInfo) -> Result<String, OpError> {
    let mysql = mysql(config)?;
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
    let runner =
        Runner::new(None, config.jobs.step_timeout).map_err(|e| OpError::new(e.to_string()))?;
    let mut quiet = String::new();
    let list = client_sql(
        &runner,
        config,
        "SELECT table_type, table_name FROM information_schema.TABLES WHERE table_schema = DATABASE();\n\
         SELECT routine_type, routine_name FROM information_schema.ROUTINES WHERE routine_schema = DATABASE();",
        &mut quiet,
    )
    .await
    .map_err(|e| e.with_log(&log))?;
    let mut drops = String::from("SET FOREIGN_KEY_CHECKS=0;\n");
    for line in list.lines() {
        let Some((kind, name)) = line.split_once('\t') else {
            continue;
        };
        let what = match kind {
            "VIEW" | "SYSTEM VIEW" => "VIEW",
            "PROCEDURE" => "PROCEDURE",
            "FUNCTION" => "FUNCTION",
            _ => "TABLE",
        };
        drops.push_str(&format!("DROP {what} IF EXISTS {};\n", ident(name)));
    }
    client_sql(&runner, config, &drops, &mut log).await?;
    log.push_str(&format!(
        "database emptied ({} objects dropped)\n",
        drops.lines().count() - 1
    ));
    let load = tokio::time::timeout(
        config.jobs.step_timeout,
        load(mysql, &backup.path, &mut log),
    )
    .await;
    match load {
        Ok(r) => r.map_err(|e| e.with_log(&log))?,
        Err(_) => {
            return Err(OpError::new("loading the backup did not finish in time").with_log(&log))
        }
    }
    log.push_str("backup loaded\n");
    Ok(log)
}

/// Streams the gunzipped backup into the client.
async fn load(mysql: &MysqlConfig, path: &Path, log: &mut String) -> Result<(), OpError> {
    let args = [defaults(mysql), format!("--database={}", mysql.database)];
    let (program, mut child) = spawn_first(&mysql.client_program, &CLIENTS, &args, true)?;
    log.push_str(&format!(
        "$ {program} {} < gunzip {}\n",
        args.join(" "),
        path.display()
    ));
    let mut stdin = child.stdin.take().expect("piped");
    let (mut out, mut err) = (
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    let output = tokio::spawn(async move {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let _ = tokio::join!(out.read_to_end(&mut a), err.read_to_end(&mut b));
        (
            String::from_utf8_lossy(&a).into_owned(),
            String::from_utf8_lossy(&b).into_owned(),
        )
    });
    let file = File::open(path)
        .map_err(|e| OpError::new(format!("cannot open {}: {e}", path.display())))?;
    let mut gz = GzDecoder::new(file);
    let mut buf = vec![0u8; CHUNK];
    let mut write_error = None;
    loop {
        let n = gz
            .read(&mut buf)
            .map_err(|e| OpError::new(format!("cannot decompress {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        if let Err(e) = stdin.write_all(&buf[..n]).await {
            write_error = Some(e);
            break;
        }
    }
    drop(stdin);
    let status = child
        .wait()
        .await
        .map_err(|e| OpError::new(format!("{program}: {e}")))?;
    let (stdout, stderr) = output.await.unwrap_or_default();
    for part in [stdout, stderr.clone()] {
        if !part.trim().is_empty() {
            log.push_str(part.trim_end());
            log.push('\n');
        }
    }
    if !status.success() {
        return Err(OpError::new(format!(
            "loading the backup failed ({status}): {}",
            gist(&stderr, 300)
        )));
    }
    if let Some(e) = write_error {
        return Err(OpError::new(format!("loading the backup failed: {e}")));
    }
    Ok(())
}
