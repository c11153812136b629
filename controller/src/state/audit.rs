//! The audit log: who did what, appended in order and never rewritten.

use super::engine::Batch;
use super::store::Store;
use super::{AuditRecord, StoreError};

impl Store {
    /// Appends to the audit log (ordered, never rewritten) and makes it durable.
    pub fn audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        self.audit_all(std::slice::from_ref(entry))
    }

    /// Appends several entries in order, made durable together (in as many batches as the
    /// engine needs: each entry stands alone).
    pub fn audit_all(&self, entries: &[AuditRecord]) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for entry in entries {
            let id = self.engine.generate_id()?;
            batch.put(id.to_be_bytes(), serde_json::to_vec(entry)?);
        }
        for part in batch.split(self.audit.batch_limit()) {
            self.audit.apply(part)?;
        }
        self.audit.flush()?;
        Ok(())
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit
            .scan_prefix(b"")
            .map(|kv| Ok(serde_json::from_slice(&kv?.1)?))
            .collect()
    }
}
