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
//!   resourceVersion seen, bookmarks included, without a relist.
//! - **Relist.** `410 Gone` / "too old resource version" (HTTP status or ERROR event) relists
//!   with `resourceVersion=""` (a consistent read) and delivers another `Replace`; an expired
//!   `continue` token restarts the list from its first page.
//! - **Backoff.** Failures wait 0.8 s doubling to 30 s with jitter, reset after 2 min healthy
//!   ([`crate::backoff`]); a longer `Retry-After` wins; `403` reports
//!   [`ReflectorState::Forbidden`] once and retries at the slowest pace.
//! - **Streaming lists** (`ReflectorConfig::streaming_lists`): a `sendInitialEvents=true`
//!   watch replaces the list; if the server refuses it (400/422) or ends the stream before
//!   `k8s.io/initial-events-end`, this reflector falls back to list+watch for good and says so
//!   in [`ReflectorReport::streaming_refused`].
//! - **Sharing.** Each object is decoded once and sent behind an `Arc`; never cloned.
//!
//! # Requests
//! Built by `kube::core::Request` as `Api::list`/`Api::watch` build them ([`crate::list_watch`]):
//! `?limit=500[&continue=…][&resourceVersion=…]` then
//! `?watch=true&timeoutSeconds=300..600&allowWatchBookmarks=true&resourceVersion=RV`.
//! The list's resourceVersion follows [`relist_resource_version`]. A page's successor is
//! fetched while the page decodes on a blocking thread.
//!
//! # Lifecycle
//! Started with `Actor::start` (or in an arbiter); the list/watch loop runs as a future on the
//! actor's context, so it is dropped — and the watch connection closed — the moment the actor
//! stops. It stops on [`StopReflector`], or by itself once its sink's actor is gone. A restart
//! loses nothing but time: the next reflector lists again. Reports go to `reports` with
//! `do_send` on every change of state, sync or counters, and a final
//! [`ReflectorState::Stopped`].
//!
//! # Differences from client-go
//! - Any 410 relists with `""` straight away; client-go first retries the last version and
//!   only falls back to `""` when that list fails too.
//! - No resync (that belongs to listeners) and no `Store`: the sink receives data, not calls.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::ids::ClusterId;
use crate::list_watch::{self, Failure, FailureKind, ListWatcher, WatchItem, WatchStream};

/// What the reflector tells its store: client-go's `Store.Add/Update/Delete/Replace` as data.
#[derive(Debug, Clone)]
pub enum ReflectorDelta<K> {
    /// A watch ADDED event.
    Added(Arc<K>),
    /// A watch MODIFIED event.
    Modified(Arc<K>),
    /// A watch DELETED event (the object's last state).
    Deleted(Arc<K>),
    /// A complete (re)list: exactly these objects exist at `resource_version`. The FIFO turns
    /// keys it knows that are absent into deleted-final-state-unknown tombstones.
    Replace {
        objects: Vec<Arc<K>>,
        resource_version: String,
    },
}

/// A batch of deltas, in order, from one reflector. Sent with `do_send` (the FIFO drains its
/// mailbox fast and coalesces, so the reflector never waits on a slow consumer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReflectorBatch<K: 'static> {
    pub cluster: ClusterId,
    pub deltas: Vec<ReflectorDelta<K>>,
    /// The span of the list page or watch event that produced these deltas.
    pub span: tracing::Span,
}

/// What the reflector is doing, reported on every state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReflectorState {
    Listing,
    Watching,
    /// Waiting before the next attempt after `error`.
    BackingOff {
        error: String,
        retry_in: std::time::Duration,
    },
    /// The server answered 403 for this resource; retried slowly, reported, never hot-looped.
    Forbidden {
        message: String,
    },
    Stopped,
}

/// A state change of one reflector (to the informer, for `has_synced`, readiness and metrics).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct ReflectorReport {
    pub cluster: ClusterId,
    /// `v1/pods`, `apps/v1/deployments`.
    pub resource: String,
    pub state: ReflectorState,
    /// The first complete list (or streaming initial events) has been delivered.
    pub synced: bool,
    /// Lists started (each streaming initial watch counts as one).
    pub lists: u64,
    /// Lists started after the first sync (after a 410, or a failed list).
    pub relists: u64,
    /// Watches opened.
    pub watches: u64,
    pub last_resource_version: Option<String>,
    /// Streaming lists were asked for but the server refused them; this reflector lists.
    pub streaming_refused: bool,
}

/// How a reflector lists and watches.
#[derive(Debug, Clone)]
pub struct ReflectorConfig {
    /// `limit` of each list page (client-go and kube-runtime use 500).
    pub page_size: u32,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Use `sendInitialEvents=true` watches instead of list+watch; falls back when refused.
    pub streaming_lists: bool,
    /// Each watch asks the server to end it after a random time in `[min, 2 * min)`, so the
    /// watches of many reflectors do not all reconnect at once (client-go's `minWatchTimeout`:
    /// 5 min).
    pub min_watch_timeout: Duration,
}

