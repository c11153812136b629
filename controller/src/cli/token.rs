//! `boltfleet token ...`: join tokens for enrolling agents.

use boltfleet_common::proto::CreateTokenRequest;

use super::args::{label_map, TokenCommand, TokenCreateArgs};
use super::client::{call, connect};
use super::config::Connection;
use super::error::CliError;
use super::rows::rfc3339;
use super::write_stdout;

pub async fn run(conn: &Connection, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create(args) => create(conn, args).await,
    }
}

/// Prints only the token on stdout, so `TOKEN=$(boltfleet token create ...)` works; the
/// expiry goes to stderr.
async fn create(conn: &Connection, args: TokenCreateArgs) -> Result<(), CliError> {
    let labels = label_map(&args.labels).map_err(CliError::Usage)?;
    let request = CreateTokenRequest {
        host_id: args.host_id.to_string(),
        tenant: args.tenant,
        labels: labels.into_iter().collect(),
        ttl_seconds: args.ttl.as_secs(),
    };
    let mut admin = connect(conn).await?;
    let response = call("create token", admin.create_token(request)).await?;
    write_stdout(&format!("{}\n", response.token))?;
    match rfc3339(response.expires_at) {
        Some(at) => eprintln!("token for host {} expires at {at}", args.host_id),
        None => eprintln!("token for host {} created", args.host_id),
    }
    Ok(())
}
