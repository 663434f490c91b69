use k8s_openapi::api::core::v1::Pod;

use std::sync::Arc;

use super::*;
use crate::cache_mode::CacheMode;
use crate::delta_fifo::{DeletedFinalStateUnknown, Delta};
use crate::ids::{IndexValue, ObjectKey};
use crate::store::{IndexFn, NAMESPACE_INDEX, Store};
use crate::test_support::{pod, pod_on, rv};

fn popped(kind: DeltaType, obj: Arc<Pod>) -> PoppedKey<Pod> {
    PoppedKey {
        key: ObjectKey::of(obj.as_ref()),
        deltas: vec![Delta {
            kind,
            object: DeltaObject::Live(obj),
        }],
        initial_list: false,
    }
}

fn apply(
    writer: &mut StoreWriter<Pod>,
    popped: Vec<PoppedKey<Pod>>,
    generation: u64,
) -> Vec<Notification<Pod>> {
    writer.write(|c| process_deltas(c, popped, generation, &mut Default::default()))
}

fn by_node(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .into_iter()
        .collect()
}

/// Notifications as (kind, name, resourceVersion) for whole-sequence asserts.
fn summary(notes: &[Notification<Pod>]) -> Vec<(&'static str, String, u64)> {
    notes
        .iter()
        .map(|n| match n {
            Notification::Added { obj, .. } => {
                ("added", obj.metadata.name.clone().unwrap(), rv(obj))
            }
            Notification::Updated { new, .. } => {
                ("updated", new.metadata.name.clone().unwrap(), rv(new))
            }
            Notification::Deleted {
                obj,
                final_state_unknown,
                ..
            } => (
                if *final_state_unknown {
                    "deleted?"
                } else {
                    "deleted"
                },
                obj.metadata.name.clone().unwrap(),
                rv(obj),
            ),
            Notification::Resync { obj, .. } => {
                ("resync", obj.metadata.name.clone().unwrap(), rv(obj))
            }
        })
        .collect()
}

#[test]
fn should_tell_adds_from_updates_by_what_the_cache_holds() {
    let mut writer = StoreWriter::new();
    let notes = apply(
        &mut writer,
        vec![
            popped(DeltaType::Updated, pod("a", 1)),
            popped(DeltaType::Added, pod("a", 2)),
            popped(DeltaType::Deleted, pod("a", 3)),
            popped(DeltaType::Deleted, pod("b", 4)),
        ],
        0,
    );
    assert_eq!(
        summary(&notes),
        vec![
            ("added", "a".into(), 1),
            ("updated", "a".into(), 2),
            ("deleted", "a".into(), 3)
        ]
    );
    writer.write(|c| c.check_invariants());
}

#[test]
fn should_not_reannounce_relisted_objects_with_the_same_resource_version() {
    let mut writer = StoreWriter::new();
    apply(
        &mut writer,
        vec![popped(DeltaType::Replaced, pod("a", 1))],
        0,
    );
    let notes = apply(
        &mut writer,
        vec![
            popped(DeltaType::Replaced, pod("a", 1)),
            popped(DeltaType::Replaced, pod("b", 2)),
        ],
        0,
    );
    assert_eq!(summary(&notes), vec![("added", "b".into(), 2)]);
}

#[test]
fn should_announce_a_tombstone_as_a_deletion_with_unknown_final_state() {
    let mut writer = StoreWriter::new();
    apply(&mut writer, vec![popped(DeltaType::Added, pod("a", 1))], 0);
    let key = ObjectKey::new("ns/a");
    let tombstone = DeltaObject::Tombstone(DeletedFinalStateUnknown {
        key: key.clone(),
        obj: pod("a", 1),
    });
    let notes = apply(
        &mut writer,
        vec![PoppedKey {
            key,
            deltas: vec![Delta {
                kind: DeltaType::Deleted,
                object: tombstone,
            }],
            initial_list: false,
        }],
        0,
    );
    assert_eq!(summary(&notes), vec![("deleted?", "a".into(), 1)]);
}

#[test]
fn should_resync_with_the_stored_arc() {
    let mut writer = StoreWriter::new();
    let stored = pod("a", 1);
    apply(
        &mut writer,
        vec![popped(DeltaType::Added, stored.clone())],
        0,
    );
    let notes = apply(&mut writer, vec![popped(DeltaType::Sync, pod("a", 1))], 7);
    match &notes[..] {
        [
            Notification::Resync {
                obj, generation: 7, ..
            },
        ] => assert!(Arc::ptr_eq(obj, &stored)),
        other => panic!("expected one resync, got {other:?}"),
    }
}

