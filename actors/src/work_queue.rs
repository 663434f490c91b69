//! [`WorkQueue`]: the keys a controller must reconcile, as an actor with client-go's
//! workqueue semantics (`util/workqueue/queue.go`, `delaying_queue.go`,
//! `rate_limiting_queue.go` in one place).
//!
//! # Contract
//! - **Queued once.** A key added while it waits is not queued again: the adds coalesce, and
//!   the trace of each add is kept (see *Tracing*).
//! - **Never twice at once.** A key handed to a worker ([`Get`]) is *processing* until that
//!   worker reports [`Done`]. Added meanwhile, it is marked dirty and queued again at `Done`,
//!   so it is processed once more, after, never beside itself.
//! - **Order.** Keys are handed out in the order they were first queued.
//! - **Delays.** [`AddAfter`] queues a key once its delay passed; for a key already waiting
//!   the earlier time wins. A retry through the rate limiter ([`Done`] with
//!   [`Then::RateLimited`]) waits the delay of [`RateLimiter`] (per-item backoff and overall
//!   token bucket); [`Then::Forget`] resets the key's backoff.
//! - **Clusters leave.** [`ForgetCluster`] drops everything of one cluster: queued, waiting,
//!   its backoff, and the re-queue of its keys being processed.
//! - **Shutdown** ([`ShutDown`]): no add is accepted afterwards. `Drain` hands out the keys
//!   already queued (not the delayed ones) and answers once no key is queued or processing;
//!   `Abandon` drops the queued keys and answers once the keys being processed are done. Then
//!   every waiting and later [`Get`] answers `None`, and the actor stops.
//!
//! # Tracing
//! Each add may carry the span it came from (the informer notification that queued the key).
//! The item handed out carries those spans: the first is the parent of the reconcile, the
//! others (adds coalesced into it) become span links. At most [`MAX_SPANS`] are kept per key.
//!
//! # Lifecycle
//! Started by a controller, on the caller's arbiter; stops after a shutdown completes. All
//! messages but [`Get`] and [`ShutDown`] are `do_send` (they never wait); a worker awaits
//! [`Get`], which answers when a key is ready.
//!
//! # Differences from client-go
//! Keys are typed ([`ReconcileKey`], carrying the cluster), delays and the rate limiter live in
//! the one actor, and a [`Done`] says what follows (forget, retry, requeue after) in one
//! message, so a worker's outcome is applied atomically.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::controller_metrics::ControllerMetrics;
use crate::ids::ClusterId;
use crate::rate_limiter::{RateLimiter, RateLimits};

/// Most spans kept per queued key: enough to link the few events a reconcile coalesced, small
/// enough that a hot key does not grow without bound.
pub const MAX_SPANS: usize = 8;

/// How often the in-progress metrics are refreshed (controller-runtime's 500 ms).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// The object a controller reconciles: which cluster, namespace (`None` for cluster-scoped
/// objects) and name. kube-runtime's `ObjectRef`, controller-runtime's `reconcile.Request`
/// with its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReconcileKey {
    /// The configured cluster the object lives in.
    pub cluster: ClusterId,
    /// Its namespace; `None` for a cluster-scoped object.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl ReconcileKey {
    /// The key of `name` in `namespace` (empty means cluster-scoped) on `cluster`.
    pub fn new(cluster: ClusterId, namespace: Option<&str>, name: &str) -> Self {
        Self {
            cluster,
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The key of a kube object on `cluster`.
    pub fn of<K: kube::Resource>(cluster: ClusterId, obj: &K) -> Self {
        let meta = obj.meta();
        Self::new(
            cluster,
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }
}

impl fmt::Display for ReconcileKey {
    /// `cluster/namespace/name`, or `cluster/name` for a cluster-scoped object.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.cluster, ns, self.name),
            None => write!(f, "{}/{}", self.cluster, self.name),
        }
    }
}

