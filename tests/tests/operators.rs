//! End to end: what operators see and may do. A hostile host's text listed by the real CLI
//! reaches the terminal escaped; operator roles and tenant scopes, from the certificate, are
//! enforced by a real controller; a rollout of a tenant under the two-person rule waits for a
//! second operator's approval.

use std::time::Duration;

use anyhow::Result;
use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::new_csr;
use boltfleet_common::proto::admin_service_client::AdminServiceClient;
use boltfleet_common::proto::agent_message::Msg as Up;
use boltfleet_common::proto::agent_service_client::AgentServiceClient;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::{
    AgentMessage, EnrollHostsRequest, Hello, HostCsr, Inventory, Report,
};
use boltfleet_common::tls::{self, ClientTls};
use boltfleet_tests::cluster::Controller;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Far longer than anything awaited here takes.
const NEVER: Duration = Duration::from_secs(60);

fn read(path: impl AsRef<std::path::Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Enrolls `host` in `tenant` through the operator's bulk enrollment; returns its identity.
async fn enrolled(ctl: &Controller, host: &str, tenant: &str) -> Result<ClientTls> {
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

/// Plays the agent of a host: hello, then one report of `inventory`, acknowledged.
async fn report_once(ctl: &Controller, tls: &ClientTls, inventory: Inventory) -> Result<()> {
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
            Some(Down::Ack(ack)) if ack.seq == 1 => return Ok(()),
            Some(_) => continue,
            None => anyhow::bail!("stream ended before the report was acknowledged"),
        }
    }
}

/// Bytes a terminal would act on: every control but the line feed, and the bidi overrides.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)))
        .collect()
}

#[test]
fn a_hostile_hosts_text_reaches_the_cli_escaped() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let tls = enrolled(&ctl, "evil1", "acme").await?;
        let inventory = Inventory {
            passbolt_version: "1.6.9".into(),
            errors: vec![
                "=cmd|' /C calc'!A0".into(),
                "\x1b[2J\x1b]0;owned\x07disk check failed".into(),
                "ok\nweb-forged  acme  1.6.10  -  online".into(),
            ],
            ..Inventory::default()
        };
        report_once(&ctl, &tls, inventory).await
    })?;

    for args in [&["hosts"][..], &["report"], &["report", "--format", "csv"]] {
        let out = ctl.cli_ok(args)?;
        assert!(
            out.contains("evil1"),
            "{args:?}: the host is listed:\n{out}"
        );
        assert!(out.contains("owned"), "{args:?}: its text is shown:\n{out}");
        assert_eq!(raw_controls(&out), [], "{args:?}:\n{out}");
        assert!(
            !out.lines().any(|l| l.starts_with("web-forged")),
            "{args:?}: a forged row:\n{out}"
        );
    }
    let csv = ctl.cli_ok(&["report", "--format", "csv"])?;
    assert_eq!(csv.lines().count(), 2, "a header and one host:\n{csv}");
    let row = csv.lines().nth(1).unwrap();
    for cell in row.split(',') {
        let cell = cell.trim_start_matches('"');
        assert!(
            !cell.starts_with(['=', '+', '@']),
            "formula cell {cell:?} in {row}"
        );
    }
    assert!(row.contains(",'=cmd|"), "the reasons cell is text: {row}");
    // JSON keeps the host's words exactly, for scripts.
    let report = ctl.report()?;
    let row = boltfleet_tests::cluster::row(&report, "evil1").expect("evil1 in the report");
    let reasons: Vec<&str> = row["health_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("=cmd|")),
        "{reasons:?}"
    );
    Ok(())
}
