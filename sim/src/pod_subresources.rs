//! The pod subresources a real v1.28 server lists (discovery/api-v1.json), other than
//! `status`: what discovery shows for each (kind, group/version, verbs) and how each is
//! answered. It mirrors `pkg/registry/core/pod/storage` (BindingREST, EvictionREST,
//! LogREST, ExecREST, AttachREST, PortForwardREST, ProxyREST, EphemeralContainersREST).
//!
//! Served as the real server does, because controllers use them:
//! - `binding` (POST): sets `spec.nodeName` (and the binding's annotations) and the
//!   `PodScheduled=True` condition; answers `201` Status Success; a pod already bound or
//!   being deleted is `409 Conflict` ("pod P is already assigned to node \"N\"").
//! - `eviction` (POST, policy/v1 `Eviction`): deletes the pod with the eviction's
//!   `deleteOptions`, as the real server does when no PodDisruptionBudget applies (`sim` has
//!   none); answers `201` Status Success.
//! - `ephemeralcontainers` (GET, PUT, PATCH): the Pod; a write changes only
//!   `spec.ephemeralContainers`, other changes it carries are dropped.
//!
//! Answered as a real server without a kubelet answers (there is none behind `sim`):
//! - `log`: a pod that is not scheduled has no logs yet: `200` and an empty body; a
//!   scheduled pod's logs would come from its node's kubelet: `404` when the Node object does
//!   not exist, else `500` with the dial error (nothing listens on port 10250).
//! - `exec`, `attach`: a container must be named when the pod has several (`400`); an
//!   unscheduled pod is `400` "does not have a host assigned"; a request without a stream
//!   upgrade is `400` "Upgrade request required"; an upgrade fails dialing the kubelet (`500`).
//! - `portforward`: as `exec`, without the container check.
//! - `proxy`: a pod without an IP is `400` "address not allowed"; else `503`, the pod's IP
//!   does not answer.
//!
//! Differences from a real server: a binding is two writes (the pod, then its status), so
//! watchers see two MODIFIED events and the binding's managedFields entry is recorded; the
//! `500`/`503` messages for unreachable kubelets and pods follow the real wording but their
//! addresses are what `sim` knows (the node's InternalIP or name, the pod's IP).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::query::Query;
use crate::request_info::Verb;
use crate::response;
use crate::store::{ClusterStore, PatchType, ResourceType, Status, StoredObject, Subresource};

/// One subresource as discovery lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubresourceSpec {
    /// Subresource name after the pod's (`log`, `exec`, `binding`, ...).
    pub name: &'static str,
    /// The response kind's group and version; "" for the resource's own.
    pub group: &'static str,
    /// The response kind's version; "" for the resource's own.
    pub version: &'static str,
    /// Kind of the request and response body (`Pod`, `Binding`, `Eviction`, ...).
    pub kind: &'static str,
    /// Verbs discovery lists for it.
    pub verbs: &'static [&'static str],
}

/// The pod subresources besides `status`, in discovery order (discovery/api-v1.json).
pub const POD_SUBRESOURCES: &[SubresourceSpec] = &[
    SubresourceSpec {
        name: "attach",
        group: "",
        version: "",
        kind: "PodAttachOptions",
        verbs: &["create", "get"],
    },
    SubresourceSpec {
        name: "binding",
        group: "",
        version: "",
        kind: "Binding",
        verbs: &["create"],
    },
    SubresourceSpec {
        name: "ephemeralcontainers",
        group: "",
        version: "",
        kind: "Pod",
        verbs: &["get", "patch", "update"],
    },
    SubresourceSpec {
        name: "eviction",
        group: "policy",
        version: "v1",
        kind: "Eviction",
        verbs: &["create"],
    },
    SubresourceSpec {
        name: "exec",
        group: "",
        version: "",
        kind: "PodExecOptions",
        verbs: &["create", "get"],
    },
    SubresourceSpec {
        name: "log",
        group: "",
        version: "",
        kind: "Pod",
        verbs: &["get"],
    },
    SubresourceSpec {
        name: "portforward",
        group: "",
        version: "",
        kind: "PodPortForwardOptions",
        verbs: &["create", "get"],
    },
    SubresourceSpec {
        name: "proxy",
        group: "",
        version: "",
        kind: "PodProxyOptions",
        verbs: &["create", "delete", "get", "patch", "update"],
    },
];

