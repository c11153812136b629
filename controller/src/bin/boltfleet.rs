//! `boltfleet`: the operator CLI, a thin process wrapper over `boltfleet_controller::cli`.

use std::process::ExitCode;

use boltfleet_common::config::EXIT_CONFIG;
use boltfleet_controller::cli::{self, Cli};
use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    boltfleet_common::tls::install_crypto_provider();
    // Quiet unless asked: stdout carries data and stderr one line per error.
    if std::env::var_os("RUST_LOG").is_some() {
        boltfleet_common::telemetry::init(false);
    }
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap's own message names the bad argument; usage errors exit 64 like config ones.
            let _ = err.print();
            return exit(if err.use_stderr() { EXIT_CONFIG } else { 0 });
        }
    };
    cli.default_config = std::env::home_dir().map(|home| cli::default_config_path(&home));
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Errors quote the controller, which may quote a host: one safe line.
            eprintln!("boltfleet: {}", cli::safe::text(&err.to_string()));
            exit(err.exit_code())
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
