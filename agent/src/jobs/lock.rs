//! One job at a time per host: an exclusive `flock` on `<state_dir>/job.lock`, held for as
//! long as a job (or its resume) runs. The kernel drops it when the agent dies.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

/// A held job lock; released when dropped.
#[derive(Debug)]
pub struct JobLock {
    _file: File,
}

impl JobLock {
    /// Takes the lock at `path` without waiting: `Ok(None)` when another job holds it (in
    /// this process or another).
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<JobLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(JobLock { _file: file })),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        let first = JobLock::try_acquire(&path).unwrap().expect("free");
        assert!(JobLock::try_acquire(&path).unwrap().is_none());
        drop(first);
        assert!(JobLock::try_acquire(&path).unwrap().is_some());
    }
}
