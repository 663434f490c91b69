//! client-go's Reflector (`tools/cache/reflector.go`) as an actor: it lists and watches one
//! resource in one cluster and sends what it learns, as [`ReflectorDelta`]s, to one sink
//! (the delta FIFO).
#![doc(alias = "informer")]
#![doc(alias = "ListAndWatch")]
//!
//! # Contract
//! - **Sync.** The first delivery is one [`ReflectorDelta::Replace`] holding every object of a
//!   complete list (all pages) or of a streaming list's initial events; nothing of a partial
//!   list is ever sent. [`ReflectorReport::synced`] turns true with it.
//! - **Order.** Deltas arrive in the order the server produced them; each batch is sent with
//!   `do_send` as soon as it is read (a burst of watch events that arrived together is one
//!   batch; a lone event is never held back for more).
//! - **Resume.** A watch that ends (server timeout, dropped connection) resumes from the last
//!   resourceVersion seen, bookmarks included, without a relist. So does a *stalled* watch:
//!   no byte (events and bookmarks alike) for twice `ReflectorConfig::bookmark_interval`
//!   ([`watch_silence_limit`]).
//! - **Untrusted bytes** ([`crate::quarantine`]). Nothing a server sends panics the reflector.
//!   An object the cache's type cannot hold is quarantined: counted, logged once with cluster,
//!   resource and key, listed in [`ReflectorReport::quarantined`] (readiness names it), and
//!   the rest of the page or stream is delivered. Invalid frames, oversized events, truncated
//!   bodies and expired `continue` tokens are counted by reason in
//!   [`ReflectorReport::bad_input`], logged once per reason, and recovered by resume or relist.
//! - **Relist.** `410 Gone` / "too old resource version" (HTTP status or ERROR event) relists
//!   with `resourceVersion=""` (a consistent read) and delivers another `Replace`; an expired
//!   `continue` token restarts the list from its first page.
//! - **Backoff.** Failures wait 0.8 s doubling to 30 s with jitter, reset after 2 min healthy
//!   ([`crate::backoff`]); a longer `Retry-After` wins; `403` reports
//!   [`ReflectorState::Forbidden`] once and retries at the slowest pace.
//! - **Streaming lists** (`ReflectorConfig::streaming_lists`): a `sendInitialEvents=true`
//!   watch replaces the list; if the server refuses it (400/422), ends the stream before
//!   `k8s.io/initial-events-end`, or lets that bookmark wait (`protocol`'s
//!   `INITIAL_EVENTS_END_WAIT`, as v1.28 does on a quiet resource), this reflector falls back
//!   to list+watch for good and says so in [`ReflectorReport::streaming_refused`].
//! - **Sharing.** Each object is decoded once and sent behind an `Arc`; never cloned.
//! - **List gate** (`ReflectorConfig::list_gate`, [`crate::list_gate`]): a gated list waits
//!   for a permit before its first page and holds it until it ends, or until a page is slower
//!   than the gate's stall time.
//!
//! # Requests
//! Built by `kube::core::Request` as `Api::list`/`Api::watch` build them ([`crate::list_watch`]):
//! `?limit=500[&continue=…][&resourceVersion=…]` then
//! `?watch=true&timeoutSeconds=300..600&allowWatchBookmarks=true&resourceVersion=RV`.
//! The list's resourceVersion follows [`relist_resource_version`].
//!
//! # Performance
//! Decoding costs more than fetching, so a list is pipelined: each page's `continue` token is
//! read ahead from its bytes, the next page is requested at once, and pages decode on the
//! blocking pool, one per core, while the actor thread keeps the connection busy. A streaming
//! list's initial events decode off the actor thread the same way. Objects are decoded once,
//! straight into `Arc`s, and moved — never cloned — into the `Replace`.
//!
//! # Tracing
//! A span per list page (`list_page`), per watch opened (`open_watch`) and per batch of watch
//! events read together (`watch_event`), each with `cluster`, `resource` and
//! `resource_version`, and the keys it carries ([`crate::trace_context::record_keys`]). The
//! page or event span is the root of its deltas' trace: its *context* travels in the
//! [`ReflectorBatch`], and the span itself ends as soon as the batch is sent.
//!
//! # Lifecycle
//! Started with `Actor::start` (or in an arbiter); the list/watch loop runs as a future on the
//! actor's context, so it is dropped — and the watch connection closed — the moment the actor
//! stops. It stops on [`StopReflector`], or by itself once its sink's actor is gone. A restart
//! loses nothing but time: the next reflector lists again. Reports go to `reports` with
//! `do_send` on every change of state, sync or counters, and a final
//! [`ReflectorState::Stopped`]; [`GetReflectorReport`] (with `send`) answers the current one,
//! including the resourceVersion a resumed watch would start from.
//!
//! # Differences from client-go
//! - Any 410 relists with `""` straight away; client-go first retries the last version and
//!   only falls back to `""` when that list fails too.
//! - One object the type cannot hold is quarantined and the rest of the list is delivered;
//!   client-go fails the whole list and retries it forever. A quarantined watch event is
//!   skipped (the cache keeps the key's previous state) and the watch resumes after its
//!   resourceVersion; an oversized event is skipped likewise, and its object is missing (or
//!   stale) until the next list brings it.
//! - A list whose last page has no resourceVersion is bad input (nothing to watch from) and
//!   is listed again; client-go would watch from `""` ("now") and could miss events.
//! - Continued pages send only their `continue` token, as client-go's pager does (the
//!   server refuses a token together with a resourceVersion).
//! - No resync (that belongs to listeners) and no `Store`: the sink receives data, not calls.
//! - kube's default `Client` already retries 429/503/504 itself (honouring `Retry-After`);
//!   the reflector's own handling sees those only when that layer is off or gives up.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use kube::api::WatchEvent;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::ids::{ClusterId, ObjectKey, ResourceVersion};
use crate::list_gate::{ListGate, ListPermit};
use crate::list_watch::{
    self, Failure, FailureKind, ListFrom, ListWatcher, WatchItem, WatchLimits, WatchStream,
};
use crate::managed_fields::ManagedFields;
use crate::object::CacheObject;
use crate::quarantine::{BadInput, Ledger, Quarantined};
use crate::read_pacing::{DEFAULT_READ_AHEAD, ReadPacing};
use crate::trace_context::{TraceContext, key_and_version, record_keys};
use crate::watch_counters::WatchCounters;

