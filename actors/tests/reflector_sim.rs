//! The reflector against the embedded API server (`panoptes-sim`) over real HTTPS with an
//! unmodified `kube::Client`: pagination, watch order, resume, relist, faults, streaming lists.

mod sim_support;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::list_gate::ListGate;
use panoptes_actors::reflector::{
    GetReflectorReport, Reflector, ReflectorBatch, ReflectorConfig, ReflectorDelta,
    ReflectorReport, ReflectorState, StopReflector,
};
use panoptes_sim::store::WriteOptions;
use panoptes_sim::{Sim, SimCluster, SimOptions};
use parking_lot::Mutex;
use sim_support::{client, config, eventually};

/// Records every batch and report it receives.
struct Recorder<K: 'static> {
    batches: Arc<Mutex<Vec<Vec<ReflectorDelta<K>>>>>,
    reports: Arc<Mutex<Vec<ReflectorReport>>>,
}

impl<K: Unpin + 'static> Actor for Recorder<K> {
    type Context = Context<Self>;
}

impl<K: Unpin + 'static> Handler<ReflectorBatch<K>> for Recorder<K> {
    type Result = ();
    fn handle(&mut self, msg: ReflectorBatch<K>, _: &mut Context<Self>) {
        self.batches.lock().push(msg.deltas);
    }
}

impl<K: Unpin + 'static> Handler<ReflectorReport> for Recorder<K> {
    type Result = ();
    fn handle(&mut self, msg: ReflectorReport, _: &mut Context<Self>) {
        self.reports.lock().push(msg);
    }
}

/// A started reflector with what it delivered so far.
struct Running<
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
> {
    reflector: Addr<Reflector<K>>,
    batches: Arc<Mutex<Vec<Vec<ReflectorDelta<K>>>>>,
    reports: Arc<Mutex<Vec<ReflectorReport>>>,
}

impl<K> Running<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + Unpin
        + 'static,
    K::DynamicType: Clone + Send + Sync,
{
    fn start(api: kube::Api<K>, config: ReflectorConfig) -> Self {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            batches: batches.clone(),
            reports: reports.clone(),
        }
        .start();
        let reflector = Reflector::new(
            ClusterId::from("sim-1"),
            "v1/pods".to_owned(),
            api,
            config,
            recorder.clone().recipient(),
            Some(recorder.recipient()),
        )
        .start();
        Self {
            reflector,
            batches,
            reports,
        }
    }

    /// Every delta so far, flattened.
    fn deltas(&self) -> Vec<ReflectorDelta<K>> {
        self.batches.lock().iter().flatten().cloned().collect()
    }

    fn replaces(&self) -> Vec<(usize, String)> {
        self.deltas()
            .iter()
            .filter_map(|d| match d {
                ReflectorDelta::Replace {
                    objects,
                    resource_version,
                } => Some((objects.len(), resource_version.to_string())),
                _ => None,
            })
            .collect()
    }

    /// `Added name` / `Modified name` / `Deleted name` for each watch delta, in order.
    fn watch_deltas(&self) -> Vec<String> {
        let name = |o: &K| o.meta().name.clone().unwrap_or_default();
        self.deltas()
            .iter()
            .filter_map(|d| match d {
                ReflectorDelta::Added(o) => Some(format!("Added {}", name(o))),
                ReflectorDelta::Modified(o) => Some(format!("Modified {}", name(o))),
                ReflectorDelta::Deleted(o) => Some(format!("Deleted {}", name(o))),
                ReflectorDelta::Replace { .. } => None,
            })
            .collect()
    }

    fn saw_report(&self, check: impl Fn(&ReflectorReport) -> bool) -> bool {
        self.reports.lock().iter().any(check)
    }
}

const WAIT: Duration = Duration::from_secs(20);

fn sim() -> Sim {
    Sim::start(SimOptions::default()).expect("sim starts")
}

/// Creates a pod named `name` in `default` through the store (not through the reflector's
/// connection).
fn create_pod(cluster: &SimCluster, name: &str) {
    let store = cluster.store();
    let pods = store.builtin("", "pods");
    let pod = panoptes_sim::pods::realistic_pod("default", name, 0);
    store
        .create(&pods, Some("default"), pod, &WriteOptions::default())
        .expect("pod created");
}

