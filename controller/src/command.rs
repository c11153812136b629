//! The `boltfleet-controller` command line, in the library so the man page is generated from
//! the same definition (by `xtask`; the binaries carry no man page generator).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The Boltfleet controller: keeps the fleet's inventory and hands out update jobs.
#[derive(Parser)]
#[command(name = "boltfleet-controller", version)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "BOLTFLEET_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What the controller is asked to do.
#[derive(Subcommand)]
pub enum Command {
    /// Create the CA and the controller's server certificate; prints the CA pin.
    Init {
        /// Directory for the CA, certificates and state.
        #[arg(long)]
        data_dir: PathBuf,
        /// DNS name or IP address agents use to reach the controller (repeatable).
        #[arg(long = "san")]
        sans: Vec<String>,
    },
    /// Serve agents, enrollment and operators over TLS.
    Serve {
        /// Directory created by `init`.
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        data_dir: Option<PathBuf>,
        /// Listen address [default: 0.0.0.0:7443].
        #[arg(long, conflicts_with = "config")]
        listen: Option<SocketAddr>,
        /// TOML config file (data_dir, listen, agent_cert_validity).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write an operator certificate and key (run on the controller host).
    OperatorCert {
        /// Directory created by `init`.
        #[arg(long)]
        data_dir: PathBuf,
        /// Operator name, recorded in the audit log.
        #[arg(long)]
        name: String,
        /// What the operator may do: viewer (reads), operator (starts and steers jobs and
        /// rollouts of its tenants), admin (everything; the default, for the first operator).
        #[arg(long, value_parser = ["viewer", "operator", "admin"], default_value = "admin")]
        role: String,
        /// A tenant the operator sees and acts on (repeatable). A viewer or operator needs at
        /// least one, or --all-tenants; an admin's scope is always the whole fleet.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// A viewer or operator over the whole fleet.
        #[arg(long, conflicts_with = "tenants")]
        all_tenants: bool,
        /// Directory for ca.crt, NAME.crt and NAME.key.
        #[arg(long)]
        out: PathBuf,
    },
}
