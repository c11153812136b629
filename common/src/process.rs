//! What every Boltfleet binary does at its edges: wait for a stop signal, exit with one line.

use std::fmt::Display;
use std::process::ExitCode;

use crate::config::EXIT_CONFIG;

/// Completes on SIGINT or SIGTERM: the shutdown future handed to each `run(config, shutdown)`.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Bad config or input: one line naming the problem, exit status 64.
pub fn exit_usage(program: &str, err: &dyn Display) -> ExitCode {
    eprintln!("{program}: {err}");
    ExitCode::from(EXIT_CONFIG as u8)
}

/// Any other failure: one line, exit status 1.
pub fn exit_failure(program: &str, err: &dyn Display) -> ExitCode {
    eprintln!("{program}: {err}");
    ExitCode::FAILURE
}

/// Raises the soft limit on open files to the hard limit (a server holds one socket per peer);
/// returns the limit now in force, `None` when unlimited or unknown.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum?;
    if limit.current != Some(hard) {
        let raised = Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if setrlimit(Resource::Nofile, raised).is_err() {
            return limit.current;
        }
    }
    Some(hard)
}
