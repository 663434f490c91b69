//! `metadata.managedFields` as the API server's field manager fills them.
//!
//! One entry per (manager, operation, subresource); `fieldsV1` is the set of field paths the
//! manager set: `f:<field>` for map keys and struct fields, `k:{"name":"c"}` for elements of
//! keyed lists, `.` for "the map itself" where the real server writes it. An Update owns what
//! it changed (added to what the same manager owned); an Apply owns exactly what it applied.
//! Fields taken over by a manager leave the sets of the others, as in the real field manager.
//! Conflicts between managers and the removal of fields an applier stopped applying are
//! [`super::server_side_apply`]'s.

use serde_json::{Map, Value, json};

use super::patch::list_keys;

/// metadata fields a manager can own; the rest are server-set.
const OWNABLE_METADATA: &[&str] = &[
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "generateName",
];

/// Who wrote what, for one managedFields entry.
pub(crate) struct Writer<'a> {
    pub manager: &'a str,
    pub operation: &'a str,
    pub subresource: Option<&'a str>,
    pub api_version: &'a str,
    pub time: &'a str,
}

/// The FieldsV1 set of every ownable field in `object`.
pub(crate) fn field_set(object: &Value) -> Value {
    match object.as_object() {
        Some(map) => Value::Object(map_set(map, 0, None)),
        None => json!({}),
    }
}

/// The FieldsV1 set of the fields that `new` adds or changes relative to `old`.
pub(crate) fn changed_set(old: &Value, new: &Value) -> Value {
    match (old.as_object(), new.as_object()) {
        (Some(o), Some(n)) => Value::Object(changed_map(o, n, 0, None)),
        (_, Some(n)) => Value::Object(map_set(n, 0, None)),
        _ => json!({}),
    }
}

