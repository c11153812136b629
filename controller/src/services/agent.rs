//! `AgentService`: the agent's long-lived stream and certificate renewal.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::agent_message::Msg;
use boltfleet_common::proto::agent_service_server::AgentService;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::{Ack, AgentMessage, ControllerMessage, RenewRequest, RenewResponse};
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::app::App;
use crate::auth;
use crate::door::{self, Refused};
use crate::error::Error;
use crate::metrics::Refusal;
use crate::registry::Outbound;

/// Messages queued to one agent before the stream pushes back.
const OUTBOUND_BUFFER: usize = 16;

pub struct Agent {
    pub app: Arc<App>,
    /// A stream with no message from the agent for this long is closed.
    pub idle_timeout: Duration,
}

type DownStream = Pin<Box<dyn Stream<Item = Result<ControllerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Agent {
    type ConnectStream = DownStream;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<DownStream>, Status> {
        let host = auth::agent(&request, &self.app)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
        let registration = self.app.registry().register(&host, tx.clone());
        if registration.replaced && self.app.door().replaced(host.as_str(), Instant::now()) {
            warn!(
                host = %host,
                replacements = door::FLAP_REPLACEMENTS + 1,
                window = ?door::FLAP_WINDOW,
                "stream replaced too often: two agents with one identity?"
            );
        }
        let touched = host.clone();
        super::blocking(&self.app, move |app| app.touch(&touched, Timestamp::now())).await??;
        info!(host = %host, "agent connected");
        let app = self.app.clone();
        let idle = self.idle_timeout;
        tokio::spawn(async move {
            let ended = serve_stream(&app, &host, inbound, &tx, registration.stop, idle).await;
            if app.registry().unregister(&host, registration.generation) {
                let touched = host.clone();
                let _ =
                    super::blocking(&app, move |app| app.touch(&touched, Timestamp::now())).await;
            }
            info!(host = %host, reason = %ended, "agent disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let host = auth::agent(&request, &self.app)?;
        let csr = request.into_inner().csr_pem;
        let cert = super::blocking(&self.app, move |app| app.renew(&host, &csr)).await??;
        Ok(Response::new(RenewResponse {
            certificate_pem: cert,
        }))
    }
}

/// Reads the agent's messages until the stream ends or must stop; returns why it ended.
async fn serve_stream(
    app: &Arc<App>,
    host: &HostId,
    mut inbound: Streaming<AgentMessage>,
    tx: &Outbound,
    mut stop: tokio::sync::oneshot::Receiver<Status>,
    idle: Duration,
) -> String {
    loop {
        let message = tokio::select! {
            status = &mut stop => {
                let status = status.unwrap_or_else(|_| Status::aborted("stream closed"));
                let reason = status.message().to_string();
                let _ = tx.send(Err(status)).await;
                return reason;
            }
            message = tokio::time::timeout(idle, inbound.message()) => match message {
                Ok(message) => message,
                Err(_) => {
                    let idle = humantime::format_duration(idle);
                    let reason = format!("no message from the agent for {idle}");
                    let _ = tx.try_send(Err(Status::deadline_exceeded(reason.clone())));
                    return reason;
                }
            },
        };
        match message {
            Ok(Some(message)) => {
                if let Err(status) = handle(app, host, message, tx).await {
                    let reason = status.message().to_string();
                    let _ = tx.send(Err(status)).await;
                    return reason;
                }
            }
            Ok(None) => return "closed by agent".into(),
            Err(status) => {
                // A broken connection or a message the limits refused: tell the agent why
                // (if it still listens) and end the stream.
                debug!(host = %host, status = %status, "agent stream error");
                let reason = status.message().to_string();
                let _ = tx.try_send(Err(status));
                return reason;
            }
        }
    }
}

/// One message from the agent: checked at the door, then recorded. An error ends the stream
/// with that status.
async fn handle(
    app: &Arc<App>,
    host: &HostId,
    message: AgentMessage,
    tx: &Outbound,
) -> Result<(), Status> {
    match message.msg {
        Some(Msg::Hello(mut hello)) => {
            door_check(app, host, door::check_hello(&mut hello))?;
            let from = host.clone();
            let done = super::blocking(app, move |app| {
                app.record_hello(
                    &from,
                    &hello.agent_version,
                    hello.last_job,
                    Timestamp::now(),
                )
            });
            recorded(host, done.await?)
        }
        Some(Msg::Report(report)) => {
            let now = Instant::now();
            if !app.door().allow_report(host.as_str(), now) {
                // Dropped, not acknowledged: an honest agent never reports this fast.
                app.metrics().refused(Refusal::OverRate);
                if let Some(n) = app.door().refused(host.as_str(), Refused::OverRate, now) {
                    warn!(host = %host, dropped = n, "agent reports too fast: reports dropped");
                }
                return Ok(());
            }
            let mut inventory = report.inventory.ok_or_else(|| {
                Status::invalid_argument("message refused: report.inventory: missing")
            })?;
            door_check(app, host, door::check_report(&mut inventory))?;
            let from = host.clone();
            let done = super::blocking(app, move |app| {
                app.record_report(&from, inventory, Timestamp::now())
            });
            recorded(host, done.await?)?;
            let ack = ControllerMessage {
                msg: Some(Down::Ack(Ack { seq: report.seq })),
            };
            // A full buffer means the agent is not reading; it will resend on reconnect.
            let _ = tx.try_send(Ok(ack));
            app.metrics().report_acked(now.elapsed().as_secs_f64());
            Ok(())
        }
        Some(Msg::JobEvent(mut event)) => {
            door_check(app, host, door::check_job_event(&mut event))?;
            let from = host.clone();
            let done = super::blocking(app, move |app| {
                app.record_job_event(&from, event, Timestamp::now())
            });
            recorded(host, done.await?)
        }
        None => Err(Status::invalid_argument(
            "message refused: agent message: empty",
        )),
    }
}

/// A message beyond a limit: counted, logged once per interval, refused with a status naming
/// the field and the limit.
fn door_check(app: &App, host: &HostId, checked: Result<(), door::Refusal>) -> Result<(), Status> {
    let Err(refusal) = checked else {
        return Ok(());
    };
    app.metrics().refused(Refusal::Limit);
    if let Some(n) = app
        .door()
        .refused(host.as_str(), Refused::Limit, Instant::now())
    {
        warn!(host = %host, refused = n, error = %door::loggable(&refusal.to_string()), "agent message refused");
    }
    Err(Status::invalid_argument(format!(
        "message refused: {refusal}"
    )))
}

/// A domain error while recording: logged (it is not the agent's fault, or it is rare).
fn recorded(host: &HostId, result: Result<(), Error>) -> Result<(), Status> {
    result.map_err(|err| {
        warn!(host = %host, error = %door::loggable(&err.to_string()), "agent message not recorded");
        Status::from(err)
    })
}
