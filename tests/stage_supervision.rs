//! A panic in a pipeline stage — reflector, delta FIFO, indexer or processor — restarts the
//! pipeline from a relist: the handler's stream stays consistent (a deletion missed while
//! the stage was down arrives as a final-state-unknown tombstone, a creation as an add,
//! nothing is announced twice), the cache equals the server again, and the restart is
//! counted per stage. Driven through the public API, with the hidden fault-injection hook
//! `Informer::inject_stage_panic`.

mod informer_support;
mod multicluster_support;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{FactoryOptions, HandlerOptions, Stage, ids::ClusterId};
use panoptes_runtime::Runtime;

use informer_support::*;

async fn restarts_from_a_relist_after_a_panic_in(stage: Stage) {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "sup", 5);
    let factory = factory(
        cluster,
        FactoryOptions {
            namespace: Some("sup".into()),
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
    let counters = cluster.counters();
    wait_until("the watch opens", PATIENCE, || {
        counters.open_watches("pods") == 1
    })
    .await;

    // Keep the restarted pipeline from listing until the changes below are made, so they
    // can only reach it through the relist.
    cluster.faults().fail_fraction(1.0, 500);
    pods.inject_stage_panic(stage);
    wait_until("the supervisor restarts the pipeline", PATIENCE, || {
        pods.stage_restarts(stage) == 1
    })
    .await;
    wait_until("the old watch is closed", PATIENCE, || {
        counters.open_watches("pods") == 0
    })
    .await;
    panoptes_sim::pods::seed(&cluster.store(), "sup", 6);
    let created = panoptes_sim::pods::pod_name(5);
    let vanished = panoptes_sim::pods::pod_name(0);
    delete_pod(cluster, "sup", &vanished);
    cluster.faults().clear();

    let truth = server_pods(cluster, "sup");
    assert_eq!(truth.len(), 5);
    wait_until("the cache equals the server again", PATIENCE, || {
        cached_pods(pods.store().list()) == truth
    })
    .await;
    wait_until("the handler hears of both changes", PATIENCE, || {
        let history = history.lock().unwrap();
        history.contains_key(&created)
            && matches!(
                history.get(&vanished).and_then(|steps| steps.last()),
                Some(Seen::Deleted { .. })
            )
    })
    .await;
    assert_eq!(
        final_states(&history),
        truth,
        "the handler's replayed stream ends where the server is"
    );
    let history = history.lock().unwrap().clone();
    assert!(
        matches!(
            history[&vanished].last(),
            Some(Seen::Deleted {
                final_state_unknown: true,
                ..
            })
        ),
        "missed while down: a tombstone {:?}",
        history[&vanished]
    );
    assert!(matches!(
        history[&created][..],
        [Seen::Added { initial: false, .. }]
    ));
    for (name, steps) in &history {
        if *name != vanished && *name != created {
            assert_eq!(
                steps.len(),
                1,
                "{name} unchanged, announced once: {steps:?}"
            );
        }
    }
    for other in Stage::ALL.into_iter().filter(|s| *s != stage) {
        assert_eq!(pods.stage_restarts(other), 0, "{other}");
    }
    assert!(
        pods.reflector_report().is_some_and(|r| r.lists >= 2),
        "the restart relisted: {:?}",
        pods.reflector_report()
    );
    pods.stop();
}

#[actix_rt::test]
async fn a_reflector_panic_restarts_the_pipeline_from_a_relist() {
    restarts_from_a_relist_after_a_panic_in(Stage::Reflector).await;
}

#[actix_rt::test]
async fn a_fifo_panic_restarts_the_pipeline_from_a_relist() {
    restarts_from_a_relist_after_a_panic_in(Stage::Fifo).await;
}

#[actix_rt::test]
async fn an_indexer_panic_restarts_the_pipeline_from_a_relist() {
    restarts_from_a_relist_after_a_panic_in(Stage::Indexer).await;
}

#[actix_rt::test]
async fn a_processor_panic_restarts_the_pipeline_from_a_relist() {
    restarts_from_a_relist_after_a_panic_in(Stage::Processor).await;
}

#[actix_rt::test]
async fn a_stage_restart_is_counted_in_the_runtime_metrics_and_status() {
    let clusters = multicluster_support::Clusters::start(1, 3);
    let runtime = Runtime::start(&clusters.config(&[("only", "sim-1")]))
        .await
        .unwrap();
    let cluster = ClusterId::new("only");
    let pods = runtime.informer::<Pod>();
    assert!(pods.wait_synced(&cluster, PATIENCE).await);

    let informer = pods.handle(&cluster).unwrap().informer().clone();
    informer.inject_stage_panic(Stage::Fifo);
    let series = r#"panoptes_pipeline_stage_restarts_total{cluster="only",resource="v1/pods",stage="fifo"} 1"#;
    multicluster_support::eventually("the restart is in /metrics", || {
        runtime.metrics().encode().contains(series)
    })
    .await;
    let status = pods.status();
    assert!(
        status[0].stage_restarts.contains(&(Stage::Fifo, 1)),
        "{status:?}"
    );
    multicluster_support::eventually("the pipeline syncs again after its relist", || {
        informer.reflector_report().is_some_and(|r| r.lists >= 2)
            && pods.list(&cluster).unwrap().len() == 3
    })
    .await;
}
