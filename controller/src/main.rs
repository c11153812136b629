//! `boltfleet-controller`: create the PKI, issue operator certificates, serve the fleet, move a
//! sled store into etcd.

use std::process::ExitCode;

use boltfleet_common::grant::{Grant, Role};
use boltfleet_common::identity::IdentityError;
use boltfleet_common::{process, telemetry, tls};
use boltfleet_controller::ca::{self, CaError};
use boltfleet_controller::command::{Cli, Command};
use boltfleet_controller::config::ControllerConfig;
use boltfleet_controller::state::migrate;
use boltfleet_controller::state::open::StoreConfig;
use clap::Parser;

fn main() -> ExitCode {
    tls::install_crypto_provider();
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    match cli.command {
        Command::Init {
            data_dir,
            sans,
            join,
        } => {
            let made = match &join {
                Some(from) => ca::join(&data_dir, from, &sans),
                None => ca::init(&data_dir, &sans),
            };
            match made {
                Ok(pin) => {
                    println!("{pin}");
                    ExitCode::SUCCESS
                }
                Err(err) if err.is_usage() => usage(&err),
                Err(err) => fail(&err),
            }
        }
        Command::OperatorCert {
            data_dir,
            name,
            role,
            tenants,
            all_tenants,
            out,
        } => match grant(&role, &tenants, all_tenants) {
            Err(err) => usage(&err),
            Ok(grant) => match ca::operator_cert(&data_dir, &name, &grant, &out) {
                Ok(files) => {
                    for file in files {
                        eprintln!("wrote {}", file.display());
                    }
                    eprintln!("operator {name}: {grant}");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&err),
            },
        },
        Command::Serve {
            data_dir,
            listen,
            config,
        } => {
            let config = match (config, data_dir) {
                (Some(path), _) => match ControllerConfig::load(&path) {
                    Ok(c) => c,
                    Err(err) => return usage(&err),
                },
                (None, Some(dir)) => ControllerConfig::new(dir, listen),
                (None, None) => unreachable!("clap requires --data-dir or --config"),
            };
            serve(config)
        }
        Command::MigrateStore {
            from_data_dir,
            to_etcd,
            prefix,
            etcd_ca,
            etcd_cert,
            etcd_key,
            force,
        } => {
            let mut store = StoreConfig::etcd(to_etcd, prefix);
            (store.ca, store.cert, store.key) = (etcd_ca, etcd_cert, etcd_key);
            let copied = migrate::migrate_store(&from_data_dir, &store, force, |tree, n| {
                println!("{tree}\t{n}");
            });
            match copied {
                Ok(total) => {
                    eprintln!(
                        "copied {total} records into etcd at {} under {}",
                        store.endpoints.join(","),
                        store.prefix
                    );
                    ExitCode::SUCCESS
                }
                Err(err @ migrate::MigrateError::Usage(_)) => usage(&err),
                Err(err) => fail(&err),
            }
        }
    }
}

/// The grant of `operator-cert`: a viewer or operator names its tenants or says it has all.
fn grant(role: &str, tenants: &[String], all_tenants: bool) -> Result<Grant, String> {
    let role: Role = role.parse().map_err(|e: IdentityError| e.to_string())?;
    if role != Role::Admin && tenants.is_empty() && !all_tenants {
        return Err(format!(
            "a {role} needs --tenant T (repeatable) or --all-tenants"
        ));
    }
    Grant::new(role, tenants).map_err(|e| e.to_string())
}

fn serve(config: ControllerConfig) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&err),
    };
    match runtime.block_on(boltfleet_controller::run(
        config,
        process::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(boltfleet_controller::server::ServeError::Ca(err @ CaError::NotInitialized(_))) => {
            usage(&err)
        }
        Err(err) => fail(&err),
    }
}

fn usage(err: &dyn std::fmt::Display) -> ExitCode {
    process::exit_usage("boltfleet-controller", err)
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    process::exit_failure("boltfleet-controller", err)
}
