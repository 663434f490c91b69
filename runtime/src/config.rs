//! `clusters.toml`: which clusters to reach, what to watch on them, and how to observe the
//! process — loaded, checked and typed before anything connects.
//!
//! # Loading
//!
//! [`PanoptesConfig::load`] reads the file (default [`DEFAULT_CONFIG_PATH`], or `--config
//! PATH`), then applies environment overrides through the `config` crate: a variable
//! `PANOPTES__<TABLE>__<KEY>` replaces `<key>` of `[<table>]`, e.g.
//! `PANOPTES__TELEMETRY__OTLP_ENDPOINT=http://localhost:4317` or
//! `PANOPTES__RUNTIME__METRICS_ADDR=0.0.0.0:9464`. Overrides are meant for `[runtime]`,
//! `[telemetry]`, `[leader_election]` (`PANOPTES__LEADER_ELECTION__ENABLED=true`) and
//! `[sharding]` (`PANOPTES__SHARDING__IDENTITY=replica-a`);
//! clusters and watches live in the file.
//!
//! # Errors
//!
//! Every [`ConfigError`] names the file, the key and the line and column it was written at
//! (`clusters.toml:12:1: [[clusters]] #2 name: "east" is used twice (first at line 5)`), or the
//! environment variable that set the value. Unknown keys are errors, not ignored, so a typo
//! cannot silently fall back to a default. Kubeconfig files and contexts are checked at load
//! time, so a missing file is reported with the line that named it rather than at connect time.
//!
//! # Example
//!
//! ```
//! use panoptes_runtime::config::{ClusterSource, PanoptesConfig};
//!
//! let text = r#"
//!     [[clusters]]
//!     name = "dev"
//!     embedded = { pods = 10 }
//!
//!     [[watch]]
//!     resource = "v1/pods"
//! "#;
//! let config = PanoptesConfig::parse(text, "clusters.toml".as_ref(), std::iter::empty()).unwrap();
//! assert!(matches!(config.clusters[0].source, ClusterSource::Embedded(_)));
//! assert_eq!(config.watches[0].resource.plural, "pods");
//! ```

mod defaults;
mod duration;
mod error;
mod given_client;
mod key_path;
mod leader_election;
mod locator;
mod raw;
mod resource_ref;
mod selector;
mod sharding;
mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use panoptes_actors::CacheMode;
use panoptes_actors::ids::ClusterId;

pub use duration::{DurationError, parse_duration};
pub use error::{ConfigError, Origin, Position};
pub use given_client::GivenClient;
pub use key_path::{ENV_PREFIX, ENV_SEPARATOR, KeyPath, Segment};
pub use leader_election::{
    DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE, LeaderElectionConfig, default_identity,
};
pub(crate) use resource_ref::is_dns_label;
pub use resource_ref::{ResourceRef, ResourceRefError};
pub use selector::{SelectorError, SelectorKind, check_field_selector, check_label_selector};
pub use sharding::ShardingConfig;

/// Where `panoptes` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "clusters.toml";

/// `--config PATH` (or `PANOPTES_CONFIG`), for the `panoptes` binary and the examples to
/// flatten into their arguments: `#[command(flatten)] config: ConfigArgs`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ConfigArgs {
    /// Path of the configuration file.
    #[arg(long = "config", value_name = "PATH", env = "PANOPTES_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub path: PathBuf,
}

impl ConfigArgs {
    /// Loads the file these arguments name, with overrides from the process environment.
    pub fn load(&self) -> Result<PanoptesConfig, ConfigError> {
        PanoptesConfig::load(&self.path)
    }
}

