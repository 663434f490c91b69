//! The whole pipeline (FIFO → indexer → processor → listeners) on its own arbiter, fed by a
//! fake reflector: the test sends `ReflectorBatch`es itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;
use panoptes_actors::reflector::{ReflectorBatch, ReflectorDelta};
use panoptes_actors::{Event, HandlerOptions, Informer, Transform, handler_fn, ids::ClusterId};

const PATIENCE: Duration = Duration::from_secs(10);

fn pod(name: &str, rv: u64) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(rv.to_string()),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn batch(deltas: Vec<ReflectorDelta<Pod>>) -> ReflectorBatch<Pod> {
    ReflectorBatch {
        cluster: ClusterId::new("fake"),
        deltas,
        trace: panoptes_actors::TraceContext::none(),
        arrived: tokio::time::Instant::now(),
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Every key's events as "+rv", "~old>new", "-rv" or "-?rv" (final state unknown).
type Log = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn logging(log: Log) -> panoptes_actors::EventHandler<Pod> {
    handler_fn(move |ev: Event<Pod>| {
        let rv = |p: &Pod| p.metadata.resource_version.clone().unwrap();
        let step = match &ev {
            Event::Added { obj, .. } => format!("+{}", rv(obj)),
            Event::Updated { old, new, .. } => format!("~{}>{}", rv(old), rv(new)),
            Event::Deleted {
                obj,
                final_state_unknown,
                ..
            } => format!(
                "-{}{}",
                if *final_state_unknown { "?" } else { "" },
                rv(obj)
            ),
        };
        log.lock()
            .unwrap()
            .entry(ev.object().metadata.name.clone().unwrap())
            .or_default()
            .push(step);
    })
}

/// Replays a key's log, checking it is a valid life; returns the final rv if alive.
fn final_state(name: &str, steps: &[String]) -> Option<String> {
    let mut state: Option<String> = None;
    for step in steps {
        state = match (state, &step[..1]) {
            (None, "+") => Some(step[1..].to_string()),
            (Some(cur), "~") => {
                let (old, new) = step[1..].split_once('>').unwrap();
                assert_eq!(cur, old, "{name}: {steps:?}");
                Some(new.to_string())
            }
            (Some(_), "-") => None,
            (state, _) => panic!("{name}: {step} after {state:?}: {steps:?}"),
        };
    }
    state
}

fn finals(log: &Log) -> BTreeMap<String, String> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|(k, s)| final_state(k, s).map(|rv| (k.clone(), rv)))
        .collect()
}

fn cache(informer: &Informer<Pod>) -> BTreeMap<String, String> {
    informer
        .store()
        .list()
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap(),
                p.metadata.resource_version.clone().unwrap(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn should_turn_a_relist_into_tombstones_for_every_handler() {
    let (informer, feed) =
        Informer::<Pod>::detached(ClusterId::new("fake"), "v1/pods", Transform::default());
    let log = Log::default();
    let id = informer.add_handler(logging(log.clone()), HandlerOptions::default());
    feed.do_send(batch(vec![ReflectorDelta::Replace {
        objects: vec![pod("a", 1), pod("b", 2), pod("c", 3)],
        resource_version: "3".into(),
    }]));
    assert!(informer.wait_synced(PATIENCE).await);
    feed.do_send(batch(vec![
        ReflectorDelta::Modified(pod("a", 4)),
        ReflectorDelta::Deleted(pod("b", 5)),
    ]));
    feed.do_send(batch(vec![ReflectorDelta::Replace {
        objects: vec![pod("a", 4), pod("d", 7)],
        resource_version: "7".into(),
    }]));
    wait_until("the relist is applied", || {
        cache(&informer).len() == 2
            && informer.handler_status(id).unwrap().backlog == 0
            && log.lock().unwrap().len() == 4
    })
    .await;
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log["a"],
        ["+1", "~1>4"],
        "a survivor with an unchanged version is not re-announced"
    );
    assert_eq!(log["b"], ["+2", "-5"]);
    assert_eq!(
        log["c"],
        ["+3", "-?3"],
        "deleted unseen: the tombstone carries the last known state"
    );
    assert_eq!(log["d"], ["+7"]);
    assert!(informer.handler_has_synced(id));
    informer.stop();
}

#[actix_rt::test]
async fn should_line_up_a_late_handlers_replay_with_the_events_that_follow() {
    let (informer, feed) =
        Informer::<Pod>::detached(ClusterId::new("fake"), "v1/pods", Transform::default());
    let early = Log::default();
    informer.add_handler(logging(early.clone()), HandlerOptions::default());
    feed.do_send(batch(vec![ReflectorDelta::Replace {
        objects: (0..20).map(|i| pod(&format!("p{i}"), i)).collect(),
        resource_version: "20".into(),
    }]));
    let mut late_logs = Vec::new();
    let mut late_ids = Vec::new();
    let mut rv = 100;
    for round in 0..50u64 {
        let mut deltas = Vec::new();
        for i in 0..20u64 {
            rv += 1;
            let name = format!("p{i}");
            deltas.push(match (round + i) % 7 {
                0 => ReflectorDelta::Deleted(pod(&name, rv)),
                1 => ReflectorDelta::Added(pod(&name, rv)),
                _ => ReflectorDelta::Modified(pod(&name, rv)),
            });
        }
        feed.do_send(batch(deltas));
        if round % 10 == 5 {
            let log = Log::default();
            late_ids.push(informer.add_handler(logging(log.clone()), HandlerOptions::default()));
            late_logs.push(log);
        }
        tokio::task::yield_now().await;
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let fifo = informer.fifo_status().await.unwrap();
        let drained = late_ids.iter().all(|id| {
            informer
                .handler_status(*id)
                .is_some_and(|s| s.backlog == 0 && s.synced)
        });
        if drained && fifo.queued_keys == 0 && !fifo.batch_in_flight {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pipeline never drained: {fifo:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let truth = cache(&informer);
    wait_until("the early handler matches the cache", || {
        finals(&early) == truth
    })
    .await;
    for (i, log) in late_logs.iter().enumerate() {
        assert_eq!(
            finals(log),
            truth,
            "late handler {i} ends where the cache is"
        );
    }
    informer.stop();
}

#[actix_rt::test]
async fn should_stop_delivering_to_a_removed_handler() {
    let (informer, feed) =
        Informer::<Pod>::detached(ClusterId::new("fake"), "v1/pods", Transform::default());
    let log = Log::default();
    let id = informer.add_handler(logging(log.clone()), HandlerOptions::default());
    let witness = Log::default();
    informer.add_handler(logging(witness.clone()), HandlerOptions::default());
    feed.do_send(batch(vec![ReflectorDelta::Replace {
        objects: vec![pod("a", 1)],
        resource_version: "1".into(),
    }]));
    wait_until("the first event arrives", || log.lock().unwrap().len() == 1).await;
    assert!(informer.remove_handler(id));
    assert!(!informer.remove_handler(id));
    assert!(informer.handler_status(id).is_none());
    feed.do_send(batch(vec![ReflectorDelta::Added(pod("b", 2))]));
    // The processor fans each batch out to all listeners at once: once the witness has b, the
    // removed handler would have it too.
    wait_until("the witness gets b", || {
        witness.lock().unwrap().contains_key("b")
    })
    .await;
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "a removed handler got an event"
    );
    informer.stop();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while informer.fifo_status().await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pipeline did not stop"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stopped = informer.fifo_status().await.unwrap_err();
    assert!(stopped.to_string().contains("stopped"), "{stopped}");
}
