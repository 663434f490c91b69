//! One stored object: its serialized JSON, which is the source of truth, plus the few
//! fields that lists and watches need for every object (storage key, labels, the fields
//! field selectors may name). It mirrors what etcd holds for kube-apiserver (the encoded
//! object) next to what the watch cache's `storeElement` keeps for filtering (name,
//! namespace, labels, selectable fields).
//!
//! # Contract
//!
//! - `json` is exactly what clients receive; it is written once, when the object is stored,
//!   and every list, watch event, snapshot and history entry shares the same bytes.
//! - The index answers `name`, `namespace`, `label` and `field` without parsing the JSON,
//!   so selectors and key ordering cost no allocation per object.
//! - [`StoredObject::value`] parses the JSON again on each call: writes, patches, YAML and
//!   Table rendering pay for it, lists and watches never do. A patch of a few top-level
//!   members parses only those (`StoredObject::from_partial` builds its result); a
//!   label/annotation patch parses only those maps (`StoredObject::with_labels`).
//! - Nothing else is kept, so an object costs its JSON plus a few hundred bytes (measured
//!   in the store's module doc).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::partial_object::PartialObject;
use super::selector::INDEXED_FIELDS;

/// A stored object and what hot paths read from it without parsing.
#[derive(Debug)]
pub struct StoredObject {
    /// The object as compact JSON, serialized once when it was stored.
    pub json: Bytes,
    /// The object's `metadata.resourceVersion` as a number.
    pub resource_version: u64,
    index: ObjectIndex,
}