/// A key handed to a worker.
#[derive(Debug)]
pub struct QueueItem {
    /// The key to reconcile.
    pub key: ReconcileKey,
    /// The spans of the adds this key gathered while it waited, oldest first (possibly none).
    pub spans: Vec<tracing::Span>,
    /// Retries of the key through the rate limiter since it was last forgotten.
    pub requeues: u32,
}

/// How to shut a queue down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Hand out the keys already queued, then stop.
    Drain,
    /// Drop the queued keys; stop once the keys being processed are done.
    Abandon,
}

/// What follows a worker's [`Done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Nothing: the key succeeded; its backoff starts over.
    Forget,
    /// Retry the key after its rate-limited delay (it failed, or asked to be requeued).
    RateLimited,
    /// Retry the key after this delay; its backoff starts over.
    After(Duration),
    /// Queue the key again at once, without touching its backoff (handed back unprocessed,
    /// e.g. because leadership was lost).
    Again,
}

/// Adds a key. Sent with `do_send` by whoever maps events to keys.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Add {
    /// The key.
    pub key: ReconcileKey,
    /// The span of the event that asked for it (`Span::none()` for none).
    pub span: tracing::Span,
}

/// Adds a key once `delay` has passed. Sent with `do_send`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AddAfter {
    /// The key.
    pub key: ReconcileKey,
    /// How long to wait.
    pub delay: Duration,
    /// The span of whatever asked for it.
    pub span: tracing::Span,
}

/// Adds a key after its rate-limited delay (one retry). Sent with `do_send`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AddRateLimited {
    /// The key.
    pub key: ReconcileKey,
}

/// Resets a key's backoff. Sent with `do_send`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Forget(pub ReconcileKey);

/// Asks how often a key was retried since it was last forgotten. Sent with `send`.
#[derive(Message, Debug)]
#[rtype(result = "u32")]
pub struct NumRequeues(pub ReconcileKey);

/// Asks for the next key; answers when one is ready, `None` once the queue is shut down.
/// Sent with `send` by a worker, which then owns the key until it sends [`Done`].
#[derive(Message, Debug)]
#[rtype(result = "Option<QueueItem>")]
pub struct Get;

/// A worker finished with a key it got; `then` says what follows. Sent with `do_send`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Done {
    /// The key, as [`Get`] handed it out.
    pub key: ReconcileKey,
    /// What follows.
    pub then: Then,
}

/// Drops everything of one cluster (it left the configuration). Sent with `do_send`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ForgetCluster(pub ClusterId);

/// Counts of the queue's keys, for tests and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueLen {
    /// Keys ready and waiting for a worker.
    pub queued: usize,
    /// Keys a worker holds now.
    pub processing: usize,
    /// Keys waiting for a delay to pass.
    pub delayed: usize,
}

/// Asks for the queue's counts. Sent with `send`.
#[derive(Message, Debug)]
#[rtype(result = "QueueLen")]
pub struct Len;

/// Shuts the queue down; answers when done (see the module docs). Sent with `send`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ShutDown(pub ShutdownMode);

/// A key that must be processed (again): queued, or dirty while it is processing.
struct Pending {
    /// When it was first added since it was last handed out.
    since: Instant,
    spans: Vec<tracing::Span>,
}

impl Pending {
    fn new(now: Instant, span: tracing::Span) -> Self {
        let mut pending = Self {
            since: now,
            spans: Vec::new(),
        };
        pending.push_span(span);
        pending
    }

    fn push_span(&mut self, span: tracing::Span) {
        if !span.is_none() && self.spans.len() < MAX_SPANS {
            self.spans.push(span);
        }
    }
}

/// A key a worker holds.
struct Processing {
    started: Instant,
    /// Its cluster left while it was processing: its `Done` ends it, whatever it asks.
    cluster_left: bool,
}

/// A key waiting for its delay.
struct Delayed {
    ready_at: Instant,
    spans: Vec<tracing::Span>,
}

