//! Realistic pods, shaped like `shared/fixtures/pod-realistic.json`.
//!
//! INTERFACE CONTRACT: `realistic_pod` and `seed` are fixed; bodies free.

use serde_json::Value;

use crate::store::ClusterStore;

/// A realistic pod (labels, owner reference, 2 containers with resources and probes, status
/// with conditions, managedFields): 3–8 KiB of compact JSON, about 40 % of it managedFields.
/// `seq` varies names, labels, node and IPs deterministically.
pub fn realistic_pod(namespace: &str, name: &str, seq: u64) -> Value {
    let _ = (namespace, name, seq);
    todo!()
}

/// Creates `count` realistic pods `pod-00000`.. in `namespace` (created if missing), directly in
/// the store (no HTTP). Returns the resourceVersion after the last write.
pub fn seed(store: &ClusterStore, namespace: &str, count: usize) -> u64 {
    let _ = (store, namespace, count);
    todo!()
}
