//! `boltfleet-controller migrate-store`: copies a sled controller's state into etcd, tree by
//! tree, key for key, in batches etcd takes. It copies bytes below the typed store, so every
//! tree comes over whatever the store's version, and ids given after it (the audit log's keys)
//! stay above those sled gave.

use std::path::{Path, PathBuf};

use super::engine::{Batch, Engine, EngineError, Tree};
use super::etcd_engine::EtcdEngine;
use super::open::StoreConfig;
use super::sled_engine::SledEngine;

/// Why the copy did not happen (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("no sled store in {0}: --from-data-dir names a controller's data dir")]
    NoStore(PathBuf),
    #[error("cannot open the sled store in {path} (stop its controller first): {source}")]
    OpenSled { path: PathBuf, source: EngineError },
    #[error(
        "etcd prefix {prefix} already holds {keys} keys: nothing copied (--force copies over \
         them: the keys copied are replaced, the others stay)"
    )]
    NotEmpty { prefix: String, keys: i64 },
    /// A bad flag (exit 64).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// The whole command: checks `store` (an etcd store named by flags), opens both sides and
/// copies; `copied` hears of each tree. Returns the number of records copied.
pub fn migrate_store(
    from_data_dir: &Path,
    store: &StoreConfig,
    force: bool,
    copied: impl FnMut(&str, usize),
) -> Result<usize, MigrateError> {
    let flags = |message: String| MigrateError::Usage(flag_names(&message));
    store.check().map_err(flags)?;
    let options = store.etcd_options().map_err(flags)?;
    let from = open_sled(from_data_dir)?;
    let to = EtcdEngine::open(&options)?;
    copy(&from, &to, &store.prefix, force, copied)
}

/// The `[store]` fields of a config error, named as the command's flags.
fn flag_names(message: &str) -> String {
    [
        ("store.endpoints", "--to-etcd"),
        ("store.prefix", "--prefix"),
        ("store.ca", "--etcd-ca"),
        ("store.cert", "--etcd-cert"),
        ("store.key", "--etcd-key"),
    ]
    .iter()
    .fold(message.to_string(), |text, (field, flag)| {
        text.replace(field, flag)
    })
}

/// Opens the sled store of the controller data dir `data_dir` (which must hold one).
pub fn open_sled(data_dir: &Path) -> Result<SledEngine, MigrateError> {
    let path = crate::ca::DataDir::new(data_dir).store();
    if !path.is_dir() {
        return Err(MigrateError::NoStore(path));
    }
    SledEngine::open(&path).map_err(|source| MigrateError::OpenSled { path, source })
}

/// Copies every tree of `from` into `to` (whose prefix must be empty unless `force`); calls
/// `copied` with each tree's name and record count once it is copied.
pub fn copy(
    from: &SledEngine,
    to: &EtcdEngine,
    prefix: &str,
    force: bool,
    mut copied: impl FnMut(&str, usize),
) -> Result<usize, MigrateError> {
    let keys = to.keys_under_prefix()?;
    if keys > 0 && !force {
        return Err(MigrateError::NotEmpty {
            prefix: prefix.into(),
            keys,
        });
    }
    // Every id etcd gives from now on is above every id sled gave.
    to.raise_ids_above(from.generate_id()?)?;
    let mut total = 0;
    for name in from.tree_names() {
        let n = copy_tree(from.tree(&name)?.as_ref(), to.tree(&name)?.as_ref())?;
        copied(&name, n);
        total += n;
    }
    Ok(total)
}

