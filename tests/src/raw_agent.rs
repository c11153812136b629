//! An agent played by a test over a raw tonic stream, the way a hostile host would talk: enrolled
//! through the operator's bulk enrollment, then saying hello and sending what the test wants.

use std::time::Duration;

use anyhow::Result;
use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::new_csr;
use boltfleet_common::proto::admin_service_client::AdminServiceClient;
use boltfleet_common::proto::agent_message::Msg as Up;
use boltfleet_common::proto::agent_service_client::AgentServiceClient;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::{
    AgentMessage, ControllerMessage, EnrollHostsRequest, Hello, HostCsr, Inventory, Report,
};
use boltfleet_common::tls::{self, ClientTls};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cluster::Controller;

/// Far longer than anything awaited here takes.
pub const NEVER: Duration = Duration::from_secs(60);

fn read(path: impl AsRef<std::path::Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Enrolls `host` in `tenant` through the operator's bulk enrollment; returns its identity.
pub async fn enrolled(ctl: &Controller, host: &str, tenant: &str) -> Result<ClientTls> {
    let (csr, key) = new_csr(&Identity::Agent(HostId::new(host)?))?;
    let mut admin = AdminServiceClient::new(tls::connect(&ctl.url, &ctl.operator_tls()).await?);
    let request = EnrollHostsRequest {
        hosts: vec![HostCsr {
            host_id: host.into(),
            tenant: tenant.into(),
            labels: Default::default(),
            csr_pem: csr,
        }],
    };
    let cert = admin
        .enroll_hosts(request)
        .await?
        .into_inner()
        .certificate_pem;
    Ok(ClientTls::Mutual {
        ca_pem: read(ctl.dir.join("operator/ca.crt")),
        cert_pem: cert[0].clone(),
        key_pem: key,
    })
}

/// An agent stream kept open (the host stays online) while this lives.
pub type Stream = (
    mpsc::Sender<AgentMessage>,
    tonic::Streaming<ControllerMessage>,
);

/// Plays the agent of a host: hello, then one report of `inventory`, acknowledged; returns
/// the open stream.
pub async fn report_once(
    ctl: &Controller,
    tls: &ClientTls,
    inventory: Inventory,
) -> Result<Stream> {
    let (tx, rx) = mpsc::channel(8);
    tx.send(AgentMessage {
        msg: Some(Up::Hello(Hello {
            agent_version: "0.0.0-test".into(),
            last_job: None,
        })),
    })
    .await?;
    tx.send(AgentMessage {
        msg: Some(Up::Report(Report {
            seq: 1,
            inventory: Some(inventory),
        })),
    })
    .await?;
    let mut client = AgentServiceClient::new(tls::connect(&ctl.url, tls).await?);
    let mut inbound = client.connect(ReceiverStream::new(rx)).await?.into_inner();
    loop {
        let message = tokio::time::timeout(NEVER, inbound.message()).await??;
        match message.and_then(|m| m.msg) {
            Some(Down::Ack(ack)) if ack.seq == 1 => return Ok((tx, inbound)),
            Some(_) => continue,
            None => anyhow::bail!("stream ended before the report was acknowledged"),
        }
    }
}