enum State {
    Running,
    ShuttingDown {
        mode: ShutdownMode,
        answers: Vec<oneshot::Sender<()>>,
    },
    Stopped,
}

/// The queue's bookkeeping, without a `Context`, so its rules are tested synchronously.
pub struct QueueCore {
    /// Keys ready for a worker, in order. Invariant: every key here is in `dirty` and not in
    /// `processing`, and appears once.
    queue: VecDeque<ReconcileKey>,
    /// Keys that must be processed (again). Invariant: a key is in `queue` iff it is here and
    /// not in `processing`.
    dirty: HashMap<ReconcileKey, Pending>,
    /// Keys a worker holds.
    processing: HashMap<ReconcileKey, Processing>,
    /// Keys waiting for a delay to pass, each with the earliest time asked. A delayed key may
    /// also be queued or processing: when its time comes it is added like any add (and
    /// coalesces if it is still waiting).
    delayed: HashMap<ReconcileKey, Delayed>,
    /// Queued keys per cluster (the `workqueue_depth` per cluster).
    depth: HashMap<ClusterId, usize>,
    limiter: RateLimiter<ReconcileKey>,
    metrics: Arc<dyn ControllerMetrics>,
    state: State,
}

impl QueueCore {
    /// An empty queue retrying with `limits`, reporting to `metrics`.
    pub fn new(limits: RateLimits, metrics: Arc<dyn ControllerMetrics>) -> Self {
        Self {
            queue: VecDeque::new(),
            dirty: HashMap::new(),
            processing: HashMap::new(),
            delayed: HashMap::new(),
            depth: HashMap::new(),
            limiter: RateLimiter::new(limits),
            metrics,
            state: State::Running,
        }
    }

    fn accepting(&self) -> bool {
        matches!(self.state, State::Running)
    }

    /// Client-go's `Add`.
    pub fn add(&mut self, key: ReconcileKey, span: tracing::Span, now: Instant) {
        if !self.accepting() {
            return;
        }
        self.metrics.added(&key.cluster);
        if let Some(pending) = self.dirty.get_mut(&key) {
            pending.push_span(span);
            return;
        }
        self.dirty.insert(key.clone(), Pending::new(now, span));
        if !self.processing.contains_key(&key) {
            self.push(key);
        }
    }

    /// Client-go's `AddAfter`: answers the instant a timer must fire (to call
    /// [`QueueCore::ready`]), or `None` when nothing is to wait.
    pub fn add_after(
        &mut self,
        key: ReconcileKey,
        delay: Duration,
        span: tracing::Span,
        now: Instant,
    ) -> Option<Instant> {
        if !self.accepting() {
            return None;
        }
        if delay.is_zero() {
            self.add(key, span, now);
            return None;
        }
        let ready_at = now + delay;
        match self.delayed.get_mut(&key) {
            Some(waiting) if waiting.ready_at <= ready_at => {
                if !span.is_none() && waiting.spans.len() < MAX_SPANS {
                    waiting.spans.push(span);
                }
                None
            }
            Some(waiting) => {
                waiting.ready_at = ready_at;
                if !span.is_none() && waiting.spans.len() < MAX_SPANS {
                    waiting.spans.push(span);
                }
                Some(ready_at)
            }
            None => {
                let spans = if span.is_none() { vec![] } else { vec![span] };
                self.delayed.insert(key, Delayed { ready_at, spans });
                Some(ready_at)
            }
        }
    }

    /// Client-go's `AddRateLimited`: the key waits its rate-limited delay.
    pub fn add_rate_limited(&mut self, key: ReconcileKey, now: Instant) -> Option<Instant> {
        if !self.accepting() {
            return None;
        }
        self.metrics.retried(&key.cluster);
        let delay = self.limiter.when(&key, now);
        self.add_after(key, delay, tracing::Span::none(), now)
    }

