//! The cache's contents and its read handle: client-go's `threadSafeStore` + `Indexer`
//! (`tools/cache/thread_safe_store.go`, `index.go`), read the way kube-runtime's
//! `reflector/store.rs` reads.
//!
//! One writer (the [`Indexer`](crate::indexer::Indexer) actor) and any number of cheap,
//! clonable [`Store`] handles. Readers never wait in a mailbox: they take a read lock only
//! long enough to clone `Arc`s. Objects are stored once and shared with every listener.
//!
//! Staleness: a read sees every batch the indexer has applied, which is at least every
//! event any handler has been told about, and possibly a few newer ones.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;
use thiserror::Error;

use crate::delta_fifo::{DeltaObject, DeltaType, PoppedKey};
use crate::ids::{IndexName, IndexValue, ObjectKey};
use crate::notification::Notification;
use crate::object::CacheObject;

/// The built-in index of objects by namespace (client-go's `NamespaceIndex`).
pub const NAMESPACE_INDEX: &str = "namespace";

/// An index function: the values under which an object is found (a pod's node name, ...).
/// An empty vector leaves the object out of the index.
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// A failed index operation.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IndexError {
    /// Asked for an index that was never added; add it with `Informer::add_indexers`.
    #[error("no index named {0:?}; add it with add_indexers first")]
    UnknownIndex(String),
    /// An index of that name exists already; index functions cannot be replaced.
    #[error("an index named {0:?} already exists")]
    DuplicateIndex(String),
}

/// Objects by key plus their indexes. Only the indexer writes it.
pub(crate) struct Cache<K> {
    objects: HashMap<ObjectKey, Arc<K>>,
    index_fns: HashMap<IndexName, IndexFn<K>>,
    /// Invariant: for every index in `index_fns` and every object, the object's key is
    /// under exactly the values the function gives for it, and under no other; empty value
    /// sets are removed.
    indices: HashMap<IndexName, HashMap<IndexValue, HashSet<ObjectKey>>>,
    /// The last FIFO batch applied (see `NotificationBatch::seq`).
    applied_seq: u64,
    synced: bool,
}

impl<K: CacheObject> Cache<K> {
    fn new() -> Self {
        let mut cache = Self {
            objects: HashMap::new(),
            index_fns: HashMap::new(),
            indices: HashMap::new(),
            applied_seq: 0,
            synced: false,
        };
        let by_namespace: IndexFn<K> =
            Arc::new(|obj: &K| obj.meta().namespace.iter().cloned().collect());
        cache
            .add_indexers(vec![(IndexName::new(NAMESPACE_INDEX), by_namespace)])
            .expect("a fresh cache has no indexes");
        cache
    }

    /// Adds index functions and indexes every object already stored.
    pub(crate) fn add_indexers(
        &mut self,
        indexers: Vec<(IndexName, IndexFn<K>)>,
    ) -> Result<(), IndexError> {
        if let Some((name, _)) = indexers
            .iter()
            .find(|(name, _)| self.index_fns.contains_key(name))
        {
            return Err(IndexError::DuplicateIndex(name.to_string()));
        }
        for (name, index_fn) in indexers {
            let mut index: HashMap<IndexValue, HashSet<ObjectKey>> = HashMap::new();
            for (key, obj) in &self.objects {
                for value in index_fn(obj) {
                    index
                        .entry(IndexValue::new(value))
                        .or_default()
                        .insert(key.clone());
                }
            }
            self.indices.insert(name.clone(), index);
            self.index_fns.insert(name, index_fn);
        }
        Ok(())
    }

    fn insert(&mut self, key: ObjectKey, obj: Arc<K>) {
        if let Some(old) = self.objects.insert(key.clone(), obj.clone()) {
            self.unindex(&key, &old);
        }
        for (name, index_fn) in &self.index_fns {
            let index = self.indices.entry(name.clone()).or_default();
            for value in index_fn(&obj) {
                index
                    .entry(IndexValue::new(value))
                    .or_default()
                    .insert(key.clone());
            }
        }
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }

    fn unindex(&mut self, key: &ObjectKey, old: &K) {
        for (name, index_fn) in &self.index_fns {
            let Some(index) = self.indices.get_mut(name) else {
                continue;
            };
            for value in index_fn(old) {
                let value = IndexValue::new(value);
                if let Some(keys) = index.get_mut(&value) {
                    keys.remove(key);
                    if keys.is_empty() {
                        index.remove(&value);
                    }
                }
            }
        }
    }

