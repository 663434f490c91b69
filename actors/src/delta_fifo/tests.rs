//! The FIFO's queue rules on whole delta sequences, then the actor with a recording
//! processor and paused time.

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::reflector::ReflectorDelta::{Added, Deleted, Modified};
use crate::test_support::{pod, rv};

/// A delta as (kind, name, resourceVersion, is a tombstone), for whole-sequence asserts.
type Seen = (DeltaType, String, u64, bool);

fn seen(popped: &PoppedKey<Pod>) -> Vec<Seen> {
    popped
        .deltas
        .iter()
        .map(|d| {
            let obj = d.object.object();
            let tomb = matches!(d.object, DeltaObject::Tombstone(_));
            (d.kind, obj.metadata.name.clone().unwrap(), rv(obj), tomb)
        })
        .collect()
}

fn pop_all(q: &mut FifoQueue<Pod>) -> Vec<(String, Vec<Seen>)> {
    q.check_invariants();
    let batch = q.pop_batch(usize::MAX).map(|b| b.keys).unwrap_or_default();
    q.check_invariants();
    batch.iter().map(|p| (p.key.to_string(), seen(p))).collect()
}

fn d(kind: DeltaType, name: &str, rv: u64) -> Seen {
    (kind, name.into(), rv, false)
}

fn replace(objects: Vec<Arc<Pod>>) -> ReflectorDelta<Pod> {
    ReflectorDelta::Replace {
        objects,
        resource_version: "100".into(),
    }
}

#[test]
fn should_queue_each_key_once_in_first_arrival_order() {
    let mut q = FifoQueue::new(Transform::Keep);
    q.push(Added(pod("a", 1)));
    q.push(Added(pod("b", 2)));
    q.push(Modified(pod("a", 3)));
    assert_eq!(
        pop_all(&mut q),
        vec![
            ("ns/a".into(), vec![d(DeltaType::Added, "a", 3)]),
            ("ns/b".into(), vec![d(DeltaType::Added, "b", 2)]),
        ]
    );
    assert!(q.pop_batch(10).is_none());
}

#[test]
fn should_collapse_consecutive_updates_to_the_latest() {
    let mut q = FifoQueue::new(Transform::Keep);
    for v in 1..=100 {
        q.push(Modified(pod("a", v)));
    }
    assert_eq!(q.status().queued_deltas, 1);
    assert_eq!(
        pop_all(&mut q),
        vec![("ns/a".into(), vec![d(DeltaType::Updated, "a", 100)])]
    );
}

#[test]
fn should_collapse_consecutive_deletes_preferring_a_real_final_state() {
    let mut q = FifoQueue::new(Transform::Keep);
    q.push(replace(vec![pod("a", 1)]));
    pop_all(&mut q);
    q.push(replace(vec![]));
    q.push(Deleted(pod("a", 2)));
    assert_eq!(
        pop_all(&mut q),
        vec![("ns/a".into(), vec![d(DeltaType::Deleted, "a", 2)])]
    );
}

#[test]
fn should_keep_a_delete_then_a_recreation() {
    let mut q = FifoQueue::new(Transform::Keep);
    q.push(Modified(pod("a", 1)));
    q.push(Deleted(pod("a", 2)));
    q.push(Added(pod("a", 3)));
    q.push(Modified(pod("a", 4)));
    assert_eq!(
        pop_all(&mut q),
        vec![(
            "ns/a".into(),
            vec![d(DeltaType::Deleted, "a", 2), d(DeltaType::Added, "a", 4)]
        )]
    );
}

#[test]
fn should_turn_vanished_keys_into_tombstones_on_replace() {
    let mut q = FifoQueue::new(Transform::Keep);
    q.push(replace(vec![pod("a", 1), pod("b", 2), pod("c", 3)]));
    pop_all(&mut q);
    q.push(Modified(pod("b", 4)));
    q.push(replace(vec![pod("a", 1)]));
    let mut popped = pop_all(&mut q);
    popped.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        popped,
        vec![
            ("ns/a".into(), vec![d(DeltaType::Replaced, "a", 1)]),
            (
                "ns/b".into(),
                vec![(DeltaType::Deleted, "b".into(), 4, true)]
            ),
            (
                "ns/c".into(),
                vec![(DeltaType::Deleted, "c".into(), 3, true)]
            ),
        ]
    );
}

#[test]
fn should_remember_the_newest_lists_resource_version() {
    let mut q = FifoQueue::new(Transform::Keep);
    assert_eq!(q.status().last_list_version, None);
    q.push(replace(vec![pod("a", 1)]));
    q.push(Modified(pod("a", 101)));
    q.push(ReflectorDelta::Replace {
        objects: vec![pod("a", 101)],
        resource_version: "101".into(),
    });
    assert_eq!(q.status().last_list_version, Some("101".into()));
}

