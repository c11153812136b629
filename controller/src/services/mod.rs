//! The gRPC services: thin adapters that decode the wire, call [`App`] off the async threads
//! ([`blocking`]), and encode the answer.

pub mod admin;
pub mod agent;
pub mod enroll;
pub mod follow;

use std::sync::Arc;

use tonic::Status;

use crate::app::App;

/// Runs `work` on tokio's blocking pool. Every service calls the App through here: its
/// operations write and flush the store, sign certificates and take locks, none of which may
/// hold one of the few async worker threads that serve every stream.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&App) -> T + Send + 'static,
) -> Result<T, Status> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || work(&app))
        .await
        .map_err(|e| Status::internal(format!("controller task failed: {e}")))
}
