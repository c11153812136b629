//! End to end, a hostile host (a raw tonic client with a real agent certificate) against the
//! real controller: oversized and hostile fields, report floods, rewrites of finished jobs,
//! foreign job ids, poisoned tags, leftover tokens after a revocation, re-enrollment.

use std::time::{Duration, Instant};

use anyhow::Result;
use boltfleet_common::proto::controller_message::Msg as Down;
use boltfleet_common::proto::enroll_service_client::EnrollServiceClient;
use boltfleet_common::proto::{
    EnrollRequest, Health, HealthCheck, Inventory, JobEvent, JobKind, JobState, ListHostsRequest,
};
use boltfleet_common::tls::{self, ClientTls};
use boltfleet_tests::cluster::{row, run, Controller};
use boltfleet_tests::raw_agent::{self, enrolled, inventory, job_event, report, Stream};
use serde_json::Value;

fn json(text: &str) -> Result<Value> {
    Ok(serde_json::from_str(text)?)
}

/// 1,040 reasons of 1,000 characters: the ~1 MB report that blinded every operator.
fn blinding() -> Inventory {
    Inventory {
        health: Some(Health {
            healthy: false,
            reasons: vec!["r".repeat(1000); 1040],
            ..Health::default()
        }),
        ..inventory("4.9.0", "v4.9.0")
    }
}

/// As large as the limits allow, with escape sequences in its free text.
fn largest_allowed() -> Inventory {
    Inventory {
        health: Some(Health {
            healthy: false,
            reasons: (0..64)
                .map(|i| format!("{i} {}", "x".repeat(990)))
                .collect(),
            checks: vec![
                HealthCheck {
                    source: "command".into(),
                    name: "SSL".into(),
                    status: "fail".into(),
                    detail: "d".repeat(1000),
                };
                128
            ],
        }),
        errors: vec!["\x1b[2J\x1b]0;pwned\x07cleared\nINFO forged line".into()],
        ..inventory("4.9.0", "v4.9.0")
    }
}

#[test]
fn messages_beyond_a_limit_are_refused_naming_the_field_and_lists_stay_small() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        for host in ["big1", "big2", "big3"] {
            let tls = enrolled(&ctl, host, "acme").await?;
            // The whole message is over max_agent_message_bytes.
            let mut stream = Stream::open(&ctl, &tls).await?;
            stream.send(report(1, blinding())).await?;
            let status = stream.ended().await;
            assert_eq!(status.code(), tonic::Code::OutOfRange, "{status}");
            assert!(status.message().contains("524288"), "{status}");
            // Within the message size, over one field's count.
            let mut stream = Stream::open(&ctl, &tls).await?;
            let mut many = blinding();
            many.health.as_mut().unwrap().reasons = vec!["r".repeat(100); 100];
            stream.send(report(1, many)).await?;
            let status = stream.ended().await;
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
            let want = "inventory.health.reasons: 100 entries, limit 64";
            assert!(status.message().contains(want), "{status}");
            // What the limits allow is taken, escaped.
            let mut stream = Stream::open(&ctl, &tls).await?;
            stream.report_acked(2, largest_allowed()).await?;
        }
        // A control character in a version is refused, every time; logged once.
        let evil = enrolled(&ctl, "evil1", "evil").await?;
        for seq in 0..5 {
            let mut stream = Stream::open(&ctl, &evil).await?;
            let bad = inventory("4.9.0\x1b]0;pwned\x07", "v4.9.0");
            stream.send(report(seq, bad)).await?;
            let status = stream.ended().await;
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
            assert!(
                status.message().contains("inventory.passbolt_version"),
                "{status}"
            );
        }

        // Lists are pages of small rows.
        let mut admin = raw_agent::admin(&ctl).await?;
        let first = admin
            .list_hosts(ListHostsRequest {
                page_size: 2,
                page_token: String::new(),
            })
            .await?
            .into_inner();
        assert_eq!(first.hosts.len(), 2);
        assert_eq!(first.next_page_token, first.hosts[1].host_id);
        let rest = admin
            .list_hosts(ListHostsRequest {
                page_size: 2,
                page_token: first.next_page_token.clone(),
            })
            .await?
            .into_inner();
        let ids: Vec<&str> = first
            .hosts
            .iter()
            .chain(&rest.hosts)
            .map(|h| h.host_id.as_str())
            .collect();
        assert_eq!(ids, ["big1", "big2", "big3", "evil1"]);
        assert_eq!(rest.next_page_token, "");
        for h in first.hosts.iter().chain(&rest.hosts) {
            assert!(h.summary, "{}", h.host_id);
            let size = prost::Message::encoded_len(h);
            assert!(size < 6 * 1024, "{}: a {size}-byte row", h.host_id);
        }
        anyhow::Ok(())
    })?;

    let hosts = json(&ctl.cli_ok(&["hosts", "--format", "json"])?)?;
    let big = hosts["hosts"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["host_id"] == "big1"))
        .expect("big1 listed")
        .clone();
    let reasons = big["health_reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 6, "5 reasons and a count: {reasons:?}");
    let first = reasons[0].as_str().unwrap();
    assert!(
        !first.contains('\x1b') && first.contains("\\u{1b}"),
        "{first}"
    );
    assert!(!first.contains('\n'), "{first}");
    assert_eq!(
        row(&ctl.report()?, "evil1").unwrap()["version"],
        Value::Null
    );

    // The whole inventory is one `host show` away.
    let full = json(&ctl.cli_ok(&["host", "show", "big1", "--format", "json"])?)?;
    assert_eq!(full["health_reasons"].as_array().unwrap().len(), 65);
    assert_eq!(full["inventory"]["checks"].as_array().unwrap().len(), 128);

    let log = ctl.proc.as_ref().unwrap().log_text();
    let refused_lines = log
        .lines()
        .filter(|l| l.contains("agent message refused") && l.contains("evil1"))
        .count();
    assert_eq!(refused_lines, 1, "five refusals, one log line");
    assert!(
        !log.contains("\x1b]0;pwned"),
        "agent text reached the log raw"
    );
    Ok(())
}