mod protocol;

use protocol::{Effect, INITIAL_EVENTS_END, Machine, Outcome, State};
pub use protocol::{relist_resource_version, watch_silence_limit, watch_timeout};

/// What the reflector tells its store: client-go's `Store.Add/Update/Delete/Replace` as data.
#[derive(Debug, Clone)]
pub enum ReflectorDelta<K> {
    /// A watch ADDED event.
    Added(Arc<K>),
    /// A watch MODIFIED event.
    Modified(Arc<K>),
    /// A watch DELETED event (the object's last state).
    Deleted(Arc<K>),
    /// A complete (re)list: exactly these objects exist at `resource_version` (the list's,
    /// or the streaming list's closing bookmark's). The FIFO turns keys it knows that are
    /// absent into deleted-final-state-unknown tombstones and keeps the version as the last
    /// list's (client-go's `LastSyncResourceVersion`; `FifoStatus::last_list_version`).
    Replace {
        /// Every object of the list.
        objects: Vec<Arc<K>>,
        /// The list's resourceVersion.
        resource_version: ResourceVersion,
    },
}

/// A batch of deltas, in order, from one reflector. Sent with `do_send` (the FIFO drains its
/// mailbox fast and coalesces, so the reflector never waits on a slow consumer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReflectorBatch<K: 'static> {
    /// The reflector's cluster.
    pub cluster: ClusterId,
    /// The changes, in the order the server sent them.
    pub deltas: Vec<ReflectorDelta<K>>,
    /// The context of the list page or watch event span that produced these deltas (the
    /// root of their trace; closed once the reflector sent them).
    pub trace: TraceContext,
    /// When the reflector read them from the server (for a list, when it asked for the
    /// last page): where the event→handler latency (`panoptes_handler_latency_seconds`)
    /// starts.
    pub arrived: Instant,
}

/// The objects of a batch of deltas, in order (all of a `Replace`'s).
fn delta_objects<K>(deltas: &[ReflectorDelta<K>]) -> impl Iterator<Item = &Arc<K>> {
    deltas.iter().flat_map(|delta| match delta {
        ReflectorDelta::Added(obj)
        | ReflectorDelta::Modified(obj)
        | ReflectorDelta::Deleted(obj) => std::slice::from_ref(obj),
        ReflectorDelta::Replace { objects, .. } => objects.as_slice(),
    })
}

/// What the reflector is doing, reported on every state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReflectorState {
    /// Listing (first list, or a relist).
    Listing,
    /// Watching from the last resourceVersion.
    Watching,
    /// Waiting before the next attempt after `error`.
    BackingOff {
        /// The failure that caused the wait.
        error: String,
        /// The HTTP (or watch `Status`) code of the failure; `None` when no answer came back
        /// (connection refused, TLS, timeout) or the failure was not a request's.
        code: Option<u16>,
        /// Time left before the next attempt.
        retry_in: std::time::Duration,
    },
    /// The server answered 403 for this resource; retried slowly, reported, never hot-looped.
    Forbidden {
        /// The server's message.
        message: String,
    },
    /// Stopped for good (the informer was stopped).
    Stopped,
}

