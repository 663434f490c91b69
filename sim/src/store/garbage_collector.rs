//! The garbage collector of kube-controller-manager, for `metadata.ownerReferences`:
//!
//! - **Background**: once an owner is gone (DELETED), each dependent that references it (by
//!   uid) is deleted with `propagationPolicy=Background` — or, when another of its owners
//!   still exists, only the dangling reference is removed.
//! - **Foreground** (`foregroundDeletion` finalizer on a deleting owner): its dependents are
//!   deleted (in the foreground themselves when they have dependents); the finalizer is
//!   removed once no dependent with `blockOwnerDeletion: true` is left, which lets the
//!   owner go.
//! - **Orphan** (`orphan` finalizer): the references to the owner are removed from its
//!   dependents, then the finalizer.
//!
//! The graph is kept as the store writes ([`super::owner_graph`]), and the work is done by
//! [`State::sync_garbage_collector`] on the store's lifecycle thread, after the DELETE that
//! asked for it has been answered.
//!
//! Departure: an object whose owner never existed (a dangling reference from the start,
//! as [`crate::pods`] seeds) is left alone; the real collector looks such owners up and
//! deletes the dependent. Only owners observed being deleted are acted on.

use std::sync::Arc;

use serde_json::{Value, json};

use super::object_meta::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER, finalizers, uid_of};
use super::owner_graph::Location;
use super::state::State;
use super::storage_key::storage_key;
use super::{DeleteOptions, ResourceType, StoreConfig, Subresource, WriteOptions};

/// The manager the collector's writes are recorded under (its User-Agent's first part).
const MANAGER: &str = "kube-controller-manager";

