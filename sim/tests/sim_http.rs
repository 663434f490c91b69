//! The sim's HTTP answers where a client library can tell them from a real v1.28 server's
//! (issue 10, items 7, 8 and 11): metadata-only lists, gets and watches (through kube's
//! `list_metadata`, `get_metadata`, `watch_metadata` and kube-runtime's `metadata_watcher`,
//! and raw requests for the exact JSON), list items without `kind`/`apiVersion`, discovery
//! (`storageVersionHash`, pod subresources), the pod `binding` and `eviction` subresources,
//! `/openapi/v3` and the legacy `/watch/` paths.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use panoptes_sim::{Sim, SimCluster, SimOptions};
use serde_json::{Value, json};

const METADATA_LIST: &str =
    "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json";
const METADATA_OBJECT: &str =
    "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io,application/json";

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "web"}}, "data": {"k": "v"}})).expect("configmap")
}

/// A sim with `n` ConfigMaps `cm-0..` in namespace `fx` (which, as on a real cluster, also
/// holds `kube-root-ca.crt`), and a client for it.
async fn sim_with_configmaps(n: usize) -> (Sim, kube::Client) {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let client = common::client(sim.cluster(0)).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fx");
    ensure_namespace(&client, "fx").await;
    for i in 0..n {
        cms.create(&PostParams::default(), &configmap(&format!("cm-{i}")))
            .await
            .expect("create");
    }
    (sim, client)
}

async fn ensure_namespace(client: &kube::Client, name: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let (code, _, text) = common::raw(
        client,
        "POST",
        "/api/v1/namespaces",
        None,
        Some(("application/json", &body.to_string())),
    )
    .await;
    assert!(
        code == 201 || code == 409,
        "namespace {name}: {code} {text}"
    );
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
}

/// The JSON lines of a watch body.
fn events(body: &str) -> Vec<Value> {
    body.lines().filter(|l| !l.is_empty()).map(parse).collect()
}

/// Next watch event within 10 s (None when the stream ended).
async fn next<S: futures::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch event within 10 s")
}

fn cluster(sim: &Sim) -> &SimCluster {
    sim.cluster(0)
}

// ---- item 7: metadata-only lists, gets and watches ----

