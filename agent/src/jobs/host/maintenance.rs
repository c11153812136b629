//! Puts the site into maintenance and takes it out: a flag file the web server watches, or the
//! operator's on/off programs (run directly, never through a shell).

use boltfleet_common::files::write_atomic;

use super::{run_logged, OpError};
use crate::config::AgentConfig;
use crate::exec::Runner;

/// Whether a maintenance method is configured.
pub fn configured(config: &AgentConfig) -> bool {
    config
        .maintenance
        .as_ref()
        .is_some_and(|m| m.flag_file.is_some() || m.on_command.is_some())
}

/// Creates the flag file (0644, holding the job id) or runs `on_command`.
pub async fn on(runner: &Runner, config: &AgentConfig, job_id: &str) -> Result<String, OpError> {
    let Some(m) = &config.maintenance else {
        return Ok("no maintenance configured".into());
    };
    if let Some(flag) = &m.flag_file {
        write_atomic(flag, format!("{job_id}\n").as_bytes(), 0o644).map_err(|e| {
            OpError::new(format!(
                "cannot create the maintenance flag {}: {e}",
                flag.display()
            ))
        })?;
        return Ok(format!("maintenance flag {} created", flag.display()));
    }
    match &m.on_command {
        Some(argv) => command(runner, argv).await,
        None => Ok("no maintenance configured".into()),
    }
}

/// Removes the flag file (nothing to do when it is gone) or runs `off_command`.
pub async fn off(runner: &Runner, config: &AgentConfig) -> Result<String, OpError> {
    let Some(m) = &config.maintenance else {
        return Ok("no maintenance configured".into());
    };
    if let Some(flag) = &m.flag_file {
        return match std::fs::remove_file(flag) {
            Ok(()) => Ok(format!("maintenance flag {} removed", flag.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(format!(
                "maintenance flag {} already absent",
                flag.display()
            )),
            Err(e) => Err(OpError::new(format!(
                "cannot remove the maintenance flag {}: {e}",
                flag.display()
            ))),
        };
    }
    match &m.off_command {
        Some(argv) => command(runner, argv).await,
        None => Ok("no maintenance configured".into()),
    }
}

async fn command(runner: &Runner, argv: &[String]) -> Result<String, OpError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| OpError::new("empty maintenance command"))?;
    let line = argv.join(" ");
    let runner = runner.with_timeout(std::time::Duration::from_secs(120));
    let mut log = String::new();
    let out = run_logged(&runner, program, args, std::path::Path::new("/"), &mut log).await?;
    if !out.success() {
        return Err(OpError::new(format!("{line} failed ({})", out.exit_text())).with_log(&log));
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config(extra: &str) -> AgentConfig {
        toml::from_str(&format!(
            "controller = \"https://c:1\"\nstate_dir = \"/tmp/x\"\n[passbolt]\nroot = \"/srv\"\n{extra}"
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn flag_file_on_and_off_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("maintenance.flag");
        let config = config(&format!("[maintenance]\nflag_file = {flag:?}\n"));
        let runner = Runner::new(None, std::time::Duration::from_secs(5)).unwrap();
        assert!(configured(&config));
        on(&runner, &config, "j1").await.unwrap();
        assert_eq!(std::fs::read_to_string(&flag).unwrap(), "j1\n");
        assert_eq!(
            std::fs::metadata(&flag).unwrap().permissions().mode() & 0o777,
            0o644
        );
        off(&runner, &config).await.unwrap();
        assert!(!flag.exists());
        assert!(off(&runner, &config)
            .await
            .unwrap()
            .contains("already absent"));
    }

    #[tokio::test]
    async fn commands_run_without_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("on");
        let config = config(&format!(
            "[maintenance]\non_command = [\"touch\", {mark:?}]\noff_command = [\"false\"]\n"
        ));
        let runner = Runner::new(None, std::time::Duration::from_secs(5)).unwrap();
        on(&runner, &config, "j1").await.unwrap();
        assert!(mark.exists());
        let err = off(&runner, &config).await.unwrap_err();
        assert!(err.reason.contains("false failed (exit 1)"), "{err:?}");
        assert!(!configured(&config_none()));
    }

    fn config_none() -> AgentConfig {
        config("")
    }
}
