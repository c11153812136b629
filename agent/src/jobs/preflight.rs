//! The checks before a job touches the host: a refusal here leaves it exactly as it was.

use boltfleet_common::version::{parse_release, release_tag, Version};

use super::host::{HostOps, OpError, UPDATE_CHECK_WORDS, UPDATE_SECTIONS};
use super::model::JournalEntry;
use super::validate;

/// What an update's preflight learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePreflight {
    pub current: Version,
    /// Failing checks before the update (the health baseline).
    pub failing: Vec<String>,
    /// The healthcheck command line when it gave no checks: no comparable baseline.
    pub no_baseline: Option<String>,
}

/// Release tag, clean tree, target fetched and allowed, database reachable, room for the
/// backup, the database user's rights to restore it, health baseline.
pub async fn update<H: HostOps>(
    host: &H,
    target: &str,
) -> Result<(UpdatePreflight, String), OpError> {
    let target =
        parse_release(target).map_err(|e| OpError::new(format!("invalid target version: {e}")))?;
    let mut log = String::new();
    let repo = host.repo().await?;
    log.push_str(&format!(
        "HEAD release: {}\n",
        repo.current
            .as_ref()
            .map(release_tag)
            .unwrap_or_else(|| "none".into())
    ));
    for line in &repo.porcelain {
        log.push_str(&format!("local change: {line}\n"));
    }
    for line in &repo.runtime {
        log.push_str(&format!("runtime state (not a local change): {line}\n"));
    }
    let tags = host.fetch_tags().await.map_err(|e| e.with_log(&log))?;
    log.push_str(&tags.log);
    if let Err(why) = validate::check_update(
        repo.current.as_ref(),
        &target,
        &tags.releases,
        &repo.porcelain,
    ) {
        let why = match &tags.fetch_error {
            Some(fetch) if why.contains("does not exist") => format!("{why}; {fetch}"),
            _ => why,
        };
        return Err(OpError::new(why).with_log(&log));
    }
    let current = repo.current.expect("checked by check_update");
    let size = host.database_size().await.map_err(|e| e.with_log(&log))?;
    let free = host.backup_free_space().map_err(|e| e.with_log(&log))?;
    log.push_str(&format!(
        "database: {size} bytes; free for backups: {free} bytes\n"
    ));
    validate::check_space(size, free).map_err(|why| OpError::new(why).with_log(&log))?;
    let rights = host
        .restore_privileges()
        .await
        .map_err(|e| e.with_log(&log))?;
    log.push_str(&rights);
    let health = host.health().await;
    log.push_str(&health.log);
    if let Some(command) = &health.no_checks {
        log.push_str(&format!("{}\n", no_baseline_note(command)));
    }
    log.push_str(&format!("{current} -> {target} allowed\n"));
    Ok((
        UpdatePreflight {
            current,
            failing: health.failing,
            no_baseline: health.no_checks,
        },
        log,
    ))
}

/// What a job says when the healthcheck gave no checks before it.
pub fn no_baseline_note(command: &str) -> String {
    format!(
        "no healthcheck baseline: {command} gave no checks before the update; the new release is judged by the checks an update can break (sections {}; checks naming {}) and known_failures, not by comparison",
        UPDATE_SECTIONS.join(", "),
        UPDATE_CHECK_WORDS.join(", ")
    )
}

/// An operator's rollback: there is a successful update, the host is still where it left it,
/// its backup is there, the database reachable and its user allowed to restore.
pub async fn rollback<H: HostOps>(
    host: &H,
    update: Option<&JournalEntry>,
) -> Result<((), String), OpError> {
    let update =
        update.ok_or_else(|| OpError::new("no successful update to roll back on this host"))?;
    let id = &update.request.job_id;
    let mut log = format!(
        "rolling back update {id}: {} -> {}\n",
        update.event.from_version, update.event.target_version
    );
    let repo = host.repo().await?;
    let on = repo
        .current
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "no release tag".into());
    if on != update.event.target_version {
        return Err(OpError::new(format!(
            "the host moved since update {id}: it is on {on}, the update left it on {}",
            update.event.target_version
        ))
        .with_log(&log));
    }
    let backup = update
        .private
        .backup
        .as_ref()
        .ok_or_else(|| OpError::new(format!("update {id} has no backup")))?;
    if !backup.path.is_file() {
        return Err(OpError::new(format!(
            "the backup of update {id} is gone: {}",
            backup.path.display()
        ))
        .with_log(&log));
    }
    let blocking = validate::blocking_changes(&repo.porcelain);
    if !blocking.is_empty() {
        return Err(OpError::new(format!(
            "local modifications in the work tree: {}",
            blocking.join(", ")
        ))
        .with_log(&log));
    }
    host.database_size().await.map_err(|e| e.with_log(&log))?;
    log.push_str("database reachable\n");
    let rights = host
        .restore_privileges()
        .await
        .map_err(|e| e.with_log(&log))?;
    log.push_str(&rights);
    Ok(((), log))
}
