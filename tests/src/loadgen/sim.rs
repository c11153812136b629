//! One simulated agent: connects with its own certificate from its own source address, says
//! hello, reports on connect and every interval, answers jobs, and reconnects with the real
//! agent's backoff until told to stop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use boltfleet_agent::backoff::Backoff;
use boltfleet_common::proto::agent_message::Msg as Up;
use boltfleet_common::proto::agent_service_client::AgentServiceClient;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::{
    AgentMessage, DiskSpace, GitState, Health, HealthCheck, Hello, Inventory, JobEvent, JobState,
    MigrationSection, MigrationState, Report, RunJob, StepRecord, StepState,
};
use boltfleet_common::tls;
use boltfleet_controller::cli::error::chain;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep_until, Instant};
use tokio_stream::wrappers::ReceiverStream;

use super::certs::AgentIdentity;
use super::stats::Stats;

/// A session that lasted this long resets the backoff (as in the agent).
const STABLE_SESSION: Duration = Duration::from_secs(30);

/// What every simulated agent shares.
pub struct Shared {
    pub url: String,
    pub report_interval: Duration,
    pub job_time: Duration,
    pub fail_rate: f64,
    pub connecting: Semaphore,
    pub stats: Arc<Stats>,
    pub stop: watch::Receiver<bool>,
}

/// What one agent remembers across sessions.
struct State {
    version: String,
    seq: u64,
    job: Option<Job>,
    last_job: Option<JobEvent>,
    /// When the stream was lost (None before the first connection).
    lost_at: Option<Instant>,
    /// A first connection counts apart from reconnections, even after failed attempts.
    ever_connected: bool,
}

struct Job {
    request: RunJob,
    ends_at: Instant,
    from: String,
    started_at: i64,
}

/// Runs one agent until `shared.stop` turns true.
pub async fn run(shared: Arc<Shared>, me: AgentIdentity, source: IpAddr, version: String) {
    let mut state = State {
        version,
        seq: 0,
        job: None,
        last_job: None,
        lost_at: None,
        ever_connected: false,
    };
    let mut stop = shared.stop.clone();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    // Agents start spread over one interval, as hosts boot at different times.
    let start = shared
        .report_interval
        .min(Duration::from_secs(5))
        .mul_f64(rand::random::<f64>());
    tokio::select! {
        _ = tokio::time::sleep(start) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    loop {
        let began = Instant::now();
        let ended = tokio::select! {
            ended = session(&shared, &me, source, &mut state) => ended,
            _ = stop.wait_for(|s| *s) => Ok(()),
        };
        if *stop.borrow() {
            return;
        }
        if let Err(err) = ended {
            shared.stats.error(&err);
        }
        if state.ever_connected {
            state.lost_at.get_or_insert_with(Instant::now);
        }
        if began.elapsed() >= STABLE_SESSION {
            backoff.reset();
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One connection; returns why it ended.
async fn session(
    shared: &Shared,
    me: &AgentIdentity,
    source: IpAddr,
    state: &mut State,
) -> Result<(), String> {
    let channel = {
        let _turn = shared
            .connecting
            .acquire()
            .await
            .map_err(|e| e.to_string())?;
        tls::endpoint(&shared.url, &me.tls)
            .map_err(|e| e.to_string())?
            .local_address(Some(source))
            .connect()
            .await
            .map_err(|e| format!("connect: {}", chain(&e)))?
    };
    let mut client = AgentServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<AgentMessage>(16);
    let hello = Up::Hello(Hello {
        agent_version: env!("CARGO_PKG_VERSION").into(),
        last_job: state.last_job.clone(),
    });
    let _ = tx.send(AgentMessage { msg: Some(hello) }).await;
    let mut pending: HashMap<u64, (Instant, bool)> = HashMap::new();
    send_report(shared, state, &tx, &mut pending).await;
    let mut inbound = client
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("stream: {}", s.message()))?
        .into_inner();
    shared
        .stats
        .connected(state.lost_at.take().map(|t| t.elapsed()));
    state.ever_connected = true;
    let _online = Online(&shared.stats);

    let mut next_report =
        Instant::now() + jitter(shared.report_interval, shared.report_interval / 10);
    loop {
        let job_ends = state.job.as_ref().map(|j| j.ends_at);
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(message)) => match message.msg {
                    Some(Down::Ack(ack)) => {
                        if let Some((sent, steady)) = pending.remove(&ack.seq) {
                            shared.stats.acked(sent.elapsed(), steady);
                        }
                    }
                    Some(Down::RunJob(job)) => start_job(shared, state, job, &tx).await,
                    Some(Down::CancelJob(_)) | None => {}
                },
                Ok(None) => return Err("stream closed by the controller".into()),
                Err(status) => return Err(format!("stream: {}", status.message())),
            },
            _ = sleep_until(next_report) => {
                send_report(shared, state, &tx, &mut pending).await;
                next_report += jitter(shared.report_interval, shared.report_interval / 10);
            }
            _ = sleep_until(job_ends.unwrap_or(next_report)), if job_ends.is_some() => {
                finish_job(shared, state, &tx).await;
                send_report(shared, state, &tx, &mut pending).await;
            }
        }
    }
}

/// Counts the agent as online while alive.
struct Online<'a>(&'a Stats);

impl Drop for Online<'_> {
    fn drop(&mut self) {
        self.0.disconnected();
    }
}

