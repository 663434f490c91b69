//! Selectors through the runtime, end to end against sim: a `key>n` label selector from a
//! `[[watch]]` entry works alone (the server filters) and beside a wider pipeline (a view
//! filters); a field selector a view cannot evaluate gets its own narrow watch, and one on
//! `metadata.name` is served by a view.

mod multicluster_support;

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use multicluster_support::{Clusters, DEADLINE, eventually};
use panoptes_actors::registry::{ClusterKey, PipelineRequest, RegistryError};
use panoptes_actors::{Event, HandlerOptions, Transform, ids::ClusterId};
use panoptes_runtime::{InformerSpec, PanoptesConfig, Runtime};
use serde_json::json;

type Seen = Arc<Mutex<Vec<(&'static str, String)>>>;

/// A handler recording (kind, namespace/name) of every event.
fn recorder<K: kube::Resource>() -> (Seen, impl Fn(Event<K>) + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let handler = move |event: Event<K>| {
        let kind = match &event {
            Event::Added { .. } => "added",
            Event::Updated { .. } => "updated",
            Event::Deleted { .. } => "deleted",
        };
        sink.lock().unwrap().push((kind, event.key().to_string()));
    };
    (seen, handler)
}

fn pod(name: &str, labels: serde_json::Value, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap()
}

fn events(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, key)| (*k, key.to_string())).collect()
}

/// One cluster and a `clusters.toml` with `[[watch]]` entries: all pods, then pods with
/// `rank>3`.
fn ranked_config(clusters: &Clusters) -> PanoptesConfig {
    let text = format!(
        "[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n\
         [[clusters]]\nname = \"only\"\nkubeconfig = {:?}\ncontext = \"sim-1\"\n\
         [[watch]]\nresource = \"v1/pods\"\n\
         [[watch]]\nresource = \"v1/pods\"\nlabel_selector = \"rank>3\"\n",
        clusters.kubeconfig.display().to_string()
    );
    PanoptesConfig::parse(
        &text,
        &clusters.dir.path().join("clusters.toml"),
        std::iter::empty(),
    )
    .expect("a selector the server accepts loads")
}