/// Records that `writer` set `fields` on `object` (whose metadata.managedFields is updated),
/// taking the fields of `taken` from every other manager (an Update takes what it changed,
/// an Apply the applied fields whose value changed: the same value stays co-owned).
pub(crate) fn record(object: &mut Value, writer: &Writer<'_>, fields: Value, taken: &Value) {
    let is_apply = writer.operation == "Apply";
    if !is_apply && fields.as_object().is_some_and(Map::is_empty) {
        return;
    }
    // Taken out and put back below: no copy of what can be a third of the object.
    let mut entries: Vec<Value> = match object.pointer_mut("/metadata/managedFields") {
        Some(Value::Array(entries)) => std::mem::take(entries),
        _ => Vec::new(),
    };
    for entry in entries.iter_mut() {
        if !is_same_entry(entry, writer)
            && let Some(set) = entry.get_mut("fieldsV1")
        {
            subtract(set, taken);
        }
    }
    entries.retain(|e| {
        is_same_entry(e, writer)
            || e.get("fieldsV1")
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
    });
    match entries.iter_mut().find(|e| is_same_entry(e, writer)) {
        Some(entry) => {
            if is_apply {
                entry["fieldsV1"] = fields;
            } else {
                union(&mut entry["fieldsV1"], &fields);
            }
            entry["time"] = json!(writer.time);
            entry["apiVersion"] = json!(writer.api_version);
        }
        None => entries.push(new_entry(writer, &fields)),
    }
    entries.sort_by(|a, b| {
        let key = |e: &Value| {
            (
                e["time"].as_str().unwrap_or("").to_string(),
                e["manager"].as_str().unwrap_or("").to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("managedFields".into(), Value::Array(entries));
    }
}

fn is_same_entry(entry: &Value, writer: &Writer<'_>) -> bool {
    entry["manager"] == writer.manager
        && entry["operation"] == writer.operation
        && entry.get("subresource").and_then(Value::as_str) == writer.subresource
}

/// Whether a map field at this depth carries the `.` marker (the real server omits it for
/// the always-present top-level structs).
fn marks_itself(depth: usize, key: &str) -> bool {
    depth > 0 || !matches!(key, "metadata" | "spec" | "status")
}

fn map_set(map: &Map<String, Value>, depth: usize, parent: Option<&str>) -> Map<String, Value> {
    let mut set = Map::new();
    for (key, value) in map {
        if depth == 0 && (key == "apiVersion" || key == "kind") {
            continue;
        }
        if parent == Some("metadata") && depth == 1 && !OWNABLE_METADATA.contains(&key.as_str()) {
            continue;
        }
        let child = value_set(key, value, depth + 1);
        if key == "metadata" && child.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        set.insert(format!("f:{key}"), child);
    }
    set
}

/// The set an Apply owns: a real server records applied maps without their `.` marker
/// (keyed list elements keep theirs).
pub(crate) fn applied_set(applied: &Value) -> Value {
    fn strip(set: &mut Value, in_element: bool) {
        let Some(map) = set.as_object_mut() else {
            return;
        };
        if !in_element {
            map.remove(".");
        }
        for (key, child) in map.iter_mut() {
            strip(child, key.starts_with("k:"));
        }
    }
    let mut set = field_set(applied);
    strip(&mut set, false);
    set
}

fn value_set(key: &str, value: &Value, depth: usize) -> Value {
    match value {
        Value::Object(inner) if !inner.is_empty() => {
            let mut set = map_set(inner, depth, Some(key));
            if marks_itself(depth - 1, key) && key != "metadata" {
                set.insert(".".into(), json!({}));
            }
            Value::Object(sorted(set))
        }
        Value::Array(items) if !items.is_empty() => match list_keys(key, &items[0]) {
            Some(keys) => {
                let mut set = Map::new();
                if key != "containers" {
                    set.insert(".".into(), json!({}));
                }
                for item in items {
                    set.insert(element_key(item, keys), element_set(item, depth));
                }
                Value::Object(sorted(set))
            }
            None => json!({}),
        },
        _ => json!({}),
    }
}

fn element_set(item: &Value, depth: usize) -> Value {
    let mut set = item
        .as_object()
        .map(|m| map_set(m, depth, None))
        .unwrap_or_default();
    set.insert(".".into(), json!({}));
    Value::Object(sorted(set))
}

/// `k:{"name":"c"}`: the element's merge keys as compact JSON, protocol defaulted to TCP.
fn element_key(item: &Value, keys: &[&str]) -> String {
    let mut id = Map::new();
    for key in keys {
        match item.get(*key) {
            Some(v) => {
                id.insert((*key).to_string(), v.clone());
            }
            None if *key == "protocol" => {
                id.insert("protocol".into(), json!("TCP"));
            }
            None => {}
        }
    }
    format!("k:{}", Value::Object(id))
}

fn changed_map(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    depth: usize,
    parent: Option<&str>,
) -> Map<String, Value> {
    let mut set = Map::new();
    for (key, value) in new {
        if depth == 0 && (key == "apiVersion" || key == "kind") {
            continue;
        }
        if parent == Some("metadata") && depth == 1 && !OWNABLE_METADATA.contains(&key.as_str()) {
            continue;
        }
        let Some(before) = old.get(key) else {
            set.insert(format!("f:{key}"), value_set(key, value, depth + 1));
            continue;
        };
        if before == value {
            continue;
        }
        let child = match (before, value) {
            (Value::Object(o), Value::Object(n)) => {
                Value::Object(sorted(changed_map(o, n, depth + 1, Some(key))))
            }
            (Value::Array(o), Value::Array(n)) if !n.is_empty() => match list_keys(key, &n[0]) {
                Some(keys) => {
                    let mut elements = Map::new();
                    for item in n {
                        let id = element_key(item, keys);
                        let previous = o.iter().find(|e| element_key(e, keys) == id);
                        if previous != Some(item) {
                            elements.insert(id, element_set(item, depth + 1));
                        }
                    }
                    Value::Object(sorted(elements))
                }
                None => json!({}),
            },
            _ => json!({}),
        };
        set.insert(format!("f:{key}"), child);
    }
    set
}

fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

pub(crate) fn union(into: &mut Value, other: &Value) {
    let (Some(target), Some(source)) = (into.as_object_mut(), other.as_object()) else {
        return;
    };
    for (key, value) in source {
        match target.get_mut(key) {
            Some(existing) => union(existing, value),
            None => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    let merged = std::mem::take(target);
    *target = sorted(merged);
}

/// Removes from `from` every leaf path present in `taken` (a field has one owner per Update);
/// true when that removed anything (so `from` is not what it was).
pub(crate) fn subtract(from: &mut Value, taken: &Value) -> bool {
    let (Some(target), Some(source)) = (from.as_object_mut(), taken.as_object()) else {
        return false;
    };
    let mut changed = false;
    for (key, value) in source {
        let Some(existing) = target.get_mut(key) else {
            continue;
        };
        let is_leaf = value.as_object().is_some_and(Map::is_empty);
        if is_leaf {
            if existing.as_object().is_some_and(Map::is_empty) {
                target.remove(key);
                changed = true;
            }
            continue;
        }
        changed |= subtract(existing, value);
        if existing
            .as_object()
            .is_some_and(|m| m.is_empty() || (m.len() == 1 && m.contains_key(".")))
        {
            target.remove(key);
            changed = true;
        }
    }
    changed
}

/// The managedFields entry of `writer`'s first write, owning `fields`.
pub(super) fn new_entry(writer: &Writer, fields: &Value) -> Value {
    let mut entry = json!({
        "manager": writer.manager,
        "operation": writer.operation,
        "apiVersion": writer.api_version,
        "time": writer.time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if let Some(sub) = writer.subresource {
        entry["subresource"] = json!(sub);
    }
    entry
}
