//! Records of staggered rollouts, maintenance windows and freezes: desired state, written by
//! operators (and, for rollouts, by the scheduler), never by agents.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::store::Store;
use super::typed::Typed;
use super::StoreError;
use crate::rollout::{Freeze, MaintenanceWindow, Plan, RolloutState, Windows};
use crate::state::engine::Engine;

/// One rollout: what was asked (the spec, inside `state`), the plan it was cut from, and where
/// it stands. The scheduler rewrites `state`; everything else is written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub id: String,
    pub created_by: String,
    pub created_at: Timestamp,
    /// The plan snapshot at creation.
    pub plan: Plan,
    pub state: RolloutState,
    /// Who stopped it (abort), if anyone.
    #[serde(default)]
    pub aborted_by: Option<String>,
    /// Who asked to roll back what it updated; rollback jobs are created in their name.
    #[serde(default)]
    pub rollback_by: Option<String>,
    /// Set when a tenant it touches requires approval (two-person rule): the rollout stays
    /// planned, and the scheduler starts nothing of it, until an operator other than its
    /// creator approves.
    #[serde(default)]
    pub approval: Option<Approval>,
}

/// A rollout's approval under the two-person rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The tenants whose policy requires it.
    pub tenants: Vec<String>,
    pub approved_by: Option<String>,
    pub approved_at: Option<Timestamp>,
}

impl RolloutRecord {
    /// Waiting for a second operator's approval.
    pub fn awaiting_approval(&self) -> bool {
        self.approval
            .as_ref()
            .is_some_and(|a| a.approved_by.is_none())
            && !matches!(self.state.phase, crate::rollout::Phase::Aborted { .. })
    }
}

/// The rollouts tree, with the active rollouts (those the scheduler still works on) also kept
/// decoded in memory: each scheduler tick reads them, and a rollout record holds a plan and a
/// state for every host, too large to decode every second. Written through: the engine first.
#[derive(Clone)]
pub struct Rollouts {
    records: Typed<RolloutRecord>,
    active: Arc<Mutex<BTreeMap<String, RolloutRecord>>>,
    /// Counts rollout writes, for those who follow rollouts live.
    changes: Arc<watch::Sender<u64>>,
}

impl Rollouts {
    /// Opens the tree and reads every rollout once to find the active ones.
    pub(super) fn open(db: &dyn Engine, name: &str) -> Result<Self, StoreError> {
        let records = Typed::open(db, name)?;
        let mut active = BTreeMap::new();
        records.for_each(|id, record: RolloutRecord| {
            if record.state.is_active() {
                active.insert(id, record);
            }
        })?;
        Ok(Self {
            records,
            active: Arc::new(Mutex::new(active)),
            changes: Arc::new(watch::Sender::new(0)),
        })
    }

