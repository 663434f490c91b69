//! [`Controller`]: a bounded pool of workers that take keys from a [`WorkQueue`] and ask the
//! user's **reconciler actor** to bring each object to its desired state — kube-runtime's
//! `Controller` and controller-runtime's `controller.Controller`, over many clusters.
//!
//! # Contract
//! - A reconciler is an actix actor implementing `Handler<Reconcile<K>>` and answering
//!   `Result<Action, ReconcileError>`. The message names the object ([`ReconcileKey`]: cluster,
//!   namespace, name), carries the object as cached when the reconcile started (`None` once it
//!   is gone: reconcile from the key, not from an event), and a [`ReconcileContext`] that
//!   reaches that cluster's `kube::Client` and the primary resource's cache.
//! - At most `workers` reconciles run at once, and never two for one key (the queue's
//!   guarantee). A handler that answers with a future (`ResponseFuture`) lets them overlap,
//!   as actix runs such answers beside the actor; one that answers directly runs them one
//!   at a time.
//! - Outcomes: [`Action::Done`] forgets the key's backoff; [`Action::RequeueAfter`] queues it
//!   again after the delay; [`Action::Requeue`] and any error (or a reconciler that is gone)
//!   queue it again after the key's rate-limited backoff (5 ms doubling to 1000 s, at most
//!   10/s overall past a burst of 100, by default).
//! - **Leadership.** A worker starts a reconcile only while [`Leadership::is_leader`]; a key
//!   it got while the gate closed goes back to the queue. Followers keep queueing keys, so a
//!   new leader starts with every key that changed meanwhile.
//! - **Clusters.** The context source decides which clusters are live: a key whose cluster
//!   has none is dropped without a reconcile.
//!
//! # Tracing
//! Each reconcile runs in a `reconcile` span (`controller`, `cluster`, `key`) whose parent is
//! the span of the first add that queued the key (the informer notification of the event),
//! with span links (`follows_from`) to the adds coalesced into it. The span travels in the
//! message ([`Reconcile::span`]): enter it in the handler to log inside it.
//!
//! # Lifecycle
//! [`Controller::start`] spawns the queue and the workers on the current actix arbiter.
//! [`Controller::shutdown`] stops the queue (draining or abandoning it) and waits for the
//! workers: no reconcile starts after it returned.

pub mod mapping;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;
use tracing::Instrument;

use crate::controller_metrics::{ControllerMetrics, ReconcileOutcome};
use crate::ids::ClusterId;
use crate::leadership::Leadership;
use crate::object::CacheObject;
use crate::rate_limiter::RateLimits;
use crate::registry::InformerHandle;
use crate::work_queue::{self, QueueItem, ReconcileKey, ShutdownMode, Then, WorkQueue};

/// Default number of workers: controller-runtime's `MaxConcurrentReconciles` is 1; a
/// multi-cluster controller serves several clusters, so it gets a few.
pub const DEFAULT_WORKERS: usize = 4;

/// What a reconciler wants next for the key it reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object (or something mapped to it) changes again.
    Done,
    /// Call again after the key's rate-limited backoff (as after an error, without one).
    Requeue,
    /// Call again after this delay (a periodic check); the key's backoff starts over.
    RequeueAfter(Duration),
}

