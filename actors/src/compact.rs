//! How a [compact](crate::CacheMode::Compact) cache holds one object: its compact JSON bytes
//! plus the little a reader needs without decoding (resourceVersion, labels), labels
//! interned. The sim's store keeps objects the same way (`sim/src/store/`), as etcd does.
//!
//! # Contract
//! - [`CompactEntry::encode`] writes the object as the cache received it (after the
//!   pipeline's transform, so without `managedFields` by default); [`CompactEntry::decode`]
//!   gives back an equal object. Decoding happens on every typed read: a compact cache trades
//!   CPU on read for memory (see `ARCHITECTURE.md` for the measured figures).
//! - [`decode_json`] is the one decoder of stored bytes (typed reads, the old state of an
//!   update): it checks the buffer is UTF-8 once, then parses it as a `str`.
//! - The bytes are shared ([`Bytes`]): handing them out ([`Lister::get_json`](crate::Lister::get_json),
//!   [`Lister::list_json`](crate::Lister::list_json)) copies nothing.
//! - Label keys and values are interned per cache ([`Interner`]): a fleet of pods made by a
//!   few templates holds each distinct string once. Strings no object uses any more are
//!   swept when the table has doubled since the last sweep, so churn cannot grow it forever.
//!
//! # Differences from client-go
//! client-go keeps only decoded objects. This is closer to the API server's watch cache,
//! which can serve encoded bytes without re-encoding them.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use crate::object::CacheObject;

/// Interned strings of one cache (label keys and values).
#[derive(Default)]
pub(crate) struct Interner {
    /// Invariant: holds each distinct string at most once.
    strings: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// Table size after the last sweep; the next sweep runs at twice that.
    swept_at: usize,
}

/// Below this many strings the table is never swept: sweeping a small table costs more than
/// the few strings it could free.
const MIN_SWEEP: usize = 1024;

impl Interner {
    /// The shared copy of `s`.
    pub(crate) fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.strings.get(s) {
            return found.clone();
        }
        self.maybe_sweep();
        let new: Arc<str> = s.into();
        self.strings.insert(new.clone());
        new
    }

    /// Drops the strings only the table holds, once it has doubled since the last sweep
    /// (amortised O(1) per insertion).
    fn maybe_sweep(&mut self) {
        if self.strings.len() >= MIN_SWEEP.max(self.swept_at * 2) {
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.swept_at = self.strings.len();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }
}

/// One object of a compact cache.
pub(crate) struct CompactEntry {
    /// The object's JSON, as serde writes it (compact, no whitespace).
    bytes: Bytes,
    /// `metadata.resourceVersion`, so a relist's unchanged objects are recognised without
    /// decoding.
    resource_version: Option<Box<str>>,
    /// `metadata.labels`, sorted by key (label selectors run without decoding; the order comes
    /// from the `BTreeMap` they were read from).
    labels: Box<[(Arc<str>, Arc<str>)]>,
}

/// Stored bytes that do not decode into the cache's type (a bug: the same type's `Serialize`
/// wrote them).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The bytes are not UTF-8.
    #[error("the stored JSON is not UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    /// The JSON does not decode into the type.
    #[error("the stored JSON does not decode: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes the JSON of a compact entry.
///
/// Why not `serde_json::from_slice`: it validates UTF-8 string by string while it parses
/// (`SliceRead::parse_str`), which showed as ~15 % of a decode in a profile of realistic pods.
/// One `from_utf8` over the whole buffer (std's word-at-a-time ASCII path) and
/// `serde_json::from_str`, which then trusts its input, decode the same object in ~15 % less
/// time (release build, `actors/tests/compact_read_timing.rs`: 26–29 µs → 22–25 µs per pod on a
/// loaded 2-core machine).
pub(crate) fn decode_json<K: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<K, DecodeError> {
    Ok(serde_json::from_str(std::str::from_utf8(bytes)?)?)
}

/// An object that could not be written as JSON (a type whose `Serialize` fails).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the object as JSON: {0}")]
pub(crate) struct EncodeError(#[from] serde_json::Error);

impl CompactEntry {
    /// Encodes `obj`, interning its labels in `interner`.
    pub(crate) fn encode<K: CacheObject>(
        obj: &K,
        interner: &mut Interner,
    ) -> Result<Self, EncodeError> {
        let bytes = serde_json::to_vec(obj)?;
        let meta = obj.meta();
        let labels = meta
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (interner.intern(k), interner.intern(v)))
            .collect();
        Ok(Self {
            bytes: Bytes::from(bytes.into_boxed_slice()),
            resource_version: meta.resource_version.as_deref().map(Into::into),
            labels,
        })
    }

    /// The object, decoded (readers decode the shared bytes they took, see `store.rs`).
    #[cfg(test)]
    pub(crate) fn decode<K: CacheObject>(&self) -> Result<K, DecodeError> {
        decode_json(&self.bytes)
    }

    /// The object's JSON.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// `metadata.resourceVersion`.
    pub(crate) fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// The value of label `key`, found without allocating (labels are sorted by key).
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        let found = self
            .labels
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()?;
        Some(&self.labels[found].1)
    }

    /// Heap bytes this entry owns alone (its interned strings are shared, not counted).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.len()
            + self.resource_version.as_ref().map_or(0, |rv| rv.len())
            + self.labels.len() * std::mem::size_of::<(Arc<str>, Arc<str>)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::pod;

    #[test]
    fn should_decode_what_it_encoded() {
        let mut interner = Interner::default();
        let original = pod("a", 3);
        let entry = CompactEntry::encode(original.as_ref(), &mut interner).unwrap();
        let decoded: k8s_openapi::api::core::v1::Pod = entry.decode().unwrap();
        assert_eq!(&decoded, original.as_ref());
        assert_eq!(entry.resource_version(), Some("3"));
        assert_eq!(entry.label("app"), Some("a"));
        assert_eq!(entry.label("missing"), None);
    }

    #[test]
    fn should_refuse_bytes_that_are_not_utf8_instead_of_panicking() {
        let result = decode_json::<k8s_openapi::api::core::v1::Pod>(b"{\"kind\":\"\xff\"}");
        assert!(matches!(result, Err(DecodeError::NotUtf8(_))), "{result:?}");
        let result = decode_json::<k8s_openapi::api::core::v1::Pod>(b"{\"kind\":");
        assert!(matches!(result, Err(DecodeError::Json(_))), "{result:?}");
    }

    #[test]
    fn should_hold_each_label_string_once() {
        let mut interner = Interner::default();
        let a = CompactEntry::encode(pod("x", 1).as_ref(), &mut interner).unwrap();
        let b = CompactEntry::encode(pod("x", 2).as_ref(), &mut interner).unwrap();
        assert!(Arc::ptr_eq(&a.labels[0].1, &b.labels[0].1));
        assert_eq!(interner.len(), 2, "one key and one value");
    }

    #[test]
    fn should_sweep_strings_no_object_uses() {
        let mut interner = Interner::default();
        for i in 0..MIN_SWEEP * 3 {
            interner.intern(&format!("value-{i}"));
        }
        assert!(
            interner.len() < MIN_SWEEP + 2,
            "unused strings were kept: {}",
            interner.len()
        );
    }
}
