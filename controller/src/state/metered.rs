//! An engine that times every write of the engine under it (puts, deletes, batches,
//! compare-and-swaps, flushes) into one histogram: `boltfleet_store_write_seconds`.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;

use super::engine::{Batch, BatchLimit, Engine, EngineError, Scan, Tree};

pub struct Metered {
    inner: Arc<dyn Engine>,
    writes: Histogram,
}

struct MeteredTree {
    inner: Arc<dyn Tree>,
    writes: Histogram,
}

impl Metered {
    pub fn new(inner: Arc<dyn Engine>, writes: Histogram) -> Self {
        Self { inner, writes }
    }
}

fn timed<T>(writes: &Histogram, write: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = write();
    writes.observe(started.elapsed().as_secs_f64());
    result
}

impl Engine for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn tree(&self, name: &str) -> Result<Arc<dyn Tree>, EngineError> {
        Ok(Arc::new(MeteredTree {
            inner: self.inner.tree(name)?,
            writes: self.writes.clone(),
        }))
    }

    fn generate_id(&self) -> Result<u64, EngineError> {
        self.inner.generate_id()
    }

    fn flush(&self) -> Result<(), EngineError> {
        timed(&self.writes, || self.inner.flush())
    }
}

impl Tree for MeteredTree {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        self.inner.get(key)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), EngineError> {
        timed(&self.writes, || self.inner.put(key, value))
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        timed(&self.writes, || self.inner.delete(key))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Scan<'_> {
        self.inner.scan_prefix(prefix)
    }

    fn apply(&self, batch: Batch) -> Result<(), EngineError> {
        timed(&self.writes, || self.inner.apply(batch))
    }

    // The engine's own limit: callers split their batches by it.
    fn batch_limit(&self) -> BatchLimit {
        self.inner.batch_limit()
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, EngineError> {
        timed(&self.writes, || self.inner.compare_and_swap(key, old, new))
    }

    fn flush(&self) -> Result<(), EngineError> {
        timed(&self.writes, || self.inner.flush())
    }
}
