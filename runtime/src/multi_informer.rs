//! One informer over many clusters: [`MultiInformer<K>`] holds one shared pipeline per
//! cluster of its selection (through the [`Registry`](panoptes_actors::Registry), so it
//! costs no watch when another part of the program already watches the same thing) and fans
//! every handler out to all of
//! them.
//!
//! # Contract
//! - Every event names the *configured* cluster it came from, even when two configured
//!   clusters share one pipeline (same server, same identity): each cluster's copy of a
//!   handler relabels its events.
//! - Listers per cluster ([`MultiInformer::list`]) and across all ([`MultiInformer::list_all`]);
//!   `has_synced` per cluster and overall. A cluster that cannot be reached retries with the
//!   reflector's backoff, stays not synced, and never holds back another cluster's events.
//! - **Joining** (a cluster added by a reload): its pipeline is opened and every handler
//!   gets that cluster's objects as `Added { initial: true }`, then its changes.
//! - **Leaving** (a cluster removed by a reload): its handlers are removed and its pipeline
//!   released (stopped, watch closed, unless something else holds it). Handlers see no
//!   synthetic deletions — the cluster's events simply stop — and its objects disappear from
//!   `list`/`list_all`. Code that must forget them reacts to [`Event::cluster`] no longer
//!   being in [`MultiInformer::clusters`].
//! - Dropping the last clone removes every handler and releases every pipeline.
//!
//! # Handlers
//! [`MultiInformer::add_handler`] takes what [`Informer::add_handler`] takes (an
//! [`EventHandler`]): an actor's [`Recipient`], a restartable actor factory
//! ([`handler_actor`]) or an `FnMut` closure ([`handler_fn`]). Each cluster gets its own
//! listener, so events of one cluster reach the handler in order and a slow cluster holds
//! back only its own listener. What is shared across clusters:
//! - a **recipient** is one actor: it gets every cluster's events (one at a time per cluster);
//! - a **factory** is called once per cluster (and again after a crash): one actor per
//!   cluster, restarted on its own;
//! - a **closure** is *one* closure shared by every cluster's listener behind a lock, so its
//!   state (a counter, a map) needs no `Mutex` of its own; calls from two clusters never
//!   overlap. It runs on the pipeline threads: keep it short.
//!
//! # Indexes and streams
//! [`MultiInformer::add_indexer`] adds an index on every cluster, clusters joining later
//! included; [`MultiInformer::by_index`] answers across clusters, [`MultiInformer::by_index_in`]
//! for one. A filtered view (namespace or selector) answers only with what it shows.
//! [`MultiInformer::stream`] is a bounded [`EventStream`] over every cluster.
//!
//! [`Informer::add_handler`]: panoptes_actors::Informer::add_handler
//! [`handler_actor`]: panoptes_actors::handler_actor
//! [`handler_fn`]: panoptes_actors::handler_fn

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Recipient;
use panoptes_actors::event::{EventFn, HandlerFactory};
use panoptes_actors::event_stream::{EventStream, StreamHooks};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::ids::IndexName;
use panoptes_actors::latency::LatencySnapshot;
use panoptes_actors::quarantine::{BadInput, Quarantined};
use panoptes_actors::reflector::ReflectorState;
use panoptes_actors::registry::{PipelineRequest, RegistryError};
use panoptes_actors::watch_counters::WatchStats;
use panoptes_actors::watch_error::WatchErrorFn;
use panoptes_actors::{
    CacheObject, Event, EventHandler, EventMap, HandlerId, HandlerOptions, HandlerStatus,
    IndexError, IndexFn, Informer, InformerHandle, NAMESPACE_INDEX, Stage, WatchError,
    WatchErrorHandlerId,
};
use parking_lot::Mutex;

/// Opens the pipeline of one cluster for a multi-cluster informer.
pub(crate) type Opener<K> =
    Box<dyn Fn(&PipelineRequest) -> Result<InformerHandle<K>, RegistryError> + Send + Sync>;

