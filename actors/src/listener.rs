//! client-go's `processorListener` (`tools/cache/shared_informer.go`) as a supervised actor:
//! delivers one handler's events in order, from its own buffer.
//!
//! # Contract
//! - Events reach the handler in the order the cache changed, per key; each is delivered
//!   only after the previous one was handled (`send`, awaited).
//! - A slow handler only grows its own buffer; the processor never waits for it.
//! - With [`BufferMode::Coalescing`] the buffer holds at most two events per key (latest
//!   update wins, a delete supersedes), so memory is bounded by the number of keys.
//! - Resync: with a period set, the handler gets `Updated` with `old` and `new` the same
//!   `Arc` for every cached object, about once per period.
//! - `has_synced` turns true once the informer has synced and the handler has handled every
//!   event queued before that point (its initial list or its replay).
//! - An optional [`EventMap`] rewrites or drops each event right before delivery: filtered
//!   views use it to show a namespace or a label selector as a server-side watch would, and
//!   multi-cluster informers to name the configured cluster. It runs inside the listener, so
//!   every rule here holds for mapped handlers too, with no actor in between.
//! - "Delivered" means the handler took the event. Events for a caller-owned handler actor
//!   that has stopped are counted as dropped, never as delivered.
//!
//! # Lifecycle
//! Started by the processor under an actix [`Supervisor`] when a handler is added; stopped
//! for good by [`StopListener`] (the processor drops its address). When a restartable
//! handler actor ([`EventHandler::Actor`]) stops or panics, the listener stops itself and the
//! supervisor restarts it with the same struct: the buffer survives, a fresh handler is
//! started, and the event it was handling is delivered once more (dropped and counted if it
//! fails again, so a poisonous event cannot loop). A panic in a closure handler is caught
//! and counted; delivery goes on.
//!
//! # Tracing
//! `listener.notify` per batch received (a child of the processor's span); per event, a
//! `listener.deliver` span, a child of the batch it arrived in however long it waited
//! ([`crate::listener_traces`]), and under it the `handler` span inside which the handler
//! runs: a closure is called in it, a restartable handler actor's task is polled in it
//! ([`crate::handler_span`]), a caller-owned actor's handling is timed by it.
//!
//! # Backpressure
//! The processor uses `do_send` (unbounded mailbox), and every arriving batch moves into the
//! buffer at once, so the backlog is [`ListenerBuffer::len`], reported in [`HandlerStatus`].
//!
//! # Differences from client-go
//! Optional per-key coalescing (client-go's buffer is unbounded); restartable handlers;
//! resync decided per round by the listener instead of by the processor.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;
use tracing::Instrument;

use crate::event::{Event, EventHandler};
use crate::handler_span::HandlerSpan;
use crate::ids::{ClusterId, ObjectKey};
use crate::latency::{LatencyHistogram, LatencySnapshot};
use crate::listener_buffer::{BufferMode, ListenerBuffer};
use crate::listener_traces::BatchTraces;
use crate::notification::{Notification, NotificationBatch};
use crate::object::CacheObject;
use crate::predicate::Predicate;
use crate::processor::{HandlerId, ListenerEndpoint, Notify, StartListener, StopListener};
use crate::read_pacing::{HandlerProgress, PacedHandler, ReadPacing};
use crate::store::Snapshot;
use crate::trace_context::TraceContext;

/// Rewrites an event on its way to one handler, or drops it with `None`. Must be pure: a
/// retried event is mapped again.
pub type EventMap<K> = Arc<dyn Fn(Event<K>) -> Option<Event<K>> + Send + Sync>;

/// Closure handlers run at most this many events per turn before yielding the thread, so
/// one busy listener cannot starve the rest of the pipeline.
const FN_EVENTS_PER_TURN: usize = 64;

/// How one handler (or stream) is fed: resync period, buffer mode and an optional
/// [`Predicate`]. Built with `HandlerOptions::default()` and its chained setters; the object
/// type is inferred from the informer it is given to.
pub struct HandlerOptions<K> {
    /// Resync period (client-go's `resyncPeriod`): `None` never resyncs.
    pub resync: Option<Duration>,
    /// How the listener buffers events the handler has not taken yet.
    pub buffer: BufferMode,
    /// Which adds and updates reach the handler (deletes always do); `None` passes all.
    pub predicate: Option<Predicate<K>>,
}

