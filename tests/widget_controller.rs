//! The widget controller example (`examples/widget_controller/`) driven as a user drives it,
//! against simulated clusters: Widgets written with a `kube::Client`, ConfigMaps and Widgets
//! deleted with `kubectl`, clusters added and removed with `Runtime::reload`.

#[path = "../examples/widget_controller/controller.rs"]
mod controller;
mod multicluster_support;
#[path = "../examples/widget_controller/reconciler.rs"]
mod reconciler;
#[path = "../examples/widget_controller/widget.rs"]
mod widget;

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use multicluster_support::{Clusters, eventually_async};
use panoptes_actors::ShutdownMode;
use panoptes_actors::ids::ClusterId;
use panoptes_runtime::Runtime;
use reconciler::{CleanupLog, WIDGET_LABEL};
use widget::{CrdOutcome, FINALIZER, Widget};

fn widget(name: &str, replicas: u32) -> Widget {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "panoptes.example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas}
    }))
    .unwrap()
}

/// A client for `context` of the test's kubeconfig, as a user of the cluster has.
async fn client_for(kubeconfig: &Path, context: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let options = kube::config::KubeConfigOptions {
        context: Some(context.into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The names of the ConfigMaps of widget `name`, read from the server.
async fn config_maps(client: &kube::Client, name: &str) -> BTreeSet<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels(&format!("{WIDGET_LABEL}={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|cm| cm.metadata.deletion_timestamp.is_none())
        .filter_map(|cm| cm.metadata.name)
        .collect()
}

fn names(widget: &str, n: u32) -> BTreeSet<String> {
    (0..n).map(|i| format!("{widget}-{i}")).collect()
}

/// Widget `name` has exactly `n` ConfigMaps, `status.readyReplicas == n` and our finalizer.
async fn converged(client: &kube::Client, name: &str, n: u32) -> bool {
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let Some(widget) = widgets.get_opt(name).await.unwrap() else {
        return false;
    };
    let ready = widget.status.as_ref().map(|s| s.ready_replicas);
    let finalized = widget
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER);
    ready == Some(n) && finalized && config_maps(client, name).await == names(name, n)
}

/// Runs kubectl against `context`; panics with its output when it fails.
async fn kubectl(clusters: &Clusters, context: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", &clusters.kubeconfig)
        .env("HOME", clusters.dir.path())
        .arg("--context")
        .arg(context)
        .args(args)
        .output()
        .await
        .expect("kubectl is installed and on PATH");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[actix_rt::test]
async fn converges_on_three_clusters_recreates_deleted_config_maps_follows_scaling_and_finalizes() {
    let clusters = Clusters::start(3, 0);
    let config = clusters.config(&[("c1", "sim-1"), ("c2", "sim-2"), ("c3", "sim-3")]);
    let runtime = Runtime::start(&config).await.unwrap();
    let installed = controller::install_crds(&runtime).await;
    assert_eq!(installed.len(), 3);
    for (cluster, outcome) in &installed {
        assert_eq!(
            outcome.as_ref().ok(),
            Some(&CrdOutcome::Created),
            "{cluster}: {outcome:?}"
        );
    }
    // Installing again finds it everywhere.
    for (_, outcome) in controller::install_crds(&runtime).await {
        assert_eq!(outcome.unwrap(), CrdOutcome::Present);
    }
    let cleanups = CleanupLog::default();
    let handle = controller::start(&runtime, cleanups.clone());

    let mut clients = Vec::new();
    for context in ["sim-1", "sim-2", "sim-3"] {
        let client = client_for(&clusters.kubeconfig, context).await;
        let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
        widgets
            .create(&PostParams::default(), &widget("w", 3))
            .await
            .unwrap();
        clients.push(client);
    }
    for client in &clients {
        eventually_async("w to converge to 3 ConfigMaps", || {
            converged(client, "w", 3)
        })
        .await;
    }

    // An owned ConfigMap deleted with kubectl comes back (a new object, same name).
    let cms: Api<ConfigMap> = Api::namespaced(clients[1].clone(), "default");
    let old_uid = cms.get("w-1").await.unwrap().metadata.uid;
    kubectl(
        &clusters,
        "sim-2",
        &["delete", "configmap", "w-1", "-n", "default"],
    )
    .await;
    eventually_async("w-1 to be recreated on sim-2", || async {
        cms.get_opt("w-1")
            .await
            .unwrap()
            .is_some_and(|cm| cm.metadata.uid != old_uid)
    })
    .await;

    // Scaling adds and removes ConfigMaps.
    for (client, replicas) in [(&clients[0], 5), (&clients[2], 1)] {
        let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        widgets
            .patch("w", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    eventually_async("w to scale up to 5 on sim-1", || {
        converged(&clients[0], "w", 5)
    })
    .await;
    eventually_async("w to scale down to 1 on sim-3", || {
        converged(&clients[2], "w", 1)
    })
    .await;

    // kubectl delete: the first cleanup fails (the finalizer holds the object), the retry
    // succeeds, the finalizer goes, the Widget and (garbage collector) its ConfigMaps go.
    cleanups.fail_next(1);
    kubectl(
        &clusters,
        "sim-2",
        &["delete", "widget", "w", "-n", "default", "--timeout=30s"],
    )
    .await;
    let widgets: Api<Widget> = Api::namespaced(clients[1].clone(), "default");
    assert!(widgets.get_opt("w").await.unwrap().is_none());
    assert_eq!(
        cleanups.entries(),
        [(ClusterId::new("c2"), "default/w".to_string())]
    );
    eventually_async("w's ConfigMaps to be collected on sim-2", || async {
        config_maps(&clients[1], "w").await.is_empty()
    })
    .await;
    // The other clusters' Widgets are untouched.
    assert!(converged(&clients[0], "w", 5).await);
    assert!(converged(&clients[2], "w", 1).await);

    handle.shutdown(ShutdownMode::Abandon).await;
    runtime.shutdown();
}

#[actix_rt::test]
async fn a_cluster_added_by_reload_gets_its_widgets_reconciled_and_a_removed_one_stops() {
    let clusters = Clusters::start(3, 0);
    let runtime = Runtime::start(&clusters.config(&[("c1", "sim-1"), ("c2", "sim-2")]))
        .await
        .unwrap();
    controller::install_crds(&runtime).await;
    let handle = controller::start(&runtime, CleanupLog::default());
    let c1 = client_for(&clusters.kubeconfig, "sim-1").await;
    let c2 = client_for(&clusters.kubeconfig, "sim-2").await;
    let c3 = client_for(&clusters.kubeconfig, "sim-3").await;

    // sim-3 already has a Widget (and its CRD) before the controller knows the cluster.
    assert_eq!(widget::ensure_crd(&c3).await.unwrap(), CrdOutcome::Created);
    Api::<Widget>::namespaced(c3.clone(), "default")
        .create(&PostParams::default(), &widget("early", 2))
        .await
        .unwrap();

    let report = runtime
        .reload(&clusters.config(&[("c1", "sim-1"), ("c3", "sim-3")]))
        .await
        .unwrap();
    assert_eq!(report.added, [ClusterId::new("c3")]);
    assert_eq!(report.removed, [ClusterId::new("c2")]);
    eventually_async("the joined cluster's Widget to converge", || {
        converged(&c3, "early", 2)
    })
    .await;

    // c2 left: a Widget created there now is never reconciled, while one created at the
    // same time on a live cluster is.
    Api::<Widget>::namespaced(c2.clone(), "default")
        .create(&PostParams::default(), &widget("late", 2))
        .await
        .unwrap();
    Api::<Widget>::namespaced(c1.clone(), "default")
        .create(&PostParams::default(), &widget("late", 2))
        .await
        .unwrap();
    eventually_async("the live cluster's Widget to converge", || {
        converged(&c1, "late", 2)
    })
    .await;
    // Give a stray reconcile of c2 the time c1's took twice over before looking.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stray = Api::<Widget>::namespaced(c2.clone(), "default")
        .get("late")
        .await
        .unwrap();
    assert!(stray.metadata.finalizers.is_none(), "{stray:?}");
    assert!(stray.status.is_none(), "{stray:?}");
    assert!(config_maps(&c2, "late").await.is_empty());

    handle.shutdown(ShutdownMode::Abandon).await;
    runtime.shutdown();
}
