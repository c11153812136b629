//! What other controllers write, as it happens: one etcd watch over the whole prefix,
//! delivered as [`Feed`]s to the controller that folds them into its caches.
//!
//! [`EtcdEngine::feed`] reads the current revision (and the presence keys at it) before it
//! returns, then watches from the next revision: a controller that opens its feed before it
//! loads its state misses nothing, and what it loaded again is set again in revision order,
//! which leaves every key at its newest value. A watch that breaks (a member lost) resumes
//! from the revision after the last event it delivered; one whose revision was compacted away
//! cannot, and starts over with [`Feed::Start`] `{ again: true }`: the caches are read again.
//!
//! The engine's own bookkeeping keys (`_ids/`, `_leader`) are not delivered. A write's event
//! comes back to the controller that made it after its memory moved on (two writes of a
//! rollout in a row: the first's echo would set the cache back by one), so the engine notes
//! each key's revision as it writes it, and whoever applies a change asks
//! [`EtcdEngine::superseded`] under the lock its own writes of that memory hold: the
//! controller's own event, and any older one of the key, are skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, KvClient, WatchClient, WatchOptions};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::EtcdEngine;
use crate::state::engine::{Change, EngineError};

/// Where controllers say which hosts' streams they hold (see [`super::presence`]).
pub(super) const PRESENCE_HOSTS: &[u8] = b"_presence/hosts/";

/// What the feed delivers, in order.
#[derive(Debug)]
pub enum Feed {
    /// The watch starts: `hosts` are the presence keys as they were just before it
    /// (host id, controller name). `again`: it started over after it lost its place, and what
    /// is held in memory must be read again from the store.
    Start {
        again: bool,
        hosts: Vec<(String, String)>,
    },
    /// Keys changed, in revision order.
    Changes(Vec<Change>),
}

/// Batches waiting in the channel before the watch waits for the reader.
const QUEUE: usize = 64;

/// The pause before a broken watch is opened again.
const AGAIN: Duration = Duration::from_secs(1);

impl EtcdEngine {
    /// Starts the feed (see the module's text). Fails when etcd does not answer the first read.
    pub fn feed(&self) -> Result<mpsc::Receiver<Feed>, EngineError> {
        let presence = self.inner.key(&[PRESENCE_HOSTS]);
        let prefix = self.inner.prefix.clone();
        let (revision, hosts) = self.inner.call("read the presence of hosts", move |kv| {
            presence_at(kv, presence.clone(), prefix.clone())
        })?;
        self.inner
            .feeding
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        tx.try_send(Feed::Start {
            again: false,
            hosts,
        })
        .expect("an empty channel takes one");
        let watcher = Watcher {
            written: self.inner.written.clone(),
            kv: self.inner.kv.clone(),
            watch: self.inner.watch.clone(),
            prefix: self.inner.prefix.clone(),
            tx,
        };
        self.inner.bridge.spawn(watcher.run(revision + 1));
        Ok(rx)
    }
}