impl<K> Default for HandlerOptions<K> {
    fn default() -> Self {
        Self {
            resync: None,
            buffer: BufferMode::default(),
            predicate: None,
        }
    }
}

impl<K> Clone for HandlerOptions<K> {
    fn clone(&self) -> Self {
        Self {
            resync: self.resync,
            buffer: self.buffer,
            predicate: self.predicate.clone(),
        }
    }
}

impl<K> std::fmt::Debug for HandlerOptions<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerOptions")
            .field("resync", &self.resync)
            .field("buffer", &self.buffer)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

impl<K> HandlerOptions<K> {
    /// Redelivers every cached object as a resync `Updated` about once per `period`.
    pub fn resync(mut self, period: Duration) -> Self {
        self.resync = Some(period);
        self
    }

    /// Buffers at most the latest update per key (see [`BufferMode::Coalescing`]).
    pub fn coalescing(mut self) -> Self {
        self.buffer = BufferMode::Coalescing;
        self
    }

    /// Delivers only the adds and updates `predicate` passes (deletes always pass); see
    /// [`predicate`](crate::predicate) for the rules, resyncs included. It runs in the
    /// listener, after any [`EventMap`] (so a view's "moved into the selector" is an add).
    ///
    /// ```
    /// # use k8s_openapi::api::core::v1::Pod;
    /// use panoptes_actors::{HandlerOptions, predicate};
    /// let options: HandlerOptions<Pod> = HandlerOptions::default().predicate(predicate::labels_changed());
    /// ```
    pub fn predicate(mut self, predicate: Predicate<K>) -> Self {
        self.predicate = Some(predicate);
        self
    }
}

/// Live counters of one listener, shared with the informer (read without messages).
#[derive(Debug, Default)]
pub struct ListenerCounters {
    synced: AtomicBool,
    backlog: AtomicUsize,
    /// Before `synced`: one more than the events queued behind the initial list (or
    /// replay); 0 while its end is not known (the informer has not synced).
    behind_list_plus_one: AtomicUsize,
    pending_keys: AtomicUsize,
    delivered: AtomicU64,
    restarts: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    panics: AtomicU64,
    latency: LatencyHistogram,
    /// The pipeline's read pacing, told when the backlog falls (`read_pacing.rs`).
    pacing: OnceLock<PacedHandler>,
}

impl HandlerProgress for ListenerCounters {
    fn watch_backlog(&self) -> Option<usize> {
        if self.synced.load(Ordering::Acquire) {
            return Some(self.backlog.load(Ordering::Relaxed));
        }
        self.behind_list_plus_one
            .load(Ordering::Relaxed)
            .checked_sub(1)
    }
}

impl ListenerCounters {
    /// Counters whose handler `pacing` follows.
    pub(crate) fn paced(pacing: &Arc<ReadPacing>) -> Arc<Self> {
        let counters = Arc::new(Self::default());
        let progress: Arc<dyn HandlerProgress> = counters.clone();
        let link = PacedHandler::follow(pacing, Arc::downgrade(&progress));
        counters
            .pacing
            .set(link)
            .expect("a new listener's counters are linked once");
        counters
    }

    fn set_backlog(&self, backlog: usize) {
        let before = self.backlog.swap(backlog, Ordering::Relaxed);
        if let Some(pacing) = self.pacing.get() {
            pacing.backlog_changed(before, backlog);
        }
    }

