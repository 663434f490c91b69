//! The cache's index of objects by label: for each label key, the objects under each value.
//! client-go has no such index (its listers scan and match every object); the API server's
//! watch cache keeps one for the label and field selectors it is asked for most.
//!
//! # Contract
//! - Invariant: an object's key is filed under exactly its labels' `(key, value)` pairs;
//!   empty sets and maps are removed, so the index holds no trace of a deleted object.
//! - A selector with an `=` or `in` expression reads its candidates here instead of scanning
//!   every object (`store.rs`: `select`); the candidates are still matched against the whole
//!   selector. A 250-of-5 000 selection over a compact cache scanned 5 000 entries (two
//!   cache misses each) before.
//! - Label keys and values are the cache's interned strings (`compact.rs`): a fleet of pods
//!   from a few templates costs one set entry per label per object.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::compact::Interner;
use crate::ids::ObjectKey;
/// The cache's hasher (as `store.rs`' key maps).
type FastState = foldhash::fast::RandomState;

type ByValue = HashMap<Arc<str>, HashSet<ObjectKey, FastState>, FastState>;

/// Objects by label key and value (see the module docs).
#[derive(Default)]
pub(crate) struct LabelIndex {
    by_key: HashMap<Arc<str>, ByValue, FastState>,
}

impl LabelIndex {
    /// Files `key` under each of `labels`.
    pub(crate) fn add(
        &mut self,
        key: &ObjectKey,
        labels: Option<&BTreeMap<String, String>>,
        interner: &mut Interner,
    ) {
        for (label, value) in labels.into_iter().flatten() {
            let by_value = match self.by_key.get_mut(label.as_str()) {
                Some(by_value) => by_value,
                None => self.by_key.entry(interner.intern(label)).or_default(),
            };
            match by_value.get_mut(value.as_str()) {
                Some(keys) => keys.insert(key.clone()),
                None => by_value
                    .entry(interner.intern(value))
                    .or_default()
                    .insert(key.clone()),
            };
        }
    }

    /// Takes `key` out from under each of `labels` (the labels it was filed with).
    pub(crate) fn remove(&mut self, key: &ObjectKey, labels: Option<&BTreeMap<String, String>>) {
        for (label, value) in labels.into_iter().flatten() {
            let Some(by_value) = self.by_key.get_mut(label.as_str()) else {
                continue;
            };
            if let Some(keys) = by_value.get_mut(value.as_str()) {
                keys.remove(key);
                if keys.is_empty() {
                    by_value.remove(value.as_str());
                }
            }
            if by_value.is_empty() {
                self.by_key.remove(label.as_str());
            }
        }
    }

    /// Takes `key` out from under every label (when its labels are not known).
    pub(crate) fn remove_everywhere(&mut self, key: &ObjectKey) {
        self.by_key.retain(|_, by_value| {
            by_value.retain(|_, keys| {
                keys.remove(key);
                !keys.is_empty()
            });
            !by_value.is_empty()
        });
    }

    /// The objects whose label `label` has one of `values`.
    pub(crate) fn keys<'a>(
        &'a self,
        label: &str,
        values: &'a [&'a str],
    ) -> impl Iterator<Item = &'a ObjectKey> + 'a {
        let by_value = self.by_key.get(label);
        values
            .iter()
            .filter_map(move |value| by_value?.get(*value))
            .flatten()
    }

    /// Every `(label, value) → keys` entry, sorted (for invariant checks in tests).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> BTreeMap<(String, String), Vec<ObjectKey>> {
        let mut entries = BTreeMap::new();
        for (label, by_value) in &self.by_key {
            for (value, keys) in by_value {
                let mut keys: Vec<ObjectKey> = keys.iter().cloned().collect();
                keys.sort();
                entries.insert((label.to_string(), value.to_string()), keys);
            }
        }
        entries
    }
}
