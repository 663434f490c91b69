//! The cache's contents and its read handle: client-go's `threadSafeStore` + `Indexer`
//! (`tools/cache/thread_safe_store.go`, `index.go`), read the way kube-runtime's
//! `reflector/store.rs` reads.
//!
//! One [`StoreWriter`] (not `Clone`, owned by the [`Indexer`](crate::indexer::Indexer) actor,
//! which alone applies changes) and any number of cheap, clonable [`Store`] readers. Readers
//! never wait in a mailbox: they take a read lock only long enough to clone `Arc`s (or, in a
//! compact cache, shared byte buffers). This module only stores: what a change means (add,
//! update, delete) is decided by the indexer (client-go's `processDeltas`).
//!
//! # Cache modes
//! - [`CacheMode::Typed`]: objects are stored once, behind `Arc`, and shared with every
//!   listener; a read clones an `Arc`.
//! - [`CacheMode::Compact`]: each object is kept as its compact JSON bytes plus a small index
//!   (`compact.rs`); a typed read decodes (outside the lock), so every `get`
//!   returns a fresh `Arc<K>`. Index functions run on the decoded object at write time; an
//!   update or delete decodes the old state once (handlers get it as `old`, and its index
//!   values are removed). [`get_json`](Store::get_json) and the lister's `list_json` hand out
//!   the stored bytes without decoding.
//! - `CacheMode::Metadata` stores its `PartialObjectMetadata` objects compact too: a decoded
//!   `ObjectMeta` with its `kind`/`apiVersion` strings costs about twice its JSON (2.4 KB
//!   against 1.0 KB per realistic pod, `benches/informers` P3), and a metadata informer is
//!   chosen for memory.
//!
//! # Selections
//! `select` (the lister's `list` and `list_json`) with an `=` or `in` expression reads its
//! candidates from the label index (`label_index.rs`) and matches them against the whole
//! selector; other selectors scan every object. Either way labels are read in place
//! (`selector/label_matcher.rs`), never copied into a map.
//!
//! Staleness: a read sees every batch the indexer has applied, which is at least every
//! event any handler has been told about, and possibly a few newer ones.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use kube::core::Selector;
use parking_lot::RwLock;
use thiserror::Error;

use crate::cache_mode::CacheMode;
use crate::compact::{CompactEntry, Interner, decode_json};
use crate::ids::{IndexName, IndexValue, ObjectKey};
use crate::label_index::LabelIndex;
use crate::object::CacheObject;
use crate::selector::LabelMatcher;

/// The built-in index of objects by namespace (client-go's `NamespaceIndex`).
pub const NAMESPACE_INDEX: &str = "namespace";

/// The hasher of the cache's key maps: foldhash, seeded per process (std's SipHash showed in
/// the profiles of a sync; keys come from a server we already trust with the objects).
pub(crate) type FastState = foldhash::fast::RandomState;
type FastMap<K, V> = HashMap<K, V, FastState>;
type FastSet<K> = HashSet<K, FastState>;

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

/// How the cache holds one object.
enum Slot<K> {
    /// Decoded, shared with listeners.
    Typed(Arc<K>),
    /// JSON bytes plus a small index (boxed: a typed cache's slots stay two words).
    Compact(Box<CompactEntry>),
}

/// One object taken out from under the lock, decoded (if at all) after the lock is released.
pub(crate) enum Held<K> {
    Typed(Arc<K>),
    Bytes(Bytes),
}

impl<K: CacheObject> Slot<K> {
    fn held(&self) -> Held<K> {
        match self {
            Self::Typed(obj) => Held::Typed(obj.clone()),
            Self::Compact(entry) => Held::Bytes(entry.bytes().clone()),
        }
    }

    fn resource_version(&self) -> Option<&str> {
        match self {
            Self::Typed(obj) => obj.meta().resource_version.as_deref(),
            Self::Compact(entry) => entry.resource_version(),
        }
    }

    fn matches(&self, matcher: &LabelMatcher) -> bool {
        if matcher.selects_all() {
            return true;
        }
        match self {
            Self::Typed(obj) => {
                let labels = obj.meta().labels.as_ref();
                matcher.matches(|key| labels?.get(key).map(String::as_str))
            }
            Self::Compact(entry) => matcher.matches(|key| entry.label(key)),
        }
    }
}

