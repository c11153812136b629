//! The Boltfleet agent: reports its passbolt host to the controller and runs update jobs on it.

pub mod backoff;
pub mod config;
pub mod credentials;
pub mod enroll;
pub mod inventory;
pub mod jobs;
pub mod session;

use std::future::Future;

pub use config::AgentConfig;
use credentials::{CredentialFiles, CredentialsError};

/// Runs the agent until `shutdown` completes. Fails only when the host has no usable
/// credentials; an unreachable controller is retried forever.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CredentialsError> {
    let files = CredentialFiles::new(&config.state_dir);
    files.load()?;
    session::run_forever(&config, &files, shutdown).await
}
