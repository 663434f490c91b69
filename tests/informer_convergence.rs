//! Convergence: while 2,000 random pod writes hit the server, an informer's cache and every
//! handler end in exactly the server's final state, through valid per-key sequences; its
//! node index answers right after.

mod informer_support;

use std::time::{Duration, Instant};

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{FactoryOptions, HandlerOptions, handler_actor, handler_fn};
use panoptes_sim::churn::{Churn, ChurnConfig};

use informer_support::*;

#[actix_rt::test]
async fn should_converge_on_the_servers_state_after_churn() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "churn", 200);
    let options = FactoryOptions {
        namespace: Some("churn".into()),
        ..Default::default()
    };
    let factory = factory(cluster, options).await;
    let pods = factory.informer::<Pod>();
    pods.add_indexer("by-node", |pod: &Pod| {
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .into_iter()
            .collect()
    })
    .await
    .unwrap();
    let (recording, history) = Recording::new();
    let recorder = recording.start();
    let ordered = pods.add_handler(recorder.recipient(), HandlerOptions::default());
    let coalesced_history = History::default();
    let coalesced = {
        let history = coalesced_history.clone();
        pods.add_handler(
            handler_actor(move || Recording {
                history: history.clone(),
                delay: None,
            }),
            HandlerOptions::default().coalescing(),
        )
    };
    let events = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = events.clone();
    pods.add_handler(
        handler_fn(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }),
        HandlerOptions::default(),
    );
    factory.start();
    let synced = factory.wait_for_cache_sync(PATIENCE).await;
    assert_eq!(synced.get("v1/pods"), Some(&true), "{synced:?}");

    let started = Instant::now();
    let churn = Churn::start(
        cluster.store(),
        ChurnConfig {
            namespace: "churn".into(),
            target_pods: 250,
            rate_per_sec: 4000.0,
            update_fraction: 0.6,
            max_writes: Some(2000),
            seed: 7,
        },
    );
    let stats = churn.wait(PATIENCE);
    assert_eq!(stats.total(), 2000, "churn finished: {stats:?}");
    let truth = server_pods(cluster, "churn");
    wait_until("the cache equals the server's list", PATIENCE, || {
        cached_pods(pods.store().list()) == truth
    })
    .await;
    let converged = started.elapsed();
    wait_until("the handlers drained", PATIENCE, || {
        [ordered, coalesced]
            .iter()
            .all(|id| pods.handler_status(*id).is_some_and(|s| s.backlog == 0))
    })
    .await;
    assert_eq!(
        final_states(&history),
        truth,
        "the ordered handler's final states"
    );
    assert_eq!(
        final_states(&coalesced_history),
        truth,
        "the coalescing handler's final states"
    );
    let ordered_events: usize = history.lock().unwrap().values().map(Vec::len).sum();
    let coalesced_events: usize = coalesced_history
        .lock()
        .unwrap()
        .values()
        .map(Vec::len)
        .sum();
    assert!(coalesced_events <= ordered_events);
    eprintln!(
        "2000 writes ({stats:?}): converged {converged:?} after the churn started; ordered handler {ordered_events} events, coalescing {coalesced_events}, closure {}",
        events.load(std::sync::atomic::Ordering::Relaxed)
    );

    // The node index answers from the same state.
    for pod in pods.store().list() {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            let on_node = pods.store().by_index("by-node", &node).unwrap();
            assert!(
                on_node.iter().any(|p| p.metadata.name == pod.metadata.name),
                "{node} lacks {:?}",
                pod.metadata.name
            );
            assert!(
                on_node
                    .iter()
                    .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(node.as_str()))
            );
        }
    }
    let total: usize = pods
        .store()
        .list_index_values("by-node")
        .unwrap()
        .iter()
        .map(|v| pods.store().by_index("by-node", v.as_str()).unwrap().len())
        .sum();
    let scheduled = pods
        .store()
        .list()
        .iter()
        .filter(|p| p.spec.as_ref().unwrap().node_name.is_some())
        .count();
    assert_eq!(total, scheduled, "every scheduled pod is indexed once");
    assert!(scheduled > 0, "the sim's pods are scheduled");
    factory.shutdown();
    let _ = Duration::ZERO;
}