#[tokio::test]
async fn metadata_only_lists_page_like_full_lists_and_carry_the_meta_kinds() {
    let (_sim, client) = sim_with_configmaps(5).await;
    let full = parse(
        &common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/configmaps?limit=2",
            None,
            None,
        )
        .await
        .2,
    );
    let (code, content_type, text) = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps?limit=2",
        Some(METADATA_LIST),
        None,
    )
    .await;
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    let list = parse(&text);
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        list["metadata"]["remainingItemCount"], 4,
        "cm-2..cm-4, kube-root-ca.crt"
    );
    assert!(list["metadata"]["continue"].is_string());
    assert_eq!(
        list["metadata"]["resourceVersion"],
        full["metadata"]["resourceVersion"]
    );
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    for (item, full_item) in items.iter().zip(full["items"].as_array().expect("items")) {
        let keys: BTreeSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, BTreeSet::from(["apiVersion", "kind", "metadata"]));
        assert_eq!(item["kind"], "PartialObjectMetadata");
        assert_eq!(item["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            item["metadata"], full_item["metadata"],
            "the whole metadata"
        );
    }

    // kube's list_metadata, following continue tokens, sees every object once.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fx");
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    for _ in 0..10 {
        let page = cms.list_metadata(&params).await.expect("list_metadata");
        assert_eq!(page.types.kind, "PartialObjectMetadataList");
        names.extend(page.items.iter().filter_map(|m| m.metadata.name.clone()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let mut expected: Vec<String> = (0..5).map(|i| format!("cm-{i}")).collect();
    expected.push("kube-root-ca.crt".into());
    assert_eq!(names, expected);
    // Selectors apply as to full lists.
    let none = cms
        .list_metadata(&ListParams::default().labels("app=db"))
        .await
        .expect("list");
    assert!(none.items.is_empty());
}

#[tokio::test]
async fn metadata_only_gets_and_writes_answer_partial_objects_and_mismatches_are_406() {
    let (_sim, client) = sim_with_configmaps(1).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fx");
    let meta = cms.get_metadata("cm-0").await.expect("get_metadata");
    assert_eq!(
        meta.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(meta.metadata.labels.expect("labels")["app"], "web");

    let (code, _, text) = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps/cm-0",
        Some(METADATA_OBJECT),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let object = parse(&text);
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert!(object.get("data").is_none(), "metadata only: {text}");

    // A write answers in the same form.
    let patch = json!({"metadata": {"labels": {"tier": "front"}}}).to_string();
    let mut request = http::Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/fx/configmaps/cm-0")
        .header("accept", METADATA_OBJECT)
        .header("content-type", "application/merge-patch+json");
    request = request.header("user-agent", "sim-http-test");
    let response = client
        .send(request.body(patch.into_bytes().into()).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    let patched: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(patched["kind"], "PartialObjectMetadata");
    assert_eq!(patched["metadata"]["labels"]["tier"], "front");

    // The list kind on an object, the object kind on a list: 406 as the real server.
    let (code, _, text) = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps/cm-0",
        Some(METADATA_LIST),
        None,
    )
    .await;
    assert_eq!(code, 406, "{text}");
    assert_eq!(
        parse(&text)["message"],
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.ConfigMap)"
    );
    let (code, _, text) = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps",
        Some(METADATA_OBJECT),
        None,
    )
    .await;
    assert_eq!(
        (code, parse(&text)["reason"].as_str()),
        (406, Some("NotAcceptable"))
    );
}

#[tokio::test]
async fn metadata_only_watches_send_partial_objects_bookmarks_and_error_statuses() {
    let (sim, client) = sim_with_configmaps(2).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fx");

    // Raw: the exact event objects, from RV 0 (synthetic ADDED for what exists).
    let (code, _, body) = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps?watch=1&resourceVersion=0&timeoutSeconds=1",
        Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let added = events(&body);
    assert_eq!(added.len(), 3, "cm-0, cm-1, kube-root-ca.crt: {body}");
    for event in &added {
        assert_eq!(event["type"], "ADDED");
        let keys: BTreeSet<&str> = event["object"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, BTreeSet::from(["apiVersion", "kind", "metadata"]));
        assert_eq!(event["object"]["kind"], "PartialObjectMetadata");
    }

    // kube's watch_metadata: events and a bookmark in the metadata form.
    let rv = cms
        .list_metadata(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch_metadata(&WatchParams::default(), &rv)
        .await
        .expect("watch_metadata")
        .boxed();
    cms.create(&PostParams::default(), &configmap("later"))
        .await
        .expect("create");
    match next(&mut stream).await.expect("an event") {
        Ok(WatchEvent::Added(meta)) => {
            assert_eq!(meta.metadata.name.as_deref(), Some("later"));
            assert_eq!(meta.types.expect("types").kind, "PartialObjectMetadata");
        }
        other => panic!("expected ADDED, got {other:?}"),
    }
    cluster(&sim).store().send_bookmarks_now();
    match next(&mut stream).await.expect("an event") {
        Ok(WatchEvent::Bookmark(bookmark)) => {
            assert_eq!(bookmark.types.kind, "PartialObjectMetadata");
            assert_eq!(bookmark.types.api_version, "meta.k8s.io/v1");
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    }

    // A too-old RV: the ERROR event carries the Status unchanged.
    cluster(&sim).faults().compact();
    let mut stream = cms
        .watch_metadata(&WatchParams::default(), &rv)
        .await
        .expect("200 with an ERROR event")
        .boxed();
    match next(&mut stream).await.expect("an event") {
        Ok(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }
}

/// kube-runtime's metadata watcher (in kube 5: `watcher` over `Api<PartialObjectMeta<K>>`,
/// which sends the metadata-only Accept on its lists and watches) syncs and follows changes.
#[tokio::test]
async fn kube_runtime_metadata_watcher_follows_creates_and_deletes() {
    use kube::core::PartialObjectMeta;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (sim, client) = sim_with_configmaps(3).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fx");
    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), "fx");
    let (reader, writer) = reflector::store();
    let reflect = tokio::spawn(
        watcher(metas, watcher::Config::default().page_size(2))
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .for_each(|_| async {}),
    );
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .expect("initial list within 10 s")
        .expect("ready");
    cms.create(&PostParams::default(), &configmap("cm-new"))
        .await
        .expect("create");
    cms.delete("cm-0", &DeleteParams::default())
        .await
        .expect("delete");
    let expected: BTreeSet<String> = ["cm-1", "cm-2", "cm-new", "kube-root-ca.crt"]
        .map(String::from)
        .into();
    let converged = common::eventually(Duration::from_secs(10), || {
        reader
            .state()
            .iter()
            .filter_map(|m| m.metadata.name.clone())
            .collect::<BTreeSet<_>>()
            == expected
    })
    .await;
    reflect.abort();
    assert!(converged, "the metadata watcher should hold {expected:?}");
    let counters = cluster(&sim).counters();
    assert!(
        counters.lists("configmaps") >= 2,
        "paged metadata-only list"
    );
    assert!(counters.watches("configmaps") >= 1);
}

// ---- item 8: list items carry no kind/apiVersion ----

#[tokio::test]
async fn list_items_carry_no_kind_but_gets_watch_events_and_custom_resources_do() {
    let (_sim, client) = sim_with_configmaps(2).await;
    let list = parse(
        &common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/configmaps",
            None,
            None,
        )
        .await
        .2,
    );
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("ConfigMapList"), Some("v1"))
    );
    for item in list["items"].as_array().expect("items") {
        assert!(
            item.get("kind").is_none() && item.get("apiVersion").is_none(),
            "{item}"
        );
        assert!(
            item["data"].is_object(),
            "the rest of the object is kept: {item}"
        );
    }
    let yaml = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps",
        Some("application/yaml"),
        None,
    )
    .await
    .2;
    let yaml: Value = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(yaml["kind"], "ConfigMapList");
    assert!(yaml["items"][0].get("kind").is_none());
    let table = parse(
        &common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/configmaps",
            Some("application/json;as=Table;v=v1;g=meta.k8s.io"),
            None,
        )
        .await
        .2,
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let get = parse(
        &common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/configmaps/cm-0",
            None,
            None,
        )
        .await
        .2,
    );
    assert_eq!(
        (get["kind"].as_str(), get["apiVersion"].as_str()),
        (Some("ConfigMap"), Some("v1"))
    );
    let watch = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps?watch=1&timeoutSeconds=1",
        None,
        None,
    )
    .await
    .2;
    assert!(
        events(&watch)
            .iter()
            .all(|e| e["object"]["kind"] == "ConfigMap"),
        "{watch}"
    );

    // kube decodes such lists into typed objects.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fx");
    assert_eq!(
        cms.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        3
    );

    // deletecollection answers a list too, items without kind.
    let (code, _, text) = common::raw(
        &client,
        "DELETE",
        "/api/v1/namespaces/fx/configmaps",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200);
    let deleted = parse(&text);
    assert_eq!(deleted["kind"], "ConfigMapList");
    assert_eq!(deleted["items"].as_array().map(Vec::len), Some(3));
    assert!(deleted["items"][0].get("kind").is_none(), "{text}");

    // Custom resources are unstructured: their list items keep kind and apiVersion.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let (code, _, text) = common::raw(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        None,
        Some(("application/json", &crd.to_string())),
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}});
    let (code, _, text) = common::raw(
        &client,
        "POST",
        "/apis/example.com/v1/namespaces/fx/gadgets",
        None,
        Some(("application/json", &gadget.to_string())),
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let gadgets = parse(
        &common::raw(
            &client,
            "GET",
            "/apis/example.com/v1/namespaces/fx/gadgets",
            None,
            None,
        )
        .await
        .2,
    );
    assert_eq!(gadgets["items"][0]["kind"], "Gadget");
    assert_eq!(gadgets["items"][0]["apiVersion"], "example.com/v1");
}

