//! client-go's `SharedIndexInformer` (`tools/cache/shared_informer.go`): one pipeline — the
//! reflector, the [delta FIFO](crate::delta_fifo), the [indexer](crate::indexer) hosting the
//! [processor](crate::processor), and one [listener](crate::listener) per handler — for one
//! resource in one cluster, behind one cheap, clonable handle. The data flows one way,
//! reflector → FIFO → indexer (+ processor) → listeners → handlers; the reflector's reports
//! go to the pipeline's [supervisor](crate::supervisor).
//!
//! # Threads
//! Each informer runs its actors on its own actix [`Arbiter`] (one OS thread per pipeline):
//! pipelines never compete for one thread, and a handler that hogs its pipeline's thread only
//! slows its own resource. Restartable handler actors ([`handler_actor`](crate::handler_actor))
//! and closure handlers run on that thread too; a handler passed as a [`Recipient`] runs
//! wherever its owner started it. Creating an informer needs a running actix `System`.
//!
//! # Lifecycle
//! Created (actors started, no reflector) by [`InformerFactory::informer`](crate::InformerFactory::informer),
//! so handlers and indexes can be added first; [`Informer::start`] starts the reflector;
//! [`Informer::stop`] stops the reflector and the arbiter, and with it every actor of the
//! pipeline. Dropping the last handle does not stop it: call `stop`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use parking_lot::Mutex;

use crate::cache_mode::CacheMode;
use crate::delta_fifo::{DeltaFifo, FifoStatus, GetFifoStatus, SetResyncPeriod};
use crate::event::EventHandler;
use crate::event_stream::{EventStream, StreamHooks};
use crate::ids::{ClusterId, IndexName};
use crate::indexer::{AddIndexers, Indexer};
use crate::latency::LatencySnapshot;
use crate::listener::{EventMap, HandlerOptions, HandlerStatus, Listener, ListenerCounters};
use crate::lister::Lister;
use crate::object::CacheObject;
use crate::processor::{AddListener, HandlerId, RemoveListener};
use crate::read_pacing::ReadPacing;
use crate::reflector::{ReflectorBatch, ReflectorConfig, ReflectorReport};
use crate::stage_fault::{InjectPanic, Stage, StageRestartCounters};
use crate::store::{IndexError, IndexFn, Store, StoreWriter};
use crate::supervisor::{
    LatestReport, PipelineSupervisor, StartReflector, StartSource, StopPipeline, Wire,
};
use crate::transform::Transform;
use crate::watch_counters::{WatchCounters, WatchStats};
use crate::watch_error::{WatchError, WatchErrorHandlerId, WatchErrors};

/// A failed informer operation.
#[derive(Debug, thiserror::Error)]
pub enum InformerError {
    /// Adding an index failed (name in use, or an index function failed).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The pipeline's actors are gone (the informer was stopped).
    #[error("the informer for {resource} in cluster {cluster} is stopped")]
    Stopped {
        /// The informer's cluster.
        cluster: ClusterId,
        /// The informer's resource (`v1/pods`).
        resource: String,
    },
}

/// What the informer keeps of a handler it registered.
struct RegisteredHandler {
    counters: Arc<ListenerCounters>,
    resync: Option<Duration>,
}

struct Inner<K: CacheObject> {
    cluster: ClusterId,
    resource: Arc<str>,
    store: Store<K>,
    arbiter: ArbiterHandle,
    fifo: Addr<DeltaFifo<K>>,
    indexer: Addr<Indexer<K>>,
    supervisor: Addr<PipelineSupervisor<K>>,
    restarts: Arc<StageRestartCounters>,
    /// The FIFO resyncs at the shortest period of these.
    handlers: Mutex<HashMap<HandlerId, RegisteredHandler>>,
    default_resync: Option<Duration>,
    next_handler: AtomicU64,
    reflector_report: LatestReport,
    /// Shared with every reflector this pipeline starts.
    watch: Arc<WatchCounters>,
    /// Followed by every handler's counters: the reflector's reads wait on them.
    read_pacing: Arc<ReadPacing>,
    /// Called by the supervisor when the pipeline's health changes.
    watch_errors: WatchErrors,
}

