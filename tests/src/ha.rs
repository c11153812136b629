//! Helpers of the tests with several controllers on one etcd prefix: who leads, as etcd says,
//! the update jobs per host as stored, the revision each key of a tree was last written at,
//! and who holds each host's stream (an agent told every controller's URL is
//! [`crate::cluster::point_at`], a rollout's status [`crate::rollouts`]).

use std::collections::BTreeMap;

use anyhow::Result;
use boltfleet_common::proto::JobKind;
use boltfleet_controller::state::etcd_engine::{EtcdEngine, EtcdOptions, TIMEOUT};
use boltfleet_controller::state::State;

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

/// A key as read from etcd: the key, its value and the revision it was last written at.
type Stored = (Vec<u8>, Vec<u8>, i64);

/// Every key under `keys` in `cluster`.
fn read_prefix(cluster: &EtcdCluster, keys: &str) -> Result<Vec<Stored>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect(cluster.endpoints(), None).await?;
        let options = etcd_client::GetOptions::new().with_prefix();
        let got = client.get(keys, Some(options)).await?;
        Ok(got
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
            .collect())
    })
}

/// The revision at which each key of `tree` under `prefix` was last written, by key: a write
/// changes it even when it puts the same bytes again.
pub fn revisions(
    cluster: &EtcdCluster,
    prefix: &str,
    tree: &str,
) -> Result<BTreeMap<Vec<u8>, i64>> {
    let keys = read_prefix(cluster, &format!("{prefix}{tree}/"))?;
    Ok(keys.into_iter().map(|(key, _, at)| (key, at)).collect())
}

/// Which controller holds each host's stream, as the presence keys under `prefix` say.
pub fn presence(cluster: &EtcdCluster, prefix: &str) -> Result<BTreeMap<String, String>> {
    let hosts = format!("{prefix}_presence/hosts/");
    let keys = read_prefix(cluster, &hosts)?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(keys
        .into_iter()
        .map(|(key, holder, _)| (text(&key[hosts.len()..]), text(&holder)))
        .collect())
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