// ---- item 11: discovery, pod subresources, /watch/ paths ----

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Every resource and subresource `sim` lists in `uri` is listed the same way in the
/// recorded document (name, kind, group/version, verbs, scope, storageVersionHash).
async fn assert_resource_list_matches(client: &kube::Client, uri: &str, recorded: &Value) {
    let served = parse(&common::raw(client, "GET", uri, None, None).await.2);
    let recorded: Vec<&Value> = recorded["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .collect();
    let served = served["resources"].as_array().expect("resources");
    assert!(!served.is_empty());
    for entry in served {
        let name = entry["name"].as_str().expect("name");
        let Some(real) = recorded.iter().find(|r| r["name"] == name) else {
            panic!("{uri}: {name} is not in the recording");
        };
        for field in [
            "kind",
            "group",
            "version",
            "verbs",
            "namespaced",
            "singularName",
            "storageVersionHash",
            "shortNames",
        ] {
            assert_eq!(entry.get(field), real.get(field), "{uri} {name}: {field}");
        }
    }
}

#[tokio::test]
async fn discovery_lists_storage_version_hashes_and_pod_subresources_as_recorded() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let client = common::client(cluster(&sim)).await;
    assert_resource_list_matches(&client, "/api/v1", &fixture("api-v1.json")).await;
    assert_resource_list_matches(&client, "/apis/apps/v1", &fixture("apis-apps-v1.json")).await;
    let core = parse(&common::raw(&client, "GET", "/api/v1", None, None).await.2);
    let pod_entries: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .filter(|n| n.starts_with("pods/"))
        .collect();
    assert_eq!(
        pod_entries,
        [
            "pods/attach",
            "pods/binding",
            "pods/ephemeralcontainers",
            "pods/eviction",
            "pods/exec",
            "pods/log",
            "pods/portforward",
            "pods/proxy",
            "pods/status"
        ]
    );

    // Aggregated discovery (what kubectl asks for) lists the same pod subresources.
    let aggregated = parse(
        &common::raw(
            &client,
            "GET",
            "/api",
            Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
            None,
        )
        .await
        .2,
    );
    let pods = |doc: &Value| -> Value {
        doc["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .expect("pods")["subresources"]
            .clone()
    };
    assert_eq!(pods(&aggregated), pods(&fixture("aggregated-api.json")));

    // CRDs get the hash of their storage version.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [
                     {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                     {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    });
    let (code, _, text) = common::raw(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        None,
        Some(("application/json", &crd.to_string())),
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let expected = panoptes_sim::discovery::storage_version_hash("example.com", "v1", "Gadget");
    for version in ["v1", "v1beta1"] {
        let list = parse(
            &common::raw(
                &client,
                "GET",
                &format!("/apis/example.com/{version}"),
                None,
                None,
            )
            .await
            .2,
        );
        assert_eq!(
            list["resources"][0]["storageVersionHash"],
            expected.as_str(),
            "{version}"
        );
    }
}

fn pod(name: &str, containers: &[&str]) -> Pod {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "nginx"}))
        .collect();
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}})).expect("pod")
}

