//! The label/annotation fast path ([`super::fast_patch`]) against the general path: random
//! sequences of label and annotation patches (new keys, changed ones, deletes with `null`,
//! keys and values that need escaping, several managers) on two stores holding the same
//! realistic pods, one with the fast and partial paths and one with neither, must give the
//! same results, stored bytes, resourceVersions, index answers, errors and watch events. A
//! patch that also touches something else must not take the fast path (and still agree). A
//! dependent stamped on the fast path (which does not tell the garbage collector) is still
//! collected with its owner.

use std::cell::Cell;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::partial_object_tests::{Pair, events, seeded_store, without_times};
use super::writes::FAST_PATCHES_TAKEN;
use super::*;

/// What a patch carries besides label and annotation entries (each makes it general).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    Nothing,
    /// A spec field.
    Spec,
    /// A stale `metadata.resourceVersion`: 409 on both paths.
    StaleResourceVersion,
    /// A finalizer.
    Finalizer,
    /// A label with a non-string value.
    NumberLabel,
    /// The whole annotations map removed.
    NullAnnotations,
}

#[derive(Debug, Clone)]
struct Step {
    pod: usize,
    strategic: bool,
    manager: usize,
    labels: Vec<(String, Option<String>)>,
    annotations: Vec<(String, Option<String>)>,
    extra: Extra,
}

const MANAGERS: [&str; 3] = ["bench", "kubectl", "churn"];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_string()),
        Just("tier".to_string()),
        Just("prometheus.io/port".to_string()),
        Just("panoptes.bench/stamp".to_string()),
        Just("quo\"te".to_string()),
        Just("back\\slash".to_string()),
        Just("tab\tand\u{1}control".to_string()),
        Just("ünïcode/ключ".to_string()),
        "[a-z]{1,3}(/[a-z.]{1,3})?",
    ]
}

fn value() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.75,
        prop_oneof![
            Just("x".to_string()),
            Just(String::new()),
            "[a-z0-9\"\\\\ ü]{0,6}",
        ],
    )
}

fn step() -> impl Strategy<Value = Step> {
    let entries = || prop::collection::vec((key(), value()), 0..4);
    (
        0..3usize,
        any::<bool>(),
        0..MANAGERS.len(),
        entries(),
        entries(),
        prop_oneof![
            6 => Just(Extra::Nothing),
            1 => Just(Extra::Spec),
            1 => Just(Extra::StaleResourceVersion),
            1 => Just(Extra::Finalizer),
            1 => Just(Extra::NumberLabel),
            1 => Just(Extra::NullAnnotations),
        ],
    )
        .prop_map(
            |(pod, strategic, manager, labels, annotations, extra)| Step {
                pod,
                strategic,
                manager,
                labels,
                annotations,
                extra,
            },
        )
}

impl Step {
    fn body(&self) -> Value {
        let map = |entries: &[(String, Option<String>)]| -> Map<String, Value> {
            entries
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect()
        };
        let mut metadata = Map::new();
        let (labels, annotations) = (map(&self.labels), map(&self.annotations));
        if !labels.is_empty() {
            metadata.insert("labels".into(), Value::Object(labels));
        }
        if !annotations.is_empty() {
            metadata.insert("annotations".into(), Value::Object(annotations));
        }
        let mut body = json!({ "metadata": metadata });
        match self.extra {
            Extra::Nothing => {}
            Extra::Spec => body["spec"] = json!({"activeDeadlineSeconds": 5}),
            Extra::StaleResourceVersion => body["metadata"]["resourceVersion"] = json!("1"),
            Extra::Finalizer => body["metadata"]["finalizers"] = json!(["example.com/hold"]),
            Extra::NumberLabel => body["metadata"]["labels"]["n"] = json!(1),
            Extra::NullAnnotations => body["metadata"]["annotations"] = Value::Null,
        }
        body
    }

    /// Whether the fast path must take it: label/annotation entries and nothing else.
    fn is_simple(&self) -> bool {
        self.extra == Extra::Nothing && !(self.labels.is_empty() && self.annotations.is_empty())
    }
}

fn pair() -> Pair {
    Pair {
        partial: seeded_store(),
        general: seeded_store(),
        taken: Cell::new(0),
        clocks_agree: Cell::new(true),
    }
}

