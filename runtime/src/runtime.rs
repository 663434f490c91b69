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
//! - Readiness and metrics are refreshed every [`OBSERVE_INTERVAL`] by a task on the current
//!   actix system; a 403 is logged once per cluster and resource (the reflector retries
//!   slowly, never in a hot loop).
//!
//! Needs a running actix `System` (`#[actix_rt::main]`, `actix_rt::System::new().block_on`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::DynamicObject;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::informer_factory::ListScope;
use panoptes_actors::registry::{ClusterKey, PipelineRequest, Registry};
use panoptes_actors::{CacheObject, Leadership, Transform};
use panoptes_sim::churn::{Churn, ChurnConfig};
use panoptes_sim::{Sim, SimCluster, SimOptions};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use crate::config::{ClusterSelection, EmbeddedCluster, PanoptesConfig, WatchConfig};
use crate::connection::{self, ClusterConnection, ConnectionError};
use crate::health::Readiness;
use crate::metrics::Metrics;
use crate::multi_informer::{ClusterInformerStatus, Membership, MultiInformer, Tracked};
use crate::{ClusterConfig, ClusterSource};

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
}

trait TrackedInformer: Membership {
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
}

impl<K> Default for InformerSpec<K> {
    fn default() -> Self {
        Self {
            clusters: ClusterSelection::All,
            namespace: None,
            label_selector: None,
            field_selector: None,
            transform: Transform::default(),
        }
    }
}

impl Runtime {
    /// Connects every configured cluster (starting embedded ones). Nothing is watched yet.
    pub async fn start(config: &PanoptesConfig) -> Result<Self, RuntimeError> {
        let runtime = Self::with_observability(Metrics::new(), Readiness::new());
        *runtime.inner.default_resync.lock() = config.runtime.default_resync;
        for cluster in &config.clusters {
            runtime.engage(cluster.clone()).await?;
        }
        runtime.spawn_observer();
        Ok(runtime)
    }

    /// Connects like [`start`](Self::start), reporting into the given metrics and readiness.
    pub async fn start_with(
        config: &PanoptesConfig,
        metrics: Metrics,
        readiness: Readiness,
    ) -> Result<Self, RuntimeError> {
        let runtime = Self::with_observability(metrics, readiness);
        *runtime.inner.default_resync.lock() = config.runtime.default_resync;
        for cluster in &config.clusters {
            runtime.engage(cluster.clone()).await?;
        }
        runtime.spawn_observer();
        Ok(runtime)
    }

    fn with_observability(metrics: Metrics, readiness: Readiness) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: Registry::new(),
                metrics,
                readiness,
                clusters: Mutex::default(),
                informers: Mutex::default(),
                default_resync: Mutex::default(),
                errors: Mutex::default(),
            }),
        }
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

    /// Whether this process may reconcile now. Without `[leader_election]` it always may.
    pub fn leadership(&self) -> Leadership {
        Leadership::always()
    }

    /// The configured clusters now, in name order.
    pub fn clusters(&self) -> Vec<ClusterId> {
        self.inner.clusters.lock().keys().cloned().collect()
    }

    /// Clusters whose connection could not be built, with the error.
    pub fn connection_errors(&self) -> BTreeMap<ClusterId, String> {
        self.inner.errors.lock().clone()
    }

    /// The client of a connected cluster (`None` if unknown or its connection failed).
    pub fn client(&self, cluster: &ClusterId) -> Option<kube::Client> {
        let clusters = self.inner.clusters.lock();
        Some(clusters.get(cluster)?.request.as_ref()?.client.clone())
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
        } = spec;
        let opener = Box::new(move |base: &PipelineRequest| {
            let request = PipelineRequest {
                namespace: namespace.clone(),
                label_selector: label_selector.clone(),
                field_selector: field_selector.clone(),
                ..base.clone()
            };
            registry.informer::<K>(&request, transform.clone())
        });
        self.track(MultiInformer::new(resource, opener), clusters)
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
            .filter(|c| tracked.wants(&c.config.name))
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
                let connection =
                    connection::connect_with_kubeconfig_yaml(&config, &yaml, None).await;
                (connection, Some(server))
            }
            _ => (connection::connect(&config).await, None),
        };
        let request = match connection {
            Ok(connection) => Some(self.request_for(&connection)),
            Err(error) => {
                self.connection_failed(&name, &error);
                None
            }
        };
        if let Some(request) = &request {
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
                embedded,
            },
        );
        Ok(())
    }

    fn connection_failed(&self, name: &ClusterId, error: &ConnectionError) {
        tracing::error!(cluster = %name, %error, "cannot connect; the cluster is skipped");
        self.inner.readiness.set(name, CONNECTION_RESOURCE, false);
        self.inner
            .errors
            .lock()
            .insert(name.clone(), error.to_string());
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
    pub fn shutdown(&self) {
        for name in self.clusters() {
            self.disengage(&name);
        }
        self.inner.registry.shutdown();
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

    /// Copies every pipeline's state into readiness and metrics; logs new 403s.
    fn observe(&self) {
        let informers: Vec<_> = self.inner.informers.lock().clone();
        let engaged = self.clusters();
        for informer in &informers {
            for (cluster, resource) in informer.report_forbidden() {
                tracing::error!(
                    %cluster,
                    %resource,
                    "forbidden (403): this identity may not list/watch the resource; retrying slowly"
                );
            }
            for status in informer.statuses() {
                if !engaged.contains(&status.cluster) {
                    continue;
                }
                let (cluster, resource) = (status.cluster.as_str(), status.resource.as_str());
                self.inner
                    .readiness
                    .set(&status.cluster, resource, status.synced);
                self.inner.readiness.set_quarantined(
                    &status.cluster,
                    resource,
                    status.quarantined.clone(),
                );
                for (reason, count) in &status.bad_input {
                    let counter =
                        self.inner
                            .metrics
                            .informer_bad_input(cluster, resource, reason.label());
                    counter.inc_by(count.saturating_sub(counter.get()));
                }
                let metrics = self.inner.metrics.informer(cluster, resource);
                metrics.objects.set(status.objects as i64);
                metrics
                    .lists
                    .inc_by(status.lists.saturating_sub(metrics.lists.get()));
                metrics
                    .watches
                    .inc_by(status.watches.saturating_sub(metrics.watches.get()));
                for (stage, restarts) in &status.stage_restarts {
                    let counter =
                        self.inner
                            .metrics
                            .stage_restarts(cluster, resource, stage.as_str());
                    counter.inc_by(restarts.saturating_sub(counter.get()));
                }
                self.inner
                    .metrics
                    .listener_backlog(cluster, resource, "all")
                    .set(status.backlog as i64);
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
