//! How a pipeline's cache holds its objects: the choice `cache = "typed" | "compact" |
//! "metadata"` of a `[[watch]]` entry and of `InformerSpec::cache`.
//!
//! - `Typed`: each object decoded once and kept as `Arc<K>` (client-go's and kube-runtime's
//!   store).
//! - `Compact`: each object kept as its compact JSON bytes plus a small decoded index
//!   (namespace, name, labels, resourceVersion, owner references, index values); typed
//!   objects are decoded on read, handlers still receive typed `Arc<K>` events.
//! - `Metadata`: list and watch ask the server for `PartialObjectMetadata` only (client-go's
//!   metadata informers, controller-runtime's `OnlyMetadata`, kube's `metadata_watcher`).
//!
//! Part of the pipeline's identity: two requests that differ only in cache mode do not share
//! a pipeline.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// How a pipeline's cache holds its objects (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Decoded objects behind `Arc`.
    #[default]
    Typed,
    /// Compact JSON bytes plus a small decoded index; objects decoded on read.
    Compact,
    /// Only `PartialObjectMetadata` is listed, watched and kept.
    Metadata,
}

impl CacheMode {
    /// The spelling used in `clusters.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Typed => "typed",
            Self::Compact => "compact",
            Self::Metadata => "metadata",
        }
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown cache mode's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cache mode {0:?}: expected \"typed\", \"compact\" or \"metadata\"")]
pub struct UnknownCacheMode(pub String);

impl FromStr for CacheMode {
    type Err = UnknownCacheMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "typed" => Ok(Self::Typed),
            "compact" => Ok(Self::Compact),
            "metadata" => Ok(Self::Metadata),
            other => Err(UnknownCacheMode(other.to_owned())),
        }
    }
}
