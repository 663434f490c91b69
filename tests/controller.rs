//! Controllers over the runtime's clusters, driven through the public API against `sim`:
//! every object on every cluster is reconciled and written through its own cluster's client,
//! keys never run twice at once and collapse while queued, children map to owners, reloads
//! start and stop clusters, followers only queue, and `/metrics` shows it all.

mod controller_support;
mod multicluster_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;
use controller_support::{Record, Recorder, annotated, create_configmap, touch_configmap};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta, PostParams};
use multicluster_support::{Clusters, eventually, eventually_async};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::{Leadership, ReconcileKey, ShutdownMode};
use panoptes_runtime::{ControllerHandle, Runtime};

fn key(cluster: &str, name: &str) -> ReconcileKey {
    ReconcileKey::new(ClusterId::new(cluster), Some("default"), name)
}

#[actix_rt::test]
async fn reconciles_every_configmap_on_two_clusters_through_each_clusters_client() {
    let clusters = Clusters::start(2, 0);
    let config = clusters.config(&[("c1", "sim-1"), ("c2", "sim-2")]);
    let runtime = Runtime::start(&config).await.unwrap();
    let (c1, c2) = (ClusterId::new("c1"), ClusterId::new("c2"));
    let clients = [runtime.client(&c1).unwrap(), runtime.client(&c2).unwrap()];
    for client in &clients {
        for name in ["before-a", "before-b"] {
            create_configmap(client, name).await;
        }
    }

    let record = Arc::new(Record::default());
    let handle = runtime
        .controller::<ConfigMap>("annotator")
        .workers(3)
        .run(Recorder::new(record.clone()).start());

    // Objects created after the start are reconciled too.
    for client in &clients {
        create_configmap(client, "after").await;
    }
    for (client, cluster) in clients.iter().zip(["c1", "c2"]) {
        for name in ["before-a", "before-b", "after"] {
            eventually_async(&format!("{cluster}/{name} annotated"), || {
                annotated(client, name, cluster)
            })
            .await;
        }
    }
    for cluster in ["c1", "c2"] {
        for name in ["before-a", "before-b", "after"] {
            eventually(&format!("{cluster}/{name} reconciled"), || {
                record.count(&key(cluster, name)) >= 1
            })
            .await;
        }
    }
    assert!(record.overlapped.lock().is_empty());
    handle.shutdown(ShutdownMode::Drain).await;
    runtime.shutdown();
}

/// Waits until the controller's queue holds a key for each cached ConfigMap (at least `n`:
/// sim also has its own, such as `kube-root-ca.crt`), and answers how many.
async fn queued(handle: &ControllerHandle<ConfigMap>, n: usize) -> usize {
    let mut cached = 0;
    eventually_async(&format!("a key queued for each of {n}+ ConfigMaps"), || {
        cached = handle.primary().list_all().len();
        let expected = cached;
        async move { expected >= n && handle.queue_len().await.queued == expected }
    })
    .await;
    cached
}

#[actix_rt::test]
async fn never_reconciles_one_key_twice_at_once_over_a_churn_with_several_workers() {
    let clusters = Clusters::start(1, 0);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1")]))
        .await
        .unwrap();
    let client = runtime.client(&ClusterId::new("c1")).unwrap();
    let names: Vec<String> = (0..4).map(|i| format!("hot-{i}")).collect();
    for name in &names {
        create_configmap(&client, name).await;
    }
    let record = Arc::new(Record::default());
    let mut recorder = Recorder::new(record.clone());
    recorder.linger = Duration::from_millis(15);
    let handle = runtime
        .controller::<ConfigMap>("churn")
        .workers(4)
        .run(recorder.start());
    for round in 1..=15 {
        for name in &names {
            touch_configmap(&client, name, round).await;
        }
    }
    // Converged: each object's last write (the annotation) was seen by a reconcile that
    // found nothing more to do, and nothing is left queued or running.
    for name in &names {
        eventually_async(&format!("{name} annotated"), || {
            annotated(&client, name, "c1")
        })
        .await;
    }
    eventually_async("queue idle", || async {
        let len = handle.queue_len().await;
        len.queued == 0 && len.processing == 0
    })
    .await;
    assert!(
        record.overlapped.lock().is_empty(),
        "keys reconciled concurrently: {:?}",
        record.overlapped.lock()
    );
    assert!(
        record.most.load(Ordering::SeqCst) > 1,
        "distinct keys ran in parallel"
    );
    assert!(record.total() >= names.len());
    handle.shutdown(ShutdownMode::Drain).await;
    runtime.shutdown();
}

