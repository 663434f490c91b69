//! How the store names what it keeps: a storage by `group/plural`, an object in it by
//! `namespace/name` (or `name`), in etcd's key order.

use super::ResourceType;

/// Identifies a storage: `group/plural` (all served versions of a CRD share it).
pub(crate) type StorageKey = String;

pub(crate) fn storage_key(rt: &ResourceType) -> StorageKey {
    format!("{}/{}", rt.group, rt.plural)
}

/// The map key of an object, in etcd order.
pub(crate) fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}
