//! An Update's `metadata.managedFields` change made on the stored bytes, for a write that
//! only changes `metadata` (the label/annotation fast path, [`super::fast_patch`]): what
//! [`managed_fields::record`] does to the parsed entries, done by parsing only what it reads
//! of them (each entry's manager, operation, subresource and time, and the `f:metadata` part
//! of a `fieldsV1`), the rest of every entry staying its stored bytes. Another manager's
//! `f:metadata` is parsed only when the write takes something from it ([`may_change`] reads
//! that from the bytes), which for a stamped annotation is never.
//!
//! # Contract
//!
//! - [`record`] gives byte for byte the `serde_json` serialization of the entries
//!   `managed_fields::record(object, writer, fields, fields)` leaves, for an Update without
//!   a subresource whose `fields` name only `f:metadata` (the only top-level member such a
//!   write changes, so the other members of every `fieldsV1` are untouched): the other
//!   managers lose the taken fields (an entry left with none goes), the writer's entry gains
//!   them with the new time and apiVersion (or is added), and entries are ordered by time
//!   then manager.
//! - It answers `None` for anything it does not recognise (entries that are not the objects
//!   the store writes, a writer's entry without a `fieldsV1` object, other `fields`); the
//!   caller then parses the entries and runs `managed_fields::record` itself.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::managed_fields::{self, Writer};
use super::partial_object::{Members, json_str, members_before, value_end};

/// One entry: its stored members and, when changed, the members to write instead.
struct Entry<'a> {
    members: Members<'a>,
    /// The entry's stored bytes.
    raw: &'a [u8],
    /// Members that change (`None` removes), or nothing when the entry stays as stored.
    replaced: Vec<(&'static str, Option<Vec<u8>>)>,
    time: Cow<'a, str>,
    manager: Cow<'a, str>,
}

/// The new `managedFields` array bytes after `writer` (an Update without subresource) set
/// `fields` (`{"f:metadata": {...}}`), from the stored entries (read by [`entries_at`]);
/// `None` when unsure.
pub(super) fn record(
    stored: Vec<Members<'_>>,
    writer: &Writer<'_>,
    fields: &Value,
) -> Option<Vec<u8>> {
    let taken = fields.as_object()?;
    let taken_metadata = taken.get("f:metadata")?;
    if writer.operation != "Update" || writer.subresource.is_some() || taken.len() != 1 {
        return None;
    }
    let mut entries = Vec::new();
    let mut own: Option<usize> = None;
    for members in stored {
        let bytes = members.bytes();
        let text = |key: &str| string_member(&members, key);
        let manager = text("manager")?;
        let same = manager.as_deref() == Some(writer.manager)
            && text("operation")?.as_deref() == Some(writer.operation)
            && text("subresource")?.is_none();
        let mut entry = Entry {
            raw: bytes,
            replaced: Vec::new(),
            time: text("time")?.unwrap_or_default(),
            manager: manager.unwrap_or_default(),
            members,
        };
        if same {
            if own.is_none() {
                own = Some(entries.len());
            }
            entries.push(entry);
            continue;
        }
        // Not the writer's: it loses the taken fields, and goes if it owns nothing then.
        let Some(set) = entry.members.get("fieldsV1") else {
            continue;
        };
        if set == b"{}" {
            continue;
        }
        // Only the f:metadata member is read (keys are in order, so it comes early and a set
        // without it is read only up to the next key), and parsed only if the subtraction
        // changes it; the rest of the set is written again only then.
        let (_, metadata_start) = members_before(set, b"\"f:metadata\"")?;
        if let Some(start) = metadata_start {
            let metadata = &set[start..value_end(set, start)?];
            if !may_change(metadata, taken_metadata) {
                entries.push(entry);
                continue;
            }
            let mut part = part("f:metadata", serde_json::from_slice(metadata).ok()?);
            if !managed_fields::subtract(&mut part, fields) {
                entries.push(entry);
                continue;
            }
            let after = part.get("f:metadata");
            let set_members = Members::of(set)?;
            if set_members.len() == 1 && after.is_none() {
                continue;
            }
            let mut set_bytes = Vec::with_capacity(set.len());
            set_members.write_with(
                &mut set_bytes,
                &mut [(
                    "f:metadata",
                    after.map(serde_json::to_vec).transpose().ok()?,
                )],
            );
            entry.replaced.push(("fieldsV1", Some(set_bytes)));
        }
        entries.push(entry);
    }
    match own {
        Some(index) => {
            let entry = &mut entries[index];
            let set = entry.members.get("fieldsV1")?;
            let set_members = Members::of(set)?;
            let mut part = match set_members.get("f:metadata") {
                Some(metadata) => part("f:metadata", serde_json::from_slice(metadata).ok()?),
                None => Value::Object(Map::new()),
            };
            managed_fields::union(&mut part, fields);
            let mut set_bytes = Vec::with_capacity(set.len() + 64);
            set_members.write_with(
                &mut set_bytes,
                &mut [(
                    "f:metadata",
                    Some(serde_json::to_vec(part.get("f:metadata")?).ok()?),
                )],
            );
            entry.replaced = vec![
                ("fieldsV1", Some(set_bytes)),
                ("time", Some(serde_json::to_vec(writer.time).ok()?)),
                (
                    "apiVersion",
                    Some(serde_json::to_vec(writer.api_version).ok()?),
                ),
            ];
            entry.time = Cow::Owned(writer.time.to_string());
        }
        None => {
            let added = managed_fields::new_entry(writer, fields);
            let bytes = serde_json::to_vec(&added).ok()?;
            return write_sorted(entries, Some((writer, bytes)));
        }
    }
    write_sorted(entries, None)
}