#[actix_rt::test]
async fn a_follower_queues_and_collapses_keys_and_reconciles_them_once_leading() {
    let clusters = Clusters::start(1, 0);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1")]))
        .await
        .unwrap();
    let client = runtime.client(&ClusterId::new("c1")).unwrap();
    for name in ["a", "b", "c"] {
        create_configmap(&client, name).await;
    }
    let (elector, gate) = tokio::sync::watch::channel(false);
    let record = Arc::new(Record::default());
    let handle = runtime
        .controller::<ConfigMap>("follower")
        .leadership(Leadership::from_receiver(gate))
        .run(Recorder::new(record.clone()).start());
    let waiting = queued(&handle, 3).await;
    // A burst of updates to one key while it waits: still one key in the queue.
    for round in 1..=10 {
        touch_configmap(&client, "b", round).await;
    }
    eventually("the burst reached the informer", || {
        handle
            .primary()
            .get(&ClusterId::new("c1"), Some("default"), "b")
            .and_then(|cm| cm.data.as_ref()?.get("v").cloned())
            .is_some_and(|v| v == "10")
    })
    .await;
    assert_eq!(queued(&handle, 3).await, waiting);
    let adds = adds_total(&runtime, "follower", "c1");
    assert!(adds >= 13, "3 initial adds and 10 updates counted: {adds}");
    assert_eq!(record.total(), 0, "a follower reconciles nothing");

    elector.send(true).unwrap();
    for name in ["a", "b", "c"] {
        eventually_async(&format!("{name} annotated"), || {
            annotated(&client, name, "c1")
        })
        .await;
    }
    // The annotation writes come back as updates: wait until they are reconciled too.
    eventually_async("queue idle", || async {
        let len = handle.queue_len().await;
        len.queued == 0 && len.processing == 0
    })
    .await;
    let b = ReconcileKey::new(ClusterId::new("c1"), Some("default"), "b");
    let first_round: Vec<_> = record.keys.lock().iter().take(waiting).cloned().collect();
    assert_eq!(
        first_round.iter().filter(|k| **k == b).count(),
        1,
        "ten updates while queued collapsed into one reconcile: {first_round:?}"
    );
    // Each key: one reconcile of the queued state, one of its annotation write.
    assert_eq!(record.count(&b), 2, "{:?}", record.keys.lock());
    handle.shutdown(ShutdownMode::Abandon).await;
    runtime.shutdown();
}

fn adds_total(runtime: &Runtime, controller: &str, cluster: &str) -> u64 {
    runtime.metrics().workqueue(controller, cluster).adds.get()
}

