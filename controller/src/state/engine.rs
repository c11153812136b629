//! The engine seam: the few byte-level operations the controller's state needs from a storage
//! engine, so that sled (embedded, the default) and a replicated engine (etcd, for controller HA)
//! can sit under the same typed trees.
//!
//! An [`Engine`] is a set of named [`Tree`]s; a tree maps byte keys to byte values in key order.
//! Everything above (`store::Typed`, the job index, the audit log) is written against these two
//! traits only and never names the engine. What a tree promises:
//!
//! - `get`, `put`, `delete` of one key, each atomic;
//! - `scan_prefix` in key order (an empty prefix scans the whole tree); a scan is not a snapshot:
//!   it may see writes made while it runs;
//! - `apply` of a [`Batch`] of puts and deletes: all of it or none of it, whatever the other
//!   writers do and across a crash;
//! - `compare_and_swap` of one key: the new value (or the deletion) is written only if the
//!   current value is the expected one (`None`: absent);
//! - `flush`: what was written before is durable when it returns.
//!
//! There is no `watch`: sled's subscriptions do not survive what etcd's watches do, and nothing
//! here waits on a change yet. The engine that has it can add it beside this trait.
//!
//! Every engine runs the suite in [`super::suite`].

use std::sync::Arc;

/// The engine could not read or write. Its text is the engine's own message.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct EngineError {
    /// Which engine failed ("sled").
    pub engine: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl EngineError {
    pub fn new(
        engine: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            engine,
            source: source.into(),
        }
    }
}

/// A key and its value, as a scan yields them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A scan in key order.
pub type Scan<'a> = Box<dyn Iterator<Item = Result<Entry, EngineError>> + Send + 'a>;

/// A storage engine: named trees, ids that only grow, and a flush of everything.
pub trait Engine: Send + Sync {
    /// The engine's name in logs and errors ("sled").
    fn name(&self) -> &'static str;

    /// Opens (or creates) the tree `name`. Opening the same name twice gives the same tree.
    fn tree(&self, name: &str) -> Result<Arc<dyn Tree>, EngineError>;

    /// An id greater than every id this engine gave before, restarts included (gaps allowed).
    fn generate_id(&self) -> Result<u64, EngineError>;

    /// Makes every write to every tree so far durable.
    fn flush(&self) -> Result<(), EngineError>;
}

/// One tree of an [`Engine`]: byte keys to byte values, in key order.
pub trait Tree: Send + Sync {
    /// The name it was opened with.
    fn name(&self) -> &str;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), EngineError>;

    /// Removes `key`, returning the value it had.
    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// The entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Scan<'_>;

    /// Applies every operation of `batch`, in order, atomically.
    fn apply(&self, batch: Batch) -> Result<(), EngineError>;

    /// Sets `key` to `new` (`None`: deletes it) if its value is `old` (`None`: absent).
    /// Returns false, writing nothing, when it is not.
    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, EngineError>;

    /// Makes this tree's writes so far durable.
    fn flush(&self) -> Result<(), EngineError>;
}

/// Puts and deletes to apply to one tree together ([`Tree::apply`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations in order: a key and its new value, `None` for a delete.
    pub fn into_ops(self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        self.ops.into_iter()
    }
}
