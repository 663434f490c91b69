//! The garbage collector's graph of owners and dependents (the real collector's `uidToNode`),
//! kept as the store writes: every commit tells [`OwnerGraph::observe`] an object's owner
//! uids, and the collector ([`super::garbage_collector`]) takes its work from here: owners
//! gone since its last sync, and deleting owners with the `orphan` or `foregroundDeletion`
//! finalizer.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::object_meta::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER, finalizers, uid_of};
use super::storage_key::StorageKey;
use super::watch::EventKind;

/// Where an object lives: its storage and its key in it.
pub(super) type Location = (StorageKey, String);

#[derive(Default)]
pub(crate) struct OwnerGraph {
    /// Owner uid → the objects that reference it.
    pub(super) dependents: HashMap<String, BTreeSet<Location>>,
    /// Object → the uids of its owners (to update `dependents` when they change).
    owners: HashMap<Location, Vec<String>>,
    /// Owners removed since the last sync whose dependents must be collected.
    pub(super) gone: Vec<String>,
    /// Deleting owners with the `orphan` or `foregroundDeletion` finalizer, by uid.
    pub(super) finalizing: HashMap<String, Location>,
}

impl OwnerGraph {
    /// Called by every commit with the object as written (or as last seen, for DELETED).
    pub(super) fn observe(
        &mut self,
        storage: &StorageKey,
        key: &str,
        object: &Value,
        kind: EventKind,
    ) {
        let location = (storage.clone(), key.to_string());
        let uid = uid_of(object).unwrap_or_default();
        let owner_uids: Vec<String> = match kind {
            EventKind::Deleted => Vec::new(),
            _ => object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| r.get("uid").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let before = self.owners.get(&location).map(Vec::as_slice).unwrap_or(&[]);
        if before != owner_uids.as_slice() {
            for old in before {
                if let Some(set) = self.dependents.get_mut(old) {
                    set.remove(&location);
                    if set.is_empty() {
                        self.dependents.remove(old);
                    }
                }
            }
            for owner in &owner_uids {
                self.dependents
                    .entry(owner.clone())
                    .or_default()
                    .insert(location.clone());
            }
            if owner_uids.is_empty() {
                self.owners.remove(&location);
            } else {
                self.owners.insert(location.clone(), owner_uids);
            }
        }
        if kind == EventKind::Deleted {
            self.finalizing.remove(&uid);
            if self.dependents.contains_key(&uid) {
                self.gone.push(uid);
            }
            return;
        }
        let deleting = object.pointer("/metadata/deletionTimestamp").is_some();
        let gc_finalizer = finalizers(object)
            .iter()
            .any(|f| f == ORPHAN_FINALIZER || f == FOREGROUND_FINALIZER);
        if deleting && gc_finalizer {
            self.finalizing.insert(uid, location);
        } else {
            self.finalizing.remove(&uid);
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.gone.is_empty() && self.finalizing.is_empty()
    }

    pub(super) fn dependents_of(&self, uid: &str) -> Vec<Location> {
        self.dependents
            .get(uid)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}