#[actix_rt::test]
async fn a_child_maps_to_its_controller_owner_and_a_watch_maps_through_its_mapper() {
    let clusters = Clusters::start(1, 0);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1")]))
        .await
        .unwrap();
    let c1 = ClusterId::new("c1");
    let client = runtime.client(&c1).unwrap();
    create_configmap(&client, "parent").await;
    create_configmap(&client, "by-label").await;
    let parent: ConfigMap = Api::namespaced(client.clone(), "default")
        .get("parent")
        .await
        .unwrap();
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "parent".into(),
        uid: parent.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let record = Arc::new(Record::default());
    let handle = runtime
        .controller::<ConfigMap>("owner")
        .owns::<Secret>()
        .watches::<ServiceAccount>(|cluster, sa| {
            sa.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("reconcile"))
                .map(|name| vec![ReconcileKey::new(cluster.clone(), Some("default"), name)])
                .unwrap_or_default()
        })
        .run(Recorder::new(record.clone()).start());
    let parent_key = ReconcileKey::new(c1.clone(), Some("default"), "parent");
    let by_label = ReconcileKey::new(c1.clone(), Some("default"), "by-label");
    eventually_async("parent annotated", || annotated(&client, "parent", "c1")).await;
    eventually_async("queue idle", || async {
        let len = handle.queue_len().await;
        len.queued == 0 && len.processing == 0
    })
    .await;
    let before = record.count(&parent_key);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("child".into()),
            namespace: Some("default".into()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    eventually("the child's owner reconciled", || {
        record.count(&parent_key) > before
    })
    .await;

    let before = record.count(&by_label);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("robot".into()),
            namespace: Some("default".into()),
            labels: Some([("reconcile".to_string(), "by-label".to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    eventually("the mapped key reconciled", || {
        record.count(&by_label) > before
    })
    .await;
    handle.shutdown(ShutdownMode::Drain).await;
    runtime.shutdown();
}

#[actix_rt::test]
async fn a_cluster_removed_by_reload_stops_reconciling_and_one_added_starts() {
    let clusters = Clusters::start(3, 0);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1"), ("c2", "sim-2")]))
        .await
        .unwrap();
    let client1 = runtime.client(&ClusterId::new("c1")).unwrap();
    let client2 = runtime.client(&ClusterId::new("c2")).unwrap();
    let record = Arc::new(Record::default());
    let handle = runtime
        .controller::<ConfigMap>("reload")
        .run(Recorder::new(record.clone()).start());
    create_configmap(&client2, "early").await;
    eventually_async("c2/early annotated", || annotated(&client2, "early", "c2")).await;

    let report = runtime
        .reload(&clusters.config(&[("c1", "sim-1"), ("c3", "sim-3")]))
        .await
        .unwrap();
    assert_eq!(report.removed, [ClusterId::new("c2")]);
    assert_eq!(report.added, [ClusterId::new("c3")]);
    let c2_reconciles = record.count_on("c2");
    let client3 = runtime.client(&ClusterId::new("c3")).unwrap();
    create_configmap(&client3, "joined").await;
    create_configmap(&client2, "late").await;
    create_configmap(&client1, "barrier").await;
    eventually_async("c3/joined annotated", || {
        annotated(&client3, "joined", "c3")
    })
    .await;
    eventually_async("c1/barrier annotated", || {
        annotated(&client1, "barrier", "c1")
    })
    .await;
    assert!(
        !annotated(&client2, "late", "c2").await,
        "c2 left: nothing reconciles there"
    );
    assert_eq!(record.count_on("c2"), c2_reconciles);
    handle.shutdown(ShutdownMode::Drain).await;
    runtime.shutdown();
}

#[actix_rt::test]
async fn metrics_carry_the_queue_and_reconcile_families_with_what_happened() {
    let clusters = Clusters::start(1, 0);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1")]))
        .await
        .unwrap();
    let client = runtime.client(&ClusterId::new("c1")).unwrap();
    create_configmap(&client, "fine").await;
    create_configmap(&client, "broken").await;
    let record = Arc::new(Record::default());
    let mut recorder = Recorder::new(record.clone());
    recorder.fail_name = Some("broken".into());
    let handle = runtime
        .controller::<ConfigMap>("metered")
        .run(recorder.start());
    let broken = ReconcileKey::new(ClusterId::new("c1"), Some("default"), "broken");
    eventually("broken retried with backoff", || record.count(&broken) >= 3).await;
    eventually_async("fine annotated", || annotated(&client, "fine", "c1")).await;
    eventually("a success counted", || {
        runtime
            .metrics()
            .encode()
            .contains(r#"controller_runtime_reconcile_total{controller="metered",cluster="c1",result="success"}"#)
    })
    .await;
    let text = runtime.metrics().encode();
    let labels = r#"{name="metered",cluster="c1"}"#;
    for needle in [
        format!("workqueue_depth{labels}"),
        format!("workqueue_adds_total{labels}"),
        format!("workqueue_queue_duration_seconds_count{labels}"),
        format!("workqueue_work_duration_seconds_count{labels}"),
        format!("workqueue_retries_total{labels}"),
        format!("workqueue_unfinished_work_seconds{labels}"),
        format!("workqueue_longest_running_processor_seconds{labels}"),
        r#"controller_runtime_reconcile_errors_total{controller="metered",cluster="c1"}"#.into(),
        r#"controller_runtime_reconcile_time_seconds_count{controller="metered",cluster="c1"}"#
            .into(),
        r#"controller_runtime_active_workers{controller="metered"}"#.into(),
    ] {
        assert!(text.contains(&needle), "missing {needle} in\n{text}");
    }
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert!(value(&format!("workqueue_retries_total{labels}")) >= 2.0);
    assert!(
        value(r#"controller_runtime_reconcile_errors_total{controller="metered",cluster="c1"}"#)
            >= 2.0
    );
    assert!(
        value(
            r#"controller_runtime_reconcile_total{controller="metered",cluster="c1",result="error"}"#
        ) >= 2.0
    );
    assert!(value(&format!("workqueue_adds_total{labels}")) >= 2.0);
    handle.shutdown(ShutdownMode::Abandon).await;
    runtime.shutdown();
}

/// What the tracing test saw of each `reconcile` span: its ancestors' names and the
/// ancestors of each span it follows from.
/// Span names from a span's parent up to its root.
type Ancestry = Vec<&'static str>;

#[derive(Default)]
struct SeenSpans {
    /// Per `reconcile` span: its ancestry, and for each span it follows from, that span's
    /// name followed by its ancestry.
    reconciles: parking_lot::Mutex<Vec<(Ancestry, Vec<Ancestry>)>>,
    ids: parking_lot::Mutex<std::collections::HashMap<u64, usize>>,
}

struct SpanLayer(Arc<SeenSpans>);

fn ancestry<S>(
    ctx: &tracing_subscriber::layer::Context<'_, S>,
    id: &tracing::span::Id,
) -> Vec<&'static str>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    ctx.span_scope(id)
        .map(|scope| scope.skip(1).map(|span| span.name()).collect())
        .unwrap_or_default()
}

impl<S> tracing_subscriber::Layer<S> for SpanLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "reconcile" {
            let mut reconciles = self.0.reconciles.lock();
            reconciles.push((ancestry(&ctx, id), Vec::new()));
            self.0
                .ids
                .lock()
                .insert(id.into_u64(), reconciles.len() - 1);
        }
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(index) = self.0.ids.lock().get(&span.into_u64()).copied() else {
            return;
        };
        let mut chain = vec![ctx.span(follows).map_or("?", |s| s.name())];
        chain.extend(ancestry(&ctx, follows));
        self.0.reconciles.lock()[index].1.push(chain);
    }

    fn on_close(&self, id: tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        // Ids are reused once closed.
        self.0.ids.lock().remove(&id.into_u64());
    }
}

#[actix_rt::test]
async fn a_reconcile_continues_the_trace_of_the_event_and_links_coalesced_ones() {
    use tracing_subscriber::layer::SubscriberExt;
    let seen = Arc::new(SeenSpans::default());
    let subscriber = tracing_subscriber::registry().with(SpanLayer(seen.clone()));
    // Each test runs in its own process under nextest; under `cargo test` the first setter wins.
    let _ = tracing::subscriber::set_global_default(subscriber);

    let clusters = Clusters::start(1, 0);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1")]))
        .await
        .unwrap();
    let client = runtime.client(&ClusterId::new("c1")).unwrap();
    create_configmap(&client, "traced").await;
    let (elector, gate) = tokio::sync::watch::channel(false);
    let record = Arc::new(Record::default());
    let handle = runtime
        .controller::<ConfigMap>("traced")
        .leadership(Leadership::from_receiver(gate))
        .run(Recorder::new(record.clone()).start());
    queued(&handle, 1).await;
    for round in 1..=3 {
        touch_configmap(&client, "traced", round).await;
    }
    eventually("the updates were queued", || {
        runtime.metrics().workqueue("traced", "c1").adds.get() >= 4
    })
    .await;
    elector.send(true).unwrap();
    let traced = ReconcileKey::new(ClusterId::new("c1"), Some("default"), "traced");
    eventually("reconciled", || record.count(&traced) >= 1).await;
    let reconciles = seen.reconciles.lock().clone();
    for (parents, _) in reconciles.iter() {
        assert!(
            parents.first() == Some(&"handler") && parents.contains(&"listener.deliver"),
            "a reconcile's parent is the event's handler span: {parents:?}"
        );
    }
    // Only `traced` had several events coalesce (sim's own ConfigMaps had one each); the
    // informer's FIFO may already have merged some of the three updates.
    let links: Vec<_> = reconciles.iter().flat_map(|(_, links)| links).collect();
    assert!(
        (1..=3).contains(&links.len()),
        "the updates are linked: {links:?}"
    );
    assert!(
        links.iter().all(|chain| chain.contains(&"handler")),
        "{links:?}"
    );
    handle.shutdown(ShutdownMode::Abandon).await;
    runtime.shutdown();
}