async fn send_report(
    shared: &Shared,
    state: &mut State,
    tx: &mpsc::Sender<AgentMessage>,
    pending: &mut HashMap<u64, (Instant, bool)>,
) {
    state.seq += 1;
    let report = Report {
        seq: state.seq,
        inventory: Some(inventory(&state.version)),
    };
    let steady = shared.stats.all_connected();
    pending.insert(state.seq, (Instant::now(), steady));
    shared
        .stats
        .reports_sent
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = tx
        .send(AgentMessage {
            msg: Some(Up::Report(report)),
        })
        .await;
}

async fn start_job(
    shared: &Shared,
    state: &mut State,
    job: RunJob,
    tx: &mpsc::Sender<AgentMessage>,
) {
    // The controller re-sends queued jobs after a reconnect: a job seen before is not new.
    let known = state.job.as_ref().map(|j| j.request.job_id.as_str()) == Some(job.job_id.as_str())
        || state.last_job.as_ref().map(|e| e.job_id.as_str()) == Some(job.job_id.as_str());
    if known {
        return;
    }
    shared
        .stats
        .jobs_received
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started_at = unix_now();
    let running = Job {
        ends_at: Instant::now() + shared.job_time,
        from: state.version.clone(),
        started_at,
        request: job,
    };
    let event = event(&running, JobState::Running, StepState::Running, started_at);
    state.last_job = Some(event.clone());
    state.job = Some(running);
    let _ = tx
        .send(AgentMessage {
            msg: Some(Up::JobEvent(event)),
        })
        .await;
}

async fn finish_job(shared: &Shared, state: &mut State, tx: &mpsc::Sender<AgentMessage>) {
    let Some(job) = state.job.take() else { return };
    let failed = rand::random::<f64>() < shared.fail_rate;
    let (job_state, step_state, counter) = if failed {
        (
            JobState::RolledBack,
            StepState::Failed,
            &shared.stats.jobs_failed,
        )
    } else {
        state.version = job.request.target_version.clone();
        (
            JobState::Succeeded,
            StepState::Succeeded,
            &shared.stats.jobs_succeeded,
        )
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut event = event(&job, job_state, step_state, unix_now());
    if failed {
        event.failed_step = "migrate".into();
        event.reason = "simulated failure".into();
    }
    state.last_job = Some(event.clone());
    let _ = tx
        .send(AgentMessage {
            msg: Some(Up::JobEvent(event)),
        })
        .await;
}

fn event(job: &Job, state: JobState, step: StepState, now: i64) -> JobEvent {
    let done = !matches!(state, JobState::Running);
    JobEvent {
        job_id: job.request.job_id.clone(),
        kind: job.request.kind,
        target_version: job.request.target_version.clone(),
        state: state as i32,
        steps: vec![StepRecord {
            name: "migrate".into(),
            state: step as i32,
            started_at: job.started_at,
            finished_at: if done { now } else { 0 },
            output_tail: String::new(),
        }],
        from_version: job.from.clone(),
        started_at: job.started_at,
        finished_at: if done { now } else { 0 },
        ..JobEvent::default()
    }
}

/// A report the size and shape of a real host's.
fn inventory(version: &str) -> Inventory {
    let check = |source: &str, name: &str| HealthCheck {
        source: source.into(),
        name: name.into(),
        status: "pass".into(),
        detail: String::new(),
    };
    Inventory {
        agent_version: env!("CARGO_PKG_VERSION").into(),
        passbolt_version: version.into(),
        version_file: version.into(),
        git: Some(GitState {
            head: "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39".into(),
            tag: format!("v{version}"),
            dirty: false,
        }),
        migrations: Some(MigrationState {
            known: true,
            sections: vec![MigrationSection {
                name: "app".into(),
                current: "20240801120000".into(),
                latest: "20240801120000".into(),
            }],
            pending: false,
            error: String::new(),
        }),
        health: Some(Health {
            healthy: true,
            checks: [
                ("environment", "php_version"),
                ("environment", "pcre"),
                ("environment", "tmp_writable"),
                ("config_file", "app_config"),
                ("core", "cache"),
                ("core", "debug_disabled"),
                ("ssl", "peer_valid"),
                ("database", "connect"),
                ("database", "tables_count"),
                ("gpg", "key_fingerprint"),
                ("gpg", "can_encrypt"),
                ("application", "latest_version"),
            ]
            .iter()
            .map(|(s, n)| check(s, n))
            .collect(),
            reasons: Vec::new(),
        }),
        php_version: "8.2.20".into(),
        disks: vec![
            DiskSpace {
                role: "install".into(),
                path: "/usr/share/php/passbolt".into(),
                free_bytes: 20 << 30,
                total_bytes: 40 << 30,
            },
            DiskSpace {
                role: "backups".into(),
                path: "/var/backups/boltfleet".into(),
                free_bytes: 20 << 30,
                total_bytes: 40 << 30,
            },
        ],
        errors: Vec::new(),
        collected_at: unix_now(),
        newest_tag: String::new(),
        ..Default::default()
    }
}

/// `base` plus or minus up to `spread`, at random.
fn jitter(base: Duration, spread: Duration) -> Duration {
    let unit = rand::random::<f64>() * 2.0 - 1.0;
    let offset = spread.as_secs_f64() * unit;
    Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
}

use boltfleet_common::clock::unix_now;
