//! The body of a list answer (list and deletecollection), as a real v1.28 server writes it:
//! `{"kind":"<Kind>List","apiVersion":…,"metadata":{…},"items":[…]}`.
//!
//! - Built-in lists are typed (`*v1.ConfigMapList`): their items carry **no** `kind` or
//!   `apiVersion` (lists/*.json, pods/podlist.json), though a get or a watch event of the same
//!   object has both. Code that reads the kind from a list item works on `sim` only if it
//!   works on a real server.
//! - Custom resource lists are unstructured: their items keep `kind` and `apiVersion`.
//! - Metadata-only lists (`as=PartialObjectMetadataList`) are a meta.k8s.io/v1
//!   `PartialObjectMetadataList` whose items are `PartialObjectMetadata` *with* kind and
//!   apiVersion (the apiserver's `asPartialObjectMetadataList` sets them on every item).
//!
//! Items are spliced from each object's stored JSON: the type fields are cut off its head
//! (the store writes keys sorted, so `apiVersion` and `kind` lead), never re-serialized; an
//! object whose JSON does not start that way is parsed and written without them.

use serde_json::Value;

use crate::partial_metadata;
use crate::store::{ResourceType, StoredObject};

/// How each item of a list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemForm {
    /// A typed built-in list: the object without `kind`/`apiVersion`.
    Typed,
    /// An unstructured (custom resource) list: the object as stored.
    Unstructured,
    /// A `PartialObjectMetadataList`: each item as `PartialObjectMetadata`.
    Metadata,
}

impl ItemForm {
    /// The form of `rt`'s items in a full (not metadata-only) list.
    pub fn of(rt: &ResourceType) -> ItemForm {
        if rt.custom_resource {
            ItemForm::Unstructured
        } else {
            ItemForm::Typed
        }
    }
}

/// A list body: the envelope (`list_kind`, `api_version`, `metadata`) and the items in `form`.
pub fn render(
    list_kind: &str,
    api_version: &str,
    metadata: &Value,
    items: &[&StoredObject],
    form: ItemForm,
) -> Vec<u8> {
    let payload: usize = items.iter().map(|o| o.json.len() + 1).sum();
    let mut out = Vec::with_capacity(payload + 256);
    out.extend_from_slice(b"{\"kind\":");
    // Writing strings and Values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, list_kind);
    out.extend_from_slice(b",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut out, api_version);
    out.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, metadata);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match form {
            ItemForm::Unstructured => out.extend_from_slice(&item.json),
            ItemForm::Typed => write_without_type_meta(&mut out, &item.json),
            ItemForm::Metadata => partial_metadata::write_object(&mut out, &item.json),
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// The same item as a `Value` (YAML lists): without `kind`/`apiVersion` when typed.
pub fn item_value(object: &StoredObject, form: ItemForm) -> Value {
    match form {
        ItemForm::Metadata => {
            serde_json::from_slice(&partial_metadata::object(&object.json)).unwrap_or(Value::Null)
        }
        ItemForm::Unstructured => object.value(),
        ItemForm::Typed => {
            let mut value = object.value();
            if let Some(map) = value.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            value
        }
    }
}

/// Appends `json` without its `apiVersion` and `kind` members.
fn write_without_type_meta(out: &mut Vec<u8>, json: &[u8]) {
    match strip_leading_type_meta(json) {
        Some(rest) => {
            out.push(b'{');
            out.extend_from_slice(rest);
        }
        None => {
            let mut value: Value = match serde_json::from_slice(json) {
                Ok(value) => value,
                Err(_) => {
                    out.extend_from_slice(json);
                    return;
                }
            };
            if let Some(map) = value.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            let _ = serde_json::to_writer(&mut *out, &value);
        }
    }
}

/// What follows `{"apiVersion":"…","kind":"…",` (in either order) in compact JSON: the rest
/// of the object, starting after the comma (or at the closing brace). `None` when the object
/// does not start with exactly those two string members.
fn strip_leading_type_meta(json: &[u8]) -> Option<&[u8]> {
    let mut rest = json.strip_prefix(b"{")?;
    let mut seen = [false; 2];
    for _ in 0..2 {
        let (index, after_key) = if let Some(r) = rest.strip_prefix(b"\"apiVersion\":") {
            (0, r)
        } else if let Some(r) = rest.strip_prefix(b"\"kind\":") {
            (1, r)
        } else {
            return None;
        };
        if seen[index] {
            return None;
        }
        seen[index] = true;
        let after_value = skip_string(after_key)?;
        rest = match after_value.first()? {
            b',' => &after_value[1..],
            b'}' => after_value,
            _ => return None,
        };
    }
    Some(rest)
}

/// The bytes after a JSON string that `bytes` starts with; `None` if it does not start with one.
fn skip_string(bytes: &[u8]) -> Option<&[u8]> {
    let body = bytes.strip_prefix(b"\"")?;
    let mut escaped = false;
    for (i, &b) in body.iter().enumerate() {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return body.get(i + 1..),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(value: Value) -> StoredObject {
        StoredObject::new(&value, 5)
    }

    fn items_of(body: &[u8]) -> Vec<Value> {
        let list: Value = serde_json::from_slice(body).expect("a list body is JSON");
        list["items"].as_array().expect("items").clone()
    }

    #[test]
    fn typed_items_lose_kind_and_api_version_and_keep_everything_else() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a\"b", "resourceVersion": "5"}, "data": {"kind": "x"}});
        let only_type = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        let objects = [stored(cm.clone()), stored(only_type)];
        let refs: Vec<&StoredObject> = objects.iter().collect();
        let body = render(
            "ConfigMapList",
            "v1",
            &json!({"resourceVersion": "9"}),
            &refs,
            ItemForm::Typed,
        );
        let list: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(list["kind"], "ConfigMapList");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["metadata"]["resourceVersion"], "9");
        let mut expected = cm;
        expected.as_object_mut().unwrap().remove("kind");
        expected.as_object_mut().unwrap().remove("apiVersion");
        assert_eq!(items_of(&body), vec![expected, json!({})]);
    }

    #[test]
    fn objects_not_led_by_their_type_fields_are_rewritten_without_them() {
        // Not what the store writes, but must still come out right.
        let odd = br#"{"metadata":{"name":"a"},"kind":"ConfigMap","apiVersion":"v1"}"#;
        let mut out = Vec::new();
        write_without_type_meta(&mut out, odd);
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"metadata": {"name": "a"}})
        );
        assert_eq!(
            strip_leading_type_meta(br#"{"kind":"A","kind":"B","x":1}"#),
            None
        );
        assert_eq!(strip_leading_type_meta(br#"{"kind":"A\"","#), None);
    }

    #[test]
    fn unstructured_and_metadata_items_keep_a_kind() {
        let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {}});
        let objects = [stored(gadget.clone())];
        let refs: Vec<&StoredObject> = objects.iter().collect();
        let meta = json!({"resourceVersion": "9"});
        let full = render(
            "GadgetList",
            "example.com/v1",
            &meta,
            &refs,
            ItemForm::Unstructured,
        );
        assert_eq!(items_of(&full), vec![gadget.clone()]);
        let partial = render(
            partial_metadata::LIST_KIND,
            partial_metadata::API_VERSION,
            &meta,
            &refs,
            ItemForm::Metadata,
        );
        assert_eq!(
            items_of(&partial),
            vec![
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "g"}})
            ]
        );
        assert_eq!(
            item_value(&objects[0], ItemForm::Metadata),
            items_of(&partial)[0]
        );
    }
}
