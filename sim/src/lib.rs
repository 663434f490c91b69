//! `panoptes-sim`: an embedded multi-cluster Kubernetes API server for tests, demos and
//! benchmarks.
//!
//! One [`Sim`] serves N independent clusters named `sim-1` … `sim-N`. Each cluster listens
//! on its own `https://127.0.0.1:PORT` with its own freshly made CA and bearer token, and
//! keeps its own in-memory [`store::ClusterStore`]. The HTTP side behaves like a real
//! kube-apiserver v1.28 (the recorded ground truth is `shared/fixtures/apiserver-v1.28/`):
//! discovery (plain and aggregated), `Status` errors with the real codes and wording, Table
//! output for kubectl, metadata-only (`PartialObjectMetadata`) lists, gets and watches,
//! chunked watch streams with bookmarks and 410s, the pod subresources controllers use
//! (`binding`, `eviction`), an empty OpenAPI v2 document that is enough for `kubectl apply`
//! and OpenAPI v3 documents enough for `kubectl explain`. `kubectl`, `kube::Client` and
//! client-go can talk to it unchanged.
//!
//! `Sim` runs its servers on its own multi-thread tokio runtime, so it works from plain
//! sync code, `#[tokio::test]` and actix systems alike; dropping it stops everything.
//!
//! Each cluster has [`Faults`] (429/500 injection, latency, stalled or dropped watches, 403s,
//! compaction, a server without the WatchList gate, restarts on the same port) and
//! [`Counters`] (lists and watches per resource, open watches, requests).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = panoptes_sim::Sim::start(panoptes_sim::SimOptions { clusters: 2, ..Default::default() })?;
//! let c = sim.cluster(0); // "sim-1"
//! let kubeconfig: String = c.kubeconfig_yaml(); // one context "sim-1", CA data, bearer token
//! # let _ = kubeconfig;
//! c.faults().fail_next(3, 429);
//! assert_eq!(c.counters().watches("pods"), 0);
//! panoptes_sim::pods::seed(&c.store(), "default", 100);
//! let churn = panoptes_sim::churn::Churn::start(c.store(), panoptes_sim::churn::ChurnConfig::default());
//! # drop(churn);
//! # Ok(())
//! # }
//! ```
//!
//! Module map: [`store`] (state, store side), [`pods`] and [`churn`] (data generators);
//! `cluster` (the public handle, owning its server) → `server` (listener, TLS, HTTP/1.1 +
//! HTTP/2) → `router` (auth, non-resource paths) → `resources` (verbs), all serving from
//! `cluster_state` (what handlers read; imports flow only this way); `request_info`, `query`,
//! `negotiation`, [`list_body`], [`partial_metadata`], [`pod_subresources`], [`discovery`],
//! `openapi`, [`table`], `watch_stream`, [`faults`], [`counters`], [`kubeconfig`], [`cli`].

pub mod churn;
mod pod_life;
pub mod pods;
pub mod store;

pub mod auth;
pub mod cli;
mod cluster;
mod cluster_state;
pub mod counters;
pub mod discovery;
pub mod faults;
pub mod kubeconfig;
pub mod list_body;
pub mod negotiation;
pub mod openapi;
pub mod partial_metadata;
pub mod pod_subresources;
pub mod query;
pub mod request_info;
mod resources;
pub mod response;
mod router;
mod server;
pub mod table;
pub mod tls;
pub mod watch_stream;

use std::path::Path;

pub use cluster::SimCluster;
pub use counters::Counters;
pub use faults::Faults;
pub use resources::default_field_manager;

/// How to start a [`Sim`].
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Number of clusters (`sim-1` … `sim-N`).
    pub clusters: usize,
    /// The minor version `/version` reports (`v1.<minor>.0`); kubectl's dispatcher picks
    /// `kubectl.1.<minor>` from it. 28 by default, the version the fixtures were recorded on.
    pub kubernetes_minor: u32,
    /// Tuning of every cluster's store.
    pub store: store::StoreConfig,
    /// Requests without a token are `system:anonymous` (403 except /version and health
    /// checks) when true, 401 when false.
    pub anonymous_auth: bool,
    /// Threads of the sim's own tokio runtime.
    pub worker_threads: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            clusters: 1,
            kubernetes_minor: 28,
            store: store::StoreConfig::default(),
            anonymous_auth: true,
            worker_threads: 2,
        }
    }
}

/// Why a [`Sim`] or one of its clusters could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// [`SimOptions::clusters`] was 0.
    #[error("SimOptions.clusters must be at least 1")]
    NoClusters,
    /// The sim's tokio runtime could not be built.
    #[error("starting the sim's tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// A cluster's certificates or TLS config could not be made.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A cluster could not listen on 127.0.0.1.
    #[error("cluster {cluster}: listening on 127.0.0.1: {source}")]
    Bind {
        /// The cluster's name.
        cluster: String,
        /// The bind error.
        source: std::io::Error,
    },
}

/// Running simulated clusters. Dropping it stops every server and the runtime.
pub struct Sim {
    clusters: Vec<SimCluster>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Sim {
    /// Starts `options.clusters` clusters, each listening when this returns.
    pub fn start(options: SimOptions) -> Result<Sim, SimError> {
        if options.clusters == 0 {
            return Err(SimError::NoClusters);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.worker_threads.max(1))
            .thread_name("panoptes-sim")
            .enable_all()
            .build()
            .map_err(SimError::Runtime)?;
        let mut sim = Sim {
            clusters: Vec::with_capacity(options.clusters),
            runtime: None,
        };
        for i in 1..=options.clusters {
            let settings = cluster::ClusterSettings {
                name: format!("sim-{i}"),
                kubernetes_minor: options.kubernetes_minor,
                anonymous_auth: options.anonymous_auth,
                store_config: options.store.clone(),
            };
            sim.clusters
                .push(SimCluster::start_new(settings, runtime.handle().clone())?);
        }
        sim.runtime = Some(runtime);
        Ok(sim)
    }

    /// The clusters, in start order (`sim-0`, `sim-1`, ...).
    pub fn clusters(&self) -> &[SimCluster] {
        &self.clusters
    }

    /// The cluster at `i` (0-based: `cluster(0)` is `sim-1`). Panics when out of range.
    pub fn cluster(&self, i: usize) -> &SimCluster {
        &self.clusters[i]
    }

    /// A kubeconfig with one context per cluster (`sim-1` …), current context `sim-1`.
    pub fn kubeconfig_yaml(&self) -> String {
        let entries: Vec<_> = self
            .clusters
            .iter()
            .map(SimCluster::kubeconfig_entry)
            .collect();
        kubeconfig::render(&entries, self.clusters[0].name())
    }

    /// Writes [`Sim::kubeconfig_yaml`] to `path` (created or replaced, mode 0600 on Unix).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// Stops every cluster and the runtime (what dropping does, made explicit).
    pub fn shutdown(self) {}
}

impl Drop for Sim {
    fn drop(&mut self) {
        for cluster in &self.clusters {
            if cluster.is_running() {
                cluster.stop();
            }
        }
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime inside an async context panics; shutdown_background does not block.
            runtime.shutdown_background();
        }
    }
}
