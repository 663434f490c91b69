//! Server-side apply's field ownership, as kube-apiserver v1.28's field manager
//! (structured-merge-diff) keeps it:
//!
//! - **Kind check**: the applied `apiVersion`/`kind` must be the endpoint's, else 400
//!   `invalid object type: <group>/<version>, Kind=<kind>` (`versionCheckManager`).
//! - **Conflicts**: applying a value that differs from the live one, on a field another
//!   manager owns, is refused without `force` with 409 Conflict, one
//!   `FieldManagerConflict` cause per field (`field` is the path, e.g. `.data.a` or
//!   `.spec.containers[name="c"].image`), worded as `internal.NewConflictError` words it
//!   (`Apply failed with 1 conflict: conflict with "m": .data.a`; an Update manager is
//!   named `"m" using v1`, a subresource's `"m" with subresource "status" using v1`).
//!   With `force=true` the applier takes those fields from their owners. Applying the
//!   value a field already has shares its ownership.
//! - **Removal**: a field the applier owned by its last apply, no longer applied, and owned
//!   by no other manager is removed from the object (a map or list left empty by that goes
//!   too, as the API's `omitempty` fields do).
//!
//! Not modelled: `x-kubernetes-list-type: set` lists (`v:` paths) and atomic maps; lists
//! other than those `patch::list_keys` knows are atomic, as leaves.

use serde_json::{Map, Value, json};

use super::{ResourceType, Status, Subresource};

/// What an apply owns and changes, handed to the write that records it.
pub(crate) struct Applied {
    /// The applier's new field set (its Apply entry's `fieldsV1`).
    pub owned: Value,
    /// The applied fields whose value changed: taken from other managers.
    pub changed: Value,
    /// The applier's field set is the one it already had.
    pub ownership_unchanged: bool,
}

/// 400 when the applied object is not of the endpoint's group, version and kind.
pub(crate) fn check_kind(rt: &ResourceType, applied: &Value) -> Result<(), Status> {
    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version == rt.api_version() && kind == rt.kind {
        return Ok(());
    }
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    Err(Status::bad_request(format!(
        "invalid object type: {group}/{version}, Kind={kind}"
    )))
}

/// Drops what the endpoint ignores before ownership is computed (the strategies'
/// `GetResetFields`): `status` on the main resource of a type with a status subresource,
/// everything but `status` on `/status`.
pub(crate) fn reset_fields(rt: &ResourceType, sub: Subresource, applied: &mut Value) {
    let Some(map) = applied.as_object_mut() else {
        return;
    };
    match sub {
        Subresource::Main if rt.status_subresource => {
            map.remove("status");
        }
        Subresource::Status => {
            map.retain(|key, _| {
                matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status")
            });
        }
        _ => {}
    }
}

/// Checks ownership of an apply of `owned` (the applied field set) by `manager` that
/// turns `live` into `merged`, and removes from `merged` what the applier stopped applying.
pub(crate) fn reconcile(
    live: &Value,
    merged: &mut Value,
    owned: Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
) -> Result<Applied, Status> {
    let entries: Vec<Value> = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_own_apply = |entry: &Value| {
        entry["manager"] == manager
            && entry["operation"] == "Apply"
            && entry.get("subresource").and_then(Value::as_str) == subresource
    };
    let previous = entries
        .iter()
        .find(|e| is_own_apply(e))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| json!({}));
    let others: Vec<&Value> = entries.iter().filter(|e| !is_own_apply(e)).collect();

    let mut changed_paths = Vec::new();
    changed_leaves(
        &owned,
        Some(live),
        Some(merged),
        &mut Vec::new(),
        &mut changed_paths,
    );
    if !force {
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for entry in &others {
            for (path, set_path) in &changed_paths {
                if owns(&entry["fieldsV1"], set_path) {
                    conflicts.push((describe_manager(entry), path.clone()));
                }
            }
        }
        if !conflicts.is_empty() {
            conflicts.sort();
            return Err(conflict_status(&conflicts));
        }
    }

    let mut others_union = json!({});
    for entry in &others {
        union(&mut others_union, &entry["fieldsV1"]);
    }
    let mut dropped = previous.clone();
    subtract_leaves(&mut dropped, &owned);
    remove_unowned(merged, &dropped, &others_union);

    let mut changed = json!({});
    for (_, set_path) in &changed_paths {
        insert_path(&mut changed, set_path);
    }
    Ok(Applied {
        ownership_unchanged: previous == owned,
        owned,
        changed,
    })
}

/// Walks the leaves of `set`, recording (display path, set path) of those whose value
/// differs between `old` and `new`.
fn changed_leaves(
    set: &Value,
    old: Option<&Value>,
    new: Option<&Value>,
    set_path: &mut Vec<String>,
    out: &mut Vec<(String, Vec<String>)>,
) {
    let Some(map) = set.as_object() else {
        return;
    };
    if map.is_empty() || (map.contains_key(".") && old.is_none() != new.is_none()) {
        if old != new {
            out.push((display(set_path), set_path.clone()));
        }
        return;
    }
    let mut keys: Vec<&String> = map.keys().filter(|k| *k != ".").collect();
    keys.sort();
    for key in keys {
        set_path.push(key.clone());
        changed_leaves(&map[key], child(old, key), child(new, key), set_path, out);
        set_path.pop();
    }
}

/// The value under a FieldsV1 key (`f:name` or `k:{...}`) of a value.
fn child<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let value = value?;
    if let Some(field) = key.strip_prefix("f:") {
        return value.get(field);
    }
    let wanted: Map<String, Value> = serde_json::from_str(key.strip_prefix("k:")?).ok()?;
    value
        .as_array()?
        .iter()
        .find(|element| matches_key(element, &wanted))
}