#[test]
fn should_keep_user_indexes_exact_through_moves_and_deletes() {
    let mut writer: StoreWriter<Pod> = StoreWriter::new();
    let store: Store<Pod> = writer.reader();
    writer
        .write(|c| {
            c.add_indexers(vec![(
                IndexName::new("by-node"),
                Arc::new(by_node) as IndexFn<Pod>,
            )])
        })
        .unwrap();
    writer.write(|c| {
        process_deltas(
            c,
            vec![
                popped(DeltaType::Added, pod_on("a", 1, Some("n1"))),
                popped(DeltaType::Added, pod_on("b", 2, Some("n1"))),
                popped(DeltaType::Added, pod_on("c", 3, None)),
            ],
            0,
            &mut Default::default(),
        )
    });
    writer.write(|c| {
        process_deltas(
            c,
            vec![
                popped(DeltaType::Updated, pod_on("a", 4, Some("n2"))),
                popped(DeltaType::Deleted, pod_on("b", 5, Some("n1"))),
            ],
            0,
            &mut Default::default(),
        )
    });
    writer.write(|c| c.check_invariants());
    let names = |objs: Vec<Arc<Pod>>| {
        let mut n: Vec<String> = objs
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(store.by_index("by-node", "n2").unwrap()), vec!["a"]);
    assert!(store.by_index("by-node", "n1").unwrap().is_empty());
    assert_eq!(
        store.list_index_values("by-node").unwrap(),
        vec![IndexValue::new("n2")]
    );
    assert_eq!(
        names(store.by_index(NAMESPACE_INDEX, "ns").unwrap()),
        vec!["a", "c"]
    );
    assert_eq!(
        store.index_keys("by-node", "n2").unwrap(),
        vec![ObjectKey::new("ns/a")]
    );
}

#[test]
fn should_index_objects_already_cached_when_an_index_is_added_late() {
    let mut writer: StoreWriter<Pod> = StoreWriter::new();
    let store: Store<Pod> = writer.reader();
    writer.write(|c| {
        process_deltas(
            c,
            vec![popped(DeltaType::Added, pod_on("a", 1, Some("n1")))],
            0,
            &mut Default::default(),
        )
    });
    writer
        .write(|c| {
            c.add_indexers(vec![(
                IndexName::new("by-node"),
                Arc::new(by_node) as IndexFn<Pod>,
            )])
        })
        .unwrap();
    assert_eq!(store.by_index("by-node", "n1").unwrap().len(), 1);
}

#[test]
fn should_name_the_missing_or_duplicate_index() {
    let mut writer: StoreWriter<Pod> = StoreWriter::new();
    let store: Store<Pod> = writer.reader();
    assert_eq!(
        store.by_index("nope", "x").unwrap_err(),
        IndexError::UnknownIndex("nope".into())
    );
    let err = writer
        .write(|c| {
            c.add_indexers(vec![(
                IndexName::new(NAMESPACE_INDEX),
                Arc::new(by_node) as IndexFn<Pod>,
            )])
        })
        .unwrap_err();
    assert_eq!(err, IndexError::DuplicateIndex(NAMESPACE_INDEX.into()));
    assert!(err.to_string().contains("already exists"));
}

#[test]
fn should_share_stored_objects_instead_of_copying() {
    let mut writer: StoreWriter<Pod> = StoreWriter::new();
    let store: Store<Pod> = writer.reader();
    let obj = pod("a", 1);
    writer.write(|c| {
        process_deltas(
            c,
            vec![popped(DeltaType::Added, obj.clone())],
            0,
            &mut Default::default(),
        )
    });
    assert!(Arc::ptr_eq(
        &store.get(&ObjectKey::new("ns/a")).unwrap(),
        &obj
    ));
}

#[test]
fn should_reannounce_a_relisted_key_a_failed_batch_left_unannounced() {
    let mut writer = StoreWriter::new();
    apply(&mut writer, vec![popped(DeltaType::Added, pod("a", 1))], 0);
    let mut unannounced = std::collections::HashSet::from([ObjectKey::new("ns/a")]);
    let notes = writer.write(|c| {
        process_deltas(
            c,
            vec![
                popped(DeltaType::Replaced, pod("a", 1)),
                popped(DeltaType::Replaced, pod("b", 2)),
            ],
            0,
            &mut unannounced,
        )
    });
    assert_eq!(
        summary(&notes),
        vec![("updated", "a".into(), 1), ("added", "b".into(), 2)]
    );
    assert!(unannounced.is_empty(), "announced once, then forgotten");
}

/// The indexer actor with its processor: fan-out and late listeners.
mod distribution {
    use std::time::Duration;

    use actix::prelude::*;
    use k8s_openapi::api::core::v1::Pod;
    use parking_lot::Mutex;

    use super::*;
    use crate::event::Event;
    use crate::listener::{HandlerOptions, Listener, ListenerCounters};
    use crate::processor::{AddListener, HandlerId, RemoveListener};
    use crate::test_support::{Recorder, cluster, ignore_faults, wait_until};

