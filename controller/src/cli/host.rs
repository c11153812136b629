//! `boltfleet host ...`: acting on one host.

use boltfleet_common::proto::RevokeHostRequest;

use super::args::HostCommand;
use super::client::{call, connect};
use super::config::Connection;
use super::error::CliError;

pub async fn run(conn: &Connection, command: HostCommand) -> Result<(), CliError> {
    match command {
        HostCommand::Revoke { id } => {
            let mut admin = connect(conn).await?;
            let request = RevokeHostRequest {
                host_id: id.to_string(),
            };
            call(&format!("revoke host {id}"), admin.revoke_host(request)).await?;
            eprintln!("host {id} revoked: its certificate is refused from now on");
            Ok(())
        }
    }
}
