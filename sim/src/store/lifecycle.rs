//! The controllers that finish what a DELETE starts, as a real cluster's
//! kube-controller-manager and kubelets do: the simulated [`super::kubelet`], the
//! [`super::garbage_collector`] and the namespace controller
//! ([`super::namespace_lifecycle`]).
//!
//! They run on one thread per store, which takes the store's lock every
//! [`LIFECYCLE_TICK`] only while one of them has work, and ends once the last clone of the
//! store is dropped. Their writes are ordinary writes: new resourceVersions, watch events
//! and managedFields, as a client sees the real controllers' writes.

use std::sync::Weak;
use std::time::Duration;

use super::state::State;
use super::{Shared, StoreConfig};

/// How often the controllers look for work.
const LIFECYCLE_TICK: Duration = Duration::from_millis(50);

/// Timing of the simulated controllers of one cluster.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// How long the kubelet takes to stop a pod deleted gracefully, at most its grace
    /// period. `None` (the default): the whole `deletionGracePeriodSeconds` (30 s unless the
    /// pod or the request says otherwise), as for a container that ignores SIGTERM.
    pub kubelet_termination: Option<Duration>,
    /// How long a deleted namespace stays `Terminating` before the namespace controller
    /// deletes its contents (the real one takes a discovery sweep and a rate-limited queue:
    /// about a second or more). Default 1 s.
    pub namespace_cleanup_delay: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            kubelet_termination: None,
            namespace_cleanup_delay: Duration::from_secs(1),
        }
    }
}

impl State {
    /// One pass of every controller.
    fn sync_lifecycle(&mut self, config: &StoreConfig) {
        self.sync_kubelet(config);
        self.sync_garbage_collector(config);
        self.sync_terminating_namespaces(config);
    }

    fn lifecycle_idle(&self) -> bool {
        self.lifecycle.kubelet.is_idle()
            && self.lifecycle.gc.is_idle()
            && self.lifecycle.namespaces.is_idle()
    }
}

/// Starts the controllers' thread; it holds only a weak reference to the store.
pub(super) fn spawn(shared: Weak<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("sim-store-lifecycle".into())
        .spawn(move || {
            loop {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                {
                    let mut state = shared.state.lock();
                    if !state.lifecycle_idle() {
                        state.sync_lifecycle(&shared.config);
                    }
                }
                drop(shared);
                std::thread::sleep(LIFECYCLE_TICK);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the store's lifecycle thread: deletions will not complete");
    }
}