#[test]
fn should_not_tombstone_keys_already_deleted() {
    let mut q = FifoQueue::new(Transform::Keep);
    q.push(replace(vec![pod("a", 1)]));
    q.push(Deleted(pod("a", 2)));
    q.push(replace(vec![]));
    assert_eq!(
        pop_all(&mut q),
        vec![("ns/a".into(), vec![d(DeltaType::Deleted, "a", 2)])]
    );
}

#[test]
fn should_mark_the_initial_list_and_announce_sync_once_it_has_popped() {
    let mut q = FifoQueue::new(Transform::Keep);
    q.push(replace(vec![pod("a", 1), pod("b", 2)]));
    let first = q.pop_batch(1).unwrap();
    assert!(first.keys[0].initial_list && !first.marks_synced);
    q.push(Added(pod("c", 3)));
    let second = q.pop_batch(1).unwrap();
    assert!(second.keys[0].initial_list && second.marks_synced);
    let third = q.pop_batch(1).unwrap();
    assert!(!third.keys[0].initial_list && !third.marks_synced);
}

#[test]
fn should_announce_sync_of_an_empty_first_list_with_an_empty_batch() {
    let mut q: FifoQueue<Pod> = FifoQueue::new(Transform::Keep);
    assert!(q.pop_batch(10).is_none());
    q.push(replace(vec![]));
    let batch = q.pop_batch(10).unwrap();
    assert!(batch.keys.is_empty() && batch.marks_synced);
    assert!(q.pop_batch(10).is_none());
}

#[test]
fn should_resync_only_keys_without_pending_deltas() {
    let mut q = FifoQueue::new(Transform::Keep);
    q.push(replace(vec![pod("a", 1), pod("b", 2)]));
    pop_all(&mut q);
    q.push(Modified(pod("a", 3)));
    assert_eq!(q.resync(), 1);
    let mut popped = pop_all(&mut q);
    popped.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        popped,
        vec![
            ("ns/a".into(), vec![d(DeltaType::Updated, "a", 3)]),
            ("ns/b".into(), vec![d(DeltaType::Sync, "b", 2)]),
        ]
    );
}

#[test]
fn should_run_the_transform_once_before_queueing() {
    let mut with_fields = (*pod("a", 1)).clone();
    with_fields.metadata.managed_fields = Some(vec![Default::default()]);
    let mut q = FifoQueue::new(Transform::DropManagedFields);
    q.push(Added(Arc::new(with_fields)));
    let batch = q.pop_batch(1).unwrap();
    assert!(
        batch.keys[0].deltas[0]
            .object
            .object()
            .metadata
            .managed_fields
            .is_none()
    );
}

#[test]
fn should_bound_memory_by_keys_under_any_event_sequence() {
    let mut q = FifoQueue::new(Transform::Keep);
    let mut state: u64 = 7;
    for i in 0..10_000u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let name = format!("p{}", (state >> 33) % 50);
        match (state >> 20) % 4 {
            0 => q.push(Added(pod(&name, i))),
            1 | 2 => q.push(Modified(pod(&name, i))),
            _ => q.push(Deleted(pod(&name, i))),
        }
    }
    q.check_invariants();
    let status = q.status();
    assert!(
        status.queued_keys <= 50 && status.queued_deltas <= 100,
        "{status:?}"
    );
}

mod actor {
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::*;
    use crate::indexer::Indexer;
    use crate::notification::{Notification, NotificationBatch};
    use crate::processor::{AddListener, HandlerId, ListenerEndpoint, Notify, StopListener};
    use crate::store::{Store, StoreWriter};
    use crate::test_support::{cluster, ignore_faults};

    /// What reached the listener, with the cache's size when it arrived.
    type Received = Arc<Mutex<Vec<(Arc<NotificationBatch<Pod>>, usize)>>>;

    /// A stand-in listener recording each batch and what the cache held then.
    struct Recorder {
        received: Received,
        store: Store<Pod>,
    }

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<Notify<Pod>> for Recorder {
        type Result = ();
        fn handle(&mut self, msg: Notify<Pod>, _ctx: &mut Context<Self>) {
            self.received.lock().push((msg.0, self.store.len()));
        }
    }

