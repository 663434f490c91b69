//! History and resourceVersion answers over HTTP, against what kube-apiserver v1.28 answers
//! (`shared/fixtures/apiserver-v1.28/gone/`, `watch/`, `lists/` and issue 10 items 1–6):
//! etcd compaction by time and the watch cache window, lists at a resourceVersion, watches
//! at a future one, bookmark timing, and objects leaving a watch's selector.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use panoptes_sim::store::StoreConfig;
use panoptes_sim::{Sim, SimOptions};
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn sim(store: StoreConfig) -> Sim {
    Sim::start(SimOptions {
        store,
        ..Default::default()
    })
    .expect("sim")
}

async fn get_json(client: &kube::Client, uri: &str) -> (u16, Value) {
    let (status, _, body) = common::raw(client, "GET", uri, None, None).await;
    (status, serde_json::from_str(&body).expect("a JSON body"))
}

async fn write(client: &kube::Client, method: &str, uri: &str, body: Value) -> Value {
    let content_type = match method {
        "PATCH" => "application/merge-patch+json",
        _ => "application/json",
    };
    let (status, _, text) = common::raw(
        client,
        method,
        uri,
        None,
        Some((content_type, &body.to_string())),
    )
    .await;
    assert!(status < 300, "{method} {uri}: {status} {text}");
    serde_json::from_str(&text).expect("the written object")
}

fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("metadata.resourceVersion")
        .parse()
        .expect("a numeric resourceVersion")
}

async fn create_cm(client: &kube::Client, namespace: &str, name: &str, labels: Value) -> u64 {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v0"}});
    rv_of(
        &write(
            client,
            "POST",
            &format!("/api/v1/namespaces/{namespace}/configmaps"),
            body,
        )
        .await,
    )
}

async fn patch_cm(client: &kube::Client, name: &str, patch: Value) -> u64 {
    rv_of(&write(client, "PATCH", &format!("{CMS}/{name}"), patch).await)
}

/// An open watch read line by line, with the time each line came.
struct WatchLines {
    status: u16,
    body: kube::client::Body,
    pending: Vec<u8>,
}

enum Line {
    Event(Value),
    Ended,
    Silent,
}

impl WatchLines {
    async fn open(client: &kube::Client, uri: &str) -> WatchLines {
        let request = http::Request::get(uri)
            .body(Vec::new().into())
            .expect("request");
        let response = client.send(request).await.expect("response");
        WatchLines {
            status: response.status().as_u16(),
            body: response.into_body(),
            pending: Vec::new(),
        }
    }