    fn mark_synced(&self) {
        if !self.synced.swap(true, Ordering::AcqRel)
            && let Some(pacing) = self.pacing.get()
        {
            pacing.synced();
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> HandlerStatus {
        HandlerStatus {
            synced: self.synced.load(Ordering::Acquire),
            backlog: self.backlog.load(Ordering::Relaxed),
            pending_keys: self.pending_keys.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
        }
    }

    /// Event latency so far: from the reflector reading an event to the handler returning
    /// from it (initial replays and resyncs, which no watch brought, are not counted).
    pub fn latency(&self) -> LatencySnapshot {
        self.latency.snapshot()
    }

    /// The handler received the initial list.
    pub fn has_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

/// A handler's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandlerStatus {
    /// The handler received every object of the initial list.
    pub synced: bool,
    /// Events buffered or being handled.
    pub backlog: usize,
    /// Keys with buffered events.
    pub pending_keys: usize,
    /// Events handed to the handler so far.
    pub delivered: u64,
    /// Times the handler actor was restarted.
    pub restarts: u64,
    /// Events whose handling panicked (or whose handler stopped twice on them).
    pub failed: u64,
    /// Events discarded because a caller-owned handler actor stopped.
    pub dropped: u64,
    /// Times the handler panicked (a closure that panicked, or a handler actor that stopped
    /// or panicked mid-event and was restarted).
    pub panics: u64,
}

/// When this listener's resync is due (client-go's `shouldResync`, per FIFO resync round).
#[derive(Debug)]
struct ResyncClock {
    period: Option<Duration>,
    next_due: Instant,
    accepted_generation: Option<u64>,
    seen_generation: u64,
}

impl ResyncClock {
    fn new(period: Option<Duration>, now: Instant) -> Self {
        Self {
            period,
            next_due: now + period.unwrap_or_default(),
            accepted_generation: None,
            seen_generation: 0,
        }
    }

    /// Whether a resync of round `generation` goes to this handler. Rounds tick at the
    /// shortest period of all handlers; a quarter period of slack absorbs timer jitter.
    fn admits(&mut self, generation: u64, now: Instant) -> bool {
        let Some(period) = self.period else {
            return false;
        };
        if self.accepted_generation == Some(generation) {
            return true;
        }
        if generation <= self.seen_generation {
            return false;
        }
        self.seen_generation = generation;
        if now + period / 4 >= self.next_due {
            self.accepted_generation = Some(generation);
            self.next_due = now + period;
            return true;
        }
        false
    }
}

enum HandlerSlot<K: CacheObject> {
    Recipient {
        recipient: Recipient<Event<K>>,
        gone: bool,
    },
    Actor {
        factory: crate::event::HandlerFactory<K>,
        current: Option<Recipient<Event<K>>>,
        /// The span the handler actor's task runs in (the in-flight event's `handler`).
        span: HandlerSpan,
    },
    Fn(crate::event::EventFn<K>),
}

/// An event handed to an actor handler and not yet acknowledged.
struct InFlight<K> {
    seq: u64,
    key: ObjectKey,
    event: Event<K>,
    attempts: u32,
    /// The trace of the batch it arrived in.
    trace: TraceContext,
}

/// The listener actor. See the module docs.
pub struct Listener<K: CacheObject> {
    id: HandlerId,
    cluster: ClusterId,
    resource: Arc<str>,
    handler: HandlerSlot<K>,
    buffer: ListenerBuffer<K>,
    /// The event handed to an actor handler and not yet acknowledged (with the number of
    /// its notification and its attempts). Invariant: `Some` only for actor handlers;
    /// delivery waits while it is `Some` and a send is outstanding.
    in_flight: Option<InFlight<K>>,
    map: Option<EventMap<K>>,
    /// Asked after `map`; an event it refuses is skipped like one the map drops.
    predicate: Option<Predicate<K>>,
    /// The trace of each buffered notification's batch.
    traces: BatchTraces,
    sending: bool,
    /// Batches up to this number are already in the replay this listener started with.
    skip_through: u64,
    /// Synced once every event numbered below this has been handled; `None` until the
    /// informer has synced.
    sync_marker: Option<u64>,
    resync: ResyncClock,
    counters: Arc<ListenerCounters>,
    /// When the reflector read each accepted batch, keyed by the buffer number of the batch's
    /// first notification: a notification's arrival is that of the entry at or before its
    /// number. Entries older than the oldest buffered or in-flight notification's are pruned.
    arrivals: BTreeMap<u64, Instant>,
}

impl<K: CacheObject> Listener<K> {
    /// How the processor starts this handler's listener: on the current arbiter, under a
    /// `Supervisor`, primed with the snapshot it is given.
    pub fn starter(
        id: HandlerId,
        cluster: ClusterId,
        resource: Arc<str>,
        handler: EventHandler<K>,
        options: HandlerOptions<K>,
        map: Option<EventMap<K>>,
        counters: Arc<ListenerCounters>,
    ) -> StartListener<K> {
        Box::new(move |snapshot| {
            let listener = Self::new(
                id, cluster, resource, handler, options, map, counters, snapshot,
            );
            let addr = Supervisor::start(move |_| listener);
            ListenerEndpoint {
                notify: addr.clone().recipient(),
                stop: addr.recipient(),
            }
        })
    }

    /// A listener whose handler first gets `snapshot`'s objects as initial adds, each event
    /// passed through `map` first.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: HandlerId,
        cluster: ClusterId,
        resource: Arc<str>,
        handler: EventHandler<K>,
        options: HandlerOptions<K>,
        map: Option<EventMap<K>>,
        counters: Arc<ListenerCounters>,
        snapshot: Snapshot<K>,
    ) -> Self {
        let handler = match handler {
            EventHandler::Recipient(recipient) => HandlerSlot::Recipient {
                recipient,
                gone: false,
            },
            EventHandler::Actor(factory) => HandlerSlot::Actor {
                factory,
                current: None,
                span: HandlerSpan::default(),
            },
            EventHandler::Fn(f) => HandlerSlot::Fn(f),
        };
        let mut buffer = ListenerBuffer::new(options.buffer);
        for obj in snapshot.objects {
            buffer.push(Notification::Added {
                key: ObjectKey::of(obj.as_ref()),
                obj,
                initial: true,
            });
        }
        let sync_marker = snapshot.synced.then(|| buffer.next_seq());
        let listener = Self {
            id,
            cluster,
            resource,
            handler,
            buffer,
            in_flight: None,
            map,
            predicate: options.predicate,
            traces: BatchTraces::default(),
            sending: false,
            skip_through: snapshot.seq,
            sync_marker,
            resync: ResyncClock::new(options.resync, Instant::now()),
            counters,
            arrivals: BTreeMap::new(),
        };
        listener.update_counters();
        listener
    }

    /// Buffers a batch (minus resyncs this handler is not due for), remembering `trace` as
    /// its notifications' trace.
    fn accept(&mut self, batch: &NotificationBatch<K>, trace: TraceContext, now: Instant) {
        if batch.seq <= self.skip_through {
            return;
        }
        if matches!(self.handler, HandlerSlot::Recipient { gone: true, .. }) {
            let lost = batch
                .notifications
                .iter()
                .filter(|note| self.event_for((*note).clone()).is_some())
                .count();
            self.counters
                .dropped
                .fetch_add(lost as u64, Ordering::Relaxed);
            return;
        }
        let first = self.buffer.next_seq();
        if let Some(arrived) = batch.arrived {
            self.arrivals.insert(self.buffer.next_seq(), arrived);
        }
        for note in &batch.notifications {
            if let Notification::Resync { generation, .. } = note
                && !self.resync.admits(*generation, now)
            {
                continue;
            }
            self.buffer.push(note.clone());
        }
        if self.buffer.next_seq() > first {
            self.traces.record(first, trace);
        }
        if batch.marks_synced && self.sync_marker.is_none() {
            self.sync_marker = Some(self.buffer.next_seq());
        }
        self.update_counters();
    }

    /// The event `note` becomes for this handler (`None`: its map drops it).
    fn event_for(&self, note: Notification<K>) -> Option<Event<K>> {
        let event = note.into_event(self.cluster.clone());
        let event = match &self.map {
            Some(map) => map(event)?,
            None => event,
        };
        match &self.predicate {
            Some(predicate) if !predicate.admits(&event) => None,
            _ => Some(event),
        }
    }

    /// Counts the latency of the notification numbered `seq`, handled just now.
    fn record_latency(&mut self, seq: u64) {
        let now = Instant::now();
        if let Some((_, arrived)) = self.arrivals.range(..=seq).next_back() {
            self.counters
                .latency
                .observe(now.saturating_duration_since(*arrived));
        }
        let oldest = self
            .in_flight
            .as_ref()
            .map(|in_flight| in_flight.seq)
            .or(self.buffer.front_seq())
            .unwrap_or(seq + 1);
        // Keep the entry that covers `oldest` and every later one.
        let keep_from = self.arrivals.range(..=oldest).next_back().map(|(k, _)| *k);
        if let Some(keep_from) = keep_from {
            self.arrivals = self.arrivals.split_off(&keep_from);
        }
    }

    fn update_counters(&self) {
        let in_flight = usize::from(self.in_flight.is_some());
        self.counters.set_backlog(self.buffer.len() + in_flight);
        self.counters
            .pending_keys
            .store(self.buffer.pending_keys() + in_flight, Ordering::Relaxed);
        if let Some(marker) = self.sync_marker {
            let oldest = self
                .in_flight
                .as_ref()
                .map(|in_flight| in_flight.seq)
                .or(self.buffer.front_seq());
            if oldest.is_none_or(|seq| seq >= marker) {
                self.counters.mark_synced();
            } else {
                // Everything numbered from the marker on came after the list.
                let behind = self.buffer.next_seq().saturating_sub(marker) as usize;
                self.counters
                    .behind_list_plus_one
                    .store(behind + 1, Ordering::Relaxed);
            }
        }
    }

    /// Runs closure handlers on up to a turn's worth of events; returns whether more remain.
    fn run_closure(&mut self) -> bool {
        if !matches!(self.handler, HandlerSlot::Fn(_)) {
            return false;
        }
        for _ in 0..FN_EVENTS_PER_TURN {
            let Some((seq, note)) = self.buffer.pop() else {
                break;
            };
            let key = note.key().clone();
            let Some(event) = self.event_for(note) else {
                continue;
            };
            let trace = self.traces.trace_of(seq);
            let (deliver, handler) = self.delivery_spans(&trace, &key, seq, &event);
            let _delivering = deliver.enter();
            let _handling = handler.enter();
            let HandlerSlot::Fn(f) = &mut self.handler else {
                unreachable!("checked above");
            };
            match catch_unwind(AssertUnwindSafe(|| f(event))) {
                Ok(()) => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    self.record_latency(seq);
                }
                Err(_) => {
                    tracing::error!(cluster = %self.cluster, resource = %self.resource, handler = self.id.0, "handler closure panicked; event skipped");
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    self.counters.panics.fetch_add(1, Ordering::Relaxed);
                }
            };
        }
        self.traces.forget_before(self.oldest_pending());
        self.update_counters();
        !self.buffer.is_empty()
    }

