//! Raises the open-file limit to the hard limit: every simulated agent holds a socket.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Sets the soft limit on open files to the hard limit; returns the limit now in force.
pub fn raise() -> anyhow::Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    let Some(hard) = limit.maximum else {
        return Ok(u64::MAX); // unlimited
    };
    if limit.current != Some(hard) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        )?;
    }
    Ok(hard)
}
