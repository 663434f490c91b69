//! The multi-cluster API as a kube-rs user meets it, against simulated clusters: fleet-wide
//! indexes (across a join, answered by views from their own filter), every handler kind on a
//! `MultiInformer`, streams (order, backpressure), predicates on handlers and streams, and
//! `status()` counters that agree with the state.

mod multicluster_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use multicluster_support::{Clusters, DEADLINE, eventually};
use panoptes_actors::reflector::ReflectorState;
use panoptes_actors::{
    Event, HandlerOptions, IndexError, NAMESPACE_INDEX, handler_actor, handler_fn, predicate,
};
use panoptes_actors::{event_stream::STREAM_CAPACITY, ids::ClusterId};
use panoptes_runtime::{InformerSpec, MultiInformer, Runtime};
use panoptes_sim::store::DeleteOptions;
use serde_json::json;

fn app_of(pod: &Pod) -> Vec<String> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get("app").cloned())
        .into_iter()
        .collect()
}

/// (cluster, namespace/name) of each found object, sorted.
fn keys(found: &[(ClusterId, Arc<Pod>)]) -> BTreeSet<(String, String)> {
    found
        .iter()
        .map(|(cluster, pod)| {
            let meta = &pod.metadata;
            let key = format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            );
            (cluster.to_string(), key)
        })
        .collect()
}

/// What a scan of every cluster's cache finds under `app`.
fn scanned(pods: &MultiInformer<Pod>, app: &str) -> Vec<(ClusterId, Arc<Pod>)> {
    pods.list_all()
        .into_iter()
        .filter(|(_, pod)| app_of(pod).iter().any(|a| a == app))
        .collect()
}

#[actix_rt::test]
async fn a_fleet_index_answers_across_clusters_and_for_a_cluster_that_joins_later() {
    let clusters = Clusters::start(3, 25);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1"), ("c2", "sim-2")]))
        .await
        .unwrap();
    let pods = runtime.informer::<Pod>();
    pods.add_indexer("by-app", app_of).unwrap();
    assert!(matches!(
        pods.add_indexer("by-app", app_of),
        Err(IndexError::DuplicateIndex(_))
    ));
    assert!(matches!(
        pods.by_index("by-node", "node-1"),
        Err(IndexError::UnknownIndex(_))
    ));
    assert!(pods.wait_all_synced(DEADLINE).await.values().all(|s| *s));

    let found = pods.by_index("by-app", "app-3").unwrap();
    let clusters_found: BTreeSet<_> = found.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(clusters_found, BTreeSet::from(["c1".into(), "c2".into()]));
    assert_eq!(keys(&found), keys(&scanned(&pods, "app-3")));

    let joined = clusters.config(&[("c1", "sim-1"), ("c2", "sim-2"), ("c3", "sim-3")]);
    runtime.reload(&joined).await.unwrap();
    let c3 = ClusterId::new("c3");
    assert!(pods.wait_synced(&c3, DEADLINE).await);
    let in_c3 = pods.by_index_in(&c3, "by-app", "app-3").unwrap();
    assert!(!in_c3.is_empty(), "the joining cluster has the index");
    let found = pods.by_index("by-app", "app-3").unwrap();
    assert_eq!(keys(&found), keys(&scanned(&pods, "app-3")));
    assert_eq!(found.len(), 3 * in_c3.len());
    // New objects are indexed as they arrive.
    panoptes_sim::pods::seed(&clusters.sim.cluster(2).store(), "default", 45);
    eventually("c3's new pods are indexed", || {
        pods.by_index_in(&c3, "by-app", "app-3").unwrap().len() == in_c3.len() + 1
    })
    .await;
}

#[actix_rt::test]
async fn a_namespace_view_answers_index_lookups_from_its_own_namespace() {
    let clusters = Clusters::start(1, 0);
    let store = clusters.sim.cluster(0).store();
    panoptes_sim::pods::seed(&store, "a", 3);
    panoptes_sim::pods::seed(&store, "b", 3);
    let runtime = Runtime::start(&clusters.config(&[("only", "sim-1")]))
        .await
        .unwrap();
    let only = ClusterId::new("only");
    let everything = runtime.informer::<Pod>();
    assert!(everything.wait_synced(&only, DEADLINE).await);
    let in_a = runtime.informer_with::<Pod>(InformerSpec {
        namespace: Some("a".into()),
        ..InformerSpec::default()
    });
    assert!(in_a.wait_synced(&only, DEADLINE).await);
    assert!(
        in_a.handle(&only).unwrap().view().is_some(),
        "served as a view of the cluster-wide pipeline"
    );
    everything.add_indexer("by-app", app_of).unwrap();
    in_a.add_indexer("by-app", app_of).unwrap();

    let wide = everything.by_index("by-app", "app-0").unwrap();
    let narrow = in_a.by_index("by-app", "app-0").unwrap();
    let namespaces = |found: &[(ClusterId, Arc<Pod>)]| -> BTreeSet<String> {
        found
            .iter()
            .filter_map(|(_, pod)| pod.metadata.namespace.clone())
            .collect()
    };
    assert_eq!(namespaces(&wide), BTreeSet::from(["a".into(), "b".into()]));
    assert_eq!(namespaces(&narrow), BTreeSet::from(["a".into()]));
    assert!(in_a.by_index(NAMESPACE_INDEX, "b").unwrap().is_empty());
    assert_eq!(
        in_a.by_index_in(&only, NAMESPACE_INDEX, "a").unwrap().len(),
        3
    );
}