/// Identifies a handler added to a [`MultiInformer`] (on every cluster at once). Unique in
/// the process, so it can name the handler in metrics (`handler` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MultiHandlerId(pub u64);

/// The next [`MultiHandlerId`], process-wide.
static NEXT_HANDLER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One handler of a [`MultiInformer`] on one cluster, as [`MultiInformer::status`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerReport {
    /// The handler, as [`MultiInformer::add_handler`] returned it.
    pub handler: MultiHandlerId,
    /// Backlog and counters.
    pub status: HandlerStatus,
    /// Event latency, from the reflector reading an event to the handler returning.
    pub latency: LatencySnapshot,
}

/// A handler as every cluster's listener shares it (see "Handlers" in the module docs).
enum HandlerKind<K: CacheObject> {
    Recipient(Recipient<Event<K>>),
    /// Called by each cluster's listener for its own actor.
    Actor(Arc<Mutex<HandlerFactory<K>>>),
    /// One closure, called by one listener at a time.
    Fn(Arc<Mutex<EventFn<K>>>),
}

impl<K: CacheObject> Clone for HandlerKind<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Recipient(recipient) => Self::Recipient(recipient.clone()),
            Self::Actor(factory) => Self::Actor(factory.clone()),
            Self::Fn(f) => Self::Fn(f.clone()),
        }
    }
}

impl<K: CacheObject> From<EventHandler<K>> for HandlerKind<K> {
    fn from(handler: EventHandler<K>) -> Self {
        match handler {
            EventHandler::Recipient(recipient) => Self::Recipient(recipient),
            EventHandler::Actor(factory) => Self::Actor(Arc::new(Mutex::new(factory))),
            EventHandler::Fn(f) => Self::Fn(Arc::new(Mutex::new(f))),
        }
    }
}

struct HandlerSpec<K: CacheObject> {
    kind: HandlerKind<K>,
    options: HandlerOptions<K>,
}

impl<K: CacheObject> Clone for HandlerSpec<K> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind.clone(),
            options: self.options.clone(),
        }
    }
}

/// Numbers multi-cluster informers, so the indexes each adds to shared pipelines never
/// collide with another's of the same name.
static NEXT_INFORMER: AtomicU64 = AtomicU64::new(1);

/// An index added to a multi-cluster informer: the user's function, and the name it has in
/// the (possibly shared) pipelines.
struct FleetIndex<K> {
    index_fn: IndexFn<K>,
    pipeline_name: IndexName,
}

impl<K> Clone for FleetIndex<K> {
    fn clone(&self) -> Self {
        Self {
            index_fn: self.index_fn.clone(),
            pipeline_name: self.pipeline_name.clone(),
        }
    }
}

struct Member<K: CacheObject> {
    handle: InformerHandle<K>,
    handlers: BTreeMap<MultiHandlerId, HandlerId>,
    /// The [`MultiInformer::on_watch_error`] handler as installed on this cluster's pipeline.
    watch_error: Option<WatchErrorHandlerId>,
}

/// The state of one cluster of a multi-cluster informer.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInformerStatus {
    /// The `[[clusters]]` entry's name.
    pub cluster: ClusterId,
    /// The resource (`v1/pods`).
    pub resource: String,
    /// Its cache has synced (the first complete list is in).
    pub synced: bool,
    /// Objects this informer shows for the cluster.
    pub objects: usize,
    /// What its reflector does now (`None` before its first report).
    pub state: Option<ReflectorState>,
    /// Events buffered and not yet handled, summed over this informer's handlers.
    pub backlog: usize,
    /// Lists made, including relists.
    pub lists: u64,
    /// Watches opened.
    pub watches: u64,
    /// Bad input its reflector met, by reason.
    pub bad_input: BTreeMap<BadInput, u64>,
    /// Objects its reflector set aside now.
    pub quarantined: Vec<Quarantined>,
    /// Pipeline restarts after a stage panicked, per stage.
    pub stage_restarts: Vec<(Stage, u64)>,
    /// Lists after the first sync (410 Gone, failed lists).
    pub relists: u64,
    /// Events by type, watch endings by reason, last arrival (`None`: no pipeline).
    pub watch: Option<WatchStats>,
    /// This informer's handlers on the cluster, in id order.
    pub handlers: Vec<HandlerReport>,
}