    /// The recipient to deliver to, starting a restartable handler if none runs.
    fn recipient(&mut self) -> Option<Recipient<Event<K>>> {
        match &mut self.handler {
            HandlerSlot::Recipient {
                recipient,
                gone: false,
            } => Some(recipient.clone()),
            HandlerSlot::Recipient { gone: true, .. } | HandlerSlot::Fn(_) => None,
            HandlerSlot::Actor {
                factory,
                current,
                span,
            } => Some(current.get_or_insert_with(|| factory(span)).clone()),
        }
    }

    /// Records that the handler stopped while handling (or before receiving) the in-flight
    /// event. Returns whether the listener should restart.
    fn handler_stopped(&mut self) -> bool {
        match &mut self.handler {
            HandlerSlot::Recipient { gone, .. } => {
                *gone = true;
                // What the handler would have got: buffered events its map keeps, and the one
                // in flight.
                let mut lost = usize::from(self.in_flight.take().is_some());
                while let Some((_, note)) = self.buffer.pop() {
                    lost += usize::from(self.event_for(note).is_some());
                }
                self.counters
                    .dropped
                    .fetch_add(lost as u64, Ordering::Relaxed);
                tracing::error!(cluster = %self.cluster, resource = %self.resource, handler = self.id.0, lost, "handler actor stopped; it is caller-owned and cannot be restarted; its events are discarded");
                self.update_counters();
                false
            }
            HandlerSlot::Actor { current, span, .. } => {
                *current = None;
                span.clear();
                if let Some(in_flight) = &self.in_flight
                    && in_flight.attempts >= 2
                {
                    self.in_flight = None;
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(cluster = %self.cluster, resource = %self.resource, handler = self.id.0, "handler stopped twice on one event; event skipped");
                }
                self.update_counters();
                true
            }
            HandlerSlot::Fn(_) => false,
        }
    }

