//! The reflector's protocol without I/O: client-go's `ListAndWatch` decisions
//! (`tools/cache/reflector.go`) as one [`State`] enum and one step, after kube-runtime's
//! `watcher.rs`. [`Machine::step`] maps (state, outcome of the last request) to the next
//! state and what to do with the objects collected for a `Replace`. The driver in
//! `reflector.rs` performs the requests; the tests here drive the step without a socket.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::ReflectorState;
use crate::backoff::Backoff;
use crate::ids::ResourceVersion;
use crate::list_watch::{Failure, FailureKind, ListFrom};

/// Where the next list reads from, with client-go's reasons (`relistResourceVersion`):
/// - after the last version proved unavailable (410, too large), [`ListFrom::Consistent`]: a
///   read from etcd, the only one guaranteed to succeed;
/// - on the first list, [`ListFrom::Any`]: served from the API server's watch cache (kube
///   drops `0` when a `limit` is set, making it a paginated consistent list);
/// - otherwise not older than the last version seen, so the list never goes back in time.
pub fn relist_resource_version(
    last_seen: Option<&ResourceVersion>,
    last_seen_unavailable: bool,
) -> ListFrom {
    match last_seen {
        _ if last_seen_unavailable => ListFrom::Consistent,
        None => ListFrom::Any,
        Some(version) => ListFrom::NotOlderThan(version.clone()),
    }
}

/// How long a watch may stay silent (no event, no bookmark, no byte) before it counts as
/// stalled and is torn down and resumed: twice the interval at which the server sends
/// bookmarks on an idle watch (kube-apiserver: about a minute), so one late bookmark is
/// tolerated and a dead connection without a FIN is noticed within two intervals.
pub fn watch_silence_limit(bookmark_interval: Duration) -> Duration {
    bookmark_interval.saturating_mul(2)
}

/// The `timeoutSeconds` of a watch: client-go's `minWatchTimeout * (1 + rand)`. `sample` is in
/// `[0, 1)`.
pub fn watch_timeout(min: Duration, sample: f64) -> Duration {
    Duration::from_secs(min.mul_f64(1.0 + sample).as_secs().max(1))
}

/// A watch that ends this soon without delivering anything is treated as a failure, so a
/// server that accepts and immediately closes watches is not hammered (client-go: "very short
/// watch").
pub(super) const VERY_SHORT_WATCH: Duration = Duration::from_secs(1);

/// The annotation on the bookmark that closes a streaming list's initial events.
pub(super) const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// How long a streaming list may stay silent, while its initial events are being read,
/// before the reflector gives up on the `initial-events-end` bookmark and falls back to
/// list+watch for good (this reflector's server is remembered as one that makes it wait).
///
/// Why 5 s: a v1.28 API server's cacher offers that bookmark on its bookmark timer, every
/// 1–1.25 s, and only once the resource's last write reaches the resourceVersion the request
/// asked for; on a resource nobody writes it never comes (issue 10: nothing in 5 s on a quiet
/// type), so waiting longer only delays the sync. Four timer periods leave room for a loaded
/// server; v1.30+ servers send the bookmark right after the initial events and never hit this.
/// The silence is measured from the last bytes received, so a long initial list is not cut.
pub(super) const INITIAL_EVENTS_END_WAIT: Duration = Duration::from_secs(5);

/// Where the list/watch protocol stands; each variant says what the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum State {
    /// GET one list page. `continue_token` is `None` for the first page.
    List {
        from: ListFrom,
        continue_token: Option<String>,
    },
    /// Open a `sendInitialEvents=true` watch reading its initial state `from` (streaming list).
    StreamInitial { from: ListFrom },
    /// Read the initial events of the open streaming watch, until `initial-events-end`.
    StreamingInitial,
    /// Open a watch from `resource_version`.
    OpenWatch { resource_version: ResourceVersion },
    /// Read events from the open watch.
    Watching,
    /// Sleep `delay`, then do `then`.
    BackOff { delay: Duration, then: Box<State> },
}