/// Advances the cluster's resourceVersion without touching pods.
fn touch_configmap(cluster: &SimCluster, name: &str) -> u64 {
    let store = cluster.store();
    let configmaps = store.builtin("", "configmaps");
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}});
    store
        .create(&configmaps, Some("default"), cm, &WriteOptions::default())
        .expect("configmap created");
    store.resource_version()
}

#[actix_rt::test]
async fn should_list_1200_pods_as_one_replace_then_deliver_watch_events_in_order() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", 1200);
    let running = Running::start(
        kube::Api::<Pod>::all(client(cluster).await),
        ReflectorConfig::default(),
    );

    eventually("the initial Replace", WAIT, || {
        !running.replaces().is_empty()
    })
    .await;
    assert_eq!(running.replaces()[0].0, 1200);
    assert_eq!(
        cluster.counters().lists("pods"),
        3,
        "1200 pods in pages of 500"
    );
    eventually("the watch", WAIT, || {
        cluster.counters().open_watches("pods") == 1
    })
    .await;
    for name in ["w-1", "w-2", "w-3"] {
        create_pod(cluster, name);
    }
    eventually("three watch events", WAIT, || {
        running.watch_deltas().len() == 3
    })
    .await;
    assert_eq!(
        running.watch_deltas(),
        ["Added w-1", "Added w-2", "Added w-3"]
    );
    eventually("a synced report", WAIT, || {
        running.saw_report(|r| r.synced && r.state == ReflectorState::Watching)
    })
    .await;
    running.reflector.do_send(StopReflector);
    eventually("the watch closed", WAIT, || {
        cluster.counters().open_watches("pods") == 0
    })
    .await;
}

#[actix_rt::test]
async fn should_resume_a_dropped_watch_without_relisting() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", 10);
    let running = Running::start(
        kube::Api::<Pod>::all(client(cluster).await),
        ReflectorConfig::default(),
    );
    eventually("the watch", WAIT, || {
        cluster.counters().open_watches("pods") == 1
    })
    .await;
    let lists = cluster.counters().lists("pods");

    cluster.faults().drop_watches();
    create_pod(cluster, "after-drop");
    eventually("the event after the drop", WAIT, || {
        running.watch_deltas() == ["Added after-drop"]
    })
    .await;
    assert_eq!(
        cluster.counters().lists("pods"),
        lists,
        "a dropped watch must not relist"
    );
    assert!(cluster.counters().watches("pods") >= 2);
    assert_eq!(running.replaces().len(), 1);
}

#[actix_rt::test]
async fn should_relist_when_the_resume_version_is_compacted() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", 10);
    let running = Running::start(
        kube::Api::<Pod>::all(client(cluster).await),
        ReflectorConfig::default(),
    );
    eventually("the watch", WAIT, || {
        cluster.counters().open_watches("pods") == 1
    })
    .await;

    // The pod watch does not see a configmap, so its last version falls behind; compaction
    // then makes it unusable.
    touch_configmap(cluster, "moves-the-revision");
    cluster.faults().compact();
    cluster.faults().drop_watches();
    eventually("a second Replace", WAIT, || running.replaces().len() == 2).await;
    assert_eq!(running.replaces()[1].0, 10);
    eventually("a relist report", WAIT, || {
        running.saw_report(|r| r.relists == 1)
    })
    .await;
    create_pod(cluster, "after-relist");
    eventually("the watch after the relist", WAIT, || {
        running.watch_deltas() == ["Added after-relist"]
    })
    .await;
}

#[actix_rt::test]
async fn should_retry_a_429_after_retry_after() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", 5);
    // kube's default client retries 429 itself (honouring Retry-After); switch that off so
    // the reflector's own handling is what runs.
    let mut config = config(cluster).await;
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("client builds");
    cluster.faults().fail_next(1, 429);
    let started = tokio::time::Instant::now();
    let running = Running::start(kube::Api::<Pod>::all(client), ReflectorConfig::default());
    eventually("the Replace", WAIT, || !running.replaces().is_empty()).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 ignored ({:?})",
        started.elapsed()
    );
    let reports = running.reports.lock().clone();
    assert!(
        reports.iter().any(|r| matches!(r.state, ReflectorState::BackingOff { retry_in, .. } if retry_in >= Duration::from_secs(1))),
        "{reports:#?}"
    );
}