impl Default for ReflectorConfig {
    fn default() -> Self {
        Self {
            page_size: 500,
            label_selector: None,
            field_selector: None,
            streaming_lists: false,
            min_watch_timeout: Duration::from_secs(300),
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

/// The resourceVersion of the next list, with client-go's reasons (`relistResourceVersion`):
/// - after the last version proved unavailable (410, too large), `""`: a consistent read from
///   etcd, the only one guaranteed to succeed;
/// - on the first list, `"0"`: any version, served from the API server's watch cache (kube
///   drops it when a `limit` is set, making it a paginated consistent list);
/// - otherwise the last version seen, so the list is not older than what we delivered.
pub fn relist_resource_version(last_seen: &str, last_seen_unavailable: bool) -> &str {
    if last_seen_unavailable {
        ""
    } else if last_seen.is_empty() {
        "0"
    } else {
        last_seen
    }
}

/// The `timeoutSeconds` of a watch: client-go's `minWatchTimeout * (1 + rand)`. `sample` is in
/// `[0, 1)`.
pub fn watch_timeout(min: Duration, sample: f64) -> Duration {
    Duration::from_secs(min.mul_f64(1.0 + sample).as_secs().max(1))
}

/// A watch that ends this soon without delivering anything is treated as a failure, so a
/// server that accepts and immediately closes watches is not hammered (client-go: "very short
/// watch").
const VERY_SHORT_WATCH: Duration = Duration::from_secs(1);

/// The annotation on the bookmark that closes a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Where the list/watch protocol stands; each variant says what the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// GET one list page. `continue_token` is `None` for the first page.
    List {
        resource_version: String,
        continue_token: Option<String>,
    },
    /// Open a `sendInitialEvents=true` watch at `resource_version` (streaming list).
    StreamInitial { resource_version: String },
    /// Read the initial events of the open streaming watch, until `initial-events-end`.
    StreamingInitial,
    /// Open a watch from `resource_version`.
    OpenWatch { resource_version: String },
    /// Read events from the open watch.
    Watching,
    /// Sleep `delay`, then do `then`.
    BackOff { delay: Duration, then: Box<State> },
}

/// What the last request of the driver produced.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// A list page arrived (its objects are with the driver).
    Page {
        resource_version: String,
        continue_token: Option<String>,
    },
    WatchOpened,
    /// An ADDED/MODIFIED/DELETED event for an object at `resource_version`.
    Event {
        resource_version: String,
    },
    Bookmark {
        resource_version: String,
        initial_events_end: bool,
    },
    /// The watch ended without an error.
    WatchEnded,
    Failed(Failure),
    Slept,
}

/// What the driver must do with the objects it accumulated for a `Replace`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    /// The list is complete: send the accumulated objects as one `Replace`.
    Replace { resource_version: String },
    /// The list was abandoned: drop the accumulated objects.
    Discard,
}

/// The reflector's decisions, free of I/O: [`Machine::step`] maps (state, outcome) to the
/// next state and an effect. Tests drive it without a socket.
#[derive(Debug)]
struct Machine {
    /// Streaming lists asked for and not refused.
    streaming: bool,
    streaming_refused: bool,
    /// client-go's `lastSyncResourceVersion`: of the last list, event or bookmark.
    last_rv: String,
    /// client-go's `isLastSyncResourceVersionUnavailable`: set by 410, cleared by a full list.
    last_rv_unavailable: bool,
    backoff: Backoff,
    rng: StdRng,
    /// Forbidden stays reported across retries until a request succeeds.
    status: ReflectorState,
    synced: bool,
    lists: u64,
    relists: u64,
    watches: u64,
    /// When the current watch opened and how many events it delivered (short-watch check).
    watch_opened_at: Option<Instant>,
    watch_events: u64,
    /// 410s since the last successful request; the second in a row backs off.
    expired_in_a_row: u32,
}

impl Machine {
    fn new(streaming: bool, rng: StdRng) -> Self {
        Self {
            streaming,
            streaming_refused: false,
            last_rv: String::new(),
            last_rv_unavailable: false,
            backoff: Backoff::default(),
            rng,
            status: ReflectorState::Listing,
            synced: false,
            lists: 0,
            relists: 0,
            watches: 0,
            watch_opened_at: None,
            watch_events: 0,
            expired_in_a_row: 0,
        }
    }

