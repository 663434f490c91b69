//! A real `kube::Client` over HTTPS against the sim: paginated lists, watch resumes, 410
//! after compaction, bookmarks, WatchList streams, selectors, and error responses parsed by
//! kube as the same `Status` a real v1.28 server sends.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use panoptes_sim::store::StoreConfig;
use panoptes_sim::{Sim, SimOptions};
use serde_json::json;

fn configmap(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).expect("configmap")
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Next watch event within 5 s (None when the stream ended).
async fn next<S: futures::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a watch event within 5 s")
}

#[tokio::test]
async fn paginated_list_is_one_consistent_snapshot_under_concurrent_writes() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let store = sim.cluster(0).store();
    panoptes_sim::pods::seed(&store, "paged", 300);
    let pods: Api<Pod> = Api::namespaced(common::client(sim.cluster(0)).await, "paged");

    let writer = std::thread::spawn(move || panoptes_sim::pods::seed(&store, "paged-other", 200));
    let mut names = BTreeSet::new();
    let mut params = ListParams::default().limit(50);
    let mut snapshot_rv = None;
    let mut pages = 0;
    loop {
        let page = pods.list(&params).await.expect("page");
        pages += 1;
        let rv = page
            .metadata
            .resource_version
            .clone()
            .expect("list resourceVersion");
        assert_eq!(
            snapshot_rv.get_or_insert(rv.clone()),
            &rv,
            "every page is read from the first page's snapshot"
        );
        for pod in page.items {
            assert!(
                names.insert(pod.metadata.name.expect("name")),
                "no pod twice"
            );
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    writer.join().expect("writer");
    assert_eq!((names.len(), pages), (300, 6));
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cms: Api<ConfigMap> = Api::namespaced(common::client(sim.cluster(0)).await, "default");
    cms.create(&PostParams::default(), &configmap("before", json!({})))
        .await
        .expect("create");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    cms.create(&PostParams::default(), &configmap("after-1", json!({})))
        .await
        .expect("create");
    cms.create(&PostParams::default(), &configmap("after-2", json!({})))
        .await
        .expect("create");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut added = Vec::new();
    while added.len() < 2 {
        match next(&mut stream)
            .await
            .expect("stream open")
            .expect("event")
        {
            WatchEvent::Added(cm) => added.push(cm.metadata.name.expect("name")),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        added,
        ["after-1", "after-2"],
        "only what came after the resourceVersion"
    );
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_410_expired() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cms: Api<ConfigMap> = Api::namespaced(common::client(sim.cluster(0)).await, "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    cms.create(&PostParams::default(), &configmap("later", json!({})))
        .await
        .expect("create");
    sim.cluster(0).faults().compact();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("200 with an ERROR event")
        .boxed();
    match next(&mut stream).await.expect("an event") {
        Ok(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }
    assert!(
        next(&mut stream).await.is_none(),
        "the server ends the stream after the ERROR event"
    );
}

#[tokio::test]
async fn bookmarks_arrive_on_watches_that_allow_them() {
    let options = SimOptions {
        store: StoreConfig {
            bookmark_interval: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    };
    let sim = Sim::start(options).expect("sim");
    let cms: Api<ConfigMap> = Api::namespaced(common::client(sim.cluster(0)).await, "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    // A v1.28 server sends a periodic bookmark only when the resource changed since the
    // watch's resourceVersion.
    cms.create(&PostParams::default(), &configmap("change", json!({})))
        .await
        .expect("create");
    match next(&mut stream).await.expect("an event").expect("event") {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("change")),
        other => panic!("expected the ADDED, got {other:?}"),
    }
    match next(&mut stream).await.expect("an event").expect("event") {
        WatchEvent::Bookmark(bookmark) => {
            assert_eq!(
                (
                    bookmark.types.kind.as_str(),
                    bookmark.types.api_version.as_str()
                ),
                ("ConfigMap", "v1")
            );
            assert!(
                bookmark
                    .metadata
                    .resource_version
                    .parse::<u64>()
                    .expect("numeric rv")
                    >= rv.parse::<u64>().expect("rv")
            );
        }
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_list_stream_ends_its_initial_events_with_an_annotated_bookmark() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cms: Api<ConfigMap> = Api::namespaced(common::client(sim.cluster(0)).await, "default");
    for name in ["a", "b"] {
        cms.create(&PostParams::default(), &configmap(name, json!({})))
            .await
            .expect("create");
    }
    let mut stream = cms
        .watch(&WatchParams::streaming_lists(), "0")
        .await
        .expect("watch-list")
        .boxed();
    let mut added = BTreeSet::new();
    loop {
        match next(&mut stream).await.expect("an event").expect("event") {
            WatchEvent::Added(cm) => {
                added.insert(cm.metadata.name.expect("name"));
            }
            WatchEvent::Bookmark(bookmark) => {
                assert_eq!(
                    bookmark
                        .metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        added,
        BTreeSet::from([
            "a".to_string(),
            "b".to_string(),
            "kube-root-ca.crt".to_string()
        ])
    );
}

#[tokio::test]
async fn watch_label_selectors_filter_events() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cms: Api<ConfigMap> = Api::namespaced(common::client(sim.cluster(0)).await, "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(&WatchParams::default().labels("team=blue"), &rv)
        .await
        .expect("watch")
        .boxed();
    cms.create(
        &PostParams::default(),
        &configmap("red-1", json!({"team": "red"})),
    )
    .await
    .expect("create");
    cms.create(
        &PostParams::default(),
        &configmap("blue-1", json!({"team": "blue"})),
    )
    .await
    .expect("create");
    match next(&mut stream).await.expect("an event").expect("event") {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("blue-1")),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn errors_reach_kube_as_the_real_status() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cluster = sim.cluster(0);
    let client = common::client(cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let wrong_token = cluster
        .kubeconfig_yaml()
        .replace(&cluster.token(), "not-the-token");
    let intruder: Api<ConfigMap> = Api::namespaced(
        common::client_from_yaml(&wrong_token, "sim-1").await,
        "default",
    );
    assert_eq!(
        api_error(intruder.list(&ListParams::default()).await),
        (401, "Unauthorized".into())
    );

    cluster.faults().forbid("configmaps");
    assert_eq!(
        api_error(cms.list(&ListParams::default()).await),
        (403, "Forbidden".into())
    );
    cluster.faults().allow("configmaps");

    assert_eq!(
        api_error(cms.get("missing").await),
        (404, "NotFound".into())
    );
    cms.create(&PostParams::default(), &configmap("dup", json!({})))
        .await
        .expect("create");
    assert_eq!(
        api_error(
            cms.create(&PostParams::default(), &configmap("dup", json!({})))
                .await
        ),
        (409, "AlreadyExists".into())
    );
    assert_eq!(
        api_error(
            cms.create(&PostParams::default(), &configmap("Bad_Name", json!({})))
                .await
        ),
        (422, "Invalid".into())
    );

    let no_retry: Api<ConfigMap> = Api::namespaced(
        common::client_with_retry(&cluster.kubeconfig_yaml(), "sim-1", false).await,
        "default",
    );
    cluster.faults().fail_next(1, 429);
    assert_eq!(
        api_error(no_retry.get("dup").await),
        (429, "TooManyRequests".into())
    );
    no_retry
        .get("dup")
        .await
        .expect("the fault was for one request only");
    cluster.faults().fail_next(1, 500);
    assert_eq!(
        api_error(no_retry.get("dup").await),
        (500, "InternalError".into())
    );

    // Exact shapes a client cannot see through kube's types.
    let (code, content_type, body) = common::raw(
        &client,
        "GET",
        "/apis/foo.example/v1/namespaces/fx/foos",
        None,
        None,
    )
    .await;
    assert_eq!(
        (code, content_type.as_str(), body.trim()),
        (404, "text/plain; charset=utf-8", "404 page not found")
    );
    let (code, _, body) = common::raw(
        &client,
        "PUT",
        "/api/v1/namespaces/default/configmaps",
        None,
        Some(("application/json", "{}")),
    )
    .await;
    assert_eq!(code, 405, "{body}");
    let (code, _, body) = common::raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/dup",
        None,
        Some(("text/plain", "{}")),
    )
    .await;
    assert_eq!(code, 415, "{body}");
    let (code, _, body) = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        Some("text/html"),
        None,
    )
    .await;
    assert_eq!(code, 406, "{body}");
    assert!(body.contains("Available representations"), "{body}");
}

#[tokio::test]
async fn anonymous_requests_see_only_public_info() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cluster = sim.cluster(0);
    let anonymous_yaml = cluster
        .kubeconfig_yaml()
        .replace(&format!("    token: {}\n", cluster.token()), "    {}\n");
    let anonymous = common::client_from_yaml(
        &anonymous_yaml.replace("  user:\n    {}\n", "  user: {}\n"),
        "sim-1",
    )
    .await;
    let (code, _, body) = common::raw(&anonymous, "GET", "/version", None, None).await;
    assert_eq!(code, 200, "{body}");
    let (code, _, body) =
        common::raw(&anonymous, "GET", "/api/v1/namespaces/fx/pods", None, None).await;
    assert_eq!(code, 403);
    let status: serde_json::Value = serde_json::from_str(&body).expect("Status");
    assert_eq!(
        status["message"],
        r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "fx""#
    );
    let (code, _, body) = common::raw(&anonymous, "GET", "/api", None, None).await;
    assert_eq!(code, 403, "{body}");
}

#[tokio::test]
async fn tables_follow_the_real_server_shape() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let client = common::client(sim.cluster(0)).await;
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "t", 3);
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (code, content_type, body) = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/t/pods?limit=2",
        Some(accept),
        None,
    )
    .await;
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    let table: serde_json::Value = serde_json::from_str(&body).expect("table");
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"][1]["name"], "Ready");
    assert_eq!(table["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(table["metadata"]["remainingItemCount"], 1);
    assert!(table["metadata"]["continue"].is_string());
    let (_, _, body) = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/t/pods?includeObject=Object",
        Some(accept),
        None,
    )
    .await;
    let table: serde_json::Value = serde_json::from_str(&body).expect("table");
    assert_eq!(table["rows"][0]["object"]["kind"], "Pod");
}

#[tokio::test]
async fn watch_streams_close_at_timeout_seconds() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cms: Api<ConfigMap> = Api::namespaced(common::client(sim.cluster(0)).await, "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let started = std::time::Instant::now();
    let events: Vec<_> = tokio::time::timeout(
        Duration::from_secs(5),
        cms.watch(&WatchParams::default().timeout(1), &rv)
            .await
            .expect("watch")
            .try_collect::<Vec<_>>(),
    )
    .await
    .expect("closed by the server within 5 s")
    .expect("clean close");
    assert!(events.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// Names of the pods in `namespace`, straight from the store.
fn store_pod_names(sim: &Sim, namespace: &str) -> BTreeSet<String> {
    let store = sim.cluster(0).store();
    let rt = store.resolve("", "v1", "pods").expect("pods served");
    let page = store
        .list(&rt, Some(namespace), &Default::default())
        .expect("list");
    page.items.iter().map(|o| o.name().to_string()).collect()
}

async fn reflector_converges(streaming: bool) {
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let sim = Sim::start(SimOptions::default()).expect("sim");
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "churn", 50);
    let pods: Api<Pod> = Api::namespaced(common::client(sim.cluster(0)).await, "churn");
    let (reader, writer) = reflector::store::<Pod>();
    let config = if streaming {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default()
    };
    let reflect = tokio::spawn(
        watcher(pods, config)
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .for_each(|_| async {}),
    );
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .expect("initial list within 10 s")
        .expect("ready");
    let churn_config = panoptes_sim::churn::ChurnConfig {
        namespace: "churn".into(),
        target_pods: 50,
        rate_per_sec: 2000.0,
        max_writes: Some(300),
        ..Default::default()
    };
    let churn = panoptes_sim::churn::Churn::start(sim.cluster(0).store(), churn_config);
    churn.wait(Duration::from_secs(10));
    let expected = store_pod_names(&sim, "churn");
    let converged = common::eventually(Duration::from_secs(10), || {
        reader
            .state()
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect::<BTreeSet<_>>()
            == expected
    })
    .await;
    reflect.abort();
    assert!(
        converged,
        "the reflector should hold exactly the store's {} pods",
        expected.len()
    );
}

#[tokio::test]
async fn kube_runtime_reflector_converges_under_churn_with_list_then_watch() {
    reflector_converges(false).await;
}

#[tokio::test]
async fn kube_runtime_reflector_converges_under_churn_with_streaming_lists() {
    reflector_converges(true).await;
}

#[tokio::test]
async fn deletes_answer_like_the_real_server() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let client = common::client(sim.cluster(0)).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("dup", json!({})))
        .await
        .expect("create");
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", 1);

    // status/200-delete-configmap.json: a Status Success, not the object.
    let (code, _, body) = common::raw(
        &client,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/dup",
        None,
        None,
    )
    .await;
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (code, status["kind"].as_str(), status["status"].as_str()),
        (200, Some("Status"), Some("Success")),
        "{body}"
    );
    assert_eq!(
        (
            status["details"]["name"].as_str(),
            status["details"]["kind"].as_str()
        ),
        (Some("dup"), Some("configmaps"))
    );
    assert!(status["details"]["uid"].is_string());

    // status/200-delete-pod.json: the Pod itself. The fixture's pod was unscheduled and so
    // deleted at once; a seeded pod is scheduled, so it is force-deleted here.
    let (code, _, body) = common::raw(
        &client,
        "DELETE",
        "/api/v1/namespaces/default/pods/pod-00000?gracePeriodSeconds=0",
        None,
        None,
    )
    .await;
    let pod: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((code, pod["kind"].as_str()), (200, Some("Pod")), "{body}");

    // status/404-delete-again.json
    let (code, _, body) = common::raw(
        &client,
        "DELETE",
        "/api/v1/namespaces/default/pods/pod-00000",
        None,
        None,
    )
    .await;
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (code, status["reason"].as_str()),
        (404, Some("NotFound")),
        "{body}"
    );
    assert_eq!(status["message"], "pods \"pod-00000\" not found");

    let (code, content_type, body) = common::raw(&client, "GET", "/healthz", None, None).await;
    assert_eq!(
        (code, content_type.as_str(), body.as_str()),
        (200, "text/plain; charset=utf-8", "ok")
    );
    let (code, _, body) = common::raw(
        &client,
        "GET",
        "/openapi/v2",
        Some("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
        None,
    )
    .await;
    assert_eq!((code, body.len()), (200, 0));
}
