//! One agent per state dir: an exclusive `flock` on `<state_dir>/agent.lock` for the agent's
//! whole life, with its pid in the file so a second one can say who is there. Two agents on
//! one identity would replace each other's stream with the controller for ever.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

/// The held lock; released when dropped (or by the kernel when the agent dies).
#[derive(Debug)]
pub struct StateDirLock {
    _file: File,
}

/// Why the state dir could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum StateLockError {
    #[error("another boltfleet-agent (pid {pid}) uses {}", dir.display())]
    Busy { pid: String, dir: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateDirLock {
    /// Locks `state_dir` for this process, or says which process has it.
    pub fn acquire(state_dir: &Path) -> Result<Self, StateLockError> {
        let path = state_dir.join("agent.lock");
        let io = |source: std::io::Error| StateLockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = match pid.trim() {
                    "" => "unknown".to_string(),
                    p => p.to_string(),
                };
                return Err(StateLockError::Busy {
                    pid,
                    dir: state_dir.to_path_buf(),
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StateDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_agent_is_told_who_holds_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDirLock::acquire(dir.path()).unwrap();
        let err = StateDirLock::acquire(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "another boltfleet-agent (pid {}) uses {}",
                std::process::id(),
                dir.path().display()
            )
        );
        drop(first);
        StateDirLock::acquire(dir.path()).expect("free again");
    }
}