/// A state change of one reflector (to the informer, for `has_synced`, readiness and metrics).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct ReflectorReport {
    /// The reflector's cluster.
    pub cluster: ClusterId,
    /// `v1/pods`, `apps/v1/deployments`.
    pub resource: String,
    /// The new state.
    pub state: ReflectorState,
    /// The first complete list (or streaming initial events) has been delivered.
    pub synced: bool,
    /// Lists started (each streaming initial watch counts as one).
    pub lists: u64,
    /// Lists started after the first sync (after a 410, or a failed list).
    pub relists: u64,
    /// Watches opened.
    pub watches: u64,
    /// The resourceVersion of the last list or watch event seen.
    pub last_resource_version: Option<ResourceVersion>,
    /// Streaming lists were asked for but the server refused them; this reflector lists.
    pub streaming_refused: bool,
    /// Bad input met so far, by reason (quarantined objects included).
    pub bad_input: BTreeMap<BadInput, u64>,
    /// Objects set aside now (of the last list, and watch events since), by key.
    pub quarantined: Vec<Quarantined>,
    /// Watches torn down because they stalled.
    pub stalled_watches: u64,
}

/// How a reflector lists and watches.
#[derive(Debug, Clone)]
pub struct ReflectorConfig {
    /// `limit` of each list page (client-go and kube-runtime use 500).
    pub page_size: u32,
    /// `labelSelector` of every list and watch.
    pub label_selector: Option<String>,
    /// `fieldSelector` of every list and watch.
    pub field_selector: Option<String>,
    /// Use `sendInitialEvents=true` watches instead of list+watch; falls back when refused.
    pub streaming_lists: bool,
    /// Each watch asks the server to end it after a random time in `[min, 2 * min)`, so the
    /// watches of many reflectors do not all reconnect at once (client-go's `minWatchTimeout`:
    /// 5 min).
    pub min_watch_timeout: Duration,
    /// [`ManagedFields::Drop`] skips `metadata.managedFields` while decoding (set by the informer factory when the transform drops them anyway).
    pub managed_fields: ManagedFields,
    /// List and watch `PartialObjectMetadata` only (the pipeline's
    /// [`CacheMode::Metadata`](crate::cache_mode::CacheMode)): same URLs, metadata `Accept`
    /// headers.
    pub metadata_only: bool,
    /// How often the server sends a BOOKMARK on an idle watch (kube-apiserver: about every
    /// minute); a watch silent for twice this is stalled, torn down and resumed.
    pub bookmark_interval: Duration,
    /// A watch event longer than this is skipped, never buffered: etcd refuses objects over
    /// 1.5 MiB, so an event past 16 MiB of JSON is a broken stream, not an object.
    pub max_event_bytes: usize,
    /// Where the watch's events, endings and last arrival are counted; the informer shares
    /// one set with every reflector it starts, so restarts keep the totals.
    pub counters: Arc<WatchCounters>,
    /// Limits the lists gathering at once across the reflectors sharing it; `None` lists
    /// at once, as client-go does.
    pub list_gate: Option<ListGate>,
    /// Watch reads wait while every synced handler of the pipeline is this far behind
    /// (`read_pacing.rs`); the informer built with this config follows its handlers.
    pub read_pacing: Arc<ReadPacing>,
}

impl Default for ReflectorConfig {
    fn default() -> Self {
        Self {
            page_size: 500,
            label_selector: None,
            field_selector: None,
            streaming_lists: false,
            min_watch_timeout: Duration::from_secs(300),
            managed_fields: ManagedFields::Keep,
            metadata_only: false,
            bookmark_interval: Duration::from_secs(60),
            max_event_bytes: 16 << 20,
            counters: Arc::default(),
            list_gate: None,
            read_pacing: ReadPacing::new(DEFAULT_READ_AHEAD),
        }
    }
}

/// Closes the watch and stops the reflector. Send with `do_send`; the reflector then reports
/// [`ReflectorState::Stopped`].
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopReflector;

/// Asks for the reflector's current report (its last reported state, with the
/// resourceVersion it would resume from now). Use `send`; it answers at once.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "ReflectorReport")]
pub struct GetReflectorReport;

/// Runs the protocol: performs what each [`State`] asks, feeds outcomes to the [`Machine`],
/// and ships deltas and reports.
struct Driver<K: Send + Sync + 'static> {
    cluster: ClusterId,
    resource: String,
    list_watch: ListWatcher,
    config: ReflectorConfig,
    sink: Recipient<ReflectorBatch<K>>,
    reports: Option<Recipient<ReflectorReport>>,
    machine: Machine,
    /// Bad input met so far, and the objects set aside now.
    ledger: Ledger,
    /// The last report sent (also read by the actor for the final `Stopped` report).
    last_report: Arc<Mutex<ReflectorReport>>,
}

