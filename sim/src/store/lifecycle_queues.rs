//! The queues of the simulated controllers (kubelet, garbage collector, namespace
//! controller), kept in the store's state so that writes can hand them work under the
//! store's lock; the controllers themselves ([`super::lifecycle`]) drain them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::StoredObject;
use super::owner_graph::OwnerGraph;

/// The controllers' queues, kept in the store's state.
#[derive(Default)]
pub(crate) struct Lifecycle {
    pub kubelet: Terminations,
    pub gc: OwnerGraph,
    pub namespaces: TerminatingNamespaces,
}

/// A pod whose containers the kubelet is stopping.
pub(super) struct Termination {
    pub(super) due: Instant,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) uid: String,
}

/// The pods being terminated, in no particular order (few at a time).
#[derive(Default)]
pub(crate) struct Terminations {
    pub(super) terminating: Vec<Termination>,
}

impl Terminations {
    /// Starts stopping a pod that was just marked for deletion with `grace_seconds`.
    pub(super) fn terminate(
        &mut self,
        pod: &StoredObject,
        grace_seconds: i64,
        kubelet_termination: Option<Duration>,
    ) {
        let grace = Duration::from_secs(grace_seconds.max(0).unsigned_abs());
        let takes = kubelet_termination.map_or(grace, |t| t.min(grace));
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

/// Namespaces being terminated, by name, with when their DELETE was accepted.
#[derive(Default)]
pub(crate) struct TerminatingNamespaces {
    pub(super) since: HashMap<String, Instant>,
}

impl TerminatingNamespaces {
    pub(super) fn is_idle(&self) -> bool {
        self.since.is_empty()
    }
}
