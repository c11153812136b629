//! One owner of the host at a time: a job holds the host exclusively from its preflight to the
//! end of its rollback; the inventory's probes of passbolt (git, `cake`, the healthcheck
//! command, SQL) hold it shared, and skip their run while a job has it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The host's owner lock. Cheap to clone; every clone is the same lock.
#[derive(Debug, Clone, Default)]
pub struct HostGate(Arc<RwLock<()>>);

/// Held by a probe while it runs passbolt's commands.
pub type ProbeGuard = OwnedRwLockReadGuard<()>;
/// Held by a job for as long as it may touch the database, the code tree or passbolt.
pub type JobGuard = OwnedRwLockWriteGuard<()>;

impl HostGate {
    /// A probe's share of the host; `None` while a job holds it (or waits for it).
    pub fn try_probe(&self) -> Option<ProbeGuard> {
        self.0.clone().try_read_owned().ok()
    }

    /// The host for a job, at once; `None` while a probe or another job holds it.
    pub fn try_own(&self) -> Option<JobGuard> {
        self.0.clone().try_write_owned().ok()
    }

    /// The host for a job once the probes running now are done (new ones wait behind the
    /// job); `None` when they still run after `wait`.
    pub async fn own(&self, wait: Duration) -> Option<JobGuard> {
        tokio::time::timeout(wait, self.0.clone().write_owned())
            .await
            .ok()
    }

    /// The host for a job, waiting as long as it takes.
    pub async fn own_when_free(&self) -> JobGuard {
        self.0.clone().write_owned().await
    }

    /// Whether a job holds the host now.
    pub fn job_holds(&self) -> bool {
        self.0.try_read().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_job_waits_for_a_running_probe_and_then_keeps_probes_out() {
        let gate = HostGate::default();
        let probe = gate.try_probe().expect("free");
        assert!(gate.try_own().is_none(), "a probe is running");
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.own(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        assert!(
            gate.try_probe().is_none(),
            "no new probe behind a waiting job"
        );
        drop(probe);
        let job = waiting.await.unwrap().expect("the probe ended");
        assert!(gate.job_holds());
        assert!(gate.try_probe().is_none(), "probes skip while the job runs");
        drop(job);
        assert!(gate.try_probe().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_does_not_end_is_waited_for_only_so_long() {
        let gate = HostGate::default();
        let _probe = gate.try_probe().unwrap();
        assert!(gate.own(Duration::from_secs(5)).await.is_none());
    }
}
