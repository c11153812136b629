//! Presence on etcd: which controller holds which host's stream, and which controllers are up.
//!
//! Each controller puts, under its one lease (the campaign's, [`super::Campaign::lease`]):
//! - `<prefix>_presence/hosts/<host>` = its name, for each agent stream it holds;
//! - `<prefix>_presence/controllers/<name>` = a [`ControllerInfo`], every [`EVERY`].
//!
//! When a controller dies, its lease expires and etcd deletes every key under it: its hosts are
//! offline for the others within the lease's TTL. A new lease (after one was lost) gets every
//! key put again. A stream that ends deletes its host's key only while the key still names this
//! controller: when the agent has already reconnected to another, that one's key stays.
//!
//! The calls are queued ([`Presence::add`], [`Presence::remove`] never wait) and written in
//! transactions of up to [`super::LIMIT`] keys by a task on the engine's thread; what etcd did
//! not take (down, no lease yet) is kept and tried again.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, KvClient, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::bridge::retried;
use super::feed::PRESENCE_HOSTS;
use super::{EtcdEngine, LIMIT};
use crate::state::engine::EngineError;

const PRESENCE_CONTROLLERS: &[u8] = b"_presence/controllers/";

/// How often a controller's own key is written again (its `seen` and agent count).
pub const EVERY: Duration = Duration::from_secs(5);

/// How long queued host keys wait to be written together.
const GATHER: Duration = Duration::from_millis(50);

/// What a controller says of itself (`boltfleet cluster status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerInfo {
    pub name: String,
    /// The address agents and operators reach it at, as it listens.
    pub address: String,
    /// Agent streams it holds.
    pub agents: u64,
    /// Unix seconds it started and it last wrote this.
    pub started: i64,
    pub seen: i64,
    /// Its build.
    pub version: String,
}

enum Command {
    Add(String),
    Remove(String),
}

/// The handle of a controller's presence task; dropping it stops the task.
pub struct Presence {
    commands: mpsc::UnboundedSender<Command>,
}

impl Presence {
    /// This controller now holds `host`'s stream.
    pub fn add(&self, host: &str) {
        let _ = self.commands.send(Command::Add(host.to_string()));
    }

    /// This controller no longer holds `host`'s stream.
    pub fn remove(&self, host: &str) {
        let _ = self.commands.send(Command::Remove(host.to_string()));
    }
}

impl EtcdEngine {
    /// Starts this controller's presence under the leases `lease` publishes. `info` is
    /// called for each write of the controller's own key.
    pub fn presence(
        &self,
        name: &str,
        lease: watch::Receiver<Option<i64>>,
        info: impl Fn() -> ControllerInfo + Send + 'static,
    ) -> Presence {
        let (commands, rx) = mpsc::unbounded_channel();
        let task = Task {
            kv: self.inner.kv.clone(),
            attempts: self.inner.attempts,
            hosts_key: self.inner.key(&[PRESENCE_HOSTS]),
            own_key: self.inner.key(&[PRESENCE_CONTROLLERS, name.as_bytes()]),
            name: name.to_string(),
            held: BTreeSet::new(),
            to_put: BTreeSet::new(),
            to_delete: BTreeSet::new(),
        };
        self.inner.bridge.spawn(task.run(rx, lease, info));
        Presence { commands }
    }

    /// Every controller's own key, by name.
    pub fn controllers(&self) -> Result<Vec<ControllerInfo>, EngineError> {
        let key = self.inner.key(&[PRESENCE_CONTROLLERS]);
        let values = self.inner.call("read the controllers", move |mut kv| {
            let key = key.clone();
            async move {
                let got = kv.get(key, Some(GetOptions::new().with_prefix())).await?;
                Ok(got
                    .kvs()
                    .iter()
                    .map(|kv| kv.value().to_vec())
                    .collect::<Vec<_>>())
            }
        })?;
        Ok(values
            .iter()
            .filter_map(|v| serde_json::from_slice(v).ok())
            .collect())
    }
}

