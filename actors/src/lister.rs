//! Namespace-aware reads over a [`Store`]: client-go's generated listers
//! (`PodLister.Pods(ns).Get(name)`, `List(selector)`), for any resource.

use std::sync::Arc;

use kube::core::{Selector, SelectorExt};

use crate::ids::ObjectKey;
use crate::object::CacheObject;
use crate::store::{NAMESPACE_INDEX, Store};

/// Reads objects by namespace, name and labels. Same staleness as [`Store`].
#[doc(alias = "GenericLister")]
pub struct Lister<K> {
    store: Store<K>,
}

impl<K> Clone for Lister<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
        }
    }
}

impl<K: CacheObject> Lister<K> {
    /// A lister reading `store` (no copy: every read sees the cache as it is now).
    pub fn new(store: Store<K>) -> Self {
        Self { store }
    }

    /// The object `name` in `namespace` (`None` for cluster-scoped resources).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        self.store.get(&ObjectKey::from_parts(namespace, name))
    }

    /// The objects in `namespace` (all namespaces when `None`) whose labels match `selector`,
    /// kube's [`Selector`] (`Selector::default()` matches everything; build others from
    /// `kube::core::Expression`s or `(key, value)` pairs with `collect`).
    pub fn list(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Arc<K>> {
        let candidates = match namespace {
            Some(ns) => self.store.by_index(NAMESPACE_INDEX, ns).unwrap_or_default(),
            None => self.store.list(),
        };
        candidates
            .into_iter()
            .filter(|obj| {
                selector.matches(obj.meta().labels.as_ref().unwrap_or(&Default::default()))
            })
            .collect()
    }

    /// Every cached object.
    pub fn list_all(&self) -> Vec<Arc<K>> {
        self.store.list()
    }
}

#[cfg(test)]
mod tests {
    use kube::core::{Expression, Selector};

    use super::*;
    use crate::delta_fifo::{Delta, DeltaObject, DeltaType, PoppedKey};
    use crate::test_support::pod;

    #[test]
    fn should_get_by_namespace_and_name_and_filter_by_labels() {
        let mut writer = crate::store::StoreWriter::new();
        let keys = ["a", "b"]
            .iter()
            .map(|n| {
                let obj = pod(n, 1);
                PoppedKey {
                    key: ObjectKey::of(obj.as_ref()),
                    deltas: vec![Delta {
                        kind: DeltaType::Added,
                        object: DeltaObject::Live(obj),
                    }],
                    initial_list: false,
                }
            })
            .collect();
        writer.write(|c| crate::indexer::process_deltas(c, keys, 0, &mut Default::default()));
        let lister = Lister::new(writer.reader());
        assert!(lister.get(Some("ns"), "a").is_some());
        assert!(lister.get(Some("other"), "a").is_none());
        let only_b: Selector = Expression::Equal("app".into(), "b".into()).into();
        let found = lister.list(Some("ns"), &only_b);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].metadata.name.as_deref(), Some("b"));
        assert_eq!(lister.list(None, &Selector::default()).len(), 2);
        assert!(lister.list(Some("other"), &Selector::default()).is_empty());
        assert_eq!(lister.list_all().len(), 2);
    }
}
