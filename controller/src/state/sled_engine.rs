//! sled under the engine seam: the embedded default, one database directory per controller.

use std::path::Path;
use std::sync::Arc;

use super::engine::{Batch, BatchLimit, Engine, EngineError, Scan, Tree};

const ENGINE: &str = "sled";

fn error(err: sled::Error) -> EngineError {
    EngineError::new(ENGINE, err)
}

/// A sled database.
#[derive(Clone)]
pub struct SledEngine {
    db: sled::Db,
}

impl SledEngine {
    /// Opens (or creates) the database in `path`. sled writes its log to disk every 200 ms by
    /// itself; [`Engine::flush`] makes a write durable at once.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(200))
            .open()
            .map_err(error)?;
        Ok(Self { db })
    }
}

impl SledEngine {
    /// The names of the trees in the database (not sled's own default tree, which the store
    /// does not use).
    pub fn tree_names(&self) -> Vec<String> {
        self.db
            .tree_names()
            .into_iter()
            .filter(|name| **name != *b"__sled__default")
            .map(|name| String::from_utf8_lossy(&name).into_owned())
            .collect()
    }
}

impl Engine for SledEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn tree(&self, name: &str) -> Result<Arc<dyn Tree>, EngineError> {
        let tree = self.db.open_tree(name).map_err(error)?;
        Ok(Arc::new(SledTree {
            name: name.to_string(),
            tree,
        }))
    }

    fn generate_id(&self) -> Result<u64, EngineError> {
        self.db.generate_id().map_err(error)
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.db.flush().map_err(error)?;
        Ok(())
    }
}

/// One sled tree.
struct SledTree {
    name: String,
    tree: sled::Tree,
}

impl Tree for SledTree {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.tree.get(key).map_err(error)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), EngineError> {
        self.tree.insert(key, value).map_err(error)?;
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.tree.remove(key).map_err(error)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Scan<'_> {
        Box::new(self.tree.scan_prefix(prefix).map(|kv| {
            let (k, v) = kv.map_err(error)?;
            Ok((k.to_vec(), v.to_vec()))
        }))
    }

    fn apply(&self, batch: Batch) -> Result<(), EngineError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.into_ops() {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        self.tree.apply_batch(sled_batch).map_err(error)
    }

    // sled applies a batch of any size atomically.
    fn batch_limit(&self) -> BatchLimit {
        BatchLimit::NONE
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, EngineError> {
        let swapped = self.tree.compare_and_swap(key, old, new).map_err(error)?;
        Ok(swapped.is_ok())
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.tree.flush().map_err(error)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::suite::Harness;

    /// A sled database in a temporary directory, reopened as a restarted controller would.
    pub(crate) struct SledHarness {
        dir: tempfile::TempDir,
    }

    impl SledHarness {
        pub(crate) fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }
    }

    impl Harness for SledHarness {
        /// sled's I/O threads may hold the file lock a moment after the previous handle is
        /// dropped: poll until it is free, within a deadline.
        fn open(&self) -> Arc<dyn Engine> {
            Arc::new(reopen(self.dir.path()))
        }
    }

    /// Opens the database in `path` again in the same process, polling for sled's file lock.
    pub(crate) fn reopen(path: &Path) -> SledEngine {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SledEngine::open(path) {
                Ok(engine) => return engine,
                Err(err) if std::time::Instant::now() > deadline => {
                    panic!("sled not reopened: {err}")
                }
                Err(_) => std::thread::yield_now(),
            }
        }
    }

    crate::state::suite::engine_suite!(SledHarness::new());
}
