//! The simulated kubelet: it finishes the graceful deletion of scheduled pods, as the
//! kubelet on the pod's node does once its containers have stopped — a DELETE with
//! `gracePeriodSeconds=0` and the pod's uid as precondition (watch: MODIFIED with
//! `deletionGracePeriodSeconds: 0`, then DELETED; a pod with finalizers stays until they
//! are removed).
//!
//! By default it waits the pod's whole `deletionGracePeriodSeconds` (a container that
//! ignores SIGTERM); `LifecycleConfig::kubelet_termination` makes it quicker (tests).
//!
//! Departure: it does not write the terminated container statuses and the final pod phase
//! a real kubelet reports before that DELETE.

use std::time::Instant;

use super::lifecycle_queues::Termination;
use super::state::State;
use super::{DeleteOptions, Status, StoreConfig};

impl State {
    /// Force-deletes every pod whose termination is due.
    pub(super) fn sync_kubelet(&mut self, config: &StoreConfig) {
        let now = Instant::now();
        let (due, waiting): (Vec<Termination>, Vec<Termination>) =
            std::mem::take(&mut self.lifecycle.kubelet.terminating)
                .into_iter()
                .partition(|t| t.due <= now);
        self.lifecycle.kubelet.terminating = waiting;
        if due.is_empty() {
            return;
        }
        let Some(pods) = self
            .served
            .iter()
            .find(|r| super::deletion::is_pod(r))
            .cloned()
        else {
            return;
        };
        for pod in due {
            let force = DeleteOptions {
                grace_period_seconds: Some(0),
                preconditions_uid: Some(pod.uid),
                ..Default::default()
            };
            match self.delete(&pods, Some(&pod.namespace), &pod.name, &force, config) {
                Ok(_) => {}
                // Already gone, or a new pod of the same name: nothing of ours to remove.
                Err(Status {
                    code: 404 | 409, ..
                }) => {}
                Err(status) => {
                    tracing::debug!(pod = %pod.name, %status, "kubelet: final delete failed")
                }
            }
        }
    }
}
