//! Free and total space of the file systems holding the install and the backups (statvfs):
//! reported by the inventory, checked by a job before its backup.

use std::path::{Path, PathBuf};

use boltfleet_common::proto::DiskSpace;

/// Space on the file system that holds `path`, or would hold it once created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes available to unprivileged users (what a backup written as the web user can use).
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// The file system of a path could not be queried.
#[derive(Debug, thiserror::Error)]
#[error("cannot read free space of {}: {source}", path.display())]
pub struct DiskError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Space of the file system holding `path`. A path that does not exist yet (a backup dir
/// before the first backup) is measured at its nearest existing ancestor.
pub fn space(path: &Path) -> Result<Space, DiskError> {
    let existing = path
        .ancestors()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .find(|p| p.exists())
        .unwrap_or(path);
    let stat = rustix::fs::statvfs(existing).map_err(|e| DiskError {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let unit = stat.f_frsize.max(1);
    Ok(Space {
        free_bytes: stat.f_bavail.saturating_mul(unit),
        total_bytes: stat.f_blocks.saturating_mul(unit),
    })
}

/// The wire row for `path` in `role` ("install" or "backup").
pub fn disk_space(role: &str, path: &Path) -> Result<DiskSpace, DiskError> {
    let space = space(path)?;
    Ok(DiskSpace {
        role: role.to_string(),
        path: path.display().to_string(),
        free_bytes: space.free_bytes,
        total_bytes: space.total_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_existing_and_future_paths() {
        let dir = tempfile::tempdir().unwrap();
        let here = space(dir.path()).unwrap();
        assert!(here.total_bytes > 0);
        assert!(here.free_bytes <= here.total_bytes);
        let future = dir.path().join("backups/not/yet");
        let there = space(&future).unwrap();
        assert_eq!(there.total_bytes, here.total_bytes);
        let row = disk_space("backup", &future).unwrap();
        assert_eq!(row.role, "backup");
        assert_eq!(row.path, future.display().to_string());
    }

    #[test]
    fn relative_missing_path_is_measured_in_the_working_dir() {
        assert!(space(Path::new("no-such-dir-here/x")).unwrap().total_bytes > 0);
    }
}
