//! Helpers of the tests with several controllers on one etcd prefix: who leads, as etcd says,
//! and the update jobs per host as stored (an agent told every controller's URL is
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