    /// The first state, and the one after anything that forces a relist.
    fn start(&mut self) -> State {
        let resource_version =
            relist_resource_version(&self.last_rv, self.last_rv_unavailable).to_owned();
        let next = if self.streaming {
            State::StreamInitial { resource_version }
        } else {
            State::List {
                resource_version,
                continue_token: None,
            }
        };
        self.begin(next)
    }

    /// Bookkeeping for a request about to be made.
    fn begin(&mut self, next: State) -> State {
        let forbidden = matches!(self.status, ReflectorState::Forbidden { .. });
        match &next {
            State::List {
                continue_token: None,
                ..
            }
            | State::StreamInitial { .. } => {
                self.lists += 1;
                if self.synced {
                    self.relists += 1;
                }
                if !forbidden {
                    self.status = ReflectorState::Listing;
                }
            }
            State::OpenWatch { .. } if !forbidden => self.status = ReflectorState::Watching,
            _ => {}
        }
        next
    }

    fn watch_timeout(&mut self, min: Duration) -> Duration {
        watch_timeout(min, self.rng.random())
    }

    fn step(&mut self, state: State, outcome: Outcome, now: Instant) -> (State, Option<Effect>) {
        match (state, outcome) {
            (State::BackOff { then, .. }, Outcome::Slept) => (self.begin(*then), None),
            (state, Outcome::Failed(failure)) => self.fail(state, failure, now),
            (
                State::List {
                    resource_version, ..
                },
                Outcome::Page {
                    continue_token: Some(token),
                    ..
                },
            ) => {
                self.succeeded(ReflectorState::Listing);
                (
                    State::List {
                        resource_version,
                        continue_token: Some(token),
                    },
                    None,
                )
            }
            (
                State::List { .. },
                Outcome::Page {
                    resource_version,
                    continue_token: None,
                },
            ) => {
                self.succeeded(ReflectorState::Listing);
                self.synced_at(&resource_version);
                let next = self.begin(State::OpenWatch {
                    resource_version: resource_version.clone(),
                });
                (next, Some(Effect::Replace { resource_version }))
            }
            (State::StreamInitial { .. }, Outcome::WatchOpened) => {
                self.succeeded(ReflectorState::Listing);
                self.watch_opened(now);
                (State::StreamingInitial, None)
            }
            (State::OpenWatch { .. }, Outcome::WatchOpened) => {
                self.succeeded(ReflectorState::Watching);
                self.watch_opened(now);
                (State::Watching, None)
            }
            (State::StreamingInitial, Outcome::Event { .. }) => {
                self.watch_events += 1;
                (State::StreamingInitial, None)
            }
            (
                State::StreamingInitial,
                Outcome::Bookmark {
                    resource_version,
                    initial_events_end: true,
                },
            ) => {
                self.succeeded(ReflectorState::Watching);
                self.synced_at(&resource_version);
                (State::Watching, Some(Effect::Replace { resource_version }))
            }
            (State::StreamingInitial, Outcome::Bookmark { .. }) => (State::StreamingInitial, None),
            (State::StreamingInitial, Outcome::WatchEnded) => {
                // A server that honoured sendInitialEvents would have ended them first.
                self.refuse_streaming("the streaming list ended before initial-events-end");
                (self.start(), Some(Effect::Discard))
            }
            (
                State::Watching,
                Outcome::Event { resource_version }
                | Outcome::Bookmark {
                    resource_version, ..
                },
            ) => {
                self.watch_events += 1;
                if !resource_version.is_empty() {
                    self.last_rv = resource_version;
                }
                (State::Watching, None)
            }
            (State::Watching, Outcome::WatchEnded) => {
                let resume = State::OpenWatch {
                    resource_version: self.last_rv.clone(),
                };
                if self.is_very_short_watch(now) {
                    let failure = "the watch ended at once without events".to_owned();
                    return (self.back_off(resume, failure, None, now), None);
                }
                (self.begin(resume), None)
            }
            (state, outcome) => {
                // Unreachable by construction; recover by relisting rather than panicking.
                tracing::error!(?state, ?outcome, "reflector: unexpected outcome; relisting");
                (self.start(), Some(Effect::Discard))
            }
        }
    }

