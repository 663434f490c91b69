//! client-go's DeltaFIFO (`tools/cache/delta_fifo.go`) as an actor: the queue between the
//! reflector and the cache, keyed by object, holding each key's pending changes.
//!
//! # Contract
//! - A key is queued at most once; its deltas pop together, oldest first.
//! - A popped batch goes to the indexer ([`PoppedBatch`], the one message this stage sends),
//!   which applies it and only then hands it on to the processor: a handler reading the
//!   cache sees at least the state it is told about. Nothing comes back but the indexer's
//!   acknowledgement that the batch is done.
//! - Consecutive deletes of a key collapse into one (the one carrying a real final state wins
//!   over a tombstone).
//! - A `Replace` (relist) turns every key the FIFO knows that the list lacks into a `Deleted`
//!   delta carrying a [`DeletedFinalStateUnknown`] tombstone with the last known state.
//! - The transform runs here, once per object, before anything stores it.
//! - After the first `Replace`, once all keys it queued have popped and been applied, the
//!   cache has synced ([`PoppedBatch::marks_synced`]).
//!
//! # Lifecycle
//! Started by [`Informer`](crate::Informer) on the pipeline's arbiter, before the reflector.
//! It stops with its arbiter (`Informer::stop`) or when the indexer is gone. A panic in its
//! own code (the transform runs here) is caught and reported to the pipeline's
//! [supervisor](crate::supervisor) ([`StageFailed`]), which answers [`ResetQueue`]: the queue
//! is rebuilt from the cache (nothing pending, the known keys are the cached ones) and a new
//! reflector relists.
//!
//! # Backpressure
//! One batch is in flight at a time. Meanwhile reflector batches keep arriving (the reflector
//! uses `do_send` and never waits) and are merged into the queued keys: a non-delete after a
//! non-delete keeps only the newer object, a delete drops what preceded it back to the last
//! delete. A key thus holds at most two deltas (`[Deleted, Added]`), so memory grows with the
//! number of keys, not with the event rate.
//!
//! # Differences from client-go
//! - Known keys are the FIFO's own view (the state after every delta it accepted), not the
//!   indexer's, so a batch in flight to the indexer cannot hide a deletion from `Replace`.
//! - Updates coalesce; client-go keeps every delta and only dedups deletes.
//! - No `Pop` loop with a process function: the actor pops when the indexer has acknowledged
//!   the previous batch.
//! - Resync enqueues `Sync` for keys without pending deltas (as client-go); whether a
//!   handler gets it is decided by its listener.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::prelude::*;

use crate::ids::{ClusterId, ObjectKey, ResourceVersion};
use crate::object::CacheObject;
use crate::reflector::{ReflectorBatch, ReflectorDelta};
use crate::stage_fault::{InjectPanic, Stage, StageFailed, panic_message};
use crate::store::{FastState, Store};
use crate::supervisor::ResetQueue;
use crate::trace_context::{TraceContext, record_keys};
use crate::transform::Transform;

/// Most keys popped in one batch: large enough to amortise a message round trip, small
/// enough that one batch never holds the pipeline's thread for long.
pub const MAX_POP_BATCH: usize = 512;

/// At most this many earlier pushes are linked from one pop span (their keys merged into it);
/// beyond that the oldest links are dropped, as a burst needs no hundred links to be found.
const MAX_PUSH_LINKS: usize = 32;

/// Why a delta was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaType {
    /// The object was created (or first seen by a list).
    Added,
    /// The object changed (or a relist saw it again).
    Updated,
    /// The object was deleted, or a relist no longer had it.
    Deleted,
    /// Present in a (re)list.
    Replaced,
    /// A periodic resync of an unchanged object.
    Sync,
}

/// The last known state of an object whose deletion was missed (seen only by a relist).
#[derive(Debug)]
pub struct DeletedFinalStateUnknown<K> {
    /// `namespace/name` of the object.
    pub key: ObjectKey,
    /// The last state the cache knew before the deletion was missed.
    pub obj: Arc<K>,
}

impl<K> Clone for DeletedFinalStateUnknown<K> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            obj: self.obj.clone(),
        }
    }
}