async fn post(client: &kube::Client, uri: &str, body: &Value) -> (u16, Value) {
    let (code, _, text) = common::raw(
        client,
        "POST",
        uri,
        None,
        Some(("application/json", &body.to_string())),
    )
    .await;
    (code, parse(&text))
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

#[tokio::test]
async fn legacy_watch_paths_are_served_as_watches() {
    let (_sim, client) = sim_with_configmaps(2).await;
    for (uri, expected) in [
        ("/api/v1/watch/namespaces/fx/configmaps?timeoutSeconds=1", 3),
        (
            "/api/v1/watch/namespaces/fx/configmaps/cm-1?timeoutSeconds=1",
            1,
        ),
        (
            "/api/v1/watch/configmaps?timeoutSeconds=1&labelSelector=app%3Dweb",
            2,
        ),
        ("/api/v1/watch/namespaces/fx?timeoutSeconds=1", 1),
        (
            "/apis/apps/v1/watch/namespaces/fx/deployments?timeoutSeconds=1",
            0,
        ),
    ] {
        let (code, content_type, body) = common::raw(&client, "GET", uri, None, None).await;
        assert_eq!(
            (code, content_type.as_str()),
            (200, "application/json"),
            "{uri}: {body}"
        );
        let events = events(&body);
        assert_eq!(events.len(), expected, "{uri}: {body}");
        assert!(events.iter().all(|e| e["type"] == "ADDED"), "{uri}: {body}");
    }
}
