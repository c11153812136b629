//! Following a record live over a server stream: what `WatchJob` and `WatchRollout` send.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::app::App;
use crate::error::Error;

/// Read again this often even without a change (a missed wake-up costs at most this).
const RECHECK: Duration = Duration::from_secs(30);

/// Most streams followed at once over the whole controller; more are refused.
pub const MAX_FOLLOWERS: usize = 256;

/// Streams `read(app)` now and again after every change of `changes` (repeats dropped), until
/// `read` says the record is over or the client goes. `read` answers the record and whether it
/// is over; its error ends the stream with that status. The permit is held while it runs.
pub fn follow<T, F>(
    app: Arc<App>,
    mut changes: watch::Receiver<u64>,
    permit: OwnedSemaphorePermit,
    read: F,
) -> ReceiverStream<Result<T, Status>>
where
    T: PartialEq + Clone + Send + 'static,
    F: Fn(&App) -> Result<(T, bool), Error> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    let read = Arc::new(read);
    tokio::spawn(async move {
        let _permit = permit;
        let mut last: Option<T> = None;
        loop {
            // Seen before reading: a change made while we read wakes the wait below.
            changes.borrow_and_update();
            let reader = read.clone();
            let got = match super::blocking(&app, move |app| reader(app)).await {
                Ok(result) => result.map_err(Status::from),
                Err(status) => Err(status),
            };
            let (item, over) = match got {
                Ok(got) => got,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            if last.as_ref() != Some(&item) {
                if tx.send(Ok(item.clone())).await.is_err() {
                    return;
                }
                last = Some(item);
            }
            if over {
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
                () = tokio::time::sleep(RECHECK) => {}
            }
        }
    });
    ReceiverStream::new(rx)
}
