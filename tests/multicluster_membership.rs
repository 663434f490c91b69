//! Clusters join and leave a running runtime, and a cluster that is down holds back nobody.

mod multicluster_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use multicluster_support::{Clusters, DEADLINE, eventually};
use panoptes_actors::{Event, HandlerOptions, ids::ClusterId};
use panoptes_runtime::Runtime;

type PerCluster = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// Records, per cluster, the keys of every event.
fn per_cluster() -> (PerCluster, impl Fn(Event<Pod>) + Send + Sync + 'static) {
    let seen: PerCluster = Arc::default();
    let sink = seen.clone();
    let handler = move |event: Event<Pod>| {
        sink.lock()
            .unwrap()
            .entry(event.cluster().to_string())
            .or_default()
            .push(event.key().to_string());
    };
    (seen, handler)
}

fn saw(seen: &PerCluster, cluster: &str, key: &str) -> bool {
    seen.lock()
        .unwrap()
        .get(cluster)
        .is_some_and(|keys| keys.iter().any(|k| k == key))
}

#[actix_rt::test]
async fn reload_adds_cluster_four_and_removes_cluster_two_while_events_flow() {
    let clusters = Clusters::start(4, 2);
    let before = clusters.config(&[("c1", "sim-1"), ("c2", "sim-2"), ("c3", "sim-3")]);
    let runtime = Runtime::start(&before).await.unwrap();
    let pods = runtime.informer::<Pod>();
    let (seen, handler) = per_cluster();
    pods.add_handler_fn(handler, HandlerOptions::default());
    let synced = pods.wait_all_synced(DEADLINE).await;
    assert_eq!(synced.len(), 3);
    assert!(synced.values().all(|s| *s), "{synced:?}");
    let sim2 = clusters.sim.cluster(1).counters();
    eventually("c2's watch opens", || sim2.open_watches("pods") == 1).await;

    let after = clusters.config(&[("c1", "sim-1"), ("c3", "sim-3"), ("c4", "sim-4")]);
    let report = runtime.reload(&after).await.unwrap();
    assert_eq!(report.added, vec![ClusterId::new("c4")]);
    assert_eq!(report.removed, vec![ClusterId::new("c2")]);
    assert_eq!(
        pods.clusters(),
        ["c1", "c3", "c4"].map(ClusterId::new).to_vec()
    );

    // c4 joined: its objects arrive as initial adds; c2 left: its watch is closed.
    eventually("c4's pods", || saw(&seen, "c4", "default/pod-00001")).await;
    eventually("c2's watch closes", || sim2.open_watches("pods") == 0).await;
    assert!(pods.list(&ClusterId::new("c2")).is_none());

    // The clusters that stayed keep delivering; c2 delivers nothing more.
    let c2_events = seen.lock().unwrap().get("c2").map_or(0, Vec::len);
    for i in [0, 1, 2, 3] {
        panoptes_sim::pods::seed(&clusters.sim.cluster(i).store(), "default", 3);
    }
    for name in ["c1", "c3", "c4"] {
        eventually("a new pod on each remaining cluster", || {
            saw(&seen, name, "default/pod-00002")
        })
        .await;
    }
    assert_eq!(
        seen.lock().unwrap().get("c2").map_or(0, Vec::len),
        c2_events
    );
    eventually("readiness forgets c2", || {
        runtime.readiness().is_ready()
            && runtime
                .readiness()
                .not_ready()
                .iter()
                .all(|(c, _)| c.as_str() != "c2")
    })
    .await;
}

#[actix_rt::test]
async fn a_cluster_down_at_start_holds_back_nobody_and_is_engaged_when_it_comes_up() {
    let clusters = Clusters::start(3, 2);
    clusters.sim.cluster(1).stop();
    let config = clusters.config(&[("c1", "sim-1"), ("c2", "sim-2"), ("c3", "sim-3")]);
    let runtime = Runtime::start(&config).await.unwrap();
    let pods = runtime.informer::<Pod>();
    let (seen, handler) = per_cluster();
    pods.add_handler_fn(handler, HandlerOptions::default());

    for name in ["c1", "c3"] {
        assert!(
            pods.wait_synced(&ClusterId::new(name), DEADLINE).await,
            "{name}"
        );
    }
    panoptes_sim::pods::seed(&clusters.sim.cluster(0).store(), "default", 3);
    eventually("c1 delivers changes", || {
        saw(&seen, "c1", "default/pod-00002")
    })
    .await;
    assert!(!pods.has_synced(&ClusterId::new("c2")));
    assert!(!pods.all_synced());
    eventually("readiness names c2 alone", || {
        runtime.readiness().not_ready() == vec![(ClusterId::new("c2"), "v1/pods".to_string())]
    })
    .await;

    clusters.sim.cluster(1).start().unwrap();
    assert!(pods.wait_synced(&ClusterId::new("c2"), DEADLINE).await);
    eventually("c2's pods", || saw(&seen, "c2", "default/pod-00001")).await;
    eventually("ready", || runtime.readiness().is_ready()).await;
}