impl<K: CacheObject> Held<K> {
    /// The object; `None` (logged) if stored bytes do not decode, which would be a bug:
    /// the bytes were written by the same type's `Serialize`.
    pub(crate) fn object(self) -> Option<Arc<K>> {
        match self {
            Self::Typed(obj) => Some(obj),
            Self::Bytes(bytes) => match decode_json::<K>(&bytes) {
                Ok(obj) => Some(Arc::new(obj)),
                Err(error) => {
                    tracing::error!(%error, r#type = std::any::type_name::<K>(), "a compact cache entry does not decode; skipped");
                    None
                }
            },
        }
    }

    /// The object's JSON: the stored bytes, or (typed) the object serialised now.
    pub(crate) fn json(self) -> Option<Bytes> {
        match self {
            Self::Bytes(bytes) => Some(bytes),
            Self::Typed(obj) => match serde_json::to_vec(obj.as_ref()) {
                Ok(bytes) => Some(bytes.into()),
                Err(error) => {
                    tracing::error!(%error, "a cached object does not encode as JSON; skipped");
                    None
                }
            },
        }
    }
}

/// Objects by key plus their indexes. Only the indexer writes it.
pub(crate) struct Cache<K> {
    objects: FastMap<ObjectKey, Slot<K>>,
    /// Whether new objects are stored compact (see the module docs).
    compact: bool,
    /// Label strings of compact entries.
    interner: Interner,
    index_fns: HashMap<IndexName, IndexFn<K>>,
    /// Invariant: for every index in `index_fns` and every object, the object's key is
    /// under exactly the values the function gives for it, and under no other; empty value
    /// sets are removed.
    indices: HashMap<IndexName, FastMap<IndexValue, FastSet<ObjectKey>>>,
    /// Objects by label key and value, for selectors (`label_index.rs`).
    labels: LabelIndex,
    /// The resourceVersion of the last object written or deleted (the `metadata` of a
    /// `list_json` answer; a hint, not a consistent-read version).
    last_resource_version: Option<Arc<str>>,
    /// The last FIFO batch applied (see `NotificationBatch::seq`).
    applied_seq: u64,
    synced: bool,
}

impl<K: CacheObject> Cache<K> {
    fn new(mode: CacheMode) -> Self {
        let mut cache = Self {
            objects: FastMap::default(),
            compact: matches!(mode, CacheMode::Compact | CacheMode::Metadata),
            interner: Interner::default(),
            index_fns: HashMap::new(),
            indices: HashMap::new(),
            labels: LabelIndex::default(),
            last_resource_version: None,
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

    /// Adds index functions and indexes every object already stored (a compact cache decodes
    /// each once).
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
        let objects: Vec<(ObjectKey, Arc<K>)> = if indexers.is_empty() || self.objects.is_empty() {
            Vec::new()
        } else {
            self.objects
                .iter()
                .filter_map(|(key, slot)| Some((key.clone(), slot.held().object()?)))
                .collect()
        };
        for (name, index_fn) in indexers {
            let mut index: FastMap<IndexValue, FastSet<ObjectKey>> = FastMap::default();
            for (key, obj) in &objects {
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

    /// The object stored under `key` (decoded in a compact cache).
    pub(crate) fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.objects.get(key)?.held().object()
    }

    /// The resourceVersion of the object under `key`; `None` if absent or versionless.
    pub(crate) fn resource_version(&self, key: &ObjectKey) -> Option<&str> {
        self.objects.get(key)?.resource_version()
    }

    /// Whether an object is stored under `key`.
    pub(crate) fn contains(&self, key: &ObjectKey) -> bool {
        self.objects.contains_key(key)
    }

    /// Stores `obj` under `key`, replacing (and unindexing) what was there; the replaced
    /// object (decoded in a compact cache).
    pub(crate) fn insert(&mut self, key: ObjectKey, obj: Arc<K>) -> Option<Arc<K>> {
        self.last_resource_version = obj.meta().resource_version.as_deref().map(Into::into);
        let slot = if self.compact {
            match CompactEntry::encode(obj.as_ref(), &mut self.interner) {
                Ok(entry) => Slot::Compact(Box::new(entry)),
                Err(error) => {
                    // Kept typed rather than dropped: the cache stays complete.
                    tracing::error!(%error, key = %key, "object kept typed in a compact cache");
                    Slot::Typed(obj.clone())
                }
            }
        } else {
            Slot::Typed(obj.clone())
        };
        let old = self
            .objects
            .insert(key.clone(), slot)
            .and_then(|old| self.unindex(&key, old));
        self.labels
            .add(&key, obj.meta().labels.as_ref(), &mut self.interner);
        for (name, index_fn) in &self.index_fns {
            let index = self.indices.entry(name.clone()).or_default();
            for value in index_fn(&obj) {
                index
                    .entry(IndexValue::new(value))
                    .or_default()
                    .insert(key.clone());
            }
        }
        old
    }

    /// Removes `key`; the object it held, if any (decoded in a compact cache).
    pub(crate) fn remove(&mut self, key: &ObjectKey) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        if let Some(rv) = old.resource_version() {
            self.last_resource_version = Some(rv.into());
        }
        self.unindex(key, old)
    }

    /// Removes `key` from every index `old` is filed under; `old`, decoded. Stored bytes
    /// that do not decode (a bug, logged) are unindexed by scanning every index.
    fn unindex(&mut self, key: &ObjectKey, old: Slot<K>) -> Option<Arc<K>> {
        let Some(old) = old.held().object() else {
            self.labels.remove_everywhere(key);
            for index in self.indices.values_mut() {
                index.retain(|_, keys| {
                    keys.remove(key);
                    !keys.is_empty()
                });
            }
            return None;
        };
        self.labels.remove(key, old.meta().labels.as_ref());
        for (name, index_fn) in &self.index_fns {
            let Some(index) = self.indices.get_mut(name) else {
                continue;
            };
            for value in index_fn(&old) {
                let value = IndexValue::new(value);
                if let Some(keys) = index.get_mut(&value) {
                    keys.remove(key);
                    if keys.is_empty() {
                        index.remove(&value);
                    }
                }
            }
        }
        Some(old)
    }

    /// Records that batch `seq` was applied; true if it newly marks the cache synced.
    pub(crate) fn finish_batch(&mut self, seq: u64, marks_synced: bool) -> bool {
        self.applied_seq = seq;
        let newly = marks_synced && !self.synced;
        self.synced |= marks_synced;
        newly
    }

    /// Heap bytes the compact entries own (bytes, versions, label slots); 0 in a typed
    /// cache. Interned strings and map overhead are not counted.
    pub(crate) fn compact_bytes(&self) -> usize {
        self.objects
            .values()
            .map(|slot| match slot {
                Slot::Typed(_) => 0,
                Slot::Compact(entry) => entry.heap_bytes(),
            })
            .sum()
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for (name, index_fn) in &self.index_fns {
            let index = &self.indices[name];
            let mut expected: FastMap<IndexValue, FastSet<ObjectKey>> = FastMap::default();
            for (key, slot) in &self.objects {
                let obj = slot.held().object().expect("stored objects decode");
                for value in index_fn(&obj) {
                    expected
                        .entry(IndexValue::new(value))
                        .or_default()
                        .insert(key.clone());
                }
            }
            assert_eq!(index, &expected, "index {name} out of date");
        }
        let mut expected = std::collections::BTreeMap::new();
        for (key, slot) in &self.objects {
            let obj = slot.held().object().expect("stored objects decode");
            for (label, value) in obj.meta().labels.iter().flatten() {
                expected
                    .entry((label.clone(), value.clone()))
                    .or_insert_with(Vec::new)
                    .push(key.clone());
            }
        }
        for keys in expected.values_mut() {
            keys.sort();
        }
        assert_eq!(self.labels.entries(), expected, "label index out of date");
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
    /// An empty typed cache with the namespace index.
    pub fn new() -> Self {
        Self::with_mode(CacheMode::Typed)
    }

    /// An empty cache holding its objects as `mode` says (see the module docs).
    pub fn with_mode(mode: CacheMode) -> Self {
        Self {
            store: Store {
                cache: Arc::new(RwLock::new(Cache::new(mode))),
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

/// Decodes what was taken from under the lock (skipping, logged, what does not decode).
fn objects<K: CacheObject>(held: Vec<Held<K>>) -> Vec<Arc<K>> {
    held.into_iter().filter_map(Held::object).collect()
}

impl<K: CacheObject> Store<K> {
    /// The object stored under `key` (`namespace/name`, or `name` when cluster-scoped). In
    /// a compact cache each call decodes a fresh copy.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        let held = self.cache.read().objects.get(key)?.held();
        held.object()
    }

    /// The JSON of the object under `key`: in a compact cache the stored bytes (no copy, no
    /// decoding); in a typed cache the object serialised now.
    pub fn get_json(&self, key: &ObjectKey) -> Option<Bytes> {
        let held = self.cache.read().objects.get(key)?.held();
        held.json()
    }

    /// Every object, in no particular order.
    pub fn list(&self) -> Vec<Arc<K>> {
        let held: Vec<_> = self.cache.read().objects.values().map(Slot::held).collect();
        objects(held)
    }

    /// The objects in `namespace` (all when `None`) whose labels match `selector`, taken
    /// under one read lock and not yet decoded. A compact cache matches labels from its
    /// index, so only what matches is ever decoded.
    pub(crate) fn select(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Held<K>> {
        let matcher = LabelMatcher::new(selector);
        let cache = self.cache.read();
        if let Some((label, values)) = matcher.required_values() {
            // Only objects carrying one of the values can match: no scan.
            let in_namespace = namespace.map(|ns| {
                cache
                    .indices
                    .get(&IndexName::new(NAMESPACE_INDEX))
                    .and_then(|index| index.get(&IndexValue::new(ns)))
            });
            return cache
                .labels
                .keys(label, &values)
                .filter(|key| match in_namespace {
                    None => true,
                    Some(keys) => keys.is_some_and(|keys| keys.contains(*key)),
                })
                .filter_map(|key| cache.objects.get(key))
                .filter(|slot| slot.matches(&matcher))
                .map(Slot::held)
                .collect();
        }
        match namespace {
            Some(ns) => cache
                .indices
                .get(&IndexName::new(NAMESPACE_INDEX))
                .and_then(|index| index.get(&IndexValue::new(ns)))
                .map(|keys| {
                    keys.iter()
                        .filter_map(|key| cache.objects.get(key))
                        .filter(|slot| slot.matches(&matcher))
                        .map(Slot::held)
                        .collect()
                })
                .unwrap_or_default(),
            None => cache
                .objects
                .values()
                .filter(|slot| slot.matches(&matcher))
                .map(Slot::held)
                .collect(),
        }
    }

    /// Whether this cache keeps objects compact.
    pub(crate) fn is_compact(&self) -> bool {
        self.cache.read().compact
    }

    /// The resourceVersion of the last change applied (a hint for list answers).
    pub(crate) fn last_resource_version(&self) -> Option<Arc<str>> {
        self.cache.read().last_resource_version.clone()
    }

    /// Heap bytes held by compact entries (0 in a typed cache): the JSON bytes, versions and
    /// label slots, not the shared label strings nor the maps (benchmarks count those).
    pub fn compact_bytes(&self) -> usize {
        self.cache.read().compact_bytes()
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
        let held: Vec<_> = {
            let cache = self.cache.read();
            let keys = cache
                .indices
                .get(&IndexName::new(index))
                .ok_or_else(|| IndexError::UnknownIndex(index.into()))?;
            keys.get(&IndexValue::new(value))
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| cache.objects.get(k).map(Slot::held))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(objects(held))
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
    /// A compact cache decodes every object (after the lock is released).
    pub fn snapshot(&self) -> Snapshot<K> {
        let (held, seq, synced) = {
            let cache = self.cache.read();
            let held: Vec<_> = cache.objects.values().map(Slot::held).collect();
            (held, cache.applied_seq, cache.synced)
        };
        Snapshot {
            objects: objects(held),
            seq,
            synced,
        }
    }
}
