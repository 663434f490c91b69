//! Metadata-only informers end to end, against sim over HTTP with a real `kube::Client`:
//! `Runtime::metadata_informer` syncs, sees adds, updates and deletes carrying only metadata
//! (the objects the server sent are `PartialObjectMetadata`, which sim only sends to a
//! client asking with the metadata `Accept` headers), its lister and selectors work, a typed
//! and a metadata pipeline of one resource are two watches, a type that cannot hold
//! metadata is refused before any request, and `[[watch]] cache = "metadata"` works through
//! the `Runtime` and the `panoptes` binary.

mod multicluster_support;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use multicluster_support::{Clusters, DEADLINE, eventually};
use panoptes_actors::{CacheMode, Event, HandlerOptions, ids::ClusterId};
use panoptes_runtime::{InformerSpec, PanoptesConfig, Runtime};
use serde_json::json;

const PANOPTES: &str = env!("CARGO_BIN_EXE_panoptes");

type Seen = Arc<Mutex<Vec<(&'static str, String, Option<String>)>>>;

/// A handler recording (kind, key, the object's `kind` as the server sent it).
fn recorder() -> (
    Seen,
    impl Fn(Event<PartialObjectMeta<Pod>>) + Send + Sync + 'static,
) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let handler = move |event: Event<PartialObjectMeta<Pod>>| {
        let (kind, object) = match &event {
            Event::Added { obj, .. } => ("added", obj.clone()),
            Event::Updated { new, .. } => ("updated", new.clone()),
            Event::Deleted { obj, .. } => ("deleted", obj.clone()),
        };
        let sent_as = object.types.as_ref().map(|t| t.kind.clone());
        sink.lock()
            .unwrap()
            .push((kind, event.key().to_string(), sent_as));
    };
    (seen, handler)
}

fn pod(name: &str, tier: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"tier": tier}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap()
}

/// A configuration naming sim's first cluster `only`, with `watches` appended verbatim.
fn config(clusters: &Clusters, watches: &str) -> PanoptesConfig {
    let text = format!(
        "[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n\
         [[clusters]]\nname = \"only\"\nkubeconfig = {:?}\ncontext = \"sim-1\"\n{watches}",
        clusters.kubeconfig.display().to_string()
    );
    PanoptesConfig::parse(
        &text,
        &clusters.dir.path().join("clusters.toml"),
        std::iter::empty(),
    )
    .expect("test config is valid")
}