/// What the last request of the driver produced.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// A list page arrived (its objects are with the driver). Only the last page's version
    /// matters (it is the list's); the driver reads ahead, so middle pages carry `None`.
    Page {
        resource_version: Option<ResourceVersion>,
        continue_token: Option<String>,
    },
    WatchOpened,
    /// An ADDED/MODIFIED/DELETED event for an object at `resource_version`.
    Event {
        resource_version: Option<ResourceVersion>,
    },
    Bookmark {
        resource_version: Option<ResourceVersion>,
        initial_events_end: bool,
    },
    /// The watch ended without an error.
    WatchEnded,
    /// The watch was silent past [`watch_silence_limit`] and was torn down.
    WatchStalled,
    /// A streaming list said nothing for [`INITIAL_EVENTS_END_WAIT`] before its end bookmark.
    InitialEventsEndOverdue,
    Failed(Failure),
    Slept,
}

/// What the driver must do with the objects it accumulated for a `Replace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Effect {
    /// The list is complete: send the accumulated objects as one `Replace`.
    Replace { resource_version: ResourceVersion },
    /// The list was abandoned: drop the accumulated objects.
    Discard,
}

/// The reflector's decisions, free of I/O: [`Machine::step`] maps (state, outcome) to the
/// next state and an effect. Tests drive it without a socket.
#[derive(Debug)]
pub(super) struct Machine {
    /// Streaming lists asked for and not refused.
    streaming: bool,
    pub(super) streaming_refused: bool,
    /// client-go's `lastSyncResourceVersion`: of the last list, event or bookmark.
    pub(super) last_rv: Option<ResourceVersion>,
    /// client-go's `isLastSyncResourceVersionUnavailable`: set by 410, cleared by a full list.
    last_rv_unavailable: bool,
    backoff: Backoff,
    rng: StdRng,
    /// Forbidden stays reported across retries until a request succeeds.
    pub(super) status: ReflectorState,
    pub(super) synced: bool,
    pub(super) lists: u64,
    pub(super) relists: u64,
    pub(super) watches: u64,
    /// Watches torn down because they stalled.
    pub(super) stalled_watches: u64,
    /// When the current watch opened and how many events it delivered (short-watch check).
    watch_opened_at: Option<Instant>,
    watch_events: u64,
    /// 410s since the last successful request; the second in a row backs off.
    expired_in_a_row: u32,
}

impl Machine {
    pub(super) fn new(streaming: bool, rng: StdRng) -> Self {
        Self {
            streaming,
            streaming_refused: false,
            last_rv: None,
            last_rv_unavailable: false,
            backoff: Backoff::default(),
            rng,
            status: ReflectorState::Listing,
            synced: false,
            lists: 0,
            relists: 0,
            watches: 0,
            stalled_watches: 0,
            watch_opened_at: None,
            watch_events: 0,
            expired_in_a_row: 0,
        }
    }

