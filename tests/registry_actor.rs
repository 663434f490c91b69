//! The registry is an actor: acquisitions racing from many threads for one key start one
//! pipeline (one list, one watch) and every caller gets a handle on it; the last handle
//! going stops it, asynchronously, and closes its watch.

mod multicluster_support;

use k8s_openapi::api::core::v1::Pod;
use multicluster_support::{Clusters, DEADLINE, eventually};
use panoptes_actors::Transform;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::registry::{ClusterKey, PipelineRequest};
use panoptes_runtime::Runtime;

#[actix_rt::test]
async fn racing_acquisitions_of_one_key_start_one_pipeline_and_the_last_release_stops_it() {
    let clusters = Clusters::start(1, 4);
    let runtime = Runtime::start(&clusters.config(&[("only", "sim-1")]))
        .await
        .unwrap();
    let cluster = ClusterId::new("only");
    let request = PipelineRequest::new(
        cluster.clone(),
        ClusterKey::new("racing-test"),
        runtime.client(&cluster).unwrap(),
    );

    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (registry, request) = (runtime.registry().clone(), request.clone());
            std::thread::spawn(move || {
                registry
                    .informer::<Pod>(&request, Transform::default())
                    .unwrap()
            })
        })
        .collect();
    let handles: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(runtime.registry().len(), 1, "one pipeline for eight racers");
    assert!(handles[0].wait_synced(DEADLINE).await);
    assert!(handles.iter().all(|h| h.len() == 4));
    let counters = clusters.sim.cluster(0).counters();
    eventually("the watch opens", || counters.open_watches("pods") == 1).await;
    assert_eq!((counters.lists("pods"), counters.watches("pods")), (1, 1));

    drop(handles);
    eventually("the pipeline is stopped", || runtime.registry().is_empty()).await;
    eventually("its watch is closed", || counters.open_watches("pods") == 0).await;
}