/// The object a delta carries.
#[derive(Debug)]
pub enum DeltaObject<K> {
    /// The object as the server sent it (after the transform).
    Live(Arc<K>),
    /// Only with [`DeltaType::Deleted`].
    Tombstone(DeletedFinalStateUnknown<K>),
}

impl<K> Clone for DeltaObject<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Live(o) => Self::Live(o.clone()),
            Self::Tombstone(t) => Self::Tombstone(t.clone()),
        }
    }
}

impl<K> DeltaObject<K> {
    /// The object, live or the tombstone's last known state.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Self::Live(o) => o,
            Self::Tombstone(t) => &t.obj,
        }
    }
}

/// One change of one key.
#[derive(Debug)]
pub struct Delta<K> {
    /// What happened.
    pub kind: DeltaType,
    /// The object after the change (for deletes, its last state).
    pub object: DeltaObject<K>,
}

impl<K> Clone for Delta<K> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            object: self.object.clone(),
        }
    }
}

/// A key's pending deltas, oldest first. Never empty while queued; at most two long.
pub type Deltas<K> = Vec<Delta<K>>;

/// One popped key.
#[derive(Debug)]
pub struct PoppedKey<K> {
    /// `namespace/name`.
    pub key: ObjectKey,
    /// The key's queued deltas, oldest first, already deduplicated.
    pub deltas: Deltas<K>,
    /// Queued by the first complete list (its `Added` notifications say `initial: true`).
    pub initial_list: bool,
}

/// Sets how often the FIFO resyncs (the shortest resync period of any handler; `None`: never).
/// Sent by the informer with `do_send` whenever a handler is added or removed.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SetResyncPeriod(pub Option<Duration>);

/// Asks for the queue's size (tests, metrics). Sent with `send`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "FifoStatus")]
pub struct GetFifoStatus;

/// The queue's size now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FifoStatus {
    /// Keys waiting to be popped.
    pub queued_keys: usize,
    /// Deltas queued over all those keys.
    pub queued_deltas: usize,
    /// Keys the queue knows exist (in the cache or queued), used to make tombstones on relist.
    pub known_keys: usize,
    /// A popped batch is with the indexer and not yet acknowledged.
    pub batch_in_flight: bool,
    /// The resourceVersion of the newest list (`Replace`) accepted: client-go's
    /// `LastSyncResourceVersion`, as the FIFO saw it. `None` before the first list.
    pub last_list_version: Option<ResourceVersion>,
}

/// The queue logic, without actor plumbing, so tests drive it synchronously.
pub struct FifoQueue<K> {
    /// Pending deltas per key. Invariant: a key has an entry iff it is in `queue`, and the
    /// entry holds one or two deltas, never two deletes in a row, never a non-delete
    /// followed by anything but nothing.
    items: HashMap<ObjectKey, Deltas<K>, FastState>,
    /// Keys in pop order. Invariant: each key at most once; exactly the keys of `items`.
    queue: VecDeque<ObjectKey>,
    /// Each live key's state after every delta accepted so far (transformed). Invariant: a
    /// key is here iff its newest accepted delta is not a delete. The state is `None` only
    /// with a compact `cache`, once the indexer has acknowledged it: the cache holds it then,
    /// and keeping a decoded copy here would undo the compact cache's saving.
    known: HashMap<ObjectKey, Option<Arc<K>>, FastState>,
    /// A compact cache to read forgotten states from (`None`: a typed cache, every state is
    /// kept, shared with the cache at no cost).
    cache: Option<Store<K>>,
    /// With a compact `cache`: the states the batch in flight carries, forgotten from
    /// `known` when it is acknowledged unless a newer state arrived meanwhile.
    in_flight_states: Vec<(ObjectKey, Arc<K>)>,
    /// Keys still to pop from the first complete list; `None` until it arrives.
    initial_population: Option<usize>,
    /// Whether the pop that finished the initial population has been handed out.
    sync_announced: bool,
    /// Counts resync rounds, so listeners can tell one round from the next.
    resync_generation: u64,
    /// Batches popped so far (the last one's `seq`).
    popped: u64,
    /// The newest `Replace`'s resourceVersion (see [`FifoStatus::last_list_version`]).
    last_list_version: Option<ResourceVersion>,
    transform: Transform<K>,
}

