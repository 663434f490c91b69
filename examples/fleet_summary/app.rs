//! The fleet summary: what every cluster of a `clusters.toml` runs, computed from the shared
//! caches (no API-server call per request) and served by an axum router:
//!
//! - `GET /summary`: JSON, one entry per cluster: whether its caches synced, its pods per
//!   phase, and its deployments that are not at their replica count;
//! - `GET /summary.txt`: the same as a few lines of plain text for a terminal.
//!
//! A deployment is *not at its replica count* when `status.readyReplicas` or
//! `status.availableReplicas` differs from `spec.replicas` (absent replicas count as 1, as
//! the API server defaults them; absent status counts as 0 ready, as `kubectl get` shows).
//! A pod without `status.phase` counts as `Pending`, the phase the API server gives it on
//! create.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use panoptes_runtime::MultiInformer;
use serde::Serialize;

/// The phase a pod without `status.phase` is counted under.
const DEFAULT_PHASE: &str = "Pending";

/// The caches the summary is computed from.
#[derive(Clone)]
pub struct Fleet {
    /// Pods of every cluster.
    pub pods: MultiInformer<Pod>,
    /// Deployments of every cluster.
    pub deployments: MultiInformer<Deployment>,
}

/// The whole fleet, one entry per cluster (by configured name).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FleetSummary {
    /// By configured cluster name.
    pub clusters: BTreeMap<String, ClusterSummary>,
}

/// One cluster.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClusterSummary {
    /// Both caches synced: until then the counts may be partial.
    pub synced: bool,
    /// Pods cached.
    pub pods: usize,
    /// Pods per `status.phase`.
    pub pods_by_phase: BTreeMap<String, usize>,
    /// Deployments cached.
    pub deployments: usize,
    /// Deployments whose ready or available replicas differ from the desired count.
    pub deployments_not_at_replicas: Vec<DeploymentLag>,
}

/// A deployment not at its replica count.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DeploymentLag {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.replicas` (1 when absent).
    pub desired: i32,
    /// `status.readyReplicas` (0 when absent).
    pub ready: i32,
    /// `status.availableReplicas` (0 when absent).
    pub available: i32,
}

/// Reads the caches of every cluster into a summary.
pub fn summarize(fleet: &Fleet) -> FleetSummary {
    let names: BTreeSet<_> = fleet
        .pods
        .clusters()
        .into_iter()
        .chain(fleet.deployments.clusters())
        .collect();
    let clusters = names
        .into_iter()
        .map(|cluster| {
            let pods = fleet.pods.list(&cluster).unwrap_or_default();
            let deployments = fleet.deployments.list(&cluster).unwrap_or_default();
            let mut pods_by_phase = BTreeMap::new();
            for pod in &pods {
                *pods_by_phase.entry(phase(pod)).or_default() += 1;
            }
            let mut lagging: Vec<_> = deployments.iter().filter_map(|d| lag(d)).collect();
            lagging.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            let summary = ClusterSummary {
                synced: fleet.pods.has_synced(&cluster) && fleet.deployments.has_synced(&cluster),
                pods: pods.len(),
                pods_by_phase,
                deployments: deployments.len(),
                deployments_not_at_replicas: lagging,
            };
            (cluster.to_string(), summary)
        })
        .collect();
    FleetSummary { clusters }
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| DEFAULT_PHASE.to_string())
}

/// `Some` when the deployment is not at its replica count.
fn lag(deployment: &Deployment) -> Option<DeploymentLag> {
    let desired = deployment.spec.replicas.unwrap_or(1);
    let status = deployment.status.as_ref();
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    (ready != desired || available != desired).then(|| DeploymentLag {
        namespace: deployment.metadata.namespace.clone().unwrap_or_default(),
        name: deployment.metadata.name.clone().unwrap_or_default(),
        desired,
        ready,
        available,
    })
}

/// The summary as plain text: a line per cluster, an indented line per lagging deployment.
pub fn render_text(summary: &FleetSummary) -> String {
    let mut text = String::new();
    for (name, cluster) in &summary.clusters {
        let phases: Vec<_> = cluster
            .pods_by_phase
            .iter()
            .map(|(phase, n)| format!("{phase}={n}"))
            .collect();
        let _ = writeln!(
            text,
            "{name}{}: {} pods ({}), {} deployments, {} not at replica count",
            if cluster.synced { "" } else { " (syncing)" },
            cluster.pods,
            phases.join(" "),
            cluster.deployments,
            cluster.deployments_not_at_replicas.len(),
        );
        for lag in &cluster.deployments_not_at_replicas {
            let _ = writeln!(
                text,
                "  {}/{}: {} desired, {} ready, {} available",
                lag.namespace, lag.name, lag.desired, lag.ready, lag.available
            );
        }
    }
    text
}

/// The router: `/summary` (JSON) and `/summary.txt` (plain text).
pub fn router(fleet: Fleet) -> Router {
    Router::new()
        .route("/summary", get(json))
        .route("/summary.txt", get(text))
        .with_state(fleet)
}

async fn json(State(fleet): State<Fleet>) -> Json<FleetSummary> {
    Json(summarize(&fleet))
}

async fn text(State(fleet): State<Fleet>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        render_text(&summarize(&fleet)),
    )
}
