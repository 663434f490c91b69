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
//!   update): simd-json's serde deserializer over a per-thread scratch copy.
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
#[error("the stored JSON does not decode: {0}")]
pub(crate) struct DecodeError(#[from] simd_json::Error);

/// Objects up to this size are decoded in the thread's reused buffers; a larger one gets
/// buffers of its own, so one huge object does not pin its size in every reading thread.
const REUSED_BUFFER_LIMIT: usize = 256 * 1024;

thread_local! {
    /// The thread's scratch copy of the bytes being decoded (simd-json parses in place) and
    /// simd-json's working buffers.
    static DECODE_BUFFERS: std::cell::RefCell<(Vec<u8>, simd_json::Buffers)> =
        std::cell::RefCell::new((Vec::new(), simd_json::Buffers::new(REUSED_BUFFER_LIMIT / 16)));
}

/// Decodes the JSON of a compact entry (and checks it is UTF-8).
///
/// Why simd-json and not `serde_json`: a typed read of a compact cache is one decode, and
/// simd-json's serde deserializer, which finds the document's structure with SIMD before
/// serde walks it, decodes a realistic pod in ~11 % less time than `serde_json::from_str`
/// (same process, interleaved, release build: 16.9 against 18.9 µs p50). simd-json parses
/// in place, so the shared bytes are first copied into the thread's scratch buffer (~0.2 µs
/// for a 4.7 KB pod). It has no nesting limit, which is safe here only because the bytes are
/// our own: `serde_json` wrote them from an object it decoded within its own limit of 128.
pub(crate) fn decode_json<K: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<K, DecodeError> {
    if bytes.len() > REUSED_BUFFER_LIMIT {
        let mut copy = bytes.to_vec();
        return Ok(simd_json::serde::from_slice(&mut copy)?);
    }
    DECODE_BUFFERS.with_borrow_mut(|(scratch, buffers)| {
        scratch.clear();
        scratch.extend_from_slice(bytes);
        Ok(simd_json::serde::from_slice_with_buffers(scratch, buffers)?)
    })
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
    fn should_refuse_bytes_that_are_not_utf8_or_not_json_instead_of_panicking() {
        for bad in [
            &b"{\"kind\":\"\xff\"}"[..],
            b"{\"kind\":",
            b"",
            b"{\"kind\":\"Pod\"} x",
        ] {
            let result = decode_json::<k8s_openapi::api::core::v1::Pod>(bad);
            assert!(result.is_err(), "{bad:?} decoded: {result:?}");
        }
    }

    #[test]
    fn should_decode_free_form_json_as_serde_json_does() {
        // A custom resource's spec is whatever JSON its author chose: escapes, non-ASCII,
        // integers beyond i64, floats, nesting, nulls.
        let text = r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","labels":{"a":"\u00e9\"q\""}},"spec":{"big":18446744073709551615,"neg":-9223372036854775808,"pi":3.141592653589793,"tiny":5e-324,"s":"ünï\n\t\\","nested":[[{"x":null}],[],{}],"t":true}}"#;
        let ours: kube::api::DynamicObject = decode_json(text.as_bytes()).unwrap();
        let theirs: kube::api::DynamicObject = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            serde_json::to_value(&theirs).unwrap()
        );
        assert_eq!(ours.metadata.labels.unwrap()["a"], "é\"q\"");
    }

    #[test]
    fn should_decode_an_object_larger_than_the_reused_buffers() {
        let mut big = k8s_openapi::api::core::v1::ConfigMap::default();
        big.metadata.name = Some("big".into());
        big.data = Some([("blob".to_string(), "x".repeat(2 * REUSED_BUFFER_LIMIT))].into());
        let bytes = serde_json::to_vec(&big).unwrap();
        let decoded: k8s_openapi::api::core::v1::ConfigMap = decode_json(&bytes).unwrap();
        assert_eq!(decoded, big);
        let small: k8s_openapi::api::core::v1::Pod =
            decode_json(&serde_json::to_vec(pod("a", 1).as_ref()).unwrap()).unwrap();
        assert_eq!(&small, pod("a", 1).as_ref());
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
