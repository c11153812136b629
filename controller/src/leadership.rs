//! Whether this controller runs the rollout scheduler, and the fence of its writes while it
//! does: on sled always (it is the only controller); on etcd while it holds the election
//! ([`crate::state::etcd_engine::Campaign`]).

use tokio::sync::watch;

use crate::state::fence::{self, Fence};

/// The right to run the scheduler, as the scheduler sees it.
#[derive(Clone)]
pub enum Leadership {
    /// One controller on its own store (sled): it always leads, its writes need no fence.
    Sole,
    /// Elected on etcd: leads while the campaign publishes a fence.
    Elected(watch::Receiver<Option<Fence>>),
}

/// A term of leadership: runs the scheduler's work with its writes fenced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    Sole,
    Fenced(Fence),
}

impl Term {
    /// Runs `work` with every store write on this thread fenced by this term.
    pub fn run<T>(&self, work: impl FnOnce() -> T) -> T {
        match self {
            Term::Sole => work(),
            Term::Fenced(fence) => fence::under(fence, work),
        }
    }
}

impl Leadership {
    /// The term in force now, if this controller leads.
    pub fn current(&self) -> Option<Term> {
        match self {
            Leadership::Sole => Some(Term::Sole),
            Leadership::Elected(rx) => rx.borrow().clone().map(Term::Fenced),
        }
    }

    /// Returns when leadership may have changed (never, for [`Leadership::Sole`]; at once
    /// and for good when the campaign is gone).
    pub async fn changed(&mut self) {
        match self {
            Leadership::Sole => std::future::pending().await,
            Leadership::Elected(rx) => {
                if rx.changed().await.is_err() {
                    // The campaign ended: leadership is gone for good.
                    *self = Leadership::Elected(watch::channel(None).1);
                    std::future::pending::<()>().await
                }
            }
        }
    }
}
