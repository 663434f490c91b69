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

use std::time::{Duration, Instant};

use super::state::State;
use super::{DeleteOptions, StoreConfig, StoredObject};
use super::{LifecycleConfig, Status};

/// A pod whose containers the kubelet is stopping.
struct Termination {
    due: Instant,
    namespace: String,
    name: String,
    uid: String,
}

/// The pods being terminated, in no particular order (few at a time).
#[derive(Default)]
pub(crate) struct Kubelet {
    terminating: Vec<Termination>,
}

impl Kubelet {
    /// Starts stopping a pod that was just marked for deletion with `grace_seconds`.
    pub(super) fn terminate(
        &mut self,
        pod: &StoredObject,
        grace_seconds: i64,
        config: &LifecycleConfig,
    ) {
        let grace = Duration::from_secs(grace_seconds.max(0).unsigned_abs());
        let takes = config.kubelet_termination.map_or(grace, |t| t.min(grace));
        let value = pod.value();
        let uid = value
            .pointer("/metadata/uid")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string();
        self.terminating.push(Termination {
            due: Instant::now() + takes,
            namespace: pod.namespace().unwrap_or("").to_string(),
            name: pod.name().to_string(),
            uid,
        });
    }

    pub(super) fn is_idle(&self) -> bool {
        self.terminating.is_empty()
    }
}

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
