//! Namespace-aware reads over a [`Store`]: client-go's generated listers
//! (`PodLister.Pods(ns).Get(name)`, `List(selector)`), for any resource.

use std::sync::Arc;

use bytes::Bytes;
use kube::core::Selector;

use crate::ids::ObjectKey;
use crate::list_json::ListJson;
use crate::object::CacheObject;
use crate::store::{Held, Store};

/// Reads objects by namespace, name and labels. Same staleness as [`Store`].
///
/// Typed reads (`get`, `list`) of a [compact](crate::CacheMode::Compact) cache decode each
/// object they return; the JSON reads (`get_json`, `list_json`) of a compact cache hand out
/// the stored bytes (a typed cache serialises its objects for them).
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

    /// The JSON of the object `name` in `namespace`, without decoding it (compact cache).
    pub fn get_json(&self, namespace: Option<&str>, name: &str) -> Option<Bytes> {
        self.store.get_json(&ObjectKey::from_parts(namespace, name))
    }

    /// The objects in `namespace` (all namespaces when `None`) whose labels match `selector`,
    /// kube's [`Selector`] (`Selector::default()` matches everything; build others from
    /// `kube::core::Expression`s or `(key, value)` pairs with `collect`).
    pub fn list(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Arc<K>> {
        self.store
            .select(namespace, selector)
            .into_iter()
            .filter_map(Held::object)
            .collect()
    }

    /// The same objects as [`list`](Self::list), as a JSON list (`{kind}List`) made by
    /// concatenating their bytes (see [`ListJson`]).
    pub fn list_json(&self, namespace: Option<&str>, selector: &Selector) -> ListJson
    where
        K::DynamicType: Default,
    {
        let dt = K::DynamicType::default();
        self.list_json_as(
            namespace,
            selector,
            &K::api_version(&dt),
            &format!("{}List", K::kind(&dt)),
        )
    }

    /// [`list_json`](Self::list_json) for resources known at run time: the list's
    /// `apiVersion` and `kind` given.
    pub fn list_json_as(
        &self,
        namespace: Option<&str>,
        selector: &Selector,
        api_version: &str,
        list_kind: &str,
    ) -> ListJson {
        let items = self
            .store
            .select(namespace, selector)
            .into_iter()
            .filter_map(Held::json)
            .collect();
        ListJson {
            api_version: api_version.into(),
            kind: list_kind.into(),
            resource_version: self.store.last_resource_version(),
            items,
        }
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
