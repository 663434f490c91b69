//! OpenAPI endpoints, reduced to what clients need (fallbacks.md).
//!
//! - `GET /openapi/v2`: kubectl 1.28 requires it to be 200 for apply / create -f / replace /
//!   edit; an empty body of the protobuf content type is a valid, empty `Document`.
//! - `GET /openapi/v3`: the index kube-openapi serves (headers/openapi-v3-root*): `paths`
//!   maps each served group version (`api/v1`, `apis/apps/v1`, …) to its
//!   `serverRelativeURL`, `/openapi/v3/<gv>?hash=<SHA-512 of the document, upper-case hex>`,
//!   with the recorded `Content-Type: text/plain; charset=utf-8`.
//! - `GET /openapi/v3/<gv>`: an OpenAPI 3.0 document whose `components.schemas` hold one
//!   schema per kind served in that group version, named as the real server names them
//!   (`io.k8s.api.core.v1.Pod`, `com.example.v1.Gadget`) and tagged with
//!   `x-kubernetes-group-version-kind`, plus `ObjectMeta`, and one `paths` entry per
//!   collection whose list operation names the kind. That is what `kubectl explain` reads
//!   (it finds the kind from the path, then the schema from the kind). A custom resource's
//!   schema is its CRD's `openAPIV3Schema` for that version.
//!
//! Differences from a real server: built-in kinds are described by their top-level fields
//! only (name, type, a one-line description; nested types are plain objects), `paths` hold
//! only each collection's list operation, and the index lists group versions only (not
//! `api`, `apis`, `apis/<group>` or `.well-known/…`).

use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::response::{Body, full, page_not_found, with_content_type};
use crate::store::{ClusterStore, ResourceType, Subresource};

/// The content type of the protobuf OpenAPI v2 document (headers/openapi-v2-head.txt).
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The content type the v3 index is served with (headers/openapi-v3-root.txt).
const OPENAPI_V3_INDEX_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Answers `/openapi/...` paths; `None` when the path is not an OpenAPI one.
pub fn serve(path: &str, store: &ClusterStore, kubernetes_minor: u32) -> Option<Response<Body>> {
    match path {
        "/openapi/v2" => Some(with_content_type(
            StatusCode::OK,
            OPENAPI_V2_PROTOBUF,
            full(""),
        )),
        "/openapi/v3" => {
            let body = serde_json::to_vec(&index(store, kubernetes_minor)).unwrap_or_default();
            Some(with_content_type(
                StatusCode::OK,
                OPENAPI_V3_INDEX_CONTENT_TYPE,
                full(body),
            ))
        }
        p => {
            let gv = p.strip_prefix("/openapi/")?;
            let doc = gv
                .strip_prefix("v3/")
                .and_then(|gv| group_version_document(store, gv, kubernetes_minor));
            Some(match doc {
                Some(doc) => with_content_type(
                    StatusCode::OK,
                    "application/json",
                    full(serde_json::to_vec(&doc).unwrap_or_default()),
                ),
                None => page_not_found(),
            })
        }
    }
}

/// `api/v1` or `apis/<group>/<version>`.
fn gv_path(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        format!("api/{}", rt.version)
    } else {
        format!("apis/{}/{}", rt.group, rt.version)
    }
}