/// Awaits `page`; if it takes longer than `stall`, gives the list's permit up first, so a slow
/// server does not hold back the lists of others (`list_gate.rs`).
async fn unless_stalled<T>(
    page: impl std::future::Future<Output = T>,
    stall: Duration,
    permit: &mut Option<ListPermit>,
) -> T {
    let mut page = std::pin::pin!(page);
    if permit.is_some() {
        tokio::select! {
            outcome = &mut page => return outcome,
            () = tokio::time::sleep(stall) => {
                tracing::debug!(?stall, "a list page is slow; its list goes on without a permit");
                *permit = None;
            }
        }
    }
    page.await
}

/// A list page being fetched ahead of need; aborted if not used.
struct Prefetch {
    continue_token: String,
    handle: tokio::task::JoinHandle<Result<bytes::Bytes, Failure>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A page decoding on the blocking pool, and the `continue` token read ahead from its bytes
/// (which the next request already used, so the decode must confirm it).
struct Decoding<K> {
    handle: tokio::task::JoinHandle<Result<list_watch::Page<K>, Failure>>,
    peeked_continue: Option<String>,
}

/// Decoding a page costs more than fetching it, so pages decode in parallel, one per core,
/// and at most this many (about 4 MB of JSON each at 500 pods) wait undecoded.
fn parallel_decodes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// What a list (or a streaming list's initial events) has gathered for its `Replace`.
struct Collected<K> {
    /// Objects of the pages decoded so far, in list order.
    objects: Vec<Arc<K>>,
    /// Later pages still decoding, oldest first; always after `objects` in list order.
    decoding: VecDeque<Decoding<K>>,
    prefetch: Option<Prefetch>,
    /// Items of the pages decoded so far that the cache's type could not hold.
    quarantined: Vec<Quarantined>,
}

impl<K: Send + Sync + 'static> Collected<K> {
    fn new() -> Self {
        Self {
            objects: Vec::new(),
            decoding: VecDeque::new(),
            prefetch: None,
            quarantined: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.objects.clear();
        self.decoding.clear();
        self.prefetch = None;
        self.quarantined.clear();
    }

    /// Waits for the oldest decoding page and appends its objects; returns it (emptied).
    async fn finish_oldest(&mut self) -> Option<Result<list_watch::Page<K>, Failure>> {
        let decoding = self.decoding.pop_front()?;
        let page = match decoding.handle.await {
            Ok(Ok(page)) => page,
            Ok(Err(failure)) => return Some(Err(failure)),
            Err(e) => {
                return Some(Err(transient_list_failure(format!(
                    "page decode task failed: {e}"
                ))));
            }
        };
        if decoding.peeked_continue.is_some() && decoding.peeked_continue != page.continue_token {
            let message = "a page's continue token differs from the one read ahead".to_owned();
            return Some(Err(transient_list_failure(message)));
        }
        let mut page = page;
        self.quarantined.append(&mut page.quarantined);
        if self.objects.is_empty() {
            self.objects = std::mem::take(&mut page.items);
        } else {
            self.objects.append(&mut page.items);
        }
        Some(Ok(page))
    }
}

impl<K> Driver<K>
where
    K: kube::Resource + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    async fn run(mut self) {
        let mut state = self.machine.start();
        let mut collected = Collected::new();
        let mut watch: Option<WatchStream<K>> = None;
        // Held from a gated list's first page to its end (`list_gate.rs`).
        let mut list_permit: Option<ListPermit> = None;
        loop {
            self.report();
            let mut out = Vec::new();
            // When what `out` holds was read: the start of an event's handler latency.
            let mut arrived = Instant::now();
            let span = match state.clone() {
                State::List {
                    from,
                    continue_token,
                } => {
                    let span = tracing::info_span!("list_page", cluster = %self.cluster,
                        resource = %self.resource, resource_version = from.query_value(),
                        continue_token = continue_token.is_some(), bytes = tracing::field::Empty);
                    let gate = self.config.list_gate.clone();
                    if let Some(gate) = &gate
                        && list_permit.is_none()
                        && continue_token.is_none()
                    {
                        list_permit = gate.enter().await;
                    }
                    let page = self
                        .list_page(&from, continue_token, &mut collected)
                        .instrument(span.clone());
                    let outcome = match &gate {
                        Some(gate) => unless_stalled(page, gate.stall(), &mut list_permit).await,
                        None => page.await,
                    };
                    state = self.advance(state, outcome, &mut collected, &mut out);
                    if !matches!(state, State::List { .. }) {
                        // The list ended (sent, or failed into a backoff): the next one may gather.
                        list_permit = None;
                    }
                    span
                }
                State::StreamInitial { ref from } => {
                    let resource_version = from.query_value().to_owned();
                    let (outcome, span) =
                        self.open_watch(&resource_version, true, &mut watch).await;
                    state = self.advance(state, outcome, &mut collected, &mut out);
                    span
                }
                State::OpenWatch {
                    ref resource_version,
                } => {
                    let resource_version = resource_version.to_string();
                    let (outcome, span) =
                        self.open_watch(&resource_version, false, &mut watch).await;
                    state = self.advance(state, outcome, &mut collected, &mut out);
                    span
                }
                State::Watching | State::StreamingInitial => {
                    let mut overdue = false;
                    let items = match watch.as_mut() {
                        // The initial events of a streaming list are the whole list: decode
                        // them off this thread, which meanwhile keeps the connection read.
                        Some(stream) if state == State::StreamingInitial => {
                            let wait = protocol::INITIAL_EVENTS_END_WAIT;
                            let raw = tokio::time::timeout(wait, stream.next_raw()).await;
                            overdue = raw.is_err();
                            let raw = raw.unwrap_or_default();
                            let managed_fields = self.config.managed_fields;
                            tokio::task::spawn_blocking(move || {
                                list_watch::decode_batch_with::<K>(raw, managed_fields)
                            })
                            .await
                            .unwrap_or_else(|e| {
                                let message = format!("watch decode task failed: {e}");
                                vec![WatchItem::Failed(transient_watch_failure(message))]
                            })
                        }
                        Some(stream) => {
                            self.config.read_pacing.until_caught_up().await;
                            list_watch::decode_batch_with(
                                stream.next_raw().await,
                                self.config.managed_fields,
                            )
                        }
                        None => vec![WatchItem::Ended { stalled: false }],
                    };
                    if overdue {
                        let outcome = Outcome::InitialEventsEndOverdue;
                        state = self.advance(state, outcome, &mut collected, &mut out);
                        watch = None;
                    }
                    let span = tracing::info_span!("watch_event", cluster = %self.cluster,
                        resource = %self.resource, events = items.len());
                    arrived = Instant::now();
                    for item in &items {
                        self.config.counters.observe(item, arrived);
                    }
                    for item in items {
                        let item = match item {
                            WatchItem::Quarantined(quarantined) => {
                                let resource_version = quarantined.resource_version.clone();
                                if state == State::StreamingInitial {
                                    // Part of the list: reported with its Replace.
                                    collected.quarantined.push(quarantined);
                                } else {
                                    self.ledger.quarantine(quarantined);
                                }
                                let Some(resource_version) = resource_version else {
                                    continue;
                                };
                                // Resume after it: the server would send it again unchanged.
                                let outcome = Outcome::Event {
                                    resource_version: Some(resource_version),
                                };
                                state = self.advance(state, outcome, &mut collected, &mut out);
                                continue;
                            }
                            WatchItem::Skipped(reason) => {
                                self.ledger.count(reason, "watch bytes skipped");
                                continue;
                            }
                            item => item,
                        };
                        if let WatchItem::Event(
                            WatchEvent::Added(obj)
                            | WatchEvent::Modified(obj)
                            | WatchEvent::Deleted(obj),
                        ) = &item
                        {
                            self.ledger.release(&ObjectKey::of(obj));
                        }
                        let outcome = watch_outcome(item, &state, &mut collected.objects, &mut out);
                        state = self.advance(state, outcome, &mut collected, &mut out);
                        if !matches!(state, State::Watching | State::StreamingInitial) {
                            watch = None;
                            break;
                        }
                    }
                    // With one object, `record_keys` names its version (the same one).
                    if delta_objects(&out).nth(1).is_some() || out.is_empty() {
                        let last = self.machine.last_rv.as_ref();
                        let last = last.map_or("", ResourceVersion::as_str);
                        span.set_attribute("resource_version", last.to_owned());
                    }
                    span
                }
                State::BackOff { delay, .. } => {
                    tokio::time::sleep(delay).await;
                    state = self.advance(state, Outcome::Slept, &mut collected, &mut out);
                    tracing::Span::none()
                }
            };
            if !out.is_empty() {
                let count = delta_objects(&out).count();
                record_keys(&span, count, delta_objects(&out).map(key_and_version));
                self.sink.do_send(ReflectorBatch {
                    cluster: self.cluster.clone(),
                    deltas: out,
                    trace: TraceContext::of(&span),
                    arrived,
                });
            }
            // The root span ends here, before the next read: later stages hold its context.
            drop(span);
            if !self.sink.connected() {
                tracing::info!(cluster = %self.cluster, resource = %self.resource, "sink gone; reflector stops");
                return;
            }
        }
    }

