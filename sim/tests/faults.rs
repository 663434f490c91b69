//! One test per fault switch: each shows the fault happening as a client sees it, and the
//! cluster serving normally again once it is off.

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use panoptes_sim::{Sim, SimOptions};
use serde_json::json;

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})).expect("configmap")
}

fn code(result: Result<impl std::fmt::Debug, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

struct Fixture {
    sim: Sim,
    /// kube without its 429/503 retries, so injected failures are visible.
    cms: Api<ConfigMap>,
}

async fn fixture() -> Fixture {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let client = common::client_with_retry(&sim.cluster(0).kubeconfig_yaml(), "sim-1", false).await;
    let cms = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &configmap("present"))
        .await
        .expect("create");
    Fixture { sim, cms }
}

#[tokio::test]
async fn fail_next_answers_429_with_retry_after_then_500_then_serves() {
    let f = fixture().await;
    let faults = f.sim.cluster(0).faults();
    faults.fail_next(2, 429);
    let (status, headers) = common::raw_headers(
        &f.cms.clone().into_client(),
        "/api/v1/namespaces/default/configmaps",
    )
    .await;
    assert_eq!(
        (
            status,
            headers.get("retry-after").and_then(|v| v.to_str().ok())
        ),
        (429, Some("1"))
    );
    assert_eq!(code(f.cms.get("present").await), 429);
    f.cms
        .get("present")
        .await
        .expect("served after two failures");
    faults.fail_next(1, 500);
    assert_eq!(code(f.cms.get("present").await), 500);
    f.cms.get("present").await.expect("served again");
}

#[tokio::test]
async fn fail_fraction_fails_about_that_share_of_requests() {
    let f = fixture().await;
    f.sim.cluster(0).faults().fail_fraction(0.5, 500);
    let mut failed = 0;
    for _ in 0..200 {
        if f.cms.get("present").await.is_err() {
            failed += 1;
        }
    }
    assert!(
        (50..=150).contains(&failed),
        "{failed} of 200 failed with fraction 0.5"
    );
    f.sim.cluster(0).faults().fail_fraction(0.0, 500);
    f.cms
        .get("present")
        .await
        .expect("no failures at fraction 0");
}

#[tokio::test]
async fn latency_delays_every_resource_request() {
    let f = fixture().await;
    f.sim
        .cluster(0)
        .faults()
        .set_latency(Duration::from_millis(300));
    let started = Instant::now();
    f.cms.get("present").await.expect("get");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    f.sim.cluster(0).faults().clear();
    let started = Instant::now();
    f.cms.get("present").await.expect("get");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stalled_watches_open_and_then_say_nothing() {
    let f = fixture().await;
    let cluster = f.sim.cluster(0);
    cluster.faults().stall_watches(true);
    let rv = f
        .cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = f
        .cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("headers arrive")
        .boxed();
    f.cms
        .create(&PostParams::default(), &configmap("unseen"))
        .await
        .expect("create");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), stream.next())
            .await
            .is_err(),
        "a stalled watch stays silent"
    );
    assert_eq!(cluster.counters().open_watches("configmaps"), 1);
    drop(stream);
    assert!(
        common::eventually(Duration::from_secs(5), || cluster
            .counters()
            .open_watches("configmaps")
            == 0)
        .await
    );
}

#[tokio::test]
async fn drop_watches_ends_stalled_watches_too() {
    let f = fixture().await;
    let cluster = f.sim.cluster(0);
    cluster.faults().stall_watches(true);
    let rv = f
        .cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = f
        .cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("headers arrive")
        .boxed();
    assert_eq!(cluster.counters().open_watches("configmaps"), 1);
    cluster.faults().drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stalled stream ends once watches are dropped");
    assert!(
        end.is_none(),
        "a stalled watch ends without events: {end:?}"
    );
    assert!(
        common::eventually(Duration::from_secs(5), || cluster
            .counters()
            .open_watches("configmaps")
            == 0)
        .await
    );
}

