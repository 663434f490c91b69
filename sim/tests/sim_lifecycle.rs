//! Deletion lifecycles and server-side apply ownership through the HTTP API, asserting what
//! a real kube-apiserver v1.28 (+ kube-controller-manager and a kubelet) answers: graceful
//! pod deletion finished by the kubelet or a force delete, Foreground / Orphan / Background
//! propagation and the garbage collector, namespaces through `Terminating`, and apply
//! conflicts, `force`, field removal and the kind check.

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, WatchEvent, WatchParams};
use panoptes_sim::store::{LifecycleConfig, StoreConfig};
use panoptes_sim::{Sim, SimOptions};
use serde_json::{Value, json};

/// Generous for a loaded 2-core machine; every wait below is a poll that ends early.
const DEADLINE: Duration = Duration::from_secs(20);

fn sim_with(lifecycle: LifecycleConfig) -> Sim {
    Sim::start(SimOptions {
        store: StoreConfig {
            lifecycle,
            ..Default::default()
        },
        ..Default::default()
    })
    .expect("sim")
}

/// A raw request whose answer is JSON; returns the code and the parsed body.
async fn request(
    client: &kube::Client,
    method: &str,
    uri: &str,
    body: Option<(&str, Value)>,
) -> (u16, Value) {
    let text = body.as_ref().map(|(_, value)| value.to_string());
    let body = body
        .as_ref()
        .zip(text.as_deref())
        .map(|((content_type, _), text)| (*content_type, text));
    let (code, _, answer) = common::raw(client, method, uri, None, body).await;
    let value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer}: {e}"));
    (code, value)
}

async fn apply(client: &kube::Client, uri: &str, body: Value) -> (u16, Value) {
    request(
        client,
        "PATCH",
        uri,
        Some(("application/apply-patch+yaml", body)),
    )
    .await
}

/// Polls a GET until it answers `code`; panics after [`DEADLINE`].
async fn wait_for_code(client: &kube::Client, uri: &str, code: u16) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (got, body) = request(client, "GET", uri, None).await;
        if got == code {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{uri} still answers {got}, not {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The next watch event's type and object, within [`DEADLINE`].
async fn next_event<K, S>(stream: &mut S) -> (&'static str, K)
where
    S: futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin,
{
    let event = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("a watch event in time")
        .expect("the watch is open")
        .expect("a decodable event");
    match event {
        WatchEvent::Added(object) => ("ADDED", object),
        WatchEvent::Modified(object) => ("MODIFIED", object),
        WatchEvent::Deleted(object) => ("DELETED", object),
        other => panic!("unexpected {other:?}"),
    }
}

fn configmap(name: &str, owners: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "ownerReferences": owners}, "data": {"k": "v"}})
}

