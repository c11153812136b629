//! How a call reaches etcd: the engine's own runtime (one thread running the async etcd
//! client) and a blocking call into it, so that the engine seam stays synchronous as sled is;
//! the retry of a request no member received, and the one-line text of a failure.
//!
//! The caller sends a future to the engine's thread and blocks on a channel for its result.
//! That works from plain threads and from a tokio runtime's blocking pool alike; called from an
//! async worker thread it blocks that worker for the round trip (it cannot deadlock: the etcd
//! traffic never runs on the caller's runtime), so callers are expected on blocking threads, as
//! for any engine. Every call has a deadline: an unreachable etcd is an error, not a hang.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Why a call into the engine's runtime failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    #[error("{0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("the etcd engine's thread is gone")]
    Closed,
}

/// The engine's runtime thread. Dropping it stops the thread and cancels what it runs.
pub(super) struct Bridge {
    handle: Handle,
    /// Dropped with the bridge: the thread's `block_on` returns and the runtime ends there
    /// (a runtime may not be dropped inside another runtime, so it never leaves its thread).
    _stop: oneshot::Sender<()>,
}

impl Bridge {
    pub(super) fn start() -> std::io::Result<Self> {
        let (handle_tx, handle_rx) = mpsc::sync_channel(1);
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("etcd-engine".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = handle_tx.send(Ok(runtime.handle().clone()));
                        // Drives every task spawned on the handle until the bridge is dropped.
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(err) => {
                        let _ = handle_tx.send(Err(err));
                    }
                }
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("etcd engine thread ended at start"))??;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Runs `task` on the engine's runtime, in the background, until it ends or the bridge
    /// is dropped.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }

    /// Runs `work` on the engine's runtime and waits for its result, at most `deadline`.
    pub(super) fn call<T, F>(&self, deadline: Duration, work: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let result = match tokio::time::timeout(deadline, work).await {
                Ok(result) => result.map_err(CallError::from),
                Err(_) => Err(CallError::TimedOut(deadline)),
            };
            let _ = tx.send(result);
        });
        // The runtime enforces the deadline; this guards against a runtime that stopped
        // answering altogether.
        match rx.recv_timeout(deadline + Duration::from_secs(5)) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(CallError::TimedOut(deadline)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(CallError::Closed),
        }
    }
}

/// Makes `request`, again (up to `attempts` in all) while a member refuses the connection:
/// the request never reached it, so trying it on another member is safe for every request,
/// a transaction's too. The client balances over the endpoints and finds a dead member only
/// by trying it, so without this one request in a few would fail while a member is down.
pub(super) async fn retried<C, T, F, Fut>(
    client: C,
    attempts: usize,
    request: F,
) -> Result<T, etcd_client::Error>
where
    C: Clone,
    F: Fn(C) -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut tried = 1;
    loop {
        match request(client.clone()).await {
            Err(err) if tried < attempts && never_sent(&err) => tried += 1,
            result => return result,
        }
    }
}

/// Whether the request failed before it was sent: the connection was refused.
fn never_sent(err: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = err else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = err.source();
    }
    false
}

/// A failed call in one line: gRPC's code and message and the innermost cause (not the
/// chain of debug dumps the client's own text carries).
pub(super) fn describe(err: &CallError) -> String {
    let CallError::Etcd(etcd_client::Error::GRpcStatus(status)) = err else {
        return err.to_string();
    };
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(status);
    let mut innermost = None;
    while let Some(err) = cause {
        innermost = Some(err);
        cause = err.source();
    }
    if let Some(innermost) = innermost {
        text.push_str(&format!(": {innermost}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(n: u32) -> Result<u32, etcd_client::Error> {
        tokio::task::yield_now().await;
        Ok(n)
    }

    #[test]
    fn calls_answer_from_plain_threads_and_from_inside_a_runtime() {
        let bridge = std::sync::Arc::new(Bridge::start().unwrap());
        assert_eq!(bridge.call(Duration::from_secs(5), answer(1)).unwrap(), 1);
        // Inside a runtime's blocking pool, and on a current-thread runtime's only worker
        // (blocked for the round trip, but not deadlocked: the work runs on the bridge).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let from_pool = bridge.clone();
        let n = runtime.block_on(async move {
            let pooled = tokio::task::spawn_blocking(move || {
                from_pool.call(Duration::from_secs(5), answer(2)).unwrap()
            });
            let inline = bridge.call(Duration::from_secs(5), answer(3)).unwrap();
            pooled.await.unwrap() + inline
        });
        assert_eq!(n, 5);
    }

    #[test]
    fn a_call_past_its_deadline_is_an_error_not_a_hang() {
        let bridge = Bridge::start().unwrap();
        let never = async {
            std::future::pending::<()>().await;
            Ok(())
        };
        let err = bridge.call(Duration::from_millis(50), never).unwrap_err();
        assert!(matches!(err, CallError::TimedOut(_)), "{err}");
        assert!(err.to_string().contains("50ms"), "{err}");
    }
}
