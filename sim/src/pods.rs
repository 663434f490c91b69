//! Realistic pods, shaped like `shared/fixtures/pod-realistic.json`: what a Deployment's
//! pod looks like once kube-controller-manager, kube-scheduler and the kubelet have written
//! it (owner reference to a ReplicaSet, two containers with resources, probes, env and
//! mounts, the admission-added volume and tolerations, a Running status with conditions and
//! container statuses, and the three managedFields entries those writers leave).
//!
//! Everything is a pure function of `(namespace, name, seq)`, so benchmarks and tests see the
//! same bytes on every run.

use serde_json::{Value, json};

use crate::store::{ClusterStore, Status, WriteOptions, field_set};

/// Nodes the pods spread over (`node-0` .. `node-49`).
const NODES: u64 = 50;
/// Deployments the pods belong to (`app-0` .. `app-19`), so label selectors pick subsets.
const APPS: u64 = 20;
/// When the simulated controllers wrote the pods: fixed, so objects are deterministic.
const CREATED: &str = "2026-11-20T09:14:07Z";
const STARTED: &str = "2026-11-20T09:14:09Z";
const READY: &str = "2026-11-20T09:14:12Z";

/// A realistic pod (labels, owner reference, 2 containers with resources and probes, status
/// with conditions, managedFields): 3–8 KiB of compact JSON, about 40 % of it managedFields.
/// `seq` varies names, labels, node and IPs deterministically.
pub fn realistic_pod(namespace: &str, name: &str, seq: u64) -> Value {
    let app = format!("app-{}", seq % APPS);
    let hash = format!("{:09x}", mix(seq % APPS) & 0xf_ffff_ffff);
    let replica_set = format!("{app}-{hash}");
    let rs_uid = uid_from(mix((seq % APPS) ^ 0x5eed));
    let node = format!("node-{}", seq % NODES);
    let pod_ip = format!("10.244.{}.{}", (seq / 250) % 256, seq % 250 + 2);
    let host_ip = format!("172.18.0.{}", seq % NODES + 2);
    let metadata = json!({
        "name": name,
        "generateName": format!("{replica_set}-"),
        "namespace": namespace,
        "uid": uid_from(mix(seq ^ 0xa11ce) ^ name.len() as u64),
        "creationTimestamp": CREATED,
        "labels": {
            "app": app,
            "pod-template-hash": hash,
            "tier": if seq.is_multiple_of(3) { "frontend" } else { "backend" },
        },
        "annotations": {
            "prometheus.io/port": "9090",
            "prometheus.io/scrape": "true",
        },
        "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set, "uid": rs_uid,
            "controller": true, "blockOwnerDeletion": true,
        }],
    });
    let volume = format!("kube-api-access-{}", short_suffix(seq));
    let spec = json!({
        "containers": [
            {
                "name": "app",
                "image": format!("registry.example.com/shop/{app}:2.14.{}", seq % 7),
                "imagePullPolicy": "IfNotPresent",
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                ],
                "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                "livenessProbe": {"failureThreshold": 3, "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1},
                "readinessProbe": {"failureThreshold": 3, "httpGet": {"path": "/readyz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5, "successThreshold": 1, "timeoutSeconds": 1},
                "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "volumeMounts": [
                    {"mountPath": "/etc/checkout", "name": "config", "readOnly": true},
                    {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": volume, "readOnly": true},
                ],
            },
            {
                "name": "metrics-sidecar",
                "image": "registry.example.com/observability/exporter:0.9.1",
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 9090, "name": "metrics", "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": volume, "readOnly": true}],
            },
        ],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": true,
        "nodeName": node,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": "default",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
        "tolerations": [
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
        ],
        "volumes": [
            {"name": "config", "configMap": {"defaultMode": 420, "name": format!("{app}-config")}},
            {"name": volume, "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}},
            ]}},
        ],
    });
    let condition = |kind: &str, at: &str| json!({"lastProbeTime": null, "lastTransitionTime": at, "status": "True", "type": kind});
    let scheduled = condition("PodScheduled", CREATED);
    let conditions = Value::Array(vec![
        condition("PodReadyToStartContainers", STARTED),
        condition("Initialized", CREATED),
        condition("Ready", READY),
        condition("ContainersReady", READY),
    ]);
    let container_statuses = Value::Array(vec![
        container_status(
            "app",
            &format!("registry.example.com/shop/{app}:2.14.{}", seq % 7),
            seq,
            STARTED,
        ),
        container_status(
            "metrics-sidecar",
            "registry.example.com/observability/exporter:0.9.1",
            seq ^ 0xffff,
            "2026-11-20T09:14:10Z",
        ),
    ]);
    let mut kubelet_status = json!({
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "phase": "Running",
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": CREATED,
    });
    kubelet_status["conditions"] = conditions;
    kubelet_status["containerStatuses"] = container_statuses;
    let owned_metadata = json!({
        "generateName": metadata["generateName"], "labels": metadata["labels"],
        "annotations": metadata["annotations"], "ownerReferences": metadata["ownerReferences"],
    });
    let mut status = kubelet_status.clone();
    status["conditions"]
        .as_array_mut()
        .expect("built above")
        .push(scheduled.clone());
    status["qosClass"] = json!("Burstable");
    // Large parts are moved into place: `json!` would deep-copy every interpolated Value,
    // which made building a pod cost more than storing it.
    let controller_fields = field_set(&object([
        ("metadata", owned_metadata),
        ("spec", controller_spec(&spec)),
    ]));
    let scheduler_fields = field_set(&json!({"status": {"conditions": [scheduled]}}));
    let kubelet_fields = field_set(&object([("status", kubelet_status)]));
    let managed_fields = Value::Array(vec![
        entry("kube-controller-manager", None, CREATED, controller_fields),
        entry("kube-scheduler", Some("status"), CREATED, scheduler_fields),
        entry("kubelet", Some("status"), READY, kubelet_fields),
    ]);
    let mut pod = object([
        ("kind", json!("Pod")),
        ("apiVersion", json!("v1")),
        ("metadata", metadata),
        ("spec", spec),
        ("status", status),
    ]);
    pod["metadata"]["managedFields"] = managed_fields;
    pod
}