type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A handler actor counting its instances and recording (cluster, key) of every event.
struct Recording {
    seen: Seen,
    instances: Arc<AtomicUsize>,
}

impl Actor for Recording {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.instances.fetch_add(1, Ordering::SeqCst);
    }
}

impl Handler<Event<Pod>> for Recording {
    type Result = ();

    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) {
        let entry = (event.cluster().to_string(), event.key().to_string());
        self.seen.lock().unwrap().push(entry);
    }
}

#[actix_rt::test]
async fn a_multi_informer_takes_a_recipient_a_restartable_factory_and_one_fnmut_closure() {
    let clusters = Clusters::start(2, 3);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1"), ("c2", "sim-2")]))
        .await
        .unwrap();
    let pods = runtime.informer::<Pod>();

    let owned = (Seen::default(), Arc::new(AtomicUsize::new(0)));
    let recipient = Recording {
        seen: owned.0.clone(),
        instances: owned.1.clone(),
    }
    .start()
    .recipient();
    pods.add_handler(recipient, HandlerOptions::default());

    let factory = (Seen::default(), Arc::new(AtomicUsize::new(0)));
    let (seen, instances) = (factory.0.clone(), factory.1.clone());
    pods.add_handler(
        handler_actor(move || Recording {
            seen: seen.clone(),
            instances: instances.clone(),
        }),
        HandlerOptions::default(),
    );

    // State kept in the closure itself, no Mutex: one closure serves both clusters.
    let published = Arc::new(AtomicUsize::new(0));
    let out = published.clone();
    let mut events = 0;
    pods.add_handler(
        handler_fn(move |_: Event<Pod>| {
            events += 1;
            out.store(events, Ordering::SeqCst);
        }),
        HandlerOptions::default(),
    );

    let six = |seen: &Seen| seen.lock().unwrap().len() == 6;
    eventually("the recipient gets both clusters' pods", || six(&owned.0)).await;
    eventually("the factory's actors get both clusters' pods", || {
        six(&factory.0)
    })
    .await;
    eventually("the one closure counts both clusters' pods", || {
        published.load(Ordering::SeqCst) == 6
    })
    .await;
    assert_eq!(owned.1.load(Ordering::SeqCst), 1, "one caller-owned actor");
    assert_eq!(
        factory.1.load(Ordering::SeqCst),
        2,
        "the factory starts one actor per cluster"
    );
    let per_cluster: BTreeSet<_> = factory.0.lock().unwrap().iter().cloned().collect();
    assert_eq!(per_cluster.len(), 6);
}

#[actix_rt::test]
async fn a_stream_keeps_each_clusters_order_and_a_slow_one_holds_back_only_itself() {
    let clusters = Clusters::start(2, 2);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1"), ("c2", "sim-2")]))
        .await
        .unwrap();
    let pods = runtime.informer::<Pod>();
    assert!(pods.wait_all_synced(DEADLINE).await.values().all(|s| *s));
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    pods.add_handler_fn(
        move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
        HandlerOptions::default(),
    );
    let mut stream = pods.stream();

    // Well past the stream's channel, without reading it.
    let more = 2 * STREAM_CAPACITY;
    for cluster in clusters.sim.clusters() {
        panoptes_sim::pods::seed(&cluster.store(), "default", 2 + more);
    }
    let total = 2 * (2 + more);
    eventually("the closure handler is not held back", || {
        handled.load(Ordering::SeqCst) == total
    })
    .await;
    eventually("the stream's backlog holds the rest", || {
        stream.backlog() == total
    })
    .await;

    let mut order: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for _ in 0..total {
        let event = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("the stream yields within the deadline")
            .expect("the stream is open");
        let name = event.object().metadata.name.clone().unwrap();
        order
            .entry(event.cluster().to_string())
            .or_default()
            .push(name);
    }
    for (cluster, names) in &order {
        let initial: BTreeSet<_> = names[..2].iter().cloned().collect();
        assert_eq!(
            initial,
            BTreeSet::from(["pod-00000".into(), "pod-00001".into()])
        );
        let mut created = names[2..].to_vec();
        created.sort();
        assert_eq!(names[2..], created[..], "{cluster}: creations in order");
    }
    assert_eq!(order.len(), 2);
    // The listener counts its last hand-over after the stream has the event.
    eventually("the stream's backlog drains", || stream.backlog() == 0).await;
}

