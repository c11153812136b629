//! The controller's settings: where its state lives and where it listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use boltfleet_common::config::{human_duration, load_toml, ConfigError};
use boltfleet_common::metrics::MetricsConfig;
use serde::Deserialize;

use crate::limits::Limits;
use crate::state::open::StoreConfig;

/// Validated controller settings, passed down from `main` (or a test) to [`crate::run`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// CA, server certificate and the sled store live here (created by `init`).
    pub data_dir: PathBuf,
    /// Address of the gRPC listener (agents, enrollment and operators).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Lifetime of agent certificates; agents renew them before they expire.
    #[serde(
        default = "default_agent_cert_validity",
        deserialize_with = "human_duration"
    )]
    pub agent_cert_validity: Duration,
    /// What one peer may cost the controller (`[limits]`).
    #[serde(default)]
    pub limits: Limits,
    /// `[metrics] listen = "127.0.0.1:9464"`: Prometheus metrics (off by default).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Where the state lives (`[store]`): sled under `data_dir` unless it names etcd.
    #[serde(default)]
    pub store: StoreConfig,
}

pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7443))
}

fn default_agent_cert_validity() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

impl ControllerConfig {
    /// Settings from flags alone.
    pub fn new(data_dir: PathBuf, listen: Option<SocketAddr>) -> Self {
        Self {
            data_dir,
            listen: listen.unwrap_or_else(default_listen),
            agent_cert_validity: default_agent_cert_validity(),
            limits: Limits::default(),
            metrics: MetricsConfig::default(),
            store: StoreConfig::default(),
        }
    }

    /// Loads a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = load_toml(path)?;
        if config.agent_cert_validity < Duration::from_secs(3600) {
            return Err(ConfigError::invalid(
                path,
                "agent_cert_validity: must be at least 1h",
            ));
        }
        config
            .limits
            .check()
            .map_err(|message| ConfigError::invalid(path, message))?;
        config
            .store
            .check()
            .map_err(|message| ConfigError::invalid(path, message))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/controller.example.toml");
        let config = ControllerConfig::load(&path).unwrap();
        assert_eq!(config.listen, default_listen());
        assert_eq!(
            config.agent_cert_validity,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(
            config.limits,
            Limits::default(),
            "the example shows the defaults"
        );
    }

    #[test]
    fn a_bad_limit_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        write("data_dir = \"/x\"\n[limits]\nhandshake_timeout = \"0s\"\n");
        let err = ControllerConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("limits.handshake_timeout"), "{err}");
        write("data_dir = \"/x\"\n[limits]\nmax_conections = 5\n");
        let err = ControllerConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");
    }
}
