//! What an operator's Prometheus sees: `/metrics` scraped over HTTP from a runtime watching
//! two simulated clusters, parsed with a Prometheus text parser, checked for the values this
//! test caused (writes through a real `kube::Client` → events by type, handler latency
//! observations, the cache's size at that moment), then after a reload that removes a
//! cluster (its series gone); and `/readyz` going 503 → 200 as clusters sync, back to 503
//! when a cluster's server stops, and 200 again when it returns.

mod multicluster_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use multicluster_support::{Clusters, DEADLINE};
use panoptes_actors::{HandlerOptions, ids::ClusterId};
use panoptes_runtime::{HealthServer, Metrics, Readiness, Runtime};
use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 GET with `Connection: close`; (status, body). Bounded in time.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the health server answered within 10s");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `/metrics`, parsed.
async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("a valid exposition")
}

/// The value of the one sample of `metric` whose labels include `labels`; `None` if none.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    let sample = found.next()?;
    assert!(
        found.next().is_none(),
        "{metric} {labels:?} matches more than one series"
    );
    Some(match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric}: unexpected value {other:?}"),
    })
}

/// Polls `/readyz` until it answers `want` or [`DEADLINE`] passes; the last body.
async fn readyz_becomes(addr: SocketAddr, want: u16, why: &str) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, body) = get(addr, "/readyz").await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still {status} instead of {want} ({why}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
    }))
    .expect("a valid pod")
}

