//! A tree of one record type, keyed by string, encoded as JSON, over the engine seam
//! ([`crate::state::engine`]): the one encoding, and the engine never named.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use crate::state::engine::{Batch, Engine, EngineError, Tree};

/// The store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Engine(#[from] EngineError),
    #[error("store: corrupt record: {0}")]
    Encoding(#[from] serde_json::Error),
}

/// One tree of records of type `T`.
pub struct Typed<T> {
    tree: Arc<dyn Tree>,
    _record: PhantomData<fn() -> T>,
}

impl<T> Clone for Typed<T> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            _record: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Typed<T> {
    pub(super) fn open(engine: &dyn Engine, name: &str) -> Result<Self, StoreError> {
        Ok(Self {
            tree: engine.tree(name)?,
            _record: PhantomData,
        })
    }

    pub fn get(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.tree
            .get(key.as_bytes())?
            .map(|v| serde_json::from_slice(&v))
            .transpose()
            .map_err(Into::into)
    }

    pub fn put(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.tree.put(key.as_bytes(), &serde_json::to_vec(value)?)?;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.tree
            .delete(key.as_bytes())?
            .map(|v| serde_json::from_slice(&v))
            .transpose()
            .map_err(Into::into)
    }

    /// Replaces `old` (None: absent) by `new` atomically; false when the record changed meanwhile.
    pub fn compare_and_swap(
        &self,
        key: &str,
        old: Option<&T>,
        new: &T,
    ) -> Result<bool, StoreError> {
        let old = old.map(serde_json::to_vec).transpose()?;
        let new = serde_json::to_vec(new)?;
        Ok(self
            .tree
            .compare_and_swap(key.as_bytes(), old.as_deref(), Some(&new))?)
    }

    /// Every record, ordered by key.
    pub fn list(&self) -> Result<Vec<(String, T)>, StoreError> {
        self.tree
            .scan_prefix(b"")
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    serde_json::from_slice(&v)?,
                ))
            })
            .collect()
    }

    /// Visits every record in key order. A record that does not decode is logged and skipped:
    /// loading the controller's state must not fail on one bad record.
    pub fn for_each(&self, mut visit: impl FnMut(String, T)) -> Result<(), StoreError> {
        for kv in self.tree.scan_prefix(b"") {
            let (k, v) = kv?;
            let key = String::from_utf8_lossy(&k).into_owned();
            match serde_json::from_slice(&v) {
                Ok(value) => visit(key, value),
                Err(err) => {
                    warn!(tree = %self.tree.name(), %key, error = %err, "corrupt record skipped")
                }
            }
        }
        Ok(())
    }

    /// Writes several records in one batch (atomically).
    pub fn put_all<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError>
    where
        T: 'a,
    {
        self.tree.apply(Self::batch(records)?)?;
        Ok(())
    }

    /// Writes several records that stand alone (observations), in as many batches as the
    /// engine needs ([`Batch::split`]): each batch is atomic, the whole is not.
    pub fn put_in_parts<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError>
    where
        T: 'a,
    {
        for part in Self::batch(records)?.split(self.tree.batch_limit()) {
            self.tree.apply(part)?;
        }
        Ok(())
    }

    fn batch<'a>(records: impl IntoIterator<Item = (&'a str, &'a T)>) -> Result<Batch, StoreError>
    where
        T: 'a,
    {
        let mut batch = Batch::default();
        for (key, value) in records {
            batch.put(key, serde_json::to_vec(value)?);
        }
        Ok(batch)
    }

    /// Makes this tree's writes durable now.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush()?;
        Ok(())
    }
}
