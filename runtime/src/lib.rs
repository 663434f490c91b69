//! `panoptes-runtime`: what wires the Panoptes actors to the world.
//!
//! Start with [`Runtime`]: give it a loaded `clusters.toml` ([`PanoptesConfig`]);
//! [`Runtime::start`] connects every cluster (embedded ones start in-process),
//! [`Runtime::informer`] gives the one shared multi-cluster informer for a type, handlers
//! receive every [`Event`] naming its [`ClusterId`], and listers read the cache without a
//! request. What a user needs is re-exported here.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use k8s_openapi::api::core::v1::Pod;
//! use panoptes_runtime::{Event, HandlerOptions, PanoptesConfig, Runtime, Selector};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = PanoptesConfig::load("clusters.toml")?;
//!     // Informers are actors: they need an actix system.
//!     actix::System::new().block_on(async move {
//!         let runtime = Runtime::start(&config).await?;
//!         let pods = runtime.informer::<Pod>();
//!         pods.add_handler_fn(
//!             |event: Event<Pod>| {
//!                 if let Event::Deleted { cluster, obj, .. } = &event {
//!                     println!("[{cluster}] {:?} is gone", obj.metadata.name);
//!                 }
//!             },
//!             HandlerOptions::default(),
//!         );
//!         pods.wait_all_synced(Duration::from_secs(30)).await;
//!         for cluster in runtime.clusters() {
//!             // A lister reads the cluster's cache: no request, no copy.
//!             if let Some(handle) = pods.handle(&cluster) {
//!                 let lister = handle.informer().lister();
//!                 let web = Selector::from_iter([("app", "web")]);
//!                 println!("{cluster}: {} web pods", lister.list(Some("default"), &web).len());
//!             }
//!         }
//!         runtime.shutdown();
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Handlers come as closures ([`MultiInformer::add_handler_fn`]), actor recipients
//! ([`MultiInformer::add_handler`]) or, on one cluster's [`Informer`](panoptes_actors::Informer),
//! an [`EventHandler`] made with [`handler_fn`] or [`handler_actor`] (restarted if it panics).
//! [`HandlerOptions`] sets the resync period and whether a slow handler's backlog is
//! coalesced per key.
//!
//! The pieces under the runtime, for programs that wire things themselves:
//!
//! - [`config`]: `clusters.toml` says which clusters to reach and what to watch;
//!   [`PanoptesConfig::load`] reads and checks it, and every mistake comes back as a
//!   [`ConfigError`] naming the file, line and key.
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
pub mod sharding;
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
pub use sharding::{ClientError, ShardHandle};
pub use telemetry::{TelemetryError, TelemetryGuard};

pub use kube::core::Selector;
pub use panoptes_actors::ids::ClusterId;
pub use panoptes_actors::{
    CacheMode, Event, EventHandler, HandlerOptions, ListJson, Lister, handler_actor, handler_fn,
};
