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
    /// Create the CA and the controller's server certificate; prints the CA pin. With
    /// --join, another controller of the same fleet: the CA is taken from a copy of the first
    /// controller's CA files, the server certificate is this controller's own.
    Init {
        /// Directory for the CA, certificates and state.
        #[arg(long)]
        data_dir: PathBuf,
        /// DNS name or IP address agents use to reach the controller (repeatable).
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Directory holding a copy of the first controller's `ca.crt` and `ca.key`: this
        /// controller joins that CA (the pin printed is the first one's).
        #[arg(long, value_name = "DIR")]
        join: Option<PathBuf>,
    },
    /// Serve agents, enrollment and operators over TLS.
    Serve {
        /// Directory created by `init`.
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        data_dir: Option<PathBuf>,
        /// Listen address [default: 0.0.0.0:7443].
        #[arg(long, conflicts_with = "config")]
        listen: Option<SocketAddr>,
        /// TOML config file (data_dir, listen, agent_cert_validity, [limits], [store]).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Copy a sled controller's state into etcd, for several controllers to share (stop that
    /// controller first). Prints each tree's record count. Refuses an etcd prefix that already
    /// holds keys unless --force.
    MigrateStore {
        /// Data dir of the controller whose sled store is copied.
        #[arg(long)]
        from_data_dir: PathBuf,
        /// etcd client URLs, comma-separated: http://host:port or https://host:port.
        #[arg(long, value_delimiter = ',', required = true)]
        to_etcd: Vec<String>,
        /// Key prefix of the state in etcd (starts and ends with /), as in `[store] prefix`.
        #[arg(long, default_value = "/boltfleet/")]
        prefix: String,
        /// CA of the etcd members' certificates (https:// endpoints).
        #[arg(long)]
        etcd_ca: Option<PathBuf>,
        /// Client certificate for etcd, with --etcd-key.
        #[arg(long, requires = "etcd_key")]
        etcd_cert: Option<PathBuf>,
        /// Client key for etcd, with --etcd-cert.
        #[arg(long, requires = "etcd_cert")]
        etcd_key: Option<PathBuf>,
        /// Copy into a prefix that holds keys already: the keys copied are replaced, the
        /// others stay.
        #[arg(long)]
        force: bool,
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