pub(crate) struct Inner<K: CacheObject> {
    /// Process-unique, from [`NEXT_INFORMER`].
    number: u64,
    resource: String,
    opener: Opener<K>,
    members: Mutex<BTreeMap<ClusterId, Member<K>>>,
    handlers: Mutex<BTreeMap<MultiHandlerId, HandlerSpec<K>>>,
    /// By the name the user gave; installed on every member, and on each one that joins.
    indexes: Mutex<BTreeMap<String, FleetIndex<K>>>,
    /// Clusters that could not be opened, with why.
    failed: Mutex<BTreeMap<ClusterId, String>>,
    /// Set by [`MultiInformer::on_watch_error`]; installed on every member's pipeline.
    watch_error: Mutex<Option<WatchErrorFn>>,
}

/// A shared informer over a set of clusters. Cheap to clone.
pub struct MultiInformer<K: CacheObject> {
    inner: Arc<Inner<K>>,
}

impl<K: CacheObject> Clone for MultiInformer<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K: CacheObject> MultiInformer<K> {
    pub(crate) fn new(resource: String, opener: Opener<K>) -> Self {
        Self {
            inner: Arc::new(Inner {
                number: NEXT_INFORMER.fetch_add(1, Ordering::Relaxed),
                resource,
                opener,
                members: Mutex::default(),
                handlers: Mutex::default(),
                indexes: Mutex::default(),
                failed: Mutex::default(),
                watch_error: Mutex::default(),
            }),
        }
    }

    /// `v1/pods`.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The clusters it informs about now, in name order.
    pub fn clusters(&self) -> Vec<ClusterId> {
        self.inner.members.lock().keys().cloned().collect()
    }

    /// Adds a handler on every cluster (and on clusters joining later): an actor's
    /// [`Recipient`], [`handler_actor`](panoptes_actors::handler_actor) (restarted if it
    /// panics) or [`handler_fn`](panoptes_actors::handler_fn) (an `FnMut`). Events of one
    /// cluster arrive in order, each naming its cluster; see "Handlers" in the module docs for
    /// what is shared between clusters. `options` may carry a
    /// [`Predicate`](panoptes_actors::Predicate).
    ///
    /// ```no_run
    /// # fn demo(pods: panoptes_runtime::MultiInformer<k8s_openapi::api::core::v1::Pod>) {
    /// use panoptes_actors::{HandlerOptions, handler_fn, predicate};
    ///
    /// let mut restarts_seen = 0;
    /// pods.add_handler(
    ///     handler_fn(move |event| {
    ///         restarts_seen += 1;
    ///         println!("{} changed ({restarts_seen} so far)", event.key());
    ///     }),
    ///     HandlerOptions::default().predicate(predicate::status_changed()),
    /// );
    /// # }
    /// ```
    pub fn add_handler(
        &self,
        handler: impl Into<EventHandler<K>>,
        options: HandlerOptions<K>,
    ) -> MultiHandlerId {
        self.add(HandlerSpec {
            kind: handler.into().into(),
            options,
        })
    }

    /// Adds a closure handler on every cluster: the same as
    /// `add_handler(handler_fn(handler), options)`. One closure serves every cluster (calls
    /// never overlap), on the pipelines' threads, so it must be quick.
    pub fn add_handler_fn(
        &self,
        handler: impl FnMut(Event<K>) + Send + 'static,
        options: HandlerOptions<K>,
    ) -> MultiHandlerId {
        self.add_handler(panoptes_actors::handler_fn(handler), options)
    }

