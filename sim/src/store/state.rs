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
//! - `compacted` only grows; lists and continues at an rv below it (or below the storage's
//!   own early-compaction floor) are 410, and no list snapshot older than it is kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imbl::OrdMap;
use serde_json::{Value, json};

use super::lifecycle_queues::Lifecycle;
use super::partial_object::PartialObject;
use super::registry;
use super::storage_key::{StorageKey, object_key, storage_key};
use super::watch::{EventKind, History, HistoryEvent, Watcher};
use super::{ResourceType, Status, StoreConfig, StoredObject, WatchEvent};

/// The objects of one resource and its watch cache.
pub(crate) struct Storage {
    pub objects: OrdMap<String, Arc<StoredObject>>,
    pub history: History,
    /// The watch cache's resourceVersion: the store's rv when the resource was first
    /// served, then the rv of each write to it.
    pub last_write: u64,
    /// The rv of the last write since the store started (0: none); the cacher's
    /// `lastProcessedResourceVersion`, which bookmarks carry.
    pub last_event: u64,
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
    /// etcd's compacted revision: lists and continues from before it are 410.
    pub compacted: u64,
    pub config: StoreConfig,
    /// Queues of the kubelet, garbage collector and namespace controller.
    pub lifecycle: Lifecycle,
}

impl State {
    pub fn new(config: StoreConfig) -> State {
        let mut state = State {
            rv: 0,
            served: Vec::new(),
            storages: HashMap::new(),
            snapshots: HashMap::new(),
            compacted: 0,
            config,
            lifecycle: Lifecycle::default(),
        };
        for rt in registry::builtin_resources() {
            state.serve(rt);
        }
        state
    }

    pub fn serve(&mut self, rt: Arc<ResourceType>) {
        let rv = self.rv;
        let config = &self.config;
        self.storages
            .entry(storage_key(&rt))
            .or_insert_with(|| Storage {
                objects: OrdMap::new(),
                history: History::new(rv, config),
                last_write: rv,
                last_event: 0,
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
        self.store_committed(rt, kind, stored, Some(&value), config)
    }

    /// [`State::commit`] of a modified [`PartialObject`]: `parsed` holds its parsed members
    /// (with `metadata`), `rest` the unchanged others, `old` the object it replaces.
    pub(crate) fn commit_partial(
        &mut self,
        rt: &ResourceType,
        mut parsed: Value,
        rest: &PartialObject,
        old: &StoredObject,
        config: &StoreConfig,
    ) -> Arc<StoredObject> {
        self.rv += 1;
        let rv = self.rv;
        parsed["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let stored = Arc::new(StoredObject::from_partial(&parsed, rest, old, rv));
        self.store_committed(rt, EventKind::Modified, stored, Some(&parsed), config)
    }

    /// [`State::commit`] of an object `build` serializes itself (with the resourceVersion it
    /// is given in its JSON); `observed` is what the garbage collector reads of it (its
    /// `metadata` uid, ownerReferences, deletionTimestamp and finalizers), `None` when the
    /// write changed none of that (the collector already saw it with the replaced object).
    pub(crate) fn commit_with(
        &mut self,
        rt: &ResourceType,
        kind: EventKind,
        build: impl FnOnce(u64) -> StoredObject,
        observed: Option<&Value>,
        config: &StoreConfig,
    ) -> Arc<StoredObject> {
        self.rv += 1;
        let stored = Arc::new(build(self.rv));
        self.store_committed(rt, kind, stored, observed, config)
    }

    /// Stores a stamped object and tells watchers, history and the garbage collector (which
    /// reads only `value`'s metadata; `None`: unchanged since the collector last saw it).
    fn store_committed(
        &mut self,
        rt: &ResourceType,
        kind: EventKind,
        stored: Arc<StoredObject>,
        value: Option<&Value>,
        config: &StoreConfig,
    ) -> Arc<StoredObject> {
        let rv = stored.resource_version;
        let namespace = rt.namespaced.then(|| stored.namespace().unwrap_or(""));
        let key = object_key(namespace, stored.name());
        if let Some(value) = value {
            self.lifecycle
                .gc
                .observe(&storage_key(rt), &key, value, kind);
        }
        let storage = self
            .storages
            .get_mut(&storage_key(rt))
            .expect("commit only to served resources");
        let prev = match kind {
            EventKind::Deleted => storage.objects.remove(&key),
            _ => storage.objects.insert(key, stored.clone()),
        };
        storage.last_write = rv;
        storage.last_event = rv;
        let event = HistoryEvent {
            kind,
            object: stored.clone(),
            prev,
            recorded: Instant::now(),
        };
        storage.watchers.retain(|w| w.deliver(&event));
        storage.history.push(event, config, self.compacted);
        stored
    }

    /// Offers due watches their bookmark (`Cacher.dispatchEvents`' bookmark timer).
    pub fn dispatch_bookmarks(&mut self, now: Instant) {
        let interval = self.config.bookmark_interval;
        for storage in self.storages.values_mut() {
            let last_event = storage.last_event;
            storage
                .watchers
                .retain_mut(|w| w.bookmark(now, last_event, interval));
        }
    }

    /// Sends a plain BOOKMARK at the current rv to every watch that allows them, due or
    /// not (tests and faults).
    pub fn send_bookmarks_now(&mut self) {
        let rv = self.rv;
        for storage in self.storages.values_mut() {
            storage.watchers.retain(|w| {
                if !w.allow_bookmarks {
                    return !w.tx.is_closed();
                }
                w.offer(WatchEvent::Bookmark {
                    resource_version: rv,
                    initial_events_end: false,
                })
            });
        }
    }

    pub fn expire_snapshots(&mut self, ttl: Duration) {
        self.snapshots.retain(|_, s| s.created.elapsed() < ttl);
    }

    /// The `compact` fault: etcd compacted at the current rv and every watch cache relisted,
    /// so any list, continue or watch from before now is 410.
    pub fn compact(&mut self) {
        let rv = self.rv;
        self.compacted = rv;
        self.snapshots.clear();
        let limit = self.config.history_limit;
        for storage in self.storages.values_mut() {
            storage.history.relist(rv, rv, limit);
        }
    }

    /// etcd's compaction at `rv` (the compactor's periodic run): lists and continues before
    /// it are 410; watch cache windows are untouched.
    pub fn compact_etcd(&mut self, rv: u64) {
        if rv <= self.compacted {
            return;
        }
        self.compacted = rv;
        self.snapshots.retain(|key, _| key.rv >= rv);
        let limit = self.config.history_limit;
        for storage in self.storages.values_mut() {
            storage.history.trim(rv, limit);
        }
    }

    /// The oldest rv a list of this storage may read.
    pub fn list_floor(&self, storage: &Storage) -> u64 {
        storage.history.list_floor(self.compacted)
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
