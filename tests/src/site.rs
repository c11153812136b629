//! A fixture passbolt host with its own database and an agent configured for it: the unit the
//! end-to-end tests and the demo build fleets from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::cluster::{Agent, Controller};
use crate::fixture::{HostBuilder, PassboltHost};
use crate::mysql::{self, TestDatabase};

/// The fixture's long-standing healthcheck failures, accepted as an operator would accept a
/// real install's (base URL, SSL, the offline latest-version check).
pub const KNOWN_FAILURES: &str = r#"known_failures = ["fullBaseUrl", "reach the /healthcheck/status", "SSL peer certificate", "Hostname does not match", "passbolt repository"]"#;

/// A host, its database and its agent.
pub struct Site {
    pub host: PassboltHost,
    pub agent: Agent,
    pub db: TestDatabase,
}

impl Site {
    /// Creates the host from `builder` in `base/name`, with an agent pointed at `ctl`.
    /// `health_command` configures passbolt's own healthcheck (v1.6.0 and later have it).
    pub fn create(
        base: &Path,
        ctl: &Controller,
        name: &str,
        builder: HostBuilder,
        health_command: bool,
    ) -> Result<Self> {
        let db = mysql::server().create_database()?;
        let dir = base.join(name);
        let host = builder.create(&dir, &db)?;
        let mut extra = format!("{KNOWN_FAILURES}\n");
        if health_command {
            extra.push_str(
                "healthcheck_command = [\"./app/Console/cake\", \"passbolt\", \"healthcheck\"]\n",
            );
        }
        extra.push_str(&format!(
            "[mysql]\noption_file = {:?}\ndatabase = {:?}\n[backup]\ndir = {:?}\n[maintenance]\nflag_file = {:?}\n",
            db.option_file,
            db.name,
            dir.join("backups"),
            dir.join("maintenance.flag"),
        ));
        let agent = Agent::configure(&dir.join("agent"), &ctl.url, &extra, &host.root)?;
        Ok(Self { host, agent, db })
    }

    /// The maintenance flag file the agent is configured with.
    pub fn maintenance_flag(&self) -> std::path::PathBuf {
        self.agent
            .config
            .parent()
            .and_then(Path::parent)
            .expect("site dir")
            .join("maintenance.flag")
    }

    /// The backup directory the agent is configured with.
    pub fn backup_dir(&self) -> std::path::PathBuf {
        self.agent
            .config
            .parent()
            .and_then(Path::parent)
            .expect("site dir")
            .join("backups")
    }

    /// The database as a whole: every table's definition and every table's checksum.
    pub fn db_state(&self) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        Ok((self.db.table_definitions()?, self.db.checksum_tables()?))
    }

    /// The release tag the install's HEAD sits on.
    pub fn head_tag(&self) -> Result<String> {
        Ok(self
            .host
            .git(&["describe", "--tags", "--exact-match", "HEAD"])?
            .trim()
            .to_string())
    }

    /// A host at `version`, up to date, healthy.
    pub fn at(base: &Path, ctl: &Controller, name: &str, version: &str) -> Result<Self> {
        let health = crate::fixture::parse_version(version).is_some_and(|v| v >= (1, 6, 0));
        Self::create(base, ctl, name, PassboltHost::builder(version), health)
    }

    /// Enrolls the agent with a fresh token for `host_id` in `tenant`, then starts it.
    pub fn enroll_and_start(
        &mut self,
        ctl: &Controller,
        host_id: &str,
        tenant: &str,
    ) -> Result<()> {
        self.enroll(ctl, host_id, tenant)?;
        self.agent.start()
    }

    /// Enrolls the agent with a fresh token for `host_id` in `tenant` (not started).
    pub fn enroll(&mut self, ctl: &Controller, host_id: &str, tenant: &str) -> Result<()> {
        self.agent.enroll_with_token(ctl, host_id, tenant)
    }
}
