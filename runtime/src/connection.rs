//! Cluster connections: one `kube::Client` per `[[clusters]]` entry, and the
//! [`ClusterIdentity`] that tells when two entries are really the same cluster and user.
//!
//! Sources map onto kube's loaders: `kubeconfig` + `context` →
//! `Kubeconfig::read_from` + `Config::from_custom_kubeconfig`; `in_cluster` →
//! `Config::incluster`; `embedded` → [`connect_with_kubeconfig_yaml`] with the kubeconfig the
//! embedded server hands out (this module does not start it).
//!
//! # Identity
//!
//! The shared informer registry keys pipelines by cluster identity, so two entries reaching
//! the same API server with the same credential and the same TLS trust share one watch (see
//! ARCHITECTURE.md, "Registry"). [`ClusterIdentity`] is (server URL, user) where the user is
//! the kubeconfig user name plus a SHA-256 fingerprint of every credential field (token,
//! client key, password, exec command, impersonation) and of how the server is trusted (CA
//! certificates, `insecure-skip-tls-verify`, TLS server name, proxy): an entry that verifies
//! the server must never be served by a connection that did not. The secret itself is never
//! stored, printed or logged.
//!
//! # TLS and secrets
//!
//! The server's certificate is verified against the kubeconfig's CA (or the system roots)
//! unless the kubeconfig sets `insecure-skip-tls-verify: true`; then one warning naming the
//! cluster is logged when its connection is made. Tokens, client keys and exec-plugin output
//! stay inside kube's client: nothing here logs, prints or `Debug`s them.
//!
//! # Rate limits
//!
//! With `qps` set, every request of the cluster's client passes client-go's token bucket
//! ([`RateLimitLayer`], `burst` defaulting to `ceil(qps)`); without it the client is unlimited,
//! as kube's clients are by default.

use std::fmt;
use std::path::PathBuf;

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use panoptes_actors::ids::ClusterId;
use thiserror::Error;

use crate::config::{ClusterConfig, ClusterSource};
use crate::rate_limit::RateLimitLayer;

/// Who a connection talks to and as whom, without any secret.
///
/// Equal when the server URL and the fingerprint of credential and TLS trust are equal; the
/// user *name* is a kubeconfig-local label and does not take part (two files may name one
/// token differently).
#[derive(Clone)]
pub struct ClusterIdentity {
    server: String,
    user: String,
    /// SHA-256 of the canonical JSON of the credential fields and the TLS trust settings.
    fingerprint: [u8; 32],
}

impl ClusterIdentity {
    /// The identity `config` authenticates as; `user` is the name it goes by (kubeconfig user).
    pub fn of(config: &kube::Config, user: &str) -> Self {
        Self {
            server: config
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_string(),
            user: user.to_string(),
            fingerprint: fingerprint(config),
        }
    }

    /// The identity of a client the program built itself (its server and credential are
    /// unknown): `given-client:<cluster>` with `number` as its fingerprint, so it is shared
    /// with nothing else.
    pub fn given(cluster: &ClusterId, number: u64) -> Self {
        let mut fingerprint = [0; 32];
        fingerprint[..8].copy_from_slice(&number.to_be_bytes());
        Self {
            server: format!("given-client:{cluster}"),
            user: "given".to_string(),
            fingerprint,
        }
    }

    /// The API server URL, e.g. `https://127.0.0.1:6443`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The kubeconfig user name (or `in-cluster` for a service account).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// First 8 bytes of the fingerprint in hex: enough to tell credentials apart in logs.
    pub fn short_fingerprint(&self) -> String {
        self.fingerprint[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl PartialEq for ClusterIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.server == other.server && self.fingerprint == other.fingerprint
    }
}

impl Eq for ClusterIdentity {}

impl std::hash::Hash for ClusterIdentity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.server.hash(state);
        self.fingerprint.hash(state);
    }
}

/// `alice@https://10.0.0.1:6443 (credential sha256:0a1b2c3d4e5f6071)`.
impl fmt::Display for ClusterIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} (credential sha256:{})",
            self.user,
            self.server,
            self.short_fingerprint()
        )
    }
}

impl fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterIdentity")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("fingerprint", &self.short_fingerprint())
            .finish()
    }
}