    /// Reads the active rollouts again (other controllers on the same store wrote some).
    pub(super) fn reload(&self) -> Result<usize, StoreError> {
        let mut active = self.lock();
        let mut fresh = BTreeMap::new();
        self.records.for_each(|id, record: RolloutRecord| {
            if record.state.is_active() {
                fresh.insert(id, record);
            }
        })?;
        if *active != fresh {
            *active = fresh;
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(active.len())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, RolloutRecord>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        if let Some(record) = self.lock().get(id) {
            return Ok(Some(record.clone()));
        }
        self.records.get(id)
    }

    pub fn put(&self, id: &str, record: &RolloutRecord) -> Result<(), StoreError> {
        let mut active = self.lock();
        self.records.put(id, record)?;
        if record.state.is_active() {
            active.insert(id.to_string(), record.clone());
        } else {
            active.remove(id);
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Sets rollout `id` as another controller stored it (`None`: removed).
    /// `fresh` is asked under the lock this cache's own writes hold: false skips the change.
    pub(super) fn set_stored(
        &self,
        id: &str,
        stored: Option<RolloutRecord>,
        fresh: impl FnOnce() -> bool,
    ) -> bool {
        let mut active = self.lock();
        if !fresh() {
            return false;
        }
        match stored {
            Some(record) if record.state.is_active() => {
                active.insert(id.to_string(), record);
            }
            _ => {
                active.remove(id);
            }
        }
        drop(active);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        true
    }

    /// Changes whenever a rollout is written.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every rollout, ordered by id.
    pub fn list(&self) -> Result<Vec<(String, RolloutRecord)>, StoreError> {
        self.records.list()
    }

    /// Makes the rollouts' writes durable now.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.records.flush()
    }
}

/// Whose maintenance window a `windows` record is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WindowKey {
    Tenant(String),
    Host(String),
}

impl WindowKey {
    pub fn key(&self) -> String {
        match self {
            WindowKey::Tenant(t) => format!("tenant/{t}"),
            WindowKey::Host(h) => format!("host/{h}"),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        if let Some(t) = key.strip_prefix("tenant/") {
            Some(WindowKey::Tenant(t.into()))
        } else {
            key.strip_prefix("host/").map(|h| WindowKey::Host(h.into()))
        }
    }
}

/// A freeze in force: who set it and when. Key `global`, or `tenant/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeRecord {
    pub by: String,
    pub at: Timestamp,
}

/// The key of the global freeze, or of a tenant's.
pub fn freeze_key(tenant: Option<&str>) -> String {
    match tenant {
        None => "global".into(),
        Some(t) => format!("tenant/{t}"),
    }
}

impl Store {
    /// Every configured window, by tenant and by host.
    pub fn windows_all(&self) -> Result<Windows, StoreError> {
        let mut windows = Windows::default();
        for (key, window) in self.windows.list()? {
            match WindowKey::parse(&key) {
                Some(WindowKey::Tenant(t)) => windows.tenants.insert(t, window),
                Some(WindowKey::Host(h)) => windows.hosts.insert(h, window),
                None => None,
            };
        }
        Ok(windows)
    }

    pub fn put_window(
        &self,
        key: &WindowKey,
        window: Option<&MaintenanceWindow>,
    ) -> Result<(), StoreError> {
        match window {
            Some(w) => self.windows.put(&key.key(), w)?,
            None => drop(self.windows.remove(&key.key())?),
        }
        self.windows.flush()
    }

    /// Sets every window of `windows`, tenants' and hosts', in one batch, durably.
    pub fn put_windows(&self, windows: &Windows) -> Result<(), StoreError> {
        let tenants = windows
            .tenants
            .iter()
            .map(|(t, w)| (WindowKey::Tenant(t.clone()).key(), w));
        let hosts = windows
            .hosts
            .iter()
            .map(|(h, w)| (WindowKey::Host(h.clone()).key(), w));
        let all: Vec<(String, &MaintenanceWindow)> = tenants.chain(hosts).collect();
        self.windows
            .put_all(all.iter().map(|(key, w)| (key.as_str(), *w)))?;
        self.windows.flush()
    }

    /// Sets (`Some`) or lifts (`None`) the freeze `key` ([`freeze_key`]), durably.
    pub fn put_freeze(&self, key: &str, freeze: Option<&FreezeRecord>) -> Result<(), StoreError> {
        match freeze {
            Some(record) => self.freeze.put(key, record)?,
            None => drop(self.freeze.remove(key)?),
        }
        self.freeze.flush()
    }

    /// The freezes in force.
    pub fn freeze_all(&self) -> Result<Freeze, StoreError> {
        let mut freeze = Freeze::default();
        for (key, _) in self.freeze.list()? {
            match key.strip_prefix("tenant/") {
                Some(t) => drop(freeze.tenants.insert(t.into())),
                None => freeze.global |= key == "global",
            }
        }
        Ok(freeze)
    }

    /// Every rollout, oldest first.
    pub fn rollouts_all(&self) -> Result<Vec<RolloutRecord>, StoreError> {
        let all = self.rollouts.list()?.into_iter().map(|(_, r)| r).collect();
        Ok(oldest_first(all))
    }