/// The subresources of `rt` beyond `status` and `scale`.
pub fn extra_subresources(rt: &ResourceType) -> &'static [SubresourceSpec] {
    if rt.group.is_empty() && rt.plural == "pods" {
        POD_SUBRESOURCES
    } else {
        &[]
    }
}

/// A request on a pod subresource, as parsed by the resource handler.
pub struct PodSubresourceRequest<'a> {
    /// The cluster's store.
    pub store: &'a ClusterStore,
    /// The `pods` resource type.
    pub pods: &'a Arc<ResourceType>,
    /// The namespace in the path.
    pub namespace: Option<&'a str>,
    /// The pod's name.
    pub name: &'a str,
    /// Which subresource.
    pub spec: &'static SubresourceSpec,
    /// The request's verb (decides 405 for verbs the subresource does not take).
    pub verb: Verb,
    /// The parsed query string.
    pub query: &'a Query,
    /// The raw query string (for `container=`, which only these subresources take).
    pub raw_query: Option<&'a str>,
    /// The request's Content-Type, for bodies (`binding`, `eviction`).
    pub content_type: Option<&'a str>,
    /// The request body (empty for reads).
    pub body: &'a [u8],
    /// The request asked to upgrade the connection (SPDY or WebSocket streams).
    pub upgrade: bool,
    /// `?fieldManager=` of writes.
    pub field_manager: Option<String>,
}

/// What the handler sends back.
pub enum SubresourceAnswer {
    /// The pod, in the negotiated representation.
    Object(Arc<StoredObject>),
    /// `201` with a `Status` Success.
    Created,
    /// A plain-text body (logs).
    Text(String),
}

/// The spec of `rt`'s subresource `name`, if it is one of the extra ones.
pub fn find(rt: &ResourceType, name: &str) -> Option<&'static SubresourceSpec> {
    extra_subresources(rt).iter().find(|s| s.name == name)
}

/// Serves one request on a pod subresource.
pub fn serve(req: &PodSubresourceRequest<'_>) -> Result<SubresourceAnswer, Status> {
    if !req.spec.verbs.contains(&req.verb.as_str()) {
        return Err(response::method_not_allowed());
    }
    let pod = req
        .store
        .get(req.pods, req.namespace, req.name, Subresource::Main)?;
    match req.spec.name {
        "binding" => bind(req, &pod),
        "eviction" => evict(req),
        "ephemeralcontainers" => ephemeral_containers(req, pod),
        "log" => log(req, &pod.value()),
        "exec" | "attach" => {
            let value = pod.value();
            container(req, &value)?;
            stream_to_kubelet(req, &value)
        }
        "portforward" => stream_to_kubelet(req, &pod.value()),
        "proxy" => proxy(&pod.value()),
        _ => Err(response::method_not_allowed()),
    }
}

fn parse_body(req: &PodSubresourceRequest<'_>) -> Result<Value, Status> {
    serde_json::from_slice(req.body).map_err(|e| {
        response::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): {e}",
            req.spec.kind
        ))
    })
}

fn write_options(req: &PodSubresourceRequest<'_>) -> crate::store::WriteOptions {
    req.query.write_options(req.field_manager.clone())
}

