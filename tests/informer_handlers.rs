//! Handlers against a sim cluster: isolation of a slow handler, late handlers, resync,
//! supervision of a panicking handler, transforms, dynamic informers.

mod informer_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::DynamicObject;
use panoptes_actors::{Event, FactoryOptions, HandlerOptions, handler_actor};
use panoptes_sim::churn::{Churn, ChurnConfig};

use informer_support::*;

fn churn(cluster: &panoptes_sim::SimCluster, namespace: &str, writes: u64) -> Churn {
    Churn::start(
        cluster.store(),
        ChurnConfig {
            namespace: namespace.into(),
            target_pods: 100,
            rate_per_sec: 4000.0,
            update_fraction: 0.8,
            max_writes: Some(writes),
            seed: 3,
        },
    )
}

#[actix_rt::test]
async fn should_not_let_a_slow_handler_delay_a_fast_one_and_bound_its_backlog_by_keys() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "iso", 100);
    let factory = factory(
        cluster,
        FactoryOptions {
            namespace: Some("iso".into()),
            ..Default::default()
        },
    )
    .await;
    let pods = factory.informer::<Pod>();
    let (fast, fast_history) = Recording::new();
    let fast = pods.add_handler(fast.start().recipient(), HandlerOptions::default());
    let (mut slow, slow_history) = Recording::new();
    slow.delay = Some(Duration::from_millis(5));
    let slow = pods.add_handler(
        handler_actor(move || Recording {
            history: slow_history.clone(),
            delay: slow.delay,
        }),
        HandlerOptions::default().coalescing(),
    );
    factory.start();
    assert!(pods.wait_synced(PATIENCE).await);

    let started = Instant::now();
    let churn = churn(cluster, "iso", 1500);
    let mut max_slow_backlog = 0;
    let mut max_slow_keys = 0;
    let deadline = Instant::now() + PATIENCE;
    let truth = loop {
        let status = pods.handler_status(slow).unwrap();
        max_slow_backlog = max_slow_backlog.max(status.backlog);
        max_slow_keys = max_slow_keys.max(status.pending_keys);
        if churn.stats().total() == 1500 {
            let truth = server_pods(cluster, "iso");
            if cached_pods(pods.store().list()) == truth
                && pods.handler_status(fast).unwrap().backlog == 0
            {
                break truth;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the fast handler never caught up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let fast_done = started.elapsed();
    let slow_status = pods.handler_status(slow).unwrap();
    assert_eq!(
        final_states(&fast_history),
        truth,
        "the fast handler is done"
    );
    assert!(
        slow_status.backlog > 0,
        "the slow handler should still be behind when the fast one is done: {slow_status:?}"
    );
    // Coalescing: at most a delete and a re-creation per key, plus the event in hand; the
    // namespace never holds more than a few hundred pod names at once.
    let keys_ever = fast_history.lock().unwrap().len();
    assert!(
        max_slow_backlog <= 2 * keys_ever + 1,
        "backlog {max_slow_backlog} > 2 x {keys_ever} keys + 1"
    );
    assert!(
        max_slow_keys <= keys_ever + 1,
        "pending keys {max_slow_keys} > {keys_ever} keys + 1"
    );
    wait_until("the slow handler catches up", PATIENCE, || {
        pods.handler_status(slow).unwrap().backlog == 0
    })
    .await;
    eprintln!(
        "fast handler done after {fast_done:?}; slow handler then had {} events pending (max {max_slow_backlog}, {max_slow_keys} keys, {keys_ever} keys seen)",
        slow_status.backlog
    );
    factory.shutdown();
}

#[actix_rt::test]
async fn should_replay_the_cache_to_a_late_handler_and_report_sync_per_type() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "late", 30);
    let factory = factory(cluster, FactoryOptions::default()).await;
    let pods = factory.informer::<Pod>();
    let configmaps = factory.informer::<ConfigMap>();
    assert!(!pods.has_synced());
    factory.start();
    let synced = factory.wait_for_cache_sync(PATIENCE).await;
    assert_eq!(
        synced.into_iter().collect::<Vec<_>>(),
        [
            ("v1/configmaps".to_string(), true),
            ("v1/pods".to_string(), true)
        ]
    );
    assert!(
        configmaps.store().len() >= 4,
        "each namespace has its kube-root-ca.crt"
    );

    let (late, history) = Recording::new();
    let late = pods.add_handler(late.start().recipient(), HandlerOptions::default());
    wait_until("the late handler has synced", PATIENCE, || {
        pods.handler_has_synced(late)
    })
    .await;
    let history = history.lock().unwrap().clone();
    assert_eq!(history.len(), 30);
    assert!(
        history
            .values()
            .all(|steps| matches!(&steps[..], [Seen::Added { initial: true, .. }])),
        "{history:?}"
    );
    assert!(
        Arc::ptr_eq(
            &factory.informer::<Pod>().store().list()[0],
            &pods
                .store()
                .get(&panoptes_actors::ids::ObjectKey::of(
                    pods.store().list()[0].as_ref()
                ))
                .unwrap()
        ),
        "one shared informer per type"
    );
    factory.shutdown();
}

/// Counts resyncs and checks old and new are one object.
struct ResyncCounter(Arc<AtomicU32>, Arc<AtomicU32>);