fn owner_ref(owner: &Value, block: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn a_scheduled_pod_stays_terminating_until_the_kubelet_removes_it() {
    let sim = sim_with(LifecycleConfig {
        kubelet_termination: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    let client = common::client(sim.cluster(0)).await;
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", 2);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rv = sim.cluster(0).store().resource_version().to_string();
    let mut events = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();

    let uri = "/api/v1/namespaces/default/pods/pod-00000";
    let (code, pod) = request(&client, "DELETE", uri, None).await;
    assert_eq!(code, 200, "{pod}");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(
        pod["metadata"]["deletionGracePeriodSeconds"], 30,
        "the pod's terminationGracePeriodSeconds"
    );
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    let (code, still) = request(&client, "GET", uri, None).await;
    assert_eq!(code, 200, "a terminating pod is still served: {still}");

    // The request's grace period wins over the pod's.
    let (code, other) = request(
        &client,
        "DELETE",
        "/api/v1/namespaces/default/pods/pod-00001?gracePeriodSeconds=7",
        None,
    )
    .await;
    assert_eq!(
        (
            code,
            other["metadata"]["deletionGracePeriodSeconds"].as_i64()
        ),
        (200, Some(7))
    );

    let (kind, marked) = next_event(&mut events).await;
    assert_eq!(kind, "MODIFIED");
    assert_eq!(marked.metadata.name.as_deref(), Some("pod-00000"));
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    // The other pod's mark, then the kubelet's force delete of each: MODIFIED (grace 0), DELETED.
    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        let (kind, pod) = next_event(&mut events).await;
        if kind == "DELETED" {
            assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(0));
            deleted.push(pod.metadata.name.expect("name"));
        } else {
            assert_eq!(kind, "MODIFIED");
        }
    }
    deleted.sort();
    assert_eq!(deleted, ["pod-00000", "pod-00001"]);
    wait_for_code(&client, uri, 404).await;
}

#[tokio::test]
async fn a_force_delete_removes_a_terminating_pod_at_once() {
    // The real default: the kubelet waits the whole 30 s grace period.
    let sim = sim_with(LifecycleConfig::default());
    let client = common::client(sim.cluster(0)).await;
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", 1);
    let uri = "/api/v1/namespaces/default/pods/pod-00000";
    let (code, _) = request(&client, "DELETE", uri, None).await;
    assert_eq!(code, 200);
    let (code, again) = request(&client, "DELETE", uri, None).await;
    assert_eq!(
        (
            code,
            again["metadata"]["deletionGracePeriodSeconds"].as_i64()
        ),
        (200, Some(30)),
        "a second DELETE answers the terminating pod unchanged"
    );
    let (code, forced) = request(
        &client,
        "DELETE",
        &format!("{uri}?gracePeriodSeconds=0"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{forced}");
    assert_eq!(forced["metadata"]["deletionGracePeriodSeconds"], 0);
    let (code, _) = request(&client, "GET", uri, None).await;
    assert_eq!(code, 404, "a force delete removes the pod at once");
}

#[tokio::test]
async fn an_unscheduled_pod_is_deleted_at_once() {
    let sim = sim_with(LifecycleConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let (code, _) = request(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(("application/json", pod)),
    )
    .await;
    assert_eq!(code, 201);
    let uri = "/api/v1/namespaces/default/pods/pending";
    let (code, deleted) = request(&client, "DELETE", uri, None).await;
    // status/200-delete-pod.json: the Pod, with grace 0.
    assert_eq!(
        (
            code,
            deleted["metadata"]["deletionGracePeriodSeconds"].as_i64()
        ),
        (200, Some(0))
    );
    let (code, _) = request(&client, "GET", uri, None).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents_that_block_it() {
    let sim = sim_with(LifecycleConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let (_, owner) = request(
        &client,
        "POST",
        CMS,
        Some(("application/json", configmap("owner", json!([])))),
    )
    .await;
    let mut held = configmap("held", json!([owner_ref(&owner, true)]));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let (code, _) = request(&client, "POST", CMS, Some(("application/json", held))).await;
    assert_eq!(code, 201);
    let (code, _) = request(
        &client,
        "POST",
        CMS,
        Some((
            "application/json",
            configmap("free", json!([owner_ref(&owner, false)])),
        )),
    )
    .await;
    assert_eq!(code, 201);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rv = sim.cluster(0).store().resource_version().to_string();
    let params = WatchParams::default().fields("metadata.name=owner");
    let mut events = cms.watch(&params, &rv).await.expect("watch").boxed();

    let (code, deleting) = request(
        &client,
        "DELETE",
        &format!("{CMS}/owner?propagationPolicy=Foreground"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{deleting}");
    assert_eq!(deleting["kind"], "ConfigMap", "the object, not a Status");
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());

    // Both dependents are deleted; "held" stays (its finalizer) and so blocks the owner.
    wait_for_code(&client, &format!("{CMS}/free"), 404).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, held) = request(&client, "GET", &format!("{CMS}/held"), None).await;
        if held["metadata"]["deletionTimestamp"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the collector never deleted held"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (code, waiting) = request(&client, "GET", &format!("{CMS}/owner"), None).await;
    assert_eq!(
        code, 200,
        "the owner waits for its blocking dependent: {waiting}"
    );

    let (code, _) = request(
        &client,
        "PATCH",
        &format!("{CMS}/held"),
        Some((
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": null}}),
        )),
    )
    .await;
    assert_eq!(code, 200);
    wait_for_code(&client, &format!("{CMS}/owner"), 404).await;
    let (kind, marked) = next_event(&mut events).await;
    assert_eq!(kind, "MODIFIED");
    assert!(marked.metadata.deletion_timestamp.is_some());
    loop {
        let (kind, _) = next_event(&mut events).await;
        if kind == "DELETED" {
            break;
        }
        assert_eq!(kind, "MODIFIED");
    }
}

#[tokio::test]
async fn orphan_deletion_clears_the_dependents_owner_references() {
    let sim = sim_with(LifecycleConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let (_, owner) = request(
        &client,
        "POST",
        CMS,
        Some(("application/json", configmap("owner", json!([])))),
    )
    .await;
    let (_, other) = request(
        &client,
        "POST",
        CMS,
        Some(("application/json", configmap("other", json!([])))),
    )
    .await;
    let refs = json!([owner_ref(&owner, true), owner_ref(&other, false)]);
    let (code, _) = request(
        &client,
        "POST",
        CMS,
        Some(("application/json", configmap("child", refs))),
    )
    .await;
    assert_eq!(code, 201);

    let (code, deleting) = request(
        &client,
        "DELETE",
        &format!("{CMS}/owner?propagationPolicy=Orphan"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(deleting["metadata"]["finalizers"], json!(["orphan"]));
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    wait_for_code(&client, &format!("{CMS}/owner"), 404).await;
    let (code, child) = request(&client, "GET", &format!("{CMS}/child"), None).await;
    assert_eq!(code, 200, "an orphaned dependent stays");
    assert_eq!(
        child["metadata"]["ownerReferences"],
        json!([owner_ref(&other, false)]),
        "only the reference to the deleted owner is removed"
    );
}

#[tokio::test]
async fn background_deletion_collects_the_dependents_of_a_removed_owner() {
    let sim = sim_with(LifecycleConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let (_, owner) = request(
        &client,
        "POST",
        CMS,
        Some(("application/json", configmap("owner", json!([])))),
    )
    .await;
    let (_, survivor) = request(
        &client,
        "POST",
        CMS,
        Some(("application/json", configmap("survivor", json!([])))),
    )
    .await;
    request(
        &client,
        "POST",
        CMS,
        Some((
            "application/json",
            configmap("only-child", json!([owner_ref(&owner, false)])),
        )),
    )
    .await;
    let shared = json!([owner_ref(&owner, false), owner_ref(&survivor, false)]);
    request(
        &client,
        "POST",
        CMS,
        Some(("application/json", configmap("shared-child", shared))),
    )
    .await;

    // The default policy: the owner goes at once (a Status for a ConfigMap).
    let (code, status) = request(&client, "DELETE", &format!("{CMS}/owner"), None).await;
    assert_eq!((code, status["kind"].as_str()), (200, Some("Status")));
    let (code, _) = request(&client, "GET", &format!("{CMS}/owner"), None).await;
    assert_eq!(code, 404);
    wait_for_code(&client, &format!("{CMS}/only-child"), 404).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (code, child) = request(&client, "GET", &format!("{CMS}/shared-child"), None).await;
        assert_eq!(
            code, 200,
            "a dependent with a remaining owner stays: {child}"
        );
        if child["metadata"]["ownerReferences"] == json!([owner_ref(&survivor, false)]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dangling reference stays: {child}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_deleted_namespace_is_terminating_until_its_contents_are_gone() {
    let sim = sim_with(LifecycleConfig {
        kubelet_termination: Some(Duration::from_millis(200)),
        namespace_cleanup_delay: Duration::from_millis(300),
    });
    let client = common::client(sim.cluster(0)).await;
    let (code, _) = request(
        &client,
        "POST",
        "/api/v1/namespaces",
        Some(("application/json", json!({"metadata": {"name": "doomed"}}))),
    )
    .await;
    assert_eq!(code, 201);
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "doomed", 1);
    let doomed_cms = "/api/v1/namespaces/doomed/configmaps";
    request(
        &client,
        "POST",
        doomed_cms,
        Some(("application/json", configmap("content", json!([])))),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "doomed");
    let rv = sim.cluster(0).store().resource_version().to_string();
    let mut pod_events = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();

    let (code, namespace) = request(&client, "DELETE", "/api/v1/namespaces/doomed", None).await;
    assert_eq!((code, namespace["kind"].as_str()), (200, Some("Namespace")));
    assert_eq!(namespace["status"]["phase"], "Terminating");
    assert_eq!(namespace["spec"]["finalizers"], json!(["kubernetes"]));
    assert!(namespace["metadata"]["deletionTimestamp"].is_string());
    assert!(
        namespace["metadata"]
            .get("deletionGracePeriodSeconds")
            .is_none()
    );

    let (code, refused) = request(
        &client,
        "POST",
        doomed_cms,
        Some(("application/json", configmap("late", json!([])))),
    )
    .await;
    assert_eq!(code, 403, "{refused}");
    assert_eq!(refused["reason"], "Forbidden");
    assert_eq!(
        refused["message"],
        "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    assert_eq!(
        refused["details"]["causes"],
        json!([{"reason": "NamespaceTerminating", "message": "namespace doomed is being terminated", "field": "metadata.namespace"}])
    );

    // Its pod is deleted gracefully (MODIFIED with the pod's grace), then by the kubelet.
    let (kind, pod) = next_event(&mut pod_events).await;
    assert_eq!(kind, "MODIFIED");
    assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(30));
    loop {
        let (kind, _) = next_event(&mut pod_events).await;
        if kind == "DELETED" {
            break;
        }
    }
    let (code, immortal) = request(&client, "DELETE", "/api/v1/namespaces/default", None).await;
    assert_eq!(code, 403);
    assert_eq!(
        immortal["message"],
        "namespaces \"default\" is forbidden: this namespace may not be deleted"
    );
    let gone = wait_for_code(&client, "/api/v1/namespaces/doomed", 404).await;
    assert_eq!(gone["reason"], "NotFound");
    let (code, _) = request(&client, "GET", &format!("{doomed_cms}/content"), None).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn server_side_apply_conflicts_force_and_removal_answer_as_the_real_server() {
    let sim = sim_with(LifecycleConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa-demo"}, "data": data});
    let as_demo = format!("{CMS}/ssa-demo?fieldManager=kube-rs-demo");
    let as_other = format!("{CMS}/ssa-demo?fieldManager=other");

    let (code, _) = apply(&client, &as_demo, cm(json!({"a": "1", "b": "2"}))).await;
    assert_eq!(code, 201);
    // managedfields/6-ssa-update-other-manager-conflict.json (copied to fixtures/), exactly.
    let (code, conflict) = apply(&client, &as_other, cm(json!({"a": "2"}))).await;
    assert_eq!(code, 409);
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/ssa-conflict-409.json")).expect("fixture");
    assert_eq!(conflict, fixture);

    // Two conflicts with one manager.
    let (code, two) = apply(&client, &as_other, cm(json!({"a": "2", "b": "3"}))).await;
    assert_eq!(code, 409);
    assert_eq!(
        two["message"],
        "Apply failed with 2 conflicts: conflicts with \"kube-rs-demo\":\n- .data.a\n- .data.b"
    );

    // The same value shares ownership; force takes it.
    let (code, _) = apply(&client, &as_other, cm(json!({"b": "2"}))).await;
    assert_eq!(code, 200);
    let (code, forced) = apply(
        &client,
        &format!("{as_other}&force=true"),
        cm(json!({"a": "9", "b": "2"})),
    )
    .await;
    assert_eq!((code, forced["data"]["a"].as_str()), (200, Some("9")));
    let owners = |object: &Value, manager: &str| {
        object["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .find(|e| e["manager"] == manager)
            .map(|e| e["fieldsV1"].clone())
    };
    assert_eq!(
        owners(&forced, "kube-rs-demo"),
        Some(json!({"f:data": {"f:b": {}}}))
    );
    assert_eq!(
        owners(&forced, "other"),
        Some(json!({"f:data": {"f:a": {}, "f:b": {}}}))
    );

    // An Update manager is named with its API version.
    let (code, _) = request(
        &client,
        "PATCH",
        &format!("{CMS}/ssa-demo?fieldManager=editor"),
        Some(("application/merge-patch+json", json!({"data": {"c": "3"}}))),
    )
    .await;
    assert_eq!(code, 200);
    let (code, update_conflict) = apply(&client, &as_demo, cm(json!({"b": "2", "c": "4"}))).await;
    assert_eq!(code, 409);
    assert_eq!(
        update_conflict["message"],
        "Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.c"
    );

    // Dropping a field removes it only when no other manager owns it.
    let (code, _) = apply(&client, &as_other, cm(json!({"a": "9"}))).await;
    assert_eq!(code, 200);
    let (_, now) = request(&client, "GET", &format!("{CMS}/ssa-demo"), None).await;
    assert_eq!(
        now["data"],
        json!({"a": "9", "b": "2", "c": "3"}),
        "b is still kube-rs-demo's"
    );
    let nothing =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa-demo"}});
    let (code, dropped) = apply(&client, &as_demo, nothing).await;
    assert_eq!(code, 200);
    assert_eq!(
        dropped["data"],
        json!({"a": "9", "c": "3"}),
        "b had no other owner"
    );
}

#[tokio::test]
async fn an_apply_of_another_kind_is_a_bad_request() {
    let sim = sim_with(LifecycleConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let (code, status) = apply(&client, &format!("{CMS}/x?fieldManager=m"), secret).await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(status["message"], "invalid object type: /v1, Kind=Secret");
    let wrong_group =
        json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let (code, status) = apply(&client, &format!("{CMS}/x?fieldManager=m"), wrong_group).await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "invalid object type: apps/v1, Kind=ConfigMap"
    );
}
