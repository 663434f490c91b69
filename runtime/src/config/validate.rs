//! From the text of `clusters.toml` (plus environment overrides) to a typed
//! [`PanoptesConfig`], failing on the first problem with its position.
//!
//! Order: TOML syntax (positions from the `toml` parser), schema (unknown keys, types — also
//! from `toml`, so they carry positions), environment overrides (merged by the `config` crate,
//! which has no positions: errors name the variables), then the meaning of each value.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use panoptes_actors::CacheMode;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::leader_elector::{ElectionTimings, TimingError};

use super::duration::parse_duration;
use super::error::{ConfigError, Origin, Position};
use super::key_path::{ENV_PREFIX, ENV_SEPARATOR, KeyPath};
use super::leader_election::{
    DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE, LeaderElectionConfig, default_identity,
};
use super::locator::Locator;
use super::raw::{
    RawCluster, RawClusterSelection, RawEmbedded, RawFile, RawLeaderElection, RawTelemetry,
    RawWatch,
};
use super::resource_ref::{ResourceRef, is_dns_label};
use super::selector::{check_field_selector, check_label_selector};
use super::{
    ClusterConfig, ClusterSelection, ClusterSource, DEFAULT_METRICS_ADDR, EmbeddedCluster,
    OtlpProtocol, PanoptesConfig, RuntimeConfig, ShardingConfig, TelemetryConfig, WatchConfig,
};

/// Bounds that catch typos (an extra zero) rather than hardware limits.
const MAX_EMBEDDED_PODS: i64 = 1_000_000;
const MAX_EMBEDDED_NAMESPACES: i64 = 10_000;
const MAX_CHURN_PER_SEC: f64 = 100_000.0;
const MAX_BURST: i64 = 100_000;

/// `overrides`: only `PANOPTES__*` variables, as given.
pub(crate) fn load(
    text: &str,
    file: &Path,
    overrides: &HashMap<String, String>,
) -> Result<PanoptesConfig, ConfigError> {
    let locator = Locator::parse(text).map_err(|e| syntax_error(text, file, &e))?;
    let checker = Checker::new(file, &locator, overrides);
    let from_file: RawFile = toml::from_str(text).map_err(|e| checker.schema_error(&e))?;
    let raw = if overrides.is_empty() {
        from_file
    } else {
        merge_overrides(text, file, overrides)?
    };
    checker.config(raw)
}

fn syntax_error(text: &str, file: &Path, error: &toml::de::Error) -> ConfigError {
    let mut offset = error.span().map_or(0, |s| s.start).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    // The last table header before the error tells the reader which section to look at.
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .unwrap_or("(top level)");
    ConfigError::Syntax {
        file: file.to_path_buf(),
        line,
        column,
        key: KeyPath::root(section),
        message: error.message().trim().to_string(),
    }
}

/// Re-reads the file through the `config` crate with the environment layered on top.
fn merge_overrides(
    text: &str,
    file: &Path,
    overrides: &HashMap<String, String>,
) -> Result<RawFile, ConfigError> {
    let environment = config::Environment::with_prefix(ENV_PREFIX)
        .separator(ENV_SEPARATOR)
        .source(Some(
            overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ));
    let merged = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(environment)
        .build()
        .and_then(|c| c.try_deserialize::<RawFile>());
    merged.map_err(|e| {
        let mut variables: Vec<&str> = overrides.keys().map(String::as_str).collect();
        variables.sort_unstable();
        ConfigError::Override {
            variables: variables.join(", "),
            file: file.to_path_buf(),
            message: e.to_string(),
        }
    })
}