    /// Applies popped deltas in order and says what changed (client-go's
    /// `processDeltas`: an upsert is an add when the key is absent, else an update).
    /// A relisted object with an unchanged resourceVersion is not re-announced, and a delete
    /// of an absent key announces nothing.
    pub(crate) fn apply(
        &mut self,
        popped: Vec<PoppedKey<K>>,
        resync_generation: u64,
    ) -> Vec<Notification<K>> {
        let mut notes = Vec::with_capacity(popped.len());
        for PoppedKey {
            key,
            deltas,
            initial_list,
        } in popped
        {
            for delta in deltas {
                match (delta.kind, delta.object) {
                    (DeltaType::Deleted, object) => {
                        let final_state_unknown = matches!(object, DeltaObject::Tombstone(_));
                        if self.remove(&key).is_some() {
                            let obj = object.object().clone();
                            notes.push(Notification::Deleted {
                                key: key.clone(),
                                obj,
                                final_state_unknown,
                            });
                        }
                    }
                    (DeltaType::Sync, object) => match self.objects.get(&key) {
                        Some(current) => notes.push(Notification::Resync {
                            key: key.clone(),
                            obj: current.clone(),
                            generation: resync_generation,
                        }),
                        None => {
                            let obj = object.object().clone();
                            self.insert(key.clone(), obj.clone());
                            notes.push(Notification::Added {
                                key: key.clone(),
                                obj,
                                initial: false,
                            });
                        }
                    },
                    (kind, object) => {
                        let obj = object.object().clone();
                        match self.objects.get(&key).cloned() {
                            Some(old)
                                if kind == DeltaType::Replaced
                                    && same_version(old.as_ref(), obj.as_ref()) => {}
                            Some(old) => {
                                self.insert(key.clone(), obj.clone());
                                notes.push(Notification::Updated {
                                    key: key.clone(),
                                    old,
                                    new: obj,
                                });
                            }
                            None => {
                                self.insert(key.clone(), obj.clone());
                                notes.push(Notification::Added {
                                    key: key.clone(),
                                    obj,
                                    initial: initial_list,
                                });
                            }
                        }
                    }
                }
            }
        }
        notes
    }

    /// Records that batch `seq` was applied; true if it newly marks the cache synced.
    pub(crate) fn finish_batch(&mut self, seq: u64, marks_synced: bool) -> bool {
        self.applied_seq = seq;
        let newly = marks_synced && !self.synced;
        self.synced |= marks_synced;
        newly
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for (name, index_fn) in &self.index_fns {
            let index = &self.indices[name];
            let mut expected: HashMap<IndexValue, HashSet<ObjectKey>> = HashMap::new();
            for (key, obj) in &self.objects {
                for value in index_fn(obj) {
                    expected
                        .entry(IndexValue::new(value))
                        .or_default()
                        .insert(key.clone());
                }
            }
            assert_eq!(index, &expected, "index {name} out of date");
        }
    }
}

/// Two states of one object with the same (non-empty) resourceVersion are the same state.
fn same_version<K: kube::Resource>(a: &K, b: &K) -> bool {
    match (&a.meta().resource_version, &b.meta().resource_version) {
        (Some(a), Some(b)) => !a.is_empty() && a == b,
        _ => false,
    }
}

