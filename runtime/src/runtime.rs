//! [`Runtime`]: the configured clusters, connected, and every multi-cluster informer over
//! them — one per process.
//!
//! # Contract
//! - [`Runtime::start`] connects every `[[clusters]]` entry (starting embedded ones
//!   in-process) and sends nothing to any server yet; informers are asked for afterwards
//!   ([`Runtime::informer`], [`Runtime::informer_with`], [`Runtime::watch`]). All of them
//!   share pipelines through one [`Registry`]: asking twice, or for the same resource on two
//!   entries that reach the same server as the same user, opens one watch.
//! - A cluster that cannot be reached is not an error: its pipelines retry with backoff,
//!   `/readyz` names it, and every other cluster syncs and delivers as if it were alone.
//!   A cluster whose connection cannot even be built (unreadable kubeconfig) is reported the
//!   same way and skipped.
//! - [`Runtime::reload`] applies a new configuration's clusters: removed ones leave every
//!   informer (see [`crate::multi_informer`] for what handlers see) and their embedded servers
//!   stop; added ones join every informer whose selection includes them; an entry whose
//!   source changed leaves and joins again. Watches are fixed at start.
//! - With `[leader_election]` enabled, [`Runtime::start`] also starts a
//!   [`LeaderElector`] on the named cluster's connection (fixed at start, whatever reloads
//!   do later): [`Runtime::leadership`] is then its gate, `leader_election_master_status{name}`
//!   follows it, and [`Runtime::release_leadership`] (awaited) or [`Runtime::shutdown`] (in
//!   the background) write the Lease free so another replica takes over at once.
//! - With `[sharding]` enabled, [`Runtime::start`] connects every cluster but engages
//!   (joins informers and controllers to) only those this replica owns: a coordinator
//!   ([`crate::sharding`]) on the home cluster's connection activates a cluster once it
//!   holds its shard Lease and deactivates it before releasing it or when it cannot renew.
//!   A cluster not owned here has no informer member, [`Runtime::client`] answers `None` and
//!   [`Runtime::try_client`] [`ClientError::NotOwned`]; readiness and informer metrics cover
//!   owned clusters only. [`Runtime::release_shards`] (awaited) or [`Runtime::shutdown`] (in
//!   the background) disengage everything and write every Lease free.
//! - Readiness is refreshed every [`OBSERVE_INTERVAL`] by a task on the current actix
//!   system: a (cluster, resource) is ready once synced and while its watch is up, and not
//!   ready again while its reflector backs off (the cluster was lost) or is forbidden. A 403
//!   is logged once per cluster and resource (the reflector retries slowly, never in a hot
//!   loop).
//! - The informer metrics are read from the pipelines of the engaged clusters at each scrape
//!   ([`crate::metrics::informer`]): a removed cluster's series go with it.
//!
//! - **Telemetry.** [`Runtime::start`] installs logging (and OTLP export) from
//!   `[telemetry]`, as `panoptes run` does, unless a global `tracing` subscriber is installed
//!   already: then that one is kept and `[telemetry]` is not applied (logged at `info`).
//!   [`Runtime::start_with`] leaves telemetry to the caller (tests that install their own
//!   subscriber, programs that call [`telemetry::init`](crate::telemetry::init) themselves).
//! - **Without a file**: [`Runtime::builder`] gives clusters (`kube::Client`s, kubeconfig
//!   contexts, embedded clusters), telemetry and the metrics address in code.
//!
//! Needs a running actix `System` (`#[actix_rt::main]`, `actix_rt::System::new().block_on`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::DynamicObject;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::informer_factory::ListScope;
use panoptes_actors::leader_elector::{LeaderElection, LeaderElector};
use panoptes_actors::lease_lock::LeaseLock;
use panoptes_actors::registry::{ClusterKey, PipelineRequest, Registry};
use panoptes_actors::{CacheMode, CacheObject, Leadership, MetadataObject, Transform};
use panoptes_sim::churn::{Churn, ChurnConfig};
use panoptes_sim::{Sim, SimCluster, SimOptions};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use crate::config::{
    ClusterSelection, EmbeddedCluster, LeaderElectionConfig, PanoptesConfig, ShardingConfig,
    WatchConfig,
};
use crate::connection::{self, ClusterConnection, ClusterIdentity, ConnectionError};
use crate::health::Readiness;
use crate::metrics::Metrics;
use crate::metrics::informer::is_serving;
use crate::multi_informer::{ClusterInformerStatus, Membership, MultiInformer, Tracked};
use crate::sharding::{ClientError, ShardHandle, ShardHost};
use crate::{ClusterConfig, ClusterSource};
use panoptes_actors::error_chain::error_chain;

