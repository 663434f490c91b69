//! The resources a cluster serves: the built-in ones of kube-apiserver v1.28 that controllers
//! and kubectl use most, and those CustomResourceDefinitions add.
//!
//! Kinds, short names, categories, verbs, scope and subresources are copied from the recorded
//! discovery documents (`shared/fixtures/apiserver-v1.28/discovery/`). A CRD's served versions
//! share one storage (its group and plural), as they share one etcd prefix in a real server.

use std::sync::Arc;

use serde_json::Value;

use super::ResourceType;

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces cannot be deleted as a collection in a real server.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    namespaced: bool,
    status: bool,
    scale: bool,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        short_names: &["ns"],
        categories: &[],
        namespaced: false,
        status: true,
        scale: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        short_names: &["no"],
        categories: &[],
        namespaced: false,
        status: true,
        scale: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        short_names: &["po"],
        categories: &["all"],
        namespaced: true,
        status: true,
        scale: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        short_names: &["svc"],
        categories: &["all"],
        namespaced: true,
        status: true,
        scale: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        short_names: &["cm"],
        categories: &[],
        namespaced: true,
        status: false,
        scale: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        short_names: &[],
        categories: &[],
        namespaced: true,
        status: false,
        scale: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        short_names: &["sa"],
        categories: &[],
        namespaced: true,
        status: false,
        scale: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        short_names: &["ev"],
        categories: &[],
        namespaced: true,
        status: false,
        scale: false,
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        short_names: &["deploy"],
        categories: &["all"],
        namespaced: true,
        status: true,
        scale: true,
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        short_names: &["rs"],
        categories: &["all"],
        namespaced: true,
        status: true,
        scale: true,
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        short_names: &[],
        categories: &[],
        namespaced: true,
        status: false,
        scale: false,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        namespaced: false,
        status: true,
        scale: false,
    },
];

/// Whether `rt` is `CustomResourceDefinition`, whose writes change what the store serves.
pub(super) fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions"
}

/// The built-in resources, in discovery order.
pub(crate) fn builtin_resources() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|b| {
            let verbs = if b.plural == "namespaces" {
                NAMESPACE_VERBS
            } else {
                ALL_VERBS
            };
            Arc::new(ResourceType {
                group: b.group.into(),
                version: b.version.into(),
                kind: b.kind.into(),
                list_kind: format!("{}List", b.kind),
                plural: b.plural.into(),
                singular: b.kind.to_lowercase(),
                short_names: strings(b.short_names),
                categories: strings(b.categories),
                namespaced: b.namespaced,
                verbs: strings(verbs),
                status_subresource: b.status,
                scale_subresource: b.scale,
                custom_resource: false,
                storage_version: b.version.into(),
            })
        })
        .collect()
}

/// The resource types a CRD serves (one per served version), or a reason it is unusable.
pub(crate) fn crd_resources(crd: &Value) -> Result<Vec<Arc<ResourceType>>, String> {
    let spec = crd.get("spec").ok_or("spec: Required value")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("spec.group: Required value")?;
    let names = spec.get("names").ok_or("spec.names: Required value")?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .ok_or("spec.names.plural: Required value")?;
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("spec.names.kind: Required value")?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names
        .get("listKind")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions: Required value")?;
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str);
    let mut served = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = version
            .get("name")
            .and_then(Value::as_str)
            .ok_or("spec.versions[].name: Required value")?;
        let subresources = version.get("subresources");
        served.push(Arc::new(ResourceType {
            group: group.into(),
            version: name.into(),
            kind: kind.into(),
            list_kind: list_kind.clone(),
            plural: plural.into(),
            singular: singular.clone(),
            short_names: string_array(names.get("shortNames")),
            categories: string_array(names.get("categories")),
            namespaced,
            verbs: strings(ALL_VERBS),
            status_subresource: subresources.and_then(|s| s.get("status")).is_some(),
            scale_subresource: subresources.and_then(|s| s.get("scale")).is_some(),
            custom_resource: true,
            storage_version: storage_version.unwrap_or(name).into(),
        }));
    }
    Ok(served)
}

/// The `status` a real apiextensions-apiserver writes once a CRD's names are accepted.
pub(crate) fn crd_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let mut accepted = names.clone();
    if let Some(map) = accepted.as_object_mut() {
        if !map.contains_key("singular") {
            let kind = names
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            map.insert("singular".into(), Value::String(kind));
        }
        if !map.contains_key("listKind") {
            let kind = names
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            map.insert("listKind".into(), Value::String(format!("{kind}List")));
        }
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ],
        "storedVersions": stored
    })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn string_array(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
