//! The `boltfleet-agent` command line, in the library so the man page is generated from the
//! same definition (by `xtask`, which keeps clap_mangen out of the agent binary).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The Boltfleet agent for one passbolt host.
#[derive(Parser)]
#[command(name = "boltfleet-agent", version)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "BOLTFLEET_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What the agent is asked to do.
#[derive(Subcommand)]
pub enum Command {
    /// Enroll this host: make a key here, send a CSR with the join token, store the certificate.
    Enroll {
        /// Controller URL, https://host:port.
        #[arg(long)]
        controller: String,
        /// Join token from `boltfleet token create` (or BOLTFLEET_JOIN_TOKEN, kept out of ps).
        #[arg(long, env = "BOLTFLEET_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// CA fingerprint printed by `boltfleet-controller init`, sha256:<hex>.
        #[arg(long)]
        ca_pin: String,
        /// Agent config file (its state_dir receives the key and certificate).
        #[arg(long)]
        config: PathBuf,
        /// Ask for this host id instead of the token's (the controller refuses a mismatch).
        #[arg(long, hide = true)]
        host_id: Option<String>,
    },
    /// Connect to the controller and report this host; reconnects forever.
    Run {
        /// Agent config file (see deploy/agent.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Print what the agent would report, as JSON, without a controller.
    Inventory {
        /// Agent config file.
        #[arg(long)]
        config: PathBuf,
    },
}
