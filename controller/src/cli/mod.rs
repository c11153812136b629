//! The operator CLI `boltfleet`: parse ([`Cli`]), resolve the connection, call the controller's
//! AdminService, print. `src/bin/boltfleet.rs` only wires this to the process.
//!
//! One module per top-level noun (`token`, `host`, `fleet` for the listings, `rollout` with
//! `watch`, `window` for windows and freezes, `webhook`); a new subcommand is a variant in
//! [`args`] plus a function in its noun's module.

pub mod args;
mod client;
mod cluster;
pub mod config;
pub mod error;
mod fleet;
mod history;
mod host;
mod host_show;
#[cfg(test)]
mod hostile_tests;
mod job;
mod operator;
pub mod plan_view;
pub mod render;
mod rollout;
pub mod rollout_args;
pub mod rollout_view;
pub mod rows;
pub mod safe;
mod token;
pub mod ui;
mod watch;
mod webhook;
pub mod webhook_args;
mod window;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use args::{Cli, Command, Format};
pub use error::CliError;

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        return write_stdout(&completions(shell));
    }
    let file = config::load_file(cli.config.as_deref(), cli.default_config.as_deref())?;
    let conn = config::resolve(&cli.connection, file.as_ref())?;
    match cli.command {
        Command::Token(command) => token::run(&conn, command).await,
        Command::Hosts(args) => fleet::hosts(&conn, args).await,
        Command::Report(args) => fleet::report(&conn, args).await,
        Command::Host(command) => host::run(&conn, command).await,
        Command::Release(command) => host::release(&conn, command).await,
        Command::Job(command) => job::run(&conn, command).await,
        Command::Audit(args) => job::audit(&conn, args).await,
        Command::Rollout(command) => rollout::run(&conn, command).await,
        Command::Freeze(args) => window::freeze(&conn, args).await,
        Command::Window(command) => window::window(&conn, command).await,
        Command::Operator(command) => operator::run(&conn, command).await,
        Command::Policy(command) => operator::policy(&conn, command).await,
        Command::Whoami => operator::whoami(&conn).await,
        Command::Webhook(command) => webhook::run(&conn, command).await,
        Command::Cluster(command) => cluster::run(&conn, command).await,
        Command::Ui(args) => ui::run(&conn, args).await,
        Command::Completions { .. } => unreachable!("answered before connecting"),
    }
}

/// The completion script of `boltfleet` for `shell`; needs no controller.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "boltfleet", &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

/// The config file used when `--config` is not given: `~/.config/boltfleet/cli.toml`.
pub fn default_config_path(home: &Path) -> PathBuf {
    home.join(config::DEFAULT_CONFIG)
}

/// Writes output rendered in `format`: JSON exactly as rendered, tables, plain text and CSV
/// through the last guard [`safe::lines`], so that no control character but the line breaks
/// reaches the terminal.
fn write_output(format: Format, text: &str) -> Result<(), CliError> {
    match format {
        Format::Json => write_stdout(text),
        Format::Table | Format::Csv => write_stdout(&safe::lines(text)),
    }
}

/// Writes command output to stdout; a closed pipe (`boltfleet hosts | head`) is not an error.
fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Output(err)),
        _ => Ok(()),
    }
}
