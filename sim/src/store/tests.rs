//! Behaviour of one cluster store against what a real kube-apiserver v1.28 does
//! (`shared/fixtures/apiserver-v1.28/`).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc::error::TryRecvError;

use super::*;

fn store() -> ClusterStore {
    ClusterStore::new(StoreConfig {
        too_large_rv_wait: Duration::from_millis(50),
        ..Default::default()
    })
}

fn configmaps(store: &ClusterStore) -> Arc<ResourceType> {
    store.builtin("", "configmaps")
}

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

fn create_cm(store: &ClusterStore, ns: &str, name: &str, labels: Value) -> Arc<StoredObject> {
    store
        .create(
            &configmaps(store),
            Some(ns),
            cm(name, labels),
            &WriteOptions::default(),
        )
        .unwrap()
}

fn names(items: &[Arc<StoredObject>]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.value()["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Everything queued on a watch now (no waiting: deliveries happen inside the writes).
fn drain(watch: &mut Watch) -> (Vec<String>, bool) {
    let mut seen = Vec::new();
    loop {
        match watch.events.try_recv() {
            Ok(event) => seen.push(describe(&event)),
            Err(TryRecvError::Empty) => return (seen, false),
            Err(TryRecvError::Disconnected) => return (seen, true),
        }
    }
}

fn describe(event: &WatchEvent) -> String {
    let name = |o: &StoredObject| {
        o.value()["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    match event {
        WatchEvent::Added(o) => format!("ADDED {}", name(o)),
        WatchEvent::Modified(o) => format!("MODIFIED {}", name(o)),
        WatchEvent::Deleted(o) => format!("DELETED {}", name(o)),
        WatchEvent::Bookmark {
            initial_events_end, ..
        } => format!("BOOKMARK end={initial_events_end}"),
        WatchEvent::Error(status) => format!("ERROR {} {}", status.code, status.message),
    }
}

#[test]
fn a_new_cluster_has_its_namespaces_service_accounts_and_root_ca_config_maps() {
    let store = store();
    let page = store
        .list(
            &store.builtin("", "namespaces"),
            None,
            &ListOptions::default(),
        )
        .unwrap();
    assert_eq!(
        names(&page.items),
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert_eq!(
        page.items[0].value()["spec"]["finalizers"],
        json!(["kubernetes"])
    );
    assert_eq!(page.items[0].value()["status"]["phase"], "Active");
    let sa = store
        .get(
            &store.builtin("", "serviceaccounts"),
            Some("kube-system"),
            "default",
            Subresource::Main,
        )
        .unwrap();
    assert_eq!(sa.value()["metadata"]["namespace"], "kube-system");
    assert!(
        store
            .get(
                &configmaps(&store),
                Some("default"),
                "kube-root-ca.crt",
                Subresource::Main
            )
            .is_ok()
    );
    let short: Vec<_> = store
        .resources()
        .iter()
        .flat_map(|r| r.short_names.clone())
        .collect();
    for expected in [
        "po", "svc", "cm", "ns", "no", "sa", "ev", "deploy", "rs", "crd",
    ] {
        assert!(short.contains(&expected.to_string()), "{expected}");
    }
}

#[test]
fn every_write_bumps_one_global_resource_version_in_order() {
    let store = store();
    let before = store.resource_version();
    let a = create_cm(&store, "default", "a", json!({}));
    let b = create_cm(&store, "kube-system", "b", json!({}));
    assert_eq!(a.resource_version, before + 1);
    assert_eq!(b.resource_version, before + 2);
    assert_eq!(
        a.value()["metadata"]["resourceVersion"],
        (before + 1).to_string()
    );
    assert_eq!(store.resource_version(), before + 2);
    assert_eq!(
        serde_json::from_slice::<Value>(&b.json).unwrap(),
        b.value(),
        "cached bytes are the value"
    );
}

#[test]
fn create_get_and_update_conflict_like_a_real_server() {
    let store = store();
    let cms = configmaps(&store);
    let created = create_cm(&store, "default", "dup", json!({}));
    assert!(created.value()["metadata"]["uid"].as_str().unwrap().len() == 36);
    let created_value = created.value();
    let ts = created_value["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    let again = store
        .create(
            &cms,
            Some("default"),
            cm("dup", json!({})),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        (again.code, again.reason.as_str(), again.message.as_str()),
        (409, "AlreadyExists", "configmaps \"dup\" already exists")
    );
    let missing = store
        .get(&cms, Some("default"), "missing", Subresource::Main)
        .unwrap_err();
    assert_eq!(
        missing.to_json()["details"],
        json!({"name": "missing", "kind": "configmaps"})
    );

    let mut stale = created.value();
    stale["data"]["k"] = json!("v2");
    store
        .update(
            &cms,
            Some("default"),
            "dup",
            Subresource::Main,
            stale.clone(),
            &WriteOptions::default(),
        )
        .unwrap();
    let conflict = store
        .update(
            &cms,
            Some("default"),
            "dup",
            Subresource::Main,
            stale.clone(),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(conflict.code, 409);
    assert_eq!(
        conflict.message,
        "Operation cannot be fulfilled on configmaps \"dup\": the object has been modified; please apply your changes to the latest version and try again"
    );
    stale["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    stale["data"]["k"] = json!("v3");
    let unconditional = store
        .update(
            &cms,
            Some("default"),
            "dup",
            Subresource::Main,
            stale,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(unconditional.value()["data"]["k"], "v3");
    assert_eq!(
        unconditional.value()["metadata"]["uid"],
        created.value()["metadata"]["uid"]
    );
}

#[test]
fn create_checks_namespace_name_and_pod_containers() {
    let store = store();
    let cms = configmaps(&store);
    let missing_ns = store
        .create(
            &cms,
            Some("nope"),
            cm("x", json!({})),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(missing_ns.to_json(), serde_json::from_str::<Value>(r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"namespaces"},"code":404}"#).unwrap());
    let bad_name = store
        .create(
            &cms,
            Some("default"),
            cm("Bad_Name", json!({})),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(bad_name.code, 422);
    assert!(bad_name.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
    let pods = store.builtin("", "pods");
    let no_containers = store
        .create(
            &pods,
            Some("default"),
            json!({"metadata": {"name": "nocontainers"}, "spec": {}}),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        no_containers.message,
        "Pod \"nocontainers\" is invalid: spec.containers: Required value"
    );
    let generated = store
        .create(
            &cms,
            Some("default"),
            json!({"metadata": {"generateName": "gen-"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    let generated_value = generated.value();
    let name = generated_value["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
}

#[test]
fn a_created_pod_gets_the_real_defaults_and_managed_fields() {
    let store = store();
    let pods = store.builtin("", "pods");
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "d", "labels": {"app": "demo"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let pod = store
        .create(&pods, Some("default"), body, &WriteOptions::default())
        .unwrap()
        .value();
    assert_eq!(
        pod["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(
        pod["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
    assert!(
        pod.get("metadata").unwrap().get("generation").is_none(),
        "pods have no generation"
    );
    let entry = &pod["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "unknown");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(
        entry["fieldsV1"]["f:metadata"],
        json!({"f:labels": {".": {}, "f:app": {}}})
    );
    assert!(
        entry["fieldsV1"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:image"].is_object()
    );
}

#[test]
fn generation_bumps_on_spec_changes_only() {
    let store = store();
    let deployments = store.builtin("apps", "deployments");
    let body = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let created = store
        .create(
            &deployments,
            Some("default"),
            body,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(created.value()["metadata"]["generation"], 1);
    let label = store
        .patch(
            &deployments,
            Some("default"),
            "web",
            Subresource::Main,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"x":"y"}}}"#,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(label.value()["metadata"]["generation"], 1);
    let spec = store
        .patch(
            &deployments,
            Some("default"),
            "web",
            Subresource::Main,
            PatchType::Merge,
            br#"{"spec":{"replicas":3}}"#,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(spec.value()["metadata"]["generation"], 2);
    let scale = store
        .get(&deployments, Some("default"), "web", Subresource::Scale)
        .unwrap();
    assert_eq!(scale.value()["kind"], "Scale");
    assert_eq!(scale.value()["spec"]["replicas"], 3);
    assert_eq!(scale.value()["status"]["selector"], "app=web");
    let scaled = store
        .patch(
            &deployments,
            Some("default"),
            "web",
            Subresource::Scale,
            PatchType::Merge,
            br#"{"spec":{"replicas":5}}"#,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(scaled.value()["spec"]["replicas"], 5);
    let stored = store
        .get(&deployments, Some("default"), "web", Subresource::Main)
        .unwrap();
    assert_eq!(
        (
            stored.value()["spec"]["replicas"].clone(),
            stored.value()["metadata"]["generation"].clone()
        ),
        (json!(5), json!(3))
    );
}

#[test]
fn the_status_subresource_isolates_status_from_the_rest() {
    let store = store();
    let deployments = store.builtin("apps", "deployments");
    let body =
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
    let created = store
        .create(
            &deployments,
            Some("default"),
            body,
            &WriteOptions::default(),
        )
        .unwrap();
    assert!(
        created.value().get("status").is_none(),
        "create drops status"
    );
    let mut main = created.value();
    main["status"] = json!({"replicas": 4});
    main["spec"]["replicas"] = json!(2);
    let updated = store
        .update(
            &deployments,
            Some("default"),
            "web",
            Subresource::Main,
            main,
            &WriteOptions::default(),
        )
        .unwrap();
    assert!(
        updated.value().get("status").is_none(),
        "main endpoint ignores status"
    );
    let mut status = updated.value();
    status["status"] = json!({"replicas": 2});
    status["spec"]["replicas"] = json!(7);
    let opts = WriteOptions {
        field_manager: Some("ctrl".into()),
        ..Default::default()
    };
    let written = store
        .update(
            &deployments,
            Some("default"),
            "web",
            Subresource::Status,
            status,
            &opts,
        )
        .unwrap();
    assert_eq!(written.value()["status"]["replicas"], 2);
    assert_eq!(
        written.value()["spec"]["replicas"],
        2,
        "/status ignores spec"
    );
    let entry = written.value()["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "ctrl")
        .unwrap()
        .clone();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn an_unchanged_write_does_not_bump_the_resource_version() {
    let store = store();
    let cms = configmaps(&store);
    let created = create_cm(&store, "default", "same", json!({"a": "1"}));
    let patched = store
        .patch(
            &cms,
            Some("default"),
            "same",
            Subresource::Main,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"a":"1"}}}"#,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(patched.resource_version, created.resource_version);
    assert_eq!(store.resource_version(), created.resource_version);
}

#[test]
fn labels_added_by_another_manager_get_their_own_managed_fields_entry() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "default", "mf", json!({"app": "x"}));
    let opts = WriteOptions {
        field_manager: Some("kubectl-label".into()),
        ..Default::default()
    };
    let labelled = store
        .patch(
            &cms,
            Some("default"),
            "mf",
            Subresource::Main,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"tier":"web"}}}"#,
            &opts,
        )
        .unwrap();
    let labelled_value = labelled.value();
    let entries = labelled_value["metadata"]["managedFields"]
        .as_array()
        .unwrap();
    assert_eq!(entries.len(), 2);
    let label = entries
        .iter()
        .find(|e| e["manager"] == "kubectl-label")
        .unwrap();
    assert_eq!(
        label["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:tier": {}}}})
    );
}

#[test]
fn server_side_apply_needs_a_field_manager_and_creates_when_absent() {
    let store = store();
    let cms = configmaps(&store);
    let body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa-demo\n  namespace: default\ndata:\n  a: \"1\"\n";
    let refused = store
        .patch(
            &cms,
            Some("default"),
            "ssa-demo",
            Subresource::Main,
            PatchType::Apply,
            body,
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(refused.code, 422);
    assert_eq!(
        refused.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let opts = WriteOptions {
        field_manager: Some("kube-rs-demo".into()),
        force: true,
        ..Default::default()
    };
    let created = store
        .patch(
            &cms,
            Some("default"),
            "ssa-demo",
            Subresource::Main,
            PatchType::Apply,
            body,
            &opts,
        )
        .unwrap();
    assert_eq!(created.value()["data"], json!({"a": "1"}));
    let created_value = created.value();
    let entries = created_value["metadata"]["managedFields"]
        .as_array()
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["operation"], "Apply");
    assert_eq!(
        entries[0]["fieldsV1"],
        json!({"f:data": {"f:a": {}}}),
        "as managedfields/5-ssa-create.json"
    );
    let again = store
        .patch(
            &cms,
            Some("default"),
            "ssa-demo",
            Subresource::Main,
            PatchType::Apply,
            b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"2\"\n",
            &opts,
        )
        .unwrap();
    assert_eq!(again.value()["data"]["a"], "2");
}

#[test]
fn a_strategic_merge_patch_merges_pod_containers_by_name() {
    let store = store();
    let pods = store.builtin("", "pods");
    let body = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
    store
        .create(&pods, Some("default"), body, &WriteOptions::default())
        .unwrap();
    let patched = store
        .patch(
            &pods,
            Some("default"),
            "p",
            Subresource::Main,
            PatchType::StrategicMerge,
            br#"{"spec":{"containers":[{"name":"b","image":"b:2"}]}}"#,
            &WriteOptions::default(),
        )
        .unwrap();
    let patched_value = patched.value();
    let containers = patched_value["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "a:1");
    assert_eq!(containers[1]["image"], "b:2");
}

#[test]
fn finalizers_hold_a_delete_until_the_last_one_is_removed() {
    let store = store();
    let cms = configmaps(&store);
    let mut body = cm("held", json!({}));
    body["metadata"]["finalizers"] = json!(["example.com/hold"]);
    store
        .create(&cms, Some("default"), body, &WriteOptions::default())
        .unwrap();
    let mut watch = store
        .watch(
            &cms,
            Some("default"),
            &WatchOptions {
                resource_version: Some(store.resource_version().to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    let pending = match store
        .delete(&cms, Some("default"), "held", &DeleteOptions::default())
        .unwrap()
    {
        DeleteOutcome::Pending(object) => object,
        DeleteOutcome::Deleted(_) => panic!("finalizers must hold the delete"),
    };
    assert!(pending.value()["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(pending.value()["metadata"]["deletionGracePeriodSeconds"], 0);
    store
        .patch(
            &cms,
            Some("default"),
            "held",
            Subresource::Main,
            PatchType::Merge,
            br#"{"metadata":{"finalizers":null}}"#,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(
        store
            .get(&cms, Some("default"), "held", Subresource::Main)
            .unwrap_err()
            .code,
        404
    );
    assert_eq!(drain(&mut watch).0, ["MODIFIED held", "DELETED held"]);
}

#[test]
fn deleting_a_pod_emits_modified_then_deleted_and_preconditions_conflict() {
    let store = store();
    let pods = store.builtin("", "pods");
    let body = json!({"metadata": {"name": "wp"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let pod = store
        .create(&pods, Some("default"), body, &WriteOptions::default())
        .unwrap();
    let mut watch = store
        .watch(
            &pods,
            Some("default"),
            &WatchOptions {
                resource_version: Some(pod.resource_version.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    let wrong = DeleteOptions {
        preconditions_uid: Some("other".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .delete(&pods, Some("default"), "wp", &wrong)
            .unwrap_err()
            .code,
        409
    );
    let DeleteOutcome::Deleted(last) = store
        .delete(&pods, Some("default"), "wp", &DeleteOptions::default())
        .unwrap()
    else {
        panic!("pods go at once")
    };
    assert_eq!(last.value()["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(drain(&mut watch).0, ["MODIFIED wp", "DELETED wp"]);
    assert_eq!(
        store
            .delete(&pods, Some("default"), "wp", &DeleteOptions::default())
            .unwrap_err()
            .code,
        404
    );
}

#[test]
fn deleting_a_namespace_terminates_it_then_removes_its_contents() {
    let store = ClusterStore::new(StoreConfig {
        lifecycle: LifecycleConfig {
            namespace_cleanup_delay: Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    });
    let namespaces = store.builtin("", "namespaces");
    store
        .create(
            &namespaces,
            None,
            json!({"metadata": {"name": "gone"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    create_cm(&store, "gone", "x", json!({}));
    create_cm(&store, "default", "kept", json!({}));
    let DeleteOutcome::Pending(terminating) = store
        .delete(&namespaces, None, "gone", &DeleteOptions::default())
        .unwrap()
    else {
        panic!("a namespace is not removed by its DELETE")
    };
    assert_eq!(terminating.value()["status"]["phase"], "Terminating");
    assert_eq!(
        terminating.value()["spec"]["finalizers"],
        json!(["kubernetes"])
    );
    let refused = store
        .create(
            &configmaps(&store),
            Some("gone"),
            cm("late", json!({})),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store
        .get(&namespaces, None, "gone", Subresource::Main)
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the namespace controller never removed the namespace"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = store
        .list(&configmaps(&store), None, &ListOptions::default())
        .unwrap();
    assert!(
        all.items
            .iter()
            .all(|o| o.value()["metadata"]["namespace"] != "gone")
    );
    assert!(names(&all.items).contains(&"kept".to_string()));
}

#[test]
fn delete_collection_deletes_what_the_selector_matches() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "default", "a", json!({"x": "1"}));
    create_cm(&store, "default", "b", json!({"x": "2"}));
    let opts = ListOptions {
        label_selector: Some("x=1".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .delete_collection(&cms, Some("default"), &opts, &DeleteOptions::default())
            .unwrap()
            .len(),
        1
    );
    let left = store
        .list(
            &cms,
            Some("default"),
            &ListOptions {
                label_selector: Some("x".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(names(&left.items), ["b"]);
}

#[test]
fn lists_come_in_etcd_key_order_filtered_by_selectors() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "kube-system", "b", json!({"app": "x"}));
    create_cm(&store, "default", "c", json!({"app": "y"}));
    create_cm(&store, "default", "a", json!({"app": "x"}));
    let all = store
        .list(
            &cms,
            None,
            &ListOptions {
                label_selector: Some("app".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(names(&all.items), ["a", "c", "b"]);
    let in_default = store
        .list(
            &cms,
            Some("default"),
            &ListOptions {
                label_selector: Some("app in (x)".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(names(&in_default.items), ["a"]);
    let by_name = store
        .list(
            &cms,
            None,
            &ListOptions {
                field_selector: Some("metadata.name=b".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(names(&by_name.items), ["b"]);
    assert_eq!(
        store
            .list(
                &cms,
                None,
                &ListOptions {
                    label_selector: Some("=x".into()),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code,
        400
    );
}

#[test]
fn pagination_reads_one_consistent_snapshot_under_concurrent_writes() {
    let store = store();
    let cms = configmaps(&store);
    for i in 0..30 {
        create_cm(&store, "default", &format!("cm-{i:02}"), json!({}));
    }
    let opts = ListOptions {
        limit: Some(10),
        ..Default::default()
    };
    let first = store.list(&cms, Some("default"), &opts).unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(
        first.remaining_item_count,
        Some(21),
        "30 plus kube-root-ca.crt"
    );
    let token = first.continue_token.clone().unwrap();
    let decoded = continue_token::ContinueToken::decode(&token).unwrap();
    assert_eq!(
        (decoded.rv, decoded.last_key.as_str()),
        (first.resource_version as i64, "cm-09")
    );
    create_cm(&store, "default", "cm-15a", json!({}));
    store
        .delete(&cms, Some("default"), "cm-20", &DeleteOptions::default())
        .unwrap();
    let mut seen = names(&first.items);
    let mut next = Some(token);
    while let Some(token) = next {
        let page = store
            .list(
                &cms,
                Some("default"),
                &ListOptions {
                    limit: Some(10),
                    continue_token: Some(token),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            page.resource_version, first.resource_version,
            "every page has the first page's RV"
        );
        seen.extend(names(&page.items));
        next = page.continue_token;
    }
    assert_eq!(seen.len(), 31);
    assert!(seen.contains(&"cm-20".to_string()) && !seen.contains(&"cm-15a".to_string()));
}

#[test]
fn bad_and_expired_continue_tokens_answer_400_and_410() {
    let store = store();
    let cms = configmaps(&store);
    for i in 0..5 {
        create_cm(&store, "default", &format!("cm-{i}"), json!({}));
    }
    let bad = store
        .list(
            &cms,
            Some("default"),
            &ListOptions {
                limit: Some(2),
                continue_token: Some("bm9wZQ".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(bad.code, 400);
    let first = store
        .list(
            &cms,
            Some("default"),
            &ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    create_cm(&store, "default", "later", json!({}));
    store.compact();
    let expired = store
        .list(
            &cms,
            Some("default"),
            &ListOptions {
                limit: Some(2),
                continue_token: first.continue_token.clone(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
    let fresh = expired.metadata.unwrap()["continue"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        continue_token::ContinueToken::decode(&fresh).unwrap().rv,
        -1
    );
    let exact = ListOptions {
        resource_version: Some(first.resource_version.to_string()),
        resource_version_match: Some(ResourceVersionMatch::Exact),
        ..Default::default()
    };
    assert_eq!(
        store
            .list(&cms, Some("default"), &exact)
            .unwrap_err()
            .message,
        "The resourceVersion for the provided list is too old."
    );
}

#[test]
fn list_resource_version_semantics_follow_the_real_server() {
    let store = store();
    let cms = configmaps(&store);
    for i in 0..3 {
        create_cm(&store, "default", &format!("cm-{i}"), json!({}));
    }
    let any = store
        .list(
            &cms,
            Some("default"),
            &ListOptions {
                resource_version: Some("0".into()),
                limit: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (any.items.len(), any.continue_token.is_none()),
        (4, true),
        "RV=0 ignores limit"
    );
    let future = (store.resource_version() + 100).to_string();
    let timeout = store
        .list(
            &cms,
            Some("default"),
            &ListOptions {
                resource_version: Some(future),
                resource_version_match: Some(ResourceVersionMatch::NotOlderThan),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!((timeout.code, timeout.reason.as_str()), (504, "Timeout"));
    assert!(
        timeout
            .message
            .starts_with("Timeout: Too large resource version: ")
    );
    let rvm_only = store
        .list(
            &cms,
            None,
            &ListOptions {
                resource_version_match: Some(ResourceVersionMatch::NotOlderThan),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(rvm_only.code, 422);
    let sie = ClusterStore::reject_send_initial_events_on_list(&ListOptions {
        resource_version_match: Some(ResourceVersionMatch::NotOlderThan),
        ..Default::default()
    });
    assert_eq!(
        sie.message,
        "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list]"
    );
}

#[test]
fn a_watch_from_a_resource_version_replays_what_came_after_it() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "default", "before", json!({}));
    let rv = store.resource_version();
    create_cm(&store, "default", "after", json!({}));
    create_cm(&store, "kube-system", "elsewhere", json!({}));
    let mut watch = store
        .watch(
            &cms,
            Some("default"),
            &WatchOptions {
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    create_cm(&store, "default", "live", json!({}));
    assert_eq!(drain(&mut watch).0, ["ADDED after", "ADDED live"]);
    assert_eq!(store.open_watches("configmaps"), 1);
    drop(watch);
    assert_eq!(store.open_watches("configmaps"), 0);
}

#[test]
fn a_watch_from_zero_or_no_version_starts_with_every_current_object() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "default", "a", json!({}));
    for rv in [None, Some("0".to_string())] {
        let mut watch = store
            .watch(
                &cms,
                Some("default"),
                &WatchOptions {
                    resource_version: rv,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(drain(&mut watch).0, ["ADDED a", "ADDED kube-root-ca.crt"]);
    }
}

#[test]
fn a_watch_from_before_a_compaction_gets_one_410_error_and_ends() {
    let store = store();
    let cms = configmaps(&store);
    let old = store.resource_version();
    create_cm(&store, "default", "a", json!({}));
    store.compact();
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(old.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    let (events, closed) = drain(&mut watch);
    assert_eq!(
        events,
        [format!(
            "ERROR 410 too old resource version: {old} ({})",
            store.resource_version()
        )]
    );
    assert!(closed);
}

#[test]
fn a_watch_history_window_evicts_old_events() {
    let store = ClusterStore::new(StoreConfig {
        watch_cache_min: 2,
        watch_cache_max: 2,
        ..Default::default()
    });
    let cms = configmaps(&store);
    let start = store.resource_version();
    for i in 0..4 {
        create_cm(&store, "default", &format!("c{i}"), json!({}));
    }
    let mut old = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(start.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(drain(&mut old).0[0].starts_with("ERROR 410"));
    let mut recent = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some((store.resource_version() - 2).to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(drain(&mut recent).0, ["ADDED c2", "ADDED c3"]);
}

#[test]
fn the_watch_cache_window_grows_while_it_holds_less_than_the_fresh_duration() {
    for (fresh, served) in [(Duration::from_secs(3600), true), (Duration::ZERO, false)] {
        let store = ClusterStore::new(StoreConfig {
            watch_cache_min: 2,
            watch_cache_max: 8,
            watch_cache_fresh: fresh,
            ..Default::default()
        });
        let cms = configmaps(&store);
        let start = store.resource_version();
        for i in 0..6 {
            create_cm(&store, "default", &format!("c{i}"), json!({}));
        }
        let mut watch = store
            .watch(
                &cms,
                None,
                &WatchOptions {
                    resource_version: Some(start.to_string()),
                    ..Default::default()
                },
            )
            .unwrap();
        let events = drain(&mut watch).0;
        if served {
            assert_eq!(events.len(), 6, "all six writes are younger than {fresh:?}");
        } else {
            assert!(events[0].starts_with("ERROR 410"), "{events:?}");
        }
    }
}

#[test]
fn a_list_at_an_old_exact_version_is_rebuilt_from_history_until_compacted() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "default", "a", json!({}));
    let at = store.resource_version();
    store
        .delete(&cms, Some("default"), "a", &DeleteOptions::default())
        .unwrap();
    create_cm(&store, "default", "b", json!({}));
    let exact = ListOptions {
        resource_version: Some(at.to_string()),
        resource_version_match: Some(ResourceVersionMatch::Exact),
        ..Default::default()
    };
    let page = store.list(&cms, Some("default"), &exact).unwrap();
    assert_eq!(
        (names(&page.items), page.resource_version),
        (vec!["a".to_string(), "kube-root-ca.crt".to_string()], at)
    );
    store.shared.state.lock().compact_etcd(at + 1);
    let expired = store.list(&cms, Some("default"), &exact).unwrap_err();
    assert_eq!(
        (expired.code, expired.message.as_str()),
        (410, "The resourceVersion for the provided list is too old.")
    );
    let zero = ListOptions {
        resource_version: Some("0".into()),
        resource_version_match: Some(ResourceVersionMatch::Exact),
        ..Default::default()
    };
    assert_eq!(store.list(&cms, None, &zero).unwrap_err().code, 422);
}

#[test]
fn objects_entering_and_leaving_a_selector_arrive_as_added_and_deleted() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "default", "x", json!({"app": "no"}));
    let opts = WatchOptions {
        label_selector: Some("app=yes".into()),
        resource_version: Some(store.resource_version().to_string()),
        ..Default::default()
    };
    let mut watch = store.watch(&cms, Some("default"), &opts).unwrap();
    let patch = |value: &str| {
        let body = json!({"metadata": {"labels": {"app": value}}}).to_string();
        store
            .patch(
                &cms,
                Some("default"),
                "x",
                Subresource::Main,
                PatchType::Merge,
                body.as_bytes(),
                &WriteOptions::default(),
            )
            .unwrap();
    };
    patch("yes");
    store
        .patch(
            &cms,
            Some("default"),
            "x",
            Subresource::Main,
            PatchType::Merge,
            br#"{"data":{"k":"2"}}"#,
            &WriteOptions::default(),
        )
        .unwrap();
    patch("no");
    patch("still-no");
    assert_eq!(drain(&mut watch).0, ["ADDED x", "MODIFIED x", "DELETED x"]);
}

#[test]
fn send_initial_events_ends_with_the_annotated_bookmark() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "default", "a", json!({}));
    let refused = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                send_initial_events: Some(true),
                allow_bookmarks: true,
                ..Default::default()
            },
        )
        .err()
        .unwrap();
    assert_eq!(
        refused.message,
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    );
    let opts = WatchOptions {
        send_initial_events: Some(true),
        resource_version_match: Some(ResourceVersionMatch::NotOlderThan),
        allow_bookmarks: true,
        ..Default::default()
    };
    // v1.28: the end bookmark waits for a bookmark at the revision asked for ("" = the
    // current one); the resource's last write is older, so it comes after the next write.
    let secrets = store.builtin("", "secrets");
    let secret = json!({"metadata": {"name": "newer"}});
    store
        .create(&secrets, Some("default"), secret, &WriteOptions::default())
        .unwrap();
    let mut watch = store.watch(&cms, Some("default"), &opts).unwrap();
    store.shared.state.lock().dispatch_bookmarks(Instant::now());
    assert_eq!(drain(&mut watch).0, ["ADDED a", "ADDED kube-root-ca.crt"]);
    let unrelated = create_cm(&store, "kube-system", "unrelated", json!({}));
    store.shared.state.lock().dispatch_bookmarks(Instant::now());
    let end = watch
        .events
        .try_recv()
        .expect("the end bookmark after a write");
    assert!(matches!(
        end,
        WatchEvent::Bookmark { resource_version, initial_events_end: true }
            if resource_version == unrelated.resource_version
    ));
    // v1.30+: at once.
    let prompt = ClusterStore::new(StoreConfig {
        prompt_initial_events_end: true,
        ..Default::default()
    });
    let mut watch = prompt
        .watch(&configmaps(&prompt), Some("default"), &opts)
        .unwrap();
    assert_eq!(
        drain(&mut watch).0,
        ["ADDED kube-root-ca.crt", "BOOKMARK end=true"]
    );
    let mut no_initial = store
        .watch(
            &cms,
            Some("default"),
            &WatchOptions {
                send_initial_events: Some(false),
                resource_version_match: Some(ResourceVersionMatch::NotOlderThan),
                resource_version: Some("0".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(drain(&mut no_initial).0.is_empty());
}

#[test]
fn bookmarks_go_only_to_watches_that_allow_them() {
    let store = store();
    let cms = configmaps(&store);
    let mut with = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(store.resource_version().to_string()),
                allow_bookmarks: true,
                ..Default::default()
            },
        )
        .unwrap();
    let mut without = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(store.resource_version().to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    store.send_bookmarks_now();
    assert_eq!(drain(&mut with).0, ["BOOKMARK end=false"]);
    assert!(drain(&mut without).0.is_empty());
}

#[test]
fn periodic_bookmarks_arrive_through_the_watch_channel() {
    let store = ClusterStore::new(StoreConfig {
        bookmark_interval: Duration::from_millis(20),
        ..Default::default()
    });
    let cms = configmaps(&store);
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(store.resource_version().to_string()),
                allow_bookmarks: true,
                ..Default::default()
            },
        )
        .unwrap();
    let created = create_cm(&store, "default", "change", json!({}));
    assert_eq!(drain(&mut watch).0, ["ADDED change"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let event = loop {
        match watch.events.try_recv() {
            Ok(event) => break event,
            Err(TryRecvError::Empty) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(other) => panic!("no bookmark within 5 s of a 20 ms interval: {other:?}"),
        }
    };
    assert!(matches!(
        event,
        WatchEvent::Bookmark { resource_version, initial_events_end: false }
            if resource_version == created.resource_version
    ));
}

#[test]
fn a_quiet_watch_gets_no_periodic_bookmark() {
    let store = store();
    let cms = configmaps(&store);
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(store.resource_version().to_string()),
                allow_bookmarks: true,
                ..Default::default()
            },
        )
        .unwrap();
    let later = Instant::now() + Duration::from_secs(120);
    store.shared.state.lock().dispatch_bookmarks(later);
    assert!(drain(&mut watch).0.is_empty());
}

#[test]
fn drop_watches_closes_every_watch() {
    let store = store();
    let cms = configmaps(&store);
    let mut watch = store.watch(&cms, None, &WatchOptions::default()).unwrap();
    store.drop_watches();
    let (_, closed) = drain(&mut watch);
    assert!(closed);
    assert_eq!(store.open_watches("configmaps"), 0);
}

#[test]
fn a_watcher_that_falls_a_whole_buffer_behind_is_closed() {
    let store = ClusterStore::new(StoreConfig {
        watch_buffer: 3,
        ..Default::default()
    });
    let cms = configmaps(&store);
    let mut slow = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(store.resource_version().to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    for i in 0..5 {
        create_cm(&store, "default", &format!("c{i}"), json!({}));
    }
    let (events, closed) = drain(&mut slow);
    assert_eq!(events.len(), 3);
    assert!(closed);
}

#[test]
fn a_watch_at_a_future_resource_version_stays_silent_until_the_store_gets_there() {
    let store = store();
    let cms = configmaps(&store);
    let future = store.resource_version() + 2;
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(future.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    create_cm(&store, "default", "skipped-1", json!({}));
    create_cm(&store, "default", "skipped-2", json!({}));
    create_cm(&store, "default", "seen", json!({}));
    let (events, closed) = drain(&mut watch);
    assert_eq!(events, ["ADDED seen"]);
    assert!(!closed);
}

#[test]
fn a_crd_serves_its_versions_until_it_is_deleted() {
    let store = store();
    let crds = store.builtin("apiextensions.k8s.io", "customresourcedefinitions");
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
        "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                     {"name": "v2", "served": false, "storage": false}]}});
    let created = store
        .create(&crds, None, crd, &WriteOptions::default())
        .unwrap();
    let conditions: Vec<_> = created.value()["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].clone(), c["status"].clone()))
        .collect();
    assert_eq!(
        conditions,
        [
            (json!("NamesAccepted"), json!("True")),
            (json!("Established"), json!("True"))
        ]
    );
    assert_eq!(created.value()["status"]["acceptedNames"]["kind"], "Gadget");
    let gadgets = store
        .resolve("example.com", "v1", "gadgets")
        .expect("served");
    assert!(store.resolve("example.com", "v2", "gadgets").is_none());
    assert!(gadgets.namespaced && gadgets.status_subresource && gadgets.scale_subresource);
    assert_eq!(gadgets.short_names, ["gd"]);
    let gadget = store.create(&gadgets, Some("default"), json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 1}}), &WriteOptions::default()).unwrap();
    assert_eq!(gadget.value()["metadata"]["generation"], 1);
    store
        .delete(
            &crds,
            None,
            "gadgets.example.com",
            &DeleteOptions::default(),
        )
        .unwrap();
    assert!(store.resolve("example.com", "v1", "gadgets").is_none());
}

#[test]
#[ignore = "timing printout; run with --ignored --nocapture"]
fn listing_100k_pods_in_pages_of_500() {
    let store = store();
    let started = std::time::Instant::now();
    crate::pods::seed(&store, "bench", 100_000);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .map(str::to_string)
        });
    let per_pod_kb = rss
        .as_deref()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 100_000.0);
    println!(
        "seeded 100k pods in {:?} ({rss:?}, {per_pod_kb:.1?} KB resident per pod)",
        started.elapsed()
    );
    let pods = store.builtin("", "pods");
    let started = std::time::Instant::now();
    let mut token = None;
    let mut count = 0;
    let mut bytes = 0;
    loop {
        let page = store
            .list(
                &pods,
                Some("bench"),
                &ListOptions {
                    limit: Some(500),
                    continue_token: token,
                    ..Default::default()
                },
            )
            .unwrap();
        count += page.items.len();
        bytes += page.items.iter().map(|o| o.json.len()).sum::<usize>();
        token = page.continue_token;
        if token.is_none() {
            break;
        }
    }
    println!(
        "listed {count} pods ({bytes} bytes) in pages of 500 in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_continue_without_its_snapshot_is_served_while_nothing_changed() {
    let store = store();
    let cms = configmaps(&store);
    create_cm(&store, "default", "a", json!({}));
    create_cm(&store, "kube-system", "z", json!({}));
    let opts = ListOptions {
        limit: Some(1),
        ..Default::default()
    };
    let first = store.list(&cms, Some("default"), &opts).unwrap();
    store.compact();
    let rest = ListOptions {
        limit: Some(10),
        continue_token: first.continue_token,
        ..Default::default()
    };
    let second = store.list(&cms, Some("default"), &rest).unwrap();
    assert_eq!(names(&second.items), ["kube-root-ca.crt"]);
    assert_eq!(second.resource_version, first.resource_version);
}

#[test]
#[ignore = "timing printout; run with --ignored --nocapture"]
fn sustained_pod_writes_with_four_watchers() {
    let store = store();
    crate::pods::seed(&store, "bench", 1_000);
    let pods = store.builtin("", "pods");
    let mut drains = Vec::new();
    for _ in 0..4 {
        let mut watch = store
            .watch(
                &pods,
                Some("bench"),
                &WatchOptions {
                    resource_version: Some(store.resource_version().to_string()),
                    ..Default::default()
                },
            )
            .unwrap();
        drains.push(std::thread::spawn(move || {
            let mut seen = 0u64;
            while watch.events.blocking_recv().is_some() {
                seen += 1;
            }
            seen
        }));
    }
    let writes = 20_000u64;
    let started = std::time::Instant::now();
    for i in 0..writes {
        let name = crate::pods::pod_name(i % 1_000);
        let body = json!({"metadata": {"annotations": {"bench": i.to_string()}}}).to_string();
        store
            .patch(
                &pods,
                Some("bench"),
                &name,
                Subresource::Main,
                PatchType::Merge,
                body.as_bytes(),
                &WriteOptions::default(),
            )
            .unwrap();
    }
    let elapsed = started.elapsed();
    store.drop_watches();
    let seen: Vec<u64> = drains.into_iter().map(|d| d.join().unwrap()).collect();
    println!(
        "{writes} pod patches in {elapsed:?} = {:.0}/s; watchers saw {seen:?}",
        writes as f64 / elapsed.as_secs_f64()
    );
}

#[test]
fn the_housekeeping_thread_lets_go_when_the_last_clone_is_dropped() {
    let store = store();
    let clone = store.clone();
    let weak = Arc::downgrade(&store.shared);
    drop(store);
    assert!(weak.upgrade().is_some(), "a clone still holds the state");
    drop(clone);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while weak.strong_count() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(weak.strong_count(), 0, "the state outlived every clone");
}