#[test]
fn a_report_flood_is_held_to_the_agents_rate() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let tls = enrolled(&ctl, "flood1", "acme").await?;
        let mut stream = Stream::open(&ctl, &tls).await?;
        let started = Instant::now();
        for seq in 1..=300 {
            stream
                .send(report(seq, inventory("4.9.0", "v4.9.0")))
                .await?;
        }
        // Long enough for the bucket to earn a token back: the next report is taken.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        stream
            .send(report(1000, inventory("4.9.0", "v4.9.0")))
            .await?;
        let mut acked = 0;
        loop {
            match stream.next().await? {
                Some(m) => match m.msg {
                    Some(Down::Ack(a)) if a.seq == 1000 => break,
                    Some(Down::Ack(_)) => acked += 1,
                    _ => {}
                },
                None => anyhow::bail!("stream closed"),
            }
        }
        let secs = started.elapsed().as_secs() + 1;
        // The burst (10), then one a second.
        assert!(acked >= 10, "the burst was refused: {acked}");
        assert!(
            acked <= 10 + secs,
            "{acked} of 300 reports taken in {secs}s"
        );
        anyhow::Ok(())
    })
}

fn update_event(job_id: &str, kind: JobKind, target: &str, state: JobState) -> JobEvent {
    JobEvent {
        job_id: job_id.into(),
        kind: kind as i32,
        target_version: target.into(),
        state: state as i32,
        failed_step: if state == JobState::RolledBack {
            "migrate".into()
        } else {
            String::new()
        },
        ..JobEvent::default()
    }
}

#[test]
fn a_finished_job_is_final_and_another_hosts_job_id_stays_out() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    let (mut web1, mut web2) = rt.block_on(async {
        let mut web1 = Stream::open(&ctl, &enrolled(&ctl, "web1", "acme").await?).await?;
        let mut web2 = Stream::open(&ctl, &enrolled(&ctl, "web2", "globex").await?).await?;
        web1.report_acked(1, inventory("4.9.0", "v4.9.1")).await?;
        web2.report_acked(1, inventory("4.9.0", "v4.9.1")).await?;
        anyhow::Ok((web1, web2))
    })?;
    let job = ctl.cli_ok(&["host", "update", "web1", "--to", "4.9.1"])?;
    let job = job.trim().to_string();
    rt.block_on(async {
        loop {
            if let Some(Down::RunJob(run)) = web1.next().await?.and_then(|m| m.msg) {
                assert_eq!(run.job_id, job);
                break;
            }
        }
        use JobKind::{Rollback, Update};
        use JobState::{RolledBack, Running, Succeeded};
        web1.send(job_event(update_event(&job, Update, "4.9.1", RolledBack)))
            .await?;
        // Later words from the agent: every one of them must be dropped.
        for (kind, target, state) in [
            (Update, "4.9.1", Succeeded),
            (Update, "4.9.1", Running),
            (Rollback, "9.9.9", Succeeded),
        ] {
            web1.send(job_event(update_event(&job, kind, target, state)))
                .await?;
        }
        web2.send(job_event(update_event(&job, Update, "4.9.1", Succeeded)))
            .await?;
        web2.send(raw_agent::hello(Some(update_event(
            &job, Update, "4.9.1", Running,
        ))))
        .await?;
        // Messages of one stream are handled in order: after these acks, all was read.
        web1.report_acked(2, inventory("4.9.0", "v4.9.1")).await?;
        web2.report_acked(2, inventory("4.9.0", "v4.9.1")).await?;
        anyhow::Ok(())
    })?;
    let shown = json(&ctl.cli_ok(&["job", "show", &job, "--format", "json"])?)?;
    assert_eq!(shown["state"], "rolled_back", "{shown}");
    assert_eq!(shown["kind"], "update");
    assert_eq!(shown["target"], "4.9.1");
    let report = ctl.report()?;
    assert_eq!(
        row(&report, "web1").unwrap()["last_job"]["state"],
        "rolled_back"
    );
    assert_eq!(
        row(&report, "web2").unwrap()["last_job"],
        Value::Null,
        "foreign job shown"
    );
    let audit = json(&ctl.cli_ok(&["audit", "--format", "json"])?)?;
    let finishes = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "job.finish")
        .count();
    assert_eq!(finishes, 1, "{audit}");
    // Not blocked by a job the agent tried to reopen.
    ctl.cli_ok(&["host", "update", "web1", "--to", "4.9.1"])?;
    Ok(())
}

