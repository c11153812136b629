//! The controller's hot state: what agent streams, reports and scheduler ticks read all the
//! time, kept in memory so that none of them decodes the fleet from the store.
//!
//! The store stays the truth and everything here is rebuilt from it when the
//! [`App`](crate::app::App) opens: host records and jobs are written through (store first,
//! under the lock that guards the memory copy), and agents' observations are written in a
//! batch every [`observed::WRITE_EVERY`] (and when the App is dropped or shut down).

pub mod hosts;
pub mod jobs;
pub mod observed;

pub use hosts::{HostCache, HostWriter};
pub use jobs::{ActiveJob, ConfigJump, JobCache, JobIndex, JobWriter, RolloutJob, RolloutJobs};
pub use observed::{Observations, Seen};

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, going on after a panic elsewhere (the data is a cache of the store, and
/// every change to it is a single insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
