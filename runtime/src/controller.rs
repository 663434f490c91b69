//! Controllers over the [`Runtime`]'s clusters: `runtime.controller::<K>("name")` gives a
//! [`ControllerBuilder`] (controller-runtime's `builder.ControllerManagedBy(mgr).For(&K{})`,
//! kube-runtime's `Controller::new`), and [`ControllerBuilder::run`] starts a
//! [`panoptes_actors::Controller`] whose keys come from the runtime's shared informers.
//!
//! # Contract
//! - **Sources.** Every change of a `K` queues its key; with [`ControllerBuilder::owns`], a
//!   change of a `C` queues its controller owner's key (ownerReference with
//!   `controller: true`, same cluster, see [`panoptes_actors::controller::mapping`]); with
//!   [`ControllerBuilder::watches`], the keys a mapper returns. The informers come from the
//!   runtime's registry, so a controller shares caches and watches with handlers and other
//!   controllers. Deletions queue the key too: the reconciler sees `object: None`.
//! - **Clusters.** A cluster joining by [`Runtime::reload`] is live before its informers
//!   deliver, so each of its objects gets a reconcile; a cluster leaving is dead before its
//!   informers stop: its queued and delayed keys are dropped, keys being reconciled are not
//!   retried, and no reconcile starts for it afterwards.
//! - **Leadership** defaults to [`Runtime::leadership`]: followers keep caches and queue warm.
//! - **Metrics** go to the runtime's [`Metrics`] under controller-runtime's names, the queue
//!   named after the controller.
//! - **Stop.** [`ControllerHandle::shutdown`] drains or abandons the queue, waits for the
//!   workers, then removes the controller's handlers (informers nobody else uses stop).
//!
//! Needs a running actix `System`, like the runtime.
//!
//! ```no_run
//! use actix::prelude::*;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use panoptes_actors::{Action, Reconcile, ReconcileError};
//!
//! struct Printer;
//! impl Actor for Printer {
//!     type Context = Context<Self>;
//! }
//! impl Handler<Reconcile<ConfigMap>> for Printer {
//!     type Result = Result<Action, ReconcileError>;
//!     fn handle(&mut self, msg: Reconcile<ConfigMap>, _: &mut Context<Self>) -> Self::Result {
//!         println!("{} exists: {}", msg.key, msg.object.is_some());
//!         Ok(Action::Done)
//!     }
//! }
//!
//! # async fn run(runtime: panoptes_runtime::Runtime) {
//! let handle = runtime
//!     .controller::<ConfigMap>("printer")
//!     .workers(2)
//!     .run(Printer.start());
//! // ...
//! handle.shutdown(panoptes_actors::ShutdownMode::Drain).await;
//! # }
//! ```

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use actix::{Addr, Recipient};
use panoptes_actors::controller::ContextSource;
use panoptes_actors::controller::mapping::controller_owner_key;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::informer_factory::ListScope;
use panoptes_actors::registry::PipelineRequest;
use panoptes_actors::work_queue::{self, Len, QueueLen};
use panoptes_actors::{
    CacheObject, Controller, ControllerMetrics, ControllerOptions, Event, HandlerOptions,
    Leadership, RateLimits, Reconcile, ReconcileContext, ReconcileKey, ReconcileOutcome,
    ShutdownMode, WorkQueue,
};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;

use crate::metrics::{Metrics, ReconcileMetrics, ReconcileResult, WorkqueueMetrics};
use crate::multi_informer::{ClusterInformerStatus, Membership, MultiInformer};
use crate::runtime::{Runtime, TrackedInformer};

/// The clusters a controller reconciles now, with their clients.
type Live = Arc<RwLock<BTreeMap<ClusterId, kube::Client>>>;

/// Starts the informer of one source and installs its key mapping; answers what keeps it
/// alive (the informer, dropped at shutdown).
type Source = Box<dyn FnOnce(&Runtime, &KeySink) -> Box<dyn Any + Send + Sync>>;

/// Builds a controller for the primary resource `K`. See the module docs.
#[must_use = "a builder does nothing until `run`"]
pub struct ControllerBuilder<K> {
    runtime: Runtime,
    options: ControllerOptions,
    leadership: Option<Leadership>,
    sources: Vec<Source>,
    _primary: PhantomData<fn() -> K>,
}

