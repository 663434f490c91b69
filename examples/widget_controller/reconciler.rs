//! The Widget reconciler: an actix actor handling `Reconcile<Widget>` for every cluster.
//!
//! For a Widget `w` with `spec.replicas = n` on a cluster it makes that cluster hold exactly
//! the ConfigMaps `w-0` … `w-(n-1)` in `w`'s namespace, each labelled
//! [`WIDGET_LABEL`]`=w` and owned by `w` (an ownerReference with `controller: true`, so
//! the controller's `owns::<ConfigMap>()` maps their changes back to `w`, and the garbage
//! collector deletes them after `w`), and reports how many exist in `status.readyReplicas`.
//!
//! - Reads come from the shared caches (the Widget in the message, the ConfigMaps from the
//!   runtime's ConfigMap informer); writes go through the cluster's client in the message.
//!   A cache a little behind the server is harmless: creating a ConfigMap that exists
//!   answers 409 and deleting one that is gone 404, and both count as done.
//! - Writes happen only on a difference, so the events of its own writes end in a reconcile
//!   that writes nothing: no loop.
//! - Behind the finalizer [`FINALIZER`]: the first reconcile adds it; deleting the Widget
//!   runs [`WidgetReconciler`]'s cleanup (here: recorded in a [`CleanupLog`], standing in
//!   for state outside the cluster); the finalizer goes only once the cleanup succeeded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use actix::prelude::*;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::{Action, FinalizerEvent, Reconcile, ReconcileError, finalizer};
use panoptes_runtime::MultiInformer;
use parking_lot::Mutex;
use serde_json::json;
use tracing::Instrument;

use crate::widget::{FINALIZER, Widget, WidgetStatus};

/// The label naming the Widget a ConfigMap belongs to.
pub const WIDGET_LABEL: &str = "panoptes.example.com/widget";

/// The cleanups that ran, as `(cluster, namespace/name)`, in order. Cheap to clone.
#[derive(Clone, Default)]
pub struct CleanupLog {
    entries: Arc<Mutex<Vec<(ClusterId, String)>>>,
    /// Cleanups still to fail on purpose (a test's stand-in for an unreachable backend).
    failures: Arc<AtomicU32>,
}

impl CleanupLog {
    /// The cleanups that succeeded so far.
    pub fn entries(&self) -> Vec<(ClusterId, String)> {
        self.entries.lock().clone()
    }

    /// Makes the next `n` cleanups fail.
    pub fn fail_next(&self, n: u32) {
        self.failures.store(n, Ordering::SeqCst);
    }

    fn record(&self, cluster: &ClusterId, key: String) -> Result<(), CleanupFailed> {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(CleanupFailed(key));
        }
        println!("[{cluster}] widget {key}: external resources released");
        self.entries.lock().push((cluster.clone(), key));
        Ok(())
    }
}

/// A cleanup failed; the finalizer stays and the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
#[error("releasing the external resources of widget {0} failed")]
pub struct CleanupFailed(String);

