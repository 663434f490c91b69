//! The finalizer helper against a simulated API server, as a reconciler uses it: the first
//! reconcile adds the finalizer, later ones apply, `kubectl delete`-like deletion runs the
//! cleanup, a failed cleanup keeps the object, a successful one lets it go, and another
//! controller's finalizer is left in place.

mod sim_support;

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use panoptes_actors::controller::Action;
use panoptes_actors::{FinalizerError, FinalizerEvent, finalizer};
use panoptes_sim::{Sim, SimOptions};
use sim_support::client;

const NAME: &str = "panoptes.example.com/cleanup";

#[derive(Debug, thiserror::Error)]
#[error("the external thing is still busy")]
struct Busy;

fn config_map(name: &str, finalizers: &[&str]) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "finalizers": finalizers},
        "data": {"k": "v"}
    }))
    .unwrap()
}

/// What the reconciler was asked, in order.
#[derive(Debug, PartialEq)]
enum Called {
    Apply,
    Cleanup,
}

async fn reconcile(
    api: &Api<ConfigMap>,
    name: &str,
    cleanup_fails: bool,
    calls: &mut Vec<Called>,
) -> Result<Action, FinalizerError<Busy>> {
    let object = Arc::new(api.get(name).await.expect("object exists"));
    finalizer(api, NAME, object, |event| {
        let outcome = match event {
            FinalizerEvent::Apply(_) => {
                calls.push(Called::Apply);
                Ok(Action::Done)
            }
            FinalizerEvent::Cleanup(_) if cleanup_fails => {
                calls.push(Called::Cleanup);
                Err(Busy)
            }
            FinalizerEvent::Cleanup(_) => {
                calls.push(Called::Cleanup);
                Ok(Action::Done)
            }
        };
        async move { outcome }
    })
    .await
}

fn finalizers(object: &ConfigMap) -> Vec<String> {
    object.metadata.finalizers.clone().unwrap_or_default()
}

#[tokio::test]
async fn add_apply_failed_cleanup_then_cleanup_and_the_object_is_gone() {
    let sim = Sim::start(SimOptions::default()).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(sim.cluster(0)).await, "default");
    api.create(&PostParams::default(), &config_map("w", &[]))
        .await
        .unwrap();
    let mut calls = Vec::new();

    // First reconcile: only the finalizer is added.
    let action = reconcile(&api, "w", false, &mut calls).await.unwrap();
    assert_eq!(action, Action::Done);
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(finalizers(&api.get("w").await.unwrap()), [NAME]);

    // Then the reconciler applies, and the finalizer stays.
    reconcile(&api, "w", false, &mut calls).await.unwrap();
    assert_eq!(calls, [Called::Apply]);

    // Deleted: the object stays, terminating, while the cleanup fails.
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let terminating = api.get("w").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let error = reconcile(&api, "w", true, &mut calls).await.unwrap_err();
    assert!(
        matches!(&error, FinalizerError::Cleanup { object, .. } if object == "default/w"),
        "{error:?}"
    );
    assert!(error.to_string().contains("still busy"), "{error}");
    assert_eq!(finalizers(&api.get("w").await.unwrap()), [NAME]);

    // A cleanup that succeeds removes the finalizer; the API server deletes the object.
    reconcile(&api, "w", false, &mut calls).await.unwrap();
    assert_eq!(calls, [Called::Apply, Called::Cleanup, Called::Cleanup]);
    assert!(api.get_opt("w").await.unwrap().is_none());
}

#[tokio::test]
async fn another_controllers_finalizer_is_kept_and_nothing_runs_twice() {
    let sim = Sim::start(SimOptions::default()).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(sim.cluster(0)).await, "default");
    api.create(&PostParams::default(), &config_map("w", &["other.io/keep"]))
        .await
        .unwrap();
    let mut calls = Vec::new();
    reconcile(&api, "w", false, &mut calls).await.unwrap();
    assert_eq!(
        finalizers(&api.get("w").await.unwrap()),
        ["other.io/keep", NAME]
    );

    api.delete("w", &DeleteParams::default()).await.unwrap();
    reconcile(&api, "w", false, &mut calls).await.unwrap();
    assert_eq!(calls, [Called::Cleanup]);
    let left = api.get("w").await.unwrap();
    assert_eq!(finalizers(&left), ["other.io/keep"]);

    // Ours is gone: another reconcile of the terminating object does nothing.
    reconcile(&api, "w", false, &mut calls).await.unwrap();
    assert_eq!(calls, [Called::Cleanup]);
}

#[tokio::test]
async fn adding_on_a_stale_version_fails_instead_of_overwriting() {
    let sim = Sim::start(SimOptions::default()).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(sim.cluster(0)).await, "default");
    api.create(&PostParams::default(), &config_map("w", &[]))
        .await
        .unwrap();
    let stale = Arc::new(api.get("w").await.unwrap());
    let mut newer = (*stale).clone();
    newer.data = Some([("k".to_string(), "changed".to_string())].into());
    api.replace("w", &PostParams::default(), &newer)
        .await
        .unwrap();

    let error = finalizer(&api, NAME, stale, |_| async { Ok::<_, Busy>(Action::Done) })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FinalizerError::AddFinalizer { object, .. } if object == "default/w"),
        "{error:?}"
    );
    assert!(finalizers(&api.get("w").await.unwrap()).is_empty());

    let bad = finalizer(&api, "", Arc::new(newer), |_| async {
        Ok::<_, Busy>(Action::Done)
    })
    .await
    .unwrap_err();
    assert!(bad.to_string().contains("is invalid"), "{bad}");
}