/// How often readiness and metrics are refreshed from the pipelines.
pub const OBSERVE_INTERVAL: Duration = Duration::from_millis(250);

/// The resource name readiness uses for a cluster whose connection could not be built.
pub const CONNECTION_RESOURCE: &str = "(connection)";

/// Starting the runtime failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// An embedded cluster (`embedded = {...}`) could not start.
    #[error("cluster \"{cluster}\": cannot start the embedded cluster: {source}")]
    Embedded {
        /// The `[[clusters]]` entry's name.
        cluster: ClusterId,
        #[source]
        /// Why the sim could not start.
        source: panoptes_sim::SimError,
    },
    /// `[leader_election] cluster` names a cluster whose connection could not be built, so
    /// this replica could never lead.
    #[error(
        "leader election: cluster \"{cluster}\" holds the Lease but its connection failed: {error}"
    )]
    LeaderElectionCluster {
        /// The cluster named in `[leader_election]`.
        cluster: ClusterId,
        /// Why its connection failed.
        error: String,
    },
    /// `[sharding] cluster` names a cluster whose connection could not be built, so this
    /// replica could never hold a shard Lease.
    #[error("sharding: cluster \"{cluster}\" holds the Leases but its connection failed: {error}")]
    ShardingCluster {
        /// The cluster named in `[sharding]`.
        cluster: ClusterId,
        /// Why its connection failed.
        error: String,
    },
    /// `[telemetry]` (or [`RuntimeBuilder::telemetry`](crate::RuntimeBuilder::telemetry)) could not be applied.
    #[error("cannot start telemetry: {0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The metrics address given to [`RuntimeBuilder::metrics_addr`](crate::RuntimeBuilder::metrics_addr) could not be served.
    #[error("cannot serve /metrics, /healthz, /readyz: {0}")]
    Health(#[from] crate::health::HealthError),
    /// A cluster given to [`RuntimeBuilder`](crate::RuntimeBuilder) that cannot be used as it is.
    #[error("cluster \"{name}\": {problem}")]
    Cluster {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// An embedded cluster this process serves.
struct EmbeddedServer {
    sim: Sim,
    /// Stopped when dropped.
    _churns: Vec<Churn>,
}

struct Engaged {
    config: ClusterConfig,
    /// `None` when the connection could not be built (the error is in readiness and logs).
    request: Option<PipelineRequest>,
    /// Server and credential fingerprint of the connection, when it was built.
    identity: Option<ClusterIdentity>,
    embedded: Option<EmbeddedServer>,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Clusters new in the file, now connected.
    pub added: Vec<ClusterId>,
    /// Clusters gone from the file, now disconnected.
    pub removed: Vec<ClusterId>,
    /// Entries whose source or limits changed: removed and added again.
    pub replaced: Vec<ClusterId>,
}

impl ReloadReport {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.replaced.is_empty()
    }
}

struct Inner {
    registry: Registry,
    metrics: Metrics,
    readiness: Readiness,
    clusters: Mutex<BTreeMap<ClusterId, Engaged>>,
    informers: Mutex<Vec<Arc<dyn TrackedInformer>>>,
    default_resync: Mutex<Option<Duration>>,
    errors: Mutex<BTreeMap<ClusterId, String>>,
    /// The running election, when `[leader_election]` is enabled and not yet released.
    election: Mutex<Option<LeaderElection>>,
    /// The gate handed out by [`Runtime::leadership`]; kept after the election stops, so it
    /// then reads closed rather than open.
    leadership: Mutex<Option<Leadership>>,
    /// Telemetry and health server this runtime started itself (not those of `start_with`).
    owned: Mutex<Owned>,
    /// With `[sharding]`: the clusters this replica holds the shard Lease of (the active
    /// set is the configured clusters among them). `None`: not sharded, all are active.
    shard_owned: Mutex<Option<std::collections::BTreeSet<ClusterId>>>,
    /// The running shard coordinator, when `[sharding]` is enabled and not yet released.
    shard: Mutex<Option<ShardHandle>>,
    /// Sent as `User-Agent` by every client built from now on (set when sharded).
    user_agent: Mutex<Option<String>>,
}

/// A [`Runtime`] that does not keep it alive (held by its own background tasks).
#[derive(Clone)]
pub(crate) struct WeakRuntime(std::sync::Weak<Inner>);

impl WeakRuntime {
    /// The runtime, unless it was dropped.
    pub(crate) fn upgrade(&self) -> Option<Runtime> {
        self.0.upgrade().map(|inner| Runtime { inner })
    }
}

/// What a runtime started itself and keeps until it is dropped (or shut down).
#[derive(Default)]
struct Owned {
    /// Flushes trace export when dropped.
    telemetry: Option<crate::telemetry::TelemetryGuard>,
    health: Option<crate::health::HealthServer>,
}

/// What the runtime tracks to apply reloads: multi-cluster informers and controllers.
pub(crate) trait TrackedInformer: Membership {
    fn is_alive(&self) -> bool;
}

impl<K: CacheObject> TrackedInformer for Tracked<K> {
    fn is_alive(&self) -> bool {
        Tracked::is_alive(self)
    }
}

/// The running clusters and their informers. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// What a multi-cluster informer watches: clusters, namespace, selectors, transform.
pub struct InformerSpec<K> {
    /// Which configured clusters to watch.
    pub clusters: ClusterSelection,
    /// Watch one namespace; `None` watches all.
    pub namespace: Option<String>,
    /// `labelSelector`, e.g. `app=web`.
    pub label_selector: Option<String>,
    /// `fieldSelector`, e.g. `status.phase=Running`.
    pub field_selector: Option<String>,
    /// Applied to each object before it is cached (e.g. to drop managedFields).
    pub transform: Transform<K>,
    /// How the caches hold their objects. `Metadata` needs a `K` that holds a
    /// `PartialObjectMetadata` (see [`Runtime::metadata_informer`]); another `K` fails on
    /// every cluster with `RegistryError::NotMetadata` (logged, and in the informer's
    /// errors).
    pub cache: CacheMode,
}

impl<K> Default for InformerSpec<K> {
    fn default() -> Self {
        Self {
            clusters: ClusterSelection::All,
            namespace: None,
            label_selector: None,
            field_selector: None,
            transform: Transform::default(),
            cache: CacheMode::default(),
        }
    }
}

impl Runtime {
    /// Installs telemetry from `config.telemetry` (kept as it is if the process already has
    /// a global `tracing` subscriber: starting twice never fails), then connects every
    /// configured cluster (starting embedded ones). Nothing is watched yet. Use
    /// [`start_with`](Self::start_with) to leave telemetry to the caller.
    pub async fn start(config: &PanoptesConfig) -> Result<Self, RuntimeError> {
        Self::launch(config, true, None).await
    }

    /// Starts telemetry (if asked), the health server (if given an address), then the
    /// clusters: what [`start`](Self::start) and [`RuntimeBuilder::start`](crate::RuntimeBuilder::start) share.
    pub(crate) async fn launch(
        config: &PanoptesConfig,
        telemetry: bool,
        health_addr: Option<std::net::SocketAddr>,
    ) -> Result<Self, RuntimeError> {
        let telemetry = match telemetry {
            true => crate::telemetry::init_or_keep(&config.telemetry)?,
            false => None,
        };
        let (metrics, readiness) = (Metrics::new(), Readiness::new());
        let health = match health_addr {
            Some(addr) => Some(
                crate::health::HealthServer::start(addr, metrics.clone(), readiness.clone())
                    .await?,
            ),
            None => None,
        };
        let runtime = Self::start_with(config, metrics, readiness).await?;
        *runtime.inner.owned.lock() = Owned { telemetry, health };
        Ok(runtime)
    }

    /// Connects like [`start`](Self::start), reporting into the given metrics and readiness,
    /// and leaves telemetry to the caller: it installs no subscriber (for programs and tests
    /// that install their own, as `panoptes run` does with [`telemetry::init`](crate::telemetry::init)).
    pub async fn start_with(
        config: &PanoptesConfig,
        metrics: Metrics,
        readiness: Readiness,
    ) -> Result<Self, RuntimeError> {
        let runtime = Self::with_observability(metrics, readiness);
        *runtime.inner.default_resync.lock() = config.runtime.default_resync;
        runtime
            .inner
            .registry
            .limit_concurrent_lists(config.runtime.concurrent_lists);
        runtime
            .inner
            .registry
            .set_read_ahead(config.runtime.read_ahead);
        panoptes_actors::heap_release::set_enabled(config.runtime.release_heap_after_sync);
        if let Some(sharding) = &config.sharding {
            // Before any cluster connects: nothing is active until its Lease is held, and
            // every client names the replica.
            *runtime.inner.shard_owned.lock() = Some(Default::default());
            *runtime.inner.user_agent.lock() =
                Some(crate::sharding::user_agent(&sharding.identity));
        }
        for cluster in &config.clusters {
            runtime.engage(cluster.clone()).await?;
        }
        if let Some(election) = &config.leader_election {
            runtime.start_election(election)?;
        }
        if let Some(sharding) = &config.sharding {
            runtime.start_sharding(sharding)?;
        }
        runtime.spawn_observer();
        Ok(runtime)
    }

    fn with_observability(metrics: Metrics, readiness: Readiness) -> Self {
        let runtime = Self {
            inner: Arc::new(Inner {
                registry: Registry::new(),
                metrics,
                readiness,
                clusters: Mutex::default(),
                informers: Mutex::default(),
                default_resync: Mutex::default(),
                errors: Mutex::default(),
                election: Mutex::default(),
                leadership: Mutex::default(),
                owned: Mutex::default(),
                shard_owned: Mutex::default(),
                shard: Mutex::default(),
                user_agent: Mutex::default(),
            }),
        };
        let weak = Arc::downgrade(&runtime.inner);
        runtime.inner.metrics.read_informers_from(Box::new(move || {
            let inner = weak.upgrade()?;
            Some(Runtime { inner }.engaged_status())
        }));
        runtime
    }

    /// The pipeline registry every informer of this runtime goes through.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The Prometheus families this runtime records into (served at `/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Which clusters' caches have synced (served at `/readyz`).
    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, when this runtime serves them
    /// itself ([`RuntimeBuilder::metrics_addr`](crate::RuntimeBuilder::metrics_addr)); the real port when asked for port 0.
    pub fn health_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner
            .owned
            .lock()
            .health
            .as_ref()
            .map(|h| h.local_addr())
    }

    /// Whether this runtime installed the process's `tracing` subscriber itself (false when
    /// one was installed before, or telemetry was left to the caller).
    pub fn installed_telemetry(&self) -> bool {
        self.inner.owned.lock().telemetry.is_some()
    }

    /// Whether this process may reconcile now. Without `[leader_election]` it always may;
    /// with it, while this replica holds the Lease.
    pub fn leadership(&self) -> Leadership {
        self.inner
            .leadership
            .lock()
            .clone()
            .unwrap_or_else(Leadership::always)
    }

    /// The running election, if `[leader_election]` is enabled and it was not released.
    pub fn election(&self) -> Option<LeaderElection> {
        self.inner.election.lock().clone()
    }

    /// Closes the gate and writes the Lease free, waiting for the write, so another replica
    /// takes over at once. Call before [`shutdown`](Self::shutdown) when you can await; does
    /// nothing without leader election.
    pub async fn release_leadership(&self) {
        let election = self.inner.election.lock().take();
        if let Some(election) = election
            && let Err(error) = election.release().await
        {
            tracing::warn!(%error, "cannot release the lease; another replica takes over when it runs out");
        }
    }

    fn start_election(&self, config: &LeaderElectionConfig) -> Result<(), RuntimeError> {
        let Some(client) = self.connection_client(&config.cluster) else {
            let error = self
                .connection_errors()
                .remove(&config.cluster)
                .unwrap_or_else(|| "not connected".into());
            return Err(RuntimeError::LeaderElectionCluster {
                cluster: config.cluster.clone(),
                error,
            });
        };
        let lock = LeaseLock::new(
            client,
            &config.namespace,
            &config.name,
            &config.identity,
            config.timings.lease_duration,
        );
        let election = LeaderElector::start(lock, config.timings);
        tracing::info!(
            identity = %config.identity,
            cluster = %config.cluster,
            lease = %election.lease(),
            "leader election started"
        );
        let gauge = self.inner.metrics.leader_election_status(&config.name);
        gauge.set(0);
        let mut gate = election.leadership();
        actix::spawn(async move {
            loop {
                let leading = gate.changed().await;
                gauge.set(i64::from(leading));
                if gate.is_closed() {
                    return;
                }
            }
        });
        *self.inner.leadership.lock() = Some(election.leadership());
        *self.inner.election.lock() = Some(election);
        Ok(())
    }

    /// The running shard coordinator (its identity and owned set), when `[sharding]` is
    /// enabled and not yet released.
    pub fn sharding(&self) -> Option<ShardHandle> {
        self.inner.shard.lock().clone()
    }

    /// Disengages every cluster and writes every shard Lease and the peer Lease free,
    /// waiting for the writes, so peers take over at once. Call before
    /// [`shutdown`](Self::shutdown) when you can await; does nothing without sharding.
    pub async fn release_shards(&self) {
        let shard = self.inner.shard.lock().take();
        if let Some(shard) = shard {
            shard.release().await;
        }
    }

    fn start_sharding(&self, config: &ShardingConfig) -> Result<(), RuntimeError> {
        let Some(client) = self.connection_client(&config.cluster) else {
            let error = self
                .connection_errors()
                .remove(&config.cluster)
                .unwrap_or_else(|| "not connected".into());
            return Err(RuntimeError::ShardingCluster {
                cluster: config.cluster.clone(),
                error,
            });
        };
        self.inner.readiness.set_shard_owned(Some(Vec::new()));
        let handle = crate::sharding::coordinator::start(self, config.clone(), client);
        *self.inner.shard.lock() = Some(handle);
        Ok(())
    }

    pub(crate) fn downgrade(&self) -> WeakRuntime {
        WeakRuntime(Arc::downgrade(&self.inner))
    }

    /// Whether `cluster` is engaged here: always without sharding, else while this replica
    /// holds its shard Lease.
    pub fn is_owned(&self, cluster: &ClusterId) -> bool {
        self.inner
            .shard_owned
            .lock()
            .as_ref()
            .is_none_or(|owned| owned.contains(cluster))
    }

    /// The configured clusters now, in name order (with sharding, owned or not; see
    /// [`owned_clusters`](Self::owned_clusters)).
    pub fn clusters(&self) -> Vec<ClusterId> {
        self.inner.clusters.lock().keys().cloned().collect()
    }

    /// The configured clusters engaged here, in name order: all of them without sharding,
    /// those whose shard Lease this replica holds with it.
    pub fn owned_clusters(&self) -> Vec<ClusterId> {
        let mut clusters = self.clusters();
        clusters.retain(|c| self.is_owned(c));
        clusters
    }

    /// Clusters whose connection could not be built, with the error.
    pub fn connection_errors(&self) -> BTreeMap<ClusterId, String> {
        self.inner.errors.lock().clone()
    }

    /// The client of a connected cluster (`None` if unknown, its connection failed, or —
    /// with sharding — another replica owns it; [`try_client`](Self::try_client) says which).
    pub fn client(&self, cluster: &ClusterId) -> Option<kube::Client> {
        self.try_client(cluster).ok()
    }

    /// The client of a cluster this replica may act on, or why there is none:
    /// [`ClientError::NotOwned`] for a cluster sharding gave to another replica.
    pub fn try_client(&self, cluster: &ClusterId) -> Result<kube::Client, ClientError> {
        let Some(client) = self.connection_client(cluster) else {
            let configured = self.inner.clusters.lock().contains_key(cluster);
            return Err(if configured {
                ClientError::NotConnected {
                    cluster: cluster.clone(),
                    error: self
                        .connection_errors()
                        .remove(cluster)
                        .unwrap_or_else(|| "not connected".into()),
                }
            } else {
                ClientError::Unknown {
                    cluster: cluster.clone(),
                }
            });
        };
        if !self.is_owned(cluster) {
            return Err(ClientError::NotOwned {
                cluster: cluster.clone(),
            });
        }
        Ok(client)
    }

    /// The connection's client whoever owns the cluster: for the Leases themselves.
    fn connection_client(&self, cluster: &ClusterId) -> Option<kube::Client> {
        let clusters = self.inner.clusters.lock();
        Some(clusters.get(cluster)?.request.as_ref()?.client.clone())
    }

    /// Who a connected cluster's client talks to (server URL, user, credential fingerprint;
    /// never the secret), for messages that must name the server.
    pub fn identity(&self, cluster: &ClusterId) -> Option<ClusterIdentity> {
        self.inner.clusters.lock().get(cluster)?.identity.clone()
    }

    /// The simulated server of an embedded cluster (faults, counters, its store).
    pub fn embedded(&self, cluster: &ClusterId) -> Option<SimCluster> {
        let clusters = self.inner.clusters.lock();
        let server = clusters.get(cluster)?.embedded.as_ref()?;
        Some(server.sim.cluster(0).clone())
    }

    /// The shared informer for `K` on every cluster.
    pub fn informer<K>(&self) -> MultiInformer<K>
    where
        K: CacheObject + DeserializeOwned,
        K::DynamicType: Default + Clone + Send + Sync,
        K::Scope: ListScope,
    {
        self.informer_with(InformerSpec::default())
    }

    /// The shared informer for `K` on the clusters, namespace and selectors of `spec`.
    pub fn informer_with<K>(&self, spec: InformerSpec<K>) -> MultiInformer<K>
    where
        K: CacheObject + DeserializeOwned,
        K::DynamicType: Default + Clone + Send + Sync,
        K::Scope: ListScope,
    {
        let registry = self.inner.registry.clone();
        let resource = panoptes_actors::informer_factory::resource_name::<K>(&Default::default());
        let InformerSpec {
            clusters,
            namespace,
            label_selector,
            field_selector,
            transform,
            cache,
        } = spec;
        let opener = Box::new(move |base: &PipelineRequest| {
            let request = PipelineRequest {
                namespace: namespace.clone(),
                label_selector: label_selector.clone(),
                field_selector: field_selector.clone(),
                cache,
                ..base.clone()
            };
            registry.informer::<K>(&request, transform.clone())
        });
        self.track(MultiInformer::new(resource, opener), clusters)
    }

    /// The shared metadata-only informer of `K`'s resource on every cluster (client-go's
    /// metadata informer, kube's `metadata_watcher`): lists and watches
    /// `PartialObjectMetadata`, so each cached object is `K`'s metadata only. Narrow it with
    /// [`informer_with`](Self::informer_with) and `cache: CacheMode::Metadata`.
    ///
    /// ```no_run
    /// # fn demo(runtime: &panoptes_runtime::Runtime) {
    /// use k8s_openapi::api::core::v1::Pod;
    /// let pods = runtime.metadata_informer::<Pod>(); // MultiInformer<PartialObjectMeta<Pod>>
    /// # }
    /// ```
    pub fn metadata_informer<K>(&self) -> MultiInformer<MetadataObject<K>>
    where
        K: CacheObject,
        K::DynamicType: Default + Clone + Send + Sync,
        K::Scope: ListScope,
    {
        self.informer_with(InformerSpec {
            cache: CacheMode::Metadata,
            ..InformerSpec::default()
        })
    }

    /// The informer a `[[watch]]` entry asks for, as dynamic objects.
    pub fn watch(&self, watch: &WatchConfig) -> MultiInformer<DynamicObject> {
        let registry = self.inner.registry.clone();
        let api_resource = watch.resource.api_resource();
        let name = watch.resource.to_string();
        let clusters = watch.clusters.clone();
        let watch = watch.clone();
        let opener = Box::new(move |base: &PipelineRequest| {
            let request = PipelineRequest {
                namespace: watch.namespace.clone(),
                label_selector: watch.label_selector.clone(),
                field_selector: watch.field_selector.clone(),
                default_resync: watch.resync.or(base.default_resync),
                cache: watch.cache,
                ..base.clone()
            };
            registry.dynamic_informer(&request, &api_resource)
        });
        self.track(MultiInformer::new(name, opener), clusters)
    }

    fn track<K: CacheObject>(
        &self,
        informer: MultiInformer<K>,
        selection: ClusterSelection,
    ) -> MultiInformer<K> {
        let tracked = Tracked::of(&informer, selection);
        let requests: Vec<PipelineRequest> = self
            .inner
            .clusters
            .lock()
            .values()
            .filter(|c| tracked.wants(&c.config.name) && self.is_owned(&c.config.name))
            .filter_map(|c| c.request.clone())
            .collect();
        for request in &requests {
            informer.join(request);
        }
        let mut informers = self.inner.informers.lock();
        informers.retain(|i| i.is_alive());
        informers.push(Arc::new(tracked));
        informer
    }

    /// Tracks a member that joins and leaves clusters as reloads say (a controller's
    /// cluster set). Members are told in the order they were tracked, so one tracked before
    /// its informers hears of a joining cluster before their events, and of a leaving one
    /// before they stop.
    pub(crate) fn track_member(&self, member: Arc<dyn TrackedInformer>) {
        let mut informers = self.inner.informers.lock();
        informers.retain(|i| i.is_alive());
        informers.push(member);
    }

    /// The clusters whose connection was built and that are owned here, in name order.
    pub(crate) fn connected_clusters(&self) -> Vec<ClusterId> {
        let mut connected: Vec<ClusterId> = self
            .inner
            .clusters
            .lock()
            .iter()
            .filter(|(_, engaged)| engaged.request.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        connected.retain(|c| self.is_owned(c));
        connected
    }

    /// [`status`](Self::status) of the clusters engaged now (a removed cluster's informers
    /// may report it for a moment after a reload).
    fn engaged_status(&self) -> Vec<ClusterInformerStatus> {
        let engaged = self.owned_clusters();
        let mut all = self.status();
        all.retain(|s| engaged.contains(&s.cluster));
        all
    }

    /// Per cluster and resource, across every live informer.
    pub fn status(&self) -> Vec<ClusterInformerStatus> {
        let informers: Vec<_> = self.inner.informers.lock().clone();
        let mut all: Vec<_> = informers.iter().flat_map(|i| i.statuses()).collect();
        all.sort_by(|a, b| (&a.cluster, &a.resource).cmp(&(&b.cluster, &b.resource)));
        all
    }

    /// Applies the clusters of `config`: adds, removes and replaces as needed.
    pub async fn reload(&self, config: &PanoptesConfig) -> Result<ReloadReport, RuntimeError> {
        let mut report = ReloadReport::default();
        let wanted: BTreeMap<ClusterId, ClusterConfig> = config
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.clone()))
            .collect();
        let current: BTreeMap<ClusterId, ClusterConfig> = self
            .inner
            .clusters
            .lock()
            .iter()
            .map(|(name, engaged)| (name.clone(), engaged.config.clone()))
            .collect();
        for (name, old) in &current {
            match wanted.get(name) {
                None => {
                    self.disengage(name);
                    report.removed.push(name.clone());
                }
                Some(new) if new != old => {
                    self.disengage(name);
                    report.replaced.push(name.clone());
                }
                Some(_) => {}
            }
        }
        for (name, new) in wanted {
            if !self.inner.clusters.lock().contains_key(&name) {
                if !report.replaced.contains(&name) {
                    report.added.push(name.clone());
                }
                self.engage(new).await?;
            }
        }
        if !report.is_empty() {
            tracing::info!(?report, "configuration reloaded");
        }
        Ok(report)
    }

    async fn engage(&self, config: ClusterConfig) -> Result<(), RuntimeError> {
        let name = config.name.clone();
        let (connection, embedded) = match &config.source {
            ClusterSource::Embedded(settings) => {
                let server = start_embedded(&name, settings)?;
                let yaml = server.sim.cluster(0).kubeconfig_yaml();
                let connection = connection::connect_with_kubeconfig_yaml_as(
                    &config,
                    &yaml,
                    None,
                    self.user_agent().as_deref(),
                )
                .await;
                (connection, Some(server))
            }
            _ => (
                connection::connect_as(&config, self.user_agent().as_deref()).await,
                None,
            ),
        };
        let (request, identity) = match connection {
            Ok(connection) => (
                Some(self.request_for(&connection)),
                Some(connection.identity.clone()),
            ),
            Err(error) => {
                self.connection_failed(&name, &error);
                (None, None)
            }
        };
        if let Some(request) = request.as_ref().filter(|_| self.is_owned(&name)) {
            let informers: Vec<_> = self.inner.informers.lock().clone();
            for informer in informers.iter().filter(|i| i.wants(&name)) {
                informer.join(request);
            }
        }
        self.inner.clusters.lock().insert(
            name,
            Engaged {
                config,
                request,
                identity,
                embedded,
            },
        );
        Ok(())
    }

    fn user_agent(&self) -> Option<String> {
        self.inner.user_agent.lock().clone()
    }

    fn connection_failed(&self, name: &ClusterId, error: &ConnectionError) {
        tracing::error!(cluster = %name, error = %error_chain(error), "cannot connect; the cluster is skipped");
        if self.is_owned(name) {
            self.inner.readiness.set(name, CONNECTION_RESOURCE, false);
        }
        self.inner
            .errors
            .lock()
            .insert(name.clone(), error_chain(error));
    }

    fn request_for(&self, connection: &ClusterConnection) -> PipelineRequest {
        let identity = &connection.identity;
        let key = ClusterKey::new(format!(
            "{}#{}",
            identity.server(),
            identity.short_fingerprint()
        ));
        PipelineRequest {
            default_resync: *self.inner.default_resync.lock(),
            ..PipelineRequest::new(connection.name.clone(), key, connection.client.clone())
        }
    }

    fn disengage(&self, name: &ClusterId) {
        let informers: Vec<_> = self.inner.informers.lock().clone();
        for informer in &informers {
            informer.leave(name);
        }
        let engaged = self.inner.clusters.lock().remove(name);
        self.inner.errors.lock().remove(name);
        self.inner.readiness.disengage(name);
        // Dropping the embedded server (if any) stops its churn and its listener.
        drop(engaged);
    }

    /// Removes every cluster from every informer, stops embedded servers, then stops the
    /// registry and its thread: a terminal stop (informers asked for later get no pipeline).
    /// A running election closes its gate and releases its Lease in the background (await
    /// [`release_leadership`](Self::release_leadership) first to be sure it was written).
    pub fn shutdown(&self) {
        if let Some(election) = self.inner.election.lock().take() {
            election.release_in_background();
        }
        if let Some(shard) = self.inner.shard.lock().take() {
            shard.release_in_background();
        }
        for name in self.clusters() {
            self.disengage(&name);
        }
        self.inner.registry.shutdown();
        // Dropping the health server stops it; telemetry stays until the runtime is dropped,
        // so the stop itself is still logged and traced.
        drop(self.inner.owned.lock().health.take());
    }

    fn spawn_observer(&self) {
        let weak = Arc::downgrade(&self.inner);
        actix::spawn(async move {
            let mut tick = tokio::time::interval(OBSERVE_INTERVAL);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Runtime { inner }.observe();
            }
        });
    }

    /// Copies every pipeline's state into readiness. (Each pipeline's supervisor logs its
    /// own failures and recoveries once: `panoptes_actors::watch_error`.)
    fn observe(&self) {
        let informers: Vec<_> = self.inner.informers.lock().clone();
        let engaged = self.owned_clusters();
        for informer in &informers {
            for status in informer.statuses() {
                if !engaged.contains(&status.cluster) {
                    continue;
                }
                let resource = status.resource.as_str();
                self.inner
                    .readiness
                    .set(&status.cluster, resource, is_serving(&status));
                self.inner.readiness.set_quarantined(
                    &status.cluster,
                    resource,
                    status.quarantined.clone(),
                );
            }
        }
    }
}

