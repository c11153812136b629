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
//! - a batch within the tree's [`Tree::batch_limit`] is taken; a larger one is refused whole,
//!   with an error, writing nothing. sled has no limit; etcd applies a batch as one transaction,
//!   which its server bounds (`--max-txn-ops`, 128 by default; `--max-request-bytes`, 1.5 MiB).
//!   The engine does not split a batch behind the caller's back, since that would break the
//!   promise above. A caller whose records stand alone (observations, audit entries, index
//!   entries) splits its batch with [`Batch::split`]: each part is atomic, the whole is not. A
//!   caller that needs the whole atomic keeps it within the limit;
//! - `compare_and_swap` of one key: the new value (or the deletion) is written only if the
//!   current value is the expected one (`None`: absent);
//! - `flush`: what was written before is durable when it returns.
//!
//! There is no `watch` in the trait: sled's subscriptions do not survive what etcd's watches
//! do, and one controller alone on sled writes everything it holds itself. The etcd engine
//! has it beside the trait ([`super::etcd_engine::feed`]): it delivers what other controllers
//! wrote as [`Change`]s, which [`super::State::apply_change`] folds into the caches.
//!
//! Every engine runs the suite in [`super::suite`].

use std::sync::Arc;

/// One key's new value (`None`: deleted), as another writer left it: `tree` is the tree's
/// name (or the engine's own key space, starting with `_`), `key` the key inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub tree: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// The engine's revision of the change (etcd's `mod_revision`).
    pub revision: i64,
}

/// The engine could not read or write. Its text is the engine's own message.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct EngineError {
    /// Which engine failed ("sled", "etcd").
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

    /// Whether a remote engine answers ([`super::health`]); `None` for a local one.
    fn health(&self) -> Option<Arc<super::health::Health>> {
        None
    }
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

    /// Applies every operation of `batch`, in order, atomically. A batch beyond
    /// [`Tree::batch_limit`] is refused, nothing written.
    fn apply(&self, batch: Batch) -> Result<(), EngineError>;

    /// The largest batch [`Tree::apply`] takes ([`BatchLimit::NONE`] for an engine without
    /// one). No default: a tree that wraps another must forward its limit, or callers stop
    /// splitting their batches and the engine refuses them.
    fn batch_limit(&self) -> BatchLimit;

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

/// The most one [`Batch`] may hold for [`Tree::apply`] to take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimit {
    /// Operations (puts and deletes), as [`Batch::len`] counts them.
    pub ops: usize,
    /// Bytes of keys and values together, as [`Batch::bytes`] counts them.
    pub bytes: usize,
}

impl BatchLimit {
    /// No limit (sled).
    pub const NONE: Self = Self {
        ops: usize::MAX,
        bytes: usize::MAX,
    };

    /// Whether `batch` is within this limit.
    pub fn admits(&self, batch: &Batch) -> bool {
        batch.len() <= self.ops && batch.bytes() <= self.bytes
    }
}

impl std::fmt::Display for BatchLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} operations, {} bytes", self.ops, self.bytes)
    }
}

/// Puts and deletes to apply to one tree together ([`Tree::apply`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    bytes: usize,
}

impl Batch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.push(key.into(), Some(value.into()));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.push(key.into(), None);
    }

    fn push(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.bytes += op_bytes(&key, value.as_deref());
        self.ops.push((key, value));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of its keys and values together.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The operations in order: a key and its new value, `None` for a delete.
    pub fn into_ops(self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        self.ops.into_iter()
    }

    /// Cuts this batch, in order, into batches within `limit` (one part when it already is;
    /// none when it is empty). Applied one after the other they write what this one would,
    /// but each part alone is atomic, not the whole. One operation larger than the limit by
    /// itself makes a part of its own, which the engine will refuse.
    pub fn split(self, limit: BatchLimit) -> Vec<Batch> {
        if limit.admits(&self) {
            return if self.is_empty() { vec![] } else { vec![self] };
        }
        let mut parts = Vec::new();
        let mut part = Batch::default();
        for (key, value) in self.ops {
            let size = op_bytes(&key, value.as_deref());
            let full = part.len() + 1 > limit.ops || part.bytes + size > limit.bytes;
            if full && !part.is_empty() {
                parts.push(std::mem::take(&mut part));
            }
            part.push(key, value);
        }
        if !part.is_empty() {
            parts.push(part);
        }
        parts
    }
}

fn op_bytes(key: &[u8], value: Option<&[u8]>) -> usize {
    key.len() + value.map_or(0, <[u8]>::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(sizes: &[usize]) -> Batch {
        let mut batch = Batch::default();
        for (i, size) in sizes.iter().enumerate() {
            batch.put(format!("{i}"), vec![0; *size]);
        }
        batch
    }

    fn keys(parts: &[Batch]) -> Vec<Vec<String>> {
        parts
            .iter()
            .map(|b| {
                b.clone()
                    .into_ops()
                    .map(|(k, _)| String::from_utf8(k).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_batch_within_the_limit_stays_whole() {
        let whole = batch(&[1, 2, 3]);
        assert_eq!(whole.bytes(), 3 + 6);
        assert_eq!(
            whole.clone().split(BatchLimit::NONE),
            std::slice::from_ref(&whole)
        );
        let exact = BatchLimit { ops: 3, bytes: 9 };
        assert!(exact.admits(&whole));
        assert_eq!(whole.clone().split(exact), [whole]);
        assert!(Batch::default().split(exact).is_empty());
    }

    #[test]
    fn a_larger_batch_splits_in_order_by_count_and_by_bytes() {
        let by_count = batch(&[0; 5]).split(BatchLimit { ops: 2, bytes: 100 });
        assert_eq!(keys(&by_count), [vec!["0", "1"], vec!["2", "3"], vec!["4"]]);
        // Each op is its key (1 byte) and value: 6, 5, 5, 1, 9 bytes.
        let by_bytes = batch(&[5, 4, 4, 0, 8]).split(BatchLimit { ops: 10, bytes: 10 });
        assert_eq!(keys(&by_bytes), [vec!["0"], vec!["1", "2"], vec!["3", "4"]]);
        // Too big alone: a part of its own, which `apply` will refuse.
        let alone = batch(&[1, 50, 1]).split(BatchLimit { ops: 10, bytes: 10 });
        assert_eq!(keys(&alone), [vec!["0"], vec!["1"], vec!["2"]]);
        assert!(!BatchLimit { ops: 10, bytes: 10 }.admits(&alone[1]));
    }
}