/// BindingREST.Create: assign the pod to `target.name` once.
fn bind(req: &PodSubresourceRequest<'_>, pod: &StoredObject) -> Result<SubresourceAnswer, Status> {
    let binding = parse_body(req)?;
    if binding.pointer("/metadata/name").and_then(Value::as_str) != Some(req.name) {
        return Err(response::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid_binding(req.name, "target.name", "Required value"))?;
    if let Some(kind) = binding.pointer("/target/kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != "Node"
    {
        return Err(invalid_binding(
            req.name,
            "target.kind",
            &format!("Invalid value: \"{kind}\": must be empty or 'Node'"),
        ));
    }
    let value = pod.value();
    if value.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(binding_conflict(
            req.name,
            &format!(
                "pod {} is being deleted, cannot be assigned to a host",
                req.name
            ),
        ));
    }
    if let Some(assigned) = value
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(binding_conflict(
            req.name,
            &format!(
                "pod {} is already assigned to node \"{assigned}\"",
                req.name
            ),
        ));
    }
    let mut patch = json!({
        "metadata": {"resourceVersion": pod.resource_version.to_string()},
        "spec": {"nodeName": node},
    });
    if let Some(annotations) = binding.pointer("/metadata/annotations") {
        patch["metadata"]["annotations"] = annotations.clone();
    }
    let opts = write_options(req);
    let bound = req
        .store
        .patch(
            req.pods,
            req.namespace,
            req.name,
            Subresource::Main,
            PatchType::Merge,
            patch.to_string().as_bytes(),
            &opts,
        )
        .map_err(|status| match status.code {
            409 => binding_conflict(req.name, "the object has been modified"),
            _ => status,
        })?;
    if opts.dry_run {
        return Ok(SubresourceAnswer::Created);
    }
    let mut conditions: Vec<Value> = bound
        .value()
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != "PodScheduled");
    conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
    let status_patch = json!({"status": {"conditions": conditions}});
    req.store.patch(
        req.pods,
        req.namespace,
        req.name,
        Subresource::Status,
        PatchType::Merge,
        status_patch.to_string().as_bytes(),
        &opts,
    )?;
    Ok(SubresourceAnswer::Created)
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn binding_conflict(name: &str, why: &str) -> Status {
    Status {
        code: 409,
        reason: "Conflict".into(),
        message: format!("Operation cannot be fulfilled on pods/binding \"{name}\": {why}"),
        details: Some(json!({"name": name, "kind": "pods/binding"})),
        metadata: None,
    }
}

fn invalid_binding(name: &str, field: &str, detail: &str) -> Status {
    let reason = if detail.starts_with("Required") {
        "FieldValueRequired"
    } else {
        "FieldValueInvalid"
    };
    Status {
        code: 422,
        reason: "Invalid".into(),
        message: format!("Binding \"{name}\" is invalid: {field}: {detail}"),
        details: Some(
            json!({"name": name, "kind": "Binding", "causes": [{"reason": reason, "message": detail, "field": field}]}),
        ),
        metadata: None,
    }
}

/// EvictionREST.Create without PodDisruptionBudgets: the pod is deleted.
fn evict(req: &PodSubresourceRequest<'_>) -> Result<SubresourceAnswer, Status> {
    let eviction = parse_body(req)?;
    if eviction.pointer("/metadata/name").and_then(Value::as_str) != Some(req.name) {
        return Err(response::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let delete_options = eviction
        .get("deleteOptions")
        .map(Value::to_string)
        .unwrap_or_default();
    let opts = req.query.delete_options(delete_options.as_bytes())?;
    req.store.delete(req.pods, req.namespace, req.name, &opts)?;
    Ok(SubresourceAnswer::Created)
}

/// EphemeralContainersREST: the pod; a write takes only `spec.ephemeralContainers` from what
/// it sends and drops every other change (the strategy's `dropNonEphemeralContainerUpdates`).
fn ephemeral_containers(
    req: &PodSubresourceRequest<'_>,
    pod: Arc<StoredObject>,
) -> Result<SubresourceAnswer, Status> {
    let sent = match req.verb {
        Verb::Get => return Ok(SubresourceAnswer::Object(pod)),
        Verb::Update => parse_body(req)?,
        _ => {
            // What the patch would make of the pod, without storing it.
            let patch_type = crate::negotiation::patch_type(req.content_type)?;
            let mut preview = write_options(req);
            preview.dry_run = true;
            req.store
                .patch(
                    req.pods,
                    req.namespace,
                    req.name,
                    Subresource::Main,
                    patch_type,
                    req.body,
                    &preview,
                )?
                .value()
        }
    };
    let containers = sent
        .pointer("/spec/ephemeralContainers")
        .cloned()
        .unwrap_or(Value::Null);
    let mut patch = json!({"spec": {"ephemeralContainers": containers}});
    if req.verb == Verb::Update
        && let Some(rv) = sent.pointer("/metadata/resourceVersion")
    {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let written = req.store.patch(
        req.pods,
        req.namespace,
        req.name,
        Subresource::Main,
        PatchType::Merge,
        patch.to_string().as_bytes(),
        &write_options(req),
    )?;
    Ok(SubresourceAnswer::Object(written))
}

/// `?container=`, or the only container; 400 as `pod.LogLocation` / `ExecLocation` answer.
fn container(req: &PodSubresourceRequest<'_>, pod: &Value) -> Result<String, Status> {
    let requested = req
        .raw_query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "container")
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty());
    if let Some(container) = requested {
        return Ok(container);
    }
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match names.as_slice() {
        [only] => Ok(only.to_string()),
        [] => Err(response::bad_request(format!(
            "a container name must be specified for pod {}",
            req.name
        ))),
        several => Err(response::bad_request(format!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            req.name,
            several.join(" ")
        ))),
    }
}

