//! The `boltfleet` command line: global connection flags and one subcommand tree.
//!
//! Nouns first (`token create`, `host revoke`), so later verbs slot in beside the existing ones:
//! `host update ID --to X.Y.Z` is a new [`HostCommand`] variant, `job show ID` a new [`Command`]
//! with its own enum, and so on. The rollout, freeze and window arguments live in
//! [`super::rollout_args`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use boltfleet_common::identity::HostId;
use boltfleet_common::version::{parse_release, Version};
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use super::rollout_args::{
    ActionArgs, FreezeArgs, OnOff, RolloutCommand, Select, SpecArgs, WindowCommand, WindowTarget,
};
pub use super::webhook_args::WebhookCommand;

/// Operate a Boltfleet fleet through its controller.
///
/// Connection settings come from flags, then `BOLTFLEET_*` environment variables, then the
/// config file (keys `controller`, `ca`, `cert`, `key`).
#[derive(Debug, Parser)]
#[command(name = "boltfleet", version)]
pub struct Cli {
    #[command(flatten, next_help_heading = "Connection")]
    pub connection: ConnectionArgs,

    /// Config file [default: ~/.config/boltfleet/cli.toml, when it exists]
    #[arg(long, global = true, value_name = "FILE", help_heading = "Connection")]
    pub config: Option<PathBuf>,

    /// Where the default config file lives; filled in by `main`, never parsed from the
    /// command line (library code does not read the environment).
    #[arg(skip)]
    pub default_config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the controller and prove we are an operator. Each value is the flag, or
/// failing that its environment variable; the config file fills in what both leave out.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// Controller address, e.g. https://controller.example:7443
    #[arg(long, global = true, env = "BOLTFLEET_CONTROLLER", value_name = "URL")]
    pub controller: Option<String>,