#[test]
fn one_host_alone_cannot_set_latest_and_an_operator_can() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    let _streams = rt.block_on(async {
        let mut streams = Vec::new();
        for (host, tenant, tag) in [
            ("a1", "acme", "v4.9.1"),
            ("b1", "globex", "v4.9.1"),
            ("evil1", "evil", "v4.99.0"),
            ("evil2", "evil", "v4.99.0"),
        ] {
            let mut s = Stream::open(&ctl, &enrolled(&ctl, host, tenant).await?).await?;
            s.report_acked(1, inventory("4.9.0", tag)).await?;
            streams.push(s);
        }
        anyhow::Ok(streams)
    })?;
    let report = ctl.report()?;
    assert_eq!(report["latest"], "4.9.1", "{}", report["latest_source"]);
    assert_eq!(report["latest_source"], "hosts (2 hosts, 2 tenants)");
    assert_eq!(row(&report, "a1").unwrap()["update"], "patch");

    ctl.cli_ok(&["release", "latest", "4.10.0"])?;
    ctl.cli_ok(&["release", "latest", "4.9.0", "--tenant", "acme"])?;
    let report = ctl.report()?;
    assert_eq!(
        (report["latest"].as_str(), report["latest_source"].as_str()),
        (Some("4.10.0"), Some("operator"))
    );
    assert_eq!(row(&report, "b1").unwrap()["update"], "minor");
    assert_eq!(
        row(&report, "a1").unwrap()["update"],
        Value::Null,
        "acme's own latest"
    );
    ctl.cli_ok(&["release", "latest", "--clear"])?;
    assert_eq!(ctl.report()?["latest"], "4.9.1");
    Ok(())
}

/// Enrolls through the join-token door with a fresh key; the certificate, or the refusal.
async fn enroll_with(
    ctl: &Controller,
    token: &str,
    host: &str,
) -> Result<ClientTls, tonic::Status> {
    let identity = boltfleet_common::identity::Identity::Agent(host.parse().unwrap());
    let (csr, key) = boltfleet_common::pki::new_csr(&identity).unwrap();
    let pinned = ClientTls::Pinned {
        pin: ctl.pin.clone(),
    };
    let channel = tls::connect(&ctl.url, &pinned).await.unwrap();
    let response = EnrollServiceClient::new(channel)
        .enroll(EnrollRequest {
            token: token.into(),
            csr_pem: csr,
        })
        .await?
        .into_inner();
    Ok(ClientTls::Mutual {
        ca_pem: response.ca_pem,
        cert_pem: response.certificate_pem,
        key_pem: key,
    })
}

#[test]
fn revocation_voids_leftover_tokens_and_enrolling_again_cuts_the_old_stream() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    let (first, second, leftover) = (
        ctl.token("web1", "acme")?,
        ctl.token("web1", "acme")?,
        ctl.token("web1", "acme")?,
    );
    rt.block_on(async {
        let old = enroll_with(&ctl, &first, "web1").await?;
        let mut old_stream = Stream::open(&ctl, &old).await?;
        old_stream.report_acked(1, inventory("4.9.0", "")).await?;
        // Someone enrolls web1 again (a new key): the old key holder is cut at once.
        let _new = enroll_with(&ctl, &second, "web1").await?;
        let status = old_stream.ended().await;
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
        anyhow::Ok(())
    })?;
    ctl.cli_ok(&["host", "revoke", "web1"])?;
    rt.block_on(async {
        let refused = enroll_with(&ctl, &leftover, "web1").await;
        let status = refused.expect_err("a token from before the revocation enrolled");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
        anyhow::Ok(())
    })?;
    assert_eq!(row(&ctl.report()?, "web1").unwrap()["revoked"], true);

    // Forget: refused for a live host, done for a revoked one.
    let fresh = ctl.token("web1", "acme")?;
    rt.block_on(async { enroll_with(&ctl, &fresh, "web1").await })?;
    assert_eq!(row(&ctl.report()?, "web1").unwrap()["revoked"], false);
    let out = run(ctl.cli().args(["host", "forget", "web1"]))?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not revoked"));
    ctl.cli_ok(&["host", "revoke", "web1"])?;
    ctl.cli_ok(&["host", "forget", "web1"])?;
    assert!(row(&ctl.report()?, "web1").is_none());
    Ok(())
}