#[tokio::test]
async fn forbid_answers_rbac_403_for_that_resource_only() {
    let f = fixture().await;
    let cluster = f.sim.cluster(0);
    cluster.faults().forbid("configmaps");
    match f.cms.get("present").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
            assert_eq!(
                status.message,
                r#"configmaps "present" is forbidden: User "sim-admin" cannot get resource "configmaps" in API group "" in the namespace "default""#
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(f.cms.clone().into_client(), "default");
    pods.list(&ListParams::default())
        .await
        .expect("other resources are allowed");
    cluster.faults().allow("configmaps");
    f.cms.get("present").await.expect("allowed again");
}

#[tokio::test]
async fn refuse_watch_list_answers_like_a_server_without_the_gate() {
    let f = fixture().await;
    f.sim.cluster(0).faults().refuse_watch_list(true);
    match f.cms.watch(&WatchParams::streaming_lists(), "0").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert!(
                status.message.contains("WatchList feature gate"),
                "{}",
                status.message
            );
        }
        Ok(_) => panic!("expected 422, the watch-list was served"),
        Err(other) => panic!("expected 422, got {other:?}"),
    }
    let _plain = f
        .cms
        .watch(&WatchParams::default(), "0")
        .await
        .expect("plain watches still work");
    f.sim.cluster(0).faults().refuse_watch_list(false);
    let _streaming = f
        .cms
        .watch(&WatchParams::streaming_lists(), "0")
        .await
        .expect("served once the fault is off");
}

#[tokio::test]
async fn drop_watches_ends_open_streams() {
    let f = fixture().await;
    let cluster = f.sim.cluster(0);
    let rv = f
        .cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = f
        .cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    assert!(
        common::eventually(Duration::from_secs(5), || cluster
            .counters()
            .open_watches("configmaps")
            == 1)
        .await
    );
    cluster.faults().drop_watches();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = stream.next().await {
            assert!(
                matches!(event, Ok(WatchEvent::Bookmark(_))),
                "only bookmarks may precede the end, got {event:?}"
            );
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream should end after drop_watches");
    assert!(
        common::eventually(Duration::from_secs(5), || cluster
            .counters()
            .open_watches("configmaps")
            == 0)
        .await
    );
}

#[tokio::test]
async fn compact_expires_continue_tokens() {
    let f = fixture().await;
    for i in 0..5 {
        f.cms
            .create(&PostParams::default(), &configmap(&format!("cm-{i}")))
            .await
            .expect("create");
    }
    let first = f
        .cms
        .list(&ListParams::default().limit(2))
        .await
        .expect("first page");
    let token = first.metadata.continue_.expect("more pages");
    // Compaction keeps the revision it compacts at (as etcd does): write once more first.
    f.cms
        .create(&PostParams::default(), &configmap("newer"))
        .await
        .expect("create");
    f.sim.cluster(0).faults().compact();
    match f
        .cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410 Expired, got {other:?}"),
    }
}

/// A GET after a restart: connections pooled before it were closed by the server, so the
/// first attempt may fail at the transport level, as with a real control-plane restart.
async fn get_after_restart(cms: &Api<ConfigMap>, name: &str) -> Result<ConfigMap, kube::Error> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cms.get(name).await {
            Err(kube::Error::Api(status)) => return Err(kube::Error::Api(status)),
            Err(transport) if Instant::now() < deadline => {
                let _ = transport;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test]
async fn stop_and_restart_keep_the_port_and_optionally_the_state() {
    let f = fixture().await;
    let cluster = f.sim.cluster(0).clone();
    let url = cluster.url();
    cluster.stop();
    assert!(
        f.cms.get("present").await.is_err(),
        "a stopped cluster does not answer"
    );
    cluster.start().expect("start again");
    assert_eq!(cluster.url(), url);
    get_after_restart(&f.cms, "present")
        .await
        .expect("state kept across stop/start");
    cluster.restart(true).expect("restart keeping state");
    get_after_restart(&f.cms, "present")
        .await
        .expect("state kept across restart(true)");
    let lost = cluster.store().resource_version();
    cluster.restart(false).expect("restart with a fresh store");
    assert!(
        cluster.store().resource_version() > lost,
        "a restored cluster's versions continue above the lost ones"
    );
    assert_eq!(
        code(get_after_restart(&f.cms, "present").await),
        404,
        "restart(false) starts from a fresh cluster"
    );
    f.cms
        .list(&ListParams::default())
        .await
        .expect("the fresh cluster serves the default namespace");
}

#[tokio::test]
async fn counters_count_lists_watches_and_requests() {
    let f = fixture().await;
    let counters = f.sim.cluster(0).counters();
    counters.reset();
    f.cms.list(&ListParams::default()).await.expect("list");
    f.cms.list(&ListParams::default()).await.expect("list");
    let stream = f
        .cms
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch");
    assert_eq!(
        (
            counters.lists("configmaps"),
            counters.watches("configmaps"),
            counters.lists("pods")
        ),
        (2, 1, 0)
    );
    assert!(counters.requests() >= 3);
    drop(stream);
}