impl<K: CacheObject> FifoQueue<K> {
    /// An empty queue that runs `transform` on each object before queueing it.
    pub fn new(transform: Transform<K>) -> Self {
        Self {
            items: HashMap::default(),
            queue: VecDeque::new(),
            known: HashMap::default(),
            cache: None,
            in_flight_states: Vec::new(),
            initial_population: None,
            sync_announced: false,
            resync_generation: 0,
            popped: 0,
            last_list_version: None,
            transform,
        }
    }

    /// Keeps only states not yet acknowledged, reading older ones from the compact `cache`
    /// (see the `known` field).
    pub fn reading_states_from(mut self, cache: Store<K>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The indexer has applied the last popped batch: with a compact cache, its states are
    /// forgotten here (the cache has them).
    pub fn acknowledged(&mut self) {
        for (key, state) in self.in_flight_states.drain(..) {
            if let Some(known) = self.known.get_mut(&key)
                && known.as_ref().is_some_and(|k| Arc::ptr_eq(k, &state))
            {
                *known = None;
            }
        }
    }

    /// A known key's last state: kept here, or read from the compact cache.
    fn state_of(&self, key: &ObjectKey, kept: Option<Arc<K>>) -> Option<Arc<K>> {
        kept.or_else(|| self.cache.as_ref()?.get(key))
    }

    /// Accepts one reflector delta.
    pub fn push(&mut self, delta: ReflectorDelta<K>) {
        match delta {
            ReflectorDelta::Added(obj) => self.upsert(DeltaType::Added, obj),
            ReflectorDelta::Modified(obj) => self.upsert(DeltaType::Updated, obj),
            ReflectorDelta::Deleted(obj) => {
                let obj = self.transform.apply(obj);
                let key = ObjectKey::of(obj.as_ref());
                self.known.remove(&key);
                self.queue_action(
                    key,
                    Delta {
                        kind: DeltaType::Deleted,
                        object: DeltaObject::Live(obj),
                    },
                );
            }
            ReflectorDelta::Replace {
                objects,
                resource_version,
            } => {
                self.last_list_version = Some(resource_version);
                self.replace(objects);
            }
        }
    }

    fn upsert(&mut self, kind: DeltaType, obj: Arc<K>) {
        let obj = self.transform.apply(obj);
        let key = ObjectKey::of(obj.as_ref());
        self.known.insert(key.clone(), Some(obj.clone()));
        self.queue_action(
            key,
            Delta {
                kind,
                object: DeltaObject::Live(obj),
            },
        );
    }

    /// client-go's `Replace`: the list is the truth; known keys it lacks were deleted unseen.
    fn replace(&mut self, objects: Vec<Arc<K>>) {
        let mut listed = HashSet::with_capacity(objects.len());
        for obj in objects {
            let obj = self.transform.apply(obj);
            let key = ObjectKey::of(obj.as_ref());
            listed.insert(key.clone());
            self.known.insert(key.clone(), Some(obj.clone()));
            self.queue_action(
                key,
                Delta {
                    kind: DeltaType::Replaced,
                    object: DeltaObject::Live(obj),
                },
            );
        }
        let vanished: Vec<ObjectKey> = self
            .known
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for key in vanished {
            if let Some(kept) = self.known.remove(&key) {
                let Some(last) = self.state_of(&key, kept) else {
                    // Only a compact cache entry that does not decode (logged there).
                    tracing::error!(key = %key, "no last state for a vanished key; its deletion is not announced");
                    continue;
                };
                let tombstone = DeletedFinalStateUnknown {
                    key: key.clone(),
                    obj: last,
                };
                self.queue_action(
                    key,
                    Delta {
                        kind: DeltaType::Deleted,
                        object: DeltaObject::Tombstone(tombstone),
                    },
                );
            }
        }
        if self.initial_population.is_none() {
            self.initial_population = Some(self.queue.len());
        }
    }

    /// Queues `delta` for `key`, merging it with what is pending (see the module's
    /// Backpressure section for the rules).
    fn queue_action(&mut self, key: ObjectKey, delta: Delta<K>) {
        let deltas = match self.items.get_mut(&key) {
            Some(deltas) => deltas,
            None => {
                self.queue.push_back(key.clone());
                self.items.entry(key).or_default()
            }
        };
        merge_delta(deltas, delta);
    }

    /// Forgets everything pending and takes `cached` (the cache's objects) as the known keys,
    /// before a relist rebuilds the rest. The batch numbering and resync rounds go on.
    pub fn reset(&mut self, cached: Vec<Arc<K>>, cache_synced: bool) {
        self.items.clear();
        self.queue.clear();
        let keep = self.cache.is_none();
        self.known = cached
            .into_iter()
            .map(|obj| (ObjectKey::of(obj.as_ref()), keep.then_some(obj)))
            .collect();
        self.in_flight_states.clear();
        self.sync_announced = cache_synced;
        self.initial_population = cache_synced.then_some(0);
    }

    /// Queues a `Sync` for every known key with nothing pending; returns how many.
    pub fn resync(&mut self) -> usize {
        self.resync_generation += 1;
        let idle: Vec<(ObjectKey, Arc<K>)> = self
            .known
            .iter()
            .filter(|(k, _)| !self.items.contains_key(*k))
            .filter_map(|(k, o)| Some((k.clone(), self.state_of(k, o.clone())?)))
            .collect();
        let count = idle.len();
        for (key, obj) in idle {
            self.queue_action(
                key,
                Delta {
                    kind: DeltaType::Sync,
                    object: DeltaObject::Live(obj),
                },
            );
        }
        count
    }

    /// Pops up to `max` keys. `None` when there is nothing to hand out (an empty batch is
    /// still handed out once, to announce that an empty first list has synced).
    pub fn pop_batch(&mut self, max: usize) -> Option<PoppedBatch<K>> {
        let announce = !self.sync_announced && self.initial_population == Some(0);
        if self.queue.is_empty() && !announce {
            return None;
        }
        let mut keys = Vec::with_capacity(self.queue.len().min(max));
        while keys.len() < max {
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            let deltas = self.items.remove(&key).unwrap_or_default();
            if self.cache.is_some()
                && let Some(Some(state)) = self.known.get(&key)
            {
                self.in_flight_states.push((key.clone(), state.clone()));
            }
            let initial_list = matches!(self.initial_population, Some(n) if n > 0);
            if initial_list {
                self.initial_population = self.initial_population.map(|n| n - 1);
            }
            keys.push(PoppedKey {
                key,
                deltas,
                initial_list,
            });
        }
        let marks_synced = !self.sync_announced && self.initial_population == Some(0);
        if marks_synced {
            self.sync_announced = true;
        }
        self.popped += 1;
        Some(PoppedBatch {
            seq: self.popped,
            keys,
            marks_synced,
            resync_generation: self.resync_generation,
            trace: TraceContext::none(),
            arrived: None,
        })
    }

    /// The queue's size now.
    pub fn status(&self) -> FifoStatus {
        FifoStatus {
            queued_keys: self.queue.len(),
            queued_deltas: self.items.values().map(Vec::len).sum(),
            known_keys: self.known.len(),
            batch_in_flight: false,
            last_list_version: self.last_list_version.clone(),
        }
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(
            self.items.len(),
            self.queue.len(),
            "items and queue disagree"
        );
        let unique: HashSet<&ObjectKey> = self.queue.iter().collect();
        assert_eq!(unique.len(), self.queue.len(), "a key is queued twice");
        for key in &self.queue {
            let deltas = &self.items[key];
            assert!(
                !deltas.is_empty() && deltas.len() <= 2,
                "{key}: {} deltas",
                deltas.len()
            );
            if deltas.len() == 2 {
                assert_eq!(
                    deltas[0].kind,
                    DeltaType::Deleted,
                    "{key}: only a delete may precede"
                );
                assert_ne!(
                    deltas[1].kind,
                    DeltaType::Deleted,
                    "{key}: two deletes in a row"
                );
            }
        }
    }
}

/// One pop, handed to the indexer. Sent by the delta FIFO with `send` (awaited: one batch
/// in flight; the answer means it was applied and distributed).
#[derive(Debug)]
pub struct PoppedBatch<K> {
    /// Increases by one per pop.
    pub seq: u64,
    /// The popped keys, in queue order, each with all its deltas.
    pub keys: Vec<PoppedKey<K>>,
    /// This pop finished the first complete list: after it the cache has synced.
    pub marks_synced: bool,
    /// The resync round this batch belongs to (0: no resync yet); listeners compare it with
    /// their own period.
    pub resync_generation: u64,
    /// The context of the FIFO's pop span (a child of the latest push's span).
    pub trace: TraceContext,
    /// When the oldest reflector batch not fully popped before this pop arrived (`None` for
    /// pops of no reflector batch: resyncs, a rebuilt queue). A bound from above for each key.
    pub arrived: Option<tokio::time::Instant>,
}

impl<K: CacheObject> Message for PoppedBatch<K> {
    type Result = ();
}

/// A popped key as a span names it: its key and the resourceVersion of its latest state.
pub(crate) fn popped_key<K: kube::Resource>(popped: &PoppedKey<K>) -> (String, Option<&str>) {
    let resource_version = popped
        .deltas
        .last()
        .and_then(|delta| delta.object.object().meta().resource_version.as_deref());
    (popped.key.to_string(), resource_version)
}

/// Appends `delta` to a key's pending deltas, coalescing: a non-delete after a non-delete
/// keeps the newer object (and the older kind, unless that was a `Sync`); a delete drops the
/// non-delete before it and collapses with a delete before that.
fn merge_delta<K>(deltas: &mut Deltas<K>, delta: Delta<K>) {
    let is_delete = |d: &Delta<K>| d.kind == DeltaType::Deleted;
    if is_delete(&delta) {
        if deltas.last().is_some_and(|d| !is_delete(d)) {
            deltas.pop();
        }
        match deltas.last_mut() {
            Some(previous) => {
                // Keep the most informative final state: a real one beats a tombstone.
                if matches!(previous.object, DeltaObject::Tombstone(_)) {
                    *previous = delta;
                }
            }
            None => deltas.push(delta),
        }
        return;
    }
    match deltas.last_mut() {
        Some(previous) if !is_delete(previous) => {
            if previous.kind == DeltaType::Sync {
                previous.kind = delta.kind;
            }
            previous.object = delta.object;
        }
        _ => deltas.push(delta),
    }
}

/// The delta FIFO actor. See the module docs.
pub struct DeltaFifo<K: CacheObject> {
    cluster: ClusterId,
    resource: Arc<str>,
    queue: FifoQueue<K>,
    indexer: Recipient<PoppedBatch<K>>,
    /// Invariant: true from a pop until the indexer acknowledged that batch; nothing else
    /// pops meanwhile.
    in_flight: bool,
    resync_period: Option<Duration>,
    resync_timer: Option<SpawnHandle>,
    /// The contexts of the push spans since the last pop, oldest first, at most
    /// [`MAX_PUSH_LINKS`]: the latest is the next pop's parent, the others its links.
    pushes: Vec<TraceContext>,
    /// When the oldest reflector batch with deltas still queued arrived; `None` while the
    /// queue holds none.
    pending_since: Option<tokio::time::Instant>,
    /// The cache, to rebuild the queue from after a fault.
    store: Store<K>,
    faults: Recipient<StageFailed>,
}

impl<K: CacheObject> DeltaFifo<K> {
    /// The FIFO actor of one informer: pops batches to `indexer`, reads `store` to resync, reports
    /// its panics to `faults`.
    pub fn new(
        cluster: ClusterId,
        resource: Arc<str>,
        transform: Transform<K>,
        indexer: Recipient<PoppedBatch<K>>,
        store: Store<K>,
        faults: Recipient<StageFailed>,
    ) -> Self {
        Self {
            cluster,
            resource,
            queue: if store.is_compact() {
                FifoQueue::new(transform).reading_states_from(store.clone())
            } else {
                FifoQueue::new(transform)
            },
            indexer,
            in_flight: false,
            resync_period: None,
            resync_timer: None,
            pushes: Vec::new(),
            pending_since: None,
            store,
            faults,
        }
    }