#[actix_rt::test]
async fn should_report_forbidden_and_not_hot_loop() {
    let sim = sim();
    let cluster = sim.cluster(0);
    cluster.faults().forbid("pods");
    let running = Running::start(
        kube::Api::<Pod>::all(client(cluster).await),
        ReflectorConfig::default(),
    );
    eventually("a Forbidden report", WAIT, || {
        running.saw_report(|r| matches!(r.state, ReflectorState::Forbidden { .. }))
    })
    .await;
    let requests = cluster.counters().requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        cluster.counters().requests() <= requests + 1,
        "forbidden resource retried within 2 s"
    );
    let forbidden = running
        .reports
        .lock()
        .iter()
        .filter(|r| matches!(r.state, ReflectorState::Forbidden { .. }))
        .count();
    assert_eq!(forbidden, 1, "Forbidden reported more than once");
}

#[actix_rt::test]
async fn should_sync_from_a_streaming_list() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", 700);
    let config = ReflectorConfig {
        streaming_lists: true,
        ..ReflectorConfig::default()
    };
    let running = Running::start(kube::Api::<Pod>::all(client(cluster).await), config);
    eventually("the Replace", WAIT, || !running.replaces().is_empty()).await;
    assert_eq!(running.replaces()[0].0, 700);
    assert_eq!(
        cluster.counters().lists("pods"),
        0,
        "a streaming list makes no LIST request"
    );
    create_pod(cluster, "streamed");
    eventually("the event", WAIT, || {
        running.watch_deltas() == ["Added streamed"]
    })
    .await;
    assert!(!running.saw_report(|r| r.streaming_refused));
}

#[actix_rt::test]
async fn should_fall_back_to_list_watch_when_streaming_is_refused() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", 30);
    cluster.faults().refuse_watch_list(true);
    let config = ReflectorConfig {
        streaming_lists: true,
        ..ReflectorConfig::default()
    };
    let running = Running::start(kube::Api::<Pod>::all(client(cluster).await), config);
    eventually("the Replace", WAIT, || !running.replaces().is_empty()).await;
    assert_eq!(running.replaces()[0].0, 30);
    assert!(cluster.counters().lists("pods") >= 1);
    eventually("the fallback report", WAIT, || {
        running.saw_report(|r| r.streaming_refused)
    })
    .await;
}

#[actix_rt::test]
async fn should_advance_the_resume_version_on_bookmarks() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", 3);
    let running = Running::start(
        kube::Api::<Pod>::all(client(cluster).await),
        ReflectorConfig::default(),
    );
    eventually("the watch", WAIT, || {
        cluster.counters().open_watches("pods") == 1
    })
    .await;
    let revision = touch_configmap(cluster, "bookmark-me");
    cluster.store().send_bookmarks_now();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = running
            .reflector
            .send(GetReflectorReport)
            .await
            .expect("reflector alive");
        if report.last_resource_version == Some(revision.to_string().into()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bookmark not seen: {report:?}, revision {revision}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn should_reflect_dynamic_objects() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", 600);
    let resource = ApiResource::erase::<Pod>(&());
    let api =
        kube::Api::<DynamicObject>::namespaced_with(client(cluster).await, "default", &resource);
    let running = Running::start(api, ReflectorConfig::default());
    eventually("the Replace", WAIT, || !running.replaces().is_empty()).await;
    assert_eq!(running.replaces()[0].0, 600);
}

