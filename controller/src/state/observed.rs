//! What each host's agent last said, in memory. A report changes it here and marks the host
//! dirty; the writer task ([`BatchWriter::run`], started by the server) stores the dirty
//! observations in one batch every [`WRITE_EVERY`] and flushes, so a `kill -9` loses at most
//! the last [`WRITE_EVERY`] of reports (as it did when each report was a sled insert and sled
//! flushed every 200 ms). [`Observations::persist`], and dropping [`Observations`], write what
//! is pending at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use boltfleet_common::version::{parse_release, Version};
use tracing::warn;

use super::lock;
use super::typed::Typed;
use super::{Observed, StoreError};

/// How often dirty observations are written (and flushed).
pub const WRITE_EVERY: Duration = Duration::from_millis(200);

/// What rollouts look at in an observation, parsed once per message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// The installed release, when the agent reported a valid one.
    pub version: Option<Version>,
    /// Healthy as the fleet report judges it.
    pub healthy: bool,
    /// Unix seconds of the last message from the agent.
    pub last_seen: i64,
}

impl Seen {
    fn of(observed: &Observed) -> Self {
        Self {
            version: observed
                .inventory
                .as_ref()
                .and_then(|inv| parse_release(&inv.passbolt_version).ok()),
            healthy: observed.is_healthy(),
            last_seen: observed.last_seen,
        }
    }
}

/// What the fleet's derived latest release reads of an observation: the installed version
/// and the newest tag the host's repository has.
fn release_facts(observed: &Observed) -> Option<(String, String)> {
    let inventory = observed.inventory.as_ref()?;
    Some((
        inventory.passbolt_version.clone(),
        inventory.newest_tag.clone(),
    ))
}

struct Entry {
    /// Shared with batches being written and readers; copied on write only then.
    observed: Arc<Observed>,
    seen: Seen,
    /// `last_seen` when the entry was last marked for writing.
    marked_at: i64,
}

/// A report that changes nothing but the time it was seen is written at most this often (in
/// seconds): `last_seen` only matters to within a minute (offline hosts).
pub const SEEN_WRITE_EVERY: i64 = 60;

/// The same on a store shared with other controllers (etcd), where whether a host is online
/// is its presence key, not its `last_seen`: every write there reaches every controller, and
/// a stream's end writes `last_seen` anyway.
pub const SHARED_SEEN_WRITE_EVERY: i64 = 15 * 60;

#[derive(Default)]
struct State {
    hosts: HashMap<String, Entry>,
    /// Hosts whose observation changed since it was last written.
    dirty: HashSet<String>,
}

struct Shared {
    tree: Typed<Observed>,
    /// Moves on whenever a host's reported version may have changed (or a host came or went).
    versions: std::sync::atomic::AtomicU64,
    /// [`SEEN_WRITE_EVERY`], or [`SHARED_SEEN_WRITE_EVERY`].
    seen_every: std::sync::atomic::AtomicI64,
    state: Mutex<State>,
    /// One batch at a time, so that batches reach the store in the order they were taken.
    writing: Mutex<()>,
}

/// Every host's latest observation, written in batches ([`Observations::writer`]).
pub struct Observations {
    shared: Arc<Shared>,
}

/// Stores the dirty observations every [`WRITE_EVERY`] ([`BatchWriter::run`]).
pub struct BatchWriter {
    shared: Arc<Shared>,
}

impl Observations {
    /// Reads every observation from `tree`.
    pub fn load(tree: Typed<Observed>) -> Result<Self, StoreError> {
        let mut hosts = HashMap::new();
        tree.for_each(|id, observed| {
            let seen = Seen::of(&observed);
            let marked_at = observed.last_seen;
            let observed = Arc::new(observed);
            hosts.insert(
                id,
                Entry {
                    observed,
                    seen,
                    marked_at,
                },
            );
        })?;
        let shared = Arc::new(Shared {
            tree,
            versions: std::sync::atomic::AtomicU64::new(0),
            seen_every: std::sync::atomic::AtomicI64::new(SEEN_WRITE_EVERY),
            state: Mutex::new(State {
                hosts,
                dirty: HashSet::new(),
            }),
            writing: Mutex::new(()),
        });
        Ok(Self { shared })
    }

