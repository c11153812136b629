//! End to end: the limits that protect the controller from peers that hold resources without
//! using them: a connection that never finishes its TLS handshake, an agent stream that goes
//! silent, a second stream from the same host, more handshakes at once than allowed; and open
//! streams do not hold up a stopping controller. Limits are set short in `[limits]` here.

use std::io::Read;
use std::net::TcpStream;
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
use boltfleet_tests::cluster::Controller;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// Far longer than any limit set here: reaching it means the limit did not act.
const NEVER: Duration = Duration::from_secs(60);

fn read(path: impl AsRef<std::path::Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Enrolls `host` through the operator's bulk enrollment; returns its mTLS identity.
async fn enrolled(ctl: &Controller, host: &str) -> Result<ClientTls> {
    let (csr, key) = new_csr(&Identity::Agent(HostId::new(host)?))?;
    let mut admin = AdminServiceClient::new(tls::connect(&ctl.url, &ctl.operator_tls()).await?);
    let request = EnrollHostsRequest {
        hosts: vec![HostCsr {
            host_id: host.into(),
            tenant: "acme".into(),
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

fn hello() -> AgentMessage {
    AgentMessage {
        msg: Some(Up::Hello(Hello {
            agent_version: "0.0.0-test".into(),
            last_job: None,
        })),
    }
}

fn report(seq: u64) -> AgentMessage {
    AgentMessage {
        msg: Some(Up::Report(Report {
            seq,
            inventory: Some(Inventory {
                passbolt_version: "4.9.0".into(),
                ..Inventory::default()
            }),
        })),
    }
}

/// Opens an agent stream that stays open while the returned sender lives.
async fn open_stream(
    ctl: &Controller,
    tls: &ClientTls,
) -> Result<(mpsc::Sender<AgentMessage>, Streaming<ControllerMessage>)> {
    let (tx, rx) = mpsc::channel(8);
    tx.send(hello()).await?;
    let mut client = AgentServiceClient::new(tls::connect(&ctl.url, tls).await?);
    let inbound = client.connect(ReceiverStream::new(rx)).await?.into_inner();
    Ok((tx, inbound))
}

#[test]
fn a_connection_that_never_finishes_its_handshake_is_closed() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start_with_limits(base.path(), Some("handshake_timeout = \"1s\""))?;
    let mut socket = TcpStream::connect(&ctl.addr)?;
    socket.set_read_timeout(Some(NEVER))?;
    let mut buf = [0u8; 64];
    // Closed by the controller: end of stream (or a reset), not our read timeout.
    match socket.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "the controller sent data to a silent client"),
        Err(err) => assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset,
            "connection still open: {err}"
        ),
    }
    // The controller goes on serving.
    ctl.cli_ok(&["hosts"])?;
    Ok(())
}

#[test]
fn a_silent_agent_stream_is_closed_and_a_reporting_one_is_not() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start_with_limits(base.path(), Some("agent_idle_timeout = \"2s\""))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let quiet = enrolled(&ctl, "quiet1").await?;
        let busy = enrolled(&ctl, "busy1").await?;
        let (_quiet_tx, mut quiet_in) = open_stream(&ctl, &quiet).await?;
        let (busy_tx, mut busy_in) = open_stream(&ctl, &busy).await?;

        // The busy agent reports every 500 ms for twice the idle timeout: each is acknowledged.
        for seq in 1..=8 {
            busy_tx.send(report(seq)).await?;
            let ack = tokio::time::timeout(NEVER, busy_in.message()).await??;
            assert!(
                matches!(ack.and_then(|m| m.msg), Some(Down::Ack(a)) if a.seq == seq),
                "report {seq} not acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // The quiet one, which said hello and nothing since, was told why it was closed.
        let ended = tokio::time::timeout(NEVER, quiet_in.message()).await?;
        let status = ended.expect_err("the silent stream must end with an error");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status}");
        assert!(
            status.message().contains("no message from the agent"),
            "{status}"
        );
        anyhow::Ok(())
    })
}

#[test]
fn a_second_stream_from_the_same_host_replaces_the_first() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let web = enrolled(&ctl, "web1").await?;
        let (_first_tx, mut first) = open_stream(&ctl, &web).await?;
        let (second_tx, mut second) = open_stream(&ctl, &web).await?;
        let status = tokio::time::timeout(NEVER, first.message())
            .await?
            .expect_err("the first stream must end");
        assert!(status.message().contains("replaced"), "{status}");
        // The second one is served.
        second_tx.send(report(1)).await?;
        let ack = tokio::time::timeout(NEVER, second.message()).await??;
        assert!(matches!(ack.and_then(|m| m.msg), Some(Down::Ack(a)) if a.seq == 1));
        anyhow::Ok(())
    })
}

#[test]
fn a_controller_stops_promptly_with_agents_connected_and_tells_them_why() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let mut ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    // An agent that listens on its stream, as the real one does, and hangs up when it ends.
    let ended = rt.block_on(async {
        let web = enrolled(&ctl, "web1").await?;
        let (tx, mut inbound) = open_stream(&ctl, &web).await?;
        tx.send(report(1)).await?;
        tokio::time::timeout(NEVER, inbound.message()).await??;
        anyhow::Ok(tokio::spawn(async move {
            let ended = loop {
                match inbound.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => break None,
                    Err(status) => break Some(status),
                }
            };
            drop(tx);
            ended
        }))
    })?;
    // Open streams do not hold the controller up (it waits for open calls when stopping).
    let mut proc = ctl.proc.take().expect("serving");
    assert_eq!(proc.terminate()?, Some(0), "{}", proc.log_text());
    let status = rt
        .block_on(async { tokio::time::timeout(NEVER, ended).await })??
        .expect("the stream must end with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
    assert!(status.message().contains("stopping"), "{status}");
    Ok(())
}

#[test]
fn handshakes_beyond_the_cap_wait_their_turn() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start_with_limits(
        base.path(),
        Some("max_handshakes = 1\nhandshake_timeout = \"2s\""),
    )?;
    // A client that starts its handshake and stalls holds the only slot until the timeout (a
    // client that never starts one gives its slot back at once).
    let mut silent = TcpStream::connect(&ctl.addr)?;
    // A TLS record header announcing a 512-byte hello that never comes.
    std::io::Write::write_all(&mut silent, &[0x16, 0x03, 0x01, 0x02, 0x00])?;
    silent.set_read_timeout(Some(NEVER))?;
    let closed = std::thread::spawn(move || {
        let _ = silent.read(&mut [0u8; 16]);
        std::time::Instant::now()
    });
    std::thread::sleep(Duration::from_millis(200));
    // An operator connecting meanwhile is served, after the slot is free: not refused, not cut.
    ctl.cli_ok(&["hosts"])?;
    let served = std::time::Instant::now();
    let closed = closed.join().expect("reader thread");
    assert!(
        closed <= served,
        "the second handshake ran while the first held the only slot"
    );
    Ok(())
}