/// A shared informer: one watch, one cache, any number of handlers.
#[doc(alias = "SharedIndexInformer")]
#[doc(alias = "SharedInformer")]
pub struct Informer<K: CacheObject> {
    inner: Arc<Inner<K>>,
}

impl<K: CacheObject> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K: CacheObject> std::fmt::Debug for Informer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("cluster", &self.inner.cluster)
            .field("resource", &self.inner.resource)
            .field("synced", &self.has_synced())
            .field("objects", &self.inner.store.len())
            .finish()
    }
}

impl<K: CacheObject> Informer<K> {
    /// Starts the pipeline's actors on a new arbiter. `source` starts the reflector.
    pub(crate) fn build(
        cluster: ClusterId,
        resource: &str,
        transform: Transform<K>,
        default_resync: Option<Duration>,
        cache: CacheMode,
        source: Option<StartSource<K>>,
        reflector: &ReflectorConfig,
    ) -> Self {
        let (watch, read_pacing) = (reflector.counters.clone(), reflector.read_pacing.clone());
        let resource: Arc<str> = resource.into();
        let arbiter = Arbiter::new().handle();
        // `Metadata` changes what is listed, not how it is kept: a typed store.
        let writer = StoreWriter::with_mode(cache);
        let store = writer.reader();
        let reflector_report = LatestReport::default();
        let restarts = Arc::new(StageRestartCounters::default());
        let watch_errors = WatchErrors::default();
        let supervisor = {
            let (cluster, resource) = (cluster.clone(), resource.clone());
            let (latest, restarts) = (reflector_report.clone(), restarts.clone());
            let watch_errors = watch_errors.clone();
            PipelineSupervisor::start_in_arbiter(&arbiter, move |_| {
                PipelineSupervisor::new(cluster, resource, latest, restarts, watch_errors)
            })
        };
        let indexer = {
            let (cluster, resource) = (cluster.clone(), resource.clone());
            let faults = supervisor.clone().recipient();
            Indexer::start_in_arbiter(&arbiter, move |_| {
                Indexer::new(cluster, resource, writer, faults)
            })
        };
        let fifo = {
            let (cluster, resource, store) = (cluster.clone(), resource.clone(), store.clone());
            let indexer = indexer.clone().recipient();
            let faults = supervisor.clone().recipient();
            DeltaFifo::start_in_arbiter(&arbiter, move |_| {
                DeltaFifo::new(cluster, resource, transform, indexer, store, faults)
            })
        };
        supervisor.do_send(Wire {
            fifo: fifo.clone().recipient(),
            reset: fifo.clone().recipient(),
            source,
        });
        Self {
            inner: Arc::new(Inner {
                cluster,
                resource,
                store,
                arbiter,
                fifo,
                indexer,
                supervisor,
                restarts,
                handlers: Mutex::new(HashMap::new()),
                default_resync,
                next_handler: AtomicU64::new(1),
                reflector_report,
                watch,
                read_pacing,
                watch_errors,
            }),
        }
    }

    /// An informer fed by the caller instead of a reflector: send [`ReflectorBatch`]es to the
    /// returned recipient (replays, tests, another source of truth). `resource` only names it
    /// in logs and traces.
    ///
    /// ```
    /// # use panoptes_actors::{Informer, Transform, ids::ClusterId};
    /// # use k8s_openapi::api::core::v1::Pod;
    /// # actix::System::new().block_on(async {
    /// let (informer, feed) = Informer::<Pod>::detached(ClusterId::new("test"), "v1/pods", Transform::default());
    /// assert!(!informer.has_synced());
    /// # informer.stop();
    /// # });
    /// ```
    pub fn detached(
        cluster: ClusterId,
        resource: &str,
        transform: Transform<K>,
    ) -> (Self, Recipient<ReflectorBatch<K>>) {
        Self::detached_cached(cluster, resource, transform, CacheMode::Typed)
    }

