//! `boltfleet-agent`: enroll this host, report it to the controller, show its inventory.

use std::process::ExitCode;

use boltfleet_agent::cli::{Cli, Command};
use boltfleet_agent::config::AgentConfig;
use boltfleet_agent::credentials::CredentialFiles;
use boltfleet_agent::jobs::lock::JobLock;
use boltfleet_agent::state_lock::StateLockError;
use boltfleet_agent::{enroll, inventory};
use boltfleet_common::identity::HostId;
use boltfleet_common::{process, telemetry, tls};
use clap::Parser;

fn main() -> ExitCode {
    tls::install_crypto_provider();
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&err),
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    let path = match &command {
        Command::Enroll { config, .. }
        | Command::Run { config }
        | Command::Inventory { config } => config.clone(),
    };
    let config = match AgentConfig::load(&path) {
        Ok(config) => config,
        Err(err) => return usage(&err),
    };
    match command {
        Command::Enroll {
            controller,
            token,
            ca_pin,
            host_id,
            ..
        } => {
            let host_id = match host_id.map(|h| HostId::new(&h)).transpose() {
                Ok(h) => h,
                Err(err) => return usage(&err),
            };
            let files = CredentialFiles::new(&config.state_dir);
            match enroll::enroll(&controller, &token, &ca_pin, &files, host_id).await {
                Ok(host) => {
                    eprintln!("enrolled as {host}");
                    ExitCode::SUCCESS
                }
                Err(err @ (enroll::EnrollError::Token(_) | enroll::EnrollError::Pki(_))) => {
                    usage(&err)
                }
                Err(err) => fail(&err),
            }
        }
        Command::Run { .. } => match boltfleet_agent::run(config, process::shutdown_signal()).await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(
                err @ (boltfleet_agent::AgentError::Credentials(_)
                | boltfleet_agent::AgentError::StateDir(StateLockError::Busy { .. })),
            ) => usage(&err),
            Err(err) => fail(&err),
        },
        Command::Inventory { .. } => {
            // A running job owns the host: its database and tree are not probed under it.
            let lock_path = config.state_dir.join("job.lock");
            let _job_lock = match JobLock::try_acquire(&lock_path) {
                Ok(Some(lock)) => Some(lock),
                Ok(None) => {
                    return fail(&format!(
                        "a job is running on this host ({} is held); try again when it ended",
                        lock_path.display()
                    ))
                }
                // No state dir yet (not enrolled): no job can run either.
                Err(_) => None,
            };
            let inventory = inventory::collect(&config).await;
            match serde_json::to_string_pretty(&inventory) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&err),
            }
        }
    }
}

fn usage(err: &dyn std::fmt::Display) -> ExitCode {
    process::exit_usage("boltfleet-agent", err)
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    process::exit_failure("boltfleet-agent", err)
}
