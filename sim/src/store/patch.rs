//! The patch encodings of a PATCH request, applied to a stored object's JSON.
//!
//! - JSON merge patch (RFC 7386) and JSON patch (RFC 6902) as the standards define them.
//! - Strategic merge patch as apimachinery's `strategicpatch` does for the list fields
//!   that matter most (containers, volumes, env, ports, conditions, ...): lists with a merge
//!   key merge element by element, `$patch: delete|replace` directives are honoured,
//!   `$setElementOrder/...`, `$retainKeys` and `$deleteFromPrimitiveList/...` are dropped.
//! - Server-side apply bodies are merged with the same strategic rules; field ownership
//!   (conflicts, `force`, removal) is `server_side_apply`'s.
//!
//! The merge keys double as the `k:{...}` keys of managedFields (`list_keys`).

use serde_json::{Map, Value};

use super::Status;

/// The keys that identify an element of a keyed list field, as the Kubernetes OpenAPI
/// (`x-kubernetes-list-map-keys`, `patchMergeKey`) declares them; `None` for atomic lists.
pub(crate) fn list_keys(field: &str, sample: &Value) -> Option<&'static [&'static str]> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some(&["name"]),
        "volumeMounts" => Some(&["mountPath"]),
        "volumeDevices" => Some(&["devicePath"]),
        "ports" if sample.get("containerPort").is_some() => Some(&["containerPort", "protocol"]),
        "ports" if sample.get("port").is_some() => Some(&["port", "protocol"]),
        "conditions" | "addresses" => Some(&["type"]),
        "podIPs" | "hostIPs" => Some(&["ip"]),
        "hostAliases" => Some(&["ip"]),
        "ownerReferences" => Some(&["uid"]),
        "topologySpreadConstraints" => Some(&["topologyKey", "whenUnsatisfiable"]),
        _ => None,
    }
}

/// Primitive lists that a strategic merge unions instead of replacing.
fn is_merged_primitive_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Applies `body` of the given encoding to `target`.
pub(crate) fn apply_patch(
    target: &mut Value,
    patch_type: super::PatchType,
    body: &[u8],
) -> Result<(), Status> {
    use super::PatchType;
    match patch_type {
        PatchType::Merge => {
            let patch: Value = parse_json(body)?;
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(target, &patch).map_err(|e| Status {
                code: 422,
                reason: "Invalid".into(),
                message: format!(
                    "the server rejected our request due to an error in our request: {e}"
                ),
                details: None,
                metadata: None,
            })
        }
        PatchType::StrategicMerge => {
            let patch: Value = parse_json(body)?;
            strategic_merge(target, &patch);
            Ok(())
        }
        PatchType::Apply => {
            let patch = parse_apply_body(body)?;
            strategic_merge(target, &patch);
            Ok(())
        }
    }
}

/// The top-level members of the target that a patch of `patch_type` can read or change, when
/// that is all it can touch (so a write may leave the other members as stored bytes):
/// the keys of a merge or strategic merge patch without top-level `$` directives, the first
/// path segments of a JSON patch's operations. `None` for anything else (an apply, a body
/// that does not parse, an operation on the whole object): the general path handles it.
pub(crate) fn touched_members(patch_type: super::PatchType, body: &[u8]) -> Option<Vec<String>> {
    use super::PatchType;
    match patch_type {
        PatchType::Merge | PatchType::StrategicMerge => {
            let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(body) else {
                return None;
            };
            if patch.keys().any(|k| k.starts_with('$')) {
                return None;
            }
            Some(patch.into_iter().map(|(k, _)| k).collect())
        }
        PatchType::Json => {
            let Ok(Value::Array(operations)) = serde_json::from_slice::<Value>(body) else {
                return None;
            };
            let mut members = Vec::new();
            for operation in &operations {
                let operation = operation.as_object()?;
                for field in ["path", "from"] {
                    let Some(pointer) = operation.get(field) else {
                        continue;
                    };
                    let member = pointer.as_str()?.strip_prefix('/')?;
                    let member = member.split('/').next().unwrap_or(member);
                    if member.is_empty() {
                        return None;
                    }
                    members.push(member.replace("~1", "/").replace("~0", "~"));
                }
                operation.get("path")?;
            }
            Some(members)
        }
        PatchType::Apply => None,
    }
}

/// A server-side apply body: JSON, or YAML (which JSON also is).
pub(crate) fn parse_apply_body(body: &[u8]) -> Result<Value, Status> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return Ok(value);
    }
    let value: Value = serde_yaml::from_slice(body)
        .map_err(|e| Status::bad_request(format!("error decoding YAML: {e}")))?;
    if !value.is_object() {
        return Err(Status::bad_request(
            "error decoding YAML: the apply body must be a mapping",
        ));
    }
    Ok(value)
}

