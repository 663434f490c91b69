//! [`Leadership`]: whether this process may act on the clusters right now — the gate a
//! controller consults before it starts a reconcile (client-go's leaderelection callbacks
//! `OnStartedLeading` / `OnStoppedLeading`, as one watched value instead of two callbacks).
//!
//! # Contract
//! - Without leader election the gate is always open ([`Leadership::always`]).
//! - With it, the elector owns the sending side: it opens the gate once it holds the Lease
//!   and closes it the moment it can no longer be sure it does (renew deadline passed, Lease
//!   taken, shutdown). A closed gate means "start nothing new"; work already running finishes.
//! - When the elector goes away (its sender dropped) the gate reads closed: nobody vouches for
//!   this process any more.

use std::sync::Arc;

use tokio::sync::watch;

/// A cheap-to-clone view of this process's leadership. See the module docs.
#[derive(Clone, Debug)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    /// Holds the sender of an [`always`](Self::always) gate, so it never reads closed.
    _always: Option<Arc<watch::Sender<bool>>>,
}

impl Leadership {
    /// A gate that is always open: no leader election, this process always acts.
    pub fn always() -> Self {
        let (sender, state) = watch::channel(true);
        Self {
            state,
            _always: Some(Arc::new(sender)),
        }
    }

    /// A gate driven by an elector that holds the sending side.
    pub fn from_receiver(state: watch::Receiver<bool>) -> Self {
        Self {
            state,
            _always: None,
        }
    }

    /// True while this process may start work.
    pub fn is_leader(&self) -> bool {
        self.state.has_changed().is_ok() && *self.state.borrow()
    }

    /// True once the elector is gone: the gate stays closed for good and [`changed`](Self::changed)
    /// answers at once, so loops over it must stop.
    pub fn is_closed(&self) -> bool {
        self.state.has_changed().is_err()
    }

    /// Waits until the gate changes and answers its new value; `false` once the elector is
    /// gone (and at once on every later call).
    pub async fn changed(&mut self) -> bool {
        match self.state.changed().await {
            Ok(()) => *self.state.borrow_and_update(),
            Err(_) => false,
        }
    }

    /// Waits until the gate is open. Returns `false` if the elector went away first.
    pub async fn wait_leading(&mut self) -> bool {
        loop {
            if self.is_leader() {
                return true;
            }
            if self.state.changed().await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn should_follow_the_elector_and_close_when_it_is_gone() {
        assert!(Leadership::always().is_leader());
        let (sender, receiver) = watch::channel(false);
        let mut gate = Leadership::from_receiver(receiver);
        assert!(!gate.is_leader());
        sender.send(true).unwrap();
        assert!(gate.changed().await);
        assert!(gate.is_leader());
        assert!(gate.wait_leading().await);
        assert!(!gate.is_closed());
        drop(sender);
        assert!(gate.is_closed());
        assert!(!gate.is_leader());
        assert!(!gate.changed().await);
        assert!(!gate.wait_leading().await);
    }
}