/// A read handle on an informer's cache: clonable, cheap, never blocked behind the pipeline's
/// mailboxes. client-go's `Indexer`/`Store` read methods.
#[doc(alias = "Indexer")]
#[doc(alias = "ThreadSafeStore")]
pub struct Store<K> {
    cache: Arc<RwLock<Cache<K>>>,
    synced: Arc<tokio::sync::watch::Sender<bool>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K: CacheObject> Default for Store<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: CacheObject> Store<K> {
    /// An empty cache with the namespace index.
    pub fn new() -> Self {
        Self {
            cache: Arc::new(RwLock::new(Cache::new())),
            synced: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// The object stored under `key` (`namespace/name`, or `name` when cluster-scoped).
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.cache.read().objects.get(key).cloned()
    }

    /// Every object, in no particular order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.cache.read().objects.values().cloned().collect()
    }

    /// Every key, in no particular order.
    pub fn list_keys(&self) -> Vec<ObjectKey> {
        self.cache.read().objects.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.cache.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects `index` files under `value` (client-go's `ByIndex`).
    pub fn by_index(&self, index: &str, value: &str) -> Result<Vec<Arc<K>>, IndexError> {
        let cache = self.cache.read();
        let keys = cache
            .indices
            .get(&IndexName::new(index))
            .ok_or_else(|| IndexError::UnknownIndex(index.into()))?;
        Ok(keys
            .get(&IndexValue::new(value))
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| cache.objects.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The keys `index` files under `value` (client-go's `IndexKeys`).
    pub fn index_keys(&self, index: &str, value: &str) -> Result<Vec<ObjectKey>, IndexError> {
        let cache = self.cache.read();
        let keys = cache
            .indices
            .get(&IndexName::new(index))
            .ok_or_else(|| IndexError::UnknownIndex(index.into()))?;
        Ok(keys
            .get(&IndexValue::new(value))
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default())
    }

    /// Every value `index` holds objects under (client-go's `ListIndexFuncValues`).
    pub fn list_index_values(&self, index: &str) -> Result<Vec<IndexValue>, IndexError> {
        let cache = self.cache.read();
        let keys = cache
            .indices
            .get(&IndexName::new(index))
            .ok_or_else(|| IndexError::UnknownIndex(index.into()))?;
        Ok(keys.keys().cloned().collect())
    }

    /// Whether the first complete list has been applied.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first complete list has been applied.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as this store, so `wait_for` cannot fail.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// Writer side: runs `f` on the cache under the write lock (the indexer actor only).
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Cache<K>) -> T) -> T {
        f(&mut self.cache.write())
    }

    /// Writer side: tells waiters the first list has been applied.
    pub(crate) fn announce_synced(&self) {
        self.synced.send_replace(true);
    }

    /// Every object, the last batch they reflect, and whether that includes the first list:
    /// taken under one lock so a late listener's replay lines up with the batches after it.
    pub(crate) fn snapshot(&self) -> (Vec<Arc<K>>, u64, bool) {
        let cache = self.cache.read();
        (
            cache.objects.values().cloned().collect(),
            cache.applied_seq,
            cache.synced,
        )
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::delta_fifo::{DeletedFinalStateUnknown, Delta};
    use crate::test_support::{pod, pod_on, rv};

    fn popped(kind: DeltaType, obj: Arc<Pod>) -> PoppedKey<Pod> {
        PoppedKey {
            key: ObjectKey::of(obj.as_ref()),
            deltas: vec![Delta {
                kind,
                object: DeltaObject::Live(obj),
            }],
            initial_list: false,
        }
    }

    fn by_node(pod: &Pod) -> Vec<String> {
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .into_iter()
            .collect()
    }

    /// Notifications as (kind, name, resourceVersion) for whole-sequence asserts.
    fn summary(notes: &[Notification<Pod>]) -> Vec<(&'static str, String, u64)> {
        notes
            .iter()
            .map(|n| match n {
                Notification::Added { obj, .. } => {
                    ("added", obj.metadata.name.clone().unwrap(), rv(obj))
                }
                Notification::Updated { new, .. } => {
                    ("updated", new.metadata.name.clone().unwrap(), rv(new))
                }
                Notification::Deleted {
                    obj,
                    final_state_unknown,
                    ..
                } => (
                    if *final_state_unknown {
                        "deleted?"
                    } else {
                        "deleted"
                    },
                    obj.metadata.name.clone().unwrap(),
                    rv(obj),
                ),
                Notification::Resync { obj, .. } => {
                    ("resync", obj.metadata.name.clone().unwrap(), rv(obj))
                }
            })
            .collect()
    }

    #[test]
    fn should_tell_adds_from_updates_by_what_the_cache_holds() {
        let mut cache = Cache::new();
        let notes = cache.apply(
            vec![
                popped(DeltaType::Updated, pod("a", 1)),
                popped(DeltaType::Added, pod("a", 2)),
                popped(DeltaType::Deleted, pod("a", 3)),
                popped(DeltaType::Deleted, pod("b", 4)),
            ],
            0,
        );
        assert_eq!(
            summary(&notes),
            vec![
                ("added", "a".into(), 1),
                ("updated", "a".into(), 2),
                ("deleted", "a".into(), 3)
            ]
        );
        cache.check_invariants();
    }

    #[test]
    fn should_not_reannounce_relisted_objects_with_the_same_resource_version() {
        let mut cache = Cache::new();
        cache.apply(vec![popped(DeltaType::Replaced, pod("a", 1))], 0);
        let notes = cache.apply(
            vec![
                popped(DeltaType::Replaced, pod("a", 1)),
                popped(DeltaType::Replaced, pod("b", 2)),
            ],
            0,
        );
        assert_eq!(summary(&notes), vec![("added", "b".into(), 2)]);
    }

    #[test]
    fn should_announce_a_tombstone_as_a_deletion_with_unknown_final_state() {
        let mut cache = Cache::new();
        cache.apply(vec![popped(DeltaType::Added, pod("a", 1))], 0);
        let key = ObjectKey::new("ns/a");
        let tombstone = DeltaObject::Tombstone(DeletedFinalStateUnknown {
            key: key.clone(),
            obj: pod("a", 1),
        });
        let notes = cache.apply(
            vec![PoppedKey {
                key,
                deltas: vec![Delta {
                    kind: DeltaType::Deleted,
                    object: tombstone,
                }],
                initial_list: false,
            }],
            0,
        );
        assert_eq!(summary(&notes), vec![("deleted?", "a".into(), 1)]);
    }

    #[test]
    fn should_resync_with_the_stored_arc() {
        let mut cache = Cache::new();
        let stored = pod("a", 1);
        cache.apply(vec![popped(DeltaType::Added, stored.clone())], 0);
        let notes = cache.apply(vec![popped(DeltaType::Sync, pod("a", 1))], 7);
        match &notes[..] {
            [
                Notification::Resync {
                    obj, generation: 7, ..
                },
            ] => assert!(Arc::ptr_eq(obj, &stored)),
            other => panic!("expected one resync, got {other:?}"),
        }
    }

    #[test]
    fn should_keep_user_indexes_exact_through_moves_and_deletes() {
        let store: Store<Pod> = Store::new();
        store
            .write(|c| {
                c.add_indexers(vec![(
                    IndexName::new("by-node"),
                    Arc::new(by_node) as IndexFn<Pod>,
                )])
            })
            .unwrap();
        store.write(|c| {
            c.apply(
                vec![
                    popped(DeltaType::Added, pod_on("a", 1, Some("n1"))),
                    popped(DeltaType::Added, pod_on("b", 2, Some("n1"))),
                    popped(DeltaType::Added, pod_on("c", 3, None)),
                ],
                0,
            )
        });
        store.write(|c| {
            c.apply(
                vec![
                    popped(DeltaType::Updated, pod_on("a", 4, Some("n2"))),
                    popped(DeltaType::Deleted, pod_on("b", 5, Some("n1"))),
                ],
                0,
            )
        });
        store.write(|c| c.check_invariants());
        let names = |objs: Vec<Arc<Pod>>| {
            let mut n: Vec<String> = objs
                .iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(store.by_index("by-node", "n2").unwrap()), vec!["a"]);
        assert!(store.by_index("by-node", "n1").unwrap().is_empty());
        assert_eq!(
            store.list_index_values("by-node").unwrap(),
            vec![IndexValue::new("n2")]
        );
        assert_eq!(
            names(store.by_index(NAMESPACE_INDEX, "ns").unwrap()),
            vec!["a", "c"]
        );
        assert_eq!(
            store.index_keys("by-node", "n2").unwrap(),
            vec![ObjectKey::new("ns/a")]
        );
    }

    #[test]
    fn should_index_objects_already_cached_when_an_index_is_added_late() {
        let store: Store<Pod> = Store::new();
        store.write(|c| {
            c.apply(
                vec![popped(DeltaType::Added, pod_on("a", 1, Some("n1")))],
                0,
            )
        });
        store
            .write(|c| {
                c.add_indexers(vec![(
                    IndexName::new("by-node"),
                    Arc::new(by_node) as IndexFn<Pod>,
                )])
            })
            .unwrap();
        assert_eq!(store.by_index("by-node", "n1").unwrap().len(), 1);
    }

    #[test]
    fn should_name_the_missing_or_duplicate_index() {
        let store: Store<Pod> = Store::new();
        assert_eq!(
            store.by_index("nope", "x").unwrap_err(),
            IndexError::UnknownIndex("nope".into())
        );
        let err = store
            .write(|c| {
                c.add_indexers(vec![(
                    IndexName::new(NAMESPACE_INDEX),
                    Arc::new(by_node) as IndexFn<Pod>,
                )])
            })
            .unwrap_err();
        assert_eq!(err, IndexError::DuplicateIndex(NAMESPACE_INDEX.into()));
        assert!(err.to_string().contains("already exists"));
    }

    #[test]
    fn should_share_stored_objects_instead_of_copying() {
        let store: Store<Pod> = Store::new();
        let obj = pod("a", 1);
        store.write(|c| c.apply(vec![popped(DeltaType::Added, obj.clone())], 0));
        assert!(Arc::ptr_eq(
            &store.get(&ObjectKey::new("ns/a")).unwrap(),
            &obj
        ));
    }
}