/// Knows where every value came from, to build positions.
struct Checker<'a> {
    file: &'a Path,
    locator: &'a Locator,
    /// Dotted key path (`runtime.metrics_addr`) → the variable that overrides it.
    env_keys: HashMap<String, String>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a Path, locator: &'a Locator, overrides: &HashMap<String, String>) -> Self {
        let strip = ENV_PREFIX.len() + ENV_SEPARATOR.len();
        let env_keys = overrides
            .keys()
            .map(|name| {
                (
                    name[strip..].to_lowercase().replace(ENV_SEPARATOR, "."),
                    name.clone(),
                )
            })
            .collect();
        Self {
            file,
            locator,
            env_keys,
        }
    }

    fn at(&self, key: &KeyPath) -> Box<Position> {
        let origin = if let Some(variable) = self.env_keys.get(&key.dotted()) {
            Origin::Env {
                variable: variable.clone(),
                file: self.file.to_path_buf(),
            }
        } else if let Some((line, column)) = self.locator.position(key) {
            Origin::File {
                file: self.file.to_path_buf(),
                line,
                column,
            }
        } else {
            Origin::Missing {
                file: self.file.to_path_buf(),
            }
        };
        Box::new(Position {
            origin,
            key: key.clone(),
        })
    }

    fn line_of(&self, key: &KeyPath) -> usize {
        self.locator.position(key).map_or(1, |(line, _)| line)
    }

    fn schema_error(&self, error: &toml::de::Error) -> ConfigError {
        let offset = error.span().map_or(0, |s| s.start);
        let key = self.locator.path_at(offset);
        let (line, column) = self.locator.line_col(offset);
        let origin = Origin::File {
            file: self.file.to_path_buf(),
            line,
            column,
        };
        ConfigError::Schema {
            at: Box::new(Position { origin, key }),
            message: error.message().trim().into(),
        }
    }

    fn value_error(&self, key: &KeyPath, message: impl Into<String>) -> ConfigError {
        ConfigError::Value {
            at: self.at(key),
            message: message.into(),
        }
    }

    fn config(&self, raw: RawFile) -> Result<PanoptesConfig, ConfigError> {
        let runtime_key = KeyPath::root("runtime");
        let metrics_key = runtime_key.key("metrics_addr");
        let metrics_text = raw
            .runtime
            .metrics_addr
            .as_deref()
            .unwrap_or(DEFAULT_METRICS_ADDR);
        let metrics_addr: SocketAddr = metrics_text.trim().parse().map_err(|_| {
            self.value_error(
                &metrics_key,
                format!("\"{metrics_text}\" is not a socket address; write IP:PORT, e.g. \"127.0.0.1:9464\""),
            )
        })?;
        let default_resync = self.resync(
            raw.runtime.default_resync.as_deref(),
            &runtime_key.key("default_resync"),
        )?;
        let concurrent_lists = match raw.runtime.concurrent_lists {
            None => None,
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => {
                return Err(self.value_error(
                    &runtime_key.key("concurrent_lists"),
                    format!("{n} lists at once would never list; write 1 or more, or leave it out for no limit"),
                ));
            }
        };
        let read_ahead = match raw.runtime.read_ahead {
            None => panoptes_actors::read_pacing::DEFAULT_READ_AHEAD,
            Some(n) if n >= 0 => n as usize,
            Some(n) => {
                return Err(self.value_error(
                    &runtime_key.key("read_ahead"),
                    format!("{n} events is not a backlog; write 0 (never pause a watch) or more"),
                ));
            }
        };
        let runtime = RuntimeConfig {
            metrics_addr,
            default_resync,
            concurrent_lists,
            read_ahead,
            release_heap_after_sync: raw.runtime.release_heap_after_sync.unwrap_or(false),
        };
        let telemetry = self.telemetry(raw.telemetry)?;

        if raw.clusters.is_empty() {
            return Err(ConfigError::NoClusters {
                file: self.file.to_path_buf(),
            });
        }
        let mut clusters: Vec<ClusterConfig> = Vec::with_capacity(raw.clusters.len());
        for (i, cluster) in raw.clusters.into_iter().enumerate() {
            let key = KeyPath::root("clusters").index(i);
            let checked = self.cluster(cluster, &key)?;
            if let Some(first) = clusters.iter().position(|c| c.name == checked.name) {
                return Err(ConfigError::DuplicateCluster {
                    at: self.at(&key.key("name")),
                    name: checked.name.to_string(),
                    first_line: self.line_of(&KeyPath::root("clusters").index(first).key("name")),
                });
            }
            clusters.push(checked);
        }
        let watches = raw
            .watch
            .into_iter()
            .enumerate()
            .map(|(i, watch)| {
                self.watch(
                    watch,
                    &KeyPath::root("watch").index(i),
                    &clusters,
                    default_resync,
                )
            })
            .collect::<Result<_, _>>()?;
        let leader_election =
            self.lease_table(raw.leader_election, &clusters, "leader_election")?;
        let sharding = self
            .lease_table(raw.sharding, &clusters, "sharding")?
            .map(ShardingConfig::from);
        Ok(PanoptesConfig {
            file: self.file.to_path_buf(),
            runtime,
            telemetry,
            clusters,
            watches,
            leader_election,
            sharding,
        })
    }

    /// A duration where zero (or leaving it out) means off.
    fn resync(&self, text: Option<&str>, key: &KeyPath) -> Result<Option<Duration>, ConfigError> {
        let Some(text) = text else { return Ok(None) };
        let duration = parse_duration(text).map_err(|source| ConfigError::Duration {
            at: self.at(key),
            source,
        })?;
        Ok((!duration.is_zero()).then_some(duration))
    }

    /// `[leader_election]` or `[sharding]` (named by `table`: same keys, same checks):
    /// `None` unless `enabled = true`; then the cluster must exist and the timings be safe.
    fn lease_table(
        &self,
        raw: RawLeaderElection,
        clusters: &[ClusterConfig],
        table: &str,
    ) -> Result<Option<LeaderElectionConfig>, ConfigError> {
        let key = KeyPath::root(table);
        if raw.enabled != Some(true) {
            return Ok(None);
        }
        let known = || {
            let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
            names.join(", ")
        };
        let cluster = match raw.cluster {
            None => {
                return Err(self.value_error(
                    &key.key("cluster"),
                    format!(
                        "is required when enabled: name the [[clusters]] entry that holds the Lease (known: {})",
                        known()
                    ),
                ));
            }
            Some(name) => {
                let id = ClusterId::from(name.as_str());
                if !clusters.iter().any(|c| c.name == id) {
                    return Err(ConfigError::UnknownCluster {
                        at: self.at(&key.key("cluster")),
                        name,
                        known: known(),
                    });
                }
                id
            }
        };
        let namespace = raw
            .namespace
            .unwrap_or_else(|| DEFAULT_LEASE_NAMESPACE.into());
        if !is_dns_label(&namespace) {
            return Err(self.value_error(
                &key.key("namespace"),
                format!("\"{namespace}\" is not a namespace name (lowercase letters, digits, '-')"),
            ));
        }
        let name = raw.name.unwrap_or_else(|| DEFAULT_LEASE_NAME.into());
        if !is_dns_subdomain(&name) {
            return Err(self.value_error(
                &key.key("name"),
                format!("\"{name}\" is not a Lease name (lowercase letters, digits, '-' and '.', at most 253)"),
            ));
        }
        let identity = raw.identity.unwrap_or_else(default_identity);
        if identity.trim().is_empty() {
            return Err(self.value_error(&key.key("identity"), "must not be empty"));
        }
        let defaults = ElectionTimings::default();
        let (lease_written, renew_written, retry_written) = (
            raw.lease_duration.is_some(),
            raw.renew_deadline.is_some(),
            raw.retry_period.is_some(),
        );
        let duration = |text: Option<String>, field: &str, default| -> Result<_, ConfigError> {
            match text {
                None => Ok(default),
                Some(text) => parse_duration(&text).map_err(|source| ConfigError::Duration {
                    at: self.at(&key.key(field)),
                    source,
                }),
            }
        };
        let timings = ElectionTimings {
            lease_duration: duration(
                raw.lease_duration,
                "lease_duration",
                defaults.lease_duration,
            )?,
            renew_deadline: duration(
                raw.renew_deadline,
                "renew_deadline",
                defaults.renew_deadline,
            )?,
            retry_period: duration(raw.retry_period, "retry_period", defaults.retry_period)?,
        };
        if let Err(error) = timings.validate() {
            let field = match &error {
                TimingError::Zero(field) => field,
                TimingError::LeaseNotWholeSeconds(_) => "lease_duration",
                // Point at the value written (in the file or the environment), not a default.
                TimingError::LeaseNotLongerThanRenew { .. } if renew_written && !lease_written => {
                    "renew_deadline"
                }
                TimingError::LeaseNotLongerThanRenew { .. } => "lease_duration",
                TimingError::RenewNotLongerThanRetry { .. } if retry_written && !renew_written => {
                    "retry_period"
                }
                TimingError::RenewNotLongerThanRetry { .. } => "renew_deadline",
            };
            return Err(self.value_error(&key.key(field), error.to_string()));
        }
        Ok(Some(LeaderElectionConfig {
            cluster,
            namespace,
            name,
            identity,
            timings,
        }))
    }

    fn telemetry(&self, raw: RawTelemetry) -> Result<TelemetryConfig, ConfigError> {
        let key = KeyPath::root("telemetry");
        let otlp_endpoint = raw
            .otlp_endpoint
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty());
        if let Some(endpoint) = &otlp_endpoint {
            let uri: Result<http::Uri, _> = endpoint.parse();
            let usable = uri.is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !usable {
                return Err(self.value_error(
                    &key.key("otlp_endpoint"),
                    format!("\"{endpoint}\" is not an http(s) URL, e.g. \"http://localhost:4317\""),
                ));
            }
        }
        let otlp_protocol = match raw.otlp_protocol.as_deref().map(str::trim) {
            None | Some("grpc") => OtlpProtocol::Grpc,
            Some("http") | Some("http/protobuf") => OtlpProtocol::Http,
            Some(other) => {
                return Err(self.value_error(
                    &key.key("otlp_protocol"),
                    format!("\"{other}\" is not a protocol; use \"grpc\" or \"http\""),
                ));
            }
        };
        let service_name = raw.service_name.unwrap_or_else(|| "panoptes".into());
        if service_name.trim().is_empty() {
            return Err(self.value_error(&key.key("service_name"), "must not be empty"));
        }
        let sampling_ratio = raw.sampling_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sampling_ratio) {
            return Err(self.value_error(
                &key.key("sampling_ratio"),
                format!("{sampling_ratio} is outside 0.0..=1.0 (1.0 keeps every trace)"),
            ));
        }
        let log = raw.log.unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log) {
            return Err(self.value_error(
                &key.key("log"),
                format!("\"{log}\" is not a log filter ({e}); e.g. \"info,panoptes_actors=debug\""),
            ));
        }
        Ok(TelemetryConfig {
            otlp_endpoint,
            otlp_protocol,
            service_name,
            sampling_ratio,
            log,
        })
    }

    fn cluster(&self, raw: RawCluster, key: &KeyPath) -> Result<ClusterConfig, ConfigError> {
        if !is_dns_label(&raw.name) {
            return Err(self.value_error(
                &key.key("name"),
                format!(
                    "\"{}\" is not a valid cluster name: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
                    raw.name
                ),
            ));
        }
        let source = self.source(&raw, key)?;
        let qps = match raw.qps {
            None => None,
            Some(q) if q.is_finite() && q > 0.0 => Some(q as f32),
            Some(q) => {
                return Err(self.value_error(
                    &key.key("qps"),
                    format!("{q} must be a positive number of requests per second"),
                ));
            }
        };
        let burst = match raw.burst {
            None => None,
            Some(_) if qps.is_none() => {
                return Err(self.value_error(
                    &key.key("burst"),
                    "applies only together with qps (the refill rate); add qps = 50.0 or remove burst",
                ));
            }
            Some(b) if (1..=MAX_BURST).contains(&b) => Some(b as u32),
            Some(b) => {
                return Err(self.value_error(
                    &key.key("burst"),
                    format!("{b} must be between 1 and {MAX_BURST}"),
                ));
            }
        };
        Ok(ClusterConfig {
            name: ClusterId::from(raw.name),
            source,
            qps,
            burst,
        })
    }

    fn source(&self, raw: &RawCluster, key: &KeyPath) -> Result<ClusterSource, ConfigError> {
        let in_cluster = raw.in_cluster == Some(true);
        let chosen: Vec<&str> = [
            raw.kubeconfig.as_ref().map(|_| "kubeconfig"),
            in_cluster.then_some("in_cluster"),
            raw.embedded.as_ref().map(|_| "embedded"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match chosen.as_slice() {
            [] => {
                return Err(ConfigError::ClusterSource {
                    at: self.at(key),
                    problem: format!(
                        "cluster \"{}\" has no source; set one of kubeconfig = \"PATH\", in_cluster = true, or embedded = {{ pods = 100 }}",
                        raw.name
                    ),
                });
            }
            [_] => {}
            [first, second, ..] => {
                return Err(ConfigError::ClusterSource {
                    at: self.at(&key.key(second)),
                    problem: format!(
                        "cluster \"{}\" sets both {first} and {second}; keep exactly one source",
                        raw.name
                    ),
                });
            }
        }
        if raw.context.is_some() && raw.kubeconfig.is_none() {
            return Err(ConfigError::ClusterSource {
                at: self.at(&key.key("context")),
                problem: "context applies only with kubeconfig = \"PATH\"".into(),
            });
        }
        if let Some(path) = &raw.kubeconfig {
            return self.kubeconfig(path, raw.context.as_deref(), key);
        }
        if in_cluster {
            return Ok(ClusterSource::InCluster);
        }
        let defaults = RawEmbedded::default();
        let embedded = raw.embedded.as_ref().unwrap_or(&defaults);
        self.embedded(embedded, &key.key("embedded"))
            .map(ClusterSource::Embedded)
    }

    fn kubeconfig(
        &self,
        written: &str,
        context: Option<&str>,
        key: &KeyPath,
    ) -> Result<ClusterSource, ConfigError> {
        let path_key = key.key("kubeconfig");
        let path = resolve_path(self.file, written);
        if !path.is_file() {
            return Err(ConfigError::KubeconfigMissing {
                at: self.at(&path_key),
                path,
            });
        }
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).map_err(|e| {
            ConfigError::KubeconfigUnreadable {
                at: self.at(&path_key),
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
        let names: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        match context {
            Some(wanted) if !names.contains(&wanted) => Err(ConfigError::ContextMissing {
                at: self.at(&key.key("context")),
                context: wanted.into(),
                path,
                available: if names.is_empty() {
                    "no contexts".into()
                } else {
                    names.join(", ")
                },
            }),
            None if kubeconfig
                .current_context
                .as_deref()
                .unwrap_or("")
                .is_empty() =>
            {
                Err(ConfigError::ClusterSource {
                    at: self.at(&path_key),
                    problem: format!(
                        "kubeconfig {} has no current-context; add context = \"NAME\" (it has: {})",
                        path.display(),
                        names.join(", ")
                    ),
                })
            }
            _ => Ok(ClusterSource::Kubeconfig {
                path,
                context: context.map(String::from),
            }),
        }
    }

    fn embedded(&self, raw: &RawEmbedded, key: &KeyPath) -> Result<EmbeddedCluster, ConfigError> {
        let pods = raw.pods.unwrap_or(100);
        if !(0..=MAX_EMBEDDED_PODS).contains(&pods) {
            return Err(self.value_error(
                &key.key("pods"),
                format!("{pods} must be between 0 and {MAX_EMBEDDED_PODS}"),
            ));
        }
        let namespaces = raw.namespaces.unwrap_or(1);
        if !(1..=MAX_EMBEDDED_NAMESPACES).contains(&namespaces) {
            return Err(self.value_error(
                &key.key("namespaces"),
                format!("{namespaces} must be between 1 and {MAX_EMBEDDED_NAMESPACES}"),
            ));
        }
        let churn_per_sec = raw.churn_per_sec.unwrap_or(0.0);
        if !(churn_per_sec.is_finite() && (0.0..=MAX_CHURN_PER_SEC).contains(&churn_per_sec)) {
            return Err(self.value_error(
                &key.key("churn_per_sec"),
                format!(
                    "{churn_per_sec} must be between 0 and {MAX_CHURN_PER_SEC} pod writes per second"
                ),
            ));
        }
        Ok(EmbeddedCluster {
            pods: pods as u32,
            namespaces: namespaces as u32,
            churn_per_sec,
        })
    }

    fn watch(
        &self,
        raw: RawWatch,
        key: &KeyPath,
        clusters: &[ClusterConfig],
        default_resync: Option<Duration>,
    ) -> Result<WatchConfig, ConfigError> {
        let resource: ResourceRef =
            raw.resource
                .parse()
                .map_err(|source| ConfigError::Resource {
                    at: self.at(&key.key("resource")),
                    source,
                })?;
        let clusters_key = key.key("clusters");
        let selection = match raw.clusters {
            None => ClusterSelection::All,
            Some(RawClusterSelection::One(star)) if star == "*" => ClusterSelection::All,
            Some(RawClusterSelection::One(name)) => {
                return Err(self.value_error(
                    &clusters_key,
                    format!("write clusters = \"*\" for all clusters, or a list: clusters = [\"{name}\"]"),
                ));
            }
            Some(RawClusterSelection::Many(names)) if names.is_empty() => {
                return Err(self.value_error(
                    &clusters_key,
                    "is an empty list; name at least one cluster, or write \"*\" for all",
                ));
            }
            Some(RawClusterSelection::Many(names)) => {
                let mut chosen = Vec::with_capacity(names.len());
                for (i, name) in names.into_iter().enumerate() {
                    let id = ClusterId::from(name.as_str());
                    if !clusters.iter().any(|c| c.name == id) {
                        let known: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
                        return Err(ConfigError::UnknownCluster {
                            at: self.at(&clusters_key.index(i)),
                            name,
                            known: known.join(", "),
                        });
                    }
                    chosen.push(id);
                }
                ClusterSelection::Named(chosen)
            }
        };
        if let Some(namespace) = &raw.namespace
            && !is_dns_label(namespace)
        {
            return Err(self.value_error(
                &key.key("namespace"),
                format!("\"{namespace}\" is not a namespace name (lowercase letters, digits, '-')"),
            ));
        }
        let selector_error = |k: &str, source| ConfigError::Selector {
            at: self.at(&key.key(k)),
            source,
        };
        if let Some(selector) = &raw.label_selector {
            check_label_selector(selector).map_err(|e| selector_error("label_selector", e))?;
        }
        if let Some(selector) = &raw.field_selector {
            check_field_selector(selector).map_err(|e| selector_error("field_selector", e))?;
        }
        let resync = match raw.resync.as_deref() {
            Some(text) => self.resync(Some(text), &key.key("resync"))?,
            None => default_resync,
        };
        let cache = match raw.cache.as_deref() {
            None => CacheMode::default(),
            Some(text) => text
                .parse::<CacheMode>()
                .map_err(|e| self.value_error(&key.key("cache"), e.to_string()))?,
        };
        Ok(WatchConfig {
            resource,
            clusters: selection,
            namespace: raw.namespace,
            label_selector: raw.label_selector,
            field_selector: raw.field_selector,
            resync,
            cache,
        })
    }
}

/// `~/x` from `$HOME`; relative paths from the configuration file's folder, so the same file
/// works whatever the working directory.
fn resolve_path(config_file: &Path, written: &str) -> PathBuf {
    if let Some(rest) = written.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let path = PathBuf::from(written);
    if path.is_absolute() {
        return path;
    }
    match config_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path,
    }
}

/// A Kubernetes object name (RFC 1123 subdomain): lowercase alphanumerics, '-' and '.',
/// starting and ending alphanumeric, at most 253 characters.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && !name.is_empty() && name.split('.').all(is_dns_label)
}