#[actix_rt::test]
async fn should_tear_down_a_stalled_watch_and_resume_it_without_relisting() {
    let bookmark_interval = Duration::from_millis(400);
    let sim = Sim::start(SimOptions {
        store: panoptes_sim::store::StoreConfig {
            bookmark_interval,
            ..Default::default()
        },
        ..SimOptions::default()
    })
    .expect("sim starts");
    let cluster = sim.cluster(0);
    create_pod(cluster, "before");
    let running = Running::start(
        kube::Api::<Pod>::all(client(cluster).await),
        ReflectorConfig {
            bookmark_interval,
            ..ReflectorConfig::default()
        },
    );
    eventually("the initial Replace", WAIT, || {
        !running.replaces().is_empty()
    })
    .await;
    // Healthy but idle: bookmarks keep the watch alive past the silence limit. A v1.28
    // server sends a watch periodic bookmarks only once its resource changed since the
    // watch's starting version, so one write first.
    create_pod(cluster, "while-watching");
    eventually("the write seen by the watch", WAIT, || {
        running
            .watch_deltas()
            .contains(&"Added while-watching".to_owned())
    })
    .await;
    let opened = cluster.counters().watches("pods");
    tokio::time::sleep(4 * bookmark_interval).await;
    assert_eq!(
        cluster.counters().watches("pods"),
        opened,
        "an idle watch with bookmarks is not stalled"
    );

    cluster.faults().stall_watches(true);
    cluster.faults().drop_watches();
    eventually("a stalled watch torn down", WAIT, || {
        running.saw_report(|r| r.stalled_watches >= 1)
    })
    .await;
    cluster.faults().stall_watches(false);
    create_pod(cluster, "after");
    eventually("the event after the stall", WAIT, || {
        running.watch_deltas().contains(&"Added after".to_owned())
    })
    .await;
    let report = running
        .reflector
        .send(GetReflectorReport)
        .await
        .expect("reflector answers");
    assert_eq!(
        (report.lists, report.relists),
        (1, 0),
        "resumed, never relisted"
    );
    assert_eq!(cluster.counters().lists("pods"), 1);
}

/// Reflectors of three clusters sharing a gate of one: no two of them are ever part-way
/// through a list (each cluster's 1 200 pods are three pages, each answered after 100 ms).
#[actix_rt::test]
async fn should_let_one_gated_list_gather_at_a_time() {
    let sim = Sim::start(SimOptions {
        clusters: 3,
        ..SimOptions::default()
    })
    .expect("sim starts");
    let gate = ListGate::new(1);
    let mut running = Vec::new();
    for i in 0..3 {
        let cluster = sim.cluster(i);
        panoptes_sim::pods::seed(&cluster.store(), "default", 1200);
        cluster.faults().set_latency(Duration::from_millis(100));
        let config = ReflectorConfig {
            list_gate: Some(gate.clone()),
            ..ReflectorConfig::default()
        };
        running.push(Running::start(
            kube::Api::<Pod>::all(client(cluster).await),
            config,
        ));
    }
    let part_way = || {
        (0..3)
            .filter(|&i| (1..3).contains(&sim.cluster(i).counters().lists("pods")))
            .count()
    };
    eventually("every cluster's Replace", WAIT, || {
        assert!(part_way() <= 1, "two lists gathered at once");
        running.iter().all(|r| !r.replaces().is_empty())
    })
    .await;
    for r in &running {
        assert_eq!(r.replaces()[0].0, 1200);
    }
    assert_eq!(gate.most_in_use(), 1);
    assert_eq!(gate.in_use(), 0, "watching reflectors hold no permit");
}

/// A server that answers nothing keeps the permit only for the gate's stall time.
#[actix_rt::test]
async fn should_not_let_a_stalled_server_hold_the_list_gate() {
    let sim = Sim::start(SimOptions {
        clusters: 2,
        ..SimOptions::default()
    })
    .expect("sim starts");
    let gate = ListGate::with_stall(1, Duration::from_millis(300));
    let gated = || ReflectorConfig {
        list_gate: Some(gate.clone()),
        ..ReflectorConfig::default()
    };
    let (stalled, healthy) = (sim.cluster(0), sim.cluster(1));
    stalled.faults().set_latency(Duration::from_secs(3600));
    panoptes_sim::pods::seed(&healthy.store(), "default", 10);
    let _stalled = Running::start(kube::Api::<Pod>::all(client(stalled).await), gated());
    eventually("the stalled server's list to take the permit", WAIT, || {
        stalled.counters().lists("pods") == 1 && gate.in_use() == 1
    })
    .await;
    let healthy = Running::start(kube::Api::<Pod>::all(client(healthy).await), gated());
    eventually("the healthy cluster's Replace", WAIT, || {
        !healthy.replaces().is_empty()
    })
    .await;
    assert_eq!(healthy.replaces()[0].0, 10);
}