    /// [`detached`](Self::detached) with its cache held as `cache` says.
    pub fn detached_cached(
        cluster: ClusterId,
        resource: &str,
        transform: Transform<K>,
        cache: CacheMode,
    ) -> (Self, Recipient<ReflectorBatch<K>>) {
        let informer = Self::build(
            cluster,
            resource,
            transform,
            None,
            cache,
            None,
            &ReflectorConfig::default(),
        );
        let feed = informer.inner.fifo.clone().recipient();
        (informer, feed)
    }

    /// The cluster this informer watches.
    pub fn cluster(&self) -> &ClusterId {
        &self.inner.cluster
    }

    /// `v1/pods`, `apps/v1/deployments`.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// Starts the reflector (idempotent; client-go's `Run`).
    pub fn start(&self) {
        self.inner.supervisor.do_send(StartReflector);
    }

    /// Stops the reflector and every actor of the pipeline. The cache keeps its last state.
    pub fn stop(&self) {
        self.inner.supervisor.do_send(StopPipeline);
        self.inner.arbiter.stop();
    }

    /// Makes `stage` panic, as a bug there would; the pipeline's supervisor then restarts it
    /// from a relist (see [`supervisor`](crate::supervisor)). Fault injection for tests and
    /// fault schedules, not for production code.
    #[doc(hidden)]
    pub fn inject_stage_panic(&self, stage: Stage) {
        match stage {
            Stage::Reflector => self.inner.supervisor.do_send(InjectPanic(stage)),
            Stage::Fifo => self.inner.fifo.do_send(InjectPanic(stage)),
            Stage::Indexer | Stage::Processor => self.inner.indexer.do_send(InjectPanic(stage)),
        }
    }

    /// What the watches of this pipeline received so far: events by type, watches ended by
    /// reason, the last event's arrival (a detached informer has none).
    pub fn watch_stats(&self) -> WatchStats {
        self.inner.watch.snapshot()
    }

    /// How many times the pipeline was restarted because `stage` failed.
    pub fn stage_restarts(&self, stage: Stage) -> u64 {
        self.inner.restarts.get(stage)
    }

    /// Registers a handler (client-go's `AddEventHandlerWithResyncPeriod`). It first gets
    /// every cached object as `Added { initial: true }`, then every change. Pass an actor's
    /// [`Recipient`], [`handler_actor`](crate::handler_actor) or
    /// [`handler_fn`](crate::handler_fn).
    ///
    /// ```
    /// # use panoptes_actors::{Informer, Transform, HandlerOptions, handler_fn, ids::ClusterId, Event};
    /// # use k8s_openapi::api::core::v1::Pod;
    /// # actix::System::new().block_on(async {
    /// # let (informer, _feed) = Informer::<Pod>::detached(ClusterId::new("test"), "v1/pods", Transform::default());
    /// let id = informer.add_handler(handler_fn(|ev: Event<Pod>| println!("{ev:?}")), HandlerOptions::default());
    /// assert!(informer.remove_handler(id));
    /// # informer.stop();
    /// # });
    /// ```
    pub fn add_handler(
        &self,
        handler: impl Into<EventHandler<K>>,
        options: HandlerOptions<K>,
    ) -> HandlerId {
        self.add_mapped_handler(handler, options, None)
    }