    /// Opens a watch (`initial`: a streaming list's) from `resource_version`, into `watch`.
    async fn open_watch(
        &mut self,
        resource_version: &str,
        initial: bool,
        watch: &mut Option<WatchStream<K>>,
    ) -> (Outcome, tracing::Span) {
        let span = tracing::info_span!("open_watch", cluster = %self.cluster,
            resource = %self.resource, resource_version, initial);
        let timeout = self.machine.watch_timeout(self.config.min_watch_timeout);
        let limits = WatchLimits {
            silence: watch_silence_limit(self.config.bookmark_interval),
            max_event_bytes: self.config.max_event_bytes,
        };
        let opened = self
            .list_watch
            .open_watch(resource_version, initial, timeout, limits)
            .instrument(span.clone())
            .await;
        let outcome = match opened {
            Ok(stream) => {
                *watch = Some(stream);
                Outcome::WatchOpened
            }
            Err(failure) => Outcome::Failed(failure),
        };
        (outcome, span)
    }

    fn advance(
        &mut self,
        state: State,
        outcome: Outcome,
        collected: &mut Collected<K>,
        out: &mut Vec<ReflectorDelta<K>>,
    ) -> State {
        if let Outcome::Failed(failure) = &outcome {
            if let Some(reason) = failure.bad_input {
                self.ledger.count(reason, &failure.message);
            }
            let mid_list = matches!(
                state,
                State::List {
                    continue_token: Some(_),
                    ..
                }
            );
            if mid_list && failure.kind == FailureKind::Expired {
                self.ledger
                    .count(BadInput::ExpiredContinue, &failure.message);
            }
        }
        let (next, effect) = self.machine.step(state, outcome, Instant::now());
        match effect {
            Some(Effect::Replace { resource_version }) => {
                let objects = std::mem::take(&mut collected.objects);
                self.ledger
                    .replace(std::mem::take(&mut collected.quarantined));
                collected.clear();
                out.push(ReflectorDelta::Replace {
                    objects,
                    resource_version,
                });
            }
            Some(Effect::Discard) => collected.clear(),
            None => {}
        }
        next
    }

