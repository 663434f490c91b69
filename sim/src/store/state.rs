//! The locked state of one cluster: storages (one per group and plural), the global
//! resourceVersion, list snapshots, and the primitive write (`commit`) that every create,
//! update and delete goes through.
//!
//! Invariants:
//! - `rv` is the resourceVersion of the last write; every commit increments it by one.
//! - `storages[k].objects` maps `namespace/name` (or `name`) to the object as last written;
//!   each object's `resource_version` is the rv of the commit that wrote it.
//! - every commit appends to the storage's history and is offered to its watchers before
//!   the lock is released, so watchers see writes in rv order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use imbl::OrdMap;
use serde_json::{Value, json};

use super::lifecycle::Lifecycle;
use super::registry;
use super::watch::{EventKind, History, HistoryEvent, Watcher};
use super::{ResourceType, Status, StoreConfig, StoredObject, WatchEvent};

/// Identifies a storage: `group/plural` (all served versions of a CRD share it).
pub(crate) type StorageKey = String;

pub(crate) fn storage_key(rt: &ResourceType) -> StorageKey {
    format!("{}/{}", rt.group, rt.plural)
}

/// The map key of an object, in etcd order.
pub(crate) fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// The objects of one resource and its watch cache.
pub(crate) struct Storage {
    pub objects: OrdMap<String, Arc<StoredObject>>,
    pub history: History,
    /// rv of the last write to this storage (lists at an older exact rv are still exact).
    pub last_write: u64,
    pub watchers: Vec<Watcher>,
}

/// A list result kept for continue tokens and exact-rv lists.
pub(crate) struct Snapshot {
    pub created: Instant,
    /// Items of the list's prefix in key order.
    pub items: Arc<Vec<Arc<StoredObject>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SnapshotKey {
    pub storage: StorageKey,
    pub namespace: Option<String>,
    pub rv: u64,
}

pub(crate) struct State {
    pub rv: u64,
    /// Served resource types, in discovery order (built-ins, then CRDs by creation).
    pub served: Vec<Arc<ResourceType>>,
    pub storages: HashMap<StorageKey, Storage>,
    pub snapshots: HashMap<SnapshotKey, Snapshot>,
    /// Lists and continues from before this rv are 410 (set by `compact`).
    pub compacted: u64,
    /// Queues of the kubelet, garbage collector and namespace controller.
    pub lifecycle: Lifecycle,
}

impl State {
    pub fn new() -> State {
        let mut state = State {
            rv: 0,
            served: Vec::new(),
            storages: HashMap::new(),
            snapshots: HashMap::new(),
            compacted: 0,
            lifecycle: Lifecycle::default(),
        };
        for rt in registry::builtin_resources() {
            state.serve(rt);
        }
        state
    }

    pub fn serve(&mut self, rt: Arc<ResourceType>) {
        let rv = self.rv;
        self.storages
            .entry(storage_key(&rt))
            .or_insert_with(|| Storage {
                objects: OrdMap::new(),
                history: History::new(rv),
                last_write: rv,
                watchers: Vec::new(),
            });
        self.served
            .retain(|s| !(s.group == rt.group && s.version == rt.version && s.plural == rt.plural));
        self.served.push(rt);
    }

    /// Stops serving a group/plural: its objects vanish and its watches close.
    pub fn unserve(&mut self, group: &str, plural: &str) {
        self.served
            .retain(|s| !(s.group == group && s.plural == plural));
        self.storages.remove(&format!("{group}/{plural}"));
        self.snapshots
            .retain(|k, _| k.storage != format!("{group}/{plural}"));
    }

    pub fn storage(&self, rt: &ResourceType) -> Result<&Storage, Status> {
        self.storages
            .get(&storage_key(rt))
            .ok_or_else(unknown_resource)
    }

    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<StoredObject>, Status> {
        self.storage(rt)?
            .objects
            .get(&object_key(namespace, name))
            .cloned()
            .ok_or_else(|| Status::not_found(rt, name))
    }

    /// Writes `value` (ADDED/MODIFIED) or removes the key (DELETED), stamping a new rv.
    pub fn commit(
        &mut self,
        rt: &ResourceType,
        kind: EventKind,
        mut value: Value,
        config: &StoreConfig,
    ) -> Arc<StoredObject> {
        self.rv += 1;
        let rv = self.rv;
        value["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let stored = Arc::new(StoredObject::new(&value, rv));
        let namespace = rt.namespaced.then(|| stored.namespace().unwrap_or(""));
        let key = object_key(namespace, stored.name());
        self.lifecycle
            .gc
            .observe(&storage_key(rt), &key, &value, kind);
        let storage = self
            .storages
            .get_mut(&storage_key(rt))
            .expect("commit only to served resources");
        let prev = match kind {
            EventKind::Deleted => storage.objects.remove(&key),
            _ => storage.objects.insert(key, stored.clone()),
        };
        storage.last_write = rv;
        let event = HistoryEvent {
            kind,
            object: stored.clone(),
            prev,
        };
        storage.watchers.retain(|w| w.deliver(&event));
        storage.history.push(event, config.history_per_resource);
        stored
    }

    /// Sends a BOOKMARK at the current rv to watches that allow them and are due.
    pub fn send_bookmarks(&mut self, due_before: Option<Instant>) {
        let rv = self.rv;
        let now = Instant::now();
        for storage in self.storages.values_mut() {
            storage.watchers.retain_mut(|w| {
                if !w.allow_bookmarks || due_before.is_some_and(|due| w.last_bookmark > due) {
                    return !w.tx.is_closed();
                }
                w.last_bookmark = now;
                w.offer(WatchEvent::Bookmark {
                    resource_version: rv,
                    initial_events_end: false,
                })
            });
        }
    }

    pub fn expire_snapshots(&mut self, ttl: std::time::Duration) {
        self.snapshots.retain(|_, s| s.created.elapsed() < ttl);
    }

    pub fn compact(&mut self) {
        let rv = self.rv;
        self.compacted = rv;
        self.snapshots.clear();
        for storage in self.storages.values_mut() {
            storage.history.compact(rv);
        }
    }

    pub fn drop_watches(&mut self) {
        for storage in self.storages.values_mut() {
            storage.watchers.clear();
        }
    }

    pub fn namespace_exists(&self, namespace: &str) -> Option<&Arc<StoredObject>> {
        self.storages
            .get("/namespaces")
            .and_then(|s| s.objects.get(namespace))
    }

    pub fn now_rfc3339() -> String {
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    /// The registered CRD storage key of a CRD object, to create/delete its resources.
    pub fn register_crd(&mut self, crd: &Value) -> Result<(), String> {
        for rt in registry::crd_resources(crd)? {
            self.serve(rt);
        }
        Ok(())
    }
}

/// 404 for a resource the server does not serve.
pub(crate) fn unknown_resource() -> Status {
    Status {
        code: 404,
        reason: "NotFound".into(),
        message: "the server could not find the requested resource".into(),
        details: Some(json!({})),
        metadata: None,
    }
}
