//! End to end, the controller's door under abuse: a flood of idle connections from one
//! address, connections without a certificate that stay silent, a controller that never
//! finishes the TLS handshake (the CLI's deadline), and two agents with one identity.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use anyhow::Result;
use boltfleet_common::proto::enroll_service_client::EnrollServiceClient;
use boltfleet_common::proto::EnrollRequest;
use boltfleet_common::tls::{self, ClientTls};
use boltfleet_tests::cluster::{eventually, row, run, Controller};
use boltfleet_tests::raw_agent::{enrolled, inventory, Stream};

#[test]
fn a_flood_of_idle_connections_keeps_nobody_else_out() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    let agent = rt.block_on(enrolled(&ctl, "web1", "acme"))?;
    let addr: std::net::SocketAddr = ctl.addr.parse()?;
    // 600 connections that never start their handshake, re-opened as soon as they are
    // closed: 300 from 127.0.0.2, 300 from ten other addresses (more, together, than the
    // shared handshake slots).
    let connects = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..600)
        .map(|i| {
            let source = if i % 2 == 0 {
                "127.0.0.2".to_string()
            } else {
                format!("127.0.0.{}", 3 + i % 20)
            };
            let connects = connects.clone();
            rt.spawn(async move {
                loop {
                    let socket = tokio::net::TcpSocket::new_v4()?;
                    socket.bind(format!("{source}:0").parse()?)?;
                    let mut idle = socket.connect(addr).await?;
                    connects.fetch_add(1, Ordering::Relaxed);
                    let _ = idle.read(&mut [0u8; 16]).await;
                }
                #[allow(unreachable_code)]
                anyhow::Ok(())
            })
        })
        .collect();
    eventually("the flood to be under way", Duration::from_secs(60), || {
        (connects.load(Ordering::Relaxed) >= 600).then_some(())
    })?;
    let started = Instant::now();
    rt.block_on(async {
        let mut stream = Stream::open(&ctl, &agent).await?;
        stream.report_acked(1, inventory("4.9.0", "")).await
    })?;
    let agent_in = started.elapsed();
    let started = Instant::now();
    let hosts = ctl.cli_ok(&["hosts"])?;
    let cli_in = started.elapsed();
    assert!(hosts.contains("web1"));
    assert!(
        agent_in < Duration::from_secs(2),
        "agent served in {agent_in:?}"
    );
    assert!(
        cli_in < Duration::from_secs(2),
        "hosts answered in {cli_in:?}"
    );
    for task in &flood {
        task.abort();
    }
    let log = ctl.proc.as_ref().unwrap().log_text();
    let refused = log
        .lines()
        .filter(|l| l.contains("over the per-address limit"))
        .count();
    assert!(
        (1..=21).contains(&refused),
        "refusals are logged once per interval per address: {refused} lines"
    );
    Ok(())
}

#[test]
fn a_connection_without_a_certificate_is_closed_at_its_deadline() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start_with_limits(
        base.path(),
        Some("max_connections_per_address = 2\nanonymous_connection_timeout = \"2s\""),
    )?;
    let rt = tokio::runtime::Runtime::new()?;
    // Two enrollment connections that made one call and then stay silent hold the address's
    // two slots...
    let _silent = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..2 {
            let pinned = ClientTls::Pinned {
                pin: ctl.pin.clone(),
            };
            let mut client = EnrollServiceClient::new(tls::connect(&ctl.url, &pinned).await?);
            let request = EnrollRequest {
                token: "bf1.web9.00".into(),
                csr_pem: String::new(),
            };
            assert!(client.enroll(request).await.is_err(), "a bogus token");
            held.push(client);
        }
        anyhow::Ok(held)
    })?;
    let out = run(ctl.cli().arg("hosts"))?;
    assert!(
        !out.status.success(),
        "the address is full: the limit did not act"
    );
    // ...until their deadline closes them.
    eventually(
        "the silent connections to be closed",
        Duration::from_secs(20),
        || ctl.cli_ok(&["hosts"]).ok(),
    )?;
    Ok(())
}

#[test]
fn the_cli_gives_up_on_a_handshake_that_never_comes() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let stall = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("https://{}", stall.local_addr()?);
    let started = Instant::now();
    let out = run(ctl.cli().env("BOLTFLEET_CONTROLLER", &url).arg("hosts"))?;
    let took = started.elapsed();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no TLS handshake within 10s"), "{stderr}");
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
    drop(stall);
    Ok(())
}

#[test]
fn two_agents_with_one_identity_are_marked_as_flapping() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let twin = enrolled(&ctl, "web1", "acme").await?;
        let calm = enrolled(&ctl, "web2", "acme").await?;
        let mut other = Stream::open(&ctl, &calm).await?;
        other.report_acked(1, inventory("4.9.0", "")).await?;
        // Two holders of web1's key take the stream from each other, again and again.
        let mut a = Stream::open(&ctl, &twin).await?;
        a.report_acked(1, inventory("4.9.0", "")).await?;
        for round in 0..4 {
            let mut b = Stream::open(&ctl, &twin).await?;
            b.report_acked(1, inventory("4.9.0", "")).await?;
            assert!(
                a.ended().await.message().contains("replaced"),
                "round {round}"
            );
            a = Stream::open(&ctl, &twin).await?;
            a.report_acked(1, inventory("4.9.0", "")).await?;
            assert!(
                b.ended().await.message().contains("replaced"),
                "round {round}"
            );
        }
        anyhow::Ok(())
    })?;
    let report = ctl.report()?;
    let flapping = row(&report, "web1").unwrap();
    assert_eq!(
        flapping["health_reasons"][0],
        "two agents with one identity?"
    );
    assert_eq!(flapping["healthy"], false);
    let calm = row(&report, "web2").unwrap();
    assert_eq!(calm["healthy"], true, "{calm}");
    assert!(ctl
        .cli_ok(&["hosts"])?
        .contains("two agents with one identity?"));
    Ok(())
}
