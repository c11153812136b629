//! A rollout's status as it changes, for one subscribed page.
//!
//! Fed by the controller's `WatchRollout` stream while the page is subscribed (the receiver
//! lives): each status the controller sends (it sends one when the rollout changed) is passed
//! on. A broken stream is reported to the page and opened again after [`RETRY`].

use std::time::Duration;

use boltfleet_common::proto::{GetRolloutRequest, RolloutStatus};
use tokio::sync::mpsc;

use crate::cli::client::{call, AdminClient};

/// How long to wait before opening a broken stream again.
pub const RETRY: Duration = Duration::from_secs(1);

/// What a watching page is told.
#[derive(Debug)]
pub enum Update {
    /// The rollout changed (the first one is its state on subscribing).
    Status(Box<RolloutStatus>),
    /// The stream broke (the controller refused or was unreachable); it is opened again.
    Error(String),
    /// It will not change any more (completed, or aborted with no rollback under way).
    End,
}

/// Whether a rollout can still change.
pub fn is_final(status: &RolloutStatus) -> bool {
    let rolling_back = status.rollback.as_ref().is_some_and(|r| r.finished_at == 0);
    matches!(status.state.as_str(), "completed" | "aborted") && !rolling_back
}

/// The changes of rollout `id`, until the receiver is dropped or the rollout is final.
pub fn watch_rollout(admin: AdminClient, id: String) -> mpsc::Receiver<Update> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut admin = admin;
        let mut last: Option<RolloutStatus> = None;
        loop {
            let request = GetRolloutRequest { id: id.clone() };
            let opened = call(&format!("watch rollout {id}"), admin.watch_rollout(request)).await;
            let broken = match opened {
                Ok(mut stream) => loop {
                    let item = tokio::select! {
                        item = stream.message() => item,
                        () = tx.closed() => return,
                    };
                    match item {
                        Ok(Some(status)) if last.as_ref() == Some(&status) => {}
                        Ok(Some(status)) => {
                            last = Some(status.clone());
                            if tx.send(Update::Status(Box::new(status))).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) if last.as_ref().is_some_and(is_final) => {
                            let _ = tx.send(Update::End).await;
                            return;
                        }
                        Ok(None) => break "the controller ended the stream".to_string(),
                        Err(status) => break format!("watch rollout {id}: {}", status.message()),
                    }
                },
                Err(err) => err.to_string(),
            };
            if tx.send(Update::Error(broken)).await.is_err() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                () = tx.closed() => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use boltfleet_common::proto::RollbackStatus;

    use super::*;

    #[test]
    fn a_rollout_is_final_once_done_and_no_rollback_runs() {
        let status = |state: &str, rollback: Option<i64>| RolloutStatus {
            state: state.into(),
            rollback: rollback.map(|finished_at| RollbackStatus {
                finished_at,
                ..RollbackStatus::default()
            }),
            ..RolloutStatus::default()
        };
        assert!(!is_final(&status("running", None)));
        assert!(!is_final(&status("paused", None)));
        assert!(is_final(&status("completed", None)));
        assert!(is_final(&status("aborted", None)));
        assert!(!is_final(&status("aborted", Some(0))), "still rolling back");
        assert!(is_final(&status("aborted", Some(17))));
    }
}
