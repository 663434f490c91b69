//! A `Runtime` watching a server that sends one pod its type cannot hold, among good ones:
//! the rest is cached and the cluster is ready, `/readyz`'s readiness names the quarantined
//! object, and the bad-input metric counts it (issue 11).

mod multicluster_support;
#[path = "../actors/tests/raw_server/mod.rs"]
mod raw_server;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use multicluster_support::{DEADLINE, config_text, eventually};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::quarantine::BadInput;
use panoptes_runtime::Runtime;
use raw_server::{End, RawServer, Reply};

fn pod(name: &str, rv: u64) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","namespace":"default","resourceVersion":"{rv}","managedFields":[],"managedFields":[{{"manager":"m"}}]}}}}"#
    )
}

#[actix_rt::test]
async fn a_quarantined_object_is_named_in_readiness_and_the_rest_is_cached() {
    let wrong_kind = r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"odd","namespace":"default","resourceVersion":"4"}}"#;
    let list = format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"9"}},"items":[{},{wrong_kind},{}]}}"#,
        pod("a", 3),
        pod("b", 5)
    );
    let server = RawServer::start(move |target| {
        if target.contains("watch=true") {
            Reply::Chunked(Vec::new(), End::Hang(Duration::from_secs(120)))
        } else if target.starts_with("/api/v1/pods") {
            Reply::Json(200, list.clone())
        } else {
            Reply::Json(
                404,
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}"#.to_owned(),
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: raw\n  cluster:\n    server: {}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: raw\n  context:\n    cluster: raw\n    user: u\ncurrent-context: raw\n",
            server.url
        ),
    )
    .expect("kubeconfig written");
    let config = config_text(&kubeconfig, &[("odd-server", "raw")], dir.path());
    let runtime = Runtime::start(&config).await.expect("runtime starts");
    let pods = runtime.informer::<Pod>();
    let cluster = ClusterId::new("odd-server");
    assert!(
        pods.wait_synced(&cluster, DEADLINE).await,
        "synced despite the odd pod"
    );
    let mut names: Vec<String> = pods
        .list(&cluster)
        .expect("the cluster is a member")
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    eventually("readiness names the quarantined pod", || {
        runtime.readiness().is_ready()
            && runtime
                .readiness()
                .quarantined()
                .iter()
                .any(|(c, resource, q)| {
                    c == &cluster
                        && resource == "v1/pods"
                        && q.key == "default/odd"
                        && q.reason == BadInput::WrongKind
                })
    })
    .await;
    let metrics = runtime.metrics().encode();
    assert!(
        metrics.contains(
            "panoptes_informer_bad_input_total{cluster=\"odd-server\",resource=\"v1/pods\",reason=\"wrong_kind\"} 1"
        ),
        "{metrics}"
    );
    runtime.shutdown();
}
