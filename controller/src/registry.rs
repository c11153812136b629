//! Live agent streams: who is online now, and the handle to talk to or cut off each one.
//!
//! With several controllers on etcd, a host is online when any of them holds its stream: this
//! controller's own streams are here, and the others' come from the presence keys
//! ([`crate::state::etcd_engine::presence`]) through [`Registry::set_elsewhere`]; each stream
//! this one starts or ends holding is told to its presence ([`Registry::attach_presence`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::ControllerMessage;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use crate::state::etcd_engine::presence::Presence;

/// Messages to one agent's stream; an `Err` ends the stream with that status.
pub type Outbound = mpsc::Sender<Result<ControllerMessage, Status>>;

struct Conn {
    generation: u64,
    tx: Outbound,
    stop: Option<oneshot::Sender<Status>>,
}

/// At most one live stream per host: a new stream replaces the old one.
#[derive(Default)]
pub struct Registry {
    /// By host id (as a string, so that lookups need no [`HostId`]).
    conns: Mutex<HashMap<String, Conn>>,
    next: AtomicU64,
    /// Set when the controller stops: streams that register later end at once.
    closed: std::sync::atomic::AtomicBool,
    /// Hosts whose streams other controllers hold, with the controller's name.
    elsewhere: RwLock<HashMap<String, String>>,
    /// This controller's name and presence, on a store shared with others.
    presence: OnceLock<(String, Presence)>,
}

/// What a stream gets when it registers.
pub struct Registration {
    pub generation: u64,
    /// Fires when the stream must end (replaced, revoked); carries the status to end it with.
    pub stop: oneshot::Receiver<Status>,
    /// This stream replaced a live one of the same host.
    pub replaced: bool,
}

impl Registry {
    /// Registers a new stream for `host`, ending the previous one if any.
    pub fn register(&self, host: &HostId, tx: Outbound) -> Registration {
        let generation = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (stop_tx, stop_rx) = oneshot::channel();
        let mut conn = Conn {
            generation,
            tx,
            stop: Some(stop_tx),
        };
        let mut conns = self.lock();
        if self.closed.load(Ordering::SeqCst) {
            if let Some(stop) = conn.stop.take() {
                let _ = stop.send(Status::unavailable("the controller is stopping"));
            }
        }
        let old = conns.insert(host.to_string(), conn);
        drop(conns);
        if let Some((_, presence)) = self.presence.get() {
            presence.add(host.as_str());
        }
        let replaced = old.is_some();
        if let Some(mut old) = old {
            if let Some(stop) = old.stop.take() {
                let _ = stop.send(Status::aborted(
                    "replaced by a newer stream from the same host",
                ));
            }
        }
        Registration {
            generation,
            stop: stop_rx,
            replaced,
        }
    }

    /// Forgets the stream if it is still the current one; true when it was.
    pub fn unregister(&self, host: &HostId, generation: u64) -> bool {
        let mut conns = self.lock();
        if conns
            .get(host.as_str())
            .is_some_and(|c| c.generation == generation)
        {
            conns.remove(host.as_str());
            drop(conns);
            if let Some((_, presence)) = self.presence.get() {
                presence.remove(host.as_str());
            }
            true
        } else {
            false
        }
    }

    /// Ends the host's stream with `status` (revocation).
    pub fn kick(&self, host: &HostId, status: Status) {
        let removed = self.lock().remove(host.as_str());
        if let (Some(_), Some((_, presence))) = (&removed, self.presence.get()) {
            presence.remove(host.as_str());
        }
        if let Some(mut conn) = removed {
            if let Some(stop) = conn.stop.take() {
                let _ = stop.send(status);
            }
        }
    }

    /// Ends every stream with `status` (the controller is stopping): a stream never ends by
    /// itself, and the server waits for open calls before it exits.
    pub fn close_all(&self, status: Status) {
        let mut conns = self.lock();
        self.closed.store(true, Ordering::SeqCst);
        for (_, mut conn) in conns.drain() {
            if let Some(stop) = conn.stop.take() {
                let _ = stop.send(status.clone());
            }
        }
    }

    /// Whether the host's stream is open here or on another controller.
    pub fn is_online(&self, host: &str) -> bool {
        self.is_here(host) || self.is_elsewhere(host)
    }

