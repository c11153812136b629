//! Command-line arguments of `rollout`, `freeze` and `window`. Values are checked here with
//! the controller's own parsers (so a typo fails before any connection, exit 64) and sent
//! through the controller's own encoder ([`crate::wire::rollout::SpecInput`]).

use std::time::Duration;

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::RolloutSpec as WireSpec;
use boltfleet_common::version::Version;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use super::args::{parse_label, parse_version, Format};
use crate::rollout::spec::{parse_max_failures, parse_waves};
use crate::rollout::{FailureBudget, Selector, WaveSize};
use crate::wire::rollout::SpecInput;

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Plan and start a staggered rollout; prints only its id on stdout
    Start(SpecArgs),
    /// Show what a rollout with these flags would do now (per wave and host); starts nothing
    Plan {
        #[command(flatten)]
        spec: SpecArgs,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Every rollout, oldest first
    List {
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// A rollout's progress, per wave and per host
    Status {
        /// Rollout id (printed by `rollout start`)
        id: String,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Follow a rollout live until it completes (exit 0), pauses or is aborted (exit 1)
    Watch {
        /// Rollout id
        id: String,
    },
    /// Start no new host; hosts in flight finish
    Pause(ActionArgs),
    /// Go on after a pause, accepting the failures so far
    Resume(ActionArgs),
    /// Approve the next wave of a rollout started with --manual-promote
    Promote(ActionArgs),
    /// Stop the rollout for good; hosts in flight finish
    Abort {
        #[command(flatten)]
        action: ActionArgs,
        /// Also roll back the hosts this rollout updated, as many at once as it allows
        #[arg(long)]
        rollback: bool,
    },
    /// Approve a rollout awaiting approval (two-person rule): it starts; its creator may not
    Approve(ActionArgs),
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    /// Rollout id
    pub id: String,
    /// Why, for the audit log and the rollout's status
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Cumulative wave sizes, e.g. `1,10%,100%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waves(pub Vec<WaveSize>);

fn waves(text: &str) -> Result<Waves, String> {
    parse_waves(text).map(Waves).map_err(|e| e.to_string())
}

fn budget(text: &str) -> Result<FailureBudget, String> {
    parse_max_failures(text).map_err(|e| e.to_string())
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// Which hosts, in which waves, how fast: shared by `rollout start` and `rollout plan`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("narrow").args(["hosts", "tenants", "labels"]).multiple(true)))]
pub struct SpecArgs {
    /// Target release X.Y.Z (patch or minor updates; other hosts are skipped)
    #[arg(long, value_name = "X.Y.Z", value_parser = parse_version)]
    pub to: Version,
    /// Every enrolled host (the default when no --host, --tenant or --label is given)
    #[arg(long, value_enum, value_name = "all", conflicts_with = "narrow")]
    pub select: Option<Select>,
    /// Only these hosts
    #[arg(long = "host", value_name = "ID", num_args = 1..)]
    pub hosts: Vec<HostId>,
    /// Only hosts of this tenant (repeatable)
    #[arg(long = "tenant", value_name = "TENANT")]
    pub tenants: Vec<String>,
    /// Only hosts with this label (repeatable; all must match)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Cumulative wave sizes: counts or percentages of the eligible hosts, ending at 100%
    #[arg(long, value_name = "1,10%,100%", value_parser = waves)]
    pub waves: Waves,
    /// Hosts updating at once
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: u32,
    /// Failures tolerated before the rollout pauses: a count or a percentage (0: the first)
    #[arg(long, value_name = "N|P%", value_parser = budget)]
    pub max_failures: FailureBudget,
    /// How long a finished wave must stay healthy before the next starts [default: 10m]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub soak: Option<Duration>,
    /// Wait for `rollout promote` before each next wave
    #[arg(long)]
    pub manual_promote: bool,
    /// Hosts of one tenant updating at once
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel_per_tenant: Option<u32>,
    /// How long a host may take to be healthy at the target [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub healthy_deadline: Option<Duration>,
    /// How long the rollout may run before it pauses [default: none]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub progress_deadline: Option<Duration>,
    /// How long a host whose turn came may stay offline or unhealthy before it is skipped [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ready_timeout: Option<Duration>,
    /// A host starts only when its window stays open this long [default: 30m]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub expected_job_duration: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Select {
    All,
}

impl SpecArgs {
    /// The spec as the operator wrote it (unset flags: the controller's defaults).
    pub fn input(&self) -> SpecInput {
        SpecInput {
            target: self.to.clone(),
            selector: Selector {
                hosts: self.hosts.iter().map(|h| h.to_string()).collect(),
                tenants: self.tenants.iter().cloned().collect(),
                labels: self.labels.iter().cloned().collect(),
            },
            waves: self.waves.0.clone(),
            max_parallel: Some(self.max_parallel),
            max_parallel_per_tenant: self.max_parallel_per_tenant,
            max_failures: Some(self.max_failures),
            soak: self.soak,
            manual_promote: self.manual_promote,
            healthy_deadline: self.healthy_deadline,
            progress_deadline: self.progress_deadline,
            ready_timeout: self.ready_timeout,
            expected_job_duration: self.expected_job_duration,
        }
    }

    /// The spec as the wire carries it.
    pub fn to_wire(&self) -> WireSpec {
        self.input().to_wire()
    }
}

/// `freeze on|off [--tenant T]`.
#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// on: no update starts (running ones finish); off: updates may start again
    #[arg(value_enum)]
    pub state: OnOff,
    /// Only this tenant (default: the whole fleet)
    #[arg(long, value_name = "TENANT", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum WindowCommand {
    /// Set when hosts of a tenant (or one host) may be updated; a host's own window wins
    Set {
        #[command(flatten)]
        target: WindowTarget,
        /// Openings as 5-field cron, read in --tz, e.g. "0 22 * * *"
        #[arg(long)]
        cron: String,
        /// How long each opening lasts, e.g. 4h
        #[arg(long, value_parser = duration)]
        duration: Duration,
        /// IANA time zone, e.g. Europe/Paris
        #[arg(long, default_value = "UTC")]
        tz: String,
    },
    /// Remove a tenant's or host's window (its hosts may then start at any time)
    Clear {
        #[command(flatten)]
        target: WindowTarget,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct WindowTarget {
    /// The tenant's window
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub tenant: Option<String>,
    /// One host's window
    #[arg(long = "host", value_name = "ID")]
    pub host: Option<HostId>,
}

#[cfg(test)]
mod tests {
    use super::super::args::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["boltfleet"].iter().chain(args))
    }

    fn start(extra: &[&str]) -> Result<SpecArgs, String> {
        let base = [
            "rollout",
            "start",
            "--to",
            "1.3.2",
            "--waves",
            "1,10%,100%",
            "--max-parallel",
            "4",
        ];
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        match parse(&args).map_err(|e| e.to_string())?.command {
            Command::Rollout(RolloutCommand::Start(spec)) => Ok(spec),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn start_parses_waves_budgets_and_durations_into_the_wire_spec() {
        let spec = start(&["--max-failures", "5%", "--soak", "15m", "--manual-promote"]).unwrap();
        assert_eq!(
            spec.waves.0,
            [
                WaveSize::Count(1),
                WaveSize::Percent(10),
                WaveSize::Percent(100)
            ]
        );
        assert_eq!(spec.max_failures, FailureBudget::Percent(5));
        let wire = spec.to_wire();
        assert_eq!(wire.waves, "1,10%,100%");
        assert_eq!(wire.max_failures, "5%");
        assert_eq!(wire.soak, "15m");
        assert_eq!(wire.max_parallel, Some(4));
        assert!(wire.select_all && wire.manual_promote);
        assert_eq!(wire.healthy_deadline, "", "unset: the controller's default");
        let spec = crate::wire::rollout::spec_from_wire(&wire).expect("the controller accepts it");
        assert_eq!(spec.min_healthy_time.as_secs(), 900);
        assert_eq!(
            start(&["--max-failures", "2"])
                .unwrap()
                .to_wire()
                .max_failures,
            "2"
        );
    }

    #[test]
    fn selections_narrow_or_select_all_but_not_both() {
        let spec = start(&[
            "--max-failures",
            "0",
            "--host",
            "web1",
            "web2",
            "--tenant",
            "acme",
            "--label",
            "env=prod",
        ])
        .unwrap();
        let wire = spec.to_wire();
        assert_eq!(wire.hosts, ["web1", "web2"]);
        assert_eq!(wire.tenants, ["acme"]);
        assert_eq!(wire.labels.get("env").map(String::as_str), Some("prod"));
        assert!(!wire.select_all);
        assert!(
            start(&["--max-failures", "0", "--select", "all"])
                .unwrap()
                .to_wire()
                .select_all
        );
        let err =
            start(&["--max-failures", "0", "--select", "all", "--tenant", "acme"]).unwrap_err();
        assert!(err.contains("cannot be used with"), "{err}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cases: [(&[&str], &str); 5] = [
            (&["--max-failures", "lots"], "--max-failures"),
            (&["--max-failures", "0", "--soak", "soon"], "--soak"),
            (&["--max-failures", "101%"], "--max-failures"),
            (&[], "--max-failures"),
            (
                &["--max-failures", "0", "--max-parallel-per-tenant", "0"],
                "--max-parallel-per-tenant",
            ),
        ];
        for (extra, flag) in cases {
            let err = start(extra).unwrap_err();
            assert!(err.contains(flag), "{extra:?}: {err}");
        }
        let err = parse(&[
            "rollout",
            "plan",
            "--to",
            "1.3.2",
            "--waves",
            "1,0%,100%",
            "--max-parallel",
            "1",
            "--max-failures",
            "0",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("waves[1]"), "{err}");
        let err = parse(&[
            "rollout",
            "start",
            "--to",
            "1.3.2",
            "--waves",
            "1,100%",
            "--max-parallel",
            "0",
            "--max-failures",
            "0",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--max-parallel"), "{err}");
    }

    #[test]
    fn steering_freeze_and_window_commands_parse() {
        let cli = parse(&["rollout", "abort", "r1", "--rollback", "--reason", "bad"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Rollout(RolloutCommand::Abort { rollback: true, .. })
        ));
        assert!(parse(&["rollout", "status", "r1", "--format", "json"]).is_ok());
        assert!(parse(&["rollout", "watch", "r1"]).is_ok());
        for verb in ["pause", "resume", "promote"] {
            assert!(parse(&["rollout", verb, "r1"]).is_ok(), "{verb}");
        }
        let cli = parse(&["freeze", "on", "--tenant", "acme"]).unwrap();
        let Command::Freeze(args) = cli.command else {
            panic!()
        };
        assert_eq!(
            (args.state, args.tenant.as_deref()),
            (OnOff::On, Some("acme"))
        );
        assert!(parse(&["freeze", "off"]).is_ok());
        assert!(parse(&["freeze", "on", "--tenant", ""]).is_err());
        let set = [
            "window",
            "set",
            "--cron",
            "0 22 * * *",
            "--duration",
            "4h",
            "--tz",
            "Europe/Paris",
        ];
        assert!(parse(&set).is_err(), "--tenant or --host is required");
        assert!(parse(&[&set[..], &["--tenant", "acme"]].concat()).is_ok());
        assert!(parse(&[&set[..], &["--host", "web1"]].concat()).is_ok());
        assert!(parse(&[&set[..], &["--tenant", "acme", "--host", "web1"]].concat()).is_err());
        assert!(parse(&["window", "clear", "--host", "web1"]).is_ok());
    }
}