    /// Reads the stored observations again, except those changed here and not yet written
    /// (newer than the store's): other controllers on the same store wrote the rest.
    pub fn reload(&self) -> Result<(), StoreError> {
        let mut stored = Vec::new();
        self.shared
            .tree
            .for_each(|id, observed| stored.push((id, observed)))?;
        let mut state = lock(&self.shared.state);
        let State { hosts, dirty } = &mut *state;
        for (id, observed) in stored {
            if dirty.contains(&id) {
                continue;
            }
            let entry = Entry {
                seen: Seen::of(&observed),
                marked_at: observed.last_seen,
                observed: Arc::new(observed),
            };
            hosts.insert(id, entry);
        }
        self.shared.bump_versions();
        Ok(())
    }

    /// The writer of these observations' batches, to run as a task.
    pub fn writer(&self) -> BatchWriter {
        BatchWriter {
            shared: self.shared.clone(),
        }
    }

    /// Applies `change` to `host`'s observation, seen at `now`, to be written with the next
    /// batch. Returns whether what rollouts look at beyond `last_seen` (the version and health)
    /// changed.
    pub fn update(&self, host: &str, now: i64, change: impl FnOnce(&mut Observed)) -> bool {
        self.update_if_changed(host, now, |o| {
            change(o);
            true
        })
    }

    /// Like [`Observations::update`], but `change` says whether it changed anything beyond
    /// the time: when it did not, the observation is written again only once
    /// [`SEEN_WRITE_EVERY`] passed since it was last written.
    pub fn update_if_changed(
        &self,
        host: &str,
        now: i64,
        change: impl FnOnce(&mut Observed) -> bool,
    ) -> bool {
        let mut state = lock(&self.shared.state);
        let State { hosts, dirty } = &mut *state;
        if !hosts.contains_key(host) {
            let fresh = Entry {
                observed: Arc::default(),
                seen: Seen::default(),
                marked_at: 0,
            };
            hosts.insert(host.to_string(), fresh);
        }
        let Some(entry) = hosts.get_mut(host) else {
            return false;
        };
        let facts = release_facts(&entry.observed);
        let observed = Arc::make_mut(&mut entry.observed);
        let content_changed = change(observed);
        observed.last_seen = now;
        let seen = Seen::of(observed);
        let changed = seen.version != entry.seen.version || seen.healthy != entry.seen.healthy;
        if content_changed && release_facts(observed) != facts {
            self.shared.bump_versions();
        }
        entry.seen = seen;
        let seen_every = self
            .shared
            .seen_every
            .load(std::sync::atomic::Ordering::Relaxed);
        if content_changed || now - entry.marked_at >= seen_every {
            entry.marked_at = now;
            if !dirty.contains(host) {
                dirty.insert(host.to_string());
            }
        }
        changed
    }

