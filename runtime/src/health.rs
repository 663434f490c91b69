//! The health server: `/metrics`, `/healthz` and `/readyz` on `[runtime] metrics_addr`.
//!
//! It mirrors controller-runtime's manager endpoints. `/healthz` answers 200 while the process
//! serves at all (a liveness probe). `/readyz` answers 200 only when every engaged
//! (cluster, resource) pair reported in [`Readiness`] has synced its cache, and 503 otherwise
//! with the pairs still waiting, one per line — like client-go's `WaitForCacheSync` as an
//! HTTP probe. Before anything is engaged it answers 503 ("nothing engaged yet"), so a pod is
//! not marked ready before it has started watching.
//!
//! Objects a cache set aside because its type could not hold them (quarantined by the
//! reflector, [`panoptes_actors::quarantine`]) do not hold back readiness — the rest of the
//! resource is cached — but `/readyz` names each one (cluster, resource, key, reason) in its
//! detail, on 200 and 503 alike, so an operator sees what the caches are missing.
//!
//! # Lifecycle
//!
//! [`HealthServer::start`] binds and serves on the current tokio runtime;
//! [`HealthServer::stop`] (or dropping the handle) ends it gracefully: open requests finish,
//! new connections are refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::quarantine::Quarantined;
use parking_lot::RwLock;
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::metrics::{CONTENT_TYPE, Metrics};

/// An engaged (cluster, resource).
type Pair = (ClusterId, String);

/// Which (cluster, resource) caches are synced; shared by whoever engages clusters and the
/// `/readyz` handler. Clones share one state.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    /// Every engaged pair; `true` once its first list has been delivered to the cache.
    pairs: Arc<RwLock<BTreeMap<(ClusterId, String), bool>>>,
    /// Objects set aside per engaged pair (pairs with none are absent).
    quarantined: Arc<RwLock<BTreeMap<Pair, Vec<Quarantined>>>>,
    /// With `[sharding]`: the clusters this replica owns, named in `/readyz`; `None`
    /// without sharding.
    shard_owned: Arc<RwLock<Option<Vec<ClusterId>>>>,
}

impl Readiness {
    /// Nothing engaged yet: `/readyz` answers 503 ("nothing engaged yet") until a cluster is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records whether `resource` on `cluster` is synced. Calling it engages the pair.
    pub fn set(&self, cluster: &ClusterId, resource: &str, ready: bool) {
        self.pairs
            .write()
            .insert((cluster.clone(), resource.to_string()), ready);
    }

    /// Forgets every pair of a cluster that left (config reload); it no longer holds back
    /// readiness.
    pub fn disengage(&self, cluster: &ClusterId) {
        self.pairs.write().retain(|(c, _), _| c != cluster);
        self.quarantined.write().retain(|(c, _), _| c != cluster);
    }

    /// Records the objects `resource` on `cluster` has set aside now (replacing earlier ones).
    pub fn set_quarantined(&self, cluster: &ClusterId, resource: &str, objects: Vec<Quarantined>) {
        let pair = (cluster.clone(), resource.to_string());
        let mut quarantined = self.quarantined.write();
        if objects.is_empty() {
            quarantined.remove(&pair);
        } else {
            quarantined.insert(pair, objects);
        }
    }

    /// Every quarantined object, in (cluster, resource) order.
    pub fn quarantined(&self) -> Vec<(ClusterId, String, Quarantined)> {
        let quarantined = self.quarantined.read();
        let pairs = quarantined
            .iter()
            .flat_map(|((cluster, resource), objects)| {
                objects
                    .iter()
                    .map(move |q| (cluster.clone(), resource.clone(), q.clone()))
            });
        pairs.collect()
    }

