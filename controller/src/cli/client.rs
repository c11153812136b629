//! The operator's connection to the controller's AdminService, and calls with a deadline.

use std::future::Future;
use std::time::Duration;

use boltfleet_common::proto::admin_service_client::AdminServiceClient;
use boltfleet_common::tls;
use tonic::transport::Channel;
use tonic::{Response, Status};

use super::config::Connection;
use super::error::CliError;

/// How long one call may take before the CLI gives up; every admin call is a short lookup.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting, TLS handshake included, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected AdminService client.
pub type AdminClient = AdminServiceClient<Channel>;

/// Reads the TLS files and connects now, so an unreachable or untrusted controller fails here
/// with its address in the message.
pub async fn connect(conn: &Connection) -> Result<AdminClient, CliError> {
    let tls = conn.client_tls()?;
    // The channel's own timeout covers the TCP connect only: a controller (or a middlebox)
    // that accepts and then stalls the TLS handshake must not hang the CLI.
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, tls::connect(&conn.controller, &tls))
        .await
        .map_err(|_| {
            CliError::Connect(format!(
                "cannot connect to {}: no TLS handshake within {}s (is it a Boltfleet controller, and is it overloaded?)",
                conn.controller,
                CONNECT_TIMEOUT.as_secs()
            ))
        })??;
    Ok(AdminServiceClient::new(channel))
}

/// Awaits one call, naming `action` in any error.
pub async fn call<T>(
    action: &str,
    request: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(RPC_TIMEOUT, request).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(CliError::Rpc {
            action: action.to_string(),
            status,
        }),
        Err(_) => Err(CliError::Timeout {
            action: action.to_string(),
            secs: RPC_TIMEOUT.as_secs(),
        }),
    }
}
