//! `boltfleet-loadgen`: many simulated agents in one process, each with its own certificate,
//! mTLS connection and stream, reporting on an interval and answering jobs; measures what the
//! controller gives back.
//!
//! The simulated agents behave like the real one where it matters to the controller: a hello
//! and a report on connect, a report every interval (with jitter), the same reconnection
//! backoff, job events while a job runs and a report right after it. They skip the host work.

mod certs;
mod sim;
mod stats;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::sync::{watch, Semaphore};

pub use stats::Summary;

/// Simulates N agents against a running controller and prints what it measured.
#[derive(Parser, Debug, Clone)]
#[command(name = "boltfleet-loadgen", version)]
pub struct Args {
    /// The controller's data directory (its CA signs the simulated agents' certificates).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Controller URL, `https://127.0.0.1:7443` [default: from DATA_DIR/listen.addr].
    #[arg(long)]
    pub controller: Option<String>,
    /// Number of simulated agents.
    #[arg(long)]
    pub agents: usize,
    /// How long to run once started.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Interval between reports of each agent (each wait is jittered by ±10%).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub report_interval: Duration,
    /// How long each simulated job runs before it ends.
    #[arg(long, default_value_t = 5.0)]
    pub job_seconds: f64,
    /// Share of jobs that fail (and are "rolled back"), 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Tenants the hosts are spread over (round robin).
    #[arg(long, default_value_t = 100)]
    pub tenants: usize,
    /// Prefix of the simulated host ids (`PREFIX00001`, ...).
    #[arg(long, default_value = "load-")]
    pub host_prefix: String,
    /// passbolt version the simulated hosts report until a job updates them.
    #[arg(long, default_value = "4.9.0")]
    pub passbolt_version: String,
    /// Loopback source addresses to spread connections over (127.0.0.2, 127.0.0.3, ...);
    /// 0 picks one per 20,000 agents.
    #[arg(long, default_value_t = 0)]
    pub source_addrs: usize,
    /// TLS handshakes in flight at once (the rest wait their turn, as a network would queue them).
    #[arg(long, default_value_t = 256)]
    pub max_connecting: usize,
    /// Print a progress line to stderr this often.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub progress: Duration,
}

impl Args {
    /// Checks the flags together; the error names the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.agents == 0 {
            bail!("--agents: must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.fail_rate) {
            bail!("--fail-rate: {} is not between 0 and 1", self.fail_rate);
        }
        if !(self.job_seconds >= 0.0 && self.job_seconds.is_finite()) {
            bail!("--job-seconds: {} is not a duration", self.job_seconds);
        }
        if self.report_interval < Duration::from_millis(100) {
            bail!("--report-interval: at least 100ms");
        }
        if self.tenants == 0 {
            bail!("--tenants: must be at least 1");
        }
        if self.source_addrs > 250 {
            bail!("--source-addrs: at most 250 (127.0.0.2 to 127.0.0.251)");
        }
        Ok(())
    }

    /// The source address of agent `i`.
    fn source_of(&self, i: usize) -> IpAddr {
        let count = match self.source_addrs {
            0 => self.agents.div_ceil(20_000).max(1),
            n => n,
        };
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % count) as u8))
    }
}

/// Enrolls the agents, runs them for the duration (or until `shutdown` completes), and returns
/// what was measured.
pub async fn run(
    args: Args,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Summary> {
    args.validate()?;
    let limit = boltfleet_common::process::raise_fd_limit().unwrap_or(u64::MAX);
    // Each agent holds one socket; keep some descriptors for the process itself.
    let room = limit.saturating_sub(256) as usize;
    if args.agents > room {
        bail!(
            "--agents {}: this process may open {limit} files (hard limit), room for {room} agents; raise `ulimit -Hn` or run several load generators",
            args.agents
        );
    }
    let url = match &args.controller {
        Some(url) => url.clone(),
        None => certs::controller_url(&args.data_dir)?,
    };
    let started = Instant::now();
    let agents = certs::enroll(&args, &url)
        .await
        .context("enrolling the simulated agents")?;
    eprintln!(
        "enrolled {} agents in {:.1}s; connecting to {url}",
        agents.len(),
        started.elapsed().as_secs_f64()
    );

    let stats = Arc::new(stats::Stats::new(args.agents));
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(sim::Shared {
        url,
        report_interval: args.report_interval,
        job_time: Duration::from_secs_f64(args.job_seconds),
        fail_rate: args.fail_rate,
        connecting: Semaphore::new(args.max_connecting.max(1)),
        stats: stats.clone(),
        stop: stop_rx,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (i, agent) in agents.into_iter().enumerate() {
        let shared = shared.clone();
        let source = args.source_of(i);
        let version = args.passbolt_version.clone();
        tasks.spawn(sim::run(shared, agent, source, version));
    }
    let progress = tokio::spawn(stats::progress(stats.clone(), args.progress));
    tokio::select! {
        _ = tokio::time::sleep(args.duration) => {}
        _ = shutdown => eprintln!("stopping early on a signal"),
    }
    let connected = stats.connected.load(std::sync::atomic::Ordering::Relaxed);
    let _ = stop_tx.send(true);
    progress.abort();
    while tasks.join_next().await.is_some() {}
    Ok(stats.summary(args.agents, args.duration, connected))
}