impl Runtime {
    /// A controller called `name` for the primary resource `K`, on every cluster.
    pub fn controller<K>(&self, name: impl Into<String>) -> ControllerBuilder<K>
    where
        K: CacheObject + DeserializeOwned,
        K::DynamicType: Default + Clone + Send + Sync,
        K::Scope: ListScope,
    {
        ControllerBuilder {
            runtime: self.clone(),
            options: ControllerOptions::new(name),
            leadership: None,
            sources: Vec::new(),
            _primary: PhantomData,
        }
    }
}

impl<K> ControllerBuilder<K>
where
    K: CacheObject + DeserializeOwned,
    K::DynamicType: Default + Clone + Send + Sync,
    K::Scope: ListScope + 'static,
{
    /// Reconciles at most `workers` keys at once (default
    /// [`panoptes_actors::controller::DEFAULT_WORKERS`]; at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.options.workers = workers.max(1);
        self
    }

    /// The retry delays of failed keys (default: 5 ms doubling to 1000 s per key, 10/s
    /// overall past a burst of 100).
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.options.rate_limits = limits;
        self
    }

    /// The gate workers consult before each reconcile (default: the runtime's).
    pub fn leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// Also reconciles the controller owner (a `K`) of every `C` that changes.
    pub fn owns<C>(mut self) -> Self
    where
        C: CacheObject + DeserializeOwned,
        C::DynamicType: Default + Clone + Send + Sync,
        C::Scope: ListScope,
    {
        self.sources.push(Box::new(|runtime, sink| {
            let informer = runtime.informer::<C>();
            let sink = sink.clone();
            let owner_type = K::DynamicType::default();
            informer.add_handler_fn(
                move |event: Event<C>| {
                    let cluster = event.cluster();
                    let mut keys: Vec<ReconcileKey> = Vec::with_capacity(2);
                    if let Event::Updated { old, .. } = &event {
                        keys.extend(controller_owner_key::<K>(
                            cluster,
                            old.as_ref(),
                            &owner_type,
                        ));
                    }
                    keys.extend(controller_owner_key::<K>(
                        cluster,
                        event.object().as_ref(),
                        &owner_type,
                    ));
                    keys.dedup();
                    for key in keys {
                        sink.add(key);
                    }
                },
                HandlerOptions::default(),
            );
            Box::new(informer)
        }));
        self
    }

    /// Also reconciles the keys `mapper` returns for every `W` that changes (on the cluster
    /// the change came from; a key naming another cluster is queued as well, if that cluster
    /// is live).
    pub fn watches<W>(
        mut self,
        mapper: impl Fn(&ClusterId, &W) -> Vec<ReconcileKey> + Send + Sync + 'static,
    ) -> Self
    where
        W: CacheObject + DeserializeOwned,
        W::DynamicType: Default + Clone + Send + Sync,
        W::Scope: ListScope,
    {
        self.sources.push(Box::new(move |runtime, sink| {
            let informer = runtime.informer::<W>();
            let sink = sink.clone();
            informer.add_handler_fn(
                move |event: Event<W>| {
                    for key in mapper(event.cluster(), event.object()) {
                        sink.add(key);
                    }
                },
                HandlerOptions::default(),
            );
            Box::new(informer)
        }));
        self
    }

    /// Starts the controller: its queue and workers, then its informers. Every reconcile is
    /// sent to `reconciler` (an actor's `Addr` or a `Recipient`).
    pub fn run(self, reconciler: impl Into<Recipient<Reconcile<K>>>) -> ControllerHandle<K> {
        let Self {
            runtime,
            options,
            leadership,
            sources,
            _primary,
        } = self;
        let leadership = leadership.unwrap_or_else(|| runtime.leadership());
        let live: Live = Arc::new(RwLock::new(
            runtime
                .connected_clusters()
                .into_iter()
                .filter_map(|c| runtime.client(&c).map(|client| (c, client)))
                .collect(),
        ));
        let primary: Arc<OnceLock<MultiInformer<K>>> = Arc::default();
        let contexts: ContextSource<K> = {
            let (live, primary) = (live.clone(), primary.clone());
            Arc::new(move |cluster: &ClusterId| {
                let client = live.read().get(cluster)?.clone();
                let handle = primary.get()?.handle(cluster)?;
                Some(ReconcileContext::new(cluster.clone(), client, handle))
            })
        };
        let name = options.name.clone();
        let metrics = Arc::new(MetricsSink::new(runtime.metrics().clone(), &name));
        let controller =
            Controller::start(options, reconciler.into(), contexts, leadership, metrics);
        let sink = KeySink {
            queue: controller.queue().clone(),
            live: live.clone(),
        };
        let alive = Arc::new(());
        runtime.track_member(Arc::new(ClusterMembership {
            sink: sink.clone(),
            alive: Arc::downgrade(&alive),
        }));
        let informer = runtime.informer::<K>();
        {
            let sink = sink.clone();
            informer.add_handler_fn(
                move |event: Event<K>| {
                    sink.add(ReconcileKey::of(
                        event.cluster().clone(),
                        event.object().as_ref(),
                    ));
                },
                HandlerOptions::default(),
            );
        }
        let _ = primary.set(informer.clone());
        let sources = sources
            .into_iter()
            .map(|source| source(&runtime, &sink))
            .collect();
        tracing::info!(controller = %name, "controller started");
        ControllerHandle {
            controller,
            live,
            primary: informer,
            sources,
            _alive: alive,
        }
    }
}

