//! End to end: a real controller's `/metrics` scraped during a rollout and parsed with the
//! reference OpenMetrics parser (Python's `prometheus_client`): host, stream, rollout and job
//! values follow the fleet, and label values stay bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use boltfleet_tests::cluster::{eventually, row, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::site::Site;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(180);

/// One parsed sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET /metrics` over plain HTTP/1.1: (status line, content type, body).
fn get(addr: &str, path: &str) -> Result<(String, String, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("an HTTP answer")?;
    let status = head.lines().next().unwrap_or_default().to_string();
    let kind = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    Ok((status, kind, body.to_string()))
}

/// Scrapes and parses with the reference parser; fails on text it refuses.
fn scrape(addr: &str) -> Result<Vec<Sample>> {
    let (status, kind, body) = get(addr, "/metrics")?;
    ensure!(status.contains(" 200 "), "{status}");
    ensure!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("python3 (scripts/ensure-deps.sh installs prometheus_client)")?;
    child.stdin.take().unwrap().write_all(body.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "the OpenMetrics parser refused the scrape: {}\n{body}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout)?
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)?;
            Ok(Sample {
                name: v["name"].as_str().unwrap_or_default().to_string(),
                labels: v["labels"].as_object().cloned().unwrap_or_default(),
                value: v["value"].as_f64().unwrap_or(f64::NAN),
            })
        })
        .collect()
}

/// The value of `name` with these labels (others ignored); 0 when absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).and_then(Value::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum()
}

#[test]
fn a_scrape_during_a_rollout_follows_the_fleet() -> Result<()> {
    let base = tempfile::tempdir()?;
    let mut ctl = Controller::start(base.path())?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    ctl.use_metrics(&addr);
    ctl.kill9();
    ctl.serve()?;

    let before = scrape(&addr)?;
    assert_eq!(value(&before, "boltfleet_hosts", &[]), 0.0);
    assert_eq!(value(&before, "boltfleet_scheduler_leader", &[]), 1.0);
    let (status, _, _) = get(&addr, "/other")?;
    assert!(status.contains(" 404 "), "{status}");

    // web2's agent serves its own metrics.
    let agent_addr = format!("127.0.0.1:{}", free_port()?);
    let mut sites = Vec::new();
    for id in ["web1", "web2", "web3"] {
        let mut site = Site::create(base.path(), &ctl, id, PassboltHost::builder("1.3.2"), false)?;
        if id == "web2" {
            site.agent
                .set_top_level(&format!("metrics = {{ listen = {agent_addr:?} }}"))?;
        }
        site.enroll_and_start(&ctl, id, "acme")?;
        sites.push(site);
    }
    eventually("three hosts online and reporting", WAIT, || {
        let report = ctl.report().ok()?;
        ["web1", "web2", "web3"]
            .iter()
            .all(|id| {
                row(&report, id).is_some_and(|r| r["online"] == true && r["version"] == "1.3.2")
            })
            .then_some(())
    })?;
    let fleet = scrape(&addr)?;
    assert_eq!(
        value(
            &fleet,
            "boltfleet_hosts",
            &[("tenant", "acme"), ("version", "1.3.2")]
        ),
        3.0
    );
    assert_eq!(value(&fleet, "boltfleet_hosts_online", &[]), 3.0);
    assert_eq!(value(&fleet, "boltfleet_agent_streams", &[]), 3.0);
    assert!(value(&fleet, "boltfleet_report_ack_seconds_count", &[]) > 0.0);
    assert!(value(&fleet, "boltfleet_store_write_seconds_count", &[]) > 0.0);

    let id = ctl
        .cli_ok(&[
            "rollout",
            "start",
            "--to",
            "1.4.0",
            "--waves",
            "1,100%",
            "--max-parallel",
            "2",
            "--max-failures",
            "0",
            "--soak",
            "1s",
        ])?
        .trim()
        .to_string();
    let during = eventually("the rollout under way, seen by a scrape", WAIT, || {
        let s = scrape(&addr).ok()?;
        (value(&s, "boltfleet_rollouts", &[("state", "running")]) == 1.0).then_some(s)
    })?;
    assert_eq!(
        value(&during, "boltfleet_rollout_hosts", &[]),
        3.0,
        "every host of the rollout counted in one state"
    );
    let done = eventually("the rollout completed, seen by a scrape", WAIT, || {
        let s = scrape(&addr).ok()?;
        (value(&s, "boltfleet_rollouts", &[("state", "completed")]) == 1.0
            && value(&s, "boltfleet_hosts", &[("version", "1.4.0")]) == 3.0)
            .then_some(s)
    })
    .with_context(|| format!("rollout {id}"))?;
    assert_eq!(
        value(
            &done,
            "boltfleet_jobs_total",
            &[("kind", "update"), ("state", "succeeded")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &done,
            "boltfleet_job_duration_seconds_count",
            &[("kind", "update")]
        ),
        3.0
    );
    assert!(
        value(
            &done,
            "boltfleet_job_step_duration_seconds_count",
            &[("step", "migrate")]
        ) >= 3.0
    );
    assert_eq!(
        value(&done, "boltfleet_hosts", &[("version", "1.3.2")]),
        0.0
    );
    assert!(value(&done, "boltfleet_scheduler_ticks_total", &[]) > 0.0);
    // No host id and no free text in any label.
    for s in &done {
        for (k, v) in &s.labels {
            let v = v.as_str().unwrap_or_default();
            assert!(!v.starts_with("web"), "{} {k}={v}", s.name);
        }
    }

    // The agent's own metrics: its stream, its reports, its probe and the job it finished.
    let agent = scrape(&agent_addr)?;
    assert_eq!(value(&agent, "boltfleet_agent_connected", &[]), 1.0);
    assert!(value(&agent, "boltfleet_agent_reports_total", &[]) > 0.0);
    assert!(value(&agent, "boltfleet_agent_probe_seconds_count", &[]) > 0.0);
    assert_eq!(
        value(
            &agent,
            "boltfleet_agent_jobs_total",
            &[("kind", "update"), ("state", "succeeded")]
        ),
        1.0
    );

    // A stopped agent is offline in the next scrape.
    if let Some(agent) = sites[0].agent.proc.as_mut() {
        agent.kill9();
    }
    eventually("one host offline", WAIT, || {
        let s = scrape(&addr).ok()?;
        (value(&s, "boltfleet_hosts_online", &[]) == 2.0).then_some(())
    })?;
    Ok(())
}
