//! A streaming-list informer (`sendInitialEvents=true`) syncs under both timings of the
//! `k8s.io/initial-events-end` bookmark: v1.28's, which sends it only once the resource's
//! last write reaches the requested resourceVersion (never, on a resource nobody writes), and
//! v1.30+'s, right after the initial events (`StoreConfig::prompt_initial_events_end`).

mod informer_support;

use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::FactoryOptions;
use panoptes_sim::store::StoreConfig;
use panoptes_sim::{Sim, SimCluster, SimOptions};

use informer_support::*;

fn sim_with(prompt_initial_events_end: bool) -> Sim {
    Sim::start(SimOptions {
        store: StoreConfig {
            prompt_initial_events_end,
            ..Default::default()
        },
        ..Default::default()
    })
    .expect("the sim starts")
}

fn streaming(namespace: &str) -> FactoryOptions {
    FactoryOptions {
        namespace: Some(namespace.into()),
        streaming_lists: true,
        ..Default::default()
    }
}

/// Syncs a streaming pod informer on `namespace`, checks its cache against the server and
/// that a later write reaches it; returns whether it fell back to list+watch.
async fn sync_and_follow(cluster: &SimCluster, namespace: &str) -> bool {
    let factory = factory(cluster, streaming(namespace)).await;
    let pods = factory.informer::<Pod>();
    factory.start();
    assert!(pods.wait_synced(PATIENCE).await, "the informer syncs");
    assert_eq!(
        cached_pods(pods.store().list()),
        server_pods(cluster, namespace)
    );
    let one_more = server_pods(cluster, namespace).len() + 1;
    panoptes_sim::pods::seed(&cluster.store(), namespace, one_more);
    wait_until("the new pod reaches the cache", PATIENCE, || {
        cached_pods(pods.store().list()) == server_pods(cluster, namespace)
    })
    .await;
    let refused = pods
        .reflector_report()
        .expect("a reflector report")
        .streaming_refused;
    factory.shutdown();
    refused
}

#[actix_rt::test]
async fn should_sync_on_a_quiet_type_with_v1_28_timing_by_falling_back_to_list_and_watch() {
    let sim = sim_with(false);
    let cluster = sim.cluster(0);
    // No pod was ever written: a v1.28 server never sends the end bookmark.
    let started = std::time::Instant::now();
    assert!(
        sync_and_follow(cluster, "default").await,
        "streaming given up"
    );
    assert!(cluster.counters().lists("pods") >= 1, "the fallback lists");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "it waited for the bookmark first"
    );
}

#[actix_rt::test]
async fn should_sync_through_the_stream_with_v1_28_timing_when_the_bookmark_comes() {
    let sim = sim_with(false);
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "busy", 40);
    // resourceVersion=0 asks for the watch cache's own version, which the last pod write
    // reached: the end bookmark comes on the next bookmark tick.
    assert!(!sync_and_follow(cluster, "busy").await, "still streaming");
    assert_eq!(cluster.counters().lists("pods"), 0, "no list request");
}

#[actix_rt::test]
async fn should_sync_on_a_quiet_type_with_prompt_timing() {
    let sim = sim_with(true);
    let cluster = sim.cluster(0);
    assert!(
        !sync_and_follow(cluster, "default").await,
        "still streaming"
    );
    assert_eq!(cluster.counters().lists("pods"), 0, "no list request");
}