/// The `/openapi/v3` index.
fn index(store: &ClusterStore, kubernetes_minor: u32) -> Value {
    let mut paths = Map::new();
    for rt in store.resources() {
        let path = gv_path(&rt);
        if paths.contains_key(&path) {
            continue;
        }
        if let Some(doc) = group_version_document(store, &path, kubernetes_minor) {
            let hash = hex_upper(ring::digest::digest(
                &ring::digest::SHA512,
                &serde_json::to_vec(&doc).unwrap_or_default(),
            ));
            let url = format!("/openapi/v3/{path}?hash={hash}");
            paths.insert(path, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

fn hex_upper(digest: ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// The document of one group version (`api/v1`, `apis/apps/v1`), if served.
fn group_version_document(store: &ClusterStore, gv: &str, kubernetes_minor: u32) -> Option<Value> {
    let resources: Vec<Arc<ResourceType>> = store
        .resources()
        .into_iter()
        .filter(|rt| gv_path(rt) == gv)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut schemas = Map::new();
    let mut paths = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    for rt in &resources {
        paths.insert(collection_path(rt), collection_operations(rt));
        let schema = if rt.custom_resource {
            custom_resource_schema(store, rt)
        } else {
            builtin_schema(rt)
        };
        schemas.insert(schema_name(rt), schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{kubernetes_minor}.0")},
        "paths": paths,
        "components": {"schemas": schemas}
    }))
}

/// `/api/v1/namespaces/{namespace}/pods`, `/api/v1/nodes`: the path whose operations tell
/// `kubectl explain` which kind a resource is.
fn collection_path(rt: &ResourceType) -> String {
    let scope = if rt.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    format!("/{}{scope}/{}", gv_path(rt), rt.plural)
}

/// The collection's list operation, tagged with the kind as the real server tags it.
fn collection_operations(rt: &ResourceType) -> Value {
    let scope = if rt.namespaced { "Namespaced" } else { "" };
    json!({
        "get": {
            "description": format!("list or watch objects of kind {}", rt.kind),
            "operationId": format!("list{scope}{}", rt.kind),
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}},
            "x-kubernetes-action": "list",
            "x-kubernetes-group-version-kind": {"group": rt.group, "kind": rt.kind, "version": rt.version}
        }
    })
}

/// The schema name a real server gives a kind: Go package path for built-ins, the reversed
/// group for custom resources.
fn schema_name(rt: &ResourceType) -> String {
    if rt.custom_resource {
        let reversed: Vec<&str> = rt.group.split('.').rev().collect();
        return format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind);
    }
    match rt.group.as_str() {
        "" => format!("io.k8s.api.core.{}.{}", rt.version, rt.kind),
        "apiextensions.k8s.io" => format!(
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{}.{}",
            rt.version, rt.kind
        ),
        group => format!(
            "io.k8s.api.{}.{}.{}",
            group.split('.').next().unwrap_or(group),
            rt.version,
            rt.kind
        ),
    }
}

fn gvk_extension(rt: &ResourceType) -> Value {
    json!([{"group": rt.group, "kind": rt.kind, "version": rt.version}])
}

fn string_field(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// The fields every object has, worded as the real schemas word them (first sentence).
fn type_and_object_meta() -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        "apiVersion".into(),
        string_field("APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values."),
    );
    properties.insert(
        "kind".into(),
        string_field("Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to."),
    );
    properties.insert(
        "metadata".into(),
        json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "default": {}, "description": "Standard object's metadata."}),
    );
    properties
}

/// A built-in kind: its description and top-level fields (name, type, description).
fn builtin_schema(rt: &ResourceType) -> Value {
    let (description, fields) = builtin_fields(&rt.kind);
    let mut properties = type_and_object_meta();
    for (name, kind, field_description) in fields {
        properties.insert(
            name.to_string(),
            json!({"type": kind, "description": field_description}),
        );
    }
    json!({
        "description": description,
        "type": "object",
        "properties": properties,
        "x-kubernetes-group-version-kind": gvk_extension(rt)
    })
}

type Field = (&'static str, &'static str, &'static str);

const SPEC_STATUS: &[Field] = &[
    (
        "spec",
        "object",
        "Specification of the desired behavior of the object.",
    ),
    (
        "status",
        "object",
        "Most recently observed status of the object. This data may not be up to date. Populated by the system. Read-only.",
    ),
];

/// A built-in kind's description and top-level fields beyond apiVersion, kind and metadata.
fn builtin_fields(kind: &str) -> (&'static str, &'static [Field]) {
    match kind {
        "Pod" => (
            "Pod is a collection of containers that can run on a host. This resource is created by clients and scheduled onto hosts.",
            SPEC_STATUS,
        ),
        "Namespace" => (
            "Namespace provides a scope for Names. Use of multiple namespaces is optional.",
            SPEC_STATUS,
        ),
        "Node" => (
            "Node is a worker node in Kubernetes. Each node will have a unique identifier in the cache (i.e. in etcd).",
            SPEC_STATUS,
        ),
        "Service" => (
            "Service is a named abstraction of software service (for example, mysql) consisting of local port (for example 3306) that the proxy listens on, and the selector that determines which pods will answer requests sent through the proxy.",
            SPEC_STATUS,
        ),
        "Deployment" => (
            "Deployment enables declarative updates for Pods and ReplicaSets.",
            SPEC_STATUS,
        ),
        "ReplicaSet" => (
            "ReplicaSet ensures that a specified number of pod replicas are running at any given time.",
            SPEC_STATUS,
        ),
        "CustomResourceDefinition" => (
            "CustomResourceDefinition represents a resource that should be exposed on the API server.  Its name MUST be in the format <.spec.name>.<.spec.group>.",
            SPEC_STATUS,
        ),
        "Lease" => (
            "Lease defines a lease concept.",
            &[(
                "spec",
                "object",
                "spec contains the specification of the Lease.",
            )],
        ),
        "ConfigMap" => (
            "ConfigMap holds configuration data for pods to consume.",
            &[
                (
                    "binaryData",
                    "object",
                    "BinaryData contains the binary data.",
                ),
                ("data", "object", "Data contains the configuration data."),
                (
                    "immutable",
                    "boolean",
                    "Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated (only object metadata can be modified).",
                ),
            ],
        ),
        "Secret" => (
            "Secret holds secret data of a certain type. The total bytes of the values in the Data field must be less than MaxSecretSize bytes.",
            &[
                ("data", "object", "Data contains the secret data."),
                (
                    "immutable",
                    "boolean",
                    "Immutable, if set to true, ensures that data stored in the Secret cannot be updated (only object metadata can be modified).",
                ),
                (
                    "stringData",
                    "object",
                    "stringData allows specifying non-binary secret data in string form.",
                ),
                (
                    "type",
                    "string",
                    "Used to facilitate programmatic handling of secret data.",
                ),
            ],
        ),
        "ServiceAccount" => (
            "ServiceAccount binds together: * a name, understood by users, and perhaps by peripheral systems, for an identity * a principal that can be authenticated and authorized * a set of secrets",
            &[
                (
                    "automountServiceAccountToken",
                    "boolean",
                    "AutomountServiceAccountToken indicates whether pods running as this service account should have an API token automatically mounted.",
                ),
                (
                    "imagePullSecrets",
                    "array",
                    "ImagePullSecrets is a list of references to secrets in the same namespace to use for pulling any images in pods that reference this ServiceAccount.",
                ),
                (
                    "secrets",
                    "array",
                    "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                ),
            ],
        ),
        "Event" => (
            "Event is a report of an event somewhere in the cluster.  Events have a limited retention time and triggers and messages may evolve with time.",
            &[
                (
                    "involvedObject",
                    "object",
                    "The object that this event is about.",
                ),
                (
                    "message",
                    "string",
                    "A human-readable description of the status of this operation.",
                ),
                (
                    "reason",
                    "string",
                    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                ),
                (
                    "type",
                    "string",
                    "Type of this event (Normal, Warning), new types could be added in the future",
                ),
            ],
        ),
        _ => ("", SPEC_STATUS),
    }
}

/// ObjectMeta with the fields controllers read most.
fn object_meta_schema() -> Value {
    let string_map = |d: &str| json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": d});
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "annotations": string_map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata."),
            "creationTimestamp": string_field("CreationTimestamp is a timestamp representing the server time when this object was created."),
            "deletionTimestamp": string_field("DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."),
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "description": "Must be empty before the object is deleted from the registry."},
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "labels": string_map("Map of string keys and values that can be used to organize and categorize (scope and select) objects."),
            "name": string_field("Name must be unique within a namespace."),
            "namespace": string_field("Namespace defines the space within which each name must be unique."),
            "ownerReferences": {"type": "array", "items": {"type": "object"}, "description": "List of objects depended by this object."},
            "resourceVersion": string_field("An opaque value that represents the internal version of this object that can be used by clients to determine when objects have changed."),
            "uid": string_field("UID is the unique in time and space value for this object.")
        }
    })
}

