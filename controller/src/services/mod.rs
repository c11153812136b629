//! The gRPC services: thin adapters that decode the wire, call [`App`] off the async threads
//! ([`blocking`]), and encode the answer.

pub mod admin;
pub mod agent;
pub mod enroll;
pub mod follow;

use std::sync::Arc;

use tonic::Status;

use crate::app::App;
use crate::error::Error;

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

/// The status of a failed App call: a store error while the store's engine is unreachable
/// is `Unavailable`, naming the engine and since when (the operator retries once it is
/// back); any other error maps as [`Error`] says.
pub(crate) fn status_of(app: &App, err: Error) -> Status {
    let state = app.state();
    match (&err, state.unreachable_since(), state.remote_engine()) {
        (Error::Store(_), Some(since), Some(engine)) => Status::unavailable(format!(
            "{engine} unreachable since {since}: this controller changes nothing until it \
             answers again ({err})"
        )),
        _ => Status::from(err),
    }
}