/// A loaded, validated `clusters.toml` with its environment overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PanoptesConfig {
    /// The file it was loaded from; relative kubeconfig paths were resolved against its folder.
    pub file: PathBuf,
    /// `[runtime]`: the metrics address and the default resync.
    pub runtime: RuntimeConfig,
    /// `[telemetry]`: logging and OTLP trace export.
    pub telemetry: TelemetryConfig,
    /// At least one; names are unique.
    pub clusters: Vec<ClusterConfig>,
    /// `[[watch]]` entries, in file order; may be empty (nothing is watched).
    pub watches: Vec<WatchConfig>,
    /// `[leader_election]` when enabled; `None` means every replica acts.
    pub leader_election: Option<LeaderElectionConfig>,
    /// `[sharding]` when enabled; `None` means this replica watches every cluster.
    pub sharding: Option<ShardingConfig>,
}

/// `[runtime]`: process-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` are served. Default [`DEFAULT_METRICS_ADDR`].
    pub metrics_addr: SocketAddr,
    /// Resync period for watches that set none; `None` (the default) turns resync off.
    pub default_resync: Option<Duration>,
    /// At most this many initial lists (and relists) gather at once, across every cluster
    /// and resource (`panoptes_actors::list_gate`); `None` (the default): no limit.
    pub concurrent_lists: Option<usize>,
    /// A watch waits while every handler of its pipeline is this many events behind
    /// (`panoptes_actors::read_pacing`); default 1024, 0: never wait (client-go).
    pub read_ahead: usize,
    /// Give the heap a first sync freed back to the OS (`panoptes_actors::heap_release`,
    /// Linux glibc): far lower RSS for large caches, a one-off stall of the process per sync.
    /// Off by default.
    pub release_heap_after_sync: bool,
}

/// Loopback only by default: metrics should not be exposed beyond the host unless asked for.
/// 9464 is the port OpenTelemetry's Prometheus exporter made customary.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// Wire protocol of the OTLP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC, conventionally port 4317.
    Grpc,
    /// OTLP/HTTP with protobuf bodies, conventionally port 4318, path `/v1/traces`.
    Http,
}

/// `[telemetry]`: logs and traces.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP collector URL (`http://localhost:4317`); `None` exports no traces.
    pub otlp_endpoint: Option<String>,
    /// How spans reach the collector; default gRPC.
    pub otlp_protocol: OtlpProtocol,
    /// `service.name` of exported spans. Default `"panoptes"`.
    pub service_name: String,
    /// Fraction of root traces kept, in `0.0..=1.0`; children follow their parent's decision.
    pub sampling_ratio: f64,
    /// `tracing_subscriber::EnvFilter` directive, e.g. `"info,panoptes_actors=debug"`.
    /// `RUST_LOG`, when set, replaces it ([`crate::log_filter`]).
    pub log: String,
}

/// `[[clusters]]`: one cluster and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Unique, DNS-label-like; every event and metric is labelled with it.
    pub name: ClusterId,
    /// How to reach it: kubeconfig, in-cluster or embedded.
    pub source: ClusterSource,
    /// Client-side request rate (requests per second, client-go's `QPS`); `None` is unlimited.
    pub qps: Option<f32>,
    /// Requests allowed at once before `qps` applies (client-go's `Burst`); only with `qps`.
    pub burst: Option<u32>,
}

/// How a cluster is reached; exactly one per `[[clusters]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterSource {
    /// A kubeconfig file (resolved to an absolute path) and optionally one of its contexts
    /// (else its `current-context`). Both were checked to exist at load time.
    Kubeconfig {
        /// The kubeconfig path, resolved against the configuration file's folder.
        path: PathBuf,
        /// The context asked for.
        context: Option<String>,
    },
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
    InCluster,
    /// A simulated cluster started in this process (`panoptes-sim`).
    Embedded(EmbeddedCluster),
    /// A `kube::Client` built by the program (never from a file; see
    /// [`RuntimeBuilder::cluster`](crate::RuntimeBuilder::cluster)).
    Client(GivenClient),
}