/// Hashes every credential field and the TLS trust settings of `config` in a canonical form
/// (object keys sorted), so equal credentials give equal fingerprints whatever map order they
/// were read in.
fn fingerprint(config: &kube::Config) -> [u8; 32] {
    // kube serializes secret fields in clear (that is how it writes kubeconfigs); the bytes
    // only ever reach the hash.
    let auth = serde_json::to_value(&config.auth_info).unwrap_or(serde_json::Value::Null);
    let root_certs: Vec<String> = config
        .root_cert
        .iter()
        .flatten()
        .map(|der| der.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let value = serde_json::json!({
        "auth": auth,
        "tls": {
            "root_certs": root_certs,
            "root_cert_file": config.root_cert_file,
            "accept_invalid_certs": config.accept_invalid_certs,
            "tls_server_name": config.tls_server_name,
            "proxy_url": config.proxy_url.as_ref().map(ToString::to_string),
        },
    });
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(digest.as_ref());
    fingerprint
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().filter(|(_, v)| !v.is_null()).collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (key, value) in entries {
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A client for one configured cluster.
#[derive(Clone)]
pub struct ClusterConnection {
    /// The cluster name as written.
    pub name: ClusterId,
    /// The client for its requests (rate limited as `qps`/`burst` say).
    pub client: kube::Client,
    /// Server and credential fingerprint: connections with equal identities share informers.
    pub identity: ClusterIdentity,
    /// The token bucket the client's requests pass; `None` is unlimited.
    pub rate_limit: Option<RateLimitLayer>,
}

impl fmt::Debug for ClusterConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConnection")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

/// Connecting one `[[clusters]]` entry failed; each variant names the entry.
#[derive(Debug, Error)]
pub enum ConnectionError {
    /// The kubeconfig file could not be loaded.
    #[error("cluster \"{cluster}\": cannot load kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The `[[clusters]]` entry's name.
        cluster: ClusterId,
        /// The kubeconfig path, resolved against the configuration file's folder.
        path: PathBuf,
        #[source]
        /// kube's error.
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig the embedded cluster wrote is unusable (a bug).
    #[error("cluster \"{cluster}\": the embedded cluster's kubeconfig is unusable: {source}")]
    EmbeddedKubeconfig {
        /// The `[[clusters]]` entry's name.
        cluster: ClusterId,
        #[source]
        /// kube's error.
        source: kube::config::KubeconfigError,
    },
    #[error(
        "cluster \"{cluster}\": in_cluster = true, but this is not a pod with a service account: {source}"
    )]
    /// `in_cluster = true` outside a pod with a service account.
    InCluster {
        /// The `[[clusters]]` entry's name.
        cluster: ClusterId,
        #[source]
        /// kube's error.
        source: kube::config::InClusterError,
    },
    /// kube could not build a client from the config.
    #[error("cluster \"{cluster}\": cannot build a client for {server}: {source}")]
    Client {
        /// The `[[clusters]]` entry's name.
        cluster: ClusterId,
        /// The server URL.
        server: String,
        #[source]
        /// kube's error.
        source: kube::Error,
    },
    #[error(
        "cluster \"{cluster}\" is embedded: start it and pass its kubeconfig to connect_with_kubeconfig_yaml"
    )]
    /// An embedded cluster was connected before it was started.
    EmbeddedNotStarted {
        /// The `[[clusters]]` entry's name.
        cluster: ClusterId,
    },
}

/// Connects a kubeconfig, in-cluster or given-client entry. Must run inside a tokio runtime (kube's client
/// spawns its connection tasks there). Nothing is sent to the server yet.
pub async fn connect(cluster: &ClusterConfig) -> Result<ClusterConnection, ConnectionError> {
    connect_as(cluster, None).await
}

