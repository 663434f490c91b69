//! The `Backup` custom resource of the `crd_watcher` example and what the example does with
//! it, kept apart from `main` so that `tests/crd_watcher.rs` runs the same code against
//! embedded clusters.
//!
//! A kube-runtime user derives the type with `CustomResource` and applies
//! `Backup::crd()`; here the same type is watched on every configured cluster by one
//! [`MultiInformer`], whose events name the cluster they came from.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use panoptes_runtime::multi_informer::MultiInformer;
use panoptes_runtime::{ClusterId, Event, HandlerOptions, Runtime};
use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How long a freshly created CRD may take to be served.
const CRD_SERVED_WITHIN: Duration = Duration::from_secs(10);
const CRD_POLL: Duration = Duration::from_millis(50);

/// A scheduled backup of a database, as an operator would define it.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "demo.panoptes.dev",
    version = "v1",
    kind = "Backup",
    namespaced,
    status = "BackupStatus",
    shortname = "bk"
)]
pub struct BackupSpec {
    /// Which database to back up.
    pub database: String,
    /// Cron schedule, e.g. `0 3 * * *`.
    pub schedule: String,
    /// How many backups to keep.
    pub retain: u32,
}

/// What the backup operator reports.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct BackupStatus {
    /// RFC 3339 time of the last backup that completed.
    pub last_backup: Option<String>,
}

/// What happened to the CRD on one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdOutcome {
    /// It was there already.
    Present,
    /// It was created now (and is served).
    Created,
}

/// Creates the `Backup` CRD through `client` unless it exists, then waits (bounded) until
/// the API server serves the resource.
pub async fn ensure_crd(client: kube::Client) -> anyhow::Result<CrdOutcome> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Backup::crd();
    let name = crd.name_any();
    let outcome = match crds.get_opt(&name).await.context("reading the CRD")? {
        Some(_) => CrdOutcome::Present,
        None => match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => CrdOutcome::Created,
            // Created by someone else in between: as good as present.
            Err(kube::Error::Api(status)) if status.code == 409 => CrdOutcome::Present,
            Err(error) => return Err(error).with_context(|| format!("creating CRD {name}")),
        },
    };
    let backups: Api<Backup> = Api::all(client);
    let deadline = Instant::now() + CRD_SERVED_WITHIN;
    loop {
        match backups.list(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(outcome),
            Err(error) if Instant::now() >= deadline => {
                bail!("CRD {name} is not served after {CRD_SERVED_WITHIN:?}: {error}")
            }
            Err(_) => tokio::time::sleep(CRD_POLL).await,
        }
    }
}

/// Applies the CRD to every embedded cluster of `runtime` (real clusters must have it
/// installed by their operators). Returns what happened per embedded cluster.
pub async fn ensure_crd_on_embedded(
    runtime: &Runtime,
) -> anyhow::Result<Vec<(ClusterId, CrdOutcome)>> {
    let mut outcomes = Vec::new();
    for cluster in runtime.clusters() {
        if runtime.embedded(&cluster).is_none() {
            continue;
        }
        let client = runtime
            .client(&cluster)
            .with_context(|| format!("cluster {cluster} has no client"))?;
        let outcome = ensure_crd(client)
            .await
            .with_context(|| format!("cluster {cluster}"))?;
        outcomes.push((cluster, outcome));
    }
    Ok(outcomes)
}

/// Creates `count` backups `nightly-0`.. in `namespace` of `cluster`, so there is something
/// to watch.
pub async fn create_backups(
    client: kube::Client,
    namespace: &str,
    count: usize,
) -> anyhow::Result<()> {
    let backups: Api<Backup> = Api::namespaced(client, namespace);
    for index in 0..count {
        let backup = Backup::new(
            &format!("nightly-{index}"),
            BackupSpec {
                database: format!("orders-{index}"),
                schedule: "0 3 * * *".into(),
                retain: 7,
            },
        );
        match backups.create(&PostParams::default(), &backup).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error).context("creating a backup"),
        }
    }
    Ok(())
}

/// One line per event, as the example prints it: `[cluster] ADDED ns/name (database)`.
pub fn describe(event: &Event<Backup>) -> String {
    let (verb, backup) = match event {
        Event::Added { obj, .. } => ("ADDED", obj),
        Event::Updated { new, .. } => ("UPDATED", new),
        Event::Deleted { obj, .. } => ("DELETED", obj),
    };
    format!(
        "[{}] {verb} {}/{} ({})",
        event.cluster(),
        backup.namespace().unwrap_or_default(),
        backup.name_any(),
        backup.spec.database
    )
}

/// The lines a [`watch_backups`] handler recorded, with the cluster of each event.
pub type SeenEvents = Arc<Mutex<Vec<(ClusterId, String)>>>;

/// Watches backups on every cluster of `runtime` with a closure handler that records (and
/// passes to `on_event`) one line per event.
pub fn watch_backups(
    runtime: &Runtime,
    on_event: impl Fn(&str) + Send + Sync + 'static,
) -> (MultiInformer<Backup>, SeenEvents) {
    let informer = runtime.informer::<Backup>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    informer.add_handler_fn(
        move |event: Event<Backup>| {
            let line = describe(&event);
            on_event(&line);
            record.lock().push((event.cluster().clone(), line));
        },
        HandlerOptions::default(),
    );
    (informer, seen)
}
