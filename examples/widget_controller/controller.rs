//! Wiring: the Widget CRD on every cluster, and the controller over the runtime —
//! `runtime.controller::<Widget>("widget").owns::<ConfigMap>().run(reconciler)`.

use actix::prelude::*;
use k8s_openapi::api::core::v1::ConfigMap;
use panoptes_actors::ids::ClusterId;
use panoptes_runtime::Runtime;
use panoptes_runtime::controller::ControllerHandle;

use crate::reconciler::{CleanupLog, WidgetReconciler};
use crate::widget::{CrdError, CrdOutcome, Widget, ensure_crd};

/// The controller's name (its metrics' `controller` label, its spans' field).
pub const NAME: &str = "widget";

/// Installs the Widget CRD on every cluster of `runtime` where it is missing, one cluster at
/// a time; a cluster that fails does not stop the others (its Widget informer retries with
/// backoff until the CRD exists).
pub async fn install_crds(runtime: &Runtime) -> Vec<(ClusterId, Result<CrdOutcome, CrdError>)> {
    let mut outcomes = Vec::new();
    for cluster in runtime.clusters() {
        let Some(client) = runtime.client(&cluster) else {
            continue;
        };
        let outcome = ensure_crd(&client).await;
        outcomes.push((cluster, outcome));
    }
    outcomes
}

/// Starts the controller on every cluster of `runtime` (and every cluster a reload adds).
pub fn start(runtime: &Runtime, cleanups: CleanupLog) -> ControllerHandle<Widget> {
    let reconciler = WidgetReconciler::new(runtime.informer::<ConfigMap>(), cleanups).start();
    runtime
        .controller::<Widget>(NAME)
        .owns::<ConfigMap>()
        .run(reconciler)
}