/// A JSON object of `fields`, moved in (no copy).
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// Creates `count` realistic pods `pod-00000`.. in `namespace` (created if missing), directly in
/// the store (no HTTP). Returns the resourceVersion after the last write.
pub fn seed(store: &ClusterStore, namespace: &str, count: usize) -> u64 {
    ensure_namespace(store, namespace);
    let pods = store.builtin("", "pods");
    for seq in 0..count as u64 {
        let name = pod_name(seq);
        match store.insert_as_is(&pods, realistic_pod(namespace, &name, seq)) {
            Ok(_) => {}
            // Seeding twice keeps the pods that are there.
            Err(status) if status.code == 409 => {}
            Err(status) => {
                tracing::warn!(pod = %name, message = %status.message, "seeding a pod failed")
            }
        }
    }
    store.resource_version()
}

/// Creates the Deployments (`app-0`..) that `count` pods seeded by [`seed`] in `namespace`
/// name in their labels, each with as many replicas as it has pods there and a status saying
/// they are all ready, so that a `deployments` watch has something to show.
pub fn seed_deployments(store: &ClusterStore, namespace: &str, count: usize) {
    let deployments = store.builtin("apps", "deployments");
    for app in 0..APPS.min(count as u64) {
        let replicas = (count as u64 - app).div_ceil(APPS);
        match store.insert_as_is(&deployments, deployment(namespace, app, replicas)) {
            Ok(_) | Err(Status { code: 409, .. }) => {}
            Err(status) => {
                tracing::warn!(app, message = %status.message, "seeding a deployment failed")
            }
        }
    }
}

/// Deployment `app-{app}` as kube-controller-manager leaves it once its pods are ready.
fn deployment(namespace: &str, app: u64, replicas: u64) -> Value {
    let name = format!("app-{app}");
    let labels = json!({"app": name});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_from(mix(app ^ 0xde_910e)),
            "generation": 1,
            "creationTimestamp": CREATED,
            "labels": labels,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "app",
                    "image": format!("registry.example.com/shop/{name}:2.14.0"),
                }]},
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{
                "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
                "lastUpdateTime": READY, "lastTransitionTime": READY,
            }],
        },
    })
}

/// `pod-00042`: the names `seed` gives.
pub fn pod_name(seq: u64) -> String {
    format!("pod-{seq:05}")
}

/// Creates the namespace unless it exists.
pub fn ensure_namespace(store: &ClusterStore, namespace: &str) {
    let namespaces = store.builtin("", "namespaces");
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    match store.create(&namespaces, None, ns, &WriteOptions::default()) {
        Ok(_) => {}
        Err(Status { code: 409, .. }) => {}
        Err(status) => {
            tracing::warn!(%namespace, message = %status.message, "creating the namespace failed")
        }
    }
}

/// The spec as kube-controller-manager wrote it: without what admission plugins and the
/// scheduler's binding added (the service-account volume and mounts, tolerations, priority,
/// nodeName), which therefore have no manager.
fn controller_spec(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let map = spec.as_object_mut().expect("built as an object");
    for admitted in ["tolerations", "priority", "preemptionPolicy", "nodeName"] {
        map.remove(admitted);
    }
    let not_admitted = |v: &Value| {
        !v["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-"))
    };
    if let Some(volumes) = map.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes.retain(not_admitted);
    }
    for container in map
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let mounts = container
            .get_mut("volumeMounts")
            .and_then(Value::as_array_mut);
        if let Some(mounts) = mounts {
            mounts.retain(not_admitted);
            if mounts.is_empty() {
                container.as_object_mut().map(|c| c.remove("volumeMounts"));
            }
        }
    }
    spec
}