#[actix_rt::test]
async fn predicates_filter_updates_for_handlers_and_streams() {
    let clusters = Clusters::start(1, 2);
    let runtime = Runtime::start(&clusters.config(&[("only", "sim-1")]))
        .await
        .unwrap();
    let only = ClusterId::new("only");
    let pods = runtime.informer::<Pod>();
    type Log = Arc<Mutex<Vec<String>>>;
    let record = |log: &Log| {
        let log = log.clone();
        move |event: Event<Pod>| {
            let kind = match &event {
                Event::Added { .. } => "added",
                Event::Updated { .. } => "updated",
                Event::Deleted { .. } => "deleted",
            };
            let name = event.object().metadata.name.clone().unwrap();
            log.lock().unwrap().push(format!("{kind} {name}"));
        }
    };
    let logs: Vec<(&str, Log)> = ["labels", "annotations", "generation", "status", "custom"]
        .into_iter()
        .map(|name| (name, Log::default()))
        .collect();
    let predicates = [
        predicate::labels_changed(),
        predicate::annotations_changed(),
        predicate::generation_changed(),
        predicate::status_changed(),
        predicate::custom(|old: Option<&Pod>, new: &Pod| {
            old.is_none() && new.metadata.name.as_deref() == Some("pod-00001")
        }),
    ];
    for ((_, log), p) in logs.iter().zip(predicates) {
        pods.add_handler_fn(record(log), HandlerOptions::default().predicate(p));
    }
    let mut labels_stream =
        pods.stream_with(HandlerOptions::default().predicate(predicate::labels_changed()));
    assert!(pods.wait_synced(&only, DEADLINE).await);

    let api: Api<Pod> = Api::namespaced(runtime.client(&only).unwrap(), "default");
    let patch = |body| Patch::Merge(body);
    let params = PatchParams::default();
    api.patch(
        "pod-00000",
        &params,
        &patch(json!({"metadata": {"labels": {"tier": "web"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "pod-00000",
        &params,
        &patch(json!({"metadata": {"annotations": {"note": "x"}}})),
    )
    .await
    .unwrap();
    // A delete passes every predicate: once a handler has it, it has judged the updates.
    let store = clusters.sim.cluster(0).store();
    let options = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    store
        .delete(
            &store.builtin("", "pods"),
            Some("default"),
            "pod-00000",
            &options,
        )
        .unwrap();
    for (name, log) in &logs {
        eventually(&format!("the {name} handler gets the delete"), || {
            log.lock().unwrap().last().map(String::as_str) == Some("deleted pod-00000")
        })
        .await;
    }
    let sorted = |log: &Log| {
        let mut entries = log.lock().unwrap().clone();
        let last = entries.pop();
        entries.sort();
        entries.extend(last);
        entries
    };
    let adds = ["added pod-00000", "added pod-00001"];
    let expected = |extra: &[&str]| -> Vec<String> {
        adds.iter()
            .chain(extra)
            .chain(&["deleted pod-00000"])
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(
        sorted(&logs[0].1),
        expected(&["updated pod-00000"]),
        "labels"
    );
    assert_eq!(
        sorted(&logs[1].1),
        expected(&["updated pod-00000"]),
        "annotations"
    );
    assert_eq!(sorted(&logs[2].1), expected(&[]), "generation");
    assert_eq!(sorted(&logs[3].1), expected(&[]), "status");
    assert_eq!(
        sorted(&logs[4].1),
        ["added pod-00001", "deleted pod-00000"],
        "custom: only its add, and the delete"
    );

    let mut streamed = Vec::new();
    while streamed.len() < 4 {
        let event = tokio::time::timeout(DEADLINE, labels_stream.next())
            .await
            .expect("the stream yields")
            .expect("open");
        streamed.push(format!("{event:?}"));
    }
    assert!(streamed[2].starts_with("Updated"), "{streamed:?}");
    assert!(streamed[3].starts_with("Deleted"), "{streamed:?}");
}

#[actix_rt::test]
async fn status_counters_agree_with_the_state_they_are_reported_with() {
    let clusters = Clusters::start(1, 50);
    let runtime = Runtime::start(&clusters.config(&[("only", "sim-1")]))
        .await
        .unwrap();
    let pods = runtime.informer::<Pod>();
    let mut watching_seen = false;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !watching_seen {
        assert!(tokio::time::Instant::now() < deadline, "never Watching");
        for status in pods.status() {
            if status.state == Some(ReflectorState::Watching) {
                assert!(
                    status.watches >= 1,
                    "Watching with no watch counted: {status:?}"
                );
                assert!(status.lists >= 1, "{status:?}");
                watching_seen = true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let runtime_view: Vec<_> = runtime.status();
    assert_eq!(runtime_view.len(), 1);
    assert!(runtime_view[0].watches >= 1);
}
