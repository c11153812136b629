//! The Boltfleet agent: reports its passbolt host to the controller and runs update jobs on it.
//!
//! [`inventory`] says what the host is and when to look again, [`jobs`] changes it; both read
//! passbolt through [`passbolt`] (version file, migrations, healthcheck, release tags, the
//! worktree rule) and start every host program through [`exec`]. [`session`] is the stream to
//! the controller ([`rotation`] picks which one, when several are configured), [`host_gate`]
//! who owns the host right now.

pub mod backoff;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod disk;
pub mod enroll;
pub mod exec;
pub mod host_gate;
pub mod inventory;
pub mod jobs;
pub mod metrics;
pub mod passbolt;
pub mod rotation;
pub mod session;
pub mod state_lock;
pub mod text;

use std::future::Future;

pub use config::AgentConfig;
use std::sync::Arc;

use credentials::{CredentialFiles, CredentialsError};
use jobs::Jobs;

/// Runs the agent until `shutdown` completes. Fails only when the host has no usable
/// credentials or job journal; an unreachable controller is retried forever.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let files = CredentialFiles::new(&config.state_dir);
    files.load()?;
    let _lock = state_lock::StateDirLock::acquire(&config.state_dir)?;
    let config = Arc::new(config);
    let jobs = Jobs::new(config.clone())?;
    // A job the agent was running when it stopped is finished or rolled back first.
    jobs.resume();
    let (stopped, stop) = tokio::sync::watch::channel(false);
    if let Some(addr) = config.metrics.listen {
        let listener = boltfleet_common::metrics::bind(addr).await?;
        let render: boltfleet_common::metrics::Render = Arc::new(|| metrics::get().render());
        let mut stop = stop.clone();
        tokio::spawn(boltfleet_common::metrics::serve(
            listener,
            render,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
    }
    let served = session::run_forever(&config, &files, &jobs, shutdown).await;
    stopped.send_replace(true);
    served?;
    Ok(())
}

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Jobs(#[from] jobs::JobsError),
    #[error(transparent)]
    StateDir(#[from] state_lock::StateLockError),
    #[error(transparent)]
    Metrics(#[from] boltfleet_common::metrics::BindError),
}
