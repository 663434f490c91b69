//! Partial writes ([`super::partial_object`]) against the general path: the same patches on
//! two stores holding the same realistic pods, one with partial writes and one without,
//! must give the same stored bytes, resourceVersions, index answers, errors and watch events.

use std::cell::Cell;

use serde_json::{Value, json};
use tokio::sync::mpsc::error::TryRecvError;

use super::state::State;
use super::writes::{PARTIAL_WRITES, PARTIAL_WRITES_TAKEN};
use super::*;
use crate::pods::{ensure_namespace, realistic_pod};

pub(super) fn seeded_store() -> ClusterStore {
    let store = ClusterStore::new(StoreConfig::default());
    ensure_namespace(&store, "ns");
    let pods = store.builtin("", "pods");
    for seq in 0..3 {
        store
            .insert_as_is(&pods, realistic_pod("ns", &format!("pod-{seq}"), seq))
            .unwrap();
    }
    store
}

fn with_partial_writes<T>(on: bool, f: impl FnOnce() -> T) -> T {
    PARTIAL_WRITES.with(|c| c.set(on));
    let result = f();
    PARTIAL_WRITES.with(|c| c.set(true));
    result
}

/// The object with what depends on the wall clock blanked (managedFields times, and so
/// their order, deletionTimestamp), for when a write pair straddled a second.
pub(super) fn without_times(json: &[u8]) -> Value {
    let mut value: Value = serde_json::from_slice(json).unwrap();
    if let Some(entries) = value
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for entry in entries.iter_mut() {
            entry["time"] = json!("");
        }
        entries.sort_by_key(|e| e.to_string());
    }
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut)
        && metadata.contains_key("deletionTimestamp")
    {
        metadata.insert("deletionTimestamp".into(), json!(""));
    }
    value
}

fn same_object(partial: &StoredObject, general: &StoredObject, same_second: bool, what: &str) {
    if same_second {
        assert_eq!(
            String::from_utf8_lossy(&partial.json),
            String::from_utf8_lossy(&general.json),
            "{what}"
        );
    } else {
        assert_eq!(
            without_times(&partial.json),
            without_times(&general.json),
            "{what}"
        );
    }
    assert_eq!(partial.resource_version, general.resource_version, "{what}");
    assert_eq!(partial.name(), general.name(), "{what}");
    assert_eq!(partial.namespace(), general.namespace(), "{what}");
    for key in ["app", "tier", "pod-template-hash", "new", "n"] {
        assert_eq!(
            partial.label(key),
            general.label(key),
            "{what}: label {key}"
        );
    }
    for pointer in selector::INDEXED_FIELDS {
        assert_eq!(
            partial.field(pointer),
            general.field(pointer),
            "{what}: {pointer}"
        );
    }
    // And the index answers what the JSON says (as a freshly built one would).
    let rebuilt = StoredObject::new(&partial.value(), partial.resource_version);
    for pointer in selector::INDEXED_FIELDS {
        assert_eq!(partial.field(pointer), rebuilt.field(pointer), "{what}");
    }
}

pub(super) fn events(watch: &mut Watch) -> Vec<(String, Vec<u8>)> {
    let mut seen = Vec::new();
    loop {
        match watch.events.try_recv() {
            Ok(WatchEvent::Added(o)) => seen.push(("ADDED".into(), o.json.to_vec())),
            Ok(WatchEvent::Modified(o)) => seen.push(("MODIFIED".into(), o.json.to_vec())),
            Ok(WatchEvent::Deleted(o)) => seen.push(("DELETED".into(), o.json.to_vec())),
            Ok(other) => seen.push((format!("{other:?}"), Vec::new())),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => return seen,
        }
    }
}

pub(super) struct Pair {
    pub(super) partial: ClusterStore,
    pub(super) general: ClusterStore,
    pub(super) taken: Cell<u64>,
    /// No write pair so far straddled a second (so the stores' clocks read alike).
    pub(super) clocks_agree: Cell<bool>,
}

impl Pair {
    /// Applies one patch to both stores; returns whether the partial store took the
    /// partial path.
    pub(super) fn patch(
        &self,
        name: &str,
        sub: Subresource,
        patch_type: PatchType,
        body: &str,
        manager: &str,
    ) -> bool {
        let pods = self.partial.builtin("", "pods");
        let opts = WriteOptions {
            field_manager: Some(manager.into()),
            ..Default::default()
        };
        let before = State::now_rfc3339();
        let taken_before = PARTIAL_WRITES_TAKEN.with(Cell::get);
        let partial = with_partial_writes(true, || {
            self.partial.patch(
                &pods,
                Some("ns"),
                name,
                sub,
                patch_type,
                body.as_bytes(),
                &opts,
            )
        });
        let took = PARTIAL_WRITES_TAKEN.with(Cell::get) > taken_before;
        let general = with_partial_writes(false, || {
            self.general.patch(
                &pods,
                Some("ns"),
                name,
                sub,
                patch_type,
                body.as_bytes(),
                &opts,
            )
        });
        assert_eq!(
            PARTIAL_WRITES_TAKEN.with(Cell::get),
            taken_before + u64::from(took),
            "the general store never goes partial"
        );
        if State::now_rfc3339() != before {
            self.clocks_agree.set(false);
        }
        let same_second = self.clocks_agree.get();
        let what = format!("{patch_type:?} {sub:?} {body}");
        match (partial, general) {
            (Ok(p), Ok(g)) => same_object(&p, &g, same_second, &what),
            (Err(p), Err(g)) => {
                assert_eq!((p.code, &p.message), (g.code, &g.message), "{what}")
            }
            (p, g) => panic!("{what}: partial {p:?} but general {g:?}"),
        }
        if took {
            self.taken.set(self.taken.get() + 1);
        }
        took
    }
}