/// A custom resource: its CRD's `openAPIV3Schema` for this version, tagged with its kind.
fn custom_resource_schema(store: &ClusterStore, rt: &ResourceType) -> Value {
    let crd_schema = store
        .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .and_then(|crds| {
            store
                .get(
                    &crds,
                    None,
                    &format!("{}.{}", rt.plural, rt.group),
                    Subresource::Main,
                )
                .ok()
        })
        .and_then(|crd| {
            let crd = crd.value();
            crd.pointer("/spec/versions")?
                .as_array()?
                .iter()
                .find(|v| v["name"] == rt.version.as_str())?
                .pointer("/schema/openAPIV3Schema")
                .cloned()
        });
    let mut schema = match crd_schema {
        Some(Value::Object(map)) => map,
        _ => Map::from_iter([("type".to_string(), json!("object"))]),
    };
    let properties = schema.entry("properties").or_insert_with(|| json!({}));
    if let Some(properties) = properties.as_object_mut() {
        for (name, field) in type_and_object_meta() {
            properties.entry(name).or_insert(field);
        }
    }
    schema.insert("x-kubernetes-group-version-kind".into(), gvk_extension(rt));
    Value::Object(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[test]
    fn v2_is_an_empty_protobuf_document() {
        let store = ClusterStore::new(StoreConfig::default());
        let v2 = serve("/openapi/v2", &store, 28).expect("served");
        assert_eq!(v2.status(), StatusCode::OK);
        assert_eq!(v2.headers()["content-type"], OPENAPI_V2_PROTOBUF);
        assert!(serve("/version", &store, 28).is_none());
        assert_eq!(
            serve("/openapi/v3/apis/nothing/v1", &store, 28)
                .expect("answered")
                .status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn the_index_points_at_hashed_group_version_documents() {
        let store = ClusterStore::new(StoreConfig::default());
        let index = index(&store, 28);
        let url = index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .expect("api/v1");
        let hash = url.strip_prefix("/openapi/v3/api/v1?hash=").expect("hash");
        assert_eq!(hash.len(), 128);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert!(index["paths"]["apis/apps/v1"].is_object());
        let doc = group_version_document(&store, "api/v1", 28).expect("core");
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert_eq!(pod["properties"]["spec"]["type"], "object");
        assert_eq!(
            doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]["x-kubernetes-group-version-kind"],
            json!({"group": "", "kind": "Pod", "version": "v1"})
        );
        assert!(doc["paths"]["/api/v1/nodes"].is_object());
        let apps = group_version_document(&store, "apis/apps/v1", 28).expect("apps");
        assert!(apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
    }
}
