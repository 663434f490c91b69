//! Shared by the `controller_*` tests: a reconciler actor that records what it reconciles
//! (and how many run at once) and writes an annotation through the key's cluster client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use panoptes_actors::{Action, Reconcile, ReconcileError, ReconcileKey};
use parking_lot::Mutex;

/// The annotation the reconciler writes: the name of the cluster it reconciled the object on.
pub const ANNOTATION: &str = "panoptes.test/reconciled-on";

/// What a [`Recorder`] saw.
#[derive(Default)]
pub struct Record {
    /// Every reconcile, in order of start.
    pub keys: Mutex<Vec<ReconcileKey>>,
    /// Reconciles running now, per key.
    pub running: Mutex<BTreeMap<ReconcileKey, usize>>,
    /// True once two reconciles of one key overlapped.
    pub overlapped: Mutex<Vec<ReconcileKey>>,
    /// Reconciles running now, over all keys, and the most seen at once.
    pub now: AtomicUsize,
    pub most: AtomicUsize,
}

impl Record {
    /// How often `key` was reconciled.
    pub fn count(&self, key: &ReconcileKey) -> usize {
        self.keys.lock().iter().filter(|k| *k == key).count()
    }

    /// How many reconciles there were for `cluster`.
    pub fn count_on(&self, cluster: &str) -> usize {
        self.keys
            .lock()
            .iter()
            .filter(|k| k.cluster.as_str() == cluster)
            .count()
    }

    pub fn total(&self) -> usize {
        self.keys.lock().len()
    }
}

/// A reconciler for ConfigMaps: records, optionally lingers (to widen races), annotates the
/// object through its cluster's client unless it already carries the annotation.
pub struct Recorder {
    pub record: Arc<Record>,
    pub linger: Duration,
    /// Fail every reconcile of objects with this name (to drive retries).
    pub fail_name: Option<String>,
}

impl Recorder {
    pub fn new(record: Arc<Record>) -> Self {
        Self {
            record,
            linger: Duration::ZERO,
            fail_name: None,
        }
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Reconcile<ConfigMap>> for Recorder {
    type Result = ResponseFuture<Result<Action, ReconcileError>>;

    fn handle(&mut self, msg: Reconcile<ConfigMap>, _: &mut Context<Self>) -> Self::Result {
        let record = self.record.clone();
        let linger = self.linger;
        let fail = self.fail_name.as_deref() == Some(msg.key.name.as_str());
        Box::pin(async move {
            let key = msg.key.clone();
            record.keys.lock().push(key.clone());
            {
                let mut running = record.running.lock();
                let n = running.entry(key.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    record.overlapped.lock().push(key.clone());
                }
            }
            let now = record.now.fetch_add(1, Ordering::SeqCst) + 1;
            record.most.fetch_max(now, Ordering::SeqCst);
            let result = reconcile(&msg, linger, fail).await;
            record.now.fetch_sub(1, Ordering::SeqCst);
            *record.running.lock().get_mut(&key).expect("counted above") -= 1;
            result
        })
    }
}

async fn reconcile(
    msg: &Reconcile<ConfigMap>,
    linger: Duration,
    fail: bool,
) -> Result<Action, ReconcileError> {
    if !linger.is_zero() {
        tokio::time::sleep(linger).await;
    }
    if fail {
        return Err(ReconcileError::msg("told to fail"));
    }
    let Some(object) = &msg.object else {
        return Ok(Action::Done);
    };
    let cluster = msg.key.cluster.as_str();
    let annotated = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .is_some_and(|v| v == cluster);
    if !annotated {
        let namespace = msg.key.namespace.as_deref().unwrap_or("default");
        let api: Api<ConfigMap> = Api::namespaced(msg.ctx.client().clone(), namespace);
        let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION: cluster}}});
        api.patch(
            &msg.key.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(Action::Done)
}

/// Creates ConfigMap `name` in `default` through `client`.
pub async fn create_configmap(client: &kube::Client, name: &str) {
    create_configmap_with(client, name, None).await;
}

/// Creates ConfigMap `name` in `default`, with a controller owner reference if given.
pub async fn create_configmap_with(
    client: &kube::Client,
    name: &str,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        data: Some([("v".to_string(), "0".to_string())].into()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm)
        .await
        .unwrap_or_else(|e| panic!("create configmap {name}: {e}"));
}

/// Sets `data.v` of ConfigMap `name` in `default` to `value`.
pub async fn touch_configmap(client: &kube::Client, name: &str, value: usize) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let patch = serde_json::json!({"data": {"v": value.to_string()}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("touch configmap {name}: {e}"));
}

/// Whether ConfigMap `name` in `default` carries the annotation naming `cluster`.
pub async fn annotated(client: &kube::Client, name: &str, cluster: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    match api.get_opt(name).await {
        Ok(Some(cm)) => cm
            .metadata
            .annotations
            .and_then(|a| a.get(ANNOTATION).cloned())
            .is_some_and(|v| v == cluster),
        _ => false,
    }
}