/// Copies one tree in batches within the target's limit; returns how many records.
fn copy_tree(from: &dyn Tree, to: &dyn Tree) -> Result<usize, EngineError> {
    let limit = to.batch_limit();
    let mut batch = Batch::default();
    let mut n = 0;
    for entry in from.scan_prefix(b"") {
        let (key, value) = entry?;
        let size = key.len() + value.len();
        let full = batch.len() + 1 > limit.ops || batch.bytes() + size > limit.bytes;
        if full && !batch.is_empty() {
            to.apply(std::mem::take(&mut batch))?;
        }
        if size > limit.bytes {
            // Larger than a batch by itself: alone, in a request of its own.
            to.put(&key, &value)?;
        } else {
            batch.put(key, value);
        }
        n += 1;
    }
    to.apply(batch)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use boltfleet_common::proto::JobRecord;

    use super::*;
    use crate::state::etcd_engine::tests::{fresh_prefix, member, options};
    use crate::state::store::{self, Store};
    use crate::state::{AuditRecord as AuditEntry, HostRecord};

    fn etcd(prefix: &str) -> EtcdEngine {
        EtcdEngine::open(&options(vec![member().endpoint()], prefix)).unwrap()
    }

    #[test]
    fn a_sled_store_reads_the_same_on_etcd_after_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let sled_dir = crate::ca::DataDir::new(dir.path()).store();
        let hosts = 300;
        {
            let store = Store::open(&sled_dir).unwrap();
            for i in 0..hosts {
                let id = format!("web{i:03}");
                let host = HostRecord {
                    host_id: id.clone(),
                    tenant: "acme".into(),
                    ..HostRecord::default()
                };
                store.hosts.put(&id, &host).unwrap();
            }
            let job = JobRecord {
                job_id: "j1".into(),
                host_id: "web001".into(),
                created_at: 7,
                ..JobRecord::default()
            };
            store.jobs.put("j1", &job).unwrap();
            store
                .audit(&AuditEntry::new(1, "operator alice", "host.enroll", "", ""))
                .unwrap();
            store.flush().unwrap();
        }
        let before = {
            let store = store::reopen(&sled_dir);
            (
                store.hosts.list().unwrap(),
                store.jobs.of_host("web001").unwrap(),
                store.audit_log().unwrap(),
            )
        };
        let prefix = fresh_prefix();
        let target = etcd(&prefix);
        let sled = open_sled(dir.path()).unwrap();
        let mut counts = Vec::new();
        let total = copy(&sled, &target, &prefix, false, |tree, n| {
            counts.push((tree.to_string(), n))
        })
        .unwrap();
        let count = |name: &str| counts.iter().find(|(t, _)| t == name).map(|(_, n)| *n);
        assert_eq!(count("hosts"), Some(hosts));
        assert_eq!(count("jobs"), Some(1));
        assert_eq!(count("jobs_by_host"), Some(1));
        assert_eq!(count("audit"), Some(1));
        assert_eq!(total, counts.iter().map(|(_, n)| n).sum::<usize>());

        let store = Store::on(Arc::new(target)).unwrap();
        assert_eq!(store.hosts.list().unwrap(), before.0);
        assert_eq!(store.jobs.of_host("web001").unwrap(), before.1);
        assert_eq!(store.audit_log().unwrap(), before.2);
        // The log goes on after what sled wrote.
        store
            .audit(&AuditEntry::new(2, "controller", "after", "", ""))
            .unwrap();
        let actions: Vec<String> = store
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["host.enroll", "after"]);

        // Again into the same prefix: refused, unless forced.
        let err = copy(&sled, &etcd(&prefix), &prefix, false, |_, _| {}).unwrap_err();
        assert!(matches!(err, MigrateError::NotEmpty { .. }), "{err}");
        assert!(err.to_string().contains(&prefix), "{err}");
        assert!(copy(&sled, &etcd(&prefix), &prefix, true, |_, _| {}).unwrap() > hosts);
    }

    #[test]
    fn a_data_dir_without_a_store_or_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_sled(dir.path()).err().unwrap().to_string();
        assert!(err.contains("no sled store"), "{err}");
        let _running = Store::open(&crate::ca::DataDir::new(dir.path()).store()).unwrap();
        let err = open_sled(dir.path()).err().unwrap().to_string();
        assert!(err.contains("stop its controller first"), "{err}");
    }
}
