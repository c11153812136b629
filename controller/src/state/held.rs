//! What a controller on a remote store last read of the records it does not keep in memory
//! (windows, freezes, latest releases, policies): while the store is unreachable, reads
//! answer from here, so operators keep seeing the fleet as this controller last knew it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use super::StoreError;

/// The last successful read of each kind of record, by a name of its reader.
#[derive(Default)]
pub struct LastKnown {
    reads: Mutex<HashMap<String, Box<dyn Any + Send>>>,
}

impl LastKnown {
    /// `read`'s answer, remembered under `what`; when it fails and `unreachable`, the answer
    /// last remembered under `what` (the error when there is none).
    pub fn read<T: Clone + Send + 'static>(
        &self,
        what: &str,
        unreachable: impl Fn() -> bool,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let answer = read();
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Ok(value) => {
                reads.insert(what.to_string(), Box::new(value.clone()));
                Ok(value)
            }
            Err(err) if unreachable() => reads
                .get(what)
                .and_then(|v| v.downcast_ref::<T>())
                .cloned()
                .ok_or(err),
            Err(err) => Err(err),
        }
    }
}