#[test]
fn partial_patches_give_what_the_general_path_gives() {
    let pair = Pair {
        partial: seeded_store(),
        general: seeded_store(),
        taken: Cell::new(0),
        clocks_agree: Cell::new(true),
    };
    let pods = pair.partial.builtin("", "pods");
    let watch_options = WatchOptions {
        resource_version: Some(pair.partial.resource_version().to_string()),
        ..Default::default()
    };
    assert_eq!(
        pair.partial.resource_version(),
        pair.general.resource_version()
    );
    let mut partial_watch = pair
        .partial
        .watch(&pods, Some("ns"), &watch_options)
        .unwrap();
    let mut general_watch = pair
        .general
        .watch(&pods, Some("ns"), &watch_options)
        .unwrap();

    use PatchType::{Json, Merge, StrategicMerge};
    use Subresource::{Main, Status};
    let stamp = |n: u64| {
        format!(r#"{{"metadata":{{"annotations":{{"bench.panoptes.dev/written-at":"1:{n}"}}}}}}"#)
    };
    // (pod, subresource, encoding, body, manager, whether it must go partial)
    let steps: Vec<(&str, Subresource, PatchType, String, &str, bool)> = vec![
        // The bench's stamped update: first (a new managedFields entry), then again.
        ("pod-0", Main, StrategicMerge, stamp(1), "bench", true),
        ("pod-0", Main, StrategicMerge, stamp(2), "bench", true),
        ("pod-1", Main, Merge, stamp(3), "bench", true),
        // Another manager takes the field over.
        ("pod-0", Main, StrategicMerge, stamp(4), "other", true),
        // Labels: add, change, remove; a non-string value.
        (
            "pod-1",
            Main,
            Merge,
            r#"{"metadata":{"labels":{"new":"x","tier":null},"annotations":{"prometheus.io/port":null}}}"#.into(),
            "kubectl",
            true,
        ),
        (
            "pod-1",
            Main,
            Merge,
            r#"{"metadata":{"labels":{"n":1}}}"#.into(),
            "kubectl",
            true,
        ),
        (
            "pod-2",
            Main,
            StrategicMerge,
            r#"{"metadata":{"labels":{"$patch":"replace","app":"solo"}}}"#.into(),
            "kubectl",
            true,
        ),
        // Nothing changes: the old object comes back, no event.
        (
            "pod-2",
            Main,
            StrategicMerge,
            r#"{"metadata":{"labels":{"app":"solo"}}}"#.into(),
            "kubectl",
            true,
        ),
        // JSON patch on metadata, with escaped keys; a failed test; a root operation.
        (
            "pod-0",
            Main,
            Json,
            r#"[{"op":"add","path":"/metadata/annotations/a~1b~0c","value":"1"},{"op":"replace","path":"/metadata/labels/tier","value":"x"}]"#.into(),
            "kubectl",
            true,
        ),
        (
            "pod-0",
            Main,
            Json,
            r#"[{"op":"test","path":"/metadata/labels/app","value":"nope"}]"#.into(),
            "kubectl",
            true,
        ),
        (
            "pod-0",
            Main,
            Json,
            r#"[{"op":"copy","from":"/spec/nodeName","path":"/metadata/annotations/node"}]"#.into(),
            "kubectl",
            true,
        ),
        (
            "pod-0",
            Main,
            Json,
            r#"[{"op":"replace","path":"","value":{}}]"#.into(),
            "kubectl",
            false,
        ),
        // Status through the main resource is ignored; through /status it lands (and moves
        // the indexed status fields).
        (
            "pod-1",
            Main,
            StrategicMerge,
            r#"{"status":{"phase":"Failed"}}"#.into(),
            "kubectl",
            true,
        ),
        (
            "pod-1",
            Status,
            StrategicMerge,
            r#"{"status":{"phase":"Failed","podIP":"10.9.9.9","conditions":[{"type":"Ready","status":"False","lastTransitionTime":"2026-12-01T00:00:00Z"}]}}"#.into(),
            "kubelet",
            true,
        ),
        (
            "pod-2",
            Status,
            Merge,
            r#"{"metadata":{"labels":{"ignored":"yes"}},"status":{"podIP":null}}"#.into(),
            "kubelet",
            true,
        ),
        // Spec changes and server-set fields a patch cannot move.
        (
            "pod-2",
            Main,
            Merge,
            r#"{"spec":{"activeDeadlineSeconds":30},"kind":"Other","metadata":{"uid":"u"}}"#.into(),
            "kubectl",
            true,
        ),
        // A stale resourceVersion, a wrong name, a body that is not an object.
        (
            "pod-0",
            Main,
            Merge,
            r#"{"metadata":{"resourceVersion":"1","labels":{"a":"b"}}}"#.into(),
            "kubectl",
            true,
        ),
        (
            "pod-0",
            Main,
            Merge,
            r#"{"metadata":{"name":"other"}}"#.into(),
            "kubectl",
            true,
        ),
        ("pod-0", Main, Merge, "[1]".into(), "kubectl", false),
        ("missing", Main, Merge, stamp(5), "bench", false),
        // A top-level directive goes the general way.
        (
            "pod-0",
            Main,
            StrategicMerge,
            r#"{"$patch":"replace","metadata":{"name":"pod-0"}}"#.into(),
            "kubectl",
            false,
        ),
        // Finalizers, then a delete held by them, then the patch that lets it go.
        (
            "pod-1",
            Main,
            Merge,
            r#"{"metadata":{"finalizers":["example.com/hold"]}}"#.into(),
            "kubectl",
            true,
        ),
    ];
    for (name, sub, patch_type, body, manager, partial) in &steps {
        let took = pair.patch(name, *sub, *patch_type, body, manager);
        assert_eq!(
            took, *partial,
            "{patch_type:?} {sub:?} {body}: partial path"
        );
    }
    let delete = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for store in [&pair.partial, &pair.general] {
        let outcome = store.delete(&pods, Some("ns"), "pod-1", &delete).unwrap();
        assert!(matches!(outcome, DeleteOutcome::Pending(_)));
    }
    assert!(pair.patch(
        "pod-1",
        Main,
        Merge,
        r#"{"metadata":{"finalizers":null}}"#,
        "kubectl"
    ));
    for store in [&pair.partial, &pair.general] {
        assert!(
            store
                .get(&pods, Some("ns"), "pod-1", Subresource::Main)
                .is_err(),
            "released"
        );
    }
    assert!(pair.taken.get() >= 15);
    assert_eq!(
        pair.partial.resource_version(),
        pair.general.resource_version()
    );
    let (partial_events, general_events) = (events(&mut partial_watch), events(&mut general_watch));
    assert_eq!(partial_events.len(), general_events.len());
    for (p, g) in partial_events.iter().zip(&general_events) {
        assert_eq!(p.0, g.0);
        assert_eq!(without_times(&p.1), without_times(&g.1));
    }
    assert!(partial_events.iter().any(|(kind, _)| kind == "DELETED"));
}

/// Not a check but a measurement: the bench's stamped annotation update (`benches/informers`
/// `server_process.rs`) on realistic pods, through the general path and the partial one
/// (which, since [`super::fast_patch`], is that byte-level fast path for this patch).
/// `cargo test -p panoptes-sim --lib stamped_update_cost -- --ignored --nocapture` (debug
/// builds inflate both; the ratio is what it shows).
#[test]
#[ignore = "a measurement, not a check"]
fn stamped_update_cost() {
    const WRITES: u64 = 2_000;
    for partial in [false, true] {
        let store = seeded_store();
        let pods = store.builtin("", "pods");
        let opts = WriteOptions {
            field_manager: Some("bench".into()),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let cpu_before = thread_cpu_nanos();
        with_partial_writes(partial, || {
            for seq in 0..WRITES {
                let body = format!(
                    r#"{{"metadata":{{"annotations":{{"bench.panoptes.dev/written-at":"1:{seq}"}}}}}}"#
                );
                store
                    .patch(
                        &pods,
                        Some("ns"),
                        &format!("pod-{}", seq % 3),
                        Subresource::Main,
                        PatchType::StrategicMerge,
                        body.as_bytes(),
                        &opts,
                    )
                    .unwrap();
            }
        });
        let secs = started.elapsed().as_secs_f64();
        // On a shared machine the thread's CPU time says more than the wall clock.
        let cpu = thread_cpu_nanos()
            .zip(cpu_before)
            .map(|(a, b)| (a - b) as f64 / 1e9);
        println!(
            "{}: {WRITES} stamped updates in {secs:.3} s wall = {:.0}/s ({:.1} µs each); CPU {}",
            if partial { "partial" } else { "general" },
            WRITES as f64 / secs,
            secs * 1e6 / WRITES as f64,
            cpu.map_or("unknown".into(), |cpu| format!(
                "{cpu:.3} s = {:.0}/s ({:.1} µs each)",
                WRITES as f64 / cpu,
                cpu * 1e6 / WRITES as f64
            ))
        );
    }
}

/// This thread's time on a CPU (Linux `schedstat`), if the system says.
fn thread_cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
