//! The scheduler's election on etcd: each controller holds a lease (kept alive) and campaigns
//! for `<prefix>_leader`, a key created only when absent and bound to the lease. The one that
//! created it leads until its lease ends; etcd then deletes the key and another creates it.
//!
//! Leadership is published as the [`Fence`] of the key's creation revision, which the
//! engine's fenced writes check ([`crate::state::fence`]). A controller steps down by itself
//! when its keep-alives have gone unanswered for most of the lease's TTL (a member lost, the
//! process paused past it): it says so before etcd may hand the key to another, and if it was
//! paused longer still, its writes no longer match the key anyway.

use std::time::{Duration, Instant};

use etcd_client::{
    Compare, CompareOp, KvClient, LeaseClient, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp, TxnOpResponse,
};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::bridge::retried;
use super::EtcdEngine;
use crate::state::fence::Fence;

/// The leader key, under the prefix (names starting with `_` are the engine's own).
pub(super) const LEADER: &[u8] = b"_leader";

/// The TTL of a controller's lease: how long a dead leader keeps the scheduler.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// How often keep-alives are sent and an absent leader key is tried.
const EVERY: Duration = Duration::from_secs(1);

/// This controller's candidacy, campaigning as long as it lives; dropping it steps down and
/// revokes the lease (so that another takes over at once, not after the TTL).
pub struct Campaign {
    leader: watch::Receiver<Option<Fence>>,
    lease: watch::Receiver<Option<i64>>,
    _stop: oneshot::Sender<()>,
}

impl Campaign {
    /// `Some` (the fence of its writes) while this controller leads.
    pub fn leadership(&self) -> watch::Receiver<Option<Fence>> {
        self.leader.clone()
    }

    /// The controller's lease while it holds one (kept alive by the campaign): what the
    /// controller's presence keys are put under, so that they go when it does.
    pub fn lease(&self) -> watch::Receiver<Option<i64>> {
        self.lease.clone()
    }
}

impl EtcdEngine {
    /// Starts campaigning as `name` with a lease of `ttl` (whole seconds, at least 2).
    pub fn campaign(&self, name: &str, ttl: Duration) -> Campaign {
        let (tx, leader) = watch::channel(None);
        let (lease_tx, lease) = watch::channel(None);
        let (stop, stopped) = oneshot::channel();
        let candidate = Candidate {
            kv: self.inner.kv.clone(),
            lease: self.inner.lease.clone(),
            attempts: self.inner.attempts,
            key: self.inner.key(&[LEADER]),
            name: name.to_string(),
            ttl: ttl.max(Duration::from_secs(2)),
            tx,
            lease_tx,
            lease_id: None,
        };
        self.inner.bridge.spawn(candidate.run(stopped));
        Campaign {
            leader,
            lease,
            _stop: stop,
        }
    }
}

struct Candidate {
    kv: KvClient,
    lease: LeaseClient,
    /// Tries of one request while a member refuses connections ([`retried`]).
    attempts: usize,
    key: Vec<u8>,
    name: String,
    ttl: Duration,
    tx: watch::Sender<Option<Fence>>,
    /// The lease held now, for presence.
    lease_tx: watch::Sender<Option<i64>>,
    lease_id: Option<i64>,
}

/// Why a lease ended for this controller.
enum Ended {
    /// No keep-alive answered for most of the TTL, or etcd said it expired.
    Lost,
    Etcd(etcd_client::Error),
}

impl From<etcd_client::Error> for Ended {
    fn from(err: etcd_client::Error) -> Self {
        Self::Etcd(err)
    }
}

