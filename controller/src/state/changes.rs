//! What other controllers on the same store wrote, folded into this one's memory: each
//! [`Change`] of the etcd feed ([`super::etcd_engine::feed`]) sets the cached copy it touches.
//!
//! Only the trees held in memory have anything to set (hosts, observations, the jobs' index,
//! the active rollouts); the others are read from the store each time. A record that does not
//! decode is logged and skipped, as when the state is loaded.

use tracing::warn;

use super::engine::Change;
use super::store::{HOSTS, JOBS, OBSERVED, ROLLOUTS, WINDOWS};
use super::{JobRecord, State};

/// The key space of the presence keys ([`super::etcd_engine::presence`]).
const PRESENCE: &str = "_presence";

/// What a change touched, for the controller to act on.
#[derive(Debug, PartialEq)]
pub enum Applied {
    /// Nothing held in memory.
    Nothing,
    /// A host record.
    Host,
    /// A host's observation; `moved`: its version or health changed.
    Observation { moved: bool },
    /// A job, as stored now.
    Job(Box<JobRecord>),
    /// A rollout.
    Rollout,
    /// Which controller holds `host`'s stream (`None`: none does).
    Presence {
        host: String,
        holder: Option<String>,
    },
}

impl State {
    /// Sets what `change` touched. `held_here`: whether this controller holds a host's stream,
    /// whose observation it knows better than the store; `superseded`: whether the change is
    /// this controller's own write or older than it (asked under the lock of the copy it
    /// would set, which this controller's own writes hold until they are noted).
    pub fn apply_change(
        &self,
        change: &Change,
        held_here: impl Fn(&str) -> bool,
        superseded: impl Fn(&Change) -> bool,
    ) -> Applied {
        let fresh = || !superseded(change);
        let Ok(key) = std::str::from_utf8(&change.key) else {
            return Applied::Nothing;
        };
        let value = change.value.as_deref();
        match change.tree.as_str() {
            HOSTS => {
                let Some(record) = decoded(HOSTS, key, value) else {
                    return Applied::Nothing;
                };
                self.hosts.set_stored(key, record, fresh);
                Applied::Host
            }
            OBSERVED if held_here(key) => Applied::Nothing,
            OBSERVED => {
                let Some(observed) = decoded(OBSERVED, key, value) else {
                    return Applied::Nothing;
                };
                let moved = self.observations.set_stored(key, observed, fresh);
                Applied::Observation { moved }
            }
            JOBS => match decoded::<JobRecord>(JOBS, key, value) {
                Some(Some(job)) if self.jobs.set_stored(&job, fresh) => Applied::Job(Box::new(job)),
                _ => Applied::Nothing,
            },
            ROLLOUTS => {
                let Some(record) = decoded(ROLLOUTS, key, value) else {
                    return Applied::Nothing;
                };
                if !self.store.rollouts.set_stored(key, record, fresh) {
                    return Applied::Nothing;
                }
                Applied::Rollout
            }
            WINDOWS => {
                self.windows_changed();
                Applied::Nothing
            }
            PRESENCE => match key.strip_prefix("hosts/") {
                Some(host) => Applied::Presence {
                    host: host.to_string(),
                    holder: value.map(|v| String::from_utf8_lossy(v).into_owned()),
                },
                None => Applied::Nothing,
            },
            _ => Applied::Nothing,
        }
    }
}

/// The record `value` holds (`Some(None)`: deleted); `None` when it does not decode.
fn decoded<T: serde::de::DeserializeOwned>(
    tree: &str,
    key: &str,
    value: Option<&[u8]>,
) -> Option<Option<T>> {
    let Some(value) = value else {
        return Some(None);
    };
    match serde_json::from_slice(value) {
        Ok(record) => Some(Some(record)),
        Err(err) => {
            warn!(tree, key, error = %err, "a record another controller wrote does not decode; skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{HostRecord, Observed};

    fn change(tree: &str, key: &str, value: Option<Vec<u8>>) -> Change {
        Change {
            tree: tree.into(),
            key: key.as_bytes().to_vec(),
            value,
            revision: 1,
        }
    }

    #[test]
    fn changes_set_the_cached_copies_and_held_hosts_keep_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let host = HostRecord {
            tenant: "acme".into(),
            ..HostRecord::default()
        };
        let put = change(HOSTS, "web1", Some(serde_json::to_vec(&host).unwrap()));
        assert_eq!(
            state.apply_change(&put, |_| false, |_| false),
            Applied::Host
        );
        assert_eq!(state.host("web1").unwrap().tenant, "acme");

        let observed = Observed {
            agent_version: "0.9.0".into(),
            last_seen: 7,
            ..Observed::default()
        };
        let seen = change(
            OBSERVED,
            "web1",
            Some(serde_json::to_vec(&observed).unwrap()),
        );
        assert_eq!(
            state.apply_change(&seen, |_| true, |_| false),
            Applied::Nothing
        );
        assert!(state.observations().get("web1").is_none());
        state.apply_change(&seen, |_| false, |_| true);
        assert!(
            state.observations().get("web1").is_none(),
            "superseded: skipped"
        );
        state.apply_change(&seen, |_| false, |_| false);
        assert_eq!(state.observations().get("web1").unwrap().last_seen, 7);

        let bad = change(HOSTS, "web2", Some(b"not json".to_vec()));
        assert_eq!(
            state.apply_change(&bad, |_| false, |_| false),
            Applied::Nothing
        );
        assert!(state.host("web2").is_none());

        let gone = change(HOSTS, "web1", None);
        state.apply_change(&gone, |_| false, |_| false);
        assert!(state.host("web1").is_none());

        // Windows are decoded once and kept until one is written, here or elsewhere.
        assert!(state.windows().unwrap().tenants.is_empty());
        let window = crate::rollout::MaintenanceWindow::new(
            "0 2 * * *",
            std::time::Duration::from_secs(3600),
            "UTC",
        )
        .unwrap();
        let key = crate::state::WindowKey::Tenant("acme".into());
        state.store.put_window(&key, Some(&window)).unwrap(); // as another controller would
        assert!(state.windows().unwrap().tenants.is_empty(), "kept");
        let written = change(WINDOWS, "tenant/acme", Some(b"{}".to_vec()));
        assert_eq!(
            state.apply_change(&written, |_| false, |_| false),
            Applied::Nothing
        );
        assert_eq!(state.windows().unwrap().tenants.len(), 1, "read again");
        state.put_window(&key, None).unwrap();
        assert!(
            state.windows().unwrap().tenants.is_empty(),
            "a write here forgets them"
        );

        let present = change(PRESENCE, "hosts/web1", Some(b"c1".to_vec()));
        assert_eq!(
            state.apply_change(&present, |_| false, |_| false),
            Applied::Presence {
                host: "web1".into(),
                holder: Some("c1".into())
            }
        );
    }
}