/// A running controller. Dropping it stops the controller (its queue abandoned, its
/// handlers removed) without waiting; [`shutdown`](Self::shutdown) waits and can drain.
#[must_use = "dropping the handle stops the controller"]
pub struct ControllerHandle<K: CacheObject> {
    controller: Controller,
    /// The clusters served now (shared with the controller's membership).
    live: Live,
    primary: MultiInformer<K>,
    /// The informers of `owns` and `watches`, kept alive while the controller runs.
    sources: Vec<Box<dyn Any + Send + Sync>>,
    /// Its cluster membership is tracked while this lives.
    _alive: Arc<()>,
}

impl<K: CacheObject> ControllerHandle<K> {
    /// The controller's name.
    pub fn name(&self) -> &str {
        self.controller.name()
    }

    /// The primary resource's informer (shared, on every cluster the controller serves).
    pub fn primary(&self) -> &MultiInformer<K> {
        &self.primary
    }

    /// Its work queue, to queue keys by hand ([`work_queue::Add`], [`work_queue::AddAfter`]).
    pub fn queue(&self) -> &Addr<WorkQueue> {
        self.controller.queue()
    }

    /// Queues `key` (a reconcile without an event: a periodic check, an external trigger).
    /// A key of a cluster this controller does not serve now (not configured, or owned by
    /// another replica under sharding) is dropped and logged; [`try_enqueue`](Self::try_enqueue)
    /// says so instead.
    pub fn enqueue(&self, key: ReconcileKey) {
        if let Err(error) = self.try_enqueue(key) {
            tracing::debug!(controller = %self.name(), %error, "key dropped");
        }
    }

    /// Queues `key` if its cluster is served here now, else answers
    /// [`ClientError::NotOwned`](crate::ClientError::NotOwned) and queues nothing. (A key
    /// queued before its cluster is disengaged is still dropped before it reconciles.)
    pub fn try_enqueue(&self, key: ReconcileKey) -> Result<(), crate::ClientError> {
        if !self.live.read().contains_key(&key.cluster) {
            return Err(crate::ClientError::NotOwned {
                cluster: key.cluster,
            });
        }
        self.controller.enqueue(key);
        Ok(())
    }

    /// Queued, processing and delayed keys now (zeros once the queue stopped).
    pub async fn queue_len(&self) -> QueueLen {
        self.controller.queue().send(Len).await.unwrap_or_default()
    }

    /// Stops: the queue drains or abandons its keys as `mode` says, the workers finish, then
    /// the controller's handlers are removed.
    pub async fn shutdown(self, mode: ShutdownMode) {
        let name = self.controller.name().to_owned();
        self.controller.shutdown(mode).await;
        drop(self.sources);
        drop(self.primary);
        tracing::info!(controller = %name, ?mode, "controller stopped");
    }
}