    /// Fetches (or takes the prefetched) page and starts decoding it on the blocking pool.
    /// When its `continue` token can be read ahead, fetches the next page at once and returns
    /// without waiting for the decode; the last page waits for every decode, in order.
    async fn list_page(
        &self,
        from: &ListFrom,
        continue_token: Option<String>,
        collected: &mut Collected<K>,
    ) -> Outcome {
        let limit = self.config.page_size;
        let body = match (collected.prefetch.take(), continue_token.as_deref()) {
            (Some(mut ahead), Some(token)) if ahead.continue_token == token => {
                (&mut ahead.handle).await.unwrap_or_else(|e| {
                    Err(transient_list_failure(format!(
                        "page fetch task failed: {e}"
                    )))
                })
            }
            _ => {
                self.list_watch
                    .fetch_page(from, continue_token.as_deref(), limit)
                    .await
            }
        };
        let body = match body {
            Ok(body) => body,
            Err(failure) => return Outcome::Failed(failure),
        };
        tracing::Span::current().record("bytes", body.len());
        let peeked_continue = list_watch::peek_continue(&body);
        if let Some(next) = &peeked_continue {
            let list_watch = self.list_watch.clone();
            let token = next.clone();
            let from = from.clone();
            let handle =
                tokio::spawn(
                    async move { list_watch.fetch_page(&from, Some(&token), limit).await },
                );
            collected.prefetch = Some(Prefetch {
                continue_token: next.clone(),
                handle,
            });
        }
        let managed_fields = self.config.managed_fields;
        let handle = tokio::task::spawn_blocking(move || {
            list_watch::decode_page_with::<K>(&body, managed_fields)
        });
        collected.decoding.push_back(Decoding {
            handle,
            peeked_continue: peeked_continue.clone(),
        });
        if peeked_continue.is_some() {
            while collected.decoding.len() > parallel_decodes() {
                if let Some(Err(failure)) = collected.finish_oldest().await {
                    return Outcome::Failed(failure);
                }
            }
            // Intermediate pages' resourceVersions are not used; the last page's is.
            return Outcome::Page {
                resource_version: None,
                continue_token: peeked_continue,
            };
        }
        let mut last = None;
        while let Some(finished) = collected.finish_oldest().await {
            match finished {
                Ok(page) => last = Some(page),
                Err(failure) => return Outcome::Failed(failure),
            }
        }
        match last {
            Some(page) if page.resource_version.is_none() && page.continue_token.is_none() => {
                // Nothing to watch from: a list must say which state it shows.
                let message = "a list without resourceVersion".to_owned();
                let request = list_watch::Request::List;
                Outcome::Failed(Failure::bad_input(request, BadInput::InvalidFrame, message))
            }
            Some(page) => Outcome::Page {
                resource_version: page.resource_version,
                continue_token: page.continue_token,
            },
            None => Outcome::Failed(transient_list_failure("no page decoded".to_owned())),
        }
    }

