//! Pipelines are shared: across parts of a program, across config entries that reach the
//! same server as the same user, and from a cluster-wide watch to a namespace-scoped request;
//! and the last handle going closes the watch.

mod multicluster_support;

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use multicluster_support::{Clusters, eventually};
use panoptes_actors::{Event, HandlerOptions, ids::ClusterId};
use panoptes_runtime::{InformerSpec, Runtime};

type Seen = Arc<Mutex<Vec<(String, String, &'static str)>>>;

/// A closure handler recording (cluster, namespace/name, kind) of every event.
fn recorder() -> (Seen, impl Fn(Event<Pod>) + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let handler = move |event: Event<Pod>| {
        let kind = match &event {
            Event::Added { .. } => "added",
            Event::Updated { .. } => "updated",
            Event::Deleted { .. } => "deleted",
        };
        let key = event.key().to_string();
        sink.lock()
            .unwrap()
            .push((event.cluster().to_string(), key, kind));
    };
    (seen, handler)
}

#[actix_rt::test]
async fn three_parts_asking_for_pods_on_three_clusters_make_one_list_and_one_watch_each() {
    let clusters = Clusters::start(3, 5);
    let config = clusters.config(&[("one", "sim-1"), ("two", "sim-2"), ("three", "sim-3")]);
    let runtime = Runtime::start(&config).await.unwrap();

    let parts: Vec<_> = (0..3).map(|_| runtime.informer::<Pod>()).collect();
    let mut recorded = Vec::new();
    for informer in &parts {
        let (seen, handler) = recorder();
        informer.add_handler_fn(handler, HandlerOptions::default());
        recorded.push(seen);
    }
    for informer in &parts {
        let synced = informer
            .wait_all_synced(multicluster_support::DEADLINE)
            .await;
        assert!(synced.values().all(|s| *s), "{synced:?}");
    }
    for seen in &recorded {
        eventually("every part sees 15 initial pods", || {
            seen.lock().unwrap().len() == 15
        })
        .await;
    }
    for cluster in clusters.sim.clusters() {
        let counters = cluster.counters();
        eventually("the watch opens", || counters.open_watches("pods") == 1).await;
        assert_eq!(counters.lists("pods"), 1, "{}", cluster.name());
        assert_eq!(counters.watches("pods"), 1, "{}", cluster.name());
    }
    assert_eq!(runtime.registry().len(), 3);
}

#[actix_rt::test]
async fn two_entries_for_the_same_server_and_token_share_one_pipeline() {
    let clusters = Clusters::start(1, 4);
    let config = clusters.config(&[("alpha", "sim-1"), ("beta", "sim-1")]);
    let runtime = Runtime::start(&config).await.unwrap();

    let pods = runtime.informer::<Pod>();
    let (seen, handler) = recorder();
    pods.add_handler_fn(handler, HandlerOptions::default());
    let synced = pods.wait_all_synced(multicluster_support::DEADLINE).await;
    assert_eq!(synced.len(), 2);
    assert!(synced.values().all(|s| *s));

    assert_eq!(runtime.registry().len(), 1, "one pipeline for both entries");
    let counters = clusters.sim.cluster(0).counters();
    eventually("the watch opens", || counters.open_watches("pods") == 1).await;
    assert_eq!((counters.lists("pods"), counters.watches("pods")), (1, 1));

    // Both entries see every pod, each event naming its own entry.
    eventually("4 initial adds per entry", || {
        seen.lock().unwrap().len() == 8
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    for name in ["alpha", "beta"] {
        assert_eq!(seen.iter().filter(|(c, _, _)| c == name).count(), 4);
        assert_eq!(pods.list(&ClusterId::new(name)).unwrap().len(), 4);
    }
    assert_eq!(pods.list_all().len(), 8);
}

#[actix_rt::test]
async fn a_namespace_request_is_served_from_the_cluster_wide_pipeline() {
    let clusters = Clusters::start(1, 0);
    let store = clusters.sim.cluster(0).store();
    panoptes_sim::pods::seed(&store, "ns-a", 5);
    panoptes_sim::pods::seed(&store, "ns-b", 3);
    let config = clusters.config(&[("only", "sim-1")]);
    let runtime = Runtime::start(&config).await.unwrap();
    let cluster = ClusterId::new("only");

    let everything = runtime.informer::<Pod>();
    assert!(
        everything
            .wait_synced(&cluster, multicluster_support::DEADLINE)
            .await
    );
    let counters = clusters.sim.cluster(0).counters();
    eventually("the watch opens", || counters.open_watches("pods") == 1).await;

    let in_b = runtime.informer_with::<Pod>(InformerSpec {
        namespace: Some("ns-b".into()),
        ..InformerSpec::default()
    });
    let (seen, handler) = recorder();
    in_b.add_handler_fn(handler, HandlerOptions::default());
    assert!(in_b.has_synced(&cluster));
    assert_eq!(in_b.list(&cluster).unwrap().len(), 3);
    assert!(in_b.handle(&cluster).unwrap().view().is_some());

    // A pod in ns-a first, then one in ns-b: once the ns-b one arrived, the ns-a one has
    // passed through the same pipeline and must have been filtered out.
    panoptes_sim::pods::seed(&store, "ns-a", 6);
    panoptes_sim::pods::seed(&store, "ns-b", 4);
    eventually("the new ns-b pod", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, key, _)| key == "ns-b/pod-00003")
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(c, key, kind)| c == "only" && key.starts_with("ns-b/") && *kind == "added")
    );
    assert_eq!(
        (counters.lists("pods"), counters.watches("pods")),
        (1, 1),
        "no new list or watch for the namespace"
    );
    assert_eq!(runtime.registry().len(), 1);
}

#[actix_rt::test]
async fn dropping_the_last_handle_closes_the_watch_at_the_server() {
    let clusters = Clusters::start(1, 3);
    let config = clusters.config(&[("only", "sim-1")]);
    let runtime = Runtime::start(&config).await.unwrap();
    let counters = clusters.sim.cluster(0).counters();

    let first = runtime.informer::<Pod>();
    let (_seen, handler) = recorder();
    first.add_handler_fn(handler, HandlerOptions::default());
    let second = runtime.informer::<Pod>();
    let third_part = first.clone();
    eventually("the watch opens", || counters.open_watches("pods") == 1).await;

    drop(first);
    drop(second);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(counters.open_watches("pods"), 1, "a clone still holds it");

    drop(third_part);
    eventually("the watch closes", || counters.open_watches("pods") == 0).await;
    assert!(runtime.registry().is_empty());
}
