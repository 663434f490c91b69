//! The health server over real HTTP: `/healthz`, `/readyz` following [`Readiness`], and
//! `/metrics` exposing the registered families.

use std::net::SocketAddr;
use std::time::Duration;

use panoptes_actors::ids::ClusterId;
use panoptes_runtime::health::{HealthServer, Readiness};
use panoptes_runtime::metrics::{Metrics, ReconcileResult};
use panoptes_runtime::multi_informer::ClusterInformerStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 GET with `Connection: close`; returns (status, body). Bounded in time.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("read response");
        response
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("health server answered within 10s");
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

/// A synced pipeline's status with nothing counted yet.
fn status(cluster: &str, resource: &str) -> ClusterInformerStatus {
    ClusterInformerStatus {
        cluster: ClusterId::from(cluster),
        resource: resource.to_owned(),
        synced: true,
        objects: 0,
        state: None,
        backlog: 0,
        lists: 0,
        watches: 0,
        bad_input: Default::default(),
        quarantined: Vec::new(),
        stage_restarts: Vec::new(),
        relists: 0,
        watch: None,
        handlers: Vec::new(),
    }
}

#[tokio::test]
async fn healthz_readyz_and_metrics_answer_over_http() {
    let metrics = Metrics::new();
    metrics.read_informers_from(Box::new(|| {
        Some(vec![ClusterInformerStatus {
            lists: 1,
            ..status("east", "v1/pods")
        }])
    }));
    metrics.workqueue("pods", "east").adds.inc();
    // Families appear in the exposition once they have a series.
    metrics.record_reconcile("pods", "east", ReconcileResult::Error);
    let readiness = Readiness::new();
    let server = HealthServer::start(
        "127.0.0.1:0".parse().unwrap(),
        metrics.clone(),
        readiness.clone(),
    )
    .await
    .expect("start health server");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    assert_eq!(get(addr, "/healthz").await.0, 200);

    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "nothing engaged yet: {body}");

    let east = ClusterId::from("east");
    readiness.set(&east, "v1/pods", false);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("east") && body.contains("v1/pods"), "{body}");

    readiness.set(&east, "v1/pods", true);
    assert_eq!(get(addr, "/readyz").await.0, 200);

    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "workqueue_depth",
        "workqueue_adds_total",
        "workqueue_retries",
        "workqueue_queue_duration_seconds",
        "controller_runtime_reconcile",
        "controller_runtime_reconcile_errors",
        "panoptes_informer_lists_total{cluster=\"east\",resource=\"v1/pods\"} 1",
        "panoptes_informer_watches",
        "panoptes_informer_relists",
        "panoptes_informer_events",
        "panoptes_informer_objects",
        "panoptes_listener_backlog",
    ] {
        assert!(body.contains(name), "missing {name} in /metrics:\n{body}");
    }

    server.stop().await.expect("clean stop");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed after stop"
    );
}

#[tokio::test]
async fn binding_a_taken_port_names_the_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let err = HealthServer::start(addr, Metrics::new(), Readiness::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn readyz_names_quarantined_objects_without_holding_back_readiness() {
    use panoptes_actors::quarantine::{BadInput, Quarantined};
    let metrics = Metrics::new();
    metrics.read_informers_from(Box::new(|| {
        Some(vec![ClusterInformerStatus {
            bad_input: [(BadInput::WrongKind, 1)].into(),
            ..status("east", "v1/pods")
        }])
    }));
    let readiness = Readiness::new();
    let server = HealthServer::start(
        "127.0.0.1:0".parse().unwrap(),
        metrics.clone(),
        readiness.clone(),
    )
    .await
    .expect("start health server");
    let addr = server.local_addr();
    let east = ClusterId::from("east");
    readiness.set(&east, "v1/pods", true);
    readiness.set_quarantined(
        &east,
        "v1/pods",
        vec![Quarantined {
            key: "default/odd".into(),
            reason: BadInput::WrongKind,
            error: "invalid value: string \"Secret\", expected Pod".into(),
            resource_version: Some("7".into()),
        }],
    );
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "the rest is cached: {body}");
    assert!(
        body.contains("cluster east resource v1/pods key default/odd reason wrong_kind"),
        "{body}"
    );
    let (_, text) = get(addr, "/metrics").await;
    assert!(
        text.contains(
            "panoptes_informer_bad_input_total{cluster=\"east\",resource=\"v1/pods\",reason=\"wrong_kind\"} 1"
        ),
        "{text}"
    );
    readiness.set_quarantined(&east, "v1/pods", Vec::new());
    let (_, body) = get(addr, "/readyz").await;
    assert_eq!(body, "ok\n");
    server.stop().await.expect("clean stop");
}
