//! [`RuntimeBuilder`]: a [`Runtime`] put together in code, without a `clusters.toml` — the
//! way kube-runtime users start from a `kube::Client` they already have.
//!
//! # Contract
//! - Clusters come from `kube::Client`s ([`cluster`](RuntimeBuilder::cluster)), kubeconfig
//!   contexts ([`kubeconfig_context`](RuntimeBuilder::kubeconfig_context)) or embedded
//!   simulated servers ([`embedded`](RuntimeBuilder::embedded)), in any mix; names are
//!   DNS labels and unique, as in `clusters.toml`, and a bad one fails
//!   [`start`](RuntimeBuilder::start) with [`RuntimeError::Cluster`] naming it.
//! - What follows is exactly [`Runtime::start`]'s: telemetry installed from
//!   [`TelemetryConfig::default`] (logs at `info` on stderr) unless
//!   [`telemetry`](RuntimeBuilder::telemetry) says otherwise or
//!   [`without_telemetry`](RuntimeBuilder::without_telemetry) leaves it to the caller (an
//!   already-installed global subscriber is kept); every cluster connected; a cluster that
//!   cannot be reached is retried, reported and holds back no other.
//! - With [`metrics_addr`](RuntimeBuilder::metrics_addr) the runtime also serves `/metrics`,
//!   `/healthz` and `/readyz` there ([`Runtime::health_addr`]) until it shuts down.
//! - A client given as a `kube::Client` is its own cluster identity (a client does not say
//!   which server and user it reaches): its pipelines are shared by its informers, never
//!   with another entry.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::Pod;
//! use panoptes_runtime::Runtime;
//! use panoptes_runtime::config::EmbeddedCluster;
//!
//! let client = kube::Client::try_default().await?;
//! let runtime = Runtime::builder()
//!     .cluster("prod", client)
//!     .kubeconfig_context("staging", None, "staging-admin")
//!     .embedded("dev", EmbeddedCluster::default())
//!     .metrics_addr("127.0.0.1:9464".parse()?)
//!     .start()
//!     .await?;
//! let pods = runtime.informer::<Pod>();
//! pods.wait_all_synced(std::time::Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use panoptes_actors::ids::ClusterId;

use crate::config::{
    ClusterConfig, ClusterSource, DEFAULT_METRICS_ADDR, EmbeddedCluster, GivenClient,
    PanoptesConfig, RuntimeConfig, TelemetryConfig, is_dns_label,
};
use crate::runtime::{Runtime, RuntimeError};

impl Runtime {
    /// A runtime built in code, without a `clusters.toml`: see [`RuntimeBuilder`]. (Defined
    /// here, beside the builder, so that `runtime.rs` does not import this module back.)
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }
}

/// Builds a [`Runtime`] in code; start with [`Runtime::builder`]. See the
/// [module docs](self).
#[derive(Debug)]
#[must_use = "a builder does nothing until `.start().await`"]
pub struct RuntimeBuilder {
    clusters: Vec<(String, Source)>,
    /// `None`: the caller owns telemetry.
    telemetry: Option<TelemetryConfig>,
    metrics_addr: Option<SocketAddr>,
    default_resync: Option<Duration>,
    concurrent_lists: Option<usize>,
    release_heap_after_sync: bool,
}

/// A cluster as given, before its name is checked and its kubeconfig path resolved.
#[derive(Debug)]
enum Source {
    Client(GivenClient),
    Kubeconfig {
        path: Option<PathBuf>,
        context: String,
    },
    Embedded(EmbeddedCluster),
}

impl RuntimeBuilder {
    pub(crate) fn new() -> Self {
        Self {
            clusters: Vec::new(),
            telemetry: Some(TelemetryConfig::default()),
            metrics_addr: None,
            default_resync: None,
            concurrent_lists: None,
            release_heap_after_sync: false,
        }
    }

    /// A cluster reached through a client the program built (`kube::Client::try_default()`,
    /// `Client::try_from(config)`, a client with custom layers).
    pub fn cluster(mut self, name: impl Into<String>, client: kube::Client) -> Self {
        let source = Source::Client(GivenClient::new(client));
        self.clusters.push((name.into(), source));
        self
    }

    /// A cluster reached through `context` of a kubeconfig file: `path`, or with `None` the
    /// first file of `$KUBECONFIG`, else `~/.kube/config`.
    pub fn kubeconfig_context(
        mut self,
        name: impl Into<String>,
        path: Option<PathBuf>,
        context: impl Into<String>,
    ) -> Self {
        let source = Source::Kubeconfig {
            path,
            context: context.into(),
        };
        self.clusters.push((name.into(), source));
        self
    }

    /// A simulated cluster served by this process, seeded as `settings` says.
    pub fn embedded(mut self, name: impl Into<String>, settings: EmbeddedCluster) -> Self {
        self.clusters
            .push((name.into(), Source::Embedded(settings)));
        self
    }