    /// The next line within `wait`: an event, the end of the stream, or silence.
    async fn next(&mut self, wait: Duration) -> Line {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Line::Event(serde_json::from_slice(&line).expect("a JSON line"));
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return Line::Silent,
                Ok(None) => return Line::Ended,
                Ok(Some(frame)) => {
                    let frame = frame.expect("a body frame");
                    if let Ok(data) = frame.into_data() {
                        let data: Bytes = data;
                        self.pending.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    async fn event(&mut self, wait: Duration) -> Value {
        match self.next(wait).await {
            Line::Event(event) => event,
            Line::Ended => panic!("the stream ended; an event was expected"),
            Line::Silent => panic!("no event within {wait:?}"),
        }
    }
}

fn describe(event: &Value) -> String {
    let name = event["object"]["metadata"]["name"].as_str().unwrap_or("");
    format!("{} {name}", event["type"].as_str().unwrap_or("?"))
}

#[tokio::test]
async fn compaction_by_time_expires_old_lists_while_the_watch_cache_still_serves_them() {
    let sim = sim(StoreConfig {
        compaction_interval: Duration::from_millis(200),
        watch_cache_min: 4,
        watch_cache_max: 4,
        ..Default::default()
    });
    let client = common::client(sim.cluster(0)).await;
    let created = create_cm(&client, "default", "pre-b", json!({})).await;
    let mut last = created;
    for bump in 0..3 {
        last = patch_cm(
            &client,
            "pre-b",
            json!({"data": {"k": format!("bump{bump}")}}),
        )
        .await;
    }

    // etcd compacts to what it saw one interval earlier: soon `created` is gone for lists.
    let exact = format!("{CMS}?resourceVersion={created}&resourceVersionMatch=Exact");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = get_json(&client, &exact).await;
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let expired = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "The resourceVersion for the provided list is too old.", "reason": "Expired", "code": 410});
    assert_eq!(
        (status, &body),
        (410, &expired),
        "gone/list-exact-compacted-rv-410.json"
    );
    let (status, body) =
        get_json(&client, &format!("{CMS}?limit=5&resourceVersion={created}")).await;
    assert_eq!(
        (status, &body),
        (410, &expired),
        "a legacy paginated list reads etcd at that revision"
    );
    let (status, body) = get_json(&client, &format!("{CMS}?resourceVersion={created}")).await;
    assert_eq!(status, 200, "without limit the watch cache answers: {body}");
    assert_eq!(body["metadata"]["resourceVersion"], json!(last.to_string()));

    // The watch cache still holds those events: the watch is served, not 410
    // (gone/watch-compacted-but-cached-rv.timed.txt).
    let mut watch = WatchLines::open(
        &client,
        &format!("{CMS}?watch=true&resourceVersion={created}&timeoutSeconds=5"),
    )
    .await;
    assert_eq!(watch.status, 200);
    for expected in created + 1..=last {
        let event = watch.event(Duration::from_secs(5)).await;
        assert_eq!(describe(&event), "MODIFIED pre-b");
        assert_eq!(rv_of(&event["object"]), expected);
    }

    // Four more writes push them out of the 4-event window: 200 + one ERROR 410, then the end.
    let mut newest = last;
    for bump in 3..7 {
        newest = patch_cm(
            &client,
            "pre-b",
            json!({"data": {"k": format!("bump{bump}")}}),
        )
        .await;
    }
    let mut watch = WatchLines::open(
        &client,
        &format!("{CMS}?watch=true&resourceVersion={created}&allowWatchBookmarks=true"),
    )
    .await;
    assert_eq!(watch.status, 200);
    let event = watch.event(Duration::from_secs(5)).await;
    let oldest_kept = newest - 3;
    assert_eq!(
        event,
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {created} ({})", oldest_kept - 1), "reason": "Expired", "code": 410}}),
        "gone/watch-too-old-rv.jsonl"
    );
    assert!(matches!(
        watch.next(Duration::from_secs(5)).await,
        Line::Ended
    ));
}

#[tokio::test]
async fn an_expired_continue_token_gets_the_recorded_410() {
    let sim = sim(StoreConfig {
        compaction_interval: Duration::from_millis(200),
        snapshot_ttl: Duration::from_millis(1),
        ..Default::default()
    });
    let client = common::client(sim.cluster(0)).await;
    for name in ["cm-01", "cm-02", "cm-03"] {
        create_cm(&client, "default", name, json!({})).await;
    }
    let (_, first) = get_json(&client, &format!("{CMS}?limit=1")).await;
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    // Past its snapshot's lifetime but not compacted: read again at its revision.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, second) = get_json(&client, &format!("{CMS}?limit=1&continue={token}")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    assert_eq!(second["items"][0]["metadata"]["name"], "cm-02");
    create_cm(&client, "default", "later", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = get_json(&client, &format!("{CMS}?limit=1&continue={token}")).await;
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((status, body["reason"].as_str()), (410, Some("Expired")));
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .starts_with("The provided continue parameter is too old")
    );
    assert!(
        body["metadata"]["continue"].is_string(),
        "a fresh inconsistent token, as recorded"
    );
}

#[tokio::test]
async fn a_list_at_an_exact_resource_version_is_that_snapshot_paginated() {
    let sim = sim(StoreConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hist"}});
    write(&client, "POST", "/api/v1/namespaces", namespace).await;
    for name in ["a", "b", "c"] {
        create_cm(&client, "hist", name, json!({})).await;
    }
    let (_, list) = get_json(&client, "/api/v1/namespaces/hist/configmaps").await;
    let at = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list rv")
        .to_string();
    let hist = "/api/v1/namespaces/hist/configmaps";
    write(
        &client,
        "PATCH",
        &format!("{hist}/a"),
        json!({"data": {"k": "changed"}}),
    )
    .await;
    common::raw(&client, "DELETE", &format!("{hist}/b"), None, None).await;
    create_cm(&client, "hist", "d", json!({})).await;

    let mut names = Vec::new();
    let mut uri = format!("{hist}?resourceVersion={at}&resourceVersionMatch=Exact&limit=2");
    loop {
        let (status, page) = get_json(&client, &uri).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            page["metadata"]["resourceVersion"],
            json!(at),
            "the list's RV is the one asked for"
        );
        for item in page["items"].as_array().expect("items") {
            let name = item["metadata"]["name"].as_str().expect("name");
            if name == "a" {
                assert_eq!(item["data"]["k"], "v0", "a as it was at {at}");
            }
            names.push(name.to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(token) => uri = format!("{hist}?limit=2&continue={token}"),
            None => break,
        }
    }
    assert_eq!(names, ["a", "b", "c", "kube-root-ca.crt"]);

    let (status, body) = get_json(
        &client,
        &format!("{hist}?resourceVersion=0&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!((status, body["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(
        body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
    );
}

#[tokio::test]
async fn a_watch_at_a_future_resource_version_is_silent_and_ends_at_its_timeout() {
    let sim = sim(StoreConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let current = create_cm(&client, "default", "now", json!({})).await;
    let opened = Instant::now();
    let mut watch = WatchLines::open(
        &client,
        &format!(
            "{CMS}?watch=true&resourceVersion={}&timeoutSeconds=2",
            current + 1000
        ),
    )
    .await;
    assert_eq!(
        watch.status, 200,
        "headers at once (watch/watchlist-variants.timed.txt)"
    );
    assert!(
        opened.elapsed() < Duration::from_millis(2500),
        "no 3 s wait for the revision"
    );
    assert!(
        matches!(watch.next(Duration::from_secs(10)).await, Line::Ended),
        "no ERROR 504, just the end"
    );
    assert!(
        opened.elapsed() >= Duration::from_millis(1900),
        "closed at timeoutSeconds"
    );
}

#[tokio::test]
async fn periodic_bookmarks_come_before_the_timeout_and_only_after_a_change() {
    let sim = sim(StoreConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let current = create_cm(&client, "default", "first", json!({})).await;

    // A watch that sees a change gets a bookmark ~2 s before its 4 s timeout, at the
    // change's RV (watch/bookmarks.md: deadline - 2 s).
    let mut busy = WatchLines::open(
        &client,
        &format!(
            "{CMS}?watch=true&allowWatchBookmarks=true&timeoutSeconds=4&resourceVersion={current}"
        ),
    )
    .await;
    let opened = Instant::now();
    let changed = create_cm(&client, "default", "change", json!({})).await;
    assert_eq!(
        describe(&busy.event(Duration::from_secs(5)).await),
        "ADDED change"
    );
    let bookmark = busy.event(Duration::from_secs(6)).await;
    assert_eq!(
        bookmark,
        json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": changed.to_string(), "creationTimestamp": null}}})
    );
    assert!(
        opened.elapsed() >= Duration::from_millis(1500),
        "not before deadline - 2 s"
    );
    assert!(matches!(
        busy.next(Duration::from_secs(6)).await,
        Line::Ended
    ));

    // A quiet watch (its starting RV is already the resource's newest) gets none at all,
    // then a clean end.
    let mut silent = WatchLines::open(
        &client,
        &format!(
            "{CMS}?watch=true&allowWatchBookmarks=true&timeoutSeconds=3&resourceVersion={changed}"
        ),
    )
    .await;
    assert!(
        matches!(silent.next(Duration::from_secs(8)).await, Line::Ended),
        "no bookmark on a quiet 3 s watch"
    );
}

const WATCH_LIST: &str =
    "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";

#[tokio::test]
async fn the_v1_28_initial_events_end_bookmark_waits_for_the_next_write() {
    let sim = sim(StoreConfig::default());
    let client = common::client(sim.cluster(0)).await;
    create_cm(&client, "default", "a", json!({})).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "newer"}});
    write(
        &client,
        "POST",
        "/api/v1/namespaces/default/secrets",
        secret,
    )
    .await;

    let mut watch = WatchLines::open(&client, &format!("{CMS}?{WATCH_LIST}")).await;
    assert_eq!(
        describe(&watch.event(Duration::from_secs(5)).await),
        "ADDED a"
    );
    assert_eq!(
        describe(&watch.event(Duration::from_secs(5)).await),
        "ADDED kube-root-ca.crt"
    );
    assert!(
        matches!(watch.next(Duration::from_millis(2500)).await, Line::Silent),
        "nothing on a quiet type (watch/watchlist-configmaps.timed.txt)"
    );
    let written = Instant::now();
    let elsewhere = create_cm(&client, "kube-system", "elsewhere", json!({})).await;
    let end = watch.event(Duration::from_secs(5)).await;
    assert_eq!(
        end,
        json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": elsewhere.to_string(), "creationTimestamp": null, "annotations": {"k8s.io/initial-events-end": "true"}}}})
    );
    assert!(
        written.elapsed() < Duration::from_secs(4),
        "about a second after the write"
    );
}

#[tokio::test]
async fn the_prompt_initial_events_end_bookmark_follows_the_initial_events() {
    let sim = sim(StoreConfig {
        prompt_initial_events_end: true,
        ..Default::default()
    });
    let client = common::client(sim.cluster(0)).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "newer"}});
    write(
        &client,
        "POST",
        "/api/v1/namespaces/default/secrets",
        secret,
    )
    .await;
    let mut watch = WatchLines::open(&client, &format!("{CMS}?{WATCH_LIST}")).await;
    assert_eq!(
        describe(&watch.event(Duration::from_secs(5)).await),
        "ADDED kube-root-ca.crt"
    );
    let end = watch.event(Duration::from_secs(1)).await;
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test]
async fn an_object_leaving_the_selector_is_deleted_with_its_old_state_at_the_patch_version() {
    let sim = sim(StoreConfig::default());
    let client = common::client(sim.cluster(0)).await;
    let created = create_cm(&client, "default", "leaver", json!({"app": "yes"})).await;
    let mut watch = WatchLines::open(
        &client,
        &format!("{CMS}?watch=true&labelSelector=app%3Dyes&resourceVersion={created}"),
    )
    .await;
    let patched = patch_cm(
        &client,
        "leaver",
        json!({"metadata": {"labels": {"app": "no"}}, "data": {"k": "new"}}),
    )
    .await;
    let event = watch.event(Duration::from_secs(5)).await;
    assert_eq!(describe(&event), "DELETED leaver");
    assert_eq!(
        rv_of(&event["object"]),
        patched,
        "at the patch's resourceVersion"
    );
    assert_eq!(
        event["object"]["metadata"]["labels"]["app"], "yes",
        "the state that still matched"
    );
    assert_eq!(event["object"]["data"]["k"], "v0");
}

