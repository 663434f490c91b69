//! A controller over the runtime's clusters, driven through the public API against `sim`:
//! every object on every cluster gets reconciled and written through its own cluster's client.

mod controller_support;
mod multicluster_support;

use std::sync::Arc;

use actix::prelude::*;
use controller_support::{Record, Recorder, annotated, create_configmap};
use k8s_openapi::api::core::v1::ConfigMap;
use multicluster_support::{Clusters, eventually, eventually_async};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::{ReconcileKey, ShutdownMode};
use panoptes_runtime::Runtime;

fn key(cluster: &str, name: &str) -> ReconcileKey {
    ReconcileKey::new(ClusterId::new(cluster), Some("default"), name)
}

#[actix_rt::test]
async fn reconciles_every_configmap_on_two_clusters_through_each_clusters_client() {
    let clusters = Clusters::start(2, 0);
    let config = clusters.config(&[("c1", "sim-1"), ("c2", "sim-2")]);
    let runtime = Runtime::start(&config).await.unwrap();
    let (c1, c2) = (ClusterId::new("c1"), ClusterId::new("c2"));
    let clients = [runtime.client(&c1).unwrap(), runtime.client(&c2).unwrap()];
    for client in &clients {
        for name in ["before-a", "before-b"] {
            create_configmap(client, name).await;
        }
    }

    let record = Arc::new(Record::default());
    let handle = runtime
        .controller::<ConfigMap>("annotator")
        .workers(3)
        .run(Recorder::new(record.clone()).start());

    // Objects created after the start are reconciled too.
    for client in &clients {
        create_configmap(client, "after").await;
    }
    for (client, cluster) in clients.iter().zip(["c1", "c2"]) {
        for name in ["before-a", "before-b", "after"] {
            eventually_async(&format!("{cluster}/{name} annotated"), || {
                annotated(client, name, cluster)
            })
            .await;
        }
    }
    for cluster in ["c1", "c2"] {
        for name in ["before-a", "before-b", "after"] {
            eventually(&format!("{cluster}/{name} reconciled"), || {
                record.count(&key(cluster, name)) >= 1
            })
            .await;
        }
    }
    assert!(record.overlapped.lock().is_empty());
    handle.shutdown(ShutdownMode::Drain).await;
    runtime.shutdown();
}