#[actix_rt::test]
async fn metrics_follow_writes_and_clusters_and_readyz_follows_sync_and_loss() {
    let clusters = Clusters::start(2, 3);
    let config = clusters.config(&[("c1", "sim-1"), ("c2", "sim-2")]);
    let (metrics, readiness) = (Metrics::new(), Readiness::new());
    let health = HealthServer::start(
        "127.0.0.1:0".parse().unwrap(),
        metrics.clone(),
        readiness.clone(),
    )
    .await
    .expect("health server");
    let addr = health.local_addr();
    let runtime = Runtime::start_with(&config, metrics, readiness)
        .await
        .expect("runtime");
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "nothing watched yet: {body}");

    let pods = runtime.informer::<Pod>();
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    let handler = pods.add_handler_fn(
        move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
        HandlerOptions::default(),
    );
    let handler = handler.0.to_string();
    readyz_becomes(addr, 200, "both clusters synced").await;
    assert!(pods.all_synced());

    let before = scrape(addr).await;
    let c1 = [("cluster", "c1"), ("resource", "v1/pods")];
    let c1_handler = [
        ("cluster", "c1"),
        ("resource", "v1/pods"),
        ("handler", handler.as_str()),
    ];
    assert_eq!(value(&before, "panoptes_informer_objects", &c1), Some(3.0));
    assert_eq!(value(&before, "panoptes_informer_synced", &c1), Some(1.0));
    let count = |scrape: &Scrape, labels: &[(&str, &str)]| {
        value(scrape, "panoptes_handler_latency_seconds_count", labels)
            .unwrap_or_else(|| panic!("no latency histogram for {labels:?}"))
    };
    let events = |scrape: &Scrape, cluster: &str, kind: &str| {
        value(
            scrape,
            "panoptes_informer_events_total",
            &[
                ("cluster", cluster),
                ("resource", "v1/pods"),
                ("type", kind),
            ],
        )
        .unwrap_or_else(|| panic!("no {kind} events series for {cluster}"))
    };
    let c2_latency_before = count(
        &before,
        &[
            ("cluster", "c2"),
            ("resource", "v1/pods"),
            ("handler", &handler),
        ],
    );

    // Writes on c1 only, through a real client: two pods created, one labelled, one deleted.
    let client = runtime.client(&ClusterId::new("c1")).expect("c1's client");
    let api: Api<Pod> = Api::namespaced(client, "default");
    let handled_before = handled.load(Ordering::SeqCst);
    for name in ["scraped-a", "scraped-b"] {
        api.create(&PostParams::default(), &pod(name))
            .await
            .expect("create");
    }
    let label = serde_json::json!({"metadata": {"labels": {"scraped": "yes"}}});
    api.patch("scraped-a", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("patch");
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    api.delete("scraped-b", &now).await.expect("delete");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while pods
        .list(&ClusterId::new("c1"))
        .is_none_or(|l| l.len() != 4)
        || handled.load(Ordering::SeqCst) < handled_before + 4
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler did not see the four writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Scraped at once: no refresh interval stands between the cache and the gauge.
    let after = scrape(addr).await;
    assert_eq!(value(&after, "panoptes_informer_objects", &c1), Some(4.0));
    assert_eq!(
        events(&after, "c1", "ADDED") - events(&before, "c1", "ADDED"),
        2.0
    );
    assert_eq!(
        events(&after, "c1", "DELETED") - events(&before, "c1", "DELETED"),
        1.0
    );
    assert!(events(&after, "c1", "MODIFIED") - events(&before, "c1", "MODIFIED") >= 1.0);
    for kind in ["ADDED", "MODIFIED", "DELETED"] {
        assert_eq!(
            events(&after, "c2", kind),
            events(&before, "c2", kind),
            "nothing was written on c2"
        );
    }
    let observed = count(&after, &c1_handler) - count(&before, &c1_handler);
    assert!(
        observed >= 4.0,
        "{observed} latency observations for 4 writes"
    );
    let c2_handler = [
        ("cluster", "c2"),
        ("resource", "v1/pods"),
        ("handler", &handler),
    ];
    assert_eq!(count(&after, &c2_handler), c2_latency_before);
    assert!(
        value(&after, "panoptes_informer_last_event_age_seconds", &c1)
            .is_some_and(|age| (0.0..DEADLINE.as_secs_f64()).contains(&age)),
        "an event arrived moments ago"
    );
    assert_eq!(
        value(&after, "panoptes_listener_backlog", &c1_handler),
        Some(0.0)
    );
    assert_eq!(
        value(&after, "panoptes_handler_panics_total", &c1_handler),
        Some(0.0)
    );
    assert!(value(&after, "panoptes_informer_lists_total", &c1).is_some_and(|n| n >= 1.0));
    assert!(value(&after, "panoptes_informer_watches_total", &c1).is_some_and(|n| n >= 1.0));
    for reason in ["timeout", "expired", "error", "stalled"] {
        let labels = [
            ("cluster", "c1"),
            ("resource", "v1/pods"),
            ("reason", reason),
        ];
        assert!(
            value(&after, "panoptes_informer_watch_restarts_total", &labels).is_some(),
            "{reason}"
        );
    }
    assert_eq!(
        value(&after, "panoptes_informer_decode_errors_total", &c1),
        Some(0.0)
    );
    for process in [
        "process_resident_memory_bytes",
        "process_threads",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(
            value(&after, process, &[]).is_some_and(|v| v > 0.0),
            "{process} is exported and positive"
        );
    }
    let histogram = after
        .samples
        .iter()
        .find(|s| {
            s.metric == "panoptes_handler_latency_seconds"
                && s.labels.get("cluster") == Some("c1")
                && s.labels.get("handler") == Some(handler.as_str())
        })
        .expect("the latency histogram");
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("not a histogram: {histogram:?}");
    };
    assert!(buckets.iter().any(|b| b.less_than.is_infinite()));

    // A reload removes c2: its series go with it.
    let only_c1 = clusters.config(&[("c1", "sim-1")]);
    let report = runtime.reload(&only_c1).await.expect("reload");
    assert_eq!(report.removed, vec![ClusterId::new("c2")]);
    let reloaded = scrape(addr).await;
    let leftovers: Vec<_> = reloaded
        .samples
        .iter()
        .filter(|s| s.labels.get("cluster") == Some("c2"))
        .map(|s| s.metric.clone())
        .collect();
    assert!(leftovers.is_empty(), "c2's series stayed: {leftovers:?}");
    assert_eq!(
        value(&reloaded, "panoptes_informer_objects", &c1),
        Some(4.0)
    );
    readyz_becomes(addr, 200, "c1 alone is synced").await;

    // c1's server stops: not ready, naming it; back when it returns.
    clusters.sim.cluster(0).stop();
    let body = readyz_becomes(addr, 503, "c1's server stopped").await;
    assert!(body.contains("cluster c1 resource v1/pods"), "{body}");
    let lost = scrape(addr).await;
    assert_eq!(value(&lost, "panoptes_informer_synced", &c1), Some(0.0));
    clusters
        .sim
        .cluster(0)
        .start()
        .expect("c1's server restarts");
    readyz_becomes(addr, 200, "c1's server is back").await;

    drop(pods);
    runtime.shutdown();
    health.stop().await.expect("clean stop");
}