/// `embedded = { pods = 200, namespaces = 2, churn_per_sec = 5.0 }`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedCluster {
    /// Pods seeded at start. Default 100.
    pub pods: u32,
    /// Namespaces the pods are spread over. Default 1.
    pub namespaces: u32,
    /// Pod writes per second once running, all kinds together, spread evenly over the
    /// namespaces; default 0 (static). Each write creates a pod (`Pending`), deletes one
    /// (force delete: MODIFIED then DELETED), or updates one as its kubelet or a controller
    /// would: starts it (`Running`, `Ready=True`), flips its readiness, restarts its `app`
    /// container (`restartCount` + 1, `lastState.terminated`), ends it (`Succeeded`, or
    /// `Failed` when evicted) or patches an annotation. The live count stays around
    /// `pods`; `panoptes_sim::churn` has the exact mix.
    pub churn_per_sec: f64,
}

/// `clusters = "*"` or a list of names, on a `[[watch]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSelection {
    /// Every configured cluster (`"*"`, the default).
    All,
    /// These clusters, each known to exist.
    Named(Vec<ClusterId>),
}

/// `[[watch]]`: a resource to keep informed about on a set of clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// `resource = "[group/]version/plural"`, e.g. `"apps/v1/deployments"`.
    pub resource: ResourceRef,
    /// Which clusters; default all.
    pub clusters: ClusterSelection,
    /// Only this namespace; `None` watches all namespaces.
    pub namespace: Option<String>,
    /// Syntax-checked; passed verbatim to the apiserver.
    pub label_selector: Option<String>,
    /// Syntax-checked; passed verbatim to the apiserver.
    pub field_selector: Option<String>,
    /// This watch's resync, else `[runtime] default_resync`; `None` is off.
    pub resync: Option<Duration>,
    /// `cache = "typed" | "compact" | "metadata"` (default typed); `"metadata"` caches
    /// `PartialObjectMetadata` objects only (kind `PartialObjectMetadata`, apiVersion
    /// `meta.k8s.io/v1`).
    pub cache: CacheMode,
}

impl PanoptesConfig {
    /// Loads `path` with overrides from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Loads `path` with overrides from `env` instead of the process environment (tests, and
    /// callers that sanitise their environment). Only `PANOPTES__*` variables are looked at.
    pub fn load_with_env(
        path: impl AsRef<Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = path.as_ref();
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(&text, file, env)
    }

    /// Parses `text` as if read from `file` (used in messages and to resolve relative paths).
    pub fn parse(
        text: &str,
        file: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let overrides: HashMap<String, String> = env
            .into_iter()
            .filter(|(name, _)| is_override_variable(name))
            .collect();
        validate::load(text, file, &overrides)
    }

    /// The clusters a watch applies to, in configuration order.
    pub fn clusters_of<'a>(&'a self, watch: &'a WatchConfig) -> Vec<&'a ClusterConfig> {
        match &watch.clusters {
            ClusterSelection::All => self.clusters.iter().collect(),
            ClusterSelection::Named(names) => self
                .clusters
                .iter()
                .filter(|c| names.contains(&c.name))
                .collect(),
        }
    }
}

/// `PANOPTES__...`, matched without regard to case as the `config` crate does.
fn is_override_variable(name: &str) -> bool {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    name.len() > prefix.len()
        && name
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(&prefix))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        config: ConfigArgs,
    }

    #[test]
    fn should_default_to_clusters_toml_and_take_an_explicit_path() {
        let default = Cli::try_parse_from(["panoptes"]).unwrap();
        // PANOPTES_CONFIG may be set by whoever runs the tests; only assert without it.
        if std::env::var_os("PANOPTES_CONFIG").is_none() {
            assert_eq!(default.config.path, PathBuf::from(DEFAULT_CONFIG_PATH));
        }
        let explicit = Cli::try_parse_from(["panoptes", "--config", "/etc/panoptes.toml"]).unwrap();
        assert_eq!(explicit.config.path, PathBuf::from("/etc/panoptes.toml"));
    }
}