/// Why a reconcile of a Widget failed (each is retried with the key's backoff).
#[derive(Debug, thiserror::Error)]
pub enum WidgetError {
    /// Creating or deleting an owned ConfigMap failed.
    #[error("writing ConfigMap {namespace}/{name}: {source}")]
    ConfigMap {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The `/status` patch failed.
    #[error("updating the status of widget {namespace}/{name}: {source}")]
    Status {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A Widget read without a uid cannot own anything.
    #[error("widget {0} has no uid yet")]
    NoUid(String),
    /// The cleanup failed.
    #[error("{0}")]
    Cleanup(#[from] CleanupFailed),
}

/// The reconciler actor. See the module docs.
pub struct WidgetReconciler {
    config_maps: MultiInformer<ConfigMap>,
    cleanups: CleanupLog,
}

impl WidgetReconciler {
    /// Reads owned ConfigMaps from `config_maps`; records cleanups in `cleanups`.
    pub fn new(config_maps: MultiInformer<ConfigMap>, cleanups: CleanupLog) -> Self {
        Self {
            config_maps,
            cleanups,
        }
    }
}

impl Actor for WidgetReconciler {
    type Context = Context<Self>;
}

impl Handler<Reconcile<Widget>> for WidgetReconciler {
    type Result = ResponseFuture<Result<Action, ReconcileError>>;

    fn handle(&mut self, msg: Reconcile<Widget>, _ctx: &mut Self::Context) -> Self::Result {
        let config_maps = self.config_maps.clone();
        let cleanups = self.cleanups.clone();
        Box::pin(async move {
            // Gone: its ConfigMaps are the garbage collector's; its cleanup already ran.
            let Some(widget) = msg.object else {
                return Ok(Action::Done);
            };
            let cluster = msg.ctx.cluster().clone();
            let client = msg.ctx.client().clone();
            let namespace = widget.namespace().unwrap_or_default();
            let widgets: Api<Widget> = Api::namespaced(client.clone(), &namespace);
            let action = finalizer(&widgets, FINALIZER, widget, |event| async {
                match event {
                    FinalizerEvent::Apply(widget) => {
                        apply(&cluster, &client, &config_maps, &widget).await
                    }
                    FinalizerEvent::Cleanup(widget) => {
                        let key = format!("{namespace}/{}", widget.name_any());
                        cleanups.record(&cluster, key)?;
                        Ok(Action::Done)
                    }
                }
            })
            .instrument(msg.span.clone())
            .await?;
            Ok(action)
        })
    }
}

/// The ConfigMap names a Widget wants.
fn wanted(widget: &Widget) -> Vec<String> {
    (0..widget.spec.replicas)
        .map(|i| format!("{}-{i}", widget.name_any()))
        .collect()
}

async fn apply(
    cluster: &ClusterId,
    client: &kube::Client,
    config_maps: &MultiInformer<ConfigMap>,
    widget: &Widget,
) -> Result<Action, WidgetError> {
    let name = widget.name_any();
    let namespace = widget.namespace().unwrap_or_default();
    let uid = widget
        .uid()
        .ok_or_else(|| WidgetError::NoUid(format!("{namespace}/{name}")))?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let owned: BTreeMap<String, Arc<ConfigMap>> = config_maps
        .list(cluster)
        .unwrap_or_default()
        .into_iter()
        .filter(|cm| {
            cm.namespace().as_deref() == Some(namespace.as_str())
                && cm
                    .owner_references()
                    .iter()
                    .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .map(|cm| (cm.name_any(), cm))
        .collect();
    let wanted = wanted(widget);
    let write_error = |cm: &str| {
        let (namespace, name) = (namespace.clone(), cm.to_string());
        move |source| WidgetError::ConfigMap {
            namespace,
            name,
            source,
        }
    };
    for (index, cm) in wanted.iter().enumerate() {
        if owned.contains_key(cm) {
            continue;
        }
        let object = config_map(widget, &uid, cm, index);
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(source) => return Err(write_error(cm)(source)),
        }
    }
    for extra in owned.keys().filter(|cm| !wanted.contains(cm)) {
        match api.delete(extra, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(write_error(extra)(source)),
        }
    }
    let status = WidgetStatus {
        ready_replicas: widget.spec.replicas,
        observed_generation: widget.meta().generation,
    };
    if widget.status.as_ref() != Some(&status) {
        let widgets: Api<Widget> = Api::namespaced(client.clone(), &namespace);
        widgets
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .map_err(|source| WidgetError::Status {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
    }
    Ok(Action::Done)
}

fn config_map(widget: &Widget, uid: &str, name: &str, index: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: widget.namespace(),
            labels: Some([(WIDGET_LABEL.to_string(), widget.name_any())].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: Widget::api_version(&()).into_owned(),
                kind: Widget::kind(&()).into_owned(),
                name: widget.name_any(),
                uid: uid.to_string(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        data: Some([("replica".to_string(), index.to_string())].into()),
        ..Default::default()
    }
}