    const PATIENCE: Duration = Duration::from_secs(5);

    fn add_listener(
        indexer: &Addr<Indexer<Pod>>,
        id: u64,
        recorder: Recorder,
        options: HandlerOptions<Pod>,
    ) -> Arc<ListenerCounters> {
        let counters = Arc::new(ListenerCounters::default());
        indexer.do_send(AddListener {
            id: HandlerId(id),
            start: Listener::starter(
                HandlerId(id),
                cluster(),
                "v1/pods".into(),
                recorder.start().recipient().into(),
                options,
                None,
                counters.clone(),
            ),
        });
        counters
    }

    fn updates(seq: u64, names: impl Iterator<Item = String>) -> PoppedBatch<Pod> {
        PoppedBatch {
            seq,
            keys: names
                .map(|n| popped(DeltaType::Updated, pod(&n, seq + 1)))
                .collect(),
            marks_synced: false,
            resync_generation: 0,
            trace: crate::trace_context::TraceContext::none(),
            arrived: None,
        }
    }

    #[actix_rt::test]
    async fn should_fan_out_without_waiting_for_a_slow_handler() {
        let indexer = Indexer::new(
            cluster(),
            "v1/pods".into(),
            StoreWriter::new(),
            ignore_faults(),
        )
        .start();
        let (fast_seen, slow_seen) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(Vec::new())),
        );
        let fast = add_listener(
            &indexer,
            1,
            Recorder::new(fast_seen.clone()),
            HandlerOptions::default(),
        );
        let mut slow_recorder = Recorder::new(slow_seen.clone());
        slow_recorder.delay = Some(Duration::from_millis(50));
        let slow = add_listener(
            &indexer,
            2,
            slow_recorder,
            HandlerOptions::default().coalescing(),
        );
        for seq in 1..=20 {
            indexer
                .send(updates(seq, (0..10).map(|i| format!("p{i}"))))
                .await
                .unwrap();
        }
        wait_until("the fast handler has all 200 events", PATIENCE, || {
            fast.snapshot().delivered == 200
        })
        .await;
        let slow_status = slow.snapshot();
        assert!(
            slow_status.backlog > 0,
            "the slow handler should still be behind: {slow_status:?}"
        );
        assert!(
            slow_status.backlog <= 10 + 1,
            "coalescing bounds the backlog by keys (+ the one in hand): {slow_status:?}"
        );
        // Whatever the slow one got last is the latest state of each key.
        wait_until("the slow handler catches up", PATIENCE, || {
            slow.snapshot().backlog == 0
        })
        .await;
        let last: std::collections::HashMap<String, Arc<Pod>> = slow_seen
            .lock()
            .iter()
            .map(|e| {
                (
                    e.object().metadata.name.clone().unwrap(),
                    e.object().clone(),
                )
            })
            .collect();
        assert!(
            last.values()
                .all(|p| p.metadata.resource_version.as_deref() == Some("21")),
            "{last:?}"
        );
    }

    #[actix_rt::test]
    async fn should_replay_the_cache_to_a_late_handler_and_stop_a_removed_one() {
        let indexer = Indexer::new(
            cluster(),
            "v1/pods".into(),
            StoreWriter::new(),
            ignore_faults(),
        )
        .start();
        indexer
            .send(PoppedBatch {
                seq: 1,
                keys: vec![PoppedKey {
                    initial_list: true,
                    ..popped(DeltaType::Replaced, pod("a", 1))
                }],
                marks_synced: true,
                resync_generation: 0,
                trace: crate::trace_context::TraceContext::none(),
                arrived: None,
            })
            .await
            .unwrap();
        let late_seen = Arc::new(Mutex::new(Vec::new()));
        let late = add_listener(
            &indexer,
            1,
            Recorder::new(late_seen.clone()),
            HandlerOptions::default(),
        );
        wait_until("the late handler syncs", PATIENCE, || late.has_synced()).await;
        assert!(matches!(
            &late_seen.lock()[..],
            [Event::Added { initial: true, .. }]
        ));
        assert!(indexer.send(RemoveListener(HandlerId(1))).await.unwrap());
        assert!(!indexer.send(RemoveListener(HandlerId(1))).await.unwrap());
        indexer
            .send(updates(2, ["a".to_string()].into_iter()))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        assert_eq!(late_seen.lock().len(), 1, "a removed handler got an event");
    }
}