/// Starts one simulated cluster, seeded with `settings.pods` pods (and the Deployments they
/// belong to) spread over `settings.namespaces` namespaces (`ns-1`, ...), churning at
/// `settings.churn_per_sec`.
fn start_embedded(
    name: &ClusterId,
    settings: &EmbeddedCluster,
) -> Result<EmbeddedServer, RuntimeError> {
    let sim = Sim::start(SimOptions {
        clusters: 1,
        worker_threads: 1,
        ..SimOptions::default()
    })
    .map_err(|source| RuntimeError::Embedded {
        cluster: name.clone(),
        source,
    })?;
    let cluster = sim.cluster(0);
    let namespaces = settings.namespaces.max(1);
    let mut churns = Vec::new();
    for index in 0..namespaces {
        let namespace = format!("ns-{}", index + 1);
        // Spread the remainder over the first namespaces so the total is exact.
        let share = settings.pods / namespaces + u32::from(index < settings.pods % namespaces);
        panoptes_sim::pods::seed(&cluster.store(), &namespace, share as usize);
        panoptes_sim::pods::seed_deployments(&cluster.store(), &namespace, share as usize);
        if settings.churn_per_sec > 0.0 {
            churns.push(Churn::start(
                cluster.store(),
                ChurnConfig {
                    namespace,
                    target_pods: share as usize,
                    rate_per_sec: settings.churn_per_sec / f64::from(namespaces),
                    seed: u64::from(index) + 1,
                    ..ChurnConfig::default()
                },
            ));
        }
    }
    tracing::info!(cluster = %name, url = %cluster.url(), pods = settings.pods, "embedded cluster started");
    Ok(EmbeddedServer {
        sim,
        _churns: churns,
    })
}

