//! One informer over many clusters: [`MultiInformer<K>`] holds one shared pipeline per
//! cluster of its selection (through the [`Registry`](panoptes_actors::Registry), so it costs no watch when another
//! part of the program already watches the same thing) and fans every handler out to all of
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::quarantine::{BadInput, Quarantined};
use panoptes_actors::reflector::ReflectorState;
use panoptes_actors::registry::{PipelineRequest, RegistryError};
use panoptes_actors::{
    CacheObject, Event, EventHandler, EventMap, HandlerId, HandlerOptions, HandlerStatus,
    InformerHandle, Stage,
};
use parking_lot::Mutex;

/// Opens the pipeline of one cluster for a multi-cluster informer.
pub(crate) type Opener<K> =
    Box<dyn Fn(&PipelineRequest) -> Result<InformerHandle<K>, RegistryError> + Send + Sync>;

/// Identifies a handler added to a [`MultiInformer`] (on every cluster at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MultiHandlerId(pub u64);

type SharedFn<K> = Arc<dyn Fn(Event<K>) + Send + Sync>;

#[derive(Clone)]
enum HandlerKind<K: CacheObject> {
    Recipient(Recipient<Event<K>>),
    Fn(SharedFn<K>),
}

#[derive(Clone)]
struct HandlerSpec<K: CacheObject> {
    kind: HandlerKind<K>,
    options: HandlerOptions,
}

struct Member<K: CacheObject> {
    handle: InformerHandle<K>,
    handlers: BTreeMap<MultiHandlerId, HandlerId>,
    forbidden_reported: bool,
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
}

pub(crate) struct Inner<K: CacheObject> {
    resource: String,
    opener: Opener<K>,
    members: Mutex<BTreeMap<ClusterId, Member<K>>>,
    handlers: Mutex<BTreeMap<MultiHandlerId, HandlerSpec<K>>>,
    next_handler: Mutex<u64>,
    /// Clusters that could not be opened, with why.
    failed: Mutex<BTreeMap<ClusterId, String>>,
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
                resource,
                opener,
                members: Mutex::default(),
                handlers: Mutex::default(),
                next_handler: Mutex::new(1),
                failed: Mutex::default(),
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

    /// Adds an actor handler on every cluster (and on clusters joining later). Events reach
    /// it one at a time per cluster, each naming its cluster.
    pub fn add_handler(
        &self,
        handler: Recipient<Event<K>>,
        options: HandlerOptions,
    ) -> MultiHandlerId {
        self.add(HandlerSpec {
            kind: HandlerKind::Recipient(handler),
            options,
        })
    }

    /// Adds a closure handler on every cluster; it runs on each cluster's pipeline thread,
    /// so it must be quick and thread-safe.
    pub fn add_handler_fn(
        &self,
        handler: impl Fn(Event<K>) + Send + Sync + 'static,
        options: HandlerOptions,
    ) -> MultiHandlerId {
        self.add(HandlerSpec {
            kind: HandlerKind::Fn(Arc::new(handler)),
            options,
        })
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
        let id = {
            let mut next = self.inner.next_handler.lock();
            *next += 1;
            MultiHandlerId(*next - 1)
        };
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
                    retry_in: Duration::ZERO,
                }),
                backlog: 0,
                lists: 0,
                watches: 0,
                bad_input: BTreeMap::new(),
                quarantined: Vec::new(),
                stage_restarts: Vec::new(),
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
        self.inner.members.lock().insert(
            cluster,
            Member {
                handle,
                handlers,
                forbidden_reported: false,
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

    /// Logs a forbidden resource once per cluster (the reflector itself retries slowly).
    pub(crate) fn report_forbidden(&self) -> Vec<(ClusterId, String)> {
        let mut newly = Vec::new();
        for (cluster, member) in self.inner.members.lock().iter_mut() {
            let forbidden = matches!(
                member.handle.informer().reflector_report().map(|r| r.state),
                Some(ReflectorState::Forbidden { .. })
            );
            if forbidden && !member.forbidden_reported {
                newly.push((cluster.clone(), self.inner.resource.clone()));
            }
            member.forbidden_reported = forbidden;
        }
        newly
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
            EventHandler::Fn(Box::new(move |event| f(event)))
        }
        HandlerKind::Recipient(recipient) => EventHandler::Recipient(recipient.clone()),
    };
    let cluster = cluster.clone();
    let relabel: EventMap<K> = Arc::new(move |event| Some(relabel(event, &cluster)));
    handle.add_mapped_handler(handler, spec.options, Some(relabel))
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
    fn report_forbidden(&self) -> Vec<(ClusterId, String)>;
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
    fn report_forbidden(&self) -> Vec<(ClusterId, String)> {
        self.upgrade()
            .map(|i| i.report_forbidden())
            .unwrap_or_default()
    }
    fn wants(&self, cluster: &ClusterId) -> bool {
        match &self.selection {
            crate::config::ClusterSelection::All => true,
            crate::config::ClusterSelection::Named(names) => names.contains(cluster),
        }
    }
}
