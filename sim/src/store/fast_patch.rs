//! The byte-level fast path of the commonest write: a merge or strategic merge patch that
//! only sets or removes entries of `metadata.labels` and `metadata.annotations` (a
//! controller stamping an annotation, `kubectl label`, the benches' stamped update). The
//! stored JSON is spliced: only those two maps, what `managedFields` needs and
//! `resourceVersion` are parsed and written again; the rest of `metadata` and every other
//! top-level member stay the stored bytes. It is the step below [`super::partial_object`],
//! which still parses and re-serializes the whole of `metadata`. The stored bytes are read
//! once up to the end of `metadata` (its members and the managedFields entries in the same
//! pass); nothing after `metadata` is read.
//!
//! # Contract
//!
//! - [`State::patch_metadata_maps`] answers `None` whenever it is not sure to give what the
//!   general path gives, and the caller takes that path: a body with anything besides
//!   `metadata.labels` / `metadata.annotations` entries whose values are strings or `null`
//!   (so no `resourceVersion` precondition, no `$` directive, no whole-map replacement), an
//!   object being deleted (the write could end it), one without `kind` or `apiVersion`
//!   (the general path adds them), or stored JSON it does not recognise.
//! - Otherwise it stores byte for byte what the general path stores: the maps are patched
//!   with the same patch functions, the managedFields change is computed by the same
//!   [`managed_fields`] functions on `{"metadata": {labels, annotations}}` (the only part of
//!   the object that differs, so the changed set is the one the whole object gives) and
//!   applied to the stored entries by [`super::raw_managed_fields`] (or, when that declines,
//!   by `managed_fields::record` on the parsed entries), members
//!   are written in the store's key order with `serde_json`, and the commit is the same
//!   (next resourceVersion, history, watch events). The garbage collector is not told: it
//!   reads uid, owners, deletionTimestamp and finalizers, which this write cannot change,
//!   and it saw them when the replaced object was written. A patch that changes nothing
//!   returns the stored object and writes nothing, as the general path does.
//! - Metadata-only changes never bump `metadata.generation`; name, namespace and the
//!   indexed fields are unchanged, so the new index copies them and rebuilds only labels.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::managed_fields::{self, Writer};
use super::partial_object::{Members, members_before};
use super::patch;
use super::raw_managed_fields;
use super::state::State;
use super::watch::EventKind;
use super::{PatchType, ResourceType, StoreConfig, StoredObject};

/// The metadata members the fast path rewrites; a patch may only name the first two.
const PATCHED_MAPS: [&str; 2] = ["annotations", "labels"];

impl State {
    /// A label/annotation patch of the main resource, spliced into the stored bytes; `None`
    /// when the general path must decide (see the module contract). The caller has checked
    /// that the write is not a dry run, not strict, and not to a CRD or namespace.
    pub(super) fn patch_metadata_maps(
        &mut self,
        rt: &ResourceType,
        old: &Arc<StoredObject>,
        patch_type: PatchType,
        body: &[u8],
        manager: &str,
        config: &StoreConfig,
    ) -> Option<Arc<StoredObject>> {
        if !matches!(patch_type, PatchType::Merge | PatchType::StrategicMerge) {
            return None;
        }
        let patch_value: Value = serde_json::from_slice(body).ok()?;
        if !touches_only_label_maps(&patch_value) {
            return None;
        }
        let source = &old.json;
        // The store writes keys in order: apiVersion, kind, then metadata, whose members are
        // read in the pass that finds its end; nothing after it is read.
        let (top, metadata_start) = members_before(source, b"\"metadata\"")?;
        let metadata_start = metadata_start?;
        let has = |name: &[u8]| top.iter().any(|(key, _)| &source[key.clone()] == name);
        // Without them the general path writes them in (a change even if the maps are not).
        if !has(b"\"kind\"") || !has(b"\"apiVersion\"") {
            return None;
        }
        // The managedFields entries are read in the same pass as the rest of `metadata`.
        let mut stored_entries = None;
        let metadata =
            Members::at_reading(source, metadata_start, b"\"managedFields\"", |start| {
                let (entries, end) = raw_managed_fields::entries_at(source, start)?;
                stored_entries = Some(entries);
                Some(end)
            })?;
        let metadata_range = metadata_start..metadata_start + metadata.bytes().len();
        if metadata.get("deletionTimestamp").is_some() {
            // A write to a deleting object can be the one that removes it.
            return None;
        }

        let mut old_maps = Map::new();
        for key in PATCHED_MAPS {
            if let Some(raw) = metadata.get(key) {
                old_maps.insert(key.into(), serde_json::from_slice(raw).ok()?);
            }
        }
        let old_part = object("metadata", Value::Object(old_maps));
        let mut new_part = old_part.clone();
        match patch_type {
            PatchType::Merge => json_patch::merge(&mut new_part, &patch_value),
            _ => patch::strategic_merge(&mut new_part, &patch_value),
        }
        if new_part == old_part {
            return Some(old.clone());
        }

        let changed = managed_fields::changed_set(&old_part, &new_part);
        let now = State::now_rfc3339();
        let api_version = rt.api_version();
        let writer = Writer {
            manager,
            operation: "Update",
            subresource: None,
            api_version: &api_version,
            time: &now,
        };
        let old_entries = metadata.get("managedFields");
        let entries = match stored_entries
            .and_then(|stored| raw_managed_fields::record(stored, &writer, &changed))
        {
            Some(entries) => Some(entries),
            None => record_parsed(old_entries, &writer, changed)?,
        };

        let new_maps = new_part["metadata"].as_object()?;
        let mut replaced: Vec<(&str, Option<Vec<u8>>)> = Vec::with_capacity(4);
        for key in PATCHED_MAPS {
            if let Some(map) = new_maps.get(key) {
                replaced.push((key, Some(serde_json::to_vec(map).ok()?)));
            }
        }
        if let Some(entries) = entries {
            replaced.push(("managedFields", Some(entries)));
        }
        let labels = &new_part["metadata"]["labels"];
        Some(self.commit_with(
            rt,
            EventKind::Modified,
            |rv| {
                replaced.push(("resourceVersion", Some(format!("\"{rv}\"").into_bytes())));
                // Room for all that changes: the scratch `metadata` is written once, never
                // grown; the object then gets one allocation of its exact size (no shrink
                // of an oversized buffer, which moved the heap's top back and forth).
                let changes: usize = replaced
                    .iter()
                    .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len) + 4)
                    .sum();
                let mut new_metadata = Vec::with_capacity(metadata_range.len() + changes);
                metadata.write_with(&mut new_metadata, &mut replaced);
                let mut json =
                    Vec::with_capacity(source.len() - metadata_range.len() + new_metadata.len());
                json.extend_from_slice(&source[..metadata_range.start]);
                json.extend_from_slice(&new_metadata);
                json.extend_from_slice(&source[metadata_range.end..]);
                StoredObject::with_labels(json, rv, old, labels)
            },
            // Only labels, annotations, managedFields and resourceVersion change: not what
            // the garbage collector reads (uid, owners, deletionTimestamp, finalizers).
            None,
            config,
        ))
    }
}