    /// Delivers the next event (or a turn of them for closures).
    fn deliver(&mut self, ctx: &mut Context<Self>) {
        if self.sending {
            return;
        }
        if matches!(self.handler, HandlerSlot::Fn(_)) {
            if self.run_closure() {
                ctx.notify(Deliver);
            }
            return;
        }
        while self.in_flight.is_none() {
            let Some((seq, note)) = self.buffer.pop() else {
                self.update_counters();
                return;
            };
            let key = note.key().clone();
            if let Some(event) = self.event_for(note) {
                self.in_flight = Some(InFlight {
                    seq,
                    key,
                    event,
                    attempts: 0,
                    trace: self.traces.trace_of(seq),
                });
            }
        }
        self.traces.forget_before(self.oldest_pending());
        let Some(recipient) = self.recipient() else {
            return;
        };
        let in_flight = self.in_flight.as_mut().expect("set above");
        in_flight.attempts += 1;
        let event = in_flight.event.clone();
        let (trace, key, seq) = (
            in_flight.trace.clone(),
            in_flight.key.clone(),
            in_flight.seq,
        );
        let (deliver, handler) = self.delivery_spans(&trace, &key, seq, &event);
        if let HandlerSlot::Actor { span, .. } = &self.handler {
            span.set(handler.clone());
        }
        self.sending = true;
        ctx.spawn(
            async move { recipient.send(event).instrument(handler).await }
                .instrument(deliver.clone())
                .into_actor(self)
                .map(move |result, act, ctx| {
                    if let HandlerSlot::Actor { span, .. } = &act.handler {
                        span.clear();
                    }
                    let _entered = deliver.entered();
                    act.sending = false;
                    match result {
                        Ok(()) => {
                            let seq = act.in_flight.take().map(|in_flight| in_flight.seq);
                            act.counters.delivered.fetch_add(1, Ordering::Relaxed);
                            if let Some(seq) = seq {
                                act.record_latency(seq);
                            }
                            act.update_counters();
                            act.deliver(ctx);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "handler actor gone");
                            if act.handler_stopped() {
                                ctx.stop();
                            }
                        }
                    }
                }),
        );
    }

    /// The number of the oldest notification not yet handled.
    fn oldest_pending(&self) -> Option<u64> {
        self.in_flight
            .as_ref()
            .map(|in_flight| in_flight.seq)
            .or(self.buffer.front_seq())
    }

    /// The `listener.deliver` span of one event (a child of its batch's trace) and the
    /// `handler` span under it, inside which the handler handles it.
    fn delivery_spans(
        &self,
        trace: &TraceContext,
        key: &ObjectKey,
        seq: u64,
        event: &Event<K>,
    ) -> (tracing::Span, tracing::Span) {
        let resource_version = event
            .object()
            .meta()
            .resource_version
            .as_deref()
            .unwrap_or_default();
        let kind = event_kind(event);
        let deliver = trace.adopt(tracing::debug_span!(parent: None, "listener.deliver", cluster = %self.cluster, resource = %self.resource, key = %key, resource_version, event = kind, handler = self.id.0, seq));
        let handler = tracing::debug_span!(parent: &deliver, "handler", cluster = %event.cluster(), resource = %self.resource, key = %key, resource_version, event = kind, handler = self.id.0);
        (deliver, handler)
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        self.buffer.check_invariants();
        if self.in_flight.is_some() {
            assert!(matches!(
                self.handler,
                HandlerSlot::Actor { .. } | HandlerSlot::Recipient { .. }
            ));
        }
    }
}