    /// Sends a report if anything but the resourceVersion changed since the last one.
    fn report(&mut self) {
        let m = &self.machine;
        let mut last = self.last_report.lock();
        let quarantined_changed = !self.ledger.quarantined().eq(last.quarantined.iter());
        let changed = last.state != m.status
            || last.synced != m.synced
            || last.lists != m.lists
            || last.relists != m.relists
            || last.watches != m.watches
            || last.streaming_refused != m.streaming_refused
            || last.stalled_watches != m.stalled_watches
            || &last.bad_input != self.ledger.counts()
            || quarantined_changed;
        last.last_resource_version.clone_from(&m.last_rv);
        if !changed {
            return;
        }
        last.state = m.status.clone();
        last.synced = m.synced;
        last.lists = m.lists;
        last.relists = m.relists;
        last.watches = m.watches;
        last.streaming_refused = m.streaming_refused;
        last.stalled_watches = m.stalled_watches;
        last.bad_input.clone_from(self.ledger.counts());
        last.quarantined = self.ledger.quarantined().cloned().collect();
        if let Some(reports) = &self.reports {
            reports.do_send(last.clone());
        }
    }
}

fn transient_watch_failure(message: String) -> Failure {
    Failure {
        request: list_watch::Request::Watch,
        ..transient_list_failure(message)
    }
}

fn transient_list_failure(message: String) -> Failure {
    Failure {
        request: list_watch::Request::List,
        kind: FailureKind::Transient,
        code: None,
        message,
        retry_after: None,
        bad_input: None,
    }
}

/// Turns one watch item into the machine's outcome, routing its object: into `partial` while
/// a streaming list collects its initial events, else into `out` as a delta.
fn watch_outcome<K: kube::Resource>(
    item: WatchItem<K>,
    state: &State,
    partial: &mut Vec<Arc<K>>,
    out: &mut Vec<ReflectorDelta<K>>,
) -> Outcome {
    let initial = matches!(state, State::StreamingInitial);
    let event = match item {
        WatchItem::Event(event) => event,
        WatchItem::Ended { stalled: false } => return Outcome::WatchEnded,
        WatchItem::Ended { stalled: true } => return Outcome::WatchStalled,
        WatchItem::Failed(failure) => return Outcome::Failed(failure),
        WatchItem::Quarantined(_) | WatchItem::Skipped(_) => {
            // Sorted out by the driver before; nothing to deliver.
            return Outcome::Event {
                resource_version: None,
            };
        }
    };
    let (delta, resource_version) = match event {
        WatchEvent::Added(obj) => {
            let rv = ResourceVersion::from_server(obj.meta().resource_version.as_deref());
            (ReflectorDelta::Added(Arc::new(obj)), rv)
        }
        WatchEvent::Modified(obj) => {
            let rv = ResourceVersion::from_server(obj.meta().resource_version.as_deref());
            (ReflectorDelta::Modified(Arc::new(obj)), rv)
        }
        WatchEvent::Deleted(obj) => {
            let rv = ResourceVersion::from_server(obj.meta().resource_version.as_deref());
            (ReflectorDelta::Deleted(Arc::new(obj)), rv)
        }
        WatchEvent::Bookmark(bookmark) => {
            let end = bookmark
                .metadata
                .annotations
                .get(INITIAL_EVENTS_END)
                .is_some_and(|v| v == "true");
            return Outcome::Bookmark {
                resource_version: ResourceVersion::from_server(Some(
                    bookmark.metadata.resource_version.as_str(),
                )),
                initial_events_end: end,
            };
        }
        WatchEvent::Error(status) => {
            return Outcome::Failed(Failure::from_status(
                list_watch::Request::Watch,
                &status,
                None,
            ));
        }
    };
    tracing::trace!(
        resource_version = resource_version
            .as_ref()
            .map_or("", ResourceVersion::as_str),
        "watch event"
    );
    match delta {
        ReflectorDelta::Added(obj) | ReflectorDelta::Modified(obj) if initial => partial.push(obj),
        ReflectorDelta::Deleted(_) if initial => {
            tracing::warn!("DELETED during a streaming list's initial events; ignored");
        }
        delta => out.push(delta),
    }
    Outcome::Event { resource_version }
}

/// Lists and watches one resource in one cluster, feeding a delta sink.
pub struct Reflector<K>
where
    K: CacheObject + DeserializeOwned,
{
    /// Taken when the actor starts.
    driver: Option<Driver<K>>,
    reports: Option<Recipient<ReflectorReport>>,
    last_report: Arc<Mutex<ReflectorReport>>,
}

