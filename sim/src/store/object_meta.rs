//! Metadata of stored JSON objects that deletion and the lifecycle controllers read: uid,
//! finalizers, and the two finalizers the garbage collector acts on.

use serde_json::Value;

/// The finalizer `propagationPolicy=Orphan` adds (`metav1.FinalizerOrphanDependents`).
pub(crate) const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer `propagationPolicy=Foreground` adds (`metav1.FinalizerDeleteDependents`).
pub(crate) const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// `metadata.finalizers` as strings.
pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.uid`, if set.
pub(crate) fn uid_of(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string)
}