fn matches_key(element: &Value, wanted: &Map<String, Value>) -> bool {
    wanted.iter().all(|(name, value)| match element.get(name) {
        Some(actual) => actual == value,
        // The protocol of a port defaults to TCP (and is keyed so).
        None => name == "protocol" && value == "TCP",
    })
}

/// Whether a manager's set owns the field at `path` (the field itself, not only below it).
fn owns(set: &Value, path: &[String]) -> bool {
    let mut node = set;
    for key in path {
        match node.get(key) {
            Some(next) => node = next,
            None => return false,
        }
    }
    node.as_object()
        .is_some_and(|m| m.is_empty() || m.contains_key("."))
}

/// A FieldsV1 path as structured-merge-diff prints it: `.data.a`, `[name="c"]`.
fn display(path: &[String]) -> String {
    let mut out = String::new();
    for key in path {
        if let Some(field) = key.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(Ok(fields)) = key
            .strip_prefix("k:")
            .map(serde_json::from_str::<Map<String, Value>>)
        {
            let mut parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.sort();
            out.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    out
}

/// `printManager`: an Apply manager by name, an Update manager with its API version.
fn describe_manager(entry: &Value) -> String {
    let mut name = format!("{:?}", entry["manager"].as_str().unwrap_or(""));
    if let Some(sub) = entry.get("subresource").and_then(Value::as_str) {
        name = format!("{name} with subresource {sub:?}");
    }
    if entry["operation"] == "Update" {
        name = format!(
            "{name} using {}",
            entry["apiVersion"].as_str().unwrap_or("")
        );
    }
    name
}

/// 409 as `internal.NewConflictError` builds it; `conflicts` are (manager, path), sorted.
fn conflict_status(conflicts: &[(String, String)]) -> Status {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, path)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": path})
        })
        .collect();
    let message = if let [(manager, path)] = conflicts {
        format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
    } else {
        let mut lines = Vec::new();
        let mut current: Option<&str> = None;
        for (manager, path) in conflicts {
            if current != Some(manager) {
                lines.push(format!("conflicts with {manager}:"));
                current = Some(manager);
            }
            lines.push(format!("- {path}"));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    Status {
        code: 409,
        reason: "Conflict".into(),
        message,
        details: Some(json!({"causes": causes})),
        metadata: None,
    }
}

fn union(into: &mut Value, other: &Value) {
    let (Some(target), Some(source)) = (into.as_object_mut(), other.as_object()) else {
        return;
    };
    for (key, value) in source {
        union(
            target.entry(key.clone()).or_insert_with(|| json!({})),
            value,
        );
    }
}

/// Leaves `from` with the leaves that `owned` does not have.
fn subtract_leaves(from: &mut Value, owned: &Value) {
    let Some(map) = from.as_object_mut() else {
        return;
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let Some(still) = owned.get(&key) else {
            continue;
        };
        let node = map.get_mut(&key).expect("listed above");
        let is_leaf = node.as_object().is_some_and(Map::is_empty);
        if is_leaf || key == "." {
            map.remove(&key);
            continue;
        }
        subtract_leaves(node, still);
        if node.as_object().is_some_and(Map::is_empty) {
            map.remove(&key);
        }
    }
}

/// Removes from `value` the fields of `dropped` that no other manager owns (at or below).
fn remove_unowned(value: &mut Value, dropped: &Value, others: &Value) {
    let Some(dropped) = dropped.as_object() else {
        return;
    };
    for (key, below) in dropped {
        if key == "." {
            continue;
        }
        let owned_by_others = others.get(key);
        let whole = below
            .as_object()
            .is_some_and(|m| m.is_empty() || m.contains_key("."));
        if whole && owned_by_others.is_none() {
            remove_child(value, key);
            continue;
        }
        let empty = json!({});
        if let Some(inner) = child_mut(value, key) {
            remove_unowned(inner, below, owned_by_others.unwrap_or(&empty));
            let emptied = match inner {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if emptied && owned_by_others.is_none() {
                remove_child(value, key);
            }
        }
    }
}

fn child_mut<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    if let Some(field) = key.strip_prefix("f:") {
        return value.get_mut(field);
    }
    let wanted: Map<String, Value> = serde_json::from_str(key.strip_prefix("k:")?).ok()?;
    value
        .as_array_mut()?
        .iter_mut()
        .find(|element| matches_key(element, &wanted))
}

fn remove_child(value: &mut Value, key: &str) {
    if let Some(field) = key.strip_prefix("f:") {
        if let Some(map) = value.as_object_mut() {
            map.remove(field);
        }
        return;
    }
    let Some(Ok(wanted)) = key
        .strip_prefix("k:")
        .map(serde_json::from_str::<Map<String, Value>>)
    else {
        return;
    };
    if let Some(list) = value.as_array_mut() {
        list.retain(|element| !matches_key(element, &wanted));
    }
}

/// Adds a leaf path to a FieldsV1 set.
fn insert_path(set: &mut Value, path: &[String]) {
    let mut node = set;
    for key in path {
        node = node
            .as_object_mut()
            .expect("sets are objects")
            .entry(key.clone())
            .or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_as_structured_merge_diff_prints_them() {
        let key = format!("k:{}", json!({"name": "c"}));
        assert_eq!(
            display(&[
                "f:spec".into(),
                "f:containers".into(),
                key,
                "f:image".into()
            ]),
            ".spec.containers[name=\"c\"].image"
        );
    }
}
