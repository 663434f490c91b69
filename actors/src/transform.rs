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
