//! What other controllers on the same etcd wrote, as this one learns it from the engine's
//! feed: the caches are set ([`crate::state::State::apply_change`]), the presence of hosts is
//! noted in the registry (and hosts whose controller's lease took their presence, in
//! [`super::vanished`]), a queued job for a host whose stream is here is sent to it (the
//! controller that holds the stream sends it, once), and the scheduler is woken when what it
//! looks at moved.

use std::collections::BTreeSet;
use std::sync::Arc;

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::JobState;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use boltfleet_common::grant::Scope;

use super::App;
use crate::auth::Caller;
use crate::error::Error;
use crate::state::etcd_engine::feed::Feed;
use crate::state::etcd_engine::presence::ControllerInfo;
use crate::state::etcd_engine::{EtcdEngine, MemberStatus};
use crate::state::Applied;

/// This controller among those sharing its store.
pub struct Peers {
    pub name: String,
    pub address: String,
    pub started: i64,
    /// The shared store, when there is one.
    pub etcd: Option<EtcdEngine>,
}

/// What `cluster status` shows.
#[derive(Debug)]
pub struct ClusterStatus {
    pub engine: &'static str,
    /// Each controller, and whether it is the one answering.
    pub controllers: Vec<(ControllerInfo, bool)>,
    pub leader: Option<String>,
    pub members: Vec<MemberStatus>,
}

impl App {
    /// Says where this controller serves and what store it shares (once, when it listens).
    pub fn attach_peers(&self, peers: Peers) {
        let _ = self.peers.set(peers);
    }

    /// The controllers on this store and the store's health, for operators over every tenant
    /// (it names the fleet's infrastructure, not any tenant's hosts).
    pub fn cluster_status(
        &self,
        by: &Caller,
        now: jiff::Timestamp,
    ) -> Result<ClusterStatus, Error> {
        if by.scope != Scope::All {
            return Err(Error::Forbidden(format!(
                "operator {} may act on {}: the cluster's status needs every tenant",
                by.name, by.scope
            )));
        }
        let Some(peers) = self.peers.get() else {
            return Err(Error::Precondition(
                "the controller is not serving yet".into(),
            ));
        };
        let own = ControllerInfo {
            name: peers.name.clone(),
            address: peers.address.clone(),
            agents: self.registry.online_count() as u64,
            started: peers.started,
            seen: now.as_second(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let Some(etcd) = &peers.etcd else {
            return Ok(ClusterStatus {
                engine: "sled",
                controllers: vec![(own, true)],
                leader: Some(peers.name.clone()),
                members: Vec::new(),
            });
        };
        let stored = etcd.controllers().unwrap_or_default();
        let mut controllers: Vec<(ControllerInfo, bool)> = stored
            .into_iter()
            .filter(|c| c.name != own.name)
            .map(|c| (c, false))
            .collect();
        controllers.push((own, true));
        controllers.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(ClusterStatus {
            engine: "etcd",
            controllers,
            leader: etcd.leader_name().ok().flatten(),
            members: etcd.members(),
        })
    }

    /// Folds one item of the feed in, as it arrives at `now`.
    pub fn apply_feed(&self, feed: Feed, now: jiff::Timestamp) -> Result<(), Error> {
        match feed {
            Feed::Start { again, hosts } => {
                self.registry.set_elsewhere_all(hosts);
                if again {
                    self.state.reload()?;
                }
                self.wake_scheduler();
            }
            Feed::Changes(changes) => {
                let etcd = self.peers.get().and_then(|p| p.etcd.as_ref());
                let superseded = |change: &_| etcd.is_some_and(|e| e.superseded(change));
                let mut wake = false;
                let mut queued = BTreeSet::new();
                for change in &changes {
                    match self.state.apply_change(
                        change,
                        |host| self.registry.is_here(host),
                        superseded,
                    ) {
                        Applied::Nothing | Applied::Host => {}
                        Applied::Observation { moved } => wake |= moved,
                        Applied::Rollout => wake = true,
                        Applied::Job(job) => {
                            wake = true;
                            if job.state() == JobState::Queued
                                && !job.dispatched
                                && self.registry.is_here(&job.host_id)
                            {
                                queued.insert(job.host_id.clone());
                            }
                        }
                        Applied::Presence { host, holder } => {
                            let back = holder.is_some();
                            let before = self.registry.set_elsewhere(&host, holder);
                            match before {
                                _ if back => self.vanished.back(&host),
                                Some(before) => self.vanished.noted(&host, before, now),
                                None => {}
                            }
                            wake = true;
                        }
                    }
                }
                for host in queued {
                    let Ok(host) = HostId::new(&host) else {
                        continue;
                    };
                    if let Err(err) = self.dispatch_new(&host) {
                        warn!(host = %host, error = %err, "a job another controller queued not sent");
                    }
                }
                if wake {
                    self.wake_scheduler();
                }
            }
        }
        Ok(())
    }
}

/// Folds the feed in until it ends or `stop` turns true, off the async threads.
pub async fn follow(
    app: Arc<App>,
    mut feed: mpsc::Receiver<Feed>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let item = tokio::select! {
            item = feed.recv() => item,
            _ = stop.wait_for(|stop| *stop) => None,
        };
        let Some(item) = item else { return };
        let worker = app.clone();
        match tokio::task::spawn_blocking(move || worker.apply_feed(item, jiff::Timestamp::now()))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "a change from another controller not applied"),
            Err(err) => warn!(error = %err, "applying a change from another controller panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use boltfleet_common::grant::Role;

    use super::*;
    use crate::app::tests::app;

    #[test]
    fn one_controller_on_sled_is_its_own_cluster_and_a_scoped_operator_may_not_look() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let admin = Caller::admin("root");
        assert!(matches!(
            app.cluster_status(&admin, crate::app::ts_now()),
            Err(Error::Precondition(_))
        ));
        app.attach_peers(Peers {
            name: "c0".into(),
            address: "127.0.0.1:7443".into(),
            started: 5,
            etcd: None,
        });
        let status = app.cluster_status(&admin, crate::app::ts(9)).unwrap();
        assert_eq!(status.engine, "sled");
        assert_eq!(status.leader.as_deref(), Some("c0"));
        let (own, answering) = &status.controllers[0];
        assert!(*answering && own.name == "c0" && own.started == 5 && own.seen == 9);
        assert!(status.members.is_empty());

        let scoped = Caller {
            name: "msp-acme".into(),
            role: Role::Admin,
            scope: Scope::Tenants(BTreeSet::from(["acme".to_string()])),
            serial: String::new(),
        };
        let refused = app.cluster_status(&scoped, crate::app::ts(9)).unwrap_err();
        assert!(matches!(refused, Error::Forbidden(ref why) if why.contains("every tenant")));
    }
}
