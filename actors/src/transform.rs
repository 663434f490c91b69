//! What happens to an object before the cache stores it: client-go's `TransformFunc`
//! (`tools/cache/controller.go`), run by the delta FIFO as client-go runs it, once per object,
//! so the cache, the FIFO and every handler share the transformed `Arc`.
//!
//! The default drops `metadata.managedFields`: about 40 % of a typical pod's bytes that
//! controllers almost never read (the trick client-go's docs suggest and kube-runtime's
//! `.modify()` is used for).

use std::fmt;
use std::sync::Arc;

use crate::object::CacheObject;

/// A custom transform: takes the object as received, returns what to store.
pub type TransformFn<K> = Arc<dyn Fn(K) -> K + Send + Sync>;

/// Which transform runs before an object is stored.
pub enum Transform<K> {
    /// Store objects exactly as the server sent them.
    Keep,
    /// Drop `metadata.managedFields` (the default).
    DropManagedFields,
    /// Run this function.
    Custom(TransformFn<K>),
}

// Not derived: `derive(Default)` would demand `K: Default`.
#[allow(clippy::derivable_impls)]
impl<K> Default for Transform<K> {
    fn default() -> Self {
        Transform::DropManagedFields
    }
}

impl<K> Clone for Transform<K> {
    fn clone(&self) -> Self {
        match self {
            Transform::Keep => Transform::Keep,
            Transform::DropManagedFields => Transform::DropManagedFields,
            Transform::Custom(f) => Transform::Custom(f.clone()),
        }
    }
}

impl<K> fmt::Debug for Transform<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transform::Keep => "Keep",
            Transform::DropManagedFields => "DropManagedFields",
            Transform::Custom(_) => "Custom",
        })
    }
}

impl<K: CacheObject> Transform<K> {
    /// A custom transform from a closure.
    pub fn custom(f: impl Fn(K) -> K + Send + Sync + 'static) -> Self {
        Transform::Custom(Arc::new(f))
    }

    /// Applies the transform. Copies the object only when it changes and someone else still
    /// holds the `Arc` (the reflector normally hands over the only reference).
    pub fn apply(&self, obj: Arc<K>) -> Arc<K> {
        match self {
            Transform::Keep => obj,
            Transform::DropManagedFields => {
                if obj.meta().managed_fields.is_none() {
                    return obj;
                }
                let mut owned = Arc::unwrap_or_clone(obj);
                owned.meta_mut().managed_fields = None;
                Arc::new(owned)
            }
            Transform::Custom(f) => Arc::new(f(Arc::unwrap_or_clone(obj))),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::test_support::pod;

    fn with_managed_fields() -> Arc<Pod> {
        let mut p = (*pod("a", 1)).clone();
        p.metadata.managed_fields = Some(vec![Default::default()]);
        Arc::new(p)
    }

    #[test]
    fn should_drop_managed_fields_by_default_and_copy_nothing_without_them() {
        assert!(
            Transform::default()
                .apply(with_managed_fields())
                .metadata
                .managed_fields
                .is_none()
        );
        let bare = pod("b", 1);
        assert!(
            Arc::ptr_eq(&Transform::default().apply(bare.clone()), &bare),
            "nothing to drop: same Arc"
        );
    }

    #[test]
    fn should_keep_objects_untouched_when_asked() {
        let obj = with_managed_fields();
        assert!(Arc::ptr_eq(&Transform::Keep.apply(obj.clone()), &obj));
    }

    #[test]
    fn should_run_a_custom_transform() {
        let strip_labels = Transform::custom(|mut p: Pod| {
            p.metadata.labels = None;
            p
        });
        let out = strip_labels.apply(with_managed_fields());
        assert!(out.metadata.labels.is_none());
        assert!(
            out.metadata.managed_fields.is_some(),
            "a custom transform replaces the default"
        );
    }
}