    /// CA certificate (PEM) the controller's certificate is checked against
    #[arg(long, global = true, env = "BOLTFLEET_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Operator certificate (PEM)
    #[arg(long, global = true, env = "BOLTFLEET_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// Private key of the operator certificate (PEM)
    #[arg(long, global = true, env = "BOLTFLEET_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join tokens for enrolling agents
    #[command(subcommand)]
    Token(TokenCommand),
    /// List every host the controller knows
    Hosts(HostsArgs),
    /// Fleet report: versions, available updates, health and last jobs
    Report(ReportArgs),
    /// Act on one host
    #[command(subcommand)]
    Host(HostCommand),
    /// Inspect jobs
    #[command(subcommand)]
    Job(JobCommand),
    /// The append-only audit log: who did what, when
    Audit(AuditArgs),
    /// Staggered rollouts of a release across the fleet: plan, start, follow, steer
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Stop new updates across the fleet or for one tenant (`freeze on`), or allow them again
    Freeze(FreezeArgs),
    /// Maintenance windows: when a tenant's or a host's updates may start
    #[command(subcommand)]
    Window(WindowCommand),
    /// Operators: certificates with a role and tenants, the list, revocation (admins)
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Tenant policies: the two-person rule for rollouts (admins)
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Who the controller takes us for: name, role and tenants of our certificate
    Whoami,
    /// The release the fleet report measures updates against
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Webhooks: signed POSTs of rollout, job and host events to a URL (admins)
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// The controllers sharing the store, the scheduler's leader and the store's health
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The web dashboard on this machine: `boltfleet ui [--listen 127.0.0.1:8080] [--open]`
    Ui(super::ui::UiArgs),
    /// Print a shell completion script: `boltfleet completions bash > /etc/bash_completion.d/boltfleet`
    Completions {
        /// Shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Each controller (name, address, agents connected, leader or not, last seen) and etcd's
    /// members' health
    Status {
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Issue an operator certificate: a fresh key written to --out with the certificate, or
    /// the certificate for an existing CSR (--csr) on stdout
    Issue(OperatorIssueArgs),
    /// Operators the controller knows, with their certificates
    List {
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Refuse every certificate of an operator issued so far
    Revoke {
        /// Operator name
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct OperatorIssueArgs {
    /// Operator name, recorded in the audit log
    #[arg(long)]
    pub name: String,
    /// viewer (reads), operator (starts and steers jobs and rollouts of its tenants) or admin
    #[arg(long, value_parser = ["viewer", "operator", "admin"])]
    pub role: String,
    /// A tenant the operator sees and acts on (repeatable)
    #[arg(long = "tenant", value_name = "TENANT")]
    pub tenants: Vec<String>,
    /// A viewer or operator over the whole fleet
    #[arg(long, conflicts_with = "tenants")]
    pub all_tenants: bool,
    /// Directory for ca.crt, NAME.crt and NAME.key (a fresh key, 0600)
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "csr",
        conflicts_with = "csr"
    )]
    pub out: Option<PathBuf>,
    /// Sign this PKCS#10 request (its only SAN: spiffe://boltfleet/operator/NAME) instead
    #[arg(long, value_name = "FILE")]
    pub csr: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set a tenant's policy
    Set {
        #[arg(long)]
        tenant: String,
        /// Rollouts touching the tenant wait for a second operator's `rollout approve`
        #[arg(long, conflicts_with = "no_require_approval")]
        require_approval: bool,
        /// Rollouts touching the tenant start at once again
        #[arg(long)]
        no_require_approval: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Set the fleet's (or a tenant's) latest release; unset, it is the newest release that
    /// at least 2 hosts (of 2 tenants, when the fleet has several) report
    Latest {
        /// X.Y.Z (omit with --clear)
        #[arg(value_name = "X.Y.Z", value_parser = parse_version, required_unless_present = "clear")]
        version: Option<Version>,
        /// Only for this tenant's hosts
        #[arg(long, value_name = "TENANT", default_value = "")]
        tenant: String,
        /// Clear the setting instead
        #[arg(long, conflicts_with = "version")]
        clear: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Every step of a job with its state, duration and output tail
    Show {
        /// Job id (printed by `host update`)
        id: String,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Follow the job live until it ends (steps on stderr), giving up after DURATION;
        /// then print it and exit non-zero unless it succeeded
        #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "2h", value_parser = parse_ttl)]
        follow: Option<Duration>,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only the newest N entries (0: all)
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Waiting for a job's outcome.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait for the outcome; exit non-zero unless the job succeeded
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = parse_ttl)]
    pub wait_timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a one-time join token for a host; prints only the token on stdout
    Create(TokenCreateArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Id the host will enroll as
    #[arg(long, value_name = "ID")]
    pub host_id: HostId,

    /// Tenant the host belongs to
    #[arg(long, value_name = "TENANT", default_value = "")]
    pub tenant: String,

    /// Label for the host (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// How long the token stays valid (e.g. 30m, 1h, 2d)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Revoke a host: its certificate is refused from now on
    Revoke {
        /// Host id
        id: HostId,
    },
    /// One host in full: its whole inventory (list rows are summaries)
    Show {
        /// Host id
        id: HostId,
        /// Output format (csv prints as table)
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove a revoked host from the controller (refused for a host not revoked)
    Forget {
        /// Host id
        id: HostId,
    },
    /// Update a host to a release with passbolt's own procedure; prints the job id
    Update {
        /// Host id
        id: HostId,
        /// Target release X.Y.Z (a patch or minor update)
        #[arg(long, value_name = "X.Y.Z", value_parser = parse_version)]
        to: Version,
        /// Answer to a migration prompt, in order (default: n to the statistics question)
        #[arg(long = "answer", value_name = "TEXT", value_parser = parse_answer)]
        answers: Vec<String>,
        /// Leave the host in maintenance for a human instead of rolling back on failure
        #[arg(long)]
        no_auto_rollback: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Roll back the host's last update (previous release and its database backup)
    Rollback {
        /// Host id
        id: HostId,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Run passbolt's healthcheck on the host now; prints the job id
    Healthcheck {
        /// Host id
        id: HostId,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Take a verified database backup of the host now (kept like an update's); prints the job id
    Backup {
        /// Host id
        id: HostId,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Every job of the host, newest first: kind, target, outcome, times and backup id
    History {
        /// Host id
        id: HostId,
        /// Output format (csv prints as table)
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Compare against this X.Y.Z instead of the newest release seen in the fleet
    #[arg(long, value_name = "X.Y.Z", value_parser = parse_version)]
    pub latest: Option<Version>,
}

/// How listings are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people
    Table,
    /// One JSON object
    Json,
    /// A header line, then one line per host
    Csv,
}

/// Parses `KEY=VALUE`; the key must not be empty, the value may be.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        Some(_) => Err(format!("label {text:?} has an empty key")),
        None => Err(format!("label {text:?} is not KEY=VALUE")),
    }
}

/// Collects labels into a map, refusing a key given twice.
pub fn label_map(labels: &[(String, String)]) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for (key, value) in labels {
        if map.insert(key.clone(), value.clone()).is_some() {
            return Err(format!("--label {key} given more than once"));
        }
    }
    Ok(map)
}

/// A migration prompt answer: one line of printable text.
fn parse_answer(text: &str) -> Result<String, String> {
    if text.len() > 64 || text.chars().any(|c| c.is_control()) {
        return Err("an answer is one short line of text".to_string());
    }
    Ok(text.to_string())
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| format!("{e}"))?;
    if ttl.as_secs() == 0 {
        return Err("must be at least one second".to_string());
    }
    Ok(ttl)
}

pub(crate) fn parse_version(text: &str) -> Result<Version, String> {
    parse_release(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn labels_are_key_equals_value() {
        assert_eq!(parse_label("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(parse_label("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert_eq!(parse_label("empty="), Ok(("empty".into(), String::new())));
        let err = parse_label("prod").unwrap_err();
        assert!(err.contains("\"prod\""), "{err}");
        assert!(parse_label("=v").is_err());
    }

    #[test]
    fn duplicate_label_keys_are_refused() {
        let labels = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        assert!(label_map(&labels).unwrap_err().contains("--label a"));
    }

    #[test]
    fn bad_label_is_a_parse_error_naming_it() {
        let err = Cli::try_parse_from([
            "boltfleet",
            "token",
            "create",
            "--host-id",
            "h1",
            "--label",
            "nope",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn token_create_defaults() {
        let cli = Cli::try_parse_from([
            "boltfleet",
            "token",
            "create",
            "--host-id",
            "h1",
            "--label",
            "env=prod",
            "--label",
            "dc=a",
        ])
        .unwrap();
        let Command::Token(TokenCommand::Create(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.ttl, Duration::from_secs(3600));
        assert_eq!(args.tenant, "");
        assert_eq!(args.labels.len(), 2);
    }

    #[test]
    fn ttl_and_latest_are_validated() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&[
            "boltfleet",
            "token",
            "create",
            "--host-id",
            "h",
            "--ttl",
            "soon"
        ])
        .is_err());
        assert!(parse(&[
            "boltfleet",
            "token",
            "create",
            "--host-id",
            "h",
            "--ttl",
            "0s"
        ])
        .is_err());
        assert!(parse(&["boltfleet", "report", "--latest", "v1.2.3"]).is_err());
        assert!(parse(&[
            "boltfleet",
            "report",
            "--latest",
            "1.2.3",
            "--format",
            "json"
        ])
        .is_ok());
    }

    #[test]
    fn connection_flags_fall_back_to_the_environment() {
        let command = Cli::command();
        for (flag, var) in [
            ("controller", "BOLTFLEET_CONTROLLER"),
            ("ca", "BOLTFLEET_CA"),
            ("cert", "BOLTFLEET_CERT"),
            ("key", "BOLTFLEET_KEY"),
        ] {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == flag)
                .unwrap();
            assert_eq!(arg.get_env().and_then(|v| v.to_str()), Some(var), "{flag}");
        }
        command.debug_assert();
    }
}
