//! The fence of the scheduler's writes: proof, checked by the engine in the same transaction
//! as the write, that the writer still leads.
//!
//! A [`Fence`] names the leader key and the revision at which this controller created it
//! (under its lease). etcd deletes the key when the lease expires, so a controller that was
//! paused or cut off past its lease holds a fence that no longer matches: every write it makes
//! under that fence is refused, even one it started while it still led. sled serves one
//! controller, which always leads: it ignores the fence.
//!
//! The scheduler's tick runs on one blocking thread and reaches the store through the App's
//! ordinary operations (start a job, cancel one, audit, store a rollout). Rather than thread a
//! fence through every one of them (and through their operator callers, which are not fenced),
//! the tick runs inside [`under`]: every write the engine makes on that thread until it returns
//! carries the fence. Writes on other threads (agent streams, operators) do not.

use std::cell::RefCell;

/// The leader key and its creation revision: a write under this fence happens only while
/// the key still has that revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The engine's full key of the leader (`<prefix>_leader`).
    pub key: Vec<u8>,
    /// The revision at which this leader created it.
    pub revision: i64,
}

thread_local! {
    static CURRENT: RefCell<Option<Fence>> = const { RefCell::new(None) };
}

/// Runs `work` with every engine write on this thread fenced by `fence`.
pub fn under<T>(fence: &Fence, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<Fence>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let before = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = before);
        }
    }
    let before = CURRENT.with(|c| c.borrow_mut().replace(fence.clone()));
    let _restore = Restore(before);
    work()
}

/// The fence of the writes made on this thread now, if any.
pub fn current() -> Option<Fence> {
    CURRENT.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_holds_inside_its_scope_only_and_on_its_thread_only() {
        let fence = Fence {
            key: b"/p/_leader".to_vec(),
            revision: 7,
        };
        assert_eq!(current(), None);
        under(&fence, || {
            assert_eq!(current().as_ref(), Some(&fence));
            std::thread::spawn(|| assert_eq!(current(), None))
                .join()
                .unwrap();
        });
        assert_eq!(current(), None);
        let panicked = std::panic::catch_unwind(|| under(&fence, || panic!("in the tick")));
        assert!(panicked.is_err());
        assert_eq!(current(), None, "restored after a panic");
    }
}