fn node_name(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// The address a real server would dial for `node`'s kubelet: its InternalIP, else its name;
/// 404 when the Node does not exist (connection info comes from the Node object).
fn kubelet_address(req: &PodSubresourceRequest<'_>, node: &str) -> Result<String, Status> {
    let nodes = req.store.builtin("", "nodes");
    let node_object = req
        .store
        .get(&nodes, None, node, Subresource::Main)?
        .value();
    let internal_ip = node_object
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|addresses| {
            addresses
                .iter()
                .find(|a| a["type"] == "InternalIP")
                .and_then(|a| a["address"].as_str())
        });
    Ok(format!("{}:10250", internal_ip.unwrap_or(node)))
}

fn internal_error(message: String) -> Status {
    Status {
        code: 500,
        reason: "InternalError".into(),
        message: format!("Internal error occurred: {message}"),
        details: Some(json!({"causes": [{"message": message}]})),
        metadata: None,
    }
}

/// LogREST: no node yet → empty logs; a node → its kubelet, which is not there.
fn log(req: &PodSubresourceRequest<'_>, pod: &Value) -> Result<SubresourceAnswer, Status> {
    let container = container(req, pod)?;
    let Some(node) = node_name(pod) else {
        return Ok(SubresourceAnswer::Text(String::new()));
    };
    let address = kubelet_address(req, node)?;
    let namespace = req.namespace.unwrap_or("default");
    Err(internal_error(format!(
        "Get \"https://{address}/containerLogs/{namespace}/{}/{container}\": dial tcp {address}: connect: connection refused",
        req.name
    )))
}

/// exec, attach, portforward: streams proxied to the pod's kubelet.
fn stream_to_kubelet(
    req: &PodSubresourceRequest<'_>,
    pod: &Value,
) -> Result<SubresourceAnswer, Status> {
    let Some(node) = node_name(pod) else {
        return Err(response::bad_request(format!(
            "pod {} does not have a host assigned",
            req.name
        )));
    };
    let address = kubelet_address(req, node)?;
    if !req.upgrade {
        return Err(response::bad_request("Upgrade request required"));
    }
    Err(internal_error(format!(
        "error dialing backend: dial tcp {address}: connect: connection refused"
    )))
}

/// ProxyREST: to the pod's IP, which nothing answers behind `sim`.
fn proxy(pod: &Value) -> Result<SubresourceAnswer, Status> {
    let Some(ip) = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
    else {
        return Err(response::bad_request("address not allowed"));
    };
    Err(Status {
        code: 503,
        reason: "ServiceUnavailable".into(),
        message: format!(
            "error trying to reach service: dial tcp {ip}:80: connect: connection refused"
        ),
        details: None,
        metadata: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_subresources_are_in_discovery_order_with_the_recorded_verbs() {
        let names: Vec<&str> = POD_SUBRESOURCES.iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let eviction = POD_SUBRESOURCES
            .iter()
            .find(|s| s.name == "eviction")
            .unwrap();
        assert_eq!(
            (eviction.group, eviction.version, eviction.kind),
            ("policy", "v1", "Eviction")
        );
        let cm = crate::store::ClusterStore::new(crate::store::StoreConfig::default())
            .builtin("", "configmaps");
        assert!(extra_subresources(&cm).is_empty());
    }
}