    /// Every cluster's events as one bounded [`EventStream`]: each cluster's cache as initial
    /// adds, then its changes, in order per cluster. A slow consumer holds back only this
    /// stream. Dropping it removes its handler from every cluster.
    ///
    /// ```no_run
    /// # async fn demo(pods: panoptes_runtime::MultiInformer<k8s_openapi::api::core::v1::Pod>) {
    /// use futures::StreamExt;
    ///
    /// let mut events = pods.stream();
    /// while let Some(event) = events.next().await {
    ///     println!("{}: {}", event.cluster(), event.key());
    /// }
    /// # }
    /// ```
    pub fn stream(&self) -> EventStream<K> {
        self.stream_with(HandlerOptions::default())
    }

    /// [`stream`](Self::stream) with a handler's options (resync, coalescing, predicate).
    pub fn stream_with(&self, options: HandlerOptions<K>) -> EventStream<K> {
        EventStream::attach(|handler| {
            let id = self.add_handler(handler, options);
            let (informer, status) = (self.clone(), self.clone());
            StreamHooks {
                detach: Box::new(move || {
                    informer.remove_handler(id);
                }),
                backlog: Box::new(move || {
                    status
                        .clusters()
                        .iter()
                        .filter_map(|cluster| status.handler_status(cluster, id))
                        .map(|s| s.backlog)
                        .sum()
                }),
            }
        })
    }

    /// Adds an index on every cluster, clusters joining later included (client-go's
    /// `AddIndexers`, fleet-wide). `index_fn` gives the values an object is found under.
    /// Fails with [`IndexError::DuplicateIndex`] if this informer has an index of that
    /// name. Indexes of different informers never collide, even on a shared pipeline.
    ///
    /// ```no_run
    /// # fn demo(pods: panoptes_runtime::MultiInformer<k8s_openapi::api::core::v1::Pod>) -> Result<(), panoptes_actors::IndexError> {
    /// use k8s_openapi::api::core::v1::Pod;
    ///
    /// pods.add_indexer("by-node", |pod: &Pod| {
    ///     pod.spec.as_ref().and_then(|s| s.node_name.clone()).into_iter().collect()
    /// })?;
    /// for (cluster, pod) in pods.by_index("by-node", "node-1")? {
    ///     println!("{cluster}: {:?}", pod.metadata.name);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn add_indexer(
        &self,
        name: &str,
        index_fn: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> Result<(), IndexError> {
        let index = FleetIndex {
            index_fn: Arc::new(index_fn),
            pipeline_name: IndexName::new(format!("{name}#multi-informer-{}", self.inner.number)),
        };
        {
            let mut indexes = self.inner.indexes.lock();
            if indexes.contains_key(name) || name == NAMESPACE_INDEX {
                return Err(IndexError::DuplicateIndex(name.to_string()));
            }
            indexes.insert(name.to_string(), index.clone());
        }
        for (_, handle) in self.handles() {
            install_index(&handle, &index);
        }
        Ok(())
    }

    /// The cached objects of every cluster whose index `name` holds `value`, with their
    /// cluster, in cluster order. `name` is one added with [`add_indexer`](Self::add_indexer)
    /// or the built-in [`NAMESPACE_INDEX`]; any other fails with
    /// [`IndexError::UnknownIndex`].
    pub fn by_index(
        &self,
        name: &str,
        value: &str,
    ) -> Result<Vec<(ClusterId, Arc<K>)>, IndexError> {
        let index = self.index(name)?;
        let mut found = Vec::new();
        for (cluster, handle) in self.handles() {
            let objects = lookup(&handle, name, index.as_ref(), value)?;
            found.extend(objects.into_iter().map(|obj| (cluster.clone(), obj)));
        }
        Ok(found)
    }

    /// [`by_index`](Self::by_index) on one cluster; empty for a cluster this informer does
    /// not hold.
    pub fn by_index_in(
        &self,
        cluster: &ClusterId,
        name: &str,
        value: &str,
    ) -> Result<Vec<Arc<K>>, IndexError> {
        let index = self.index(name)?;
        match self.handle(cluster) {
            Some(handle) => lookup(&handle, name, index.as_ref(), value),
            None => Ok(Vec::new()),
        }
    }