#[tokio::test]
async fn a_version_is_fresh_enough_for_the_watch_cache_only_once_its_resource_reached_it() {
    let sim = sim(StoreConfig {
        too_large_rv_wait: Duration::from_millis(300),
        ..Default::default()
    });
    let cluster = sim.cluster(0);
    // Without kube's retries, which would retry the 504s.
    let client = common::client_with_retry(&cluster.kubeconfig_yaml(), cluster.name(), false).await;
    let configmaps_rv = create_cm(&client, "default", "a", json!({})).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "newer"}});
    let global = rv_of(
        &write(
            &client,
            "POST",
            "/api/v1/namespaces/default/secrets",
            secret,
        )
        .await,
    );

    let (_, cached) = get_json(&client, &format!("{CMS}?resourceVersion=0")).await;
    assert_eq!(
        cached["metadata"]["resourceVersion"],
        json!(configmaps_rv.to_string()),
        "the watch cache answers at its own version"
    );
    let too_large =
        format!("Timeout: Too large resource version: {global}, current: {configmaps_rv}");
    let mut watch = WatchLines::open(
        &client,
        &format!("{CMS}?{WATCH_LIST}&resourceVersion={global}"),
    )
    .await;
    assert_eq!(watch.status, 200);
    let event = watch.event(Duration::from_secs(5)).await;
    assert_eq!(
        (
            event["type"].as_str(),
            event["object"]["code"].as_u64(),
            event["object"]["message"].as_str()
        ),
        (Some("ERROR"), Some(504), Some(too_large.as_str())),
        "watch/watchlist-configmaps-with-rv.timed.txt"
    );
    let (status, body) = get_json(&client, &format!("{CMS}?resourceVersion={global}")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (504, Some(too_large.as_str()))
    );
    let (status, body) =
        get_json(&client, &format!("{CMS}?resourceVersion={global}&limit=5")).await;
    assert_eq!(
        status, 200,
        "etcd serves a paginated list at its revision: {body}"
    );
    assert_eq!(
        body["metadata"]["resourceVersion"],
        json!(global.to_string())
    );
}
