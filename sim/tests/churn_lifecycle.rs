//! The embedded churn seen by a client: a real `kube::Client` watches a churned namespace
//! over HTTPS and checks the pods live as a kubelet reports them — phases from Pending to
//! Running to Succeeded or Failed, rising restart counts, and Ready transitions whose
//! `lastTransitionTime` changes only when the status flips.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use panoptes_sim::churn::{Churn, ChurnConfig};
use panoptes_sim::{Sim, SimOptions};

const WRITES: u64 = 1800;

/// What one watch event said of a pod.
struct Seen {
    ready: Option<(String, String)>,
    restarts: i32,
}

fn seen(pod: &Pod) -> Seen {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            let time = c.last_transition_time.map(|t| t.0.to_string());
            (c.status, time.unwrap_or_default())
        });
    let restarts = status
        .container_statuses
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .sum();
    Seen { ready, restarts }
}

#[tokio::test]
async fn churned_pods_live_as_a_kubelet_reports_them() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let store = sim.cluster(0).store();
    panoptes_sim::pods::ensure_namespace(&store, "life");
    let pods: Api<Pod> = Api::namespaced(common::client(sim.cluster(0)).await, "life");
    let rv = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("list resourceVersion");
    let mut events = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();

    let churn = Churn::start(
        store.clone(),
        ChurnConfig {
            namespace: "life".into(),
            target_pods: 20,
            rate_per_sec: 600.0,
            max_writes: Some(WRITES),
            seed: 3,
            ..ChurnConfig::default()
        },
    );
    let stats = churn.wait(Duration::from_secs(30));
    assert_eq!(
        stats.total(),
        WRITES,
        "the churn made all its writes: {stats:?}"
    );
    let last_rv = store.resource_version();

    let mut phases = BTreeSet::new();
    let mut last: HashMap<String, Seen> = HashMap::new();
    let (mut restarts_rose, mut flips, mut flips_with_new_time) = (0, 0, 0);
    let mut unchanged_status_new_time = Vec::new();
    let read_all = async {
        while let Some(event) = events.next().await {
            let pod = match event.expect("watch event") {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) | WatchEvent::Deleted(pod) => {
                    pod
                }
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(error) => panic!("watch error: {error:?}"),
            };
            let name = pod.metadata.name.clone().expect("name");
            let pod_rv: u64 = pod
                .metadata
                .resource_version
                .as_deref()
                .and_then(|rv| rv.parse().ok())
                .expect("numeric resourceVersion");
            if let Some(phase) = pod.status.as_ref().and_then(|s| s.phase.clone()) {
                phases.insert(phase);
            }
            let now = seen(&pod);
            if let Some(before) = last.get(&name) {
                restarts_rose += usize::from(now.restarts > before.restarts);
                if let (Some((was, was_at)), Some((is, is_at))) = (&before.ready, &now.ready) {
                    if was == is {
                        if was_at != is_at {
                            unchanged_status_new_time
                                .push(format!("{name}: {was} {was_at} -> {is_at}"));
                        }
                    } else {
                        flips += 1;
                        assert!(
                            is_at >= was_at,
                            "{name}: Ready went back in time {was_at} -> {is_at}"
                        );
                        flips_with_new_time += usize::from(is_at > was_at);
                    }
                }
            }
            last.insert(name, now);
            if pod_rv >= last_rv {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the watch delivers every churn write within 30 s");

    assert!(
        phases.contains("Pending") && phases.contains("Running"),
        "phases seen: {phases:?}"
    );
    assert!(
        phases.contains("Succeeded") || phases.contains("Failed"),
        "some pod ended: {phases:?}"
    );
    assert!(restarts_rose > 0, "some restartCount rose ({stats:?})");
    assert!(
        unchanged_status_new_time.is_empty(),
        "Ready's lastTransitionTime changed without a flip: {unchanged_status_new_time:?}"
    );
    assert!(
        flips > 0 && flips_with_new_time > 0,
        "Ready flipped {flips} times, {flips_with_new_time} with a later time"
    );
}
