//! Fault-injection points for the end-to-end tests: named places where a thread can be parked
//! from outside the process, as etcd's gofail points are, so a test can stop a controller in
//! the middle of something (the scheduler decided, not yet written) and then pause or kill it.
//!
//! A point does something only in a build with the `failpoints` feature, which only the tests
//! crate turns on (a release build of the controller alone carries none: [`park`] is an empty
//! inline function there), and only when the `BOLTFLEET_FAILPOINTS` environment variable names
//! a directory: the thread that reaches point `name` parks while the file `<dir>/<name>` exists,
//! logging when it parks and when it goes on. The points are set out of band, by environment
//! and files, like gofail's `GOFAIL_FAILPOINTS`, so that no config or CLI surface carries a test
//! hook. fail-rs was the other candidate: its `pause` is released only from inside the process,
//! and it would bring a third version of `rand` into the tree for these few lines.

/// Where the scheduler has decided a tick and not yet written the rollout's new state.
pub const SCHEDULER_BEFORE_WRITE: &str = "scheduler-before-write";

#[cfg(feature = "failpoints")]
mod armed {
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::time::Duration;

    use tracing::warn;

    /// The variable naming the directory of the points' files.
    const VARIABLE: &str = "BOLTFLEET_FAILPOINTS";

    /// How often a parked thread looks whether its file is gone.
    const POLL: Duration = Duration::from_millis(50);

    fn dir() -> Option<&'static PathBuf> {
        static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
        DIR.get_or_init(|| std::env::var_os(VARIABLE).map(PathBuf::from))
            .as_ref()
    }

    pub fn announce() {
        if let Some(dir) = dir() {
            warn!(dir = %dir.display(), "failpoints armed");
        }
    }

    pub fn park(name: &str) {
        let Some(file) = dir().map(|dir| dir.join(name)) else {
            return;
        };
        if !file.exists() {
            return;
        }
        warn!(failpoint = name, "failpoint: parked");
        while file.exists() {
            std::thread::sleep(POLL);
        }
        warn!(failpoint = name, "failpoint: released");
    }
}

/// Logs that the points are armed, when they are (so a test can tell a build without them).
#[inline(always)]
pub fn announce() {
    #[cfg(feature = "failpoints")]
    armed::announce();
}

/// Parks this thread while point `name` is set (see the module's doc); nothing otherwise.
#[inline(always)]
pub fn park(name: &str) {
    #[cfg(feature = "failpoints")]
    armed::park(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