impl Candidate {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        tokio::select! {
            _ = &mut stopped => {}
            () = self.serve() => {}
        }
        self.step_down("stopping");
        self.lease_tx.send_replace(None);
        if let Some(id) = self.lease_id.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.lease.revoke(id)).await;
        }
    }

    async fn serve(&mut self) {
        loop {
            let ended = self.hold_lease().await;
            let why = match &ended {
                Ended::Lost => "lease lost".to_string(),
                Ended::Etcd(err) => format!("etcd: {err}"),
            };
            self.step_down(&why);
            self.lease_tx.send_replace(None);
            self.lease_id = None;
            tokio::time::sleep(EVERY).await;
        }
    }

    fn step_down(&self, why: &str) {
        if self.tx.send_replace(None).is_some() {
            warn!(name = %self.name, why, "scheduler leadership lost");
        }
    }

    /// Holds one lease while it lasts, campaigning with it.
    async fn hold_lease(&mut self) -> Ended {
        let asked = Instant::now();
        let secs = i64::try_from(self.ttl.as_secs()).unwrap_or(10);
        let grant = retried(self.lease.clone(), self.attempts, |mut lease| async move {
            lease.grant(secs, None).await
        });
        let id = match grant.await {
            Ok(granted) => granted.id(),
            Err(err) => return err.into(),
        };
        self.lease_id = Some(id);
        self.lease_tx.send_replace(Some(id));
        let mut acked = asked;
        loop {
            let opened = retried(self.lease.clone(), self.attempts, |mut lease| async move {
                lease.keep_alive(id).await
            });
            match opened.await {
                Ok((keeper, stream)) => match self.keep(id, keeper, stream, &mut acked).await {
                    Ended::Lost => return Ended::Lost,
                    Ended::Etcd(err) => warn!(error = %err, "lease keep-alive broken; again"),
                },
                Err(err) => warn!(error = %err, "lease keep-alive not opened; again"),
            }
            if self.lapsed(acked) {
                return Ended::Lost;
            }
            tokio::time::sleep(EVERY / 4).await;
        }
    }

    /// Whether the lease may have ended: no keep-alive answered for 4/5 of the TTL.
    fn lapsed(&self, acked: Instant) -> bool {
        acked.elapsed() >= self.ttl * 4 / 5
    }

    async fn keep(
        &mut self,
        id: i64,
        mut keeper: LeaseKeeper,
        mut stream: LeaseKeepAliveStream,
        acked: &mut Instant,
    ) -> Ended {
        let mut every = tokio::time::interval(EVERY);
        let mut sent = Instant::now();
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if self.lapsed(*acked) {
                        return Ended::Lost;
                    }
                    sent = Instant::now();
                    if let Err(err) = keeper.keep_alive().await {
                        return err.into();
                    }
                    if let Err(err) = self.campaign(id).await {
                        warn!(error = %err, "campaign failed; again");
                    }
                }
                answer = stream.message() => match answer {
                    Ok(Some(answer)) if answer.ttl() > 0 => *acked = sent,
                    Ok(Some(_)) => return Ended::Lost,
                    Ok(None) => return Ended::Etcd(etcd_client::Error::WatchError("keep-alive stream ended".into())),
                    Err(err) => return err.into(),
                },
            }
        }
    }

    /// Leading: checks that the leader key is still the one this controller created (it
    /// steps down when not). Not leading: tries to create it.
    async fn campaign(&mut self, id: i64) -> Result<(), etcd_client::Error> {
        let leading = self.tx.borrow().as_ref().map(|f| f.revision);
        let Some(revision) = leading else {
            return self.try_lead(id).await;
        };
        let key = &self.key;
        let got = retried(self.kv.clone(), self.attempts, |mut kv| async move {
            kv.get(key.clone(), None).await
        })
        .await?;
        let now = got.kvs().first().map(|kv| kv.create_revision());
        if now != Some(revision) {
            self.step_down("the leader key is not this controller's any more");
        }
        Ok(())
    }

    /// Creates the leader key under lease `id` if it is absent; leads when it did (or when
    /// the key is this lease's already).
    async fn try_lead(&mut self, id: i64) -> Result<(), etcd_client::Error> {
        let put = TxnOp::put(
            self.key.clone(),
            self.name.clone(),
            Some(PutOptions::new().with_lease(id)),
        );
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([put])
            .or_else([TxnOp::get(self.key.clone(), None)]);
        let answer = retried(self.kv.clone(), self.attempts, |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?;
        let revision = if answer.succeeded() {
            answer.header().map(|h| h.revision())
        } else {
            answer.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(got) => got
                    .kvs()
                    .first()
                    .filter(|kv| kv.lease() == id)
                    .map(|kv| kv.create_revision()),
                _ => None,
            })
        };
        if let Some(revision) = revision {
            info!(name = %self.name, revision, "leading the scheduler");
            self.tx.send_replace(Some(Fence {
                key: self.key.clone(),
                revision,
            }));
        }
        Ok(())
    }
}

impl EtcdEngine {
    /// The name of the controller leading the scheduler now, if one does.
    pub fn leader_name(&self) -> Result<Option<String>, crate::state::engine::EngineError> {
        let key = self.inner.key(&[LEADER]);
        let value = self
            .inner
            .call("read the leader", move |kv| super::get(kv, key.clone()))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}