#[actix_rt::test]
async fn a_metadata_informer_syncs_and_sees_changes_with_only_metadata() {
    let clusters = Clusters::start(1, 4);
    let runtime = Runtime::start(&config(&clusters, "")).await.unwrap();
    let cluster = ClusterId::new("only");
    let counters = clusters.sim.cluster(0).counters();

    let pods = runtime.metadata_informer::<Pod>();
    let (seen, handler) = recorder();
    pods.add_handler_fn(handler, HandlerOptions::default());
    assert!(pods.wait_synced(&cluster, DEADLINE).await);
    assert_eq!(
        pods.handle(&cluster).unwrap().pipeline().cache,
        CacheMode::Metadata
    );

    let cached = pods.list(&cluster).unwrap();
    assert_eq!(cached.len(), 4);
    for meta in &cached {
        let types = meta.types.as_ref().expect("the server names the kind");
        assert_eq!(
            (types.kind.as_str(), types.api_version.as_str()),
            ("PartialObjectMetadata", "meta.k8s.io/v1"),
            "the list was answered as PartialObjectMetadataList"
        );
        assert!(meta.metadata.name.is_some() && meta.metadata.resource_version.is_some());
        assert_eq!(meta.metadata.managed_fields, None, "managedFields are cut");
    }

    let api: Api<Pod> = Api::namespaced(runtime.client(&cluster).unwrap(), "default");
    api.create(&PostParams::default(), &pod("meta-a", "web"))
        .await
        .unwrap();
    eventually("the add", || {
        pods.get(&cluster, Some("default"), "meta-a").is_some()
    })
    .await;
    let patch = json!({"metadata": {"labels": {"tier": "db"}}});
    api.patch("meta-a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("the update", || {
        pods.get(&cluster, Some("default"), "meta-a")
            .and_then(|p| p.metadata.labels.clone())
            .is_some_and(|l| l.get("tier").map(String::as_str) == Some("db"))
    })
    .await;
    api.delete("meta-a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("the delete", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(kind, key, _)| *kind == "deleted" && key == "default/meta-a")
    })
    .await;
    eventually("the object leaves the cache", || {
        pods.get(&cluster, Some("default"), "meta-a").is_none()
    })
    .await;

    let seen = seen.lock().unwrap().clone();
    let ours: Vec<_> = seen
        .iter()
        .filter(|(_, key, _)| key == "default/meta-a")
        .collect();
    assert_eq!(ours.first().map(|e| e.0), Some("added"), "{seen:?}");
    assert!(ours.iter().any(|e| e.0 == "updated"), "{seen:?}");
    assert_eq!(ours.last().map(|e| e.0), Some("deleted"), "{seen:?}");
    for (kind, key, sent_as) in &seen {
        assert_eq!(
            sent_as.as_deref(),
            Some("PartialObjectMetadata"),
            "{kind} {key}: the watch was answered with metadata only"
        );
    }
    assert_eq!((counters.lists("pods"), counters.watches("pods")), (1, 1));
}

#[actix_rt::test]
async fn typed_and_metadata_pipelines_of_one_resource_are_two_watches_and_selectors_work() {
    let clusters = Clusters::start(1, 0);
    let runtime = Runtime::start(&config(&clusters, "")).await.unwrap();
    let cluster = ClusterId::new("only");
    let api: Api<Pod> = Api::namespaced(runtime.client(&cluster).unwrap(), "default");
    for (name, tier) in [("w1", "web"), ("w2", "web"), ("d1", "db")] {
        api.create(&PostParams::default(), &pod(name, tier))
            .await
            .unwrap();
    }
    let counters = clusters.sim.cluster(0).counters();

    let typed = runtime.informer::<Pod>();
    let metadata = runtime.metadata_informer::<Pod>();
    assert!(typed.wait_synced(&cluster, DEADLINE).await);
    assert!(metadata.wait_synced(&cluster, DEADLINE).await);
    eventually("both watches open", || counters.open_watches("pods") == 2).await;
    assert_eq!(counters.lists("pods"), 2, "one list per pipeline");
    assert_eq!(runtime.registry().len(), 2);
    let typed_pod = typed.get(&cluster, Some("default"), "w1").unwrap();
    assert!(typed_pod.spec.is_some(), "the typed cache holds whole pods");

    // A label selector over the metadata pipeline: a view, no new request.
    let web = runtime.informer_with::<PartialObjectMeta<Pod>>(InformerSpec {
        label_selector: Some("tier=web".into()),
        cache: CacheMode::Metadata,
        ..InformerSpec::default()
    });
    assert!(web.wait_synced(&cluster, DEADLINE).await);
    let handle = web.handle(&cluster).unwrap();
    assert!(handle.view().is_some(), "served from the metadata pipeline");
    assert_eq!(handle.pipeline().cache, CacheMode::Metadata);
    let mut names: Vec<String> = web
        .list(&cluster)
        .unwrap()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["w1", "w2"]);
    assert!(web.get(&cluster, Some("default"), "d1").is_none());
    assert_eq!(counters.lists("pods"), 2, "the view made no request");

    // Alone, a field selector goes to the server with the metadata Accept headers.
    let by_name = runtime.informer_with::<PartialObjectMeta<Pod>>(InformerSpec {
        field_selector: Some("status.phase!=Failed".into()),
        cache: CacheMode::Metadata,
        ..InformerSpec::default()
    });
    assert!(by_name.wait_synced(&cluster, DEADLINE).await);
    assert_eq!(by_name.list(&cluster).unwrap().len(), 3);
    assert!(by_name.list(&cluster).unwrap().iter().all(|p| {
        p.types
            .as_ref()
            .is_some_and(|t| t.kind == "PartialObjectMetadata")
    }));
}