    fn fail(&mut self, state: State, failure: Failure, now: Instant) -> (State, Option<Effect>) {
        let streaming_attempt =
            matches!(state, State::StreamInitial { .. } | State::StreamingInitial);
        if streaming_attempt && failure.kind == FailureKind::Rejected {
            self.refuse_streaming(&failure.message);
            return (self.start(), Some(Effect::Discard));
        }
        let discard = matches!(
            state,
            State::List { .. } | State::StreamInitial { .. } | State::StreamingInitial
        )
        .then_some(Effect::Discard);
        if failure.kind == FailureKind::Expired {
            tracing::info!(%failure, "resourceVersion expired; relisting");
            self.last_rv_unavailable = true;
            self.expired_in_a_row += 1;
            if self.expired_in_a_row == 1 {
                return (self.start(), discard);
            }
            let relist = self.relist_state();
            return (
                self.back_off(relist, failure.to_string(), None, now),
                discard,
            );
        }
        let retry = match state {
            State::OpenWatch { .. } | State::Watching => State::OpenWatch {
                resource_version: self.last_rv.clone(),
            },
            _ => self.relist_state(),
        };
        if failure.kind == FailureKind::Forbidden {
            tracing::warn!(%failure, "forbidden; retrying slowly");
            self.status = ReflectorState::Forbidden {
                message: failure.message,
            };
            let delay = self.backoff.slowest(now, &mut self.rng);
            return (
                State::BackOff {
                    delay,
                    then: Box::new(retry),
                },
                discard,
            );
        }
        tracing::debug!(%failure, "request failed; backing off");
        let retry_after = failure.retry_after;
        (
            self.back_off(retry, failure.to_string(), retry_after, now),
            discard,
        )
    }

    /// The list (or streaming list) that starts over, without counting it yet.
    fn relist_state(&self) -> State {
        let resource_version =
            relist_resource_version(&self.last_rv, self.last_rv_unavailable).to_owned();
        if self.streaming {
            State::StreamInitial { resource_version }
        } else {
            State::List {
                resource_version,
                continue_token: None,
            }
        }
    }

    fn back_off(
        &mut self,
        then: State,
        error: String,
        server_delay: Option<Duration>,
        now: Instant,
    ) -> State {
        let delay = self.backoff.next_at_least(now, &mut self.rng, server_delay);
        if !matches!(self.status, ReflectorState::Forbidden { .. }) {
            self.status = ReflectorState::BackingOff {
                error,
                retry_in: delay,
            };
        }
        State::BackOff {
            delay,
            then: Box::new(then),
        }
    }

    fn succeeded(&mut self, status: ReflectorState) {
        self.status = status;
        self.expired_in_a_row = 0;
    }

    fn synced_at(&mut self, resource_version: &str) {
        self.synced = true;
        self.last_rv = resource_version.to_owned();
        self.last_rv_unavailable = false;
    }

    fn watch_opened(&mut self, now: Instant) {
        self.watches += 1;
        self.watch_opened_at = Some(now);
        self.watch_events = 0;
    }

    fn is_very_short_watch(&self, now: Instant) -> bool {
        self.watch_events == 0
            && self
                .watch_opened_at
                .is_some_and(|at| now.saturating_duration_since(at) < VERY_SHORT_WATCH)
    }

    fn refuse_streaming(&mut self, why: &str) {
        tracing::warn!(
            reason = why,
            "streaming lists refused; falling back to list+watch"
        );
        self.streaming = false;
        self.streaming_refused = true;
    }
}

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
    /// The last report sent (also read by the actor for the final `Stopped` report).
    last_report: Arc<Mutex<ReflectorReport>>,
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

