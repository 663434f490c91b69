//! `Runtime::builder()`: a runtime from code, no `clusters.toml` — an embedded cluster and a
//! cluster given as a `kube::Client` both sync, the health endpoint serves when asked, and a
//! bad name fails naming the cluster.

mod informer_support;

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::ids::ClusterId;
use panoptes_runtime::config::EmbeddedCluster;
use panoptes_runtime::{Runtime, RuntimeError};

const DEADLINE: Duration = Duration::from_secs(30);

#[actix_rt::test]
async fn a_builder_without_toml_syncs_an_embedded_cluster_and_a_given_client() {
    let sim = informer_support::sim();
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", 7);
    let client = informer_support::client(sim.cluster(0)).await;
    let runtime = Runtime::builder()
        .embedded(
            "dev",
            EmbeddedCluster {
                pods: 5,
                ..EmbeddedCluster::default()
            },
        )
        .cluster("given", client)
        .without_telemetry()
        .metrics_addr("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .expect("the runtime starts");
    assert!(!runtime.installed_telemetry());
    assert_eq!(
        runtime.clusters(),
        ["dev", "given"].map(ClusterId::new).to_vec()
    );
    let pods = runtime.informer::<Pod>();
    let synced = pods.wait_all_synced(DEADLINE).await;
    assert_eq!(synced.len(), 2);
    assert!(synced.values().all(|s| *s), "{synced:?}");
    assert_eq!(pods.list(&ClusterId::new("dev")).unwrap().len(), 5);
    assert_eq!(pods.list(&ClusterId::new("given")).unwrap().len(), 7);

    let addr = runtime.health_addr().expect("serving health");
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let response = http
            .get(format!("http://{addr}/readyz").parse().unwrap())
            .await
            .expect("the health server answers");
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        if status.is_success() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {status} {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runtime.shutdown();
}

#[actix_rt::test]
async fn a_builder_refuses_a_bad_cluster_name_naming_it() {
    let started = Runtime::builder()
        .embedded("Dev Cluster", EmbeddedCluster::default())
        .without_telemetry()
        .start()
        .await;
    match started {
        Err(error @ RuntimeError::Cluster { .. }) => {
            assert!(
                error
                    .to_string()
                    .starts_with("cluster \"Dev Cluster\": not a valid cluster name"),
                "{error}"
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a bad name was accepted"),
    }
}
