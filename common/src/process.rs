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
