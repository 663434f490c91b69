//! The vocabulary of the cache, named once (client-go `tools/cache/index.go` names the same
//! three kinds of string: storage key, index name, indexed value).

use std::fmt;
use std::sync::Arc;

/// The name of a cluster as configured (`[[clusters]] name`). Every event names one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub Arc<str>);

/// A storage key: `namespace/name`, or `name` for cluster-scoped objects
/// (client-go's `MetaNamespaceKeyFunc`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(pub Arc<str>);

/// The name of an index (`"namespace"`, `"by-node"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexName(pub Arc<str>);

/// One value an index function produced for an object (a namespace, a node name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexValue(pub Arc<str>);

/// A resourceVersion the server handed out (of an object, a list or a bookmark): opaque,
/// compared only for equality, never empty — "no version" is `Option::None`, not `""`
/// (client-go and kube-rs use `""` for both "none" and "a consistent read").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceVersion(pub Arc<str>);

macro_rules! string_newtype {
    ($($t:ident),*) => {$(
        impl $t {
            /// Wraps a string (no validation: any name a server or config gave is kept as is).
            pub fn new(s: impl Into<Arc<str>>) -> Self { Self(s.into()) }
            /// The string itself.
            pub fn as_str(&self) -> &str { &self.0 }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
        impl From<&str> for $t {
            fn from(s: &str) -> Self { Self(s.into()) }
        }
        impl From<String> for $t {
            fn from(s: String) -> Self { Self(s.into()) }
        }
    )*};
}
string_newtype!(ClusterId, ObjectKey, IndexName, IndexValue, ResourceVersion);

impl ResourceVersion {
    /// The version a server sent, if it sent one (`None` for absent or empty).
    pub fn from_server(version: Option<&str>) -> Option<Self> {
        version.filter(|v| !v.is_empty()).map(Self::from)
    }
}

impl ObjectKey {
    /// The key of an object with this namespace (None for cluster-scoped) and name.
    pub fn from_parts(namespace: Option<&str>, name: &str) -> Self {
        match namespace {
            Some(ns) if !ns.is_empty() => Self(format!("{ns}/{name}").into()),
            _ => Self(name.into()),
        }
    }

    /// The key of a kube resource.
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        let meta = obj.meta();
        Self::from_parts(
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }
}
