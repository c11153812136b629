//! The connection to the controller: one stream, reports on connect, on every interval and on
//! change; renews the certificate in time. When the config names several controllers, a
//! failed one is left for the next at once ([`Rotation`]); after every one failed in a row it
//! reconnects with jittered exponential backoff.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use boltfleet_common::pki;
use boltfleet_common::proto::agent_message::Msg as Up;
use boltfleet_common::proto::agent_service_client::AgentServiceClient;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::{
    AgentMessage, ControllerMessage, Hello, JobEvent, JobKind, RenewRequest, Report,
};
use boltfleet_common::tls::{self, TlsError};
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::credentials::{CredentialFiles, Credentials, CredentialsError};
use crate::host_gate::HostGate;
use crate::inventory;
use crate::jobs::Jobs;
use crate::rotation::{AfterFailure, Rotation};

/// How often the cheap change probe runs between full reports.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// A session that lasted this long resets the backoff, and counts as its controller working
/// (so that its failure is left for the next controller at once, not after a pause).
const STABLE_SESSION: Duration = Duration::from_secs(30);

/// Why a session with the controller ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("controller: {0}")]
    Status(#[from] tonic::Status),
    #[error("controller closed the stream")]
    Closed,
    #[error("certificate renewed")]
    Renewed,
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("certificate renewal: {0}")]
    Renewal(#[from] pki::PkiError),
}