/// How a span names an event's kind.
fn event_kind<K>(event: &Event<K>) -> &'static str {
    match event {
        Event::Added { .. } => "added",
        Event::Updated { .. } if event.is_resync() => "resync",
        Event::Updated { .. } => "updated",
        Event::Deleted { .. } => "deleted",
    }
}

/// Continue delivering closure events after yielding. Sent by the listener to itself.
#[derive(Message)]
#[rtype(result = "()")]
struct Deliver;

impl<K: CacheObject> Actor for Listener<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.deliver(ctx);
    }
}

impl<K: CacheObject> Supervised for Listener<K> {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.sending = false;
        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
        self.counters.panics.fetch_add(1, Ordering::Relaxed);
        tracing::info!(cluster = %self.cluster, resource = %self.resource, handler = self.id.0, backlog = self.buffer.len(), "restarting handler");
    }
}

impl<K: CacheObject> Handler<Notify<K>> for Listener<K> {
    type Result = ();

    fn handle(&mut self, msg: Notify<K>, ctx: &mut Self::Context) {
        let span = msg.0.trace.adopt(tracing::debug_span!(parent: None, "listener.notify", cluster = %self.cluster, resource = %self.resource, handler = self.id.0, seq = msg.0.seq));
        let _entered = span.enter();
        self.accept(&msg.0, TraceContext::of(&span), Instant::now());
        self.deliver(ctx);
    }
}

impl<K: CacheObject> Handler<Deliver> for Listener<K> {
    type Result = ();

    fn handle(&mut self, _msg: Deliver, ctx: &mut Self::Context) {
        self.deliver(ctx);
    }
}

impl<K: CacheObject> Handler<StopListener> for Listener<K> {
    type Result = ();