    /// A delay timer fired: adds the key if its time has come.
    pub fn ready(&mut self, key: &ReconcileKey, now: Instant) {
        let due = self.delayed.get(key).is_some_and(|d| d.ready_at <= now);
        if !due {
            return;
        }
        let Some(delayed) = self.delayed.remove(key) else {
            return;
        };
        let mut spans = delayed.spans.into_iter();
        self.add(
            key.clone(),
            spans.next().unwrap_or_else(tracing::Span::none),
            now,
        );
        if let Some(pending) = self.dirty.get_mut(key) {
            for span in spans {
                pending.push_span(span);
            }
        }
    }

    /// Client-go's `Forget`.
    pub fn forget(&mut self, key: &ReconcileKey) {
        self.limiter.forget(key);
    }

    /// Client-go's `NumRequeues`.
    pub fn num_requeues(&self, key: &ReconcileKey) -> u32 {
        self.limiter.num_requeues(key)
    }

    /// Client-go's `Get`, without waiting: the next ready key, now processing.
    pub fn pop(&mut self, now: Instant) -> Option<QueueItem> {
        if matches!(
            self.state,
            State::ShuttingDown {
                mode: ShutdownMode::Abandon,
                ..
            } | State::Stopped
        ) {
            return None;
        }
        let key = self.queue.pop_front()?;
        self.count_depth(&key.cluster, -1);
        let pending = self
            .dirty
            .remove(&key)
            .expect("a queued key is dirty (QueueCore invariant)");
        self.metrics
            .queued_for(&key.cluster, now.saturating_duration_since(pending.since));
        self.processing.insert(
            key.clone(),
            Processing {
                started: now,
                cluster_left: false,
            },
        );
        Some(QueueItem {
            requeues: self.limiter.num_requeues(&key),
            key,
            spans: pending.spans,
        })
    }

    /// Client-go's `Done` followed by what the worker decided; answers the instant a timer
    /// must fire, if the key now waits.
    pub fn done(&mut self, key: &ReconcileKey, then: Then, now: Instant) -> Option<Instant> {
        let processing = self.processing.remove(key)?;
        self.metrics.worked_for(
            &key.cluster,
            now.saturating_duration_since(processing.started),
        );
        if processing.cluster_left {
            return None;
        }
        if self.dirty.contains_key(key) {
            // Added while it was processing: its turn comes now.
            self.push(key.clone());
        }
        match then {
            Then::Forget => {
                self.forget(key);
                None
            }
            Then::RateLimited => self.add_rate_limited(key.clone(), now),
            Then::After(delay) => {
                self.forget(key);
                self.add_after(key.clone(), delay, tracing::Span::none(), now)
            }
            Then::Again => {
                self.add(key.clone(), tracing::Span::none(), now);
                None
            }
        }
    }

    /// Drops everything of `cluster`.
    pub fn forget_cluster(&mut self, cluster: &ClusterId) {
        self.queue.retain(|key| &key.cluster != cluster);
        self.dirty.retain(|key, _| &key.cluster != cluster);
        self.delayed.retain(|key, _| &key.cluster != cluster);
        self.limiter.forget_where(|key| &key.cluster == cluster);
        for (key, processing) in &mut self.processing {
            processing.cluster_left |= &key.cluster == cluster;
        }
        if self.depth.remove(cluster).is_some() {
            self.metrics.depth(cluster, 0);
        }
    }

    /// Starts shutting down; `answer` is sent once [`finish_if_done`](Self::finish_if_done) finds the queue done.
    pub fn shut_down(&mut self, mode: ShutdownMode, answer: oneshot::Sender<()>) {
        match &mut self.state {
            State::Running => {
                self.delayed.clear();
                if mode == ShutdownMode::Abandon {
                    self.drop_queued();
                }
                self.state = State::ShuttingDown {
                    mode,
                    answers: vec![answer],
                };
            }
            State::ShuttingDown {
                mode: current,
                answers,
            } => {
                answers.push(answer);
                if mode == ShutdownMode::Abandon && *current == ShutdownMode::Drain {
                    *current = ShutdownMode::Abandon;
                    self.drop_queued();
                }
            }
            State::Stopped => {
                let _ = answer.send(());
            }
        }
    }