/// Keeps a session with the controller open until `shutdown` completes.
pub async fn run_forever(
    config: &AgentConfig,
    files: &CredentialFiles,
    jobs: &Jobs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CredentialsError> {
    tokio::pin!(shutdown);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut rotation = Rotation::new(config.controllers.clone());
    loop {
        let creds = files.load()?;
        let started = Instant::now();
        let result = tokio::select! {
            result = session(config, files, &creds, jobs, rotation.current()) => result,
            () = &mut shutdown => return Ok(()),
        };
        if started.elapsed() >= STABLE_SESSION {
            backoff.reset();
            rotation.worked();
        }
        let err = match result {
            Err(SessionError::Renewed) => continue,
            Err(SessionError::Credentials(err)) => return Err(err),
            Err(err) => err,
            Ok(()) => SessionError::Closed,
        };
        let failed = rotation.current().to_string();
        if rotation.failed() == AfterFailure::TryNext {
            warn!(
                controller = %failed,
                next = %rotation.current(),
                error = %err,
                "controller failed, failing over"
            );
            continue;
        }
        let delay = backoff.next_delay();
        warn!(
            controller = %failed,
            next = %rotation.current(),
            attempt = backoff.attempt(),
            retry_in_ms = delay.as_millis() as u64,
            error = %err,
            "controller unreachable, retrying"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

/// One connection to the controller at `url`: renew if due (with that controller), open the
/// stream, report, serve controller messages.
async fn session(
    config: &AgentConfig,
    files: &CredentialFiles,
    creds: &Credentials,
    jobs: &Jobs,
    url: &str,
) -> Result<(), SessionError> {
    let channel = tls::connect(url, &creds.client_tls()).await?;
    let mut client = AgentServiceClient::new(channel);
    if creds.needs_renewal(OffsetDateTime::now_utc()) {
        renew(&mut client, files, creds).await?;
        return Err(SessionError::Renewed);
    }
    let (tx, rx) = mpsc::channel::<AgentMessage>(16);
    // Subscribe before the hello so no job change falls between the two.
    let mut job_events = jobs.subscribe();
    let hello = Up::Hello(Hello {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        last_job: jobs.last_job(),
    });
    let _ = tx.send(AgentMessage { msg: Some(hello) }).await;
    let mut reporter = Reporter {
        seq: 0,
        tx: &tx,
        prober: inventory::Prober::new(config.probe_interval),
        gate: jobs.gate(),
    };
    reporter.send(config).await;
    let mut inbound = client.connect(ReceiverStream::new(rx)).await?.into_inner();
    info!(host = %creds.host, controller = %url, "connected");
    let metrics = crate::metrics::get();
    metrics.connects.inc();
    metrics.connected.set(1);
    let _connected = Disconnected;

    let mut report_tick = tokio::time::interval(config.report_interval);
    report_tick.tick().await;
    let mut probe_tick = tokio::time::interval(PROBE_INTERVAL);
    let mut last_probe = probe(config);
    loop {
        tokio::select! {
            message = inbound.message() => match message? {
                Some(message) => handle(message, jobs),
                None => return Err(SessionError::Closed),
            },
            event = job_events.recv() => {
                let event = match event {
                    Ok(event) => Some(event),
                    // Missed some changes: the latest state says it all.
                    Err(broadcast::error::RecvError::Lagged(_)) => jobs.last_job(),
                    Err(broadcast::error::RecvError::Closed) => None,
                };
                if let Some(event) = event {
                    let finished = event.state().is_final();
                    let changes_install = may_change_install(&event);
                    let _ = tx.send(AgentMessage { msg: Some(Up::JobEvent(event)) }).await;
                    if finished {
                        // Fresh facts in the next report at the latest.
                        reporter.prober.invalidate();
                    }
                    if finished && changes_install {
                        // The install may have changed: report it now, not at the next tick.
                        reporter.send(config).await;
                        last_probe = probe(config);
                        report_tick.reset();
                    }
                }
            }
            _ = report_tick.tick() => reporter.send(config).await,
            _ = probe_tick.tick() => {
                let now = probe(config);
                if now != last_probe {
                    debug!("install changed, reporting");
                    last_probe = now;
                    reporter.prober.invalidate();
                    reporter.send(config).await;
                    report_tick.reset();
                }
            }
        }
    }
}

struct Reporter<'a> {
    seq: u64,
    tx: &'a mpsc::Sender<AgentMessage>,
    prober: inventory::Prober,
    gate: &'a HostGate,
}

impl Reporter<'_> {
    async fn send(&mut self, config: &AgentConfig) {
        self.seq += 1;
        let inventory = self
            .prober
            .inventory(config, self.gate, std::time::Instant::now())
            .await;
        let report = Up::Report(Report {
            seq: self.seq,
            inventory: Some(inventory),
        });
        if self
            .tx
            .send(AgentMessage { msg: Some(report) })
            .await
            .is_ok()
        {
            crate::metrics::get().reports.inc();
        }
    }
}

/// Sets `boltfleet_agent_connected` back to 0 when the session ends, however it ends.
struct Disconnected;

impl Drop for Disconnected {
    fn drop(&mut self) {
        crate::metrics::get().connected.set(0);
    }
}

fn handle(message: ControllerMessage, jobs: &Jobs) {
    match message.msg {
        Some(Down::Ack(ack)) => debug!(seq = ack.seq, "report acknowledged"),
        Some(Down::RunJob(job)) => {
            info!(job = %job.job_id, target = %job.target_version, "job received");
            jobs.submit(job);
        }
        Some(Down::CancelJob(cancel)) => {
            warn!(job = %cancel.job_id, "cancel ignored: a started job runs to its end or rolls back")
        }
        None => debug!("empty controller message"),
    }
}

async fn renew(
    client: &mut AgentServiceClient<Channel>,
    files: &CredentialFiles,
    creds: &Credentials,
) -> Result<(), SessionError> {
    let csr = pki::csr_for_key(&creds.cert.identity, &creds.key_pem)?;
    let cert = client
        .renew(RenewRequest { csr_pem: csr })
        .await?
        .into_inner()
        .certificate_pem;
    files.store_cert(&cert)?;
    info!(host = %creds.host, "certificate renewed");
    Ok(())
}

/// Whether a finished job may have changed what the inventory reports (version, migrations,
/// health after a checkout or restore): update and rollback may, and are reported at once. A
/// healthcheck or backup job leaves the install as it was: its facts are probed again at the
/// next report tick instead of right away, because that probe (git, `cake` twice, hundreds of
/// milliseconds on a real host) held the host and this loop just after each such job, and an
/// operator's next job, arriving meanwhile, waited for it.
fn may_change_install(event: &JobEvent) -> bool {
    !matches!(event.kind(), JobKind::Healthcheck | JobKind::Backup)
}

/// A cheap fingerprint of what usually changes on an update: the version files and git HEAD.
fn probe(config: &AgentConfig) -> u64 {
    let root = &config.passbolt.root;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for rel in ["app/Config/version.php", "config/version.php", ".git/HEAD"] {
        std::fs::read(root.join(rel)).ok().hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(kind: JobKind) -> JobEvent {
        JobEvent {
            kind: kind as i32,
            state: boltfleet_common::proto::JobState::Succeeded as i32,
            ..JobEvent::default()
        }
    }

    #[test]
    fn only_jobs_that_may_change_the_install_are_reported_at_once() {
        assert!(may_change_install(&finished(JobKind::Update)));
        assert!(may_change_install(&finished(JobKind::Rollback)));
        assert!(!may_change_install(&finished(JobKind::Healthcheck)));
        assert!(!may_change_install(&finished(JobKind::Backup)));
    }
}