    fn handle(&mut self, _msg: StopListener, ctx: &mut Self::Context) {
        tracing::debug!(cluster = %self.cluster, resource = %self.resource, handler = self.id.0, "listener removed");
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use k8s_openapi::api::core::v1::Pod;
    use parking_lot::Mutex;

    use super::*;
    use crate::test_support::{Recorder, cluster, pod, rv, wait_until};

    const PATIENCE: Duration = Duration::from_secs(5);

    fn updated(name: &str, old: u64, new: u64) -> Notification<Pod> {
        Notification::Updated {
            key: ObjectKey::new(format!("ns/{name}")),
            old: pod(name, old),
            new: pod(name, new),
        }
    }

    fn batch(seq: u64, notifications: Vec<Notification<Pod>>, marks_synced: bool) -> Notify<Pod> {
        Notify(Arc::new(NotificationBatch {
            seq,
            notifications,
            marks_synced,
            trace: TraceContext::none(),
            arrived: None,
        }))
    }

    fn names(seen: &Mutex<Vec<Event<Pod>>>) -> Vec<String> {
        seen.lock()
            .iter()
            .map(|e| match e {
                Event::Added { obj, initial, .. } => format!(
                    "added {}@{} {initial}",
                    obj.metadata.name.as_deref().unwrap(),
                    rv(obj)
                ),
                Event::Updated { new, .. } => format!(
                    "updated {}@{}",
                    new.metadata.name.as_deref().unwrap(),
                    rv(new)
                ),
                Event::Deleted { obj, .. } => format!(
                    "deleted {}@{}",
                    obj.metadata.name.as_deref().unwrap(),
                    rv(obj)
                ),
            })
            .collect()
    }

    fn start(
        handler: EventHandler<Pod>,
        replay: Vec<Arc<Pod>>,
        replay_seq: u64,
        synced: bool,
    ) -> (Addr<Listener<Pod>>, Arc<ListenerCounters>) {
        let snapshot = Snapshot {
            objects: replay,
            seq: replay_seq,
            synced,
        };
        let counters = Arc::new(ListenerCounters::default());
        let listener = Listener::new(
            HandlerId(1),
            cluster(),
            "v1/pods".into(),
            handler,
            HandlerOptions::default(),
            None,
            counters.clone(),
            snapshot,
        );
        listener.check_invariants();
        (Supervisor::start(move |_| listener), counters)
    }

    #[actix_rt::test]
    async fn should_replay_the_cache_then_deliver_only_newer_batches_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Recorder::new(seen.clone()).start().recipient().into();
        let (addr, counters) = start(handler, vec![pod("a", 2)], 5, true);
        addr.do_send(batch(5, vec![updated("a", 1, 2)], false));
        addr.do_send(batch(6, vec![updated("a", 2, 3)], false));
        wait_until("two events are handled", PATIENCE, || {
            seen.lock().len() == 2
        })
        .await;
        assert_eq!(names(&seen), ["added a@2 true", "updated a@3"]);
        assert!(counters.has_synced());
        assert_eq!(counters.snapshot().delivered, 2);
    }