/// `{key: value}` without the deep copy `json!` makes of an interpolated value.
fn object(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.into(), value);
    Value::Object(map)
}

/// The new `managedFields` bytes from the parsed entries (`raw`), for what
/// [`raw_managed_fields::record`] declines; `Some(None)` when there are none before or after.
fn record_parsed(
    raw: Option<&[u8]>,
    writer: &Writer<'_>,
    changed: Value,
) -> Option<Option<Vec<u8>>> {
    let mut metadata = Map::new();
    if let Some(raw) = raw {
        metadata.insert("managedFields".into(), serde_json::from_slice(raw).ok()?);
    }
    let mut holder = object("metadata", Value::Object(metadata));
    managed_fields::record(&mut holder, writer, changed.clone(), &changed);
    match holder["metadata"].get("managedFields") {
        Some(entries) => Some(Some(serde_json::to_vec(entries).ok()?)),
        None => Some(None),
    }
}

/// Whether `patch` is `{"metadata": {...}}` naming only `labels` and/or `annotations`, each
/// a non-empty map of string or null values with no `$` directive keys.
fn touches_only_label_maps(patch: &Value) -> bool {
    let Some(top) = patch.as_object() else {
        return false;
    };
    let Some(Value::Object(metadata)) = top.get("metadata") else {
        return false;
    };
    top.len() == 1
        && !metadata.is_empty()
        && metadata.iter().all(|(key, value)| {
            PATCHED_MAPS.contains(&key.as_str())
                && value.as_object().is_some_and(|entries| {
                    !entries.is_empty()
                        && entries.iter().all(|(k, v)| {
                            !k.starts_with('$') && matches!(v, Value::String(_) | Value::Null)
                        })
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_label_and_annotation_entries_qualify() {
        for (body, simple) in [
            (json!({"metadata": {"annotations": {"a": "1"}}}), true),
            (
                json!({"metadata": {"labels": {"a": null}, "annotations": {"b": "x"}}}),
                true,
            ),
            (json!({"metadata": {"labels": {"a": 1}}}), false),
            (json!({"metadata": {"labels": null}}), false),
            (json!({"metadata": {"labels": {}}}), false),
            (
                json!({"metadata": {"labels": {"$patch": "replace"}}}),
                false,
            ),
            (
                json!({"metadata": {"labels": {"a": "1"}, "resourceVersion": "3"}}),
                false,
            ),
            (
                json!({"metadata": {"labels": {"a": "1"}}, "spec": {}}),
                false,
            ),
            (json!({"metadata": {}}), false),
            (json!([1]), false),
        ] {
            assert_eq!(touches_only_label_maps(&body), simple, "{body}");
        }
    }

    #[test]
    fn replaced_and_new_members_land_in_key_order() {
        let source = br#"{"b":1,"d":{"x":"y"},"f":"z"}"#;
        let members = Members::of(source).unwrap();
        let mut out = Vec::new();
        members.write_with(
            &mut out,
            &mut [
                ("g", Some(b"4".to_vec())),
                ("a", Some(b"0".to_vec())),
                ("d", Some(b"2".to_vec())),
                ("c", Some(b"3".to_vec())),
                ("f", None),
                ("e", None),
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":0,"b":1,"c":3,"d":2,"g":4}"#
        );
    }
}