    fn drop_queued(&mut self) {
        self.queue.clear();
        self.dirty.clear();
        for (cluster, depth) in self.depth.iter_mut() {
            *depth = 0;
            self.metrics.depth(cluster, 0);
        }
    }

    /// True once shutting down and nothing is left to hand out or wait for; then answers
    /// the shutdown callers and is stopped.
    pub fn finish_if_done(&mut self) -> bool {
        let done = match &self.state {
            State::ShuttingDown { mode, .. } => {
                self.processing.is_empty()
                    && (*mode == ShutdownMode::Abandon || self.queue.is_empty())
            }
            State::Stopped => true,
            State::Running => false,
        };
        if done
            && let State::ShuttingDown { answers, .. } =
                std::mem::replace(&mut self.state, State::Stopped)
        {
            for answer in answers {
                let _ = answer.send(());
            }
        }
        done
    }

    /// Whether it no longer hands out keys.
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, State::Stopped)
    }

    /// Counts of queued, processing and delayed keys.
    pub fn len(&self) -> QueueLen {
        QueueLen {
            queued: self.queue.len(),
            processing: self.processing.len(),
            delayed: self.delayed.len(),
        }
    }

    /// Reports the age of the keys being processed, per cluster.
    pub fn report_progress(&self, now: Instant) {
        let mut per_cluster: HashMap<&ClusterId, (Duration, Duration)> = HashMap::new();
        for (key, processing) in &self.processing {
            let age = now.saturating_duration_since(processing.started);
            let entry = per_cluster.entry(&key.cluster).or_default();
            entry.0 += age;
            entry.1 = entry.1.max(age);
        }
        for cluster in self.depth.keys() {
            per_cluster.entry(cluster).or_default();
        }
        for (cluster, (unfinished, longest)) in per_cluster {
            self.metrics.in_progress(cluster, unfinished, longest);
        }
    }

    fn push(&mut self, key: ReconcileKey) {
        self.count_depth(&key.cluster, 1);
        self.queue.push_back(key);
    }

    fn count_depth(&mut self, cluster: &ClusterId, by: isize) {
        let depth = self.depth.entry(cluster.clone()).or_default();
        *depth = depth.saturating_add_signed(by);
        self.metrics.depth(cluster, *depth);
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let mut seen = std::collections::HashSet::new();
        for key in &self.queue {
            assert!(seen.insert(key), "{key} queued twice");
            assert!(self.dirty.contains_key(key), "{key} queued but not dirty");
            assert!(
                !self.processing.contains_key(key),
                "{key} queued while processing"
            );
        }
        for key in self.dirty.keys() {
            assert!(
                self.processing.contains_key(key) || seen.contains(key),
                "{key} dirty but neither queued nor processing"
            );
        }
    }
}

/// The work queue actor. See the module docs.
pub struct WorkQueue {
    core: QueueCore,
    /// Workers waiting in [`Get`], oldest first.
    getters: VecDeque<oneshot::Sender<Option<QueueItem>>>,
}

impl WorkQueue {
    /// A queue retrying with `limits`, reporting to `metrics`. Start it with `.start()`.
    pub fn new(limits: RateLimits, metrics: Arc<dyn ControllerMetrics>) -> Self {
        Self {
            core: QueueCore::new(limits, metrics),
            getters: VecDeque::new(),
        }
    }

