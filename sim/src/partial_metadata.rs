//! Metadata-only answers: an object as a meta.k8s.io/v1 `PartialObjectMetadata` (its
//! `metadata`, whole, under that kind), as the apiserver's `asPartialObjectMetadata`
//! (k8s.io/apiserver/pkg/endpoints/handlers/response.go) makes it for clients that send
//! `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (controller-runtime's
//! `OnlyMetadata`, kube's `metadata_watcher`, client-go's metadata informers).
//!
//! The same transform applies to every object answer (get, create, update, patch, a deleted
//! object, watch events and bookmarks); `Status` answers pass unchanged. Lists become a
//! `PartialObjectMetadataList` (see [`crate::list_body`]). Asking for the list kind on an
//! object, or the object kind on a list, is a 406 naming the mismatch, as on the real server
//! (which names the Go type it holds, e.g. `*core.ConfigMapList`; here the same spelling is
//! made from the group and kind).
//!
//! Difference from a real server: a watch asked for `PartialObjectMetadataList` gets that 406
//! before streaming; v1.28 starts the stream and its per-event transform fails (logged, the
//! event passed on untransformed). No client sends it (kube and client-go ask watches for
//! `PartialObjectMetadata`).

use serde::Deserialize;
use serde_json::Value;

use crate::store::{ResourceType, Status};

/// `apiVersion` of every metadata-only answer.
pub const API_VERSION: &str = "meta.k8s.io/v1";
/// `kind` of one object's metadata.
pub const KIND: &str = "PartialObjectMetadata";
/// `kind` of a list of objects' metadata.
pub const LIST_KIND: &str = "PartialObjectMetadataList";

/// What is read from a stored object: only its metadata (the rest is skipped, not built).
#[derive(Deserialize)]
struct MetadataOnly {
    #[serde(default)]
    metadata: Value,
}

/// Appends `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":…}` made
/// from an object's JSON.
pub fn write_object(out: &mut Vec<u8>, object_json: &[u8]) {
    // Stored JSON was serialized by the store, so it parses; an object without metadata
    // (never stored) still gets the envelope.
    let metadata = serde_json::from_slice::<MetadataOnly>(object_json)
        .map(|m| m.metadata)
        .unwrap_or(Value::Null);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(KIND.as_bytes());
    out.extend_from_slice(b"\",\"apiVersion\":\"");
    out.extend_from_slice(API_VERSION.as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &metadata);
    out.push(b'}');
}

/// One object's `PartialObjectMetadata` JSON.
pub fn object(object_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(object_json.len().min(4096));
    write_object(&mut out, object_json);
    out
}

/// How the real server names the Go type it holds in its 406 messages: internal types of
/// built-ins are `*<package>.<Kind>` (the group's first label, `core` for the core group),
/// custom resources `*unstructured.Unstructured(List)`.
fn go_type(rt: &ResourceType, list: bool) -> String {
    if rt.custom_resource {
        return format!(
            "*unstructured.Unstructured{}",
            if list { "List" } else { "" }
        );
    }
    let package = if rt.group.is_empty() {
        "core"
    } else {
        rt.group.split('.').next().unwrap_or_default()
    };
    let kind = if list { &rt.list_kind } else { &rt.kind };
    format!("*{package}.{kind}")
}

fn not_acceptable(message: String) -> Status {
    Status {
        code: 406,
        reason: "NotAcceptable".into(),
        message,
        details: None,
        metadata: None,
    }
}

/// 406 for `as=PartialObjectMetadata` on a list or watch-less collection answer.
pub fn object_kind_on_a_list(rt: &ResourceType) -> Status {
    not_acceptable(format!(
        "you requested PartialObjectMetadata, but the requested object is a list ({})",
        go_type(rt, true)
    ))
}

/// 406 for `as=PartialObjectMetadataList` on an object answer (get, write, watch).
pub fn list_kind_on_an_object(rt: &ResourceType) -> Status {
    not_acceptable(format!(
        "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
        go_type(rt, false)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_keeps_only_its_whole_metadata_under_the_meta_kind() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "fx", "labels": {"app": "web"}, "resourceVersion": "7"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let partial: Value =
            serde_json::from_slice(&object(&serde_json::to_vec(&pod).unwrap())).unwrap();
        assert_eq!(
            partial,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod["metadata"]})
        );
    }

    #[test]
    fn mismatched_kinds_name_the_type_held() {
        let cm = crate::discovery::tests::resource("", "v1", "ConfigMap", "configmaps", true);
        assert_eq!(
            object_kind_on_a_list(&cm).message,
            "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)"
        );
        let deploy =
            crate::discovery::tests::resource("apps", "v1", "Deployment", "deployments", true);
        assert_eq!(
            list_kind_on_an_object(&deploy).message,
            "you requested PartialObjectMetadataList, but the requested object is not a list (*apps.Deployment)"
        );
        let gadget =
            crate::discovery::tests::resource("example.com", "v1", "Gadget", "gadgets", true);
        assert_eq!(list_kind_on_an_object(&gadget).code, 406);
        assert!(
            object_kind_on_a_list(&gadget)
                .message
                .ends_with("(*unstructured.UnstructuredList)")
        );
    }
}