/// Where the informers' handlers put keys: the queue, for live clusters only.
#[derive(Clone)]
struct KeySink {
    queue: Addr<WorkQueue>,
    live: Live,
}

impl KeySink {
    /// Queues `key` with the current span (the informer notification being delivered).
    fn add(&self, key: ReconcileKey) {
        if self.live.read().contains_key(&key.cluster) {
            self.queue.do_send(work_queue::Add {
                key,
                span: tracing::Span::current(),
            });
        }
    }
}

/// A controller's cluster set as the runtime's reloads change it.
struct ClusterMembership {
    sink: KeySink,
    alive: Weak<()>,
}

impl Membership for ClusterMembership {
    fn join(&self, request: &PipelineRequest) {
        self.sink
            .live
            .write()
            .insert(request.cluster.clone(), request.client.clone());
    }

    fn leave(&self, cluster: &ClusterId) {
        self.sink.live.write().remove(cluster);
        self.sink
            .queue
            .do_send(work_queue::ForgetCluster(cluster.clone()));
    }

    fn statuses(&self) -> Vec<ClusterInformerStatus> {
        Vec::new()
    }

    fn wants(&self, _cluster: &ClusterId) -> bool {
        true
    }
}

impl TrackedInformer for ClusterMembership {
    fn is_alive(&self) -> bool {
        self.alive.strong_count() > 0
    }
}

/// The controller's measurements into the runtime's Prometheus registry.
struct MetricsSink {
    metrics: Metrics,
    name: String,
    active: prometheus_client::metrics::gauge::Gauge,
    queues: Mutex<HashMap<ClusterId, (WorkqueueMetrics, ReconcileMetrics)>>,
}

impl MetricsSink {
    fn new(metrics: Metrics, name: &str) -> Self {
        Self {
            active: metrics.active_workers(name),
            metrics,
            name: name.to_owned(),
            queues: Mutex::default(),
        }
    }

    fn of<T>(
        &self,
        cluster: &ClusterId,
        f: impl FnOnce(&(WorkqueueMetrics, ReconcileMetrics)) -> T,
    ) -> T {
        let mut queues = self.queues.lock();
        let entry = queues.entry(cluster.clone()).or_insert_with(|| {
            (
                self.metrics.workqueue(&self.name, cluster.as_str()),
                self.metrics.reconcile(&self.name, cluster.as_str()),
            )
        });
        f(entry)
    }
}

impl ControllerMetrics for MetricsSink {
    fn added(&self, cluster: &ClusterId) {
        self.of(cluster, |(q, _)| q.adds.inc());
    }

    fn depth(&self, cluster: &ClusterId, depth: usize) {
        self.of(cluster, |(q, _)| q.depth.set(depth as i64));
    }

    fn queued_for(&self, cluster: &ClusterId, waited: Duration) {
        self.of(cluster, |(q, _)| {
            q.queue_duration.observe(waited.as_secs_f64())
        });
    }

    fn worked_for(&self, cluster: &ClusterId, worked: Duration) {
        self.of(cluster, |(q, _)| {
            q.work_duration.observe(worked.as_secs_f64())
        });
    }

    fn retried(&self, cluster: &ClusterId) {
        self.of(cluster, |(q, _)| q.retries.inc());
    }

    fn in_progress(&self, cluster: &ClusterId, unfinished: Duration, longest: Duration) {
        self.of(cluster, |(q, _)| {
            q.unfinished_work.set(unfinished.as_secs_f64());
            q.longest_running.set(longest.as_secs_f64());
        });
    }

    fn reconciled(&self, cluster: &ClusterId, outcome: ReconcileOutcome, took: Duration) {
        let result = match outcome {
            ReconcileOutcome::Success => ReconcileResult::Success,
            ReconcileOutcome::Error => ReconcileResult::Error,
            ReconcileOutcome::Requeue => ReconcileResult::Requeue,
            ReconcileOutcome::RequeueAfter => ReconcileResult::RequeueAfter,
        };
        self.metrics
            .record_reconcile(&self.name, cluster.as_str(), result);
        self.of(cluster, |(_, r)| r.time.observe(took.as_secs_f64()));
    }

    fn active_workers(&self, active: usize) {
        self.active.set(active as i64);
    }
}
