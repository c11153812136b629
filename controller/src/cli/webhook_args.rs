//! Command-line arguments of `webhook`. Event names are checked here against the
//! controller's own list (a typo fails before any connection, exit 64, naming it); the URL
//! and the secret are checked by the controller.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::Subcommand;

use super::args::Format;
use crate::webhook::EventType;

fn event_names() -> PossibleValuesParser {
    PossibleValuesParser::new(EventType::SUBSCRIBABLE.map(EventType::as_str))
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Send fleet events to a URL, signed with a secret; prints only the webhook's id
    Add {
        /// Where to POST: http:// or https://, without user:password@
        #[arg(long, value_name = "URL")]
        url: String,
        /// Event types to send, comma-separated
        #[arg(long, value_name = "TYPE,...", value_delimiter = ',', required = true, value_parser = event_names())]
        events: Vec<String>,
        /// Only events of this tenant's hosts and rollouts [default: every tenant]
        #[arg(long, value_name = "TENANT", default_value = "")]
        tenant: String,
        /// File holding the signing secret (at least 16 bytes; one trailing newline is ignored).
        /// Never given on the command line, where other users could read it
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// Every webhook, with its pending and failed deliveries
    List {
        /// Output format (csv prints as table)
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove a webhook and every delivery of it
    Remove {
        /// Webhook id (printed by `webhook add`)
        id: String,
    },
    /// Send a `test` event to a webhook and report how its delivery went (exit 1 unless the
    /// receiver acknowledged it)
    Test {
        /// Webhook id
        id: String,
        /// How long to wait for the first attempt's outcome
        #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_wait)]
        wait_timeout: Duration,
    },
    /// A webhook's last deliveries, newest first: event, type, attempts, last status or error
    Deliveries {
        /// Webhook id
        id: String,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Output format (csv prints as table)
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::args::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(args.iter().copied()).map_err(|e| e.to_string())
    }

    #[test]
    fn events_are_a_comma_separated_list_of_known_types() {
        let cli = parse(&[
            "boltfleet",
            "webhook",
            "add",
            "--url",
            "https://hooks.example/x",
            "--events",
            "rollout.paused,job.rolled_back",
            "--secret-file",
            "s",
        ])
        .unwrap();
        let Command::Webhook(WebhookCommand::Add { events, tenant, .. }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(events, ["rollout.paused", "job.rolled_back"]);
        assert_eq!(tenant, "");
        let err = parse(&[
            "boltfleet",
            "webhook",
            "add",
            "--url",
            "https://hooks.example/x",
            "--events",
            "rollout.paused,host.down",
            "--secret-file",
            "s",
        ])
        .unwrap_err();
        assert!(
            err.contains("'host.down'") && err.contains("host.unhealthy"),
            "{err}"
        );
    }

    #[test]
    fn the_secret_comes_from_a_file_only() {
        let err = parse(&[
            "boltfleet",
            "webhook",
            "add",
            "--url",
            "https://hooks.example/x",
            "--events",
            "host.offline",
            "--secret",
            "hunter2",
        ])
        .unwrap_err();
        assert!(err.contains("--secret"), "{err}");
    }
}