#[test]
fn should_announce_and_index_the_same_in_compact_mode_as_in_typed_mode() {
    let churn = || {
        vec![
            vec![
                popped(DeltaType::Replaced, pod_on("a", 1, Some("n1"))),
                popped(DeltaType::Replaced, pod_on("b", 2, Some("n1"))),
                popped(DeltaType::Replaced, pod_on("c", 3, Some("n2"))),
            ],
            vec![
                popped(DeltaType::Updated, pod_on("a", 4, Some("n2"))),
                popped(DeltaType::Deleted, pod_on("b", 2, Some("n1"))),
                // A relist at an unchanged version is not re-announced...
                popped(DeltaType::Replaced, pod_on("c", 3, Some("n2"))),
            ],
            vec![
                // ...a changed one is an update; a resync repeats the cached state.
                popped(DeltaType::Replaced, pod_on("c", 5, None)),
                popped(DeltaType::Sync, pod_on("a", 4, Some("n2"))),
                popped(DeltaType::Added, pod_on("d", 6, Some("n1"))),
            ],
        ]
    };
    let run = |mode: CacheMode| {
        let mut writer = StoreWriter::with_mode(mode);
        writer
            .write(|c| {
                c.add_indexers(vec![(
                    IndexName::new("by-node"),
                    Arc::new(by_node) as IndexFn<Pod>,
                )])
            })
            .unwrap();
        let mut all = Vec::new();
        for batch in churn() {
            let notes = apply(&mut writer, batch, 1);
            all.extend(summary(&notes));
            writer.write(|c| c.check_invariants());
        }
        let store = writer.reader();
        let mut n2: Vec<_> = store
            .by_index("by-node", "n2")
            .unwrap()
            .iter()
            .map(|p| (p.metadata.name.clone().unwrap(), rv(p)))
            .collect();
        n2.sort();
        (all, n2, store.compact_bytes())
    };
    let (typed, typed_n2, typed_bytes) = run(CacheMode::Typed);
    let (compact, compact_n2, compact_bytes) = run(CacheMode::Compact);
    assert_eq!(typed, compact);
    assert_eq!(typed_n2, vec![("a".to_string(), 4)]);
    assert_eq!(typed_n2, compact_n2);
    assert_eq!(typed_bytes, 0);
    assert!(compact_bytes > 0);
}

/// A pod `ns{ns}/p{name}` at `rv` with the labels `app` and (maybe) `tier` given.
fn labelled(name: u8, ns: u8, rv: u64, app: u8, tier: Option<u8>) -> Arc<Pod> {
    let mut labels = std::collections::BTreeMap::from([("app".to_string(), format!("a{app}"))]);
    if let Some(tier) = tier {
        labels.insert("tier".into(), format!("t{tier}"));
    }
    Arc::new(Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("p{name}")),
            namespace: Some(format!("ns{ns}")),
            resource_version: Some(rv.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    })
}

proptest::proptest! {
    /// Selections answered from the label index are the ones a scan with kube's matcher
    /// finds, in both cache modes, through adds, label moves and deletes.
    #[test]
    fn should_select_through_the_label_index_what_a_scan_selects(
        changes in proptest::collection::vec(
            (0u8..12, 0u8..2, 0u8..3, proptest::option::of(0u8..2), proptest::bool::weighted(0.2)),
            1..60,
        )
    ) {
        use kube::core::{Expression, Selector, SelectorExt};
        let selectors: Vec<Selector> = vec![
            Expression::Equal("app".into(), "a1".into()).into(),
            Expression::In("app".into(), ["a0".to_string(), "a2".to_string()].into()).into(),
            [
                Expression::Equal("tier".into(), "t1".into()),
                Expression::NotEqual("app".into(), "a0".into()),
            ]
            .into_iter()
            .collect(),
            Expression::Equal("app".into(), "missing".into()).into(),
        ];
        for mode in [CacheMode::Typed, CacheMode::Compact] {
            let mut writer = StoreWriter::with_mode(mode);
            for (i, (name, ns, app, tier, delete)) in changes.iter().enumerate() {
                let obj = labelled(*name, *ns, i as u64 + 1, *app, *tier);
                let kind = if *delete { DeltaType::Deleted } else { DeltaType::Replaced };
                apply(&mut writer, vec![popped(kind, obj)], 1);
                writer.write(|c| c.check_invariants());
            }
            let store = writer.reader();
            let all = store.list();
            for selector in &selectors {
                for namespace in [None, Some("ns0"), Some("ns9")] {
                    let names = |pods: Vec<Arc<Pod>>| {
                        let mut names: Vec<String> =
                            pods.iter().map(|p| ObjectKey::of(p.as_ref()).to_string()).collect();
                        names.sort();
                        names
                    };
                    let scanned = all
                        .iter()
                        .filter(|p| namespace.is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns)))
                        .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap()))
                        .cloned()
                        .collect();
                    let selected = store
                        .select(namespace, selector)
                        .into_iter()
                        .filter_map(crate::store::Held::object)
                        .collect();
                    proptest::prop_assert_eq!(names(selected), names(scanned), "{} in {:?} ({:?})", selector, namespace, mode);
                }
            }
        }
    }
}