impl<K> Driver<K>
where
    K: kube::Resource + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    async fn run(mut self) {
        let mut state = self.machine.start();
        let mut partial: Vec<Arc<K>> = Vec::new();
        let mut watch: Option<WatchStream<K>> = None;
        let mut prefetch: Option<Prefetch> = None;
        loop {
            self.report();
            let mut out = Vec::new();
            let span = match state.clone() {
                State::List {
                    resource_version,
                    continue_token,
                } => {
                    let span = tracing::info_span!("list_page", cluster = %self.cluster,
                        resource = %self.resource, resource_version = %resource_version,
                        continue_token = continue_token.is_some(), objects = tracing::field::Empty);
                    let outcome = self
                        .list_page(
                            &resource_version,
                            continue_token,
                            &mut prefetch,
                            &mut partial,
                        )
                        .instrument(span.clone())
                        .await;
                    state = self.advance(state, outcome, &mut partial, &mut out);
                    span
                }
                State::StreamInitial { resource_version }
                | State::OpenWatch { resource_version } => {
                    let initial = matches!(state, State::StreamInitial { .. });
                    let span = tracing::info_span!("open_watch", cluster = %self.cluster,
                        resource = %self.resource, resource_version = %resource_version, initial);
                    let timeout = self.machine.watch_timeout(self.config.min_watch_timeout);
                    let opened = self
                        .list_watch
                        .open_watch(&resource_version, initial, timeout)
                        .instrument(span.clone())
                        .await;
                    let outcome = match opened {
                        Ok(stream) => {
                            watch = Some(stream);
                            Outcome::WatchOpened
                        }
                        Err(failure) => Outcome::Failed(failure),
                    };
                    state = self.advance(state, outcome, &mut partial, &mut out);
                    span
                }
                State::Watching | State::StreamingInitial => {
                    let items = match watch.as_mut() {
                        Some(stream) => stream.next_batch().await,
                        None => vec![WatchItem::Ended],
                    };
                    let span = tracing::info_span!("watch_event", cluster = %self.cluster,
                        resource = %self.resource, events = items.len(),
                        resource_version = tracing::field::Empty);
                    for item in items {
                        let outcome = watch_outcome(item, &state, &mut partial, &mut out);
                        state = self.advance(state, outcome, &mut partial, &mut out);
                        if !matches!(state, State::Watching | State::StreamingInitial) {
                            watch = None;
                            break;
                        }
                    }
                    span.record("resource_version", self.machine.last_rv.as_str());
                    span
                }
                State::BackOff { delay, .. } => {
                    tokio::time::sleep(delay).await;
                    state = self.advance(state, Outcome::Slept, &mut partial, &mut out);
                    tracing::Span::none()
                }
            };
            if !out.is_empty() {
                self.sink.do_send(ReflectorBatch {
                    cluster: self.cluster.clone(),
                    deltas: out,
                    span,
                });
            }
            if !self.sink.connected() {
                tracing::info!(cluster = %self.cluster, resource = %self.resource, "sink gone; reflector stops");
                return;
            }
        }
    }

    fn advance(
        &mut self,
        state: State,
        outcome: Outcome,
        partial: &mut Vec<Arc<K>>,
        out: &mut Vec<ReflectorDelta<K>>,
    ) -> State {
        let (next, effect) = self.machine.step(state, outcome, Instant::now());
        match effect {
            Some(Effect::Replace { resource_version }) => {
                out.push(ReflectorDelta::Replace {
                    objects: std::mem::take(partial),
                    resource_version,
                });
            }
            Some(Effect::Discard) => partial.clear(),
            None => {}
        }
        next
    }

    /// Fetches (or takes the prefetched) page, starts fetching its successor, decodes it off
    /// this thread and appends its objects to `partial`.
    async fn list_page(
        &self,
        resource_version: &str,
        continue_token: Option<String>,
        prefetch: &mut Option<Prefetch>,
        partial: &mut Vec<Arc<K>>,
    ) -> Outcome {
        let limit = self.config.page_size;
        let body = match (prefetch.take(), continue_token.as_deref()) {
            (Some(mut ahead), Some(token)) if ahead.continue_token == token => {
                (&mut ahead.handle).await.unwrap_or_else(|e| {
                    Err(transient_list_failure(format!(
                        "page fetch task failed: {e}"
                    )))
                })
            }
            _ => {
                self.list_watch
                    .fetch_page(resource_version, continue_token.as_deref(), limit)
                    .await
            }
        };
        let body = match body {
            Ok(body) => body,
            Err(failure) => return Outcome::Failed(failure),
        };
        if let Some(next) = list_watch::peek_continue(&body) {
            let list_watch = self.list_watch.clone();
            let token = next.clone();
            let handle =
                tokio::spawn(async move { list_watch.fetch_page("", Some(&token), limit).await });
            *prefetch = Some(Prefetch {
                continue_token: next,
                handle,
            });
        }
        let decoded =
            tokio::task::spawn_blocking(move || list_watch::decode_page::<K>(&body)).await;
        match decoded {
            Ok(Ok(page)) => {
                tracing::Span::current().record("objects", page.items.len());
                if partial.is_empty() {
                    *partial = page.items;
                } else {
                    partial.extend(page.items);
                }
                Outcome::Page {
                    resource_version: page.resource_version,
                    continue_token: page.continue_token,
                }
            }
            Ok(Err(failure)) => Outcome::Failed(failure),
            Err(e) => Outcome::Failed(transient_list_failure(format!(
                "page decode task failed: {e}"
            ))),
        }
    }

    /// Sends a report if anything but the resourceVersion changed since the last one.
    fn report(&mut self) {
        let m = &self.machine;
        let mut last = self.last_report.lock();
        let changed = last.state != m.status
            || last.synced != m.synced
            || last.lists != m.lists
            || last.relists != m.relists
            || last.watches != m.watches
            || last.streaming_refused != m.streaming_refused;
        last.last_resource_version = Some(m.last_rv.clone()).filter(|rv| !rv.is_empty());
        if !changed {
            return;
        }
        last.state = m.status.clone();
        last.synced = m.synced;
        last.lists = m.lists;
        last.relists = m.relists;
        last.watches = m.watches;
        last.streaming_refused = m.streaming_refused;
        if let Some(reports) = &self.reports {
            reports.do_send(last.clone());
        }
    }
}