/// Why a reconcile failed. Any `std::error::Error` converts into it (`?` works), a plain
/// message through [`ReconcileError::msg`]; the key is retried with backoff either way.
pub struct ReconcileError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl ReconcileError {
    /// An error with only a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self(message.to_string().into())
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ReconcileError {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ReconcileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What a reconcile may reach on the key's cluster: its client and the primary resource's
/// cache. Cheap to clone.
pub struct ReconcileContext<K: CacheObject> {
    cluster: ClusterId,
    client: kube::Client,
    primary: InformerHandle<K>,
}

impl<K: CacheObject> Clone for ReconcileContext<K> {
    fn clone(&self) -> Self {
        Self {
            cluster: self.cluster.clone(),
            client: self.client.clone(),
            primary: self.primary.clone(),
        }
    }
}

impl<K: CacheObject> ReconcileContext<K> {
    /// The context of `cluster`, reaching it through `client`, reading `primary`'s cache.
    pub fn new(cluster: ClusterId, client: kube::Client, primary: InformerHandle<K>) -> Self {
        Self {
            cluster,
            client,
            primary,
        }
    }

    /// The configured name of the cluster.
    pub fn cluster(&self) -> &ClusterId {
        &self.cluster
    }

    /// The cluster's client, for writes (and reads the cache cannot answer).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The primary resource's shared cache on this cluster (`get`, `list`, `informer()`).
    pub fn primary(&self) -> &InformerHandle<K> {
        &self.primary
    }

    /// The cached object `key` names (`None` if it is not, or no longer, in the cache).
    pub fn get(&self, key: &ReconcileKey) -> Option<Arc<K>> {
        self.primary.get(key.namespace.as_deref(), &key.name)
    }
}

/// Reconcile one object. Sent with `send` by a controller worker, which waits for the answer
/// before it takes its next key.
#[derive(Message)]
#[rtype(result = "Result<Action, ReconcileError>")]
pub struct Reconcile<K: CacheObject> {
    /// Which object: cluster, namespace, name.
    pub key: ReconcileKey,
    /// The object as cached when the reconcile started; `None` if it is gone.
    pub object: Option<Arc<K>>,
    /// The cluster's client and caches.
    pub ctx: ReconcileContext<K>,
    /// The `reconcile` span; enter it to log inside the reconcile's trace.
    pub span: tracing::Span,
    /// How often this key was retried since it last succeeded.
    pub requeues: u32,
}

/// Gives the context of a cluster, or `None` when the cluster is not (or no longer) live.
pub type ContextSource<K> = Arc<dyn Fn(&ClusterId) -> Option<ReconcileContext<K>> + Send + Sync>;

/// How a controller runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerOptions {
    /// The controller's name: the `controller` / `name` label of its metrics and the
    /// `controller` field of its spans.
    pub name: String,
    /// Reconciles at most running at once (at least 1).
    pub workers: usize,
    /// The retry delays of failed keys.
    pub rate_limits: RateLimits,
}

impl ControllerOptions {
    /// Defaults for a controller called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            workers: DEFAULT_WORKERS,
            rate_limits: RateLimits::default(),
        }
    }
}

