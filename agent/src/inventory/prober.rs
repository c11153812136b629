//! When the inventory runs passbolt's commands: cheap facts (version file, free space, the
//! HTTP healthcheck) at every report; git, `cake` and the healthcheck command only when the
//! install changed, after a job, or at the slow probe interval — and never while a job holds
//! the host, when the last facts are reported with `job_in_progress` set.

use std::time::{Duration, Instant};

use boltfleet_common::clock::unix_now;
use boltfleet_common::proto::{Health, Inventory};

use super::collect::{assemble, probe, Probed};
use crate::config::AgentConfig;
use crate::host_gate::HostGate;

/// The inventory's memory between reports.
#[derive(Debug)]
pub struct Prober {
    interval: Duration,
    last: Option<(Probed, Instant)>,
    /// The last inventory sent, repeated while a job holds the host.
    sent: Option<Inventory>,
    stale: bool,
}

impl Prober {
    /// Runs passbolt's commands at least every `interval`.
    pub fn new(interval: Duration) -> Self {
        Prober {
            interval,
            last: None,
            sent: None,
            stale: true,
        }
    }

    /// The install changed (HEAD, version file) or a job ended: the next inventory runs the
    /// commands again.
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    fn due(&self, now: Instant) -> bool {
        match &self.last {
            None => true,
            Some((_, at)) => self.stale || now.duration_since(*at) >= self.interval,
        }
    }

    /// The inventory to report now. While a job holds `gate` nothing is run: the last
    /// inventory is repeated with `job_in_progress` (an empty, unhealthy one when there is
    /// none yet). `now` decides whether the commands are due.
    pub async fn inventory(
        &mut self,
        config: &AgentConfig,
        gate: &HostGate,
        now: Instant,
    ) -> Inventory {
        let Some(_probing) = gate.try_probe() else {
            return self.while_a_job_runs();
        };
        if self.due(now) {
            let started = Instant::now();
            self.last = Some((probe(config).await, now));
            crate::metrics::get()
                .probe_seconds
                .observe(started.elapsed().as_secs_f64());
            self.stale = false;
        }
        let (probed, _) = self.last.as_ref().expect("probed above");
        let inventory = assemble(config, probed).await;
        self.sent = Some(inventory.clone());
        inventory
    }

    fn while_a_job_runs(&self) -> Inventory {
        let now = unix_now();
        let mut inventory = self.sent.clone().unwrap_or_else(|| Inventory {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            health: Some(Health {
                healthy: false,
                checks: Vec::new(),
                reasons: vec!["job in progress: the host was not probed yet".into()],
            }),
            ..Default::default()
        });
        inventory.collected_at = now;
        inventory.job_in_progress = true;
        inventory
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    /// A host whose healthcheck command counts its runs in `runs`.
    fn counting_host(dir: &Path) -> AgentConfig {
        let script = dir.join("hc.sh");
        let runs = dir.join("runs");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho x >> {runs:?}\necho ' [PASS] fine'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let text = format!(
            "controller = \"https://c.example:7443\"\nstate_dir = \"/tmp/x\"\n[passbolt]\nroot = {dir:?}\nhealthcheck_command = [{script:?}]\n"
        );
        toml::from_str(&text).unwrap()
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("runs"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn commands_run_when_due_not_at_every_report() {
        let dir = tempfile::tempdir().unwrap();
        let config = counting_host(dir.path());
        let gate = HostGate::default();
        let mut prober = Prober::new(Duration::from_secs(600));
        let t0 = Instant::now();
        let first = prober.inventory(&config, &gate, t0).await;
        assert_eq!(runs(dir.path()), 1);
        assert!(!first.job_in_progress && first.probed_at > 0);
        for i in 1..=5 {
            let inv = prober
                .inventory(&config, &gate, t0 + Duration::from_secs(30 * i))
                .await;
            assert_eq!(inv.probed_at, first.probed_at, "facts from the first run");
            assert_eq!(inv.health, first.health);
        }
        assert_eq!(runs(dir.path()), 1, "cheap reports run no command");
        prober.invalidate();
        let t1 = t0 + Duration::from_secs(200);
        prober.inventory(&config, &gate, t1).await;
        assert_eq!(runs(dir.path()), 2, "a change runs them again");
        prober
            .inventory(&config, &gate, t1 + Duration::from_secs(599))
            .await;
        assert_eq!(runs(dir.path()), 2);
        prober
            .inventory(&config, &gate, t1 + Duration::from_secs(600))
            .await;
        assert_eq!(runs(dir.path()), 3, "and so does the slow interval");
    }

    #[tokio::test]
    async fn nothing_runs_while_a_job_holds_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let config = counting_host(dir.path());
        let gate = HostGate::default();
        let mut prober = Prober::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let job = gate.try_own().unwrap();
        let early = prober.inventory(&config, &gate, t0).await;
        assert!(early.job_in_progress);
        assert!(!early.health.unwrap().healthy, "nothing known yet");
        drop(job);
        let before = prober.inventory(&config, &gate, t0).await;
        assert_eq!(runs(dir.path()), 1);
        let job = gate.try_own().unwrap();
        prober.invalidate();
        for i in 1..=3 {
            let inv = prober
                .inventory(&config, &gate, t0 + Duration::from_secs(5 * i))
                .await;
            assert!(inv.job_in_progress);
            assert_eq!(inv.health, before.health, "the last facts");
        }
        assert_eq!(runs(dir.path()), 1, "no command while the job runs");
        drop(job);
        let after = prober
            .inventory(&config, &gate, t0 + Duration::from_secs(20))
            .await;
        assert!(!after.job_in_progress);
        assert_eq!(runs(dir.path()), 2);
    }
}