/// [`connect`], the client sending `user_agent` as `User-Agent` when given (a sharded
/// replica names itself so). A given client (`ClusterSource::Client`) is used as built.
pub async fn connect_as(
    cluster: &ClusterConfig,
    user_agent: Option<&str>,
) -> Result<ClusterConnection, ConnectionError> {
    let name = &cluster.name;
    match &cluster.source {
        ClusterSource::Kubeconfig { path, context } => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| ConnectionError::Kubeconfig {
                    cluster: name.clone(),
                    path: path.clone(),
                    source,
                })?;
            let (config, user) = from_kubeconfig(kubeconfig, context.as_deref())
                .await
                .map_err(|source| ConnectionError::Kubeconfig {
                    cluster: name.clone(),
                    path: path.clone(),
                    source,
                })?;
            finish(cluster, config, &user, user_agent)
        }
        ClusterSource::InCluster => {
            let config =
                kube::Config::incluster().map_err(|source| ConnectionError::InCluster {
                    cluster: name.clone(),
                    source,
                })?;
            finish(cluster, config, "in-cluster", user_agent)
        }
        ClusterSource::Embedded(_) => Err(ConnectionError::EmbeddedNotStarted {
            cluster: name.clone(),
        }),
        ClusterSource::Client(given) => Ok(ClusterConnection {
            name: name.clone(),
            client: given.client().clone(),
            identity: ClusterIdentity::given(name, given.number()),
            rate_limit: None,
        }),
    }
}

/// Connects `cluster` through a kubeconfig given as YAML text — what an embedded cluster hands
/// out once started. `context` picks one of its contexts, else its `current-context`.
pub async fn connect_with_kubeconfig_yaml(
    cluster: &ClusterConfig,
    kubeconfig_yaml: &str,
    context: Option<&str>,
) -> Result<ClusterConnection, ConnectionError> {
    connect_with_kubeconfig_yaml_as(cluster, kubeconfig_yaml, context, None).await
}

/// [`connect_with_kubeconfig_yaml`], sending `user_agent` when given (see [`connect_as`]).
pub async fn connect_with_kubeconfig_yaml_as(
    cluster: &ClusterConfig,
    kubeconfig_yaml: &str,
    context: Option<&str>,
    user_agent: Option<&str>,
) -> Result<ClusterConnection, ConnectionError> {
    let embedded_error = |source| ConnectionError::EmbeddedKubeconfig {
        cluster: cluster.name.clone(),
        source,
    };
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml).map_err(embedded_error)?;
    let (config, user) = from_kubeconfig(kubeconfig, context)
        .await
        .map_err(embedded_error)?;
    finish(cluster, config, &user, user_agent)
}

/// kube's config for `context` (or the current one) and the kubeconfig user name it uses.
async fn from_kubeconfig(
    kubeconfig: Kubeconfig,
    context: Option<&str>,
) -> Result<(kube::Config, String), kube::config::KubeconfigError> {
    let context_name = context
        .map(String::from)
        .or_else(|| kubeconfig.current_context.clone());
    let user = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == context_name.as_ref())
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.user.clone())
        .unwrap_or_else(|| "(no user)".into());
    let options = KubeConfigOptions {
        context: context.map(String::from),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok((config, user))
}

fn finish(
    cluster: &ClusterConfig,
    mut config: kube::Config,
    user: &str,
    user_agent: Option<&str>,
) -> Result<ClusterConnection, ConnectionError> {
    let identity = ClusterIdentity::of(&config, user);
    // kube sends no User-Agent of its own; an unencodable one (not visible ASCII) is left
    // out rather than failing the connection.
    if let Some(value) = user_agent.and_then(|ua| http::HeaderValue::from_str(ua).ok()) {
        config.headers.push((http::header::USER_AGENT, value));
    }
    let server = identity.server().to_string();
    if config.accept_invalid_certs {
        tracing::warn!(
            cluster = %cluster.name,
            %server,
            "TLS verification is off for this cluster (insecure-skip-tls-verify in its kubeconfig): \
             anyone between here and the server can read its credential and its data"
        );
    }
    let builder = ClientBuilder::try_from(config).map_err(|source| ConnectionError::Client {
        cluster: cluster.name.clone(),
        server,
        source,
    })?;
    let rate_limit = RateLimitLayer::from_config(cluster.qps, cluster.burst);
    let client = match &rate_limit {
        Some(layer) => builder.with_layer(layer).build(),
        None => builder.build(),
    };
    tracing::debug!(cluster = %cluster.name, %identity, "cluster client ready");
    Ok(ClusterConnection {
        name: cluster.name.clone(),
        client,
        identity,
        rate_limit,
    })
}
