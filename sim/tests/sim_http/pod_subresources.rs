//! Item 11: the pod subresources controllers use (`binding`, `eviction`,
//! `ephemeralcontainers`) and those that need a kubelet (`log`, `exec`, `proxy`).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::{common, parse, post, sim_with_configmaps};

fn pod(name: &str, containers: &[&str]) -> Pod {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "nginx"}))
        .collect();
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}})).expect("pod")
}

#[tokio::test]
async fn pods_bind_once_and_evict_as_the_real_server() {
    let (_sim, client) = sim_with_configmaps(0).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fx");
    pods.create(&PostParams::default(), &pod("web", &["app"]))
        .await
        .expect("create");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web", "annotations": {"scheduled-by": "test"}}, "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}});
    let (code, answer) = post(&client, "/api/v1/namespaces/fx/pods/web/binding", &binding).await;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(
        answer,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    let bound = pods.get("web").await.expect("get");
    assert_eq!(
        bound.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("node-1")
    );
    assert_eq!(
        bound
            .metadata
            .annotations
            .as_ref()
            .map(|a| a["scheduled-by"].as_str()),
        Some("test")
    );
    let scheduled = bound.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        scheduled
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True"),
        "{scheduled:?}"
    );

    let (code, answer) = post(&client, "/api/v1/namespaces/fx/pods/web/binding", &binding).await;
    assert_eq!(code, 409, "{answer}");
    assert_eq!(
        answer["message"],
        "Operation cannot be fulfilled on pods/binding \"web\": pod web is already assigned to node \"node-1\""
    );
    // A pod being deleted (a finalizer holds it) cannot be bound.
    let mut held = pod("held", &["app"]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    pods.create(&PostParams::default(), &held)
        .await
        .expect("create");
    pods.delete("held", &kube::api::DeleteParams::default())
        .await
        .expect("delete");
    let bind_held = json!({"metadata": {"name": "held"}, "target": {"name": "node-1"}});
    let (code, answer) = post(
        &client,
        "/api/v1/namespaces/fx/pods/held/binding",
        &bind_held,
    )
    .await;
    assert_eq!(code, 409, "{answer}");
    assert_eq!(
        answer["message"],
        "Operation cannot be fulfilled on pods/binding \"held\": pod held is being deleted, cannot be assigned to a host"
    );
    let wrong_name = json!({"metadata": {"name": "other"}, "target": {"name": "node-1"}});
    assert_eq!(
        post(
            &client,
            "/api/v1/namespaces/fx/pods/web/binding",
            &wrong_name
        )
        .await
        .0,
        400
    );
    // binding is create-only; an unknown pod subresource is a 404 Status.
    assert_eq!(
        common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/pods/web/binding",
            None,
            None
        )
        .await
        .0,
        405
    );
    assert_eq!(
        common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/pods/web/nonsense",
            None,
            None
        )
        .await
        .0,
        404
    );

    // Eviction (no PodDisruptionBudgets in sim): 201 Success, and the pod is deleted.
    let status = pods
        .evict("web", &kube::api::EvictParams::default())
        .await
        .expect("evict");
    assert_eq!(status.code, 201);
    let gone_or_terminating = match pods.get_opt("web").await.expect("get") {
        None => true,
        Some(p) => p.metadata.deletion_timestamp.is_some(),
    };
    assert!(gone_or_terminating, "an evicted pod is deleted");
    let (code, answer) = post(
        &client,
        "/api/v1/namespaces/fx/pods/web/eviction",
        &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web"}}),
    )
    .await;
    let gone = code == 404 && answer["reason"] == "NotFound";
    assert!(gone || code == 201, "{code} {answer}");
}

#[tokio::test]
async fn pod_streams_answer_as_a_server_without_kubelets() {
    let (_sim, client) = sim_with_configmaps(0).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fx");
    pods.create(&PostParams::default(), &pod("one", &["app"]))
        .await
        .expect("create");
    pods.create(&PostParams::default(), &pod("two", &["app", "sidecar"]))
        .await
        .expect("create");
    let get = |uri: &'static str| {
        let client = client.clone();
        async move {
            let (code, _, text) = common::raw(&client, "GET", uri, None, None).await;
            (code, text)
        }
    };
    // Not scheduled: no logs yet, no host to stream from.
    assert_eq!(
        get("/api/v1/namespaces/fx/pods/one/log").await,
        (200, String::new())
    );
    let (code, text) = get("/api/v1/namespaces/fx/pods/two/log").await;
    assert_eq!(code, 400);
    assert_eq!(
        parse(&text)["message"],
        "a container name must be specified for pod two, choose one of: [app sidecar]"
    );
    let (code, text) = get("/api/v1/namespaces/fx/pods/one/exec?command=ls").await;
    assert_eq!(
        (code, parse(&text)["message"].as_str()),
        (400, Some("pod one does not have a host assigned"))
    );
    let (code, text) = get("/api/v1/namespaces/fx/pods/one/proxy").await;
    assert_eq!(
        (code, parse(&text)["message"].as_str()),
        (400, Some("address not allowed"))
    );

    // Scheduled on a node that does not exist: 404 for the node.
    let binding =
        json!({"metadata": {"name": "one"}, "target": {"kind": "Node", "name": "node-x"}});
    assert_eq!(
        post(&client, "/api/v1/namespaces/fx/pods/one/binding", &binding)
            .await
            .0,
        201
    );
    let (code, text) = get("/api/v1/namespaces/fx/pods/one/log").await;
    assert_eq!(
        (code, parse(&text)["message"].as_str()),
        (404, Some("nodes \"node-x\" not found"))
    );
    // The node exists but no kubelet answers.
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-x"}});
    assert_eq!(post(&client, "/api/v1/nodes", &node).await.0, 201);
    let addresses =
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.9.9.9"}]}});
    let (code, _, text) = common::raw(
        &client,
        "PATCH",
        "/api/v1/nodes/node-x/status",
        None,
        Some(("application/merge-patch+json", &addresses.to_string())),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let (code, text) = get("/api/v1/namespaces/fx/pods/one/exec?command=ls").await;
    assert_eq!(
        (code, parse(&text)["message"].as_str()),
        (400, Some("Upgrade request required"))
    );
    let (code, text) = get("/api/v1/namespaces/fx/pods/one/log").await;
    assert_eq!(code, 500, "{text}");
    assert!(
        parse(&text)["message"]
            .as_str()
            .unwrap()
            .contains("10.9.9.9:10250"),
        "{text}"
    );

    // ephemeralcontainers: the pod; a write changes only spec.ephemeralContainers.
    let (code, text) = get("/api/v1/namespaces/fx/pods/one/ephemeralcontainers").await;
    assert_eq!((code, parse(&text)["kind"].as_str()), (200, Some("Pod")));
    let patch = json!({"metadata": {"labels": {"dropped": "yes"}}, "spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox"}]}});
    let (code, _, text) = common::raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/fx/pods/one/ephemeralcontainers",
        None,
        Some(("application/merge-patch+json", &patch.to_string())),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let patched = parse(&text);
    assert_eq!(patched["spec"]["ephemeralContainers"][0]["name"], "debug");
    assert!(
        patched["metadata"]["labels"].get("dropped").is_none(),
        "{text}"
    );
}