fn transient_list_failure(message: String) -> Failure {
    Failure {
        request: list_watch::Request::List,
        kind: FailureKind::Transient,
        code: None,
        message,
        retry_after: None,
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
    use kube::api::WatchEvent;
    let initial = matches!(state, State::StreamingInitial);
    let event = match item {
        WatchItem::Event(event) => event,
        WatchItem::Ended => return Outcome::WatchEnded,
        WatchItem::Failed(failure) => return Outcome::Failed(failure),
    };
    let (delta, resource_version) = match event {
        WatchEvent::Added(obj) => {
            let rv = obj.meta().resource_version.clone().unwrap_or_default();
            (ReflectorDelta::Added(Arc::new(obj)), rv)
        }
        WatchEvent::Modified(obj) => {
            let rv = obj.meta().resource_version.clone().unwrap_or_default();
            (ReflectorDelta::Modified(Arc::new(obj)), rv)
        }
        WatchEvent::Deleted(obj) => {
            let rv = obj.meta().resource_version.clone().unwrap_or_default();
            (ReflectorDelta::Deleted(Arc::new(obj)), rv)
        }
        WatchEvent::Bookmark(bookmark) => {
            let end = bookmark
                .metadata
                .annotations
                .get(INITIAL_EVENTS_END)
                .is_some_and(|v| v == "true");
            return Outcome::Bookmark {
                resource_version: bookmark.metadata.resource_version,
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
    tracing::trace!(resource_version = %resource_version, "watch event");
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
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// Taken when the actor starts.
    driver: Option<Driver<K>>,
    reports: Option<Recipient<ReflectorReport>>,
    last_report: Arc<Mutex<ReflectorReport>>,
}

impl<K> Reflector<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
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
        }));
        let list_watch = ListWatcher::new(
            api,
            config.label_selector.clone(),
            config.field_selector.clone(),
        );
        let machine = Machine::new(config.streaming_lists, StdRng::from_os_rng());
        let driver = Driver {
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
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
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
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    type Result = ();

    fn handle(&mut self, _msg: StopReflector, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl<K> Handler<GetReflectorReport> for Reflector<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    type Result = MessageResult<GetReflectorReport>;

    fn handle(&mut self, _msg: GetReflectorReport, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.last_report.lock().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list_watch::Request;

    fn machine(streaming: bool) -> Machine {
        Machine::new(streaming, StdRng::seed_from_u64(42))
    }

    fn failure(kind: FailureKind, code: u16, retry_after: Option<Duration>) -> Outcome {
        Outcome::Failed(Failure {
            request: Request::Watch,
            kind,
            code: Some(code),
            message: format!("HTTP {code}"),
            retry_after,
        })
    }

    fn page(rv: &str, continue_token: Option<&str>) -> Outcome {
        Outcome::Page {
            resource_version: rv.into(),
            continue_token: continue_token.map(Into::into),
        }
    }

    fn event(rv: &str) -> Outcome {
        Outcome::Event {
            resource_version: rv.into(),
        }
    }

    fn list(rv: &str) -> State {
        State::List {
            resource_version: rv.into(),
            continue_token: None,
        }
    }

    fn open_watch(rv: &str) -> State {
        State::OpenWatch {
            resource_version: rv.into(),
        }
    }

    /// Lists one page at `rv` and opens the watch: the machine is then `Watching`.
    fn synced(m: &mut Machine, rv: &str, now: Instant) -> State {
        let state = m.start();
        let (state, _) = m.step(state, page(rv, None), now);
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        assert_eq!(state, State::Watching);
        state
    }

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
    fn should_choose_the_relist_resource_version_like_client_go() {
        assert_eq!(relist_resource_version("", false), "0");
        assert_eq!(relist_resource_version("123", false), "123");
        assert_eq!(relist_resource_version("123", true), "");
        assert_eq!(relist_resource_version("", true), "");
    }

    #[test]
    fn should_randomise_watch_timeouts_between_min_and_twice_min() {
        let min = Duration::from_secs(300);
        assert_eq!(watch_timeout(min, 0.0), min);
        assert_eq!(watch_timeout(min, 0.999), Duration::from_secs(599));
        let mut m = machine(false);
        let timeouts: Vec<_> = (0..50).map(|_| m.watch_timeout(min)).collect();
        assert!(
            timeouts.iter().all(|t| *t >= min && *t < 2 * min),
            "{timeouts:?}"
        );
        assert!(timeouts.iter().any(|t| *t != timeouts[0]));
    }

    #[test]
    fn should_replace_once_after_the_last_page_then_watch_from_its_version() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = m.start();
        assert_eq!(state, list("0"));
        assert_eq!((m.lists, m.status.clone()), (1, ReflectorState::Listing));
        let (state, effect) = m.step(state, page("10", Some("c1")), now);
        assert_eq!(effect, None);
        assert_eq!(
            state,
            State::List {
                resource_version: "0".into(),
                continue_token: Some("c1".into())
            }
        );
        assert!(!m.synced);
        let (state, effect) = m.step(state, page("10", None), now);
        assert_eq!(
            effect,
            Some(Effect::Replace {
                resource_version: "10".into()
            })
        );
        assert_eq!(state, open_watch("10"));
        assert!(m.synced);
        assert_eq!(m.status, ReflectorState::Watching);
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        assert_eq!(
            (state, m.watches, m.lists, m.relists),
            (State::Watching, 1, 1, 0)
        );
    }

    #[test]
    fn should_resume_from_the_last_event_or_bookmark_without_relisting() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = synced(&mut m, "10", now);
        let (state, _) = m.step(state, event("11"), now);
        let (state, _) = m.step(
            state,
            Outcome::Bookmark {
                resource_version: "15".into(),
                initial_events_end: false,
            },
            now,
        );
        assert_eq!(m.last_rv, "15");
        let (state, effect) = m.step(state, Outcome::WatchEnded, now + Duration::from_secs(300));
        assert_eq!((state, effect), (open_watch("15"), None));
        assert_eq!((m.lists, m.relists), (1, 0));
    }

    #[test]
    fn should_relist_from_scratch_after_gone_in_a_watch() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = synced(&mut m, "10", now);
        let (state, effect) = m.step(state, failure(FailureKind::Expired, 410, None), now);
        assert_eq!((state.clone(), effect), (list(""), None));
        assert_eq!((m.lists, m.relists), (2, 1));
        let (state, effect) = m.step(state, page("40", None), now);
        assert_eq!(
            effect,
            Some(Effect::Replace {
                resource_version: "40".into()
            })
        );
        assert!(!m.last_rv_unavailable);
        assert_eq!(state, open_watch("40"));
    }

    #[test]
    fn should_restart_the_list_when_its_continue_token_expires() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = m.start();
        let (state, _) = m.step(state, page("10", Some("c1")), now);
        let (state, effect) = m.step(state, failure(FailureKind::Expired, 410, None), now);
        assert_eq!((state, effect), (list(""), Some(Effect::Discard)));
        assert_eq!(m.lists, 2);
    }

    #[test]
    fn should_back_off_on_a_second_expiry_in_a_row() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = m.start();
        let (state, _) = m.step(state, failure(FailureKind::Expired, 410, None), now);
        let (state, _) = m.step(state, failure(FailureKind::Expired, 410, None), now);
        let State::BackOff { then, .. } = state else {
            panic!("expected a backoff, got {state:?}")
        };
        assert_eq!(*then, list(""));
    }

    #[test]
    fn should_honour_a_longer_retry_after() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = m.start();
        let asked = Duration::from_secs(5);
        let (state, _) = m.step(
            state,
            failure(FailureKind::TooManyRequests, 429, Some(asked)),
            now,
        );
        let State::BackOff { delay, then } = state else {
            panic!("expected a backoff, got {state:?}")
        };
        assert_eq!(delay, asked);
        assert!(
            matches!(m.status, ReflectorState::BackingOff { retry_in, .. } if retry_in == asked)
        );
        let (state, _) = m.step(State::BackOff { delay, then }, Outcome::Slept, now + asked);
        assert_eq!(state, list("0"));
        assert_eq!(m.lists, 2);
    }

    #[test]
    fn should_retry_a_broken_watch_from_the_last_version_after_backoff() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = synced(&mut m, "10", now);
        let (state, _) = m.step(state, event("12"), now);
        let (state, _) = m.step(state, failure(FailureKind::Transient, 500, None), now);
        let State::BackOff { delay, then } = state else {
            panic!("expected a backoff, got {state:?}")
        };
        assert!(
            delay >= crate::backoff::INITIAL_DELAY && delay < 2 * crate::backoff::INITIAL_DELAY
        );
        assert_eq!(*then, open_watch("12"));
    }

    #[test]
    fn should_report_forbidden_once_and_retry_slowly_until_allowed() {
        let now = Instant::now();
        let mut m = machine(false);
        let mut state = m.start();
        for attempt in 0..3 {
            let (next, _) = m.step(state, failure(FailureKind::Forbidden, 403, None), now);
            let State::BackOff { delay, then } = next else {
                panic!("expected a backoff, got {next:?}")
            };
            assert!(
                delay >= crate::backoff::MAX_DELAY,
                "attempt {attempt}: {delay:?} is a hot loop"
            );
            assert!(matches!(m.status, ReflectorState::Forbidden { .. }));
            (state, _) = m.step(State::BackOff { delay, then }, Outcome::Slept, now);
            assert!(
                matches!(m.status, ReflectorState::Forbidden { .. }),
                "retry attempt must not flap"
            );
        }
        let (_, effect) = m.step(state, page("3", None), now);
        assert!(effect.is_some());
        assert_eq!(m.status, ReflectorState::Watching);
    }

    #[test]
    fn should_back_off_when_a_watch_ends_at_once_without_events() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = synced(&mut m, "10", now);
        let (state, _) = m.step(state, Outcome::WatchEnded, now + Duration::from_millis(10));
        assert!(matches!(state, State::BackOff { .. }), "{state:?}");
    }

    #[test]
    fn should_replace_at_initial_events_end_of_a_streaming_list() {
        let now = Instant::now();
        let mut m = machine(true);
        let state = m.start();
        assert_eq!(
            state,
            State::StreamInitial {
                resource_version: "0".into()
            }
        );
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        assert_eq!(state, State::StreamingInitial);
        let (state, _) = m.step(state, event("5"), now);
        let (state, effect) = m.step(
            state,
            Outcome::Bookmark {
                resource_version: "9".into(),
                initial_events_end: false,
            },
            now,
        );
        assert_eq!(
            (state.clone(), effect, m.synced),
            (State::StreamingInitial, None, false)
        );
        let (state, effect) = m.step(
            state,
            Outcome::Bookmark {
                resource_version: "9".into(),
                initial_events_end: true,
            },
            now,
        );
        assert_eq!(
            effect,
            Some(Effect::Replace {
                resource_version: "9".into()
            })
        );
        assert_eq!(state, State::Watching);
        assert!(m.synced);
        assert_eq!((m.lists, m.watches, m.last_rv.as_str()), (1, 1, "9"));
        let (state, _) = m.step(state, Outcome::WatchEnded, now + Duration::from_secs(400));
        assert_eq!(state, open_watch("9"));
    }

    #[test]
    fn should_fall_back_to_list_watch_when_streaming_is_refused() {
        let now = Instant::now();
        let mut m = machine(true);
        let state = m.start();
        let (state, effect) = m.step(state, failure(FailureKind::Rejected, 422, None), now);
        assert_eq!((state, effect), (list("0"), Some(Effect::Discard)));
        assert!(m.streaming_refused && !m.streaming);
        assert_eq!(m.lists, 2);
    }

    #[test]
    fn should_fall_back_when_initial_events_never_end() {
        let now = Instant::now();
        let mut m = machine(true);
        let state = m.start();
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        let (state, _) = m.step(state, event("5"), now);
        let (state, effect) = m.step(state, Outcome::WatchEnded, now + Duration::from_secs(600));
        assert_eq!((state, effect), (list("0"), Some(Effect::Discard)));
        assert!(m.streaming_refused);
    }

    #[test]
    fn should_keep_streaming_after_a_transient_failure() {
        let now = Instant::now();
        let mut m = machine(true);
        let state = m.start();
        let (state, _) = m.step(state, failure(FailureKind::Transient, 503, None), now);
        let State::BackOff { then, .. } = state else {
            panic!("expected a backoff, got {state:?}")
        };
        assert_eq!(
            *then,
            State::StreamInitial {
                resource_version: "0".into()
            }
        );
        assert!(!m.streaming_refused);
    }

    #[test]
    fn should_reset_backoff_after_two_healthy_minutes() {
        let mut m = machine(false);
        let mut now = Instant::now();
        let mut state = synced(&mut m, "10", now);
        let mut delays = Vec::new();
        for _ in 0..4 {
            let (next, _) = m.step(state, failure(FailureKind::Transient, 500, None), now);
            let State::BackOff { delay, then } = next else {
                panic!("expected a backoff, got {next:?}")
            };
            delays.push(delay);
            now += delay;
            (state, _) = m.step(State::BackOff { delay, then }, Outcome::Slept, now);
            (state, _) = m.step(state, Outcome::WatchOpened, now);
        }
        assert!(delays[3] >= Duration::from_secs_f64(6.4), "{delays:?}");
        now += crate::backoff::RESET_AFTER;
        let (next, _) = m.step(state, failure(FailureKind::Transient, 500, None), now);
        let State::BackOff { delay, .. } = next else {
            panic!("expected a backoff, got {next:?}")
        };
        assert!(
            delay < 2 * crate::backoff::INITIAL_DELAY,
            "not reset: {delay:?}"
        );
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
        assert_eq!(outcome, event("3"));
        assert_eq!((partial.len(), out.len()), (1, 0));
        let item = WatchItem::Event(WatchEvent::Deleted(cm("4")));
        let outcome = watch_outcome(item, &State::Watching, &mut partial, &mut out);
        assert_eq!(outcome, event("4"));
        assert!(
            matches!(out.as_slice(), [ReflectorDelta::Deleted(obj)] if obj.metadata.resource_version.as_deref() == Some("4"))
        );
    }
}