    /// The index `name` (`None` for the built-in namespace index).
    fn index(&self, name: &str) -> Result<Option<FleetIndex<K>>, IndexError> {
        match self.inner.indexes.lock().get(name) {
            Some(index) => Ok(Some(index.clone())),
            None if name == NAMESPACE_INDEX => Ok(None),
            None => Err(IndexError::UnknownIndex(name.to_string())),
        }
    }

    /// Sets the watch-error handler (client-go's `SetWatchErrorHandler`), replacing any
    /// earlier one: it is called, with the configured cluster's name, when a cluster's
    /// pipeline starts failing or fails differently (404 of a resource not yet applied, 403,
    /// TLS, unreachable, 410 storm), and at once for clusters failing now or joining in
    /// failure. Each change is also logged once (`panoptes_actors::watch_error`). It runs
    /// on the pipeline's thread: keep it quick.
    ///
    /// ```no_run
    /// # async fn demo(runtime: panoptes_runtime::Runtime) {
    /// use k8s_openapi::api::core::v1::Pod;
    ///
    /// let pods = runtime.informer::<Pod>();
    /// pods.on_watch_error(|error| {
    ///     eprintln!("{}: {} ({:?}): {}", error.cluster, error.resource, error.kind, error.message)
    /// });
    /// # }
    /// ```
    pub fn on_watch_error(&self, handler: impl Fn(&WatchError) + Send + Sync + 'static) {
        let handler: WatchErrorFn = Arc::new(handler);
        *self.inner.watch_error.lock() = Some(handler.clone());
        // Installed outside the members' lock: a cluster failing now calls the handler at
        // once, and the handler may well read this informer.
        let members: Vec<_> = self
            .inner
            .members
            .lock()
            .iter_mut()
            .map(|(cluster, member)| {
                let informer = member.handle.informer().clone();
                (cluster.clone(), informer, member.watch_error.take())
            })
            .collect();
        for (cluster, informer, old) in members {
            if let Some(old) = old {
                informer.remove_watch_error_handler(old);
            }
            let id = install_watch_error(&informer, &cluster, &handler);
            match self.inner.members.lock().get_mut(&cluster) {
                Some(member) => member.watch_error = Some(id),
                None => {
                    informer.remove_watch_error_handler(id);
                }
            }
        }
    }

    /// Removes a handler from every cluster. False if unknown.
    pub fn remove_handler(&self, id: MultiHandlerId) -> bool {
        let removed = self.inner.handlers.lock().remove(&id).is_some();
        for member in self.inner.members.lock().values_mut() {
            if let Some(handler) = member.handlers.remove(&id) {
                member.handle.remove_handler(handler);
            }
        }
        removed
    }

