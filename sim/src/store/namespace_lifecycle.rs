//! Namespace deletion as kube-apiserver v1.28's namespace registry and
//! kube-controller-manager's namespace controller run it:
//!
//! - `default`, `kube-system` and `kube-public` may not be deleted (403 Forbidden).
//! - The first `DELETE` writes `deletionTimestamp` and `status.phase: Terminating` (no
//!   `deletionGracePeriodSeconds`: namespaces are not graceful), adds the `orphan` /
//!   `foregroundDeletion` finalizer a propagation policy asks for, and answers the
//!   Namespace (200). Later DELETEs answer it unchanged while `spec.finalizers` (the
//!   `kubernetes` finalizer every namespace gets at creation) is not empty.
//! - Creates inside a terminating namespace get 403 Forbidden with a `NamespaceTerminating`
//!   cause (the NamespaceLifecycle admission plugin; see `Status::namespace_terminating`).
//! - The namespace controller, once `LifecycleConfig::namespace_cleanup_delay` has passed,
//!   deletes every object in the namespace with `propagationPolicy=Background`: pods go
//!   through their graceful deletion, objects with finalizers stay until those are removed.
//!   When nothing is left it finalizes (MODIFIED with the `kubernetes` finalizer gone) and
//!   the namespace is removed (DELETED), unless `metadata.finalizers` still hold it.
//!
//! Departure: the controller does not write the `status.conditions`
//! (`NamespaceDeletionDiscoveryFailure`, `NamespaceContentRemaining`, …) the real one keeps
//! up to date while it works.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::object_meta::{finalizers, uid_of};
use super::state::State;
use super::storage_key::storage_key;
use super::watch::EventKind;
use super::{DeleteOptions, DeleteOutcome, ResourceType, Status, StoreConfig, StoredObject};

/// Namespaces the NamespaceLifecycle admission plugin refuses to delete.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

impl State {
    /// The namespace registry's `Delete`.
    pub(super) fn delete_namespace(
        &mut self,
        rt: &ResourceType,
        old: Arc<StoredObject>,
        old_value: Value,
        opts: &DeleteOptions,
        config: &StoreConfig,
    ) -> Result<DeleteOutcome, Status> {
        let name = old.name().to_string();
        if IMMORTAL_NAMESPACES.contains(&name.as_str()) {
            return Err(Status::namespace_may_not_be_deleted(&name));
        }
        if opts.dry_run {
            return Ok(DeleteOutcome::Pending(old));
        }
        if old_value.pointer("/metadata/deletionTimestamp").is_none() {
            let mut marked = old_value;
            marked["metadata"]["deletionTimestamp"] = json!(State::now_rfc3339());
            marked["status"]["phase"] = json!("Terminating");
            set_namespace_gc_finalizers(&mut marked, opts);
            let terminating = self.commit(rt, EventKind::Modified, marked, config);
            self.lifecycle.namespaces.since.insert(name, Instant::now());
            return Ok(DeleteOutcome::Pending(terminating));
        }
        let spec_finalized = old_value
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if !spec_finalized || !finalizers(&old_value).is_empty() {
            return Ok(DeleteOutcome::Pending(old));
        }
        Ok(DeleteOutcome::Deleted(
            self.remove_object(rt, old_value, config),
        ))
    }

    /// One pass of the namespace controller over every terminating namespace.
    pub(super) fn sync_terminating_namespaces(&mut self, config: &StoreConfig) {
        let due: Vec<String> = self
            .lifecycle
            .namespaces
            .since
            .iter()
            .filter(|(_, since)| since.elapsed() >= config.lifecycle.namespace_cleanup_delay)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            let Some(namespace) = self.namespace_exists(&name).cloned() else {
                self.lifecycle.namespaces.since.remove(&name);
                continue;
            };
            if self.delete_namespace_contents(&name, config) > 0 {
                continue;
            }
            self.lifecycle.namespaces.since.remove(&name);
            self.finalize_namespace(namespace.value(), config);
        }
    }

    /// Deletes what is not being deleted yet; returns how many objects remain.
    fn delete_namespace_contents(&mut self, namespace: &str, config: &StoreConfig) -> usize {
        let mut seen = std::collections::HashSet::new();
        let namespaced: Vec<Arc<ResourceType>> = self
            .served
            .iter()
            .filter(|r| r.namespaced && seen.insert(storage_key(r)))
            .cloned()
            .collect();
        let prefix = format!("{namespace}/");
        let background = DeleteOptions {
            propagation_policy: Some("Background".into()),
            ..Default::default()
        };
        let mut remaining = 0;
        for rt in namespaced {
            let contents: Vec<Arc<StoredObject>> = match self.storages.get(&storage_key(&rt)) {
                Some(storage) => storage
                    .objects
                    .range(prefix.clone()..)
                    .take_while(|(key, _)| key.starts_with(&prefix))
                    .map(|(_, object)| object.clone())
                    .collect(),
                None => continue,
            };
            for object in contents {
                let value = object.value();
                if value.pointer("/metadata/deletionTimestamp").is_none() {
                    let options = DeleteOptions {
                        preconditions_uid: uid_of(&value),
                        ..background.clone()
                    };
                    match self.delete(&rt, Some(namespace), object.name(), &options, config) {
                        Ok(DeleteOutcome::Deleted(_)) => continue,
                        Ok(DeleteOutcome::Pending(_)) => {}
                        Err(status) => {
                            tracing::debug!(namespace, object = object.name(), %status, "namespace controller: delete failed");
                        }
                    }
                }
                remaining += 1;
            }
        }
        remaining
    }

    /// `/finalize` without the `kubernetes` finalizer, then the namespace's final delete.
    fn finalize_namespace(&mut self, mut namespace: Value, config: &StoreConfig) {
        let Some(rt) = self
            .served
            .iter()
            .find(|r| super::deletion::is_namespace(r))
            .cloned()
        else {
            return;
        };
        if let Some(spec) = namespace.get_mut("spec").and_then(Value::as_object_mut)
            && spec.remove("finalizers").is_some()
        {
            namespace = self
                .commit(&rt, EventKind::Modified, namespace, config)
                .value();
        }
        if finalizers(&namespace).is_empty() {
            self.remove_object(&rt, namespace, config);
        }
    }
}

/// `shouldHaveOrphanFinalizer` / `shouldHaveDeleteDependentsFinalizer` of the namespace
/// registry: only an explicit policy changes them.
fn set_namespace_gc_finalizers(namespace: &mut Value, opts: &DeleteOptions) {
    use super::object_meta::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
    let Some(policy) = opts.propagation_policy.as_deref() else {
        return;
    };
    let mut wanted: Vec<String> = finalizers(namespace)
        .into_iter()
        .filter(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER)
        .collect();
    match policy {
        "Orphan" => wanted.push(ORPHAN_FINALIZER.into()),
        "Foreground" => wanted.push(FOREGROUND_FINALIZER.into()),
        _ => {}
    }
    if wanted != finalizers(namespace) {
        namespace["metadata"]["finalizers"] = json!(wanted);
    }
}