    /// The rollouts the scheduler still works on, oldest first, from memory.
    pub fn active_rollouts(&self) -> Vec<RolloutRecord> {
        oldest_first(self.rollouts.lock().values().cloned().collect())
    }
}

fn oldest_first(mut rollouts: Vec<RolloutRecord>) -> Vec<RolloutRecord> {
    rollouts.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    rollouts
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rollout::{plan, RolloutSpec};

    /// A started rollout to 1.3.2 over no hosts (also the state suite's fixture).
    pub(crate) fn record(id: &str) -> RolloutRecord {
        let spec = RolloutSpec::new(semver::Version::new(1, 3, 2));
        let now: Timestamp = "2025-01-15T12:00:00Z".parse().unwrap();
        let plan = plan(&[], &spec, now);
        let mut state = RolloutState::new(spec, &plan);
        state.start(now).unwrap();
        RolloutRecord {
            id: id.into(),
            created_by: "alice".into(),
            created_at: now,
            plan,
            state,
            aborted_by: None,
            rollback_by: None,
            approval: None,
        }
    }

    #[test]
    fn rollouts_windows_and_freezes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let window: MaintenanceWindow = "0 22 * * * 4h Europe/Paris".parse().unwrap();
        let at: Timestamp = "2025-01-15T12:00:00Z".parse().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.rollouts.put("r1", &record("r1")).unwrap();
            let acme = WindowKey::Tenant("acme".into());
            store.put_window(&acme, Some(&window)).unwrap();
            let web1 = WindowKey::Host("web1".into());
            store.put_window(&web1, Some(&window)).unwrap();
            store.put_window(&web1, None).unwrap();
            let by = FreezeRecord {
                by: "alice".into(),
                at,
            };
            store.freeze.put(&freeze_key(Some("globex")), &by).unwrap();
            store.freeze.put(&freeze_key(None), &by).unwrap();
            store.flush().unwrap();
        }
        let store = crate::state::store::reopen(dir.path());
        assert_eq!(store.rollouts_all().unwrap(), [record("r1")]);
        let windows = store.windows_all().unwrap();
        assert_eq!(windows.tenants.get("acme"), Some(&window));
        assert!(windows.hosts.is_empty(), "cleared");
        let freeze = store.freeze_all().unwrap();
        assert!(freeze.global && freeze.tenants.contains("globex"));
        store.freeze.remove(&freeze_key(None)).unwrap();
        assert!(!store.freeze_all().unwrap().global);
        assert_eq!(
            WindowKey::parse(&WindowKey::Host("h".into()).key()),
            Some(WindowKey::Host("h".into()))
        );
    }

    #[test]
    fn active_rollouts_are_kept_in_memory_and_found_again_on_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now: Timestamp = "2025-01-15T13:00:00Z".parse().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for id in ["r1", "r2", "r3"] {
                store.rollouts.put(id, &record(id)).unwrap();
            }
            let mut done = record("r2");
            done.state.abort("by operator bob", now).unwrap();
            assert!(!done.state.is_active());
            store.rollouts.put("r2", &done).unwrap();
            let active: Vec<String> = store.active_rollouts().into_iter().map(|r| r.id).collect();
            assert_eq!(active, ["r1", "r3"]);
            assert_eq!(
                store.rollouts.get("r2").unwrap(),
                Some(done),
                "from the store"
            );
            assert_eq!(
                store.rollouts.get("r1").unwrap(),
                Some(record("r1")),
                "from memory"
            );
            store.flush().unwrap();
        }
        let store = crate::state::store::reopen(dir.path());
        let active: Vec<String> = store.active_rollouts().into_iter().map(|r| r.id).collect();
        assert_eq!(active, ["r1", "r3"]);
        assert_eq!(store.rollouts_all().unwrap().len(), 3);
    }
}