    /// The engaged pairs not yet synced, in (cluster, resource) order.
    pub fn not_ready(&self) -> Vec<(ClusterId, String)> {
        let pairs = self.pairs.read();
        pairs
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(pair, _)| pair.clone())
            .collect()
    }

    /// True when something is engaged and all of it is synced — or, sharded, when this
    /// replica owns no cluster at all (a standby: nothing to wait for).
    pub fn is_ready(&self) -> bool {
        let pairs = self.pairs.read();
        if pairs.is_empty() {
            return self.shard_owned.read().as_ref().is_some_and(Vec::is_empty);
        }
        pairs.values().all(|ready| *ready)
    }

    /// Sharding: the clusters owned here now (named in `/readyz` as `shard owns: a,b,c`).
    pub fn set_shard_owned(&self, owned: Option<Vec<ClusterId>>) {
        *self.shard_owned.write() = owned;
    }

    /// The clusters owned here, when sharded.
    pub fn shard_owned(&self) -> Option<Vec<ClusterId>> {
        self.shard_owned.read().clone()
    }
}

/// The health server could not start or ended with an error.
#[derive(Debug, Error)]
pub enum HealthError {
    #[error(
        "cannot listen on {addr} for /metrics, /healthz and /readyz ([runtime] metrics_addr): {source}"
    )]
    /// The address could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        #[source]
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("health server on {addr} failed: {source}")]
    Serve {
        /// The address asked for.
        addr: SocketAddr,
        #[source]
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server task panicked or was cancelled.
    #[error("health server task on {addr} panicked or was cancelled")]
    Task {
        /// The address asked for.
        addr: SocketAddr,
    },
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Readiness,
}

/// A running health server; dropping it stops the server.
#[derive(Debug)]
pub struct HealthServer {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl HealthServer {
    /// Binds `addr` (port 0 picks a free port) and serves on the current tokio runtime.
    pub async fn start(
        addr: SocketAddr,
        metrics: Metrics,
        readiness: Readiness,
    ) -> Result<Self, HealthError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| HealthError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| HealthError::Bind { addr, source })?;
        let app = Router::new()
            .route("/metrics", get(metrics_page))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(AppState { metrics, readiness });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            // A dropped sender also means stop.
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move { serve.await });
        tracing::info!(%local_addr, "serving /metrics, /healthz, /readyz");
        Ok(Self {
            local_addr,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The bound address (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets open requests finish, and waits for the server to end.
    pub async fn stop(mut self) -> Result<(), HealthError> {
        let addr = self.local_addr;
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(HealthError::Serve { addr, source }),
            Err(_) => Err(HealthError::Task { addr }),
        }
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn metrics_page(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let (code, mut body) = readiness_summary(&state.readiness);
    if let Some(owned) = state.readiness.shard_owned() {
        let names: Vec<&str> = owned.iter().map(ClusterId::as_str).collect();
        let _ = writeln!(body, "shard owns: {}", names.join(","));
    }
    let quarantined = state.readiness.quarantined();
    if !quarantined.is_empty() {
        body.push_str("quarantined (the cache's type cannot hold them; the rest is cached):\n");
    }
    for (cluster, resource, object) in quarantined {
        let _ = writeln!(
            body,
            "  cluster {cluster} resource {resource} key {} reason {}",
            object.key, object.reason
        );
    }
    (code, body)
}

fn readiness_summary(readiness: &Readiness) -> (StatusCode, String) {
    if readiness.is_ready() {
        return (StatusCode::OK, "ok\n".into());
    }
    let waiting = readiness.not_ready();
    if waiting.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: nothing engaged yet\n".into(),
        );
    }
    let mut body = String::from("not ready: caches not synced:\n");
    for (cluster, resource) in waiting {
        let _ = writeln!(body, "  cluster {cluster} resource {resource}");
    }
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_be_ready_only_when_something_is_engaged_and_all_synced() {
        let readiness = Readiness::new();
        assert!(!readiness.is_ready(), "nothing engaged is not ready");
        let (east, west) = (ClusterId::from("east"), ClusterId::from("west"));
        readiness.set(&east, "v1/pods", true);
        readiness.set(&west, "v1/pods", false);
        assert_eq!(
            readiness.not_ready(),
            vec![(west.clone(), "v1/pods".to_string())]
        );
        assert!(!readiness.is_ready());
        readiness.disengage(&west);
        assert!(readiness.is_ready());
    }
}