    /// Logs and traces as `[telemetry]` would set them (default: [`TelemetryConfig::default`]).
    pub fn telemetry(mut self, telemetry: TelemetryConfig) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Installs no `tracing` subscriber: the program (or test) installs its own.
    pub fn without_telemetry(mut self) -> Self {
        self.telemetry = None;
        self
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` at `addr` (port 0 picks a free port; see
    /// [`Runtime::health_addr`]). Without it nothing is served.
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Resync period of handlers that set none (`[runtime] default_resync`); default off.
    pub fn default_resync(mut self, period: Duration) -> Self {
        self.default_resync = Some(period);
        self
    }

    /// At most `limit` lists gather at once (`[runtime] concurrent_lists`); default no limit.
    pub fn concurrent_lists(mut self, limit: usize) -> Self {
        self.concurrent_lists = Some(limit.max(1));
        self
    }

    /// Give the heap a first sync freed back to the OS (`[runtime] release_heap_after_sync`);
    /// default off.
    pub fn release_heap_after_sync(mut self, release: bool) -> Self {
        self.release_heap_after_sync = release;
        self
    }

    /// Checks the clusters, starts telemetry and the health server as asked, and connects
    /// every cluster (as [`Runtime::start`] does). Needs a running actix `System`.
    pub async fn start(self) -> Result<Runtime, RuntimeError> {
        let config = self.config()?;
        let install_telemetry = self.telemetry.is_some();
        Runtime::launch(&config, install_telemetry, self.metrics_addr).await
    }

    /// The configuration a `clusters.toml` with these clusters would load to.
    fn config(&self) -> Result<PanoptesConfig, RuntimeError> {
        let mut clusters: Vec<ClusterConfig> = Vec::new();
        for (name, source) in &self.clusters {
            let problem = |problem: String| RuntimeError::Cluster {
                name: name.clone(),
                problem,
            };
            if !is_dns_label(name) {
                return Err(problem(
                    "not a valid cluster name: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit".into(),
                ));
            }
            if clusters.iter().any(|c| c.name.as_str() == name) {
                return Err(problem("the name is used twice".into()));
            }
            let source = match source {
                Source::Client(given) => ClusterSource::Client(given.clone()),
                Source::Embedded(settings) => ClusterSource::Embedded(settings.clone()),
                Source::Kubeconfig { path, context } => ClusterSource::Kubeconfig {
                    path: match path {
                        Some(path) => path.clone(),
                        None => default_kubeconfig().ok_or_else(|| {
                            problem("no kubeconfig path given, and neither $KUBECONFIG nor $HOME is set".into())
                        })?,
                    },
                    context: Some(context.clone()),
                },
            };
            clusters.push(ClusterConfig {
                name: ClusterId::new(name.as_str()),
                source,
                qps: None,
                burst: None,
            });
        }
        Ok(PanoptesConfig {
            file: PathBuf::from("(built in code)"),
            runtime: RuntimeConfig {
                metrics_addr: self
                    .metrics_addr
                    .unwrap_or_else(|| DEFAULT_METRICS_ADDR.parse().expect("a valid address")),
                default_resync: self.default_resync,
                concurrent_lists: self.concurrent_lists,
                read_ahead: panoptes_actors::read_pacing::DEFAULT_READ_AHEAD,
                release_heap_after_sync: self.release_heap_after_sync,
            },
            telemetry: self.telemetry.clone().unwrap_or_default(),
            clusters,
            watches: Vec::new(),
            leader_election: None,
            sharding: None,
        })
    }
}

/// Where kubectl looks: the first file of `$KUBECONFIG`, else `~/.kube/config`.
fn default_kubeconfig() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&paths).find(|p| !p.as_os_str().is_empty())
    {
        return Some(first);
    }
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".kube").join("config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_refuse_a_bad_or_repeated_cluster_name_naming_it() {
        let bad = Runtime::builder()
            .embedded("Not_A_Label", EmbeddedCluster::default())
            .config();
        assert!(
            matches!(&bad, Err(RuntimeError::Cluster { name, .. }) if name == "Not_A_Label"),
            "{bad:?}"
        );
        let twice = Runtime::builder()
            .embedded("dev", EmbeddedCluster::default())
            .kubeconfig_context("dev", Some("/k".into()), "ctx")
            .config();
        let message = twice.unwrap_err().to_string();
        assert_eq!(message, "cluster \"dev\": the name is used twice");
    }

    #[test]
    fn should_build_the_configuration_a_file_would_load_to() {
        let config = Runtime::builder()
            .kubeconfig_context("staging", Some("/etc/kube.yaml".into()), "admin")
            .without_telemetry()
            .default_resync(Duration::from_secs(60))
            .config()
            .unwrap();
        assert_eq!(
            config.clusters[0].source,
            ClusterSource::Kubeconfig {
                path: "/etc/kube.yaml".into(),
                context: Some("admin".into())
            }
        );
        assert_eq!(config.runtime.default_resync, Some(Duration::from_secs(60)));
    }
}
