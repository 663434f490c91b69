//! The sim's HTTP answers where a client library can tell them from a real v1.28 server's
//! (issue 10, items 7, 8 and 11): metadata-only lists, gets and watches (through kube's
//! `list_metadata`, `get_metadata`, `watch_metadata` and kube-runtime's metadata watcher,
//! and raw requests for the exact JSON), list items without `kind`/`apiVersion`, discovery
//! (`storageVersionHash`, pod subresources), the pod `binding` and `eviction` subresources
//! and the legacy `/watch/` paths. `kubectl explain` over `/openapi/v3` is tested in the
//! workspace's `tests/kubectl.rs`.

#[path = "../common/mod.rs"]
mod common;
mod discovery;
mod list_items;
mod metadata_only;
mod pod_subresources;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use panoptes_sim::{Sim, SimCluster, SimOptions};
use serde_json::{Value, json};

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
