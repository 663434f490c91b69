//! Faults seen through an informer: a disconnect with compaction forces a relist whose gap
//! deletions arrive as final-state-unknown tombstones; streaming lists, and their fallback
//! when the server refuses them.

mod informer_support;

use std::collections::BTreeSet;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{FactoryOptions, HandlerOptions};

use informer_support::*;

#[actix_rt::test]
async fn should_announce_deletions_missed_during_a_disconnect_as_final_state_unknown() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "gap", 50);
    let factory = factory(
        cluster,
        FactoryOptions {
            namespace: Some("gap".into()),
            ..Default::default()
        },
    )
    .await;
    let pods = factory.informer::<Pod>();
    let (recording, history) = Recording::new();
    let handler = pods.add_handler(recording.start().recipient(), HandlerOptions::default());
    factory.start();
    assert!(pods.wait_synced(PATIENCE).await);
    wait_until("the handler has synced", PATIENCE, || {
        pods.handler_has_synced(handler)
    })
    .await;
    let relists_before = pods.reflector_report().map_or(0, |r| r.relists);

    cluster.stop();
    let gone: BTreeSet<String> = (0..10).map(panoptes_sim::pods::pod_name).collect();
    for name in &gone {
        delete_pod(cluster, "gap", name);
    }
    cluster.faults().compact();
    cluster.start().expect("the sim listens again");

    let truth = server_pods(cluster, "gap");
    assert_eq!(truth.len(), 40);
    wait_until(
        "the cache drops the pods deleted in the gap",
        PATIENCE,
        || cached_pods(pods.store().list()) == truth,
    )
    .await;
    wait_until("the handler hears of all ten", PATIENCE, || {
        history
            .lock()
            .unwrap()
            .values()
            .filter(|steps| matches!(steps.last(), Some(Seen::Deleted { .. })))
            .count()
            == 10
    })
    .await;
    let history = history.lock().unwrap().clone();
    for (name, steps) in &history {
        if gone.contains(name) {
            assert!(
                matches!(
                    &steps[..],
                    [
                        Seen::Added { initial: true, .. },
                        Seen::Deleted {
                            final_state_unknown: true,
                            ..
                        }
                    ]
                ),
                "{name}: {steps:?}"
            );
        } else {
            assert!(
                matches!(&steps[..], [Seen::Added { initial: true, .. }]),
                "survivor {name} was re-announced: {steps:?}"
            );
        }
    }
    let report = pods.reflector_report().expect("the reflector reports");
    assert!(
        report.relists > relists_before,
        "the reconnect relisted: {report:?}"
    );
    factory.shutdown();
}

#[actix_rt::test]
async fn should_sync_through_a_streaming_list() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "stream", 120);
    let factory = factory(
        cluster,
        FactoryOptions {
            namespace: Some("stream".into()),
            streaming_lists: true,
            ..Default::default()
        },
    )
    .await;
    let pods = factory.informer::<Pod>();
    factory.start();
    assert!(pods.wait_synced(PATIENCE).await);
    assert_eq!(
        cached_pods(pods.store().list()),
        server_pods(cluster, "stream")
    );
    assert_eq!(
        cluster.counters().lists("pods"),
        0,
        "a streaming list needs no list request"
    );
    assert!(cluster.counters().watches("pods") >= 1);
    factory.shutdown();
}

#[actix_rt::test]
async fn should_fall_back_to_list_and_watch_when_the_server_refuses_streaming() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "stream", 120);
    cluster.faults().refuse_watch_list(true);
    let factory = factory(
        cluster,
        FactoryOptions {
            namespace: Some("stream".into()),
            streaming_lists: true,
            ..Default::default()
        },
    )
    .await;
    let pods = factory.informer::<Pod>();
    factory.start();
    assert!(pods.wait_synced(PATIENCE).await);
    assert_eq!(
        cached_pods(pods.store().list()),
        server_pods(cluster, "stream")
    );
    assert!(cluster.counters().lists("pods") >= 1, "the fallback lists");
    factory.shutdown();
}