async fn greater_than_selector_through_a_watch_entry(with_wider_pipeline: bool) {
    let clusters = Clusters::start(1, 0);
    let store = clusters.sim.cluster(0).store();
    panoptes_sim::pods::seed(&store, "ranked", 0);
    let config = ranked_config(&clusters);
    let runtime = Runtime::start(&config).await.unwrap();
    let cluster = ClusterId::new("only");
    let api: Api<Pod> = Api::namespaced(runtime.client(&cluster).unwrap(), "ranked");
    for rank in 0..6 {
        let labels = json!({"rank": rank.to_string()});
        api.create(
            &PostParams::default(),
            &pod(&format!("rank-{rank}"), labels, "n"),
        )
        .await
        .unwrap();
    }
    let counters = clusters.sim.cluster(0).counters();

    let everything = with_wider_pipeline.then(|| runtime.watch(&config.watches[0]));
    if let Some(everything) = &everything {
        assert!(everything.wait_synced(&cluster, DEADLINE).await);
        eventually("the wide watch opens", || {
            counters.open_watches("pods") == 1
        })
        .await;
    }
    let ranked = runtime.watch(&config.watches[1]);
    let (seen, handler) = recorder();
    ranked.add_handler_fn(handler, HandlerOptions::default());
    assert!(ranked.wait_synced(&cluster, DEADLINE).await);
    eventually("the ranked watch opens", || {
        counters.open_watches("pods") == 1
    })
    .await;
    assert_eq!(
        (counters.lists("pods"), counters.watches("pods")),
        (1, 1),
        "one list and one watch either way"
    );
    let handle = ranked.handle(&cluster).unwrap();
    assert_eq!(handle.view().is_some(), with_wider_pipeline);
    assert_eq!(
        handle.pipeline().label_selector.as_deref(),
        (!with_wider_pipeline).then_some("rank>3"),
        "alone, the selector goes to the server"
    );
    let mut names: Vec<String> = ranked
        .list(&cluster)
        .unwrap()
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    names.sort();
    assert_eq!(names, ["rank-4", "rank-5"]);
    eventually("two initial adds", || seen.lock().unwrap().len() == 2).await;

    let relabel = |name: &'static str, rank: &'static str| {
        let api = api.clone();
        async move {
            let patch = json!({"metadata": {"labels": {"rank": rank}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    relabel("rank-1", "7").await; // into the selector
    relabel("rank-5", "2").await; // out of it
    relabel("rank-4", "9").await; // stays in
    relabel("rank-0", "3").await; // stays out (3 is not above 3)
    let high = pod("rank-high", json!({"rank": "high"}), "n"); // not an integer: never matches
    api.create(&PostParams::default(), &high).await.unwrap();
    let six = pod("rank-6", json!({"rank": "6"}), "n");
    api.create(&PostParams::default(), &six).await.unwrap();
    eventually("rank-6 arrives", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, key)| key == "ranked/rank-6")
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[2..],
        events(&[
            ("added", "ranked/rank-1"),
            ("deleted", "ranked/rank-5"),
            ("updated", "ranked/rank-4"),
            ("added", "ranked/rank-6"),
        ]),
        "{seen:?}"
    );
    assert_eq!(runtime.registry().len(), 1);
}

#[actix_rt::test]
async fn a_greater_than_selector_alone_is_filtered_by_the_server() {
    greater_than_selector_through_a_watch_entry(false).await;
}

#[actix_rt::test]
async fn a_greater_than_selector_beside_a_wider_pipeline_is_a_view() {
    greater_than_selector_through_a_watch_entry(true).await;
}

#[actix_rt::test]
async fn a_field_selector_a_view_cannot_read_gets_its_own_watch() {
    let clusters = Clusters::start(1, 0);
    let store = clusters.sim.cluster(0).store();
    panoptes_sim::pods::seed(&store, "fs", 0);
    let runtime = Runtime::start(&clusters.config(&[("only", "sim-1")]))
        .await
        .unwrap();
    let cluster = ClusterId::new("only");
    let api: Api<Pod> = Api::namespaced(runtime.client(&cluster).unwrap(), "fs");
    let counters = clusters.sim.cluster(0).counters();

    let everything = runtime.informer::<Pod>();
    assert!(everything.wait_synced(&cluster, DEADLINE).await);
    eventually("the wide watch opens", || {
        counters.open_watches("pods") == 1
    })
    .await;

    let on_node = runtime.informer_with::<Pod>(InformerSpec {
        field_selector: Some("spec.nodeName=node-x".into()),
        ..InformerSpec::default()
    });
    let (seen, handler) = recorder();
    on_node.add_handler_fn(handler, HandlerOptions::default());
    assert!(on_node.wait_synced(&cluster, DEADLINE).await);
    assert!(on_node.handle(&cluster).unwrap().view().is_none());
    eventually("a second, narrow watch", || {
        counters.open_watches("pods") == 2
    })
    .await;
    assert_eq!(runtime.registry().len(), 2);

    for (name, node) in [("a", "node-x"), ("b", "node-y"), ("c", "node-x")] {
        api.create(&PostParams::default(), &pod(name, json!({}), node))
            .await
            .unwrap();
    }
    api.delete("a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let gone = |seen: &Seen| {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(kind, key)| *kind == "deleted" && key == "fs/a")
    };
    eventually("a's deletion", || gone(&seen)).await;
    let server: Vec<String> = api
        .list(&ListParams::default().fields("spec.nodeName=node-x"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(server, ["c"]);
    let cached: Vec<String> = on_node
        .list(&cluster)
        .unwrap()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(cached, server, "the cache is the server's filtered list");
    let seen_now = seen.lock().unwrap().clone();
    assert_eq!(
        seen_now,
        events(&[("added", "fs/a"), ("added", "fs/c"), ("deleted", "fs/a")]),
        "exactly the server's events for the selector"
    );

    // A field selector on metadata reads locally: a view, no third watch.
    let by_name = runtime.informer_with::<Pod>(InformerSpec {
        field_selector: Some("metadata.name=b".into()),
        ..InformerSpec::default()
    });
    assert!(by_name.wait_synced(&cluster, DEADLINE).await);
    assert!(by_name.handle(&cluster).unwrap().view().is_some());
    let names: Vec<String> = by_name
        .list(&cluster)
        .unwrap()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["b"]);
    assert_eq!(counters.watches("pods"), 2);
    assert_eq!(runtime.registry().len(), 2);
}

#[actix_rt::test]
async fn two_spellings_of_one_selector_share_one_watch_and_a_bad_one_fails_at_once() {
    let clusters = Clusters::start(1, 3);
    let runtime = Runtime::start(&clusters.config(&[("only", "sim-1")]))
        .await
        .unwrap();
    let cluster = ClusterId::new("only");
    let counters = clusters.sim.cluster(0).counters();
    let spec = |selector: &str| InformerSpec {
        label_selector: Some(selector.into()),
        ..InformerSpec::default()
    };
    let first = runtime.informer_with::<Pod>(spec("tier in (b, a),app"));
    let second = runtime.informer_with::<Pod>(spec("app, tier in (a,b,a)"));
    assert!(first.wait_synced(&cluster, DEADLINE).await);
    assert!(second.wait_synced(&cluster, DEADLINE).await);
    assert_eq!(runtime.registry().len(), 1);
    let key = first.handle(&cluster).unwrap().pipeline().clone();
    assert_eq!(key.label_selector.as_deref(), Some("app,tier in (a,b)"));
    assert_eq!(&key, second.handle(&cluster).unwrap().pipeline());
    eventually("the watch opens", || counters.open_watches("pods") == 1).await;
    assert_eq!((counters.lists("pods"), counters.watches("pods")), (1, 1));

    let request = PipelineRequest::new(
        cluster.clone(),
        ClusterKey::new("only-identity"),
        runtime.client(&cluster).unwrap(),
    )
    .label_selector("a===b");
    let error = runtime
        .registry()
        .informer::<Pod>(&request, Transform::default())
        .err()
        .expect("a selector the server refuses is refused");
    let RegistryError::Selector { source, .. } = &error else {
        panic!("expected a selector error, got {error}");
    };
    assert_eq!(
        source.message,
        "unable to parse requirement: found '=', expected: identifier"
    );
    assert_eq!(runtime.registry().len(), 1, "nothing started for it");
}