struct Task {
    kv: KvClient,
    /// Tries of one request while a member refuses connections ([`retried`]).
    attempts: usize,
    hosts_key: Vec<u8>,
    own_key: Vec<u8>,
    name: String,
    /// Hosts whose streams this controller holds.
    held: BTreeSet<String>,
    /// Keys etcd has not taken yet.
    to_put: BTreeSet<String>,
    to_delete: BTreeSet<String>,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut lease: watch::Receiver<Option<i64>>,
        info: impl Fn() -> ControllerInfo,
    ) {
        let mut every = tokio::time::interval(EVERY);
        let mut retry = tokio::time::interval(GATHER * 10);
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    self.take(command);
                    // Gather what else comes in a moment, then write it together.
                    tokio::time::sleep(GATHER).await;
                    while let Ok(command) = commands.try_recv() {
                        self.take(command);
                    }
                }
                changed = lease.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // A new lease: nothing of the old one's keys is left.
                    self.to_put.extend(self.held.iter().cloned());
                    self.to_delete.clear();
                    every.reset_immediately();
                }
                _ = every.tick() => {
                    let id = *lease.borrow();
                    if let Some(id) = id {
                        if let Err(err) = self.put_own(id, &info()).await {
                            debug!(error = %err, "etcd: controller presence not written");
                        }
                    }
                }
                _ = retry.tick() => {}
            }
            let id = *lease.borrow();
            if let Some(id) = id {
                if let Err(err) = self.write(id).await {
                    warn!(error = %err, pending = self.to_put.len() + self.to_delete.len(), "etcd: host presence not written; again");
                }
            }
        }
    }

    fn take(&mut self, command: Command) {
        match command {
            Command::Add(host) => {
                self.to_delete.remove(&host);
                self.held.insert(host.clone());
                self.to_put.insert(host);
            }
            Command::Remove(host) => {
                self.to_put.remove(&host);
                if self.held.remove(&host) {
                    self.to_delete.insert(host);
                }
            }
        }
    }

    fn host_key(&self, host: &str) -> Vec<u8> {
        [self.hosts_key.as_slice(), host.as_bytes()].concat()
    }

    /// Writes what is queued: puts in transactions of up to the batch limit, each delete
    /// compared with this controller's name.
    async fn write(&mut self, lease: i64) -> Result<(), etcd_client::Error> {
        while !self.to_put.is_empty() {
            let chunk: Vec<String> = self.to_put.iter().take(LIMIT.ops).cloned().collect();
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|host| {
                    let options = PutOptions::new().with_lease(lease);
                    TxnOp::put(self.host_key(host), self.name.clone(), Some(options))
                })
                .collect();
            self.txn(Txn::new().and_then(ops)).await?;
            for host in chunk {
                self.to_put.remove(&host);
            }
        }
        while let Some(host) = self.to_delete.first().cloned() {
            let key = self.host_key(&host);
            let mine = Compare::value(key.clone(), CompareOp::Equal, self.name.clone());
            let txn = Txn::new().when([mine]).and_then([TxnOp::delete(key, None)]);
            self.txn(txn).await?;
            self.to_delete.remove(&host);
        }
        Ok(())
    }

    async fn put_own(
        &mut self,
        lease: i64,
        info: &ControllerInfo,
    ) -> Result<(), etcd_client::Error> {
        let value = serde_json::to_vec(info).unwrap_or_default();
        let key = &self.own_key;
        retried(self.kv.clone(), self.attempts, |mut kv| {
            let (key, value) = (key.clone(), value.clone());
            let options = PutOptions::new().with_lease(lease);
            async move { kv.put(key, value, Some(options)).await.map(drop) }
        })
        .await
    }

    /// One transaction, tried on another member while one refuses connections.
    async fn txn(&self, txn: Txn) -> Result<(), etcd_client::Error> {
        retried(self.kv.clone(), self.attempts, |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await.map(drop) }
        })
        .await
    }
}
