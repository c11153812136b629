//! A raw agent for tests that play a hostile host: its own certificate (signed through the
//! operator's bulk enrollment), a gRPC stream opened by hand, and any message it likes.

use std::time::Duration;

use anyhow::Result;
use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::new_csr;
use boltfleet_common::proto::admin_service_client::AdminServiceClient;
use boltfleet_common::proto::agent_message::Msg as Up;
use boltfleet_common::proto::agent_service_client::AgentServiceClient;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::{
    AgentMessage, ControllerMessage, EnrollHostsRequest, Health, Hello, HostCsr, Inventory,
    JobEvent, Report,
};
use boltfleet_common::tls::{self, ClientTls};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::cluster::Controller;

/// Far longer than any limit a test sets: reaching it means the limit did not act.
pub const NEVER: Duration = Duration::from_secs(60);

/// An admin client as operator `alice`.
pub async fn admin(ctl: &Controller) -> Result<AdminServiceClient<tonic::transport::Channel>> {
    Ok(AdminServiceClient::new(
        tls::connect(&ctl.url, &ctl.operator_tls()).await?,
    ))
}

/// Enrolls `host` of `tenant` through bulk enrollment; returns its mTLS identity.
pub async fn enrolled(ctl: &Controller, host: &str, tenant: &str) -> Result<ClientTls> {
    let (csr, key) = new_csr(&Identity::Agent(HostId::new(host)?))?;
    let request = EnrollHostsRequest {
        hosts: vec![HostCsr {
            host_id: host.into(),
            tenant: tenant.into(),
            labels: Default::default(),
            csr_pem: csr,
        }],
    };
    let cert = admin(ctl)
        .await?
        .enroll_hosts(request)
        .await?
        .into_inner()
        .certificate_pem;
    Ok(ClientTls::Mutual {
        ca_pem: std::fs::read_to_string(ctl.dir.join("operator/ca.crt"))?,
        cert_pem: cert[0].clone(),
        key_pem: key,
    })
}

/// Plays the agent of a host: hello, then one report of `inventory`, acknowledged; returns
/// the open stream (the host stays online while it lives).
pub async fn report_once(
    ctl: &Controller,
    tls: &ClientTls,
    inventory: Inventory,
) -> Result<Stream> {
    let mut stream = Stream::open(ctl, tls).await?;
    stream.report_acked(1, inventory).await?;
    Ok(stream)
}

/// One open agent stream.
pub struct Stream {
    pub tx: mpsc::Sender<AgentMessage>,
    pub inbound: Streaming<ControllerMessage>,
}

impl Stream {
    /// Opens a stream and says hello.
    pub async fn open(ctl: &Controller, tls: &ClientTls) -> Result<Self> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(hello(None)).await?;
        let mut client = AgentServiceClient::new(tls::connect(&ctl.url, tls).await?);
        let inbound = client.connect(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Self { tx, inbound })
    }

    pub async fn send(&self, msg: AgentMessage) -> Result<()> {
        self.tx.send(msg).await?;
        Ok(())
    }

    /// The next message from the controller; `Err` when the stream ended with a status.
    pub async fn next(&mut self) -> Result<Option<ControllerMessage>, Status> {
        match tokio::time::timeout(NEVER, self.inbound.message()).await {
            Ok(next) => next,
            Err(_) => Err(Status::deadline_exceeded("test: nothing within NEVER")),
        }
    }

    /// Sends a report and waits for its acknowledgement.
    pub async fn report_acked(&mut self, seq: u64, inventory: Inventory) -> Result<()> {
        self.send(report(seq, inventory)).await?;
        loop {
            match self.next().await? {
                Some(ControllerMessage {
                    msg: Some(Down::Ack(ack)),
                }) if ack.seq == seq => return Ok(()),
                Some(_) => continue,
                None => anyhow::bail!("stream closed before the ack of {seq}"),
            }
        }
    }

    /// The status the stream ends with (skipping acks and jobs).
    pub async fn ended(&mut self) -> Status {
        loop {
            match self.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Status::ok("closed"),
                Err(status) => return status,
            }
        }
    }
}

pub fn hello(last_job: Option<JobEvent>) -> AgentMessage {
    AgentMessage {
        msg: Some(Up::Hello(Hello {
            agent_version: "0.0.0-test".into(),
            last_job,
        })),
    }
}

pub fn report(seq: u64, inventory: Inventory) -> AgentMessage {
    AgentMessage {
        msg: Some(Up::Report(Report {
            seq,
            inventory: Some(inventory),
        })),
    }
}

pub fn job_event(event: JobEvent) -> AgentMessage {
    AgentMessage {
        msg: Some(Up::JobEvent(event)),
    }
}

/// A healthy host at `version` whose repository's newest tag is `newest_tag`.
pub fn inventory(version: &str, newest_tag: &str) -> Inventory {
    Inventory {
        agent_version: "0.0.0-test".into(),
        passbolt_version: version.into(),
        newest_tag: newest_tag.into(),
        health: Some(Health {
            healthy: true,
            ..Health::default()
        }),
        ..Inventory::default()
    }
}