    /// Runs `f` on the queue; a panic in it is reported to the supervisor (which resets the
    /// queue and relists) instead of killing the actor.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut FifoQueue<K>) -> T) -> Option<T> {
        match catch_unwind(AssertUnwindSafe(|| f(&mut self.queue))) {
            Ok(value) => Some(value),
            Err(payload) => {
                self.faults.do_send(StageFailed {
                    stage: Stage::Fifo,
                    message: panic_message(payload.as_ref()),
                });
                None
            }
        }
    }

    /// Pops the next batch unless one is in flight, and hands it to the indexer.
    fn pop_next(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        let Some(mut batch) = self
            .guarded(|queue| queue.pop_batch(MAX_POP_BATCH))
            .flatten()
        else {
            return;
        };
        self.in_flight = true;
        batch.arrived = self.pending_since;
        if self.queue.queue.is_empty() {
            self.pending_since = None;
        }
        let parent = self.pushes.pop().unwrap_or_default();
        let span = parent.adopt(tracing::debug_span!(parent: None, "delta_fifo.pop", cluster = %self.cluster, resource = %self.resource, seq = batch.seq));
        for earlier in self.pushes.drain(..) {
            earlier.link_from(&span);
        }
        record_keys(&span, batch.keys.len(), batch.keys.iter().map(popped_key));
        batch.trace = TraceContext::of(&span);
        // The pop span ends here, before the indexer starts on the batch: a span that
        // outlived its children could be cut off by a shutdown after they were exported.
        drop(span);
        let delivery = self.indexer.send(batch);
        ctx.spawn(delivery.into_actor(self).map(|result, act, ctx| {
            act.in_flight = false;
            match result {
                Ok(()) => {
                    act.queue.acknowledged();
                    act.pop_next(ctx);
                }
                Err(error) => {
                    tracing::warn!(cluster = %act.cluster, resource = %act.resource, %error, "indexer gone; the delta FIFO stops");
                    ctx.stop();
                }
            }
        }));
    }