fn container_status(name: &str, image: &str, seq: u64, started: &str) -> Value {
    json!({
        "containerID": format!("containerd://{:016x}{:016x}{:016x}{:016x}", mix(seq), mix(seq + 1), mix(seq + 2), mix(seq + 3)),
        "image": image,
        "imageID": format!("{}@sha256:{:016x}{:016x}{:016x}{:016x}", image.split(':').next().unwrap_or(image), mix(seq + 4), mix(seq + 5), mix(seq + 6), mix(seq + 7)),
        "lastState": {},
        "name": name,
        "ready": true,
        "restartCount": 0,
        "started": true,
        "state": {"running": {"startedAt": started}},
    })
}

fn entry(manager: &str, subresource: Option<&str>, time: &str, fields: Value) -> Value {
    let mut entry = json!({
        "apiVersion": "v1", "fieldsType": "FieldsV1",
        "manager": manager, "operation": "Update", "time": time,
    });
    entry["fieldsV1"] = fields;
    if let Some(sub) = subresource {
        entry["subresource"] = json!(sub);
    }
    entry
}

/// splitmix64: a fixed, well-spread hash of `seq` for IDs that must look random.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn uid_from(bits: u64) -> String {
    let low = mix(bits);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        bits >> 32,
        (bits >> 16) & 0xffff,
        bits & 0xfff,
        0x8000 | (low >> 48) & 0x3fff,
        low & 0xffff_ffff_ffff
    )
}

fn short_suffix(seq: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bits = mix(seq);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ListOptions, StoreConfig};

    #[test]
    fn a_realistic_pod_is_between_3_and_8_kib_with_about_40_percent_managed_fields() {
        let pod = realistic_pod("shop", "pod-00007", 7);
        let total = serde_json::to_vec(&pod).unwrap().len();
        let managed = serde_json::to_vec(&pod["metadata"]["managedFields"])
            .unwrap()
            .len();
        let share = managed as f64 / total as f64;
        println!("realistic pod: {total} bytes, managedFields {share:.2}");
        assert!((3 * 1024..=8 * 1024).contains(&total), "size {total}");
        assert!(
            (0.30..=0.50).contains(&share),
            "managedFields share {share:.2} of {total}"
        );
        assert_eq!(
            pod["metadata"]["managedFields"].as_array().unwrap().len(),
            3
        );
    }

    #[test]
    fn realistic_pods_are_deterministic_and_vary_with_seq() {
        assert_eq!(realistic_pod("a", "p", 3), realistic_pod("a", "p", 3));
        let one = realistic_pod("a", "p", 1);
        let two = realistic_pod("a", "p", 2);
        assert_eq!(one["spec"]["nodeName"], "node-1");
        assert_ne!(one["status"]["podIP"], two["status"]["podIP"]);
        assert!(one["metadata"]["labels"]["pod-template-hash"].is_string());
        assert_eq!(one["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    }

    #[test]
    fn seed_creates_the_namespace_and_the_pods() {
        let store = ClusterStore::new(StoreConfig::default());
        let rv = seed(&store, "bench", 25);
        let pods = store.builtin("", "pods");
        let page = store
            .list(&pods, Some("bench"), &Default::default())
            .unwrap();
        assert_eq!(page.items.len(), 25);
        assert_eq!(rv, store.resource_version());
        assert_eq!(page.items[0].value()["metadata"]["name"], "pod-00000");
    }

    #[test]
    fn seeded_deployments_own_exactly_the_seeded_pods() {
        let store = ClusterStore::new(StoreConfig::default());
        seed(&store, "shop", 45);
        seed_deployments(&store, "shop", 45);
        let (pods, deployments) = (
            store.builtin("", "pods"),
            store.builtin("apps", "deployments"),
        );
        let page = store
            .list(&deployments, Some("shop"), &Default::default())
            .unwrap();
        assert_eq!(page.items.len(), APPS as usize);
        let mut total = 0;
        for item in &page.items {
            let deployment = &item.value();
            let name = deployment["metadata"]["name"].as_str().unwrap();
            let selected = ListOptions {
                label_selector: Some(format!("app={name}")),
                ..Default::default()
            };
            let owned = store
                .list(&pods, Some("shop"), &selected)
                .unwrap()
                .items
                .len();
            assert_eq!(deployment["spec"]["replicas"], owned as u64, "{name}");
            assert_eq!(
                deployment["status"]["readyReplicas"], owned as u64,
                "{name}"
            );
            total += owned;
        }
        assert_eq!(total, 45);
    }
}