    impl Handler<StopListener> for Recorder {
        type Result = ();
        fn handle(&mut self, _msg: StopListener, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    /// FIFO → indexer (+ processor) → a recording listener.
    fn pipeline() -> (Addr<DeltaFifo<Pod>>, Store<Pod>, Received) {
        let writer = StoreWriter::new();
        let store = writer.reader();
        let indexer = Indexer::new(cluster(), "v1/pods".into(), writer, ignore_faults()).start();
        let received = Received::default();
        let recorder = Recorder {
            received: received.clone(),
            store: store.clone(),
        };
        indexer.do_send(AddListener {
            id: HandlerId(1),
            start: Box::new(move |_snapshot| {
                let addr = recorder.start();
                ListenerEndpoint {
                    notify: addr.clone().recipient(),
                    stop: addr.recipient(),
                }
            }),
        });
        let fifo = DeltaFifo::new(
            cluster(),
            "v1/pods".into(),
            Transform::Keep,
            indexer.recipient(),
            store.clone(),
            ignore_faults(),
        )
        .start();
        (fifo, store, received)
    }

    #[actix_rt::test]
    async fn should_resync_every_period_under_paused_time() {
        tokio::time::pause();
        let (fifo, _store, seen) = pipeline();
        fifo.do_send(ReflectorBatch {
            cluster: cluster(),
            deltas: vec![replace(vec![pod("a", 1), pod("b", 2)])],
            trace: crate::trace_context::TraceContext::none(),
            arrived: tokio::time::Instant::now(),
        });
        fifo.do_send(SetResyncPeriod(Some(Duration::from_secs(30))));
        let resyncs = |seen: &Received| {
            seen.lock()
                .iter()
                .flat_map(|(b, _)| b.notifications.iter())
                .filter(|n| matches!(n, Notification::Resync { .. }))
                .count()
        };
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(resyncs(&seen), 0, "no resync before the period");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(resyncs(&seen), 2, "one round: every key once");
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(resyncs(&seen), 4);
        fifo.do_send(SetResyncPeriod(None));
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(resyncs(&seen), 4, "no resync once the period is unset");
    }

    #[actix_rt::test]
    async fn should_update_the_cache_before_the_processor_hears_of_it() {
        let (fifo, store, seen) = pipeline();
        fifo.do_send(ReflectorBatch {
            cluster: cluster(),
            deltas: vec![replace(vec![pod("a", 1), pod("b", 2)])],
            trace: crate::trace_context::TraceContext::none(),
            arrived: tokio::time::Instant::now(),
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.lock().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing distributed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(store.has_synced());
        let status = fifo.send(GetFifoStatus).await.unwrap();
        assert_eq!(status.known_keys, 2);
        let batches = seen.lock().clone();
        let notes: usize = batches.iter().map(|(b, _)| b.notifications.len()).sum();
        assert_eq!(notes, 2);
        let (last, cached_then) = batches.last().unwrap();
        assert!(last.marks_synced);
        assert_eq!(
            *cached_then, 2,
            "the cache held the batch before the listener heard"
        );
    }
}

#[test]
fn should_forget_acknowledged_states_with_a_compact_cache_and_tombstone_from_the_cache() {
    let mut writer =
        crate::store::StoreWriter::<Pod>::with_mode(crate::cache_mode::CacheMode::Compact);
    let mut q = FifoQueue::new(Transform::Keep).reading_states_from(writer.reader());
    let relist = |objects: Vec<Arc<Pod>>, version: &str| ReflectorDelta::Replace {
        objects,
        resource_version: version.into(),
    };
    q.push(relist(vec![pod("a", 1), pod("b", 2)], "2"));
    let batch = q.pop_batch(usize::MAX).unwrap();
    writer.write(|c| crate::indexer::process_deltas(c, batch.keys, 0, &mut Default::default()));
    // A newer state arriving while the batch is in flight is kept at the acknowledgement.
    q.push(Modified(pod("a", 3)));
    q.acknowledged();
    assert!(
        q.known[&ObjectKey::from("ns/b")].is_none(),
        "b is read from the cache now"
    );
    assert!(
        q.known[&ObjectKey::from("ns/a")].is_some(),
        "a's newer state is pending"
    );
    assert_eq!(pop_all(&mut q).len(), 1);
    // b vanishes in a relist: its tombstone carries the cached state.
    q.push(relist(vec![pod("a", 3)], "4"));
    let popped = pop_all(&mut q);
    assert!(
        popped.contains(&(
            "ns/b".to_string(),
            vec![(DeltaType::Deleted, "b".to_string(), 2, true)]
        )),
        "{popped:?}"
    );
    // A resync reads idle states from the cache too.
    q.acknowledged();
    assert_eq!(q.resync(), 1);
}