/// A running controller: its queue and workers. See the module docs.
pub struct Controller {
    name: Arc<str>,
    queue: Addr<WorkQueue>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Controller {
    /// Starts the queue and `options.workers` workers on the current actix arbiter; each
    /// reconciles through `reconciler` with the context `contexts` gives for the key's cluster.
    pub fn start<K: CacheObject>(
        options: ControllerOptions,
        reconciler: Recipient<Reconcile<K>>,
        contexts: ContextSource<K>,
        leadership: Leadership,
        metrics: Arc<dyn ControllerMetrics>,
    ) -> Self {
        let queue = WorkQueue::new(options.rate_limits, metrics.clone()).start();
        let name: Arc<str> = options.name.into();
        let active = Arc::new(AtomicUsize::new(0));
        let workers = (0..options.workers.max(1))
            .map(|_| {
                let worker = Worker {
                    controller: name.clone(),
                    queue: queue.clone(),
                    reconciler: reconciler.clone(),
                    contexts: contexts.clone(),
                    leadership: leadership.clone(),
                    metrics: metrics.clone(),
                    active: active.clone(),
                };
                actix::spawn(worker.run())
            })
            .collect();
        Self {
            name,
            queue,
            workers,
        }
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its work queue: send [`work_queue::Add`] (or the other messages) to queue keys.
    pub fn queue(&self) -> &Addr<WorkQueue> {
        &self.queue
    }

    /// Queues `key`, continuing the current span's trace.
    pub fn enqueue(&self, key: ReconcileKey) {
        self.queue.do_send(work_queue::Add {
            key,
            span: tracing::Span::current(),
        });
    }

    /// Stops the queue as `mode` says and waits until every worker has finished.
    pub async fn shutdown(self, mode: ShutdownMode) {
        // A queue already stopped answers with an error: it is shut down either way.
        let _ = self.queue.send(work_queue::ShutDown(mode)).await;
        for worker in self.workers {
            let _ = worker.await;
        }
    }
}

/// One worker: gets a key, reconciles it, reports the outcome, again.
struct Worker<K: CacheObject> {
    controller: Arc<str>,
    queue: Addr<WorkQueue>,
    reconciler: Recipient<Reconcile<K>>,
    contexts: ContextSource<K>,
    leadership: Leadership,
    metrics: Arc<dyn ControllerMetrics>,
    active: Arc<AtomicUsize>,
}

impl<K: CacheObject> Worker<K> {
    async fn run(mut self) {
        loop {
            if !self.leadership.wait_leading().await {
                tracing::warn!(controller = %self.controller, "leadership gate gone; worker stops");
                return;
            }
            let Ok(Some(item)) = self.queue.send(work_queue::Get).await else {
                return;
            };
            if !self.leadership.is_leader() {
                // Lost the lead while waiting: the key waits for the next leader.
                self.finish(item.key, Then::Again);
                continue;
            }
            self.reconcile(item).await;
        }
    }

    async fn reconcile(&self, item: QueueItem) {
        let QueueItem {
            key,
            spans,
            requeues,
        } = item;
        let Some(ctx) = (self.contexts)(&key.cluster) else {
            tracing::debug!(controller = %self.controller, %key, "cluster not live; key dropped");
            self.finish(key, Then::Forget);
            return;
        };
        let span = reconcile_span(&self.controller, &key, &spans);
        let object = ctx.get(&key);
        let message = Reconcile {
            key: key.clone(),
            object,
            ctx,
            span: span.clone(),
            requeues,
        };
        let active = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.active_workers(active);
        let started = Instant::now();
        let answer = self.reconciler.send(message).instrument(span.clone()).await;
        let took = started.elapsed();
        let active = self.active.fetch_sub(1, Ordering::Relaxed) - 1;
        self.metrics.active_workers(active);
        let _entered = span.enter();
        let (outcome, then) = match answer {
            Ok(Ok(Action::Done)) => (ReconcileOutcome::Success, Then::Forget),
            Ok(Ok(Action::RequeueAfter(delay))) => {
                (ReconcileOutcome::RequeueAfter, Then::After(delay))
            }
            Ok(Ok(Action::Requeue)) => (ReconcileOutcome::Requeue, Then::RateLimited),
            Ok(Err(error)) => {
                tracing::warn!(%error, requeues, "reconcile failed; retrying with backoff");
                (ReconcileOutcome::Error, Then::RateLimited)
            }
            Err(error) => {
                tracing::error!(%error, "reconciler unreachable; retrying with backoff");
                (ReconcileOutcome::Error, Then::RateLimited)
            }
        };
        self.metrics.reconciled(&key.cluster, outcome, took);
        self.finish(key, then);
    }

    fn finish(&self, key: ReconcileKey, then: Then) {
        self.queue.do_send(work_queue::Done { key, then });
    }
}

/// The `reconcile` span: child of the first add's span, linked to the others.
fn reconcile_span(controller: &str, key: &ReconcileKey, spans: &[tracing::Span]) -> tracing::Span {
    let parent = spans.first().and_then(|s| s.id());
    let span = tracing::info_span!(
        parent: parent,
        "reconcile",
        controller = %controller,
        cluster = %key.cluster,
        key = %key,
    );
    for coalesced in spans.iter().skip(1) {
        span.follows_from(coalesced);
    }
    span
}