    /// Registers a handler whose events pass through `map` first, inside its listener (see
    /// [`EventMap`]): what filtered views and multi-cluster informers use.
    pub fn add_mapped_handler(
        &self,
        handler: impl Into<EventHandler<K>>,
        options: HandlerOptions<K>,
        map: Option<EventMap<K>>,
    ) -> HandlerId {
        let id = HandlerId(self.inner.next_handler.fetch_add(1, Ordering::Relaxed));
        let options = HandlerOptions {
            resync: options.resync.or(self.inner.default_resync),
            ..options
        };
        let counters = ListenerCounters::paced(&self.inner.read_pacing);
        self.inner.handlers.lock().insert(
            id,
            RegisteredHandler {
                counters: counters.clone(),
                resync: options.resync,
            },
        );
        self.inner.indexer.do_send(AddListener {
            id,
            start: Listener::starter(
                id,
                self.inner.cluster.clone(),
                self.inner.resource.clone(),
                handler.into(),
                options,
                map,
                counters,
            ),
        });
        self.update_resync_period();
        id
    }

    /// The informer's events as a bounded [`futures::Stream`] (see [`EventStream`]): the
    /// cache first as `Added { initial: true }`, then every change. Dropping it removes its
    /// handler.
    pub fn stream(&self) -> EventStream<K> {
        self.stream_with(HandlerOptions::default())
    }

    /// [`stream`](Self::stream) with a handler's options: resync, coalescing, a
    /// [`Predicate`](crate::Predicate).
    pub fn stream_with(&self, options: HandlerOptions<K>) -> EventStream<K> {
        EventStream::attach(|handler| {
            let id = self.add_handler(handler, options);
            let (informer, status) = (self.clone(), self.clone());
            StreamHooks {
                detach: Box::new(move || {
                    informer.remove_handler(id);
                }),
                backlog: Box::new(move || status.handler_status(id).map_or(0, |s| s.backlog)),
            }
        })
    }

    /// Unregisters a handler; it gets nothing more. False if it was not registered.
    pub fn remove_handler(&self, id: HandlerId) -> bool {
        let removed = self.inner.handlers.lock().remove(&id).is_some();
        if removed {
            self.inner.indexer.do_send(RemoveListener(id));
            self.update_resync_period();
        }
        removed
    }

    fn update_resync_period(&self) {
        let shortest = self
            .inner
            .handlers
            .lock()
            .values()
            .filter_map(|h| h.resync)
            .min();
        self.inner.fifo.do_send(SetResyncPeriod(shortest));
    }

    /// Whether the handler has handled everything up to the informer's first sync (its initial
    /// list or its replay). False for unknown ids.
    pub fn handler_has_synced(&self, id: HandlerId) -> bool {
        self.inner
            .handlers
            .lock()
            .get(&id)
            .is_some_and(|h| h.counters.has_synced())
    }

    /// The handler's event latency (reflector read → handler returned); `None` for unknown
    /// ids.
    pub fn handler_latency(&self, id: HandlerId) -> Option<LatencySnapshot> {
        self.inner
            .handlers
            .lock()
            .get(&id)
            .map(|h| h.counters.latency())
    }

    /// The handler's backlog and counters; `None` for unknown ids.
    pub fn handler_status(&self, id: HandlerId) -> Option<HandlerStatus> {
        self.inner
            .handlers
            .lock()
            .get(&id)
            .map(|h| h.counters.snapshot())
    }

    /// Whether the first complete list is in the cache (client-go's `HasSynced`).
    pub fn has_synced(&self) -> bool {
        self.inner.store.has_synced()
    }