/// The array of `entries` (plus a new one, written last before sorting) ordered by time
/// then manager, as `record` sorts them (a stable sort).
fn write_sorted(
    mut entries: Vec<Entry<'_>>,
    added: Option<(&Writer<'_>, Vec<u8>)>,
) -> Option<Vec<u8>> {
    let mut order: Vec<(Cow<'_, str>, Cow<'_, str>, Option<usize>)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.time.clone(), e.manager.clone(), Some(i)))
        .collect();
    let added_bytes = added.map(|(writer, bytes)| {
        order.push((
            Cow::Borrowed(writer.time),
            Cow::Borrowed(writer.manager),
            None,
        ));
        bytes
    });
    order.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.raw.len()).sum::<usize>() + 512);
    out.push(b'[');
    for (n, (_, _, index)) in order.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        match index {
            Some(i) => {
                let entry = &mut entries[*i];
                if entry.replaced.is_empty() {
                    out.extend_from_slice(entry.raw);
                } else {
                    entry.members.write_with(&mut out, &mut entry.replaced);
                }
            }
            None => out.extend_from_slice(added_bytes.as_deref()?),
        }
    }
    out.push(b']');
    Some(out)
}

/// Whether `managed_fields::subtract` changes (or removes) a member of a field set whose
/// stored value is `raw` when the written fields hold `taken` under the same key, read from
/// the bytes without building the set: an empty map always goes, a leaf takes nothing else,
/// a map left only `"."` goes, and otherwise it is the question for the members both have.
/// Bytes it does not recognise answer true (the caller then parses and subtracts).
fn may_change(raw: &[u8], taken: &Value) -> bool {
    if raw == b"{}" {
        return true;
    }
    if taken.as_object().is_some_and(Map::is_empty) {
        return false;
    }
    if raw == br#"{".":{}}"# {
        return true;
    }
    let Some(taken) = taken.as_object() else {
        return false;
    };
    let Some(members) = Members::of(raw) else {
        return true;
    };
    taken
        .iter()
        .any(|(key, taken)| members.get(key).is_some_and(|raw| may_change(raw, taken)))
}

/// Member `key` as a string (`None` when absent or not a string, as `Value::as_str` says).
fn string_member<'a>(members: &Members<'a>, key: &str) -> Option<Option<Cow<'a, str>>> {
    match members.get(key) {
        Some(raw) if raw.first() == Some(&b'"') => json_str(raw).map(Some),
        _ => Some(None),
    }
}

fn part(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.into(), value);
    Value::Object(map)
}