    fn set_resync_period(&mut self, period: Option<Duration>, ctx: &mut Context<Self>) {
        if period == self.resync_period {
            return;
        }
        self.resync_period = period;
        if let Some(timer) = self.resync_timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(period) = period {
            self.resync_timer = Some(ctx.run_interval(period, |act, ctx| {
                let queued = act.guarded(FifoQueue::resync);
                tracing::debug!(cluster = %act.cluster, resource = %act.resource, ?queued, "resync");
                act.pop_next(ctx);
            }));
        }
    }
}

impl<K: CacheObject> Actor for DeltaFifo<K> {
    type Context = Context<Self>;
}

impl<K: CacheObject> Handler<ReflectorBatch<K>> for DeltaFifo<K> {
    type Result = ();

    fn handle(&mut self, msg: ReflectorBatch<K>, ctx: &mut Self::Context) {
        let span = msg.trace.adopt(tracing::debug_span!(parent: None, "delta_fifo.push", cluster = %msg.cluster, resource = %self.resource, deltas = msg.deltas.len()));
        if self.pushes.len() == MAX_PUSH_LINKS {
            self.pushes.remove(0);
        }
        self.pushes.push(TraceContext::of(&span));
        let _entered = span.entered();
        self.pending_since.get_or_insert(msg.arrived);
        self.guarded(|queue| {
            for delta in msg.deltas {
                queue.push(delta);
            }
        });
        self.pop_next(ctx);
    }
}