/// Runs `steps` on both stores of a fresh pair, checking each result, which steps took the
/// fast path, the final objects and the watch events.
fn run(steps: &[Step]) {
    let pair = pair();
    let pods = pair.partial.builtin("", "pods");
    let watch_options = WatchOptions {
        resource_version: Some(pair.partial.resource_version().to_string()),
        ..Default::default()
    };
    let mut fast_watch = pair
        .partial
        .watch(&pods, Some("ns"), &watch_options)
        .unwrap();
    let mut general_watch = pair
        .general
        .watch(&pods, Some("ns"), &watch_options)
        .unwrap();
    for step in steps {
        let before = FAST_PATCHES_TAKEN.with(Cell::get);
        let body = step.body().to_string();
        let patch_type = if step.strategic {
            PatchType::StrategicMerge
        } else {
            PatchType::Merge
        };
        pair.patch(
            &format!("pod-{}", step.pod),
            Subresource::Main,
            patch_type,
            &body,
            MANAGERS[step.manager],
        );
        let fast = FAST_PATCHES_TAKEN.with(Cell::get) > before;
        assert_eq!(fast, step.is_simple(), "{body}: fast path");
    }
    assert_eq!(
        pair.partial.resource_version(),
        pair.general.resource_version()
    );
    for pod in 0..3 {
        let name = format!("pod-{pod}");
        let get = |store: &ClusterStore| {
            store
                .get(&pods, Some("ns"), &name, Subresource::Main)
                .unwrap()
        };
        let (fast, general) = (get(&pair.partial), get(&pair.general));
        if pair.clocks_agree.get() {
            assert_eq!(fast.json, general.json);
        } else {
            assert_eq!(without_times(&fast.json), without_times(&general.json));
        }
    }
    let (fast_events, general_events) = (events(&mut fast_watch), events(&mut general_watch));
    assert_eq!(fast_events.len(), general_events.len());
    for (f, g) in fast_events.iter().zip(&general_events) {
        assert_eq!(f.0, g.0);
        if pair.clocks_agree.get() {
            assert_eq!(f.1, g.1);
        } else {
            assert_eq!(without_times(&f.1), without_times(&g.1));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fast_label_patches_store_what_the_general_path_stores(
        steps in prop::collection::vec(step(), 1..8)
    ) {
        run(&steps);
    }
}

#[test]
fn the_stamped_update_and_a_no_op_take_the_fast_path() {
    let stamp = |n: u64| Step {
        pod: 0,
        strategic: true,
        manager: 0,
        labels: Vec::new(),
        annotations: vec![("panoptes.bench/stamp".into(), Some(format!("1:{n}")))],
        extra: Extra::Nothing,
    };
    // A new managedFields entry, the same entry again, the same value (nothing written),
    // another manager taking the field over, a stale precondition.
    let mut other = stamp(3);
    other.manager = 1;
    let mut stale = stamp(4);
    stale.extra = Extra::StaleResourceVersion;
    run(&[stamp(1), stamp(2), stamp(2), other, stale]);
}

#[test]
fn a_deleting_object_takes_the_general_path() {
    let pair = pair();
    let pods = pair.partial.builtin("", "pods");
    pair.patch(
        "pod-1",
        Subresource::Main,
        PatchType::Merge,
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
        "kubectl",
    );
    let delete = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for store in [&pair.partial, &pair.general] {
        let outcome = store.delete(&pods, Some("ns"), "pod-1", &delete).unwrap();
        assert!(matches!(outcome, DeleteOutcome::Pending(_)));
    }
    let before = FAST_PATCHES_TAKEN.with(Cell::get);
    pair.patch(
        "pod-1",
        Subresource::Main,
        PatchType::Merge,
        r#"{"metadata":{"annotations":{"a":"b"}}}"#,
        "kubectl",
    );
    assert_eq!(FAST_PATCHES_TAKEN.with(Cell::get), before);
}

#[test]
fn a_dependent_stamped_on_the_fast_path_is_still_collected_with_its_owner() {
    // The fast path does not tell the garbage collector (nothing it reads changes): the
    // dependency it saw when the child was created must still hold after the stamp.
    let store = seeded_store();
    let configmaps = store.builtin("", "configmaps");
    let opts = WriteOptions::default();
    let create = |name: &str, owners: Value| {
        store
            .create(
                &configmaps,
                Some("ns"),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "ownerReferences": owners}}),
                &opts,
            )
            .unwrap()
            .value()
    };
    let owner = create("owner", json!([]));
    let owners = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner["metadata"]["uid"]}]);
    create("child", owners.clone());
    let before = FAST_PATCHES_TAKEN.with(Cell::get);
    let stamped = store
        .patch(
            &configmaps,
            Some("ns"),
            "child",
            Subresource::Main,
            PatchType::StrategicMerge,
            br#"{"metadata":{"annotations":{"stamp":"1"}}}"#,
            &opts,
        )
        .unwrap()
        .value();
    assert_eq!(FAST_PATCHES_TAKEN.with(Cell::get), before + 1);
    assert_eq!(stamped["metadata"]["ownerReferences"], owners);

    store
        .delete(&configmaps, Some("ns"), "owner", &DeleteOptions::default())
        .unwrap();
    // The collector runs on the store's controller thread: poll, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store
        .get(&configmaps, Some("ns"), "child", Subresource::Main)
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the stamped dependent outlived its owner"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