impl Actor for ResyncCounter {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for ResyncCounter {
    type Result = ();
    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) {
        if let Event::Updated { old, new, .. } = &event {
            if Arc::ptr_eq(old, new) {
                self.0.fetch_add(1, Ordering::Relaxed);
            } else {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[actix_rt::test]
async fn should_resync_periodically_with_the_same_object() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "resync", 5);
    let factory = factory(
        cluster,
        FactoryOptions {
            namespace: Some("resync".into()),
            ..Default::default()
        },
    )
    .await;
    let pods = factory.informer::<Pod>();
    let (resyncs, changes) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    pods.add_handler(
        ResyncCounter(resyncs.clone(), changes.clone())
            .start()
            .recipient(),
        HandlerOptions::default().resync(Duration::from_millis(200)),
    );
    let (quiet, quiet_history) = Recording::new();
    pods.add_handler(quiet.start().recipient(), HandlerOptions::default());
    factory.start();
    assert!(pods.wait_synced(PATIENCE).await);
    wait_until("two rounds of resync reach the handler", PATIENCE, || {
        resyncs.load(Ordering::Relaxed) >= 10
    })
    .await;
    assert_eq!(
        changes.load(Ordering::Relaxed),
        0,
        "resyncs are updates with old == new, nothing else changed"
    );
    assert!(
        quiet_history.lock().unwrap().values().all(|s| s.len() == 1),
        "a handler without a resync period gets none"
    );
    factory.shutdown();
}

#[actix_rt::test]
async fn should_restart_a_panicking_handler_while_the_others_lose_nothing() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "crash", 50);
    let factory = factory(
        cluster,
        FactoryOptions {
            namespace: Some("crash".into()),
            ..Default::default()
        },
    )
    .await;
    let pods = factory.informer::<Pod>();
    let (steady, steady_history) = Recording::new();
    let steady = pods.add_handler(steady.start().recipient(), HandlerOptions::default());
    let crashes = Arc::new(AtomicU32::new(3));
    let crashing_history = History::default();
    let crashing = {
        let (history, crashes, crashed_on) =
            (crashing_history.clone(), crashes.clone(), Arc::default());
        let factory = move || Crashing {
            inner: Recording {
                history: history.clone(),
                delay: None,
            },
            crashes: crashes.clone(),
            crashed_on: Arc::clone(&crashed_on),
        };
        pods.add_handler(handler_actor(factory), HandlerOptions::default())
    };
    factory.start();
    assert!(pods.wait_synced(PATIENCE).await);
    let churn = churn(cluster, "crash", 500);
    churn.wait(PATIENCE);
    let truth = server_pods(cluster, "crash");
    wait_until("both handlers drained", PATIENCE, || {
        cached_pods(pods.store().list()) == truth
            && [steady, crashing]
                .iter()
                .all(|id| pods.handler_status(*id).unwrap().backlog == 0)
    })
    .await;
    let status = pods.handler_status(crashing).unwrap();
    assert_eq!(
        (status.restarts, status.failed),
        (3, 0),
        "each crash restarts the handler and its event is retried: {status:?}"
    );
    assert_eq!(
        final_states(&steady_history),
        truth,
        "the steady handler lost nothing"
    );
    assert_eq!(
        final_states(&crashing_history),
        truth,
        "the restarted handler lost nothing"
    );
    factory.shutdown();
}

/// Panics on the first update of each of the first `crashes` pods it sees updated (before
/// recording them); the retry of that same event then succeeds.
struct Crashing {
    inner: Recording,
    crashes: Arc<AtomicU32>,
    crashed_on: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Actor for Crashing {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for Crashing {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) -> Self::Result {
        let (name, seen) = Seen::of(&event);
        if matches!(event, Event::Updated { .. })
            && !self.crashed_on.lock().unwrap().contains(&name)
            && self
                .crashes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            self.crashed_on.lock().unwrap().insert(name);
            panic!("a handler bug (expected by this test)");
        }
        self.inner
            .history
            .lock()
            .unwrap()
            .entry(name)
            .or_default()
            .push(seen);
        Box::pin(actix::fut::ready(()))
    }
}

#[actix_rt::test]
async fn should_drop_managed_fields_by_default_and_keep_them_when_asked() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "fields", 10);
    for (keep, expect) in [(false, false), (true, true)] {
        let options = FactoryOptions {
            namespace: Some("fields".into()),
            keep_managed_fields: keep,
            ..Default::default()
        };
        let factory = factory(cluster, options).await;
        let pods = factory.informer::<Pod>();
        factory.start();
        assert!(pods.wait_synced(PATIENCE).await);
        let cached = pods.store().list();
        assert_eq!(cached.len(), 10);
        assert!(
            cached
                .iter()
                .all(|p| p.metadata.managed_fields.is_some() == expect),
            "keep_managed_fields: {keep}"
        );
        factory.shutdown();
    }
}

#[actix_rt::test]
async fn should_cache_dynamic_objects_found_by_kind_or_plural() {
    let sim = sim();
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "dyn", 12);
    let factory = factory(
        cluster,
        FactoryOptions {
            namespace: Some("dyn".into()),
            ..Default::default()
        },
    )
    .await;
    let by_kind = factory
        .dynamic_informer_for_kind("", "v1", "Pod")
        .await
        .unwrap();
    let by_plural = factory
        .dynamic_informer_for_plural("", "v1", "pods")
        .await
        .unwrap();
    factory.start();
    assert!(by_kind.wait_synced(PATIENCE).await);
    assert_eq!(by_kind.store().len(), 12);
    assert!(
        Arc::ptr_eq(
            &by_kind.store().list()[0],
            &by_plural
                .store()
                .get(&panoptes_actors::ids::ObjectKey::of(
                    by_kind.store().list()[0].as_ref()
                ))
                .unwrap()
        ),
        "kind and plural name one shared informer"
    );
    let missing = factory
        .dynamic_informer_for_plural("", "v1", "nonsense")
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("nonsense"), "{missing}");
    let _: Option<Arc<DynamicObject>> = by_kind
        .lister()
        .get(Some("dyn"), &panoptes_sim::pods::pod_name(0));
    factory.shutdown();
}
