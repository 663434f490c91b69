//! The cache's contents and its read handle: client-go's `threadSafeStore` + `Indexer`
//! (`tools/cache/thread_safe_store.go`, `index.go`), read the way kube-runtime's
//! `reflector/store.rs` reads.
//!
//! One [`StoreWriter`] (not `Clone`, owned by the [`Indexer`](crate::indexer::Indexer) actor,
//! which alone applies changes) and any number of cheap, clonable [`Store`] readers. Readers
//! never wait in a mailbox: they take a read lock only long enough to clone `Arc`s. Objects
//! are stored once and shared with every listener. This module only stores: what a change
//! means (add, update, delete) is decided by the indexer (client-go's `processDeltas`).
//!
//! Staleness: a read sees every batch the indexer has applied, which is at least every
//! event any handler has been told about, and possibly a few newer ones.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;
use thiserror::Error;

use crate::ids::{IndexName, IndexValue, ObjectKey};
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

    /// The object stored under `key`.
    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Arc<K>> {
        self.objects.get(key)
    }

    /// Stores `obj` under `key`, replacing (and unindexing) what was there.
    pub(crate) fn insert(&mut self, key: ObjectKey, obj: Arc<K>) {
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

    /// Removes `key`; the object it held, if any.
    pub(crate) fn remove(&mut self, key: &ObjectKey) -> Option<Arc<K>> {
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

/// Everything a store holds at one instant: taken under one lock, so a late listener's
/// replay lines up with the batches after it.
#[derive(Debug)]
pub struct Snapshot<K> {
    /// Every object, in no particular order.
    pub objects: Vec<Arc<K>>,
    /// The last batch applied (see [`NotificationBatch::seq`](crate::notification::NotificationBatch::seq)).
    pub seq: u64,
    /// Whether the first complete list is included.
    pub synced: bool,
}

/// The only writer of a cache: not `Clone`, owned by the indexer. Hands out [`Store`] readers.
pub struct StoreWriter<K> {
    store: Store<K>,
}

impl<K: CacheObject> Default for StoreWriter<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: CacheObject> StoreWriter<K> {
    /// An empty cache with the namespace index.
    pub fn new() -> Self {
        Self {
            store: Store {
                cache: Arc::new(RwLock::new(Cache::new())),
                synced: Arc::new(tokio::sync::watch::Sender::new(false)),
            },
        }
    }

    /// A read handle on this cache.
    pub fn reader(&self) -> Store<K> {
        self.store.clone()
    }

    /// Runs `f` on the cache under the write lock.
    pub(crate) fn write<T>(&mut self, f: impl FnOnce(&mut Cache<K>) -> T) -> T {
        f(&mut self.store.cache.write())
    }

    /// Tells waiters the first list has been applied.
    pub(crate) fn announce_synced(&self) {
        self.store.synced.send_replace(true);
    }
}

impl<K: CacheObject> Store<K> {
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

    /// Objects in the cache.
    pub fn len(&self) -> usize {
        self.cache.read().objects.len()
    }

    /// The cache holds no object.
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

    /// Every object, the last batch they reflect, and whether that includes the first list.
    pub fn snapshot(&self) -> Snapshot<K> {
        let cache = self.cache.read();
        Snapshot {
            objects: cache.objects.values().cloned().collect(),
            seq: cache.applied_seq,
            synced: cache.synced,
        }
    }
}
