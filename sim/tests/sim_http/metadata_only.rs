//! Item 7: metadata-only (`PartialObjectMetadata`) lists, gets, writes and watches, through
//! kube's `*_metadata` calls, kube-runtime's watcher and raw requests.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use super::{cluster, common, configmap, events, next, parse, sim_with_configmaps};

const METADATA_LIST: &str =
    "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json";
const METADATA_OBJECT: &str =
    "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io,application/json";

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