    fn add(&self, spec: HandlerSpec<K>) -> MultiHandlerId {
        let id = MultiHandlerId(NEXT_HANDLER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.inner.handlers.lock().insert(id, spec.clone());
        for (cluster, member) in self.inner.members.lock().iter_mut() {
            let handler = install(&member.handle, cluster, &spec);
            member.handlers.insert(id, handler);
        }
        id
    }

    /// The objects cached for `cluster`; `None` if it is not one of this informer's.
    pub fn list(&self, cluster: &ClusterId) -> Option<Vec<Arc<K>>> {
        self.inner
            .members
            .lock()
            .get(cluster)
            .map(|m| m.handle.list())
    }

    /// Every cached object of every cluster, with its cluster.
    pub fn list_all(&self) -> Vec<(ClusterId, Arc<K>)> {
        let handles: Vec<(ClusterId, InformerHandle<K>)> = self.handles();
        handles
            .into_iter()
            .flat_map(|(cluster, handle)| {
                handle
                    .list()
                    .into_iter()
                    .map(move |obj| (cluster.clone(), obj))
            })
            .collect()
    }

    /// The object `name` in `namespace` on `cluster`.
    pub fn get(&self, cluster: &ClusterId, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let handle = self.handle(cluster)?;
        handle.get(namespace, name)
    }

    /// What the copy of handler `id` on `cluster` has delivered, dropped and buffered;
    /// `None` if either is unknown.
    pub fn handler_status(&self, cluster: &ClusterId, id: MultiHandlerId) -> Option<HandlerStatus> {
        let members = self.inner.members.lock();
        let member = members.get(cluster)?;
        member.handle.handler_status(*member.handlers.get(&id)?)
    }

    /// The pipeline handle of one cluster (its unfiltered informer, handler status, ...).
    pub fn handle(&self, cluster: &ClusterId) -> Option<InformerHandle<K>> {
        self.inner
            .members
            .lock()
            .get(cluster)
            .map(|m| m.handle.clone())
    }

    fn handles(&self) -> Vec<(ClusterId, InformerHandle<K>)> {
        self.inner
            .members
            .lock()
            .iter()
            .map(|(c, m)| (c.clone(), m.handle.clone()))
            .collect()
    }

    /// Whether `cluster`'s cache has synced (false for clusters it does not hold).
    pub fn has_synced(&self, cluster: &ClusterId) -> bool {
        self.inner
            .members
            .lock()
            .get(cluster)
            .is_some_and(|m| m.handle.has_synced())
    }

    /// Whether every cluster it holds has synced and none failed to open.
    pub fn all_synced(&self) -> bool {
        self.inner.failed.lock().is_empty()
            && self
                .inner
                .members
                .lock()
                .values()
                .all(|m| m.handle.has_synced())
    }

    /// Waits until `cluster` has synced, at most `timeout`.
    pub async fn wait_synced(&self, cluster: &ClusterId, timeout: Duration) -> bool {
        match self.handle(cluster) {
            Some(handle) => handle.wait_synced(timeout).await,
            None => false,
        }
    }

    /// Waits until every cluster it holds now has synced, at most `timeout`; per cluster,
    /// whether it did. A cluster that is down only makes its own entry false.
    pub async fn wait_all_synced(&self, timeout: Duration) -> BTreeMap<ClusterId, bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        let waits = self
            .handles()
            .into_iter()
            .map(|(cluster, handle)| async move {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                (cluster, handle.wait_synced(left).await)
            });
        futures::future::join_all(waits).await.into_iter().collect()
    }

    /// Per cluster: synced, objects, reflector state, handler backlog.
    pub fn status(&self) -> Vec<ClusterInformerStatus> {
        let members = self.inner.members.lock();
        let mut statuses: Vec<_> = members
            .iter()
            .map(|(cluster, member)| {
                let report = member.handle.informer().reflector_report();
                ClusterInformerStatus {
                    cluster: cluster.clone(),
                    resource: self.inner.resource.clone(),
                    synced: member.handle.has_synced(),
                    objects: member.handle.len(),
                    backlog: member
                        .handlers
                        .values()
                        .filter_map(|id| member.handle.handler_status(*id))
                        .map(|s| s.backlog)
                        .sum(),
                    lists: report.as_ref().map_or(0, |r| r.lists),
                    relists: report.as_ref().map_or(0, |r| r.relists),
                    watch: Some(member.handle.informer().watch_stats()),
                    handlers: member
                        .handlers
                        .iter()
                        .filter_map(|(id, handler)| {
                            Some(HandlerReport {
                                handler: *id,
                                status: member.handle.handler_status(*handler)?,
                                latency: member.handle.handler_latency(*handler)?,
                            })
                        })
                        .collect(),
                    watches: report.as_ref().map_or(0, |r| r.watches),
                    bad_input: report
                        .as_ref()
                        .map(|r| r.bad_input.clone())
                        .unwrap_or_default(),
                    quarantined: report
                        .as_ref()
                        .map(|r| r.quarantined.clone())
                        .unwrap_or_default(),
                    state: report.map(|r| r.state),
                    stage_restarts: Stage::ALL
                        .iter()
                        .map(|stage| (*stage, member.handle.informer().stage_restarts(*stage)))
                        .collect(),
                }
            })
            .collect();
        for (cluster, error) in self.inner.failed.lock().iter() {
            statuses.push(ClusterInformerStatus {
                cluster: cluster.clone(),
                resource: self.inner.resource.clone(),
                synced: false,
                objects: 0,
                state: Some(ReflectorState::BackingOff {
                    error: error.clone(),
                    code: None,
                    retry_in: Duration::ZERO,
                }),
                backlog: 0,
                lists: 0,
                watches: 0,
                bad_input: BTreeMap::new(),
                quarantined: Vec::new(),
                stage_restarts: Vec::new(),
                relists: 0,
                watch: None,
                handlers: Vec::new(),
            });
        }
        statuses
    }