impl State {
    /// One pass of the collector: dependents of removed owners, then finalizing owners.
    pub(super) fn sync_garbage_collector(&mut self, config: &StoreConfig) {
        for owner in std::mem::take(&mut self.lifecycle.gc.gone) {
            for dependent in self.lifecycle.gc.dependents_of(&owner) {
                self.collect_dependent(&dependent, &owner, config);
            }
        }
        let finalizing: Vec<(String, Location)> = self
            .lifecycle
            .gc
            .finalizing
            .iter()
            .map(|(uid, location)| (uid.clone(), location.clone()))
            .collect();
        for (uid, location) in finalizing {
            let Some((rt, owner)) = self.object_at(&location) else {
                self.lifecycle.gc.finalizing.remove(&uid);
                continue;
            };
            let owner_finalizers = finalizers(&owner);
            if owner_finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
                for dependent in self.lifecycle.gc.dependents_of(&uid) {
                    self.drop_owner_reference(&dependent, &uid, config);
                }
                self.remove_finalizer(&rt, owner, ORPHAN_FINALIZER, config);
            } else if owner_finalizers.iter().any(|f| f == FOREGROUND_FINALIZER)
                && self.delete_dependents_in_foreground(&uid, config)
            {
                self.remove_finalizer(&rt, owner, FOREGROUND_FINALIZER, config);
            }
        }
    }

    /// A dependent whose owner `gone` was removed: deleted, unless another owner remains.
    fn collect_dependent(&mut self, location: &Location, gone: &str, config: &StoreConfig) {
        let Some((rt, dependent)) = self.object_at(location) else {
            return;
        };
        let refs = owner_references(&dependent);
        if !refs.iter().any(|r| r["uid"] == gone) {
            return;
        }
        let namespace = dependent
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        let another_owner_exists = refs
            .iter()
            .filter(|r| r["uid"] != gone)
            .any(|r| self.owner_exists(r, namespace));
        if another_owner_exists {
            self.drop_owner_reference(location, gone, config);
            return;
        }
        if dependent.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        self.delete_as_collector(&rt, &dependent, "Background", config);
    }

    /// Deletes the dependents of a foreground-deleting owner; true once none that blocks
    /// the owner's deletion is left.
    fn delete_dependents_in_foreground(&mut self, owner: &str, config: &StoreConfig) -> bool {
        let mut blocked = false;
        for location in self.lifecycle.gc.dependents_of(owner) {
            let Some((rt, dependent)) = self.object_at(&location) else {
                continue;
            };
            let Some(reference) = owner_references(&dependent)
                .into_iter()
                .find(|r| r["uid"] == owner)
            else {
                continue;
            };
            if dependent.pointer("/metadata/deletionTimestamp").is_none() {
                let own_dependents = uid_of(&dependent)
                    .is_some_and(|uid| self.lifecycle.gc.dependents.contains_key(&uid));
                let policy = if own_dependents {
                    "Foreground"
                } else {
                    "Background"
                };
                self.delete_as_collector(&rt, &dependent, policy, config);
            }
            let still_there = self.object_at(&location).is_some();
            if still_there && reference["blockOwnerDeletion"] == json!(true) {
                blocked = true;
            }
        }
        !blocked
    }

    fn delete_as_collector(
        &mut self,
        rt: &ResourceType,
        object: &Value,
        policy: &str,
        config: &StoreConfig,
    ) {
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        let options = DeleteOptions {
            propagation_policy: Some(policy.into()),
            preconditions_uid: uid_of(object),
            ..Default::default()
        };
        if let Err(status) = self.delete(rt, namespace, name, &options, config) {
            tracing::debug!(object = name, %status, "garbage collector: delete failed");
        }
    }

    /// Removes the references to `owner` from the object at `location`.
    fn drop_owner_reference(&mut self, location: &Location, owner: &str, config: &StoreConfig) {
        let Some((rt, mut dependent)) = self.object_at(location) else {
            return;
        };
        let refs = owner_references(&dependent);
        let kept: Vec<Value> = refs.iter().filter(|r| r["uid"] != owner).cloned().collect();
        if kept.len() == refs.len() {
            return;
        }
        let metadata = dependent["metadata"]
            .as_object_mut()
            .expect("stored objects have metadata");
        if kept.is_empty() {
            metadata.remove("ownerReferences");
        } else {
            metadata.insert("ownerReferences".into(), json!(kept));
        }
        self.write_as_collector(&rt, dependent, config);
    }

    fn remove_finalizer(
        &mut self,
        rt: &ResourceType,
        mut owner: Value,
        finalizer: &str,
        config: &StoreConfig,
    ) {
        let kept: Vec<String> = finalizers(&owner)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let metadata = owner["metadata"]
            .as_object_mut()
            .expect("stored objects have metadata");
        if kept.is_empty() {
            metadata.remove("finalizers");
        } else {
            metadata.insert("finalizers".into(), json!(kept));
        }
        self.write_as_collector(rt, owner, config);
    }

    fn write_as_collector(&mut self, rt: &ResourceType, object: Value, config: &StoreConfig) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let options = WriteOptions {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        if let Err(status) = self.update(
            rt,
            namespace.as_deref(),
            &name,
            Subresource::Main,
            object,
            &options,
            config,
            None,
        ) {
            tracing::debug!(object = %name, %status, "garbage collector: update failed");
        }
    }

    /// Whether the owner an ownerReference names exists with that uid.
    fn owner_exists(&self, reference: &Value, namespace: Option<&str>) -> bool {
        let (Some(api_version), Some(kind), Some(name)) = (
            reference["apiVersion"].as_str(),
            reference["kind"].as_str(),
            reference["name"].as_str(),
        ) else {
            return false;
        };
        let Some(rt) = self
            .served
            .iter()
            .find(|r| r.kind == kind && r.api_version() == api_version)
        else {
            return false;
        };
        let scope = if rt.namespaced { namespace } else { None };
        self.get(rt, scope, name)
            .is_ok_and(|owner| uid_of(&owner.value()).as_deref() == reference["uid"].as_str())
    }

    /// The served type and current value of the object at `location`, if it still exists.
    fn object_at(&self, (storage, key): &Location) -> Option<(Arc<ResourceType>, Value)> {
        let object = self.storages.get(storage)?.objects.get(key)?.clone();
        let rt = self
            .served
            .iter()
            .find(|r| &storage_key(r) == storage)?
            .clone();
        Some((rt, object.value()))
    }
}

fn owner_references(object: &Value) -> Vec<Value> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}
