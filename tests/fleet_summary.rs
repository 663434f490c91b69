//! The fleet summary example (`examples/fleet_summary/app.rs`) served over HTTP from a
//! runtime over two simulated clusters: pods and deployments written with a `kube::Client`
//! show up per cluster, per phase, and lagging deployments are named until they are ready.

#[path = "../examples/fleet_summary/app.rs"]
mod app;
mod multicluster_support;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use multicluster_support::{Clusters, eventually_async};
use panoptes_actors::ids::ClusterId;
use panoptes_runtime::Runtime;
use serde_json::json;

/// GETs `path` from the summary server; the status and the body.
async fn get(addr: SocketAddr, path: &str) -> (http::StatusCode, http::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("answer");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

async fn summary(addr: SocketAddr) -> app::FleetSummary {
    let (status, _, body) = get(addr, "/summary").await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}
    }))
    .unwrap()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}
            }
        }
    }))
    .unwrap()
}

async fn set_phase(pods: &Api<Pod>, name: &str, phase: &str) {
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": phase}})),
    )
    .await
    .expect("pod status patched");
}

#[actix_rt::test]
async fn summary_counts_pods_per_phase_and_names_lagging_deployments_per_cluster() {
    let clusters = Clusters::start(2, 0);
    let config = clusters.config(&[("east", "sim-1"), ("west", "sim-2")]);
    let runtime = Runtime::start(&config).await.unwrap();
    let fleet = app::Fleet {
        pods: runtime.informer::<Pod>(),
        deployments: runtime.informer::<Deployment>(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app::router(fleet)).into_future());

    let east = runtime.client(&ClusterId::new("east")).unwrap();
    let west = runtime.client(&ClusterId::new("west")).unwrap();
    let east_pods: Api<Pod> = Api::namespaced(east.clone(), "default");
    for name in ["a", "b", "c"] {
        east_pods
            .create(&PostParams::default(), &pod(name))
            .await
            .unwrap();
    }
    set_phase(&east_pods, "a", "Running").await;
    set_phase(&east_pods, "b", "Running").await;
    let west_pods: Api<Pod> = Api::namespaced(west.clone(), "default");
    west_pods
        .create(&PostParams::default(), &pod("w"))
        .await
        .unwrap();
    set_phase(&west_pods, "w", "Failed").await;

    let east_deployments: Api<Deployment> = Api::namespaced(east.clone(), "default");
    east_deployments
        .create(&PostParams::default(), &deployment("web", 3))
        .await
        .unwrap();
    east_deployments
        .create(&PostParams::default(), &deployment("api", 2))
        .await
        .unwrap();
    east_deployments
        .patch_status(
            "api",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}),
            ),
        )
        .await
        .unwrap();
    east_deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 1}}),
            ),
        )
        .await
        .unwrap();

    let expected_east = app::ClusterSummary {
        synced: true,
        pods: 3,
        pods_by_phase: [("Pending".into(), 1), ("Running".into(), 2)].into(),
        deployments: 2,
        deployments_not_at_replicas: vec![app::DeploymentLag {
            namespace: "default".into(),
            name: "web".into(),
            desired: 3,
            ready: 3,
            available: 1,
        }],
    };
    let expected_west = app::ClusterSummary {
        synced: true,
        pods: 1,
        pods_by_phase: [("Failed".into(), 1)].into(),
        deployments: 0,
        deployments_not_at_replicas: vec![],
    };
    eventually_async("the summary to show both clusters' writes", || async {
        let now = summary(addr).await;
        now.clusters.get("east") == Some(&expected_east)
            && now.clusters.get("west") == Some(&expected_west)
    })
    .await;
    assert_eq!(summary(addr).await.clusters.len(), 2);

    // Once `web` is available it is no longer named.
    east_deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"availableReplicas": 3}})),
        )
        .await
        .unwrap();
    eventually_async("web to reach its replica count", || async {
        let now = summary(addr).await;
        now.clusters["east"].deployments_not_at_replicas.is_empty()
    })
    .await;

    let (status, headers, text) = get(addr, "/summary.txt").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(
        text.contains("east: 3 pods (Pending=1 Running=2), 2 deployments, 0 not at replica count"),
        "{text}"
    );
    assert!(
        text.contains("west: 1 pods (Failed=1), 0 deployments, 0 not at replica count"),
        "{text}"
    );

    server.abort();
    runtime.shutdown();
}
