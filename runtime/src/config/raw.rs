//! The file schema of `clusters.toml` exactly as written: every key optional where the file
//! may leave it out, strings where the value has its own grammar (durations, addresses,
//! resources), unknown keys rejected. `validate.rs` turns it into the typed
//! [`PanoptesConfig`](super::PanoptesConfig); both the `toml` crate (for positions) and the
//! `config` crate (for environment overrides) deserialize this same shape.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub clusters: Vec<RawCluster>,
    #[serde(default)]
    pub watch: Vec<RawWatch>,
    #[serde(default)]
    pub leader_election: RawLeaderElection,
    /// `[sharding]`: the same keys as `[leader_election]`.
    #[serde(default)]
    pub sharding: RawLeaderElection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuntime {
    pub metrics_addr: Option<String>,
    pub default_resync: Option<String>,
    /// Signed so that a negative number gets our message rather than serde's.
    pub concurrent_lists: Option<i64>,
    pub release_heap_after_sync: Option<bool>,
    /// Signed for the same reason.
    pub read_ahead: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<String>,
    pub service_name: Option<String>,
    pub sampling_ratio: Option<f64>,
    pub log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub name: String,
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub in_cluster: Option<bool>,
    pub embedded: Option<RawEmbedded>,
    pub qps: Option<f64>,
    /// Signed so that a negative number gets our message rather than serde's.
    pub burst: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmbedded {
    pub pods: Option<i64>,
    pub namespaces: Option<i64>,
    pub churn_per_sec: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWatch {
    pub resource: String,
    pub clusters: Option<RawClusterSelection>,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resync: Option<String>,
    pub cache: Option<String>,
}

/// `clusters = "*"` or `clusters = ["east", "west"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawClusterSelection {
    One(String),
    Many(Vec<String>),
}

/// `[leader_election]` and `[sharding]` (same keys); durations as strings like every other
/// duration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLeaderElection {
    pub enabled: Option<bool>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub identity: Option<String>,
    pub lease_duration: Option<String>,
    pub renew_deadline: Option<String>,
    pub retry_period: Option<String>,
}
