//! What a real server's registry strategies and default admission plugins do to an object on
//! create: validation of names and required fields, API defaulting, the ServiceAccount and
//! DefaultTolerationSeconds admission of pods, the initial status of pods and namespaces.
//!
//! Ground truth: `shared/fixtures/apiserver-v1.28/pods/pod-defaults.md`.

use rand::Rng;
use serde_json::{Value, json};

use super::{ResourceType, Status};

/// Five random characters from the alphabet apimachinery's `utilrand.String` uses
/// (no vowels, no look-alike digits), for generateName and kube-api-access volumes.
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// RFC 1123 subdomain: at most 253 characters of `[a-z0-9.-]`, alphanumeric at both ends,
/// each dot-separated label non-empty.
pub(crate) fn is_dns1123_subdomain(name: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && alnum(bytes[0])
                && alnum(bytes[bytes.len() - 1])
                && bytes.iter().all(|&c| alnum(c) || c == b'-')
        })
}

/// Whether writes to the resource's spec bump `metadata.generation` (apps types, CRDs and
/// custom resources; core types such as pods and configmaps have no generation).
pub(crate) fn tracks_generation(rt: &ResourceType) -> bool {
    !rt.group.is_empty() && rt.group != "coordination.k8s.io"
}

/// Type-specific validation a create must pass (beyond the name).
pub(crate) fn validate(rt: &ResourceType, name: &str, object: &Value) -> Result<(), Status> {
    if rt.group.is_empty() && rt.plural == "pods" {
        let has_containers = object
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        if !has_containers {
            return Err(Status::required(rt, name, "spec.containers"));
        }
    }
    Ok(())
}

/// API defaulting and admission on create, in place.
pub(crate) fn default_on_create(rt: &ResourceType, object: &mut Value) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => default_pod(object),
        ("", "namespaces") => {
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
            let name = object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            let labels = object["metadata"]
                .as_object_mut()
                .map(|m| m.entry("labels").or_insert_with(|| json!({})));
            if let Some(labels) = labels.and_then(Value::as_object_mut) {
                labels.insert("kubernetes.io/metadata.name".into(), name);
            }
        }
        ("", "configmaps" | "secrets" | "serviceaccounts" | "events")
        | ("coordination.k8s.io", _) => {}
        _ if rt.status_subresource => {
            // Registry strategies of types with a status subresource drop status on create.
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        _ => {}
    }
}

fn default_pod(pod: &mut Value) {
    let spec = pod["spec"]
        .as_object_mut()
        .expect("validated: pods have a spec");
    let mut qos = "BestEffort";
    let mut all_guaranteed = true;
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for container in containers.iter_mut() {
            let Some(c) = container.as_object_mut() else {
                continue;
            };
            let image = c
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let tagged = image
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':') && !last.ends_with(":latest"));
            c.entry("imagePullPolicy").or_insert_with(|| {
                json!(if tagged || image.contains('@') {
                    "IfNotPresent"
                } else {
                    "Always"
                })
            });
            c.entry("resources").or_insert_with(|| json!({}));
            c.entry("terminationMessagePath")
                .or_insert_with(|| json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy")
                .or_insert_with(|| json!("File"));
            let resources = &c["resources"];
            let has_any = resources.get("requests").is_some() || resources.get("limits").is_some();
            if has_any {
                qos = "Burstable";
            }
            if resources.get("limits").is_none()
                || resources
                    .get("requests")
                    .is_some_and(|r| Some(r) != resources.get("limits"))
            {
                all_guaranteed = false;
            }
        }
    }
    if qos == "Burstable" && all_guaranteed {
        qos = "Guaranteed";
    }
    spec.entry("restartPolicy")
        .or_insert_with(|| json!("Always"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert_with(|| json!(30));
    spec.entry("dnsPolicy")
        .or_insert_with(|| json!("ClusterFirst"));
    spec.entry("securityContext").or_insert_with(|| json!({}));
    spec.entry("schedulerName")
        .or_insert_with(|| json!("default-scheduler"));
    spec.entry("enableServiceLinks")
        .or_insert_with(|| json!(true));
    let account = spec
        .get("serviceAccountName")
        .cloned()
        .unwrap_or_else(|| json!("default"));
    spec.insert("serviceAccountName".into(), account.clone());
    spec.insert("serviceAccount".into(), account);
    let volume = format!("kube-api-access-{}", random_suffix());
    if let Some(volumes) = spec
        .entry("volumes")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    {
        volumes.push(json!({"name": volume, "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ], "defaultMode": 420}}));
    }
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for container in containers.iter_mut() {
            let mounts = container
                .as_object_mut()
                .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
            if let Some(list) = mounts.and_then(Value::as_array_mut) {
                list.push(json!({"name": volume, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}));
            }
        }
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            if !list.iter().any(|t| t["key"] == key) {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    spec.entry("priority").or_insert_with(|| json!(0));
    spec.entry("preemptionPolicy")
        .or_insert_with(|| json!("PreemptLowerPriority"));
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
}

/// Top-level fields of the built-in kinds, for `fieldValidation=Strict` (custom resources
/// and unlisted kinds are not checked).
fn known_top_level_fields(rt: &ResourceType) -> Option<&'static [&'static str]> {
    const WITH_SPEC: &[&str] = &["spec", "status"];
    Some(match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "configmaps") => &["data", "binaryData", "immutable"],
        ("", "secrets") => &["data", "stringData", "type", "immutable"],
        ("", "serviceaccounts") => &[
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        ("", "events") => &[
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ],
        ("", "pods" | "services" | "namespaces" | "nodes")
        | ("apps", _)
        | ("coordination.k8s.io", _)
        | ("apiextensions.k8s.io", _) => WITH_SPEC,
        _ => return None,
    })
}

/// 400 for an unknown top-level field under `fieldValidation=Strict`, worded as the real
/// server's strict decoding error.
pub(crate) fn reject_unknown_fields(rt: &ResourceType, object: &Value) -> Result<(), Status> {
    let (Some(known), Some(map)) = (known_top_level_fields(rt), object.as_object()) else {
        return Ok(());
    };
    let unknown = map.keys().find(|k| {
        !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") && !known.contains(&k.as_str())
    });
    match unknown {
        Some(field) => Err(Status::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: unknown field \"{field}\"",
            kind = rt.kind,
            version = rt.version
        ))),
        None => Ok(()),
    }
}