/// The presence keys and the revision they were read at.
async fn presence_at(
    mut kv: KvClient,
    presence: Vec<u8>,
    prefix: Vec<u8>,
) -> Result<(i64, Vec<(String, String)>), etcd_client::Error> {
    let got = kv
        .get(presence.clone(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = got.header().map_or(0, |h| h.revision());
    let hosts = got
        .kvs()
        .iter()
        .filter_map(|kv| {
            let key = kv.key().strip_prefix(prefix.as_slice())?;
            let host = key.strip_prefix(PRESENCE_HOSTS)?;
            Some((
                String::from_utf8(host.to_vec()).ok()?,
                String::from_utf8_lossy(kv.value()).into_owned(),
            ))
        })
        .collect();
    Ok((revision, hosts))
}

struct Watcher {
    /// This controller's own writes not yet seen back ([`super::Inner`]'s).
    written: Arc<Mutex<HashMap<Vec<u8>, i64>>>,
    kv: KvClient,
    watch: WatchClient,
    prefix: Vec<u8>,
    tx: mpsc::Sender<Feed>,
}

/// Why one watch ended.
enum Ended {
    /// The reader is gone: the feed ends.
    Closed,
    /// Its place in the history is gone (compacted): start over.
    Lost(String),
    /// Broken: resume from the revision after the last delivered.
    Broken(String),
}

impl Watcher {
    async fn run(mut self, mut from: i64) {
        loop {
            let ended = self.watch_from(&mut from).await;
            match ended {
                Ended::Closed => return,
                Ended::Broken(why) => warn!(from, why, "etcd watch broken; resuming"),
                Ended::Lost(why) => {
                    warn!(
                        from,
                        why, "etcd watch lost its place; reading the state again"
                    );
                    // The events of the writes noted so far will not come: forget them.
                    self.written
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                    loop {
                        tokio::time::sleep(AGAIN).await;
                        let presence = [self.prefix.as_slice(), PRESENCE_HOSTS].concat();
                        match presence_at(self.kv.clone(), presence, self.prefix.clone()).await {
                            Ok((revision, hosts)) => {
                                from = revision + 1;
                                let start = Feed::Start { again: true, hosts };
                                if self.tx.send(start).await.is_err() {
                                    return;
                                }
                                break;
                            }
                            Err(err) => warn!(error = %err, "etcd: presence not read; again"),
                        }
                    }
                    continue;
                }
            }
            tokio::time::sleep(AGAIN).await;
        }
    }

    /// Watches from `from`, moving it past each delivered event.
    async fn watch_from(&mut self, from: &mut i64) -> Ended {
        let options = WatchOptions::new().with_prefix().with_start_revision(*from);
        let mut stream = match self.watch.watch(self.prefix.clone(), Some(options)).await {
            Ok(stream) => stream,
            Err(err) => return Ended::Broken(err.to_string()),
        };
        info!(from = *from, "watching etcd for other controllers' writes");
        loop {
            let answer = match stream.message().await {
                Ok(Some(answer)) => answer,
                Ok(None) => return Ended::Broken("the watch stream ended".into()),
                Err(err) => return Ended::Broken(err.to_string()),
            };
            if answer.compact_revision() > 0 {
                return Ended::Lost(format!(
                    "revision {} compacted (now {})",
                    *from,
                    answer.compact_revision()
                ));
            }
            if answer.canceled() {
                return Ended::Broken(format!("canceled: {}", answer.cancel_reason()));
            }
            let mut changes = Vec::with_capacity(answer.events().len());
            for event in answer.events() {
                let Some(kv) = event.kv() else { continue };
                *from = (*from).max(kv.mod_revision() + 1);
                let Some(key) = kv.key().strip_prefix(self.prefix.as_slice()) else {
                    continue;
                };
                let Some(mut change) = change_of(key, event.event_type(), kv.value()) else {
                    continue;
                };
                change.revision = kv.mod_revision();
                changes.push(change);
            }
            if !changes.is_empty() && self.tx.send(Feed::Changes(changes)).await.is_err() {
                return Ended::Closed;
            }
        }
    }
}

impl EtcdEngine {
    /// Whether `change` is this controller's own write, or older than its last write of the
    /// key: its memory is past both. Called by whoever applies the change, under the lock its
    /// own writes of that memory hold (so a write is noted before its echo is judged). Its own
    /// write seen back, the key is forgotten (every older event of it has passed).
    pub fn superseded(&self, change: &Change) -> bool {
        let key = self.inner.key(&[change.tree.as_bytes(), b"/", &change.key]);
        let mut written = self.inner.written.lock().unwrap_or_else(|p| p.into_inner());
        match written.get(&key).copied() {
            Some(mine) if change.revision == mine => {
                written.remove(&key);
                true
            }
            Some(mine) => change.revision < mine,
            None => false,
        }
    }
}

/// The change of `key` (without the prefix), unless it is the engine's bookkeeping.
fn change_of(key: &[u8], kind: EventType, value: &[u8]) -> Option<Change> {
    let slash = key.iter().position(|b| *b == b'/')?;
    let (tree, rest) = (&key[..slash], &key[slash + 1..]);
    if tree == b"_ids" {
        return None;
    }
    Some(Change {
        tree: String::from_utf8(tree.to_vec()).ok()?,
        key: rest.to_vec(),
        value: (kind == EventType::Put).then(|| value.to_vec()),
        revision: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_splits_into_its_tree_and_the_rest_and_bookkeeping_is_left_out() {
        let put = change_of(b"hosts/web1", EventType::Put, b"{}").unwrap();
        assert_eq!(put.tree, "hosts");
        assert_eq!(put.key, b"web1");
        assert_eq!(put.value.as_deref(), Some(&b"{}"[..]));
        let gone = change_of(b"_presence/hosts/web1", EventType::Delete, b"").unwrap();
        assert_eq!((gone.tree.as_str(), gone.value), ("_presence", None));
        assert_eq!(gone.key, b"hosts/web1");
        assert!(change_of(b"_ids/counter", EventType::Put, b"").is_none());
        assert!(change_of(b"_leader", EventType::Put, b"c0").is_none());
    }
}