    /// Hands ready keys to waiting workers; ends the queue once a shutdown completed.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while !self.getters.is_empty() {
            let Some(item) = self.core.pop(Instant::now()) else {
                break;
            };
            let mut item = Some(item);
            while let Some(getter) = self.getters.pop_front() {
                match getter.send(item.take()) {
                    Ok(()) => break,
                    // That worker stopped waiting; the next one gets the key.
                    Err(back) => item = back,
                }
            }
            if let Some(item) = item {
                // Nobody took it: hand it back unprocessed.
                self.core.done(&item.key, Then::Again, Instant::now());
            }
        }
        if self.core.finish_if_done() {
            for getter in self.getters.drain(..) {
                let _ = getter.send(None);
            }
            ctx.stop();
        }
    }

    fn schedule(&mut self, key: ReconcileKey, at: Option<Instant>, ctx: &mut Context<Self>) {
        if let Some(at) = at {
            let delay = at.saturating_duration_since(Instant::now());
            ctx.run_later(delay, move |act, ctx| {
                act.core.ready(&key, Instant::now());
                act.dispatch(ctx);
            });
        }
    }
}

impl Actor for WorkQueue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Workers and event handlers send many small messages; none should ever wait.
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(PROGRESS_INTERVAL, |act, _| {
            act.core.report_progress(Instant::now());
        });
    }
}

impl Handler<Add> for WorkQueue {
    type Result = ();

    fn handle(&mut self, msg: Add, ctx: &mut Self::Context) {
        self.core.add(msg.key, msg.span, Instant::now());
        self.dispatch(ctx);
    }
}

impl Handler<AddAfter> for WorkQueue {
    type Result = ();

    fn handle(&mut self, msg: AddAfter, ctx: &mut Self::Context) {
        let at = self
            .core
            .add_after(msg.key.clone(), msg.delay, msg.span, Instant::now());
        self.schedule(msg.key, at, ctx);
        self.dispatch(ctx);
    }
}

impl Handler<AddRateLimited> for WorkQueue {
    type Result = ();

    fn handle(&mut self, msg: AddRateLimited, ctx: &mut Self::Context) {
        let at = self.core.add_rate_limited(msg.key.clone(), Instant::now());
        self.schedule(msg.key, at, ctx);
        self.dispatch(ctx);
    }
}

impl Handler<Forget> for WorkQueue {
    type Result = ();

    fn handle(&mut self, msg: Forget, _: &mut Self::Context) {
        self.core.forget(&msg.0);
    }
}

impl Handler<NumRequeues> for WorkQueue {
    type Result = u32;

    fn handle(&mut self, msg: NumRequeues, _: &mut Self::Context) -> u32 {
        self.core.num_requeues(&msg.0)
    }
}

impl Handler<Get> for WorkQueue {
    type Result = ResponseFuture<Option<QueueItem>>;

    fn handle(&mut self, _: Get, ctx: &mut Self::Context) -> Self::Result {
        let (answer, item) = oneshot::channel();
        self.getters.push_back(answer);
        self.dispatch(ctx);
        Box::pin(async move { item.await.ok().flatten() })
    }
}

impl Handler<Done> for WorkQueue {
    type Result = ();

    fn handle(&mut self, msg: Done, ctx: &mut Self::Context) {
        let at = self.core.done(&msg.key, msg.then, Instant::now());
        self.schedule(msg.key, at, ctx);
        self.dispatch(ctx);
    }
}

impl Handler<ForgetCluster> for WorkQueue {
    type Result = ();

    fn handle(&mut self, msg: ForgetCluster, ctx: &mut Self::Context) {
        let _span = tracing::debug_span!("work_queue.forget_cluster", cluster = %msg.0).entered();
        self.core.forget_cluster(&msg.0);
        self.dispatch(ctx);
    }
}

impl Handler<Len> for WorkQueue {
    type Result = MessageResult<Len>;

    fn handle(&mut self, _: Len, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.len())
    }
}

impl Handler<ShutDown> for WorkQueue {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: ShutDown, ctx: &mut Self::Context) -> Self::Result {
        let (answer, done) = oneshot::channel();
        self.core.shut_down(msg.0, answer);
        self.dispatch(ctx);
        Box::pin(async move {
            let _ = done.await;
        })
    }
}

#[cfg(test)]
mod tests;