impl<K> Reflector<K>
where
    K: CacheObject + DeserializeOwned,
    K::DynamicType: Clone + Send + Sync,
{
    /// A reflector over `api` (already scoped to a namespace or all) that sends its deltas to
    /// `sink` and its state changes to `reports`. Start it with `Actor::start`; it stops on
    /// [`StopReflector`] or when the sink is gone.
    ///
    /// ```no_run
    /// # use actix::prelude::*;
    /// # use k8s_openapi::api::core::v1::Pod;
    /// # use panoptes_actors::reflector::*;
    /// # fn demo(client: kube::Client, sink: Recipient<ReflectorBatch<Pod>>) {
    /// let reflector = Reflector::new(
    ///     "sim-1".into(),
    ///     "v1/pods".to_owned(),
    ///     kube::Api::<Pod>::all(client),
    ///     ReflectorConfig::default(),
    ///     sink,
    ///     None,
    /// )
    /// .start();
    /// reflector.do_send(StopReflector);
    /// # }
    /// ```
    pub fn new(
        cluster: ClusterId,
        resource: String,
        api: kube::Api<K>,
        config: ReflectorConfig,
        sink: Recipient<ReflectorBatch<K>>,
        reports: Option<Recipient<ReflectorReport>>,
    ) -> Self {
        let last_report = Arc::new(Mutex::new(ReflectorReport {
            cluster: cluster.clone(),
            resource: resource.clone(),
            state: ReflectorState::Stopped,
            synced: false,
            lists: 0,
            relists: 0,
            watches: 0,
            last_resource_version: None,
            streaming_refused: false,
            bad_input: BTreeMap::new(),
            quarantined: Vec::new(),
            stalled_watches: 0,
        }));
        let list_watch = ListWatcher::new(
            api,
            config.label_selector.clone(),
            config.field_selector.clone(),
        )
        .metadata_only(config.metadata_only);
        let machine = Machine::new(config.streaming_lists, StdRng::from_os_rng());
        let driver = Driver {
            ledger: Ledger::new(cluster.clone(), resource.clone()),
            cluster,
            resource,
            list_watch,
            config,
            sink,
            reports: reports.clone(),
            machine,
            last_report: last_report.clone(),
        };
        Self {
            driver: Some(driver),
            reports,
            last_report,
        }
    }
}

impl<K> Actor for Reflector<K>
where
    K: CacheObject + DeserializeOwned,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(driver) = self.driver.take() {
            ctx.spawn(
                actix::fut::wrap_future(driver.run())
                    .map(|(), _act, ctx: &mut Context<Self>| ctx.stop()),
            );
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let mut report = self.last_report.lock().clone();
        report.state = ReflectorState::Stopped;
        if let Some(reports) = &self.reports {
            reports.do_send(report);
        }
    }
}

impl<K> Handler<StopReflector> for Reflector<K>
where
    K: CacheObject + DeserializeOwned,
{
    type Result = ();

    fn handle(&mut self, _msg: StopReflector, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl<K> Handler<crate::stage_fault::InjectPanic> for Reflector<K>
where
    K: CacheObject + DeserializeOwned,
{
    type Result = ();

    /// Fault injection: dies as a bug would; the pipeline's supervisor restarts it.
    fn handle(&mut self, msg: crate::stage_fault::InjectPanic, _ctx: &mut Context<Self>) {
        msg.fire()
    }
}

impl<K> Handler<GetReflectorReport> for Reflector<K>
where
    K: CacheObject + DeserializeOwned,
{
    type Result = MessageResult<GetReflectorReport>;

    fn handle(&mut self, _msg: GetReflectorReport, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.last_report.lock().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-only: typed and dynamic objects both make reflectors, and their batches can
    /// cross threads (to an arbiter running the FIFO).
    #[allow(dead_code)]
    fn should_accept_typed_and_dynamic_objects() {
        fn actor<A: Actor<Context = Context<A>> + Handler<StopReflector>>() {}
        fn sendable<T: Send>() {}
        actor::<Reflector<k8s_openapi::api::core::v1::Pod>>();
        actor::<Reflector<kube::api::DynamicObject>>();
        sendable::<ReflectorBatch<kube::api::DynamicObject>>();
    }

    #[test]
    fn should_route_initial_events_to_the_replace_and_later_ones_to_deltas() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::WatchEvent;
        let cm = |rv: &str| {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some("a".into());
            cm.metadata.resource_version = Some(rv.into());
            cm
        };
        let (mut partial, mut out) = (Vec::new(), Vec::new());
        let item = WatchItem::Event(WatchEvent::Added(cm("3")));
        let outcome = watch_outcome(item, &State::StreamingInitial, &mut partial, &mut out);
        assert_eq!(
            outcome,
            Outcome::Event {
                resource_version: Some("3".into())
            }
        );
        assert_eq!((partial.len(), out.len()), (1, 0));
        let item = WatchItem::Event(WatchEvent::Deleted(cm("4")));
        let outcome = watch_outcome(item, &State::Watching, &mut partial, &mut out);
        assert_eq!(
            outcome,
            Outcome::Event {
                resource_version: Some("4".into())
            }
        );
        assert!(
            matches!(out.as_slice(), [ReflectorDelta::Deleted(obj)] if obj.metadata.resource_version.as_deref() == Some("4"))
        );
    }
}