    /// Opens `cluster`'s pipeline and installs every handler on it. Does nothing if it is
    /// already a member.
    pub(crate) fn join(&self, request: &PipelineRequest) {
        let cluster = request.cluster.clone();
        if self.inner.members.lock().contains_key(&cluster) {
            return;
        }
        let handle = match (self.inner.opener)(request) {
            Ok(handle) => handle,
            Err(error) => {
                tracing::error!(%cluster, resource = %self.inner.resource, %error, "cannot watch");
                self.inner.failed.lock().insert(cluster, error.to_string());
                return;
            }
        };
        let indexes: Vec<_> = self.inner.indexes.lock().values().cloned().collect();
        for index in &indexes {
            install_index(&handle, index);
        }
        let specs: Vec<_> = self
            .inner
            .handlers
            .lock()
            .iter()
            .map(|(id, spec)| (*id, spec.clone()))
            .collect();
        let handlers = specs
            .iter()
            .map(|(id, spec)| (*id, install(&handle, &cluster, spec)))
            .collect();
        let watch_error_fn = self.inner.watch_error.lock().clone();
        let watch_error =
            watch_error_fn.map(|f| install_watch_error(handle.informer(), &cluster, &f));
        self.inner.members.lock().insert(
            cluster,
            Member {
                handle,
                handlers,
                watch_error,
            },
        );
    }

    /// Removes every handler from `cluster` and releases its pipeline.
    pub(crate) fn leave(&self, cluster: &ClusterId) {
        self.inner.failed.lock().remove(cluster);
        let member = self.inner.members.lock().remove(cluster);
        if let Some(member) = member {
            release(member);
        }
    }
}

fn install<K: CacheObject>(
    handle: &InformerHandle<K>,
    cluster: &ClusterId,
    spec: &HandlerSpec<K>,
) -> HandlerId {
    let handler: EventHandler<K> = match &spec.kind {
        HandlerKind::Fn(f) => {
            let f = f.clone();
            EventHandler::Fn(Box::new(move |event| (f.lock())(event)))
        }
        HandlerKind::Actor(factory) => {
            let factory = factory.clone();
            EventHandler::Actor(Box::new(move |span| (factory.lock())(span)))
        }
        HandlerKind::Recipient(recipient) => EventHandler::Recipient(recipient.clone()),
    };
    let cluster = cluster.clone();
    let relabel: EventMap<K> = Arc::new(move |event| Some(relabel(event, &cluster)));
    handle.add_mapped_handler(handler, spec.options.clone(), Some(relabel))
}

/// Adds `index` to `handle`'s pipeline (kept if a sibling sharing the pipeline added it).
fn install_index<K: CacheObject>(handle: &InformerHandle<K>, index: &FleetIndex<K>) {
    handle
        .informer()
        .add_indexers_nowait(vec![(index.pipeline_name.clone(), index.index_fn.clone())]);
}

