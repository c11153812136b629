//! Helpers of the tests with several controllers on one etcd prefix: who leads, as etcd says;
//! an agent told every controller's URL; a rollout's status and the update jobs per host as
//! stored.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Result};
use boltfleet_common::proto::JobKind;
use boltfleet_controller::state::etcd_engine::{EtcdEngine, EtcdOptions, TIMEOUT};
use boltfleet_controller::state::State;
use serde_json::Value;

use crate::cluster::{eventually, Agent, Controller};
use crate::etcd::EtcdCluster;

/// The engine of `cluster` under `prefix`, as a controller opens it.
pub fn engine(cluster: &EtcdCluster, prefix: &str) -> Result<EtcdEngine> {
    Ok(EtcdEngine::open(&EtcdOptions {
        endpoints: cluster.endpoints(),
        prefix: prefix.into(),
        tls: None,
        timeout: TIMEOUT,
    })?)
}

/// Who holds the scheduler's election under `prefix`, read from etcd.
pub fn leader(cluster: &EtcdCluster, prefix: &str) -> Option<String> {
    engine(cluster, prefix).ok()?.leader_name().ok()?
}

/// Rewrites the agent's `controller` line as the list `urls`.
pub fn point_at(agent: &Agent, urls: &[&str]) -> Result<()> {
    let text = std::fs::read_to_string(&agent.config)?;
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    ensure!(first.starts_with("controller = "), "{first}");
    let list: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    std::fs::write(
        &agent.config,
        format!("controller = [{}]\n{rest}", list.join(", ")),
    )?;
    Ok(())
}

/// `boltfleet rollout status ID --format json`, parsed.
pub fn status(ctl: &Controller, id: &str) -> Result<Value> {
    Ok(serde_json::from_str(
        &ctl.cli_ok(&["rollout", "status", id, "--format", "json"])?,
    )?)
}

/// Polls the rollout's status on `ctl` until `check` holds; the error carries the last one.
pub fn wait_status(
    ctl: &Controller,
    id: &str,
    what: &str,
    wait: Duration,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let mut last = Value::Null;
    eventually(what, wait, || {
        let s = status(ctl, id).ok()?;
        last = s.clone();
        check(&s).then_some(s)
    })
    .map_err(|e| e.context(format!("last status: {last}")))
}

/// How many update jobs each host was given, counted from the jobs stored in etcd (the audit
/// entry of a job start can be lost to a `kill -9` right after the job was written).
pub fn updates_per_host(cluster: &EtcdCluster, prefix: &str) -> Result<BTreeMap<String, usize>> {
    let state = State::on(std::sync::Arc::new(engine(cluster, prefix)?))?;
    let mut counts = BTreeMap::new();
    for (_, job) in state.jobs().list()? {
        if job
            .request
            .as_ref()
            .is_some_and(|r| r.kind() == JobKind::Update)
        {
            *counts.entry(job.host_id.clone()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}
