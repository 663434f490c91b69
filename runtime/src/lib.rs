//! `panoptes-runtime`: what wires the Panoptes actors to the world.
//!
//! Start with [`config`]: `clusters.toml` says which clusters to reach and what to watch;
//! [`PanoptesConfig::load`] reads and checks it, and every mistake comes back as a
//! [`ConfigError`] naming the file, line and key. Then:
//!
//! - [`connection`] turns each `[[clusters]]` entry into a `kube::Client` and a
//!   [`ClusterIdentity`] (server + credential fingerprint, never the secret), so entries that
//!   reach the same cluster as the same user can share informers.
//! - [`telemetry`] installs logging and, when configured, OTLP trace export; keep its
//!   [`TelemetryGuard`] alive until exit.
//! - [`metrics`] holds the Prometheus families controller-runtime users know
//!   (`workqueue_*`, `controller_runtime_reconcile_*`) plus the informer's own.
//! - [`health`] serves `/metrics`, `/healthz` and `/readyz` (ready when every engaged
//!   cluster's caches have synced, as recorded in [`Readiness`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use panoptes_runtime::{HealthServer, Metrics, PanoptesConfig, Readiness, telemetry};
//!
//! let config = PanoptesConfig::load(panoptes_runtime::config::DEFAULT_CONFIG_PATH)?;
//! let telemetry = telemetry::init(&config.telemetry)?;
//! let (metrics, readiness) = (Metrics::new(), Readiness::new());
//! let health = HealthServer::start(config.runtime.metrics_addr, metrics, readiness).await?;
//! // ... connect clusters, start informers, mark readiness ...
//! health.stop().await?;
//! telemetry.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod cli;
pub mod config;
pub mod connection;
pub mod controller;
pub mod health;
pub mod log_filter;
pub mod metrics;
pub mod multi_informer;
pub mod rate_limit;
pub mod runtime;
pub mod runtime_builder;
pub mod telemetry;

pub use config::{
    ClusterConfig, ClusterSource, ConfigError, PanoptesConfig, ResourceRef, WatchConfig,
};
pub use connection::{ClusterConnection, ClusterIdentity, ConnectionError};
pub use controller::{ControllerBuilder, ControllerHandle};
pub use health::{HealthServer, Readiness};
pub use metrics::Metrics;
pub use multi_informer::{ClusterInformerStatus, MultiHandlerId, MultiInformer};
pub use runtime::{InformerSpec, ReloadReport, Runtime, RuntimeError};
pub use runtime_builder::RuntimeBuilder;
pub use telemetry::{TelemetryError, TelemetryGuard};
