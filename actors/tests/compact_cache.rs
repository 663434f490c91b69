//! The compact cache mode against the embedded API server, through a real `kube::Client`:
//! a typed and a compact informer watch the same pods while a client creates, updates and
//! deletes them; both must tell their handlers the same story and answer every lister and
//! index query alike, and the compact one must hand out JSON that decodes to the same pods.

mod sim_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Expression, Selector};
use panoptes_actors::{
    CacheMode, Event, FactoryOptions, HandlerOptions, Informer, InformerFactory, handler_fn,
    ids::ClusterId,
};
use panoptes_sim::{Sim, SimOptions};
use parking_lot::Mutex;
use sim_support::{client, eventually};

const PATIENCE: Duration = Duration::from_secs(30);
const BY_NODE: &str = "by-node";

/// Every event as "type key rv" (old rv too for updates), in delivery order.
type Log = Arc<Mutex<Vec<String>>>;

fn rv(pod: &Pod) -> &str {
    pod.metadata.resource_version.as_deref().unwrap_or("-")
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A synced informer of `mode` with a logging handler and a by-node index.
async fn informer(client: kube::Client, mode: CacheMode) -> (InformerFactory, Informer<Pod>, Log) {
    let options = FactoryOptions {
        cache: mode,
        ..FactoryOptions::default()
    };
    let factory = InformerFactory::new(client, ClusterId::new("sim-1"), options);
    let informer = factory.informer::<Pod>();
    let log = Log::default();
    let sink = log.clone();
    informer.add_handler(
        handler_fn(move |event: Event<Pod>| {
            let line = match &event {
                Event::Added { obj, .. } => format!("add {} {}", key(obj), rv(obj)),
                Event::Updated { old, new, .. } => {
                    format!("update {} {}>{}", key(new), rv(old), rv(new))
                }
                Event::Deleted {
                    obj,
                    final_state_unknown,
                    ..
                } => format!("delete {} {} {final_state_unknown}", key(obj), rv(obj)),
            };
            sink.lock().push(line);
        }),
        HandlerOptions::default(),
    );
    informer
        .add_indexer(BY_NODE, |pod: &Pod| {
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .into_iter()
                .collect()
        })
        .await
        .expect("index added");
    factory.start();
    assert!(
        informer.wait_synced(PATIENCE).await,
        "{mode} informer synced"
    );
    (factory, informer, log)
}

fn pod(namespace: &str, name: &str, seq: u64) -> Pod {
    serde_json::from_value(panoptes_sim::pods::realistic_pod(namespace, name, seq))
        .expect("a realistic pod decodes")
}

/// The log without the updates that lead up to a delete of their key: the FIFO may coalesce
/// any of them into the delete.
fn without_coalescable(log: &Log) -> Vec<String> {
    let log = log.lock().clone();
    let key_of = |line: &str| line.split(' ').nth(1).unwrap_or_default().to_string();
    (0..log.len())
        .filter(|&i| {
            let line = &log[i];
            if !line.starts_with("update") {
                return true;
            }
            let key = key_of(line);
            let next = log[i + 1..]
                .iter()
                .find(|l| key_of(l) == key && !l.starts_with("update"));
            !next.is_some_and(|l| l.starts_with("delete"))
        })
        .map(|i| log[i].clone())
        .collect()
}

/// `key -> rv` of what a lister lists.
fn versions(pods: &[Arc<Pod>]) -> BTreeMap<String, String> {
    pods.iter().map(|p| (key(p), rv(p).to_string())).collect()
}

fn sorted(mut pods: Vec<Arc<Pod>>) -> Vec<Arc<Pod>> {
    pods.sort_by_key(|p| key(p));
    pods
}

#[actix_rt::test]
async fn should_tell_the_same_story_and_answer_alike_in_typed_and_compact_mode() {
    let sim = Sim::start(SimOptions::default()).unwrap();
    let store = sim.cluster(0).store();
    panoptes_sim::pods::seed(&store, "default", 40);
    panoptes_sim::pods::seed(&store, "other", 20);
    let client = client(sim.cluster(0)).await;
    let (typed_factory, typed, typed_log) = informer(client.clone(), CacheMode::Typed).await;
    let (compact_factory, compact, compact_log) =
        informer(client.clone(), CacheMode::Compact).await;

    // Churn: creates, label and annotation updates, deletes, in two namespaces. Each write
    // is awaited in both caches before the next: the FIFO coalesces updates that arrive
    // while a batch is in flight, so only settled writes make the event sequences comparable.
    let params = PostParams::default();
    let settled = async |ns: &str, name: &str, version: Option<String>| {
        let seen = |informer: &Informer<Pod>| {
            informer
                .lister()
                .get(Some(ns), name)
                .and_then(|p| p.metadata.resource_version.clone())
        };
        eventually(
            &format!("both caches hold {ns}/{name} at {version:?}"),
            PATIENCE,
            || seen(&typed) == version && seen(&compact) == version,
        )
        .await;
    };
    for (ns, base) in [("default", 1000u64), ("other", 2000)] {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        for i in 0..10 {
            let name = format!("new-{i}");
            let made = api
                .create(&params, &pod(ns, &name, base + i))
                .await
                .unwrap();
            settled(ns, &name, made.metadata.resource_version).await;
        }
        for i in 0..10 {
            let name = format!("new-{i}");
            let patch = serde_json::json!({"metadata": {
                "labels": {"tier": "moved"},
                "annotations": {"round": i.to_string()},
            }});
            let patched = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            settled(ns, &name, patched.metadata.resource_version).await;
        }
        for i in (0..10).step_by(3) {
            let name = format!("new-{i}");
            api.delete(&name, &DeleteParams::default().grace_period(0))
                .await
                .unwrap();
            settled(ns, &name, None).await;
        }
    }
    let all: Api<Pod> = Api::all(client.clone());
    let server: BTreeMap<String, String> = all
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| (key(p), rv(p).to_string()))
        .collect();
    let everything = Selector::default();
    eventually("both caches hold what the server holds", PATIENCE, || {
        versions(&typed.lister().list(None, &everything)) == server
            && versions(&compact.lister().list(None, &everything)) == server
    })
    .await;
    let heard = |log: &Log| {
        let log = log.lock();
        log.len()
    };
    // Both heard at least the churn; then they must have heard the same.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while heard(&typed_log) != heard(&compact_log) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The same events, in the same order.
    // (A force delete is a MODIFIED then a DELETED; the FIFO may coalesce the two while a
    // batch is in flight, by timing, so updates leading up to a delete are left out.)
    let (typed_events, compact_events) = (
        without_coalescable(&typed_log),
        without_coalescable(&compact_log),
    );
    for (i, (t, c)) in typed_events.iter().zip(&compact_events).enumerate() {
        assert_eq!(t, c, "event {i} differs");
    }
    assert_eq!(
        typed_events.len(),
        compact_events.len(),
        "typed tail {:?}, compact tail {:?}",
        &typed_events[typed_events.len().saturating_sub(3)..],
        &compact_events[compact_events.len().saturating_sub(3)..]
    );
    assert!(
        typed_log.lock().iter().any(|l| l.starts_with("update")),
        "the churn produced updates"
    );
    assert!(
        typed_log.lock().iter().any(|l| l.starts_with("delete")),
        "the churn produced deletes"
    );

    // The same lister answers.
    let (t, c) = (typed.lister(), compact.lister());
    for k in server.keys() {
        let (ns, name) = k.split_once('/').unwrap();
        let typed_pod = t.get(Some(ns), name).expect("typed get");
        let compact_pod = c.get(Some(ns), name).expect("compact get");
        assert_eq!(typed_pod, compact_pod, "get {k}");
        let json = c.get_json(Some(ns), name).expect("compact get_json");
        let decoded: Pod = serde_json::from_slice(&json).unwrap();
        assert_eq!(&decoded, typed_pod.as_ref(), "get_json {k}");
        assert!(
            !String::from_utf8_lossy(&json).contains("managedFields"),
            "managedFields are cut before the cache: {k}"
        );
    }
    assert!(
        c.get(Some("default"), "new-0").is_none(),
        "deleted pod is gone"
    );
    let app_3: Selector = Expression::Equal("app".into(), "app-3".into()).into();
    let moved: Selector = Expression::Equal("tier".into(), "moved".into()).into();
    for (ns, selector) in [
        (None, &everything),
        (Some("other"), &everything),
        (None, &app_3),
        (Some("default"), &app_3),
        (None, &moved),
        (Some("nowhere"), &everything),
    ] {
        let typed_list = sorted(t.list(ns, selector));
        assert_eq!(
            typed_list,
            sorted(c.list(ns, selector)),
            "list {ns:?} {selector}"
        );
        let json = c.list_json(ns, selector);
        assert_eq!(json.kind, "PodList");
        let parsed: kube::core::ObjectList<Pod> = serde_json::from_slice(&json.to_vec()).unwrap();
        let parsed = sorted(parsed.items.into_iter().map(Arc::new).collect());
        assert_eq!(parsed, typed_list, "list_json {ns:?} {selector}");
    }
    assert!(
        !sorted(c.list(None, &moved)).is_empty(),
        "the selector selects"
    );

    // Indexers work on the compact cache (built before and kept through the churn).
    let nodes = typed.store().list_index_values(BY_NODE).unwrap();
    assert!(!nodes.is_empty());
    let mut compact_nodes = compact.store().list_index_values(BY_NODE).unwrap();
    let mut typed_nodes = nodes.clone();
    typed_nodes.sort();
    compact_nodes.sort();
    assert_eq!(typed_nodes, compact_nodes);
    for node in &nodes {
        assert_eq!(
            sorted(typed.store().by_index(BY_NODE, node.as_str()).unwrap()),
            sorted(compact.store().by_index(BY_NODE, node.as_str()).unwrap()),
            "by_index {node}"
        );
    }
    // An index added after the sync indexes what is cached.
    compact
        .add_indexer("by-app", |pod: &Pod| {
            pod.metadata
                .labels
                .iter()
                .flatten()
                .filter(|(k, _)| *k == "app")
                .map(|(_, v)| v.clone())
                .collect()
        })
        .await
        .unwrap();
    assert_eq!(
        sorted(compact.store().by_index("by-app", "app-3").unwrap()),
        sorted(t.list(None, &app_3))
    );

    // Loosely, the compact cache's own bytes are far below the JSON a typed cache decodes
    // from (the bench P3 counts the exact heap).
    let per_pod = compact.store().compact_bytes() / server.len();
    assert!(typed.store().compact_bytes() == 0);
    assert!(
        per_pod < 8 * 1024,
        "compact entries hold {per_pod} bytes per pod"
    );

    typed_factory.shutdown();
    compact_factory.shutdown();
}