    /// Differs from an earlier answer when a host's reported version may have changed since.
    pub fn versions_generation(&self) -> u64 {
        self.shared
            .versions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes a report that changes nothing but the time at most every `seconds`.
    pub fn write_seen_every(&self, seconds: i64) {
        self.shared
            .seen_every
            .store(seconds, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets `host`'s observation as another controller stored it (`None`: removed), unless
    /// it changed here since it was last written (then this one's is newer). Returns whether
    /// what rollouts look at (the version and health) changed.
    /// `fresh` is asked under the lock this cache's own writes hold: false skips the change.
    pub fn set_stored(
        &self,
        host: &str,
        stored: Option<Observed>,
        fresh: impl FnOnce() -> bool,
    ) -> bool {
        let _writing = lock(&self.shared.writing);
        if !fresh() {
            return false;
        }
        let mut state = lock(&self.shared.state);
        let State { hosts, dirty } = &mut *state;
        if dirty.contains(host) {
            return false;
        }
        let Some(observed) = stored else {
            let removed = hosts.remove(host).is_some();
            if removed {
                self.shared.bump_versions();
            }
            return removed;
        };
        let seen = Seen::of(&observed);
        let entry = Entry {
            marked_at: observed.last_seen,
            observed: Arc::new(observed),
            seen: seen.clone(),
        };
        let releases = release_facts(&entry.observed);
        let before = hosts.insert(host.to_string(), entry);
        // Only what the fleet's latest is derived from (the installed version, the newest
        // tag) moving, or a new host, changes it: other controllers' reports of health and
        // last_seen leave it as it was.
        if before
            .as_ref()
            .is_none_or(|b| release_facts(&b.observed) != releases)
        {
            self.shared.bump_versions();
        }
        before
            .map(|e| e.seen)
            .is_none_or(|b| b.version != seen.version || b.healthy != seen.healthy)
    }

    /// Forgets `host` (removed from the fleet): from memory and from the store.
    pub fn remove(&self, host: &str) -> Result<(), StoreError> {
        let _writing = lock(&self.shared.writing);
        let mut state = lock(&self.shared.state);
        state.hosts.remove(host);
        state.dirty.remove(host);
        self.shared.bump_versions();
        self.shared.tree.remove(host).map(drop)
    }

    /// The host's latest observation.
    pub fn get(&self, host: &str) -> Option<Arc<Observed>> {
        lock(&self.shared.state)
            .hosts
            .get(host)
            .map(|e| e.observed.clone())
    }

    /// The latest observation of each of `hosts`, in their order.
    pub fn get_all<'a>(
        &self,
        hosts: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Option<Arc<Observed>>> {
        let state = lock(&self.shared.state);
        hosts
            .into_iter()
            .map(|h| state.hosts.get(h).map(|e| e.observed.clone()))
            .collect()
    }

    /// What rollouts look at of each of `hosts`, in their order.
    pub fn seen_all<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) -> Vec<Option<Seen>> {
        let state = lock(&self.shared.state);
        hosts
            .into_iter()
            .map(|h| state.hosts.get(h).map(|e| e.seen.clone()))
            .collect()
    }

    /// Writes the pending observations now, in one batch, and flushes; returns how many.
    pub fn persist(&self) -> Result<usize, StoreError> {
        self.shared.persist()
    }

    /// Observations changed and not written yet.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        lock(&self.shared.state).dirty.len()
    }
}

impl Shared {
    fn bump_versions(&self) {
        self.versions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn persist(&self) -> Result<usize, StoreError> {
        let _one = lock(&self.writing);
        let batch: Vec<(String, Arc<Observed>)> = {
            let mut state = lock(&self.state);
            let dirty = std::mem::take(&mut state.dirty);
            dirty
                .into_iter()
                .filter_map(|h| {
                    let observed = state.hosts.get(&h)?.observed.clone();
                    Some((h, observed))
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let written = self
            .tree
            .put_in_parts(batch.iter().map(|(h, o)| (h.as_str(), &**o)))
            .and_then(|()| self.tree.flush());
        if let Err(err) = written {
            // Written next time, unless changed meanwhile (then the newer one is).
            lock(&self.state)
                .dirty
                .extend(batch.into_iter().map(|(h, _)| h));
            return Err(err);
        }
        Ok(batch.len())
    }
}

impl BatchWriter {
    /// Writes a batch every [`WRITE_EVERY`] (on the blocking pool: a batch is a store write and
    /// a flush) until `stop` turns true or its sender is dropped. Each batch's size is sent on
    /// `written`, when given.
    pub async fn run(self, mut stop: watch::Receiver<bool>, written: Option<watch::Sender<usize>>) {
        let mut every = tokio::time::interval(WRITE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        while !*stop.borrow() {
            tokio::select! {
                _ = every.tick() => {}
                changed = stop.changed() => if changed.is_err() { break } else { continue },
            }
            let shared = self.shared.clone();
            match tokio::task::spawn_blocking(move || shared.persist()).await {
                Ok(Ok(n)) => {
                    if let Some(written) = &written {
                        written.send_replace(n);
                    }
                }
                Ok(Err(err)) => warn!(error = %err, "observations not written; retrying"),
                Err(err) => warn!(error = %err, "observation writer failed; retrying"),
            }
        }
    }
}

impl Drop for Observations {
    /// Writes what is pending: nothing a dropped App was told is lost.
    fn drop(&mut self) {
        if let Err(err) = self.shared.persist() {
            warn!(error = %err, "observations not written at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::{reopen, Store};
    use boltfleet_common::proto::{Health, Inventory};

    fn report(version: &str, healthy: bool) -> impl FnOnce(&mut Observed) {
        let inventory = Inventory {
            passbolt_version: version.into(),
            health: Some(Health {
                healthy,
                ..Health::default()
            }),
            ..Inventory::default()
        };
        move |o: &mut Observed| o.inventory = Some(inventory)
    }

    #[test]
    fn only_version_and_health_changes_count_for_rollouts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Observations::load(store.observed.clone()).unwrap();
        assert!(!cache.update("web1", 1, |o| o.agent_version = "0.1.0".into()));
        assert!(cache.update("web1", 2, report("1.3.0", true)));
        assert!(
            !cache.update("web1", 3, report("1.3.0", true)),
            "same again"
        );
        assert!(cache.update("web1", 4, report("1.3.0", false)));
        assert!(cache.update("web1", 5, report("1.3.2", false)));
        let seen = cache.seen_all(["web1", "web2"]);
        assert_eq!(seen[0].as_ref().unwrap().last_seen, 5);
        assert_eq!(
            seen[0].as_ref().unwrap().version,
            Some("1.3.2".parse().unwrap())
        );
        assert!(seen[1].is_none());
        assert_eq!(cache.get("web1").unwrap().agent_version, "0.1.0");
    }

    #[test]
    fn an_unchanged_report_is_written_again_only_after_the_seen_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Observations::load(store.observed.clone()).unwrap();
        let same = |cache: &Observations, at| {
            cache.update_if_changed("web1", at, |o| {
                let fresh = o.agent_version.is_empty();
                o.agent_version = "0.1.0".into();
                fresh
            })
        };
        same(&cache, 100);
        cache.persist().unwrap();
        same(&cache, 100 + SEEN_WRITE_EVERY - 1);
        assert_eq!(cache.pending(), 0, "within a minute: not again");
        same(&cache, 100 + SEEN_WRITE_EVERY);
        assert_eq!(cache.pending(), 1, "a minute on: written again");
        cache.persist().unwrap();

        // On a shared store, liveness is the presence key: a quarter of an hour.
        cache.write_seen_every(SHARED_SEEN_WRITE_EVERY);
        let at = 100 + SEEN_WRITE_EVERY;
        same(&cache, at + SEEN_WRITE_EVERY * 5);
        assert_eq!(cache.pending(), 0);
        same(&cache, at + SHARED_SEEN_WRITE_EVERY);
        assert_eq!(cache.pending(), 1);
    }

    #[tokio::test]
    async fn the_writer_stores_dirty_observations_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Observations::load(store.observed.clone()).unwrap();
        let (_stop, stop) = watch::channel(false);
        tokio::spawn(cache.writer().run(stop, None));
        cache.update("web1", 7, report("1.3.0", true));
        cache.update("web2", 8, |_| {});
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while cache.pending() > 0 || store.observed.get("web2").unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "never written");
            // eventually: poll to the deadline
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.observed.get("web1").unwrap().unwrap().last_seen, 7);
        assert_eq!(store.observed.list().unwrap().len(), 2);
    }

    #[test]
    fn pending_observations_are_written_on_persist_and_on_drop_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let cache = Observations::load(store.observed.clone()).unwrap();
            cache.update("web1", 7, report("1.3.0", true));
            assert_eq!(cache.persist().unwrap() + cache.persist().unwrap(), 1);
            assert_eq!(store.observed.get("web1").unwrap().unwrap().last_seen, 7);
            cache.update("web2", 9, |_| {});
            drop(cache); // shutdown, before the writer's next batch
        }
        let store = reopen(dir.path());
        let cache = Observations::load(store.observed.clone()).unwrap();
        assert_eq!(cache.get("web2").unwrap().last_seen, 9);
        let seen = cache.seen_all(["web1"]).remove(0).unwrap();
        assert!(seen.healthy && seen.version == Some("1.3.0".parse().unwrap()));
    }

    /// Reports are stored in one batch per [`WRITE_EVERY`], on tokio's clock: not before it
    /// passed, and all of them (the newest of each host) once it did.
    #[tokio::test(start_paused = true)]
    async fn reports_are_stored_once_per_write_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Observations::load(store.observed.clone()).unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let (written_tx, mut written) = watch::channel(0);
        let writer = tokio::spawn(cache.writer().run(stop, Some(written_tx)));
        // Let the writer take its first (immediate) tick.
        tokio::task::yield_now().await;
        for (host, version) in [("web1", "1.3.0"), ("web2", "1.3.0"), ("web1", "1.3.1")] {
            cache.update(host, 1, report(version, true));
        }
        tokio::time::advance(WRITE_EVERY - Duration::from_millis(1)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(cache.pending(), 2, "nothing written before the interval");
        assert!(store.observed.get("web1").unwrap().is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        written.changed().await.unwrap();
        assert_eq!(*written.borrow(), 2, "one batch, one entry per host");
        assert_eq!(cache.pending(), 0);
        let web1 = store.observed.get("web1").unwrap().unwrap();
        assert_eq!(web1.inventory.unwrap().passbolt_version, "1.3.1");
        stop_tx.send_replace(true);
        writer.await.unwrap();
    }
}