    /// Waits for the first complete list, at most `timeout`; returns whether it synced.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.inner.store.wait_synced())
            .await
            .is_ok()
    }

    /// The cache's read handle (client-go's `GetIndexer`/`GetStore`).
    #[doc(alias = "GetIndexer")]
    pub fn store(&self) -> Store<K> {
        self.inner.store.clone()
    }

    /// The cache's read handle, by client-go's name for it; the same as [`store`](Self::store).
    pub fn indexer(&self) -> Store<K> {
        self.store()
    }

    /// Namespace-aware reads (client-go's generated listers).
    pub fn lister(&self) -> Lister<K> {
        Lister::new(self.inner.store.clone())
    }

    /// Adds index functions (client-go's `AddIndexers`), indexing what is cached already.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use panoptes_actors::{Informer, Transform, ids::ClusterId};
    /// # use k8s_openapi::api::core::v1::Pod;
    /// # actix::System::new().block_on(async {
    /// # let (informer, _feed) = Informer::<Pod>::detached(ClusterId::new("test"), "v1/pods", Transform::default());
    /// informer.add_indexer("by-node", |pod: &Pod| {
    ///     pod.spec.as_ref().and_then(|s| s.node_name.clone()).into_iter().collect()
    /// }).await?;
    /// let on_node = informer.store().by_index("by-node", "node-1")?;
    /// # informer.stop();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn add_indexer(
        &self,
        name: &str,
        index_fn: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> Result<(), InformerError> {
        self.add_indexers(vec![(
            IndexName::new(name),
            Arc::new(index_fn) as IndexFn<K>,
        )])
        .await
    }

    /// Adds several index functions at once.
    pub async fn add_indexers(
        &self,
        indexers: Vec<(IndexName, IndexFn<K>)>,
    ) -> Result<(), InformerError> {
        match self.inner.indexer.send(AddIndexers { indexers }).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(self.stopped()),
        }
    }

    /// Queues index functions without waiting for the indexer: they are added before the
    /// next batch it applies, indexing what is cached already. Until then `by_index` on them
    /// answers [`IndexError::UnknownIndex`]. A name that is taken keeps its first function
    /// (what a caller adding the same function from two handles wants). For callers that
    /// cannot await, such as a cluster joining a multi-cluster informer.
    pub fn add_indexers_nowait(&self, indexers: Vec<(IndexName, IndexFn<K>)>) {
        self.inner.indexer.do_send(AddIndexers { indexers });
    }

    /// The FIFO's queue now (metrics, tests).
    pub async fn fifo_status(&self) -> Result<FifoStatus, InformerError> {
        self.inner
            .fifo
            .send(GetFifoStatus)
            .await
            .map_err(|_| self.stopped())
    }

    /// The reflector's latest report, if it sent one.
    pub fn reflector_report(&self) -> Option<ReflectorReport> {
        self.inner.reflector_report.lock().clone()
    }

    /// Calls `handler` when this pipeline starts failing, fails differently, or (if it is
    /// failing now) at once — client-go's `SetWatchErrorHandler`. Each such change is also
    /// logged once; see [`crate::watch_error`]. The handler runs on the pipeline's thread: keep
    /// it quick. Handlers are per pipeline, so they are shared by every handle to it.
    ///
    /// ```
    /// # use panoptes_actors::{Informer, Transform, ids::ClusterId};
    /// # use k8s_openapi::api::core::v1::Pod;
    /// # actix::System::new().block_on(async {
    /// # let (informer, _feed) = Informer::<Pod>::detached(ClusterId::new("east"), "v1/pods", Transform::default());
    /// let id = informer.on_watch_error(|error| eprintln!("{error}"));
    /// assert!(informer.remove_watch_error_handler(id));
    /// # informer.stop();
    /// # });
    /// ```
    pub fn on_watch_error(
        &self,
        handler: impl Fn(&WatchError) + Send + Sync + 'static,
    ) -> WatchErrorHandlerId {
        self.inner.watch_errors.add(Arc::new(handler))
    }

    /// Removes a handler added with [`Informer::on_watch_error`]. False if unknown.
    pub fn remove_watch_error_handler(&self, id: WatchErrorHandlerId) -> bool {
        self.inner.watch_errors.remove(id)
    }

    /// The failure this pipeline is in now (`None` while healthy).
    pub fn watch_error(&self) -> Option<WatchError> {
        self.inner.watch_errors.current()
    }

    fn stopped(&self) -> InformerError {
        InformerError::Stopped {
            cluster: self.inner.cluster.clone(),
            resource: self.inner.resource.to_string(),
        }
    }
}