    /// The first state, and the one after anything that forces a relist.
    pub(super) fn start(&mut self) -> State {
        let next = self.relist_state();
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
            // Not `Watching` yet: that state is reported once the watch is open and counted
            // in `watches`, so a report never says `Watching` with the watch still opening.
            _ => {}
        }
        next
    }

    pub(super) fn watch_timeout(&mut self, min: Duration) -> Duration {
        watch_timeout(min, self.rng.random())
    }

    pub(super) fn step(
        &mut self,
        state: State,
        outcome: Outcome,
        now: Instant,
    ) -> (State, Option<Effect>) {
        match (state, outcome) {
            (State::BackOff { then, .. }, Outcome::Slept) => (self.begin(*then), None),
            (state, Outcome::Failed(failure)) => self.fail(state, failure, now),
            (
                State::List { from, .. },
                Outcome::Page {
                    continue_token: Some(token),
                    ..
                },
            ) => {
                self.succeeded(ReflectorState::Listing);
                (
                    State::List {
                        from,
                        continue_token: Some(token),
                    },
                    None,
                )
            }
            (
                State::List { .. },
                Outcome::Page {
                    resource_version: Some(resource_version),
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
                    resource_version: Some(resource_version),
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
            (State::StreamingInitial, Outcome::InitialEventsEndOverdue) => {
                self.refuse_streaming(
                    "no initial-events-end bookmark after the initial events (a v1.28 server \
                     sends it only after the resource's next write)",
                );
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
                if resource_version.is_some() {
                    self.last_rv = resource_version;
                }
                (State::Watching, None)
            }
            (State::StreamingInitial, Outcome::WatchStalled) => {
                // A stall is a dead connection, not a refusal of streaming: list again.
                tracing::info!(
                    "streaming list stalled (silent past twice the bookmark interval); listing again"
                );
                self.stalled_watches += 1;
                (self.start(), Some(Effect::Discard))
            }
            (State::Watching, Outcome::WatchStalled) => {
                tracing::info!("watch stalled (silent past twice the bookmark interval); resuming");
                self.stalled_watches += 1;
                let resume = self.resume_state();
                (self.begin(resume), None)
            }
            (State::Watching, Outcome::WatchEnded) => {
                let resume = self.resume_state();
                if self.is_very_short_watch(now) {
                    let failure = "the watch ended at once without events".to_owned();
                    return (self.back_off(resume, failure, None, None, now), None);
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
                self.back_off(relist, failure.to_string(), failure.code, None, now),
                discard,
            );
        }
        let retry = match state {
            State::OpenWatch { .. } | State::Watching => self.resume_state(),
            _ => self.relist_state(),
        };
        if failure.kind == FailureKind::Forbidden {
            tracing::debug!(%failure, "forbidden; retrying slowly");
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
            self.back_off(retry, failure.to_string(), failure.code, retry_after, now),
            discard,
        )
    }

    /// The list (or streaming list) that starts over, without counting it yet.
    fn relist_state(&self) -> State {
        let from = relist_resource_version(self.last_rv.as_ref(), self.last_rv_unavailable);
        if self.streaming {
            State::StreamInitial { from }
        } else {
            State::List {
                from,
                continue_token: None,
            }
        }
    }

    /// The watch that picks up from the last version seen (a list when there is none yet,
    /// which a synced machine never lacks).
    fn resume_state(&self) -> State {
        match &self.last_rv {
            Some(resource_version) => State::OpenWatch {
                resource_version: resource_version.clone(),
            },
            None => self.relist_state(),
        }
    }

    fn back_off(
        &mut self,
        then: State,
        error: String,
        code: Option<u16>,
        server_delay: Option<Duration>,
        now: Instant,
    ) -> State {
        let delay = self.backoff.next_at_least(now, &mut self.rng, server_delay);
        if !matches!(self.status, ReflectorState::Forbidden { .. }) {
            self.status = ReflectorState::BackingOff {
                error,
                code,
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

    fn synced_at(&mut self, resource_version: &ResourceVersion) {
        self.synced = true;
        self.last_rv = Some(resource_version.clone());
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

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
            bad_input: None,
        })
    }

    fn page(rv: &str, continue_token: Option<&str>) -> Outcome {
        Outcome::Page {
            resource_version: ResourceVersion::from_server(Some(rv)),
            continue_token: continue_token.map(Into::into),
        }
    }

    fn event(rv: &str) -> Outcome {
        Outcome::Event {
            resource_version: ResourceVersion::from_server(Some(rv)),
        }
    }

    fn bookmark(rv: &str, initial_events_end: bool) -> Outcome {
        Outcome::Bookmark {
            resource_version: ResourceVersion::from_server(Some(rv)),
            initial_events_end,
        }
    }

    fn list(from: ListFrom) -> State {
        State::List {
            from,
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

    #[test]
    fn should_choose_the_relist_resource_version_like_client_go() {
        let seen = ResourceVersion::from("123");
        assert_eq!(relist_resource_version(None, false), ListFrom::Any);
        assert_eq!(
            relist_resource_version(Some(&seen), false),
            ListFrom::NotOlderThan(seen.clone())
        );
        assert_eq!(
            relist_resource_version(Some(&seen), true),
            ListFrom::Consistent
        );
        assert_eq!(relist_resource_version(None, true), ListFrom::Consistent);
        assert_eq!(ListFrom::Any.query_value(), "0");
        assert_eq!(ListFrom::Consistent.query_value(), "");
    }

    #[test]
    fn should_call_a_watch_stalled_after_twice_the_bookmark_interval() {
        assert_eq!(
            watch_silence_limit(Duration::from_secs(60)),
            Duration::from_secs(120)
        );
        assert_eq!(watch_silence_limit(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn should_resume_a_stalled_watch_from_the_last_version_without_relisting() {
        let now = Instant::now();
        let mut m = machine(false);
        let state = synced(&mut m, "10", now);
        let (state, _) = m.step(state, event("12"), now);
        // Stalled right after opening: still a resume, not a short-watch backoff.
        let (state, effect) = m.step(state, Outcome::WatchStalled, now);
        assert_eq!((state.clone(), effect), (open_watch("12"), None));
        assert_eq!((m.lists, m.relists, m.stalled_watches), (1, 0, 1));
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        let later = now + watch_silence_limit(Duration::from_secs(60));
        let (state, _) = m.step(state, Outcome::WatchStalled, later);
        assert_eq!(state, open_watch("12"));
        assert_eq!((m.watches, m.stalled_watches), (2, 2));
    }

    #[test]
    fn should_list_again_when_a_streaming_list_stalls() {
        let now = Instant::now();
        let mut m = machine(true);
        let state = m.start();
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        let (state, effect) = m.step(state, Outcome::WatchStalled, now);
        assert_eq!(effect, Some(Effect::Discard));
        assert!(matches!(state, State::StreamInitial { .. }), "{state:?}");
        assert!(!m.streaming_refused, "a stall is not a refusal");
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
        assert_eq!(state, list(ListFrom::Any));
        assert_eq!((m.lists, m.status.clone()), (1, ReflectorState::Listing));
        let (state, effect) = m.step(state, page("10", Some("c1")), now);
        assert_eq!(effect, None);
        assert_eq!(
            state,
            State::List {
                from: ListFrom::Any,
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
        assert_eq!(
            (m.status.clone(), m.watches),
            (ReflectorState::Listing, 0),
            "not Watching while the watch is still opening"
        );
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        assert_eq!(m.status, ReflectorState::Watching);
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
        let (state, _) = m.step(state, bookmark("15", false), now);
        assert_eq!(m.last_rv, Some("15".into()));
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
        assert_eq!((state.clone(), effect), (list(ListFrom::Consistent), None));
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
        assert_eq!(
            (state, effect),
            (list(ListFrom::Consistent), Some(Effect::Discard))
        );
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
        assert_eq!(*then, list(ListFrom::Consistent));
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
        assert_eq!(state, list(ListFrom::Any));
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
        let (state, effect) = m.step(state, page("3", None), now);
        assert!(effect.is_some());
        assert_eq!(m.status, ReflectorState::Listing, "a list succeeded");
        m.step(state, Outcome::WatchOpened, now);
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
                from: ListFrom::Any
            }
        );
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        assert_eq!(state, State::StreamingInitial);
        let (state, _) = m.step(state, event("5"), now);
        let (state, effect) = m.step(state, bookmark("9", false), now);
        assert_eq!(
            (state.clone(), effect, m.synced),
            (State::StreamingInitial, None, false)
        );
        let (state, effect) = m.step(state, bookmark("9", true), now);
        assert_eq!(
            effect,
            Some(Effect::Replace {
                resource_version: "9".into()
            })
        );
        assert_eq!(state, State::Watching);
        assert!(m.synced);
        assert_eq!(
            (m.lists, m.watches, m.last_rv.clone()),
            (1, 1, Some("9".into()))
        );
        let (state, _) = m.step(state, Outcome::WatchEnded, now + Duration::from_secs(400));
        assert_eq!(state, open_watch("9"));
    }

    #[test]
    fn should_fall_back_to_list_watch_when_streaming_is_refused() {
        let now = Instant::now();
        let mut m = machine(true);
        let state = m.start();
        let (state, effect) = m.step(state, failure(FailureKind::Rejected, 422, None), now);
        assert_eq!(
            (state, effect),
            (list(ListFrom::Any), Some(Effect::Discard))
        );
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
        assert_eq!(
            (state, effect),
            (list(ListFrom::Any), Some(Effect::Discard))
        );
        assert!(m.streaming_refused);
    }

    #[test]
    fn should_fall_back_for_good_when_the_end_bookmark_is_overdue() {
        let now = Instant::now();
        let mut m = machine(true);
        let state = m.start();
        let (state, _) = m.step(state, Outcome::WatchOpened, now);
        let (state, _) = m.step(state, event("5"), now);
        let (state, effect) = m.step(state, Outcome::InitialEventsEndOverdue, now);
        assert_eq!(
            (state.clone(), effect),
            (list(ListFrom::Any), Some(Effect::Discard))
        );
        assert!(m.streaming_refused && !m.synced);
        let (state, effect) = m.step(state, page("12", None), now);
        assert_eq!(
            (state, effect),
            (
                open_watch("12"),
                Some(Effect::Replace {
                    resource_version: "12".into()
                })
            )
        );
        let relist = m.start();
        assert_eq!(
            relist,
            list(ListFrom::NotOlderThan("12".into())),
            "the server stays remembered as one that waits"
        );
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
                from: ListFrom::Any
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
}