    /// Whether this controller holds the host's stream.
    pub fn is_here(&self, host: &str) -> bool {
        self.lock().contains_key(host)
    }

    fn is_elsewhere(&self, host: &str) -> bool {
        self.held_elsewhere(&self.read_elsewhere(), host)
    }

    /// Whether another controller than this one holds `host`'s stream, as `elsewhere` says.
    fn held_elsewhere(&self, elsewhere: &HashMap<String, String>, host: &str) -> bool {
        let me = self.presence.get().map(|(name, _)| name.as_str());
        elsewhere.get(host).is_some_and(|c| Some(c.as_str()) != me)
    }

    /// Whether each of `hosts` is online (here or elsewhere), in their order (one lock for all).
    pub fn online_all<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) -> Vec<bool> {
        let conns = self.lock();
        let elsewhere = self.read_elsewhere();
        hosts
            .into_iter()
            .map(|h| conns.contains_key(h) || self.held_elsewhere(&elsewhere, h))
            .collect()
    }

    /// Tells `presence`, under this controller's `name`, of every stream from now on (and of
    /// those open already). Once; later calls are ignored.
    pub fn attach_presence(&self, name: &str, presence: Presence) {
        let conns = self.lock();
        for host in conns.keys() {
            presence.add(host);
        }
        let _ = self.presence.set((name.to_string(), presence));
    }

    /// Every host another controller holds the stream of (the presence keys as read).
    pub fn set_elsewhere_all(&self, hosts: Vec<(String, String)>) {
        *self.elsewhere.write().unwrap_or_else(|p| p.into_inner()) = hosts.into_iter().collect();
    }

    /// Controller `holder` holds `host`'s stream (`None`: nobody does any more). Returns the
    /// controller that held it before, when that was another than this one.
    pub fn set_elsewhere(&self, host: &str, holder: Option<String>) -> Option<String> {
        let mut elsewhere = self.elsewhere.write().unwrap_or_else(|p| p.into_inner());
        let before = match holder {
            Some(name) => elsewhere.insert(host.to_string(), name),
            None => elsewhere.remove(host),
        };
        let me = self.presence.get().map(|(name, _)| name.as_str());
        before.filter(|name| Some(name.as_str()) != me)
    }

    fn read_elsewhere(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, String>> {
        self.elsewhere.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The sender of the host's current stream, if it is online.
    pub fn sender(&self, host: &HostId) -> Option<Outbound> {
        self.lock().get(host.as_str()).map(|c| c.tx.clone())
    }

    pub fn online_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Conn>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_stream_replaces_the_first() {
        let reg = Registry::default();
        let host = HostId::new("web1").unwrap();
        let (tx1, _rx1) = mpsc::channel(1);
        let (tx2, _rx2) = mpsc::channel(1);
        let first = reg.register(&host, tx1);
        let second = reg.register(&host, tx2);
        let status = first.stop.await.unwrap();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(
            !reg.unregister(&host, first.generation),
            "stale stream must not unregister"
        );
        assert!(reg.is_online("web1"));
        assert_eq!(reg.online_all(["web1", "web2"]), [true, false]);
        assert!(reg.unregister(&host, second.generation));
        assert!(!reg.is_online("web1"));
    }

    #[tokio::test]
    async fn close_all_ends_every_stream() {
        let reg = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let web1 = reg.register(&HostId::new("web1").unwrap(), tx.clone());
        let web2 = reg.register(&HostId::new("web2").unwrap(), tx);
        reg.close_all(Status::unavailable("stopping"));
        assert_eq!(web1.stop.await.unwrap().code(), tonic::Code::Unavailable);
        assert_eq!(web2.stop.await.unwrap().code(), tonic::Code::Unavailable);
        assert_eq!(reg.online_count(), 0);
        let (tx, _rx) = mpsc::channel(1);
        let late = reg.register(&HostId::new("web3").unwrap(), tx);
        assert_eq!(late.stop.await.unwrap().code(), tonic::Code::Unavailable);
    }

    #[tokio::test]
    async fn kick_ends_the_stream() {
        let reg = Registry::default();
        let host = HostId::new("web1").unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let conn = reg.register(&host, tx);
        reg.kick(&host, Status::permission_denied("revoked"));
        assert_eq!(
            conn.stop.await.unwrap().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(reg.online_count(), 0);
    }
}