/// The stored entries of the `managedFields` array opening at `json[at]`, each read once
/// (its members and its end found in the same pass), and the index just past the array;
/// `None` if it is not an array of compact objects.
pub(super) fn entries_at(json: &[u8], mut at: usize) -> Option<(Vec<Members<'_>>, usize)> {
    if json.get(at) != Some(&b'[') {
        return None;
    }
    at += 1;
    let mut objects = Vec::new();
    if json.get(at) == Some(&b']') {
        return Some((objects, at + 1));
    }
    loop {
        let object = Members::at(json, at)?;
        at += object.bytes().len();
        objects.push(object);
        match json.get(at) {
            Some(b',') => at += 1,
            Some(b']') => return Some((objects, at + 1)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The entries of a whole stored `managedFields` array.
    fn array_objects(json: &[u8]) -> Option<Vec<Members<'_>>> {
        let (objects, end) = entries_at(json, 0)?;
        (end == json.len()).then_some(objects)
    }

    #[test]
    fn array_objects_split_what_the_store_writes() {
        let json = br#"[{"a":[1,2],"b":"]"},{},{"c":{"d":"}"}}]"#;
        let parts: Vec<&[u8]> = array_objects(json)
            .unwrap()
            .iter()
            .map(Members::bytes)
            .collect();
        assert_eq!(
            parts,
            vec![&br#"{"a":[1,2],"b":"]"}"#[..], b"{}", br#"{"c":{"d":"}"}}"#]
        );
        assert_eq!(array_objects(b"[]").unwrap().len(), 0);
        for bad in [&b"[{},]"[..], b"[{}", b"{}", b"[{}] ", b"[1]", b"[{}{}]"] {
            assert!(array_objects(bad).is_none());
        }
    }

    #[test]
    fn may_change_answers_what_subtract_does() {
        let sets = [
            json!({}),
            json!({".": {}}),
            json!({"f:labels": {".": {}, "f:app": {}}}),
            json!({"f:annotations": {"f:a": {}}, "f:labels": {"f:x": {}}}),
            json!({"f:annotations": {".": {}}}),
            json!({"f:annotations": {}}),
            json!({"f:annotations": {"f:a": {".": {}}}}),
            json!({"f:labels": {"f:f:annotations": {}}}),
            json!({"f:ownerReferences": {"k:{\"uid\":\"u\"}": {}}}),
        ];
        let takens = [
            json!({"f:annotations": {"f:a": {}}}),
            json!({"f:annotations": {"f:b": {}}}),
            json!({"f:annotations": {"f:a": {"f:deep": {}}}}),
            json!({"f:labels": {"f:x": {}, "f:y": {}}}),
            json!({"f:annotations": {}}),
            json!({}),
        ];
        for set in &sets {
            let raw = serde_json::to_vec(set).unwrap();
            for taken in &takens {
                let mut part = part("f:metadata", set.clone());
                let changed =
                    managed_fields::subtract(&mut part, &json!({"f:metadata": taken.clone()}));
                assert_eq!(
                    changed,
                    part.get("f:metadata") != Some(set),
                    "subtract says whether it changed {set} by {taken}"
                );
                assert_eq!(may_change(&raw, taken), changed, "{set} by {taken}");
            }
        }
    }

    #[test]
    fn a_realistic_pods_entries_are_recognised() {
        let pod = crate::pods::realistic_pod("ns", "p", 7);
        let entries = &pod["metadata"]["managedFields"];
        let raw = serde_json::to_vec(entries).unwrap();
        for (manager, fields) in [
            (
                "bench",
                json!({"f:metadata": {"f:annotations": {"f:stamp": {}}}}),
            ),
            (
                "kube-controller-manager",
                json!({"f:metadata": {"f:labels": {"f:app": {}}}}),
            ),
            (
                "kubectl",
                json!({"f:metadata": {"f:annotations": {"f:prometheus.io/port": {}}}}),
            ),
        ] {
            let writer = Writer {
                manager,
                operation: "Update",
                subresource: None,
                api_version: "v1",
                time: "2026-12-03T08:00:00Z",
            };
            let mut holder = json!({"metadata": {"managedFields": entries.clone()}});
            managed_fields::record(&mut holder, &writer, fields.clone(), &fields);
            let expected = serde_json::to_vec(&holder["metadata"]["managedFields"]).unwrap();
            let got = record(array_objects(&raw).unwrap(), &writer, &fields)
                .expect("a stored pod's entries");
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(expected).unwrap(),
                "{manager}"
            );
        }
    }

    #[test]
    fn record_gives_what_the_parsed_record_gives() {
        let entries = json!([
            {"manager": "kcm", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:a": {}, "f:b": {}}, "f:labels": {".": {}, "f:x": {}}}, "f:spec": {"f:c": {}}}},
            {"manager": "solo", "operation": "Update", "apiVersion": "v1", "time": "2026-01-02T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:annotations": {"f:a": {}}}}},
            {"manager": "kubelet", "operation": "Update", "subresource": "status", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {"f:phase": {}}}},
            {"manager": "me", "operation": "Update", "apiVersion": "v0", "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:d": {}}}},
        ]);
        let raw = serde_json::to_vec(&entries).unwrap();
        for manager in ["me", "new", "kcm"] {
            for fields in [
                json!({"f:metadata": {"f:annotations": {"f:a": {}}}}),
                json!({"f:metadata": {"f:annotations": {}}}),
                json!({"f:metadata": {"f:labels": {"f:x": {}, "f:y": {}}}}),
            ] {
                let writer = Writer {
                    manager,
                    operation: "Update",
                    subresource: None,
                    api_version: "v1",
                    time: "2026-01-01T12:00:00Z",
                };
                let mut holder = json!({"metadata": {"managedFields": entries.clone()}});
                managed_fields::record(&mut holder, &writer, fields.clone(), &fields);
                let expected = serde_json::to_vec(&holder["metadata"]["managedFields"]).unwrap();
                let got =
                    record(array_objects(&raw).unwrap(), &writer, &fields).expect("recognised");
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{manager} {fields}"
                );
            }
        }
    }
}