impl<K: CacheObject> Handler<ResetQueue> for DeltaFifo<K> {
    type Result = ();

    fn handle(&mut self, _msg: ResetQueue, _ctx: &mut Self::Context) {
        let snapshot = self.store.snapshot();
        tracing::info!(cluster = %self.cluster, resource = %self.resource, cached = snapshot.objects.len(), "delta FIFO rebuilt from the cache before a relist");
        self.queue.reset(snapshot.objects, snapshot.synced);
    }
}

impl<K: CacheObject> Handler<InjectPanic> for DeltaFifo<K> {
    type Result = ();

    fn handle(&mut self, msg: InjectPanic, _ctx: &mut Self::Context) {
        self.guarded(|_| msg.fire());
    }
}

impl<K: CacheObject> Handler<SetResyncPeriod> for DeltaFifo<K> {
    type Result = ();

    fn handle(&mut self, msg: SetResyncPeriod, ctx: &mut Self::Context) {
        self.set_resync_period(msg.0, ctx);
    }
}

impl<K: CacheObject> Handler<GetFifoStatus> for DeltaFifo<K> {
    type Result = MessageResult<GetFifoStatus>;

    fn handle(&mut self, _msg: GetFifoStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(FifoStatus {
            batch_in_flight: self.in_flight,
            ..self.queue.status()
        })
    }
}

#[cfg(test)]
mod tests;
