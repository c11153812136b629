//! A rollout's status as it changes, for one subscribed page.
//!
//! The admin service has no watch stream yet, so this polls `GetRollout` every [`POLL`] while
//! the page is subscribed (the receiver lives) and passes on each status that differs from the
//! last. When the controller gains `WatchRollout`, only [`watch_rollout`]'s body changes: open
//! the stream and forward its items.

use std::time::Duration;

use boltfleet_common::proto::{GetRolloutRequest, RolloutStatus};
use tokio::sync::mpsc;

use crate::cli::client::{call, Admin};

/// How often the controller is asked while a page watches.
pub const POLL: Duration = Duration::from_millis(500);

/// What a watching page is told.
#[derive(Debug)]
pub enum Update {
    /// The rollout changed (the first one is its state on subscribing).
    Status(Box<RolloutStatus>),
    /// It asked and the controller refused or was unreachable; it goes on asking.
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
pub fn watch_rollout(admin: Admin, id: String) -> mpsc::Receiver<Update> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut admin = admin;
        let mut last: Option<RolloutStatus> = None;
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = tx.closed() => return,
            }
            let request = GetRolloutRequest { id: id.clone() };
            let update = match call(&format!("get rollout {id}"), admin.get_rollout(request)).await
            {
                Ok(status) if last.as_ref() == Some(&status) => continue,
                Ok(status) => {
                    last = Some(status.clone());
                    Update::Status(Box::new(status))
                }
                Err(err) => Update::Error(err.to_string()),
            };
            if tx.send(update).await.is_err() {
                return;
            }
            if last.as_ref().is_some_and(is_final) {
                let _ = tx.send(Update::End).await;
                return;
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