/// The objects `handle` shows under `value` of the index the user calls `name` (`index`, or
/// the namespace index for `None`). Until a freshly queued index is built, the cluster's
/// cache is scanned with its function, so a cluster that just joined answers too.
fn lookup<K: CacheObject>(
    handle: &InformerHandle<K>,
    name: &str,
    index: Option<&FleetIndex<K>>,
    value: &str,
) -> Result<Vec<Arc<K>>, IndexError> {
    let Some(index) = index else {
        return handle.by_index(name, value);
    };
    match handle.by_index(index.pipeline_name.as_str(), value) {
        Err(IndexError::UnknownIndex(_)) => Ok(handle
            .list()
            .into_iter()
            .filter(|obj| (index.index_fn)(obj).iter().any(|v| v == value))
            .collect()),
        answer => answer,
    }
}

/// The event as coming from `cluster` (the configured name, not the pipeline's).
fn relabel<K>(event: Event<K>, cluster: &ClusterId) -> Event<K> {
    match event {
        Event::Added { obj, initial, .. } => Event::Added {
            cluster: cluster.clone(),
            obj,
            initial,
        },
        Event::Updated { old, new, .. } => Event::Updated {
            cluster: cluster.clone(),
            old,
            new,
        },
        Event::Deleted {
            obj,
            final_state_unknown,
            ..
        } => Event::Deleted {
            cluster: cluster.clone(),
            obj,
            final_state_unknown,
        },
    }
}

fn release<K: CacheObject>(member: Member<K>) {
    for handler in member.handlers.values() {
        member.handle.remove_handler(*handler);
    }
    if let Some(id) = member.watch_error {
        member.handle.informer().remove_watch_error_handler(id);
    }
}

/// Installs `handler` on one member's pipeline, naming the configured cluster (a pipeline
/// shared by two configured clusters carries the first one's name).
fn install_watch_error<K: CacheObject>(
    informer: &Informer<K>,
    cluster: &ClusterId,
    handler: &WatchErrorFn,
) -> WatchErrorHandlerId {
    let (cluster, handler) = (cluster.clone(), handler.clone());
    informer.on_watch_error(move |error| {
        let relabelled = WatchError {
            cluster: cluster.clone(),
            ..error.clone()
        };
        handler(&relabelled);
    })
}

impl<K: CacheObject> Drop for Inner<K> {
    fn drop(&mut self) {
        let members = std::mem::take(&mut *self.members.lock());
        for member in members.into_values() {
            release(member);
        }
    }
}

/// What the runtime needs of every multi-cluster informer, whatever its type.
pub(crate) trait Membership: Send + Sync {
    fn join(&self, request: &PipelineRequest);
    fn leave(&self, cluster: &ClusterId);
    fn statuses(&self) -> Vec<ClusterInformerStatus>;
    fn wants(&self, cluster: &ClusterId) -> bool;
}

/// A multi-cluster informer as the runtime tracks it (weakly: dropping the informer ends it).
pub(crate) struct Tracked<K: CacheObject> {
    pub inner: std::sync::Weak<Inner<K>>,
    pub selection: crate::config::ClusterSelection,
}

impl<K: CacheObject> Tracked<K> {
    pub fn of(informer: &MultiInformer<K>, selection: crate::config::ClusterSelection) -> Self {
        Self {
            inner: Arc::downgrade(&informer.inner),
            selection,
        }
    }

    pub fn upgrade(&self) -> Option<MultiInformer<K>> {
        self.inner.upgrade().map(|inner| MultiInformer { inner })
    }

    pub fn is_alive(&self) -> bool {
        self.inner.strong_count() > 0
    }
}

impl<K: CacheObject> Membership for Tracked<K> {
    fn join(&self, request: &PipelineRequest) {
        if let Some(informer) = self.upgrade() {
            informer.join(request);
        }
    }
    fn leave(&self, cluster: &ClusterId) {
        if let Some(informer) = self.upgrade() {
            informer.leave(cluster);
        }
    }
    fn statuses(&self) -> Vec<ClusterInformerStatus> {
        self.upgrade().map(|i| i.status()).unwrap_or_default()
    }
    fn wants(&self, cluster: &ClusterId) -> bool {
        match &self.selection {
            crate::config::ClusterSelection::All => true,
            crate::config::ClusterSelection::Named(names) => names.contains(cluster),
        }
    }
}
