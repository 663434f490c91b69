//! Metadata-only pipelines ([`CacheMode::Metadata`]): client-go's metadata informers
//! (`metadata/metadatainformer`), controller-runtime's `OnlyMetadata` and kube's
//! `metadata_watcher`.
//!
//! # Contract
//! - The pipeline lists and watches the *resource* of its type (pods for
//!   `PartialObjectMeta<Pod>`) at the same URLs, with the metadata `Accept` headers
//!   (`as=PartialObjectMetadataList` on list pages, `as=PartialObjectMetadata` on watches;
//!   see [`crate::list_watch::ListWatcher::metadata_only`]); the server answers every object,
//!   bookmarks included, as a meta.k8s.io/v1 `PartialObjectMetadata`.
//! - Its objects are [`PartialObjectMeta<K>`] (typed: [`MetadataObject<K>`]) or, for a
//!   resource known at run time, [`DynamicObject`](kube::api::DynamicObject)s of kind
//!   `PartialObjectMetadata` (apiVersion `meta.k8s.io/v1`). Logs, metrics and reports still
//!   name the resource (`v1/pods`), and events still name the cluster.
//! - A type that cannot hold a `PartialObjectMetadata` (`Pod`: k8s-openapi checks `kind`; a
//!   derived custom resource: its `spec` is required) is refused before anything starts
//!   ([`can_hold_metadata`]), instead of every object being quarantined one by one.
//! - A type whose [`kube::Resource::metadata_api`] says it holds only metadata
//!   (`PartialObjectMeta<K>`) is always listed as metadata, whatever mode was asked.
//! - Everything else holds: managedFields (metadata carries them too) are cut by the default
//!   transform, bookmarks, 410 relists, resume, selectors (the server filters metadata lists
//!   with the same selectors) and filtered views (of a metadata pipeline only: the cache mode
//!   is part of the pipeline's key, so a typed and a metadata pipeline of one resource are
//!   two watches).
//!
//! # Memory
//! The cache keeps each `PartialObjectMetadata` compact (its JSON bytes plus resourceVersion
//! and interned labels, as [`CacheMode::Compact`] does): about 1 KB for a realistic pod with
//! managedFields cut, against 2.4 KB decoded (`benches/informers`, P3 metadata row) and about
//! 10 KB for a typed pod. Reads decode an `ObjectMeta`, which is cheap.

pub use kube::core::PartialObjectMeta;
use serde::de::DeserializeOwned;

#[cfg(doc)]
use crate::cache_mode::CacheMode;

/// The object a metadata-only informer of `K` caches: `K`'s metadata, typed by `K` so its
/// resource (group, version, plural, scope) is known.
pub type MetadataObject<K> = PartialObjectMeta<K>;

/// A `PartialObjectMetadata` as every server answers one: the shape a type must accept to
/// be cached by a metadata-only pipeline.
const PROBE: &str = r#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"probe","namespace":"default","resourceVersion":"1","labels":{"a":"b"}}}"#;

/// Whether `K` can be decoded from a `PartialObjectMetadata`, so a metadata-only pipeline of
/// `K` would cache objects rather than quarantine them all.
pub fn can_hold_metadata<K: DeserializeOwned>() -> bool {
    serde_json::from_str::<K>(PROBE).is_ok()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::Resource;
    use kube::api::DynamicObject;

    use super::*;

    #[test]
    fn should_accept_partial_object_meta_and_dynamic_objects() {
        assert!(can_hold_metadata::<MetadataObject<Pod>>());
        assert!(can_hold_metadata::<DynamicObject>());
    }

    #[test]
    fn should_refuse_types_that_check_their_kind() {
        assert!(!can_hold_metadata::<Pod>());
        assert!(!can_hold_metadata::<ConfigMap>());
    }

    #[test]
    fn should_address_the_resource_of_the_inner_type() {
        assert_eq!(MetadataObject::<Pod>::plural(&()), "pods");
        assert_eq!(MetadataObject::<Pod>::api_version(&()), "v1");
        assert!(MetadataObject::<Pod>::metadata_api());
        assert!(!Pod::metadata_api());
    }
}