/// What lists and watches read from every object.
///
/// Invariant: each entry equals what the same lookup on `json` answers.
#[derive(Debug)]
struct ObjectIndex {
    /// `metadata.name`, "" when absent.
    name: Box<str>,
    /// `metadata.namespace`, if set.
    namespace: Option<Box<str>>,
    /// `metadata.labels` with string values (a non-string label value matches nothing).
    labels: Box<[(Box<str>, Box<str>)]>,
    /// Values of the [`INDEXED_FIELDS`] the object has, rendered as a field selector
    /// compares them; a missing or null field is left out (it compares as ""). Shared with
    /// the versions a metadata-only write makes (they cannot change these).
    fields: Arc<[(&'static str, Box<str>)]>,
}

impl StoredObject {
    /// Serializes `value` once and indexes it; `resource_version` is not written into the
    /// JSON (the store stamps `metadata.resourceVersion` before).
    pub fn new(value: &Value, resource_version: u64) -> StoredObject {
        let json = serde_json::to_vec(value).expect("a serde_json::Value always serializes");
        StoredObject {
            // A boxed slice has no spare capacity: the growth slack of serializing is not
            // kept alive for the object's lifetime.
            json: Bytes::from(json.into_boxed_slice()),
            resource_version,
            index: ObjectIndex::of(value, None),
        }
    }

    /// The object `rest` and its modified `parsed` members make (see [`PartialObject`]),
    /// serialized as [`StoredObject::new`] would serialize the whole; the index entries of
    /// untouched members are `old`'s, the object it replaces.
    pub(crate) fn from_partial(
        parsed: &Value,
        rest: &PartialObject,
        old: &StoredObject,
        resource_version: u64,
    ) -> StoredObject {
        StoredObject {
            json: Bytes::from(rest.to_json(parsed).into_boxed_slice()),
            resource_version,
            index: ObjectIndex::of(parsed, Some((rest, &old.index))),
        }
    }

    /// An object whose JSON differs from `old`'s only in `metadata` members other than its
    /// name and namespace (see [`super::fast_patch`]): the index keeps `old`'s entries and
    /// takes its labels from `labels` (the new `metadata.labels`, `Null` when absent).
    pub(crate) fn with_labels(
        json: Vec<u8>,
        resource_version: u64,
        old: &StoredObject,
        labels: &Value,
    ) -> StoredObject {
        StoredObject {
            json: Bytes::from(json.into_boxed_slice()),
            resource_version,
            index: ObjectIndex {
                name: old.index.name.clone(),
                namespace: old.index.namespace.clone(),
                labels: labels_of(labels),
                fields: old.index.fields.clone(),
            },
        }
    }

    /// The whole object, parsed from its JSON (an allocation of several times its size:
    /// for writes and rendering, not for per-object loops over lists).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).expect("stored JSON was serialized by the store")
    }

    /// `metadata.name` ("" if absent).
    pub fn name(&self) -> &str {
        &self.index.name
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.index.namespace.as_deref()
    }

    /// The value of label `key`, if the object has it as a string.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.index
            .labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// A selectable field by JSON pointer, as a field selector compares it: strings as they
    /// are, other scalars as JSON text, missing or null as "". Pointers outside
    /// `metadata.name`, `metadata.namespace` and [`INDEXED_FIELDS`] are not indexed and
    /// read as "" (the selector parser only accepts indexed ones).
    pub(crate) fn field(&self, pointer: &str) -> &str {
        match pointer {
            "/metadata/name" => self.name(),
            "/metadata/namespace" => self.namespace().unwrap_or(""),
            _ => self
                .index
                .fields
                .iter()
                .find(|(p, _)| *p == pointer)
                .map_or("", |(_, v)| &**v),
        }
    }
}

impl ObjectIndex {
    /// The index of `value`; with `unchanged`, `value` holds only some top-level members
    /// and the fields under the untouched others are copied from the old index.
    fn of(value: &Value, unchanged: Option<(&PartialObject, &ObjectIndex)>) -> ObjectIndex {
        let metadata = &value["metadata"];
        let labels = labels_of(&metadata["labels"]);
        let fields = INDEXED_FIELDS
            .iter()
            .filter_map(|pointer| {
                if let Some((rest, old)) = unchanged {
                    let member = pointer.split('/').nth(1).unwrap_or("");
                    if rest.is_untouched(member) {
                        return old.fields.iter().find(|(p, _)| p == pointer).cloned();
                    }
                }
                let rendered = match value.pointer(pointer)? {
                    Value::Null => return None,
                    Value::String(s) => s.as_str().into(),
                    other => other.to_string().into(),
                };
                Some((*pointer, rendered))
            })
            .collect();
        ObjectIndex {
            name: metadata["name"].as_str().unwrap_or("").into(),
            namespace: metadata["namespace"].as_str().map(Into::into),
            labels,
            fields,
        }
    }
}

/// The index entries of a `metadata.labels` value: its string-valued labels.
fn labels_of(labels: &Value) -> Box<[(Box<str>, Box<str>)]> {
    labels
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str().into(), v.as_str()?.into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_index_answers_what_the_json_says() {
        let value = json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web", "n": 1}},
            "spec": {"nodeName": "node-1", "hostNetwork": true},
            "status": {"phase": null},
        });
        let object = StoredObject::new(&value, 7);
        assert_eq!(object.value(), value);
        assert_eq!(object.resource_version, 7);
        assert_eq!(object.name(), "p");
        assert_eq!(object.namespace(), Some("ns"));
        assert_eq!(object.label("app"), Some("web"));
        assert_eq!(
            object.label("n"),
            None,
            "non-string label values match nothing"
        );
        assert_eq!(object.field("/metadata/name"), "p");
        assert_eq!(object.field("/spec/nodeName"), "node-1");
        assert_eq!(object.field("/spec/hostNetwork"), "true");
        assert_eq!(object.field("/status/phase"), "", "null compares as empty");
        assert_eq!(
            object.field("/status/podIP"),
            "",
            "missing compares as empty"
        );
    }

    #[test]
    fn floats_survive_the_json_round_trip_exactly() {
        // Without serde_json's `float_roundtrip`, about one in ten of these would come back
        // one ulp off, and every write would move untouched float fields.
        for i in 0..10_000u64 {
            let value = json!({"spec": {"ratio": i as f64 * 0.001 + 0.1, "tiny": f64::MIN_POSITIVE * i as f64}});
            let object = StoredObject::new(&value, 1);
            assert_eq!(
                object.value(),
                value,
                "{}",
                String::from_utf8_lossy(&object.json)
            );
        }
    }

    #[test]
    fn a_cluster_scoped_object_without_metadata_still_indexes() {
        let object = StoredObject::new(&json!({"kind": "Scale"}), 1);
        assert_eq!(object.name(), "");
        assert_eq!(object.namespace(), None);
        assert_eq!(object.field("/metadata/namespace"), "");
    }
}