fn parse_json(body: &[u8]) -> Result<Value, Status> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
    if !value.is_object() {
        return Err(Status::bad_request(
            "error decoding patch: the patch must be a JSON object",
        ));
    }
    Ok(value)
}

/// Strategic merge of `patch` into `target` (see the module doc for the rules kept).
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch_map {
        if is_directive(key) {
            continue;
        }
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                target_map.remove(key);
            }
            Value::Object(_) => {
                let slot = target_map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value);
            }
            Value::Array(items) => {
                let merged = merge_list(key, target_map.get(key), items);
                target_map.insert(key.clone(), merged);
            }
            other => {
                target_map.insert(key.clone(), other.clone());
            }
        }
    }
}

fn merge_list(field: &str, current: Option<&Value>, patch_items: &[Value]) -> Value {
    if patch_items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Value::Array(
            patch_items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        );
    }
    let current_items = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if is_merged_primitive_list(field) {
        let mut merged = current_items;
        for item in patch_items {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        return Value::Array(merged);
    }
    let sample = patch_items
        .first()
        .or(current_items.first())
        .unwrap_or(&Value::Null);
    let Some(keys) = list_keys(field, sample) else {
        return Value::Array(patch_items.iter().map(strip_directives).collect());
    };
    let mut merged = current_items;
    for item in patch_items {
        let position = merged
            .iter()
            .position(|existing| same_element(existing, item, keys));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                merged.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut merged[i], item),
            (None, false) => merged.push(strip_directives(item)),
        }
    }
    Value::Array(merged)
}

/// Elements match on the first merge key (as `patchMergeKey`); protocol defaults to TCP.
fn same_element(a: &Value, b: &Value, keys: &[&str]) -> bool {
    let key = keys[0];
    a.get(key).is_some() && a.get(key) == b.get(key)
}

fn is_directive(key: &str) -> bool {
    key == "$patch"
        || key == "$retainKeys"
        || key.starts_with("$setElementOrder/")
        || key.starts_with("$deleteFromPrimitiveList/")
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !is_directive(k))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PatchType;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]}, "spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "side:1"}
        ]}})
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = pod();
        apply_patch(&mut target, PatchType::Merge, br#"{"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"containers":[{"name":"only"}]}}"#).unwrap();
        assert_eq!(target["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(
            target["spec"]["containers"],
            json!([{"name": "only"}]),
            "merge patch replaces lists"
        );
    }

    #[test]
    fn json_patch_follows_rfc_6902_and_a_failed_test_is_422() {
        let mut target = pod();
        apply_patch(
            &mut target,
            PatchType::Json,
            br#"[{"op":"replace","path":"/spec/containers/1/image","value":"side:2"}]"#,
        )
        .unwrap();
        assert_eq!(target["spec"]["containers"][1]["image"], "side:2");
        let failed = apply_patch(
            &mut target,
            PatchType::Json,
            br#"[{"op":"test","path":"/metadata/labels/a","value":"9"}]"#,
        )
        .unwrap_err();
        assert_eq!(failed.code, 422);
        assert_eq!(
            apply_patch(&mut target, PatchType::Json, b"{")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_honours_directives() {
        let mut target = pod();
        let patch = json!({
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}, {"name": "new"}],
            "metadata": {"finalizers": ["y"]},
            "spec": {"containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]},
                {"name": "side", "$patch": "delete"},
                {"name": "new", "image": "new:1"}
            ]}
        });
        apply_patch(
            &mut target,
            PatchType::StrategicMerge,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        let containers = &target["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(containers[0]["image"], "app:2");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(containers[1], json!({"name": "new", "image": "new:1"}));
        assert_eq!(target["metadata"]["finalizers"], json!(["x", "y"]));
        assert!(target.get("$setElementOrder/containers").is_none());

        apply_patch(
            &mut target,
            PatchType::StrategicMerge,
            br#"{"metadata":{"labels":{"$patch":"replace","z":"1"}}}"#,
        )
        .unwrap();
        assert_eq!(target["metadata"]["labels"], json!({"z": "1"}));
    }

    #[test]
    fn apply_bodies_may_be_yaml() {
        let mut target = pod();
        apply_patch(
            &mut target,
            PatchType::Apply,
            b"metadata:\n  labels:\n    a: \"5\"\n",
        )
        .unwrap();
        assert_eq!(target["metadata"]["labels"]["a"], "5");
        assert_eq!(target["metadata"]["labels"]["b"], "2");
    }
}