#[actix_rt::test]
async fn metadata_for_a_type_that_cannot_hold_it_is_refused_before_any_request() {
    let clusters = Clusters::start(1, 2);
    let runtime = Runtime::start(&config(&clusters, "")).await.unwrap();
    let counters = clusters.sim.cluster(0).counters();
    let pods = runtime.informer_with::<Pod>(InformerSpec {
        cache: CacheMode::Metadata,
        ..InformerSpec::default()
    });
    let status = pods.status();
    assert_eq!(status.len(), 1);
    let error = format!("{:?}", status[0].state);
    assert!(
        error.contains("cache = \\\"metadata\\\"") && error.contains("k8s_openapi"),
        "the error names the mode and the type: {error}"
    );
    assert!(pods.handle(&ClusterId::new("only")).is_none());
    assert_eq!(counters.lists("pods"), 0, "nothing was listed");
    assert!(runtime.registry().is_empty());
}

#[actix_rt::test]
async fn a_watch_entry_with_cache_metadata_caches_partial_object_metadata() {
    let clusters = Clusters::start(1, 3);
    let config = config(
        &clusters,
        "[[watch]]\nresource = \"v1/pods\"\ncache = \"metadata\"\n",
    );
    assert_eq!(config.watches[0].cache, CacheMode::Metadata);
    let runtime = Runtime::start(&config).await.unwrap();
    let cluster = ClusterId::new("only");
    let pods = runtime.watch(&config.watches[0]);
    assert!(pods.wait_synced(&cluster, DEADLINE).await);
    assert_eq!(
        pods.resource(),
        "v1/pods",
        "logs and metrics name the resource"
    );
    let cached = pods.list(&cluster).unwrap();
    assert_eq!(cached.len(), 3);
    for object in &cached {
        let types = object.types.as_ref().unwrap();
        assert_eq!(types.kind, "PartialObjectMetadata");
        assert_eq!(types.api_version, "meta.k8s.io/v1");
        assert!(
            object.data.get("spec").is_none(),
            "no spec: {:?}",
            object.data
        );
    }
    let status = runtime.status();
    assert!(
        status
            .iter()
            .any(|s| s.resource == "v1/pods" && s.synced && s.objects == 3),
        "{status:?}"
    );
}

#[test]
fn a_bad_cache_mode_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[clusters]]\nname = \"east\"\nembedded = { pods = 1 }\n\
                [[watch]]\nresource = \"v1/pods\"\ncache = \"metadta\"\n";
    let error = PanoptesConfig::parse(text, &dir.path().join("clusters.toml"), std::iter::empty())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cache") && error.contains("metadta") && error.contains("\"metadata\""),
        "{error}"
    );
}

#[test]
fn panoptes_run_syncs_a_metadata_watch() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clusters.toml"),
        "[[clusters]]\nname = \"east\"\nembedded = { pods = 5 }\n\
         [[watch]]\nresource = \"v1/pods\"\ncache = \"metadata\"\n",
    )
    .unwrap();
    let output = run_panoptes(dir.path(), &["run", "--exit-after-sync"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("east: v1/pods synced"), "{stdout}");
}

fn run_panoptes(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(PANOPTES)
        .args(args)
        .current_dir(dir)
        .env_remove("PANOPTES_CONFIG")
        .env("PANOPTES__RUNTIME__METRICS_ADDR", "127.0.0.1:0")
        .env("PANOPTES__TELEMETRY__LOG", "warn")
        .output()
        .expect("the panoptes binary runs")
}