    #[actix_rt::test]
    async fn should_sync_only_after_the_events_before_the_sync_point_are_handled() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut recorder = Recorder::new(seen.clone());
        recorder.delay = Some(Duration::from_millis(20));
        let (addr, counters) = start(recorder.start().recipient().into(), vec![], 0, false);
        let adds = (0..3)
            .map(|i| Notification::Added {
                key: ObjectKey::new(format!("ns/p{i}")),
                obj: pod(&format!("p{i}"), i),
                initial: true,
            })
            .collect();
        addr.do_send(batch(1, adds, true));
        wait_until("the first event is handled", PATIENCE, || {
            !seen.lock().is_empty()
        })
        .await;
        assert!(
            !counters.has_synced(),
            "synced before its initial list was handled"
        );
        wait_until("the handler has synced", PATIENCE, || counters.has_synced()).await;
        assert_eq!(seen.lock().len(), 3);
    }

    #[actix_rt::test]
    async fn should_restart_a_panicking_handler_and_lose_nothing_else() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let panics = Arc::new(AtomicU32::new(1));
        let factory = {
            let (seen, panics) = (seen.clone(), panics.clone());
            crate::event::handler_actor(move || Recorder {
                seen: seen.clone(),
                delay: None,
                panic_on: Some(("b".into(), panics.clone())),
            })
        };
        let (addr, counters) = start(factory, vec![], 0, true);
        addr.do_send(batch(
            1,
            vec![updated("a", 1, 2), updated("b", 1, 2), updated("c", 1, 2)],
            false,
        ));
        wait_until("three events are handled", PATIENCE, || {
            seen.lock().len() == 3
        })
        .await;
        assert_eq!(names(&seen), ["updated a@2", "updated b@2", "updated c@2"]);
        let status = counters.snapshot();
        assert_eq!(
            (status.restarts, status.failed, status.backlog),
            (1, 0, 0),
            "{status:?}"
        );
    }

    #[actix_rt::test]
    async fn should_skip_an_event_its_handler_dies_on_twice() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let panics = Arc::new(AtomicU32::new(u32::MAX));
        let factory = {
            let (seen, panics) = (seen.clone(), panics.clone());
            crate::event::handler_actor(move || Recorder {
                seen: seen.clone(),
                delay: None,
                panic_on: Some(("b".into(), panics.clone())),
            })
        };
        let (addr, counters) = start(factory, vec![], 0, true);
        addr.do_send(batch(
            1,
            vec![updated("a", 1, 2), updated("b", 1, 2), updated("c", 1, 2)],
            false,
        ));
        wait_until("two events are handled", PATIENCE, || {
            seen.lock().len() == 2
        })
        .await;
        assert_eq!(names(&seen), ["updated a@2", "updated c@2"]);
        let status = counters.snapshot();
        assert_eq!((status.restarts, status.failed), (2, 1), "{status:?}");
    }

    #[actix_rt::test]
    async fn should_catch_a_panicking_closure_and_go_on() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = {
            let seen = seen.clone();
            crate::event::handler_fn(move |ev: Event<Pod>| {
                assert_ne!(
                    ev.object().metadata.name.as_deref(),
                    Some("b"),
                    "closure panics on b"
                );
                seen.lock().push(ev);
            })
        };
        let (addr, counters) = start(handler, vec![], 0, true);
        addr.do_send(batch(
            1,
            vec![updated("a", 1, 2), updated("b", 1, 2), updated("c", 1, 2)],
            false,
        ));
        wait_until("the batch is processed", PATIENCE, || {
            counters.snapshot().delivered + counters.snapshot().failed == 3
        })
        .await;
        assert_eq!(names(&seen), ["updated a@2", "updated c@2"]);
        assert_eq!(counters.snapshot().failed, 1);
    }

    #[actix_rt::test]
    async fn should_discard_events_once_a_caller_owned_handler_is_gone() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let panics_on_a = Some(("a".into(), Arc::new(AtomicU32::new(1))));
        let owned = Recorder {
            seen: seen.clone(),
            delay: None,
            panic_on: panics_on_a,
        }
        .start();
        let (addr, counters) = start(owned.recipient().into(), vec![], 0, true);
        addr.do_send(batch(
            1,
            vec![updated("a", 1, 2), updated("b", 1, 2)],
            false,
        ));
        wait_until(
            "the dead handler's events are counted as dropped",
            PATIENCE,
            || counters.snapshot().dropped == 2,
        )
        .await;
        addr.do_send(batch(2, vec![updated("c", 1, 2)], false));
        wait_until("later events are counted as dropped", PATIENCE, || {
            counters.snapshot().dropped == 3
        })
        .await;
        let status = counters.snapshot();
        assert_eq!(
            (status.delivered, status.backlog, status.restarts),
            (0, 0, 0),
            "{status:?}"
        );
        assert!(seen.lock().is_empty());
    }

    #[test]
    fn should_admit_each_resync_round_once_its_period_is_due() {
        let start = Instant::now();
        let period = Duration::from_secs(10);
        let mut clock = ResyncClock::new(Some(period), start);
        assert!(
            !clock.admits(1, start + Duration::from_secs(5)),
            "not due before its period"
        );
        assert!(clock.admits(2, start + Duration::from_secs(10)));
        assert!(
            clock.admits(2, start + Duration::from_secs(11)),
            "the whole round is admitted"
        );
        assert!(!clock.admits(3, start + Duration::from_secs(12)));
        assert!(
            clock.admits(4, start + Duration::from_secs(19)),
            "a quarter period of slack"
        );
        let mut never = ResyncClock::new(None, start);
        assert!(!never.admits(1, start + Duration::from_secs(1000)));
    }
}