impl ShardHost for Runtime {
    type Weak = WeakRuntime;

    fn downgrade(&self) -> WeakRuntime {
        Runtime::downgrade(self)
    }

    fn upgrade(weak: &WeakRuntime) -> Option<Self> {
        weak.upgrade()
    }

    fn clusters(&self) -> Vec<ClusterId> {
        Runtime::clusters(self)
    }

    /// Sharding: this replica now holds `cluster`'s shard Lease. Its informers and
    /// controllers join it (controllers first, as on a reload).
    fn activate_shard(&self, cluster: &ClusterId) {
        if let Some(owned) = self.inner.shard_owned.lock().as_mut() {
            owned.insert(cluster.clone());
        }
        let request = {
            let clusters = self.inner.clusters.lock();
            clusters.get(cluster).map(|engaged| engaged.request.clone())
        };
        match request {
            Some(Some(request)) => {
                let informers: Vec<_> = self.inner.informers.lock().clone();
                for informer in informers.iter().filter(|i| i.wants(cluster)) {
                    informer.join(&request);
                }
            }
            Some(None) => self
                .inner
                .readiness
                .set(cluster, CONNECTION_RESOURCE, false),
            None => {}
        }
    }

    /// Sharding: this replica is about to release (or has lost) `cluster`'s shard Lease.
    /// Controllers drop its keys, informers leave it (watches close, caches go), readiness
    /// forgets it — all before this returns.
    fn deactivate_shard(&self, cluster: &ClusterId) {
        if let Some(owned) = self.inner.shard_owned.lock().as_mut() {
            owned.remove(cluster);
        }
        let informers: Vec<_> = self.inner.informers.lock().clone();
        for informer in &informers {
            informer.leave(cluster);
        }
        self.inner.readiness.disengage(cluster);
    }

    fn metrics(&self) -> &Metrics {
        Runtime::metrics(self)
    }

    fn readiness(&self) -> &Readiness {
        Runtime::readiness(self)
    }
}
