//! Errors reach the user: each change of a pipeline's health — it starts failing, its failure
//! changes, it recovers — is logged once, with cluster, resource and the server's own words,
//! and handed to the watch-error handlers registered on its informer (client-go's
//! `SharedInformer.SetWatchErrorHandler`, `tools/cache/shared_informer.go`).
//!
//! # Contract
//!
//! - **Failing.** A reflector report in [`ReflectorState::BackingOff`] or
//!   [`ReflectorState::Forbidden`] whose failure differs (HTTP code or message) from the one
//!   last reported starts a failure: one log line (`ERROR` for 403, `WARN` otherwise) naming
//!   cluster, resource, [`WatchErrorKind`] and the message with its whole source chain, then
//!   one call of every handler. Retries of the same failure log nothing more, so a cluster
//!   that stays down for an hour logs one line, not one per backoff.
//! - **Recovered.** The first report after a failure in which a watch has really opened (the
//!   reflector's `watches` counter moved past its value when the failure began) logs one
//!   `WARN` line naming what was wrong and how long it lasted. A retry that merely *starts*
//!   listing again is not a recovery.
//! - **Late handlers.** A handler added while the pipeline is failing is called at once with
//!   the current failure, so it never misses a failure that began before it.
//! - Handlers run on the pipeline's supervisor thread, after the log line: keep them quick
//!   (record, count, signal), and never block there.
//!
//! # Differences from client-go
//!
//! client-go calls its single watch-error handler on *every* failed list or watch (its
//! default logs each one). Here a pipeline may be shared by many informer handles, so any
//! number of handlers can be registered and removed, and they hear of *changes*, as the log
//! does, not of each retry of the same failure.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::ids::ClusterId;
use crate::reflector::{ReflectorReport, ReflectorState};

/// What kind of failure a pipeline meets, from the HTTP code of the failed list or watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchErrorKind {
    /// 404: the server does not serve the resource (a CRD not yet applied, a group version
    /// this cluster lacks) or the namespace is missing.
    NotFound,
    /// 401: the server does not accept the credential (expired token, wrong certificate).
    Unauthorized,
    /// 403: RBAC forbids listing or watching it; retried at the slowest pace.
    Forbidden,
    /// 410 again right after a relist: the history expires faster than it can be listed
    /// (a "410 storm"); relists now back off.
    Expired,
    /// 429: the server sheds load.
    TooManyRequests,
    /// No answer at all: connection refused, DNS, TLS (an untrusted or mismatched
    /// certificate), timeouts. The message carries the transport's whole source chain.
    Unreachable,
    /// Any other answer (5xx, 400, undecodable bodies).
    Other,
}

impl WatchErrorKind {
    /// The kind of a reported failure: by its HTTP `code`; without one, [`Self::Unreachable`]
    /// only when a list or watch request got no answer (its message starts `list failed` or
    /// `watch failed`, as `list_watch::Failure` words it), else [`Self::Other`] (a watch the
    /// server closed at once, for instance).
    pub fn of_failure(code: Option<u16>, message: &str) -> Self {
        let request_failed =
            message.starts_with("list failed") || message.starts_with("watch failed");
        match code {
            None if !request_failed => Self::Other,
            code => Self::of_code(code),
        }
    }

    /// The kind of a failure with HTTP `code` (`None`: no answer came back).
    pub fn of_code(code: Option<u16>) -> Self {
        match code {
            None => Self::Unreachable,
            Some(401) => Self::Unauthorized,
            Some(403) => Self::Forbidden,
            Some(404) => Self::NotFound,
            Some(410) => Self::Expired,
            Some(429) => Self::TooManyRequests,
            Some(_) => Self::Other,
        }
    }

    /// How the log line names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NotFound => "not found (404): the cluster does not serve this resource",
            Self::Unauthorized => "unauthorized (401): the credential is not accepted",
            Self::Forbidden => "forbidden (403): this identity may not list/watch it",
            Self::Expired => "resourceVersion expired again after a relist (410 storm)",
            Self::TooManyRequests => "throttled (429) by the server",
            Self::Unreachable => "unreachable: no answer from the server",
            Self::Other => "list/watch failing",
        }
    }
}

impl fmt::Display for WatchErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// One pipeline failure, as handlers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchError {
    /// The cluster the pipeline watches (its registry name; a multi-cluster informer passes
    /// the configured name).
    pub cluster: ClusterId,
    /// `v1/pods`, `apps/v1/deployments`, `example.com/v1/widgets`.
    pub resource: String,
    /// What kind of failure it is.
    pub kind: WatchErrorKind,
    /// The HTTP code, when the server answered.
    pub code: Option<u16>,
    /// The failed request and the server's message, or the transport error's source chain
    /// (`list failed with 404: the server could not find the requested resource`).
    pub message: String,
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in cluster {}: {}: {}",
            self.resource, self.cluster, self.kind, self.message
        )
    }
}

/// A watch-error handler: called once when a pipeline starts failing or its failure changes.
pub type WatchErrorFn = Arc<dyn Fn(&WatchError) + Send + Sync>;

/// Identifies a handler added with [`WatchErrors::add`] (and
/// [`Informer::on_watch_error`](crate::Informer::on_watch_error)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchErrorHandlerId(pub u64);

#[derive(Default)]
struct Handlers {
    next: u64,
    by_id: BTreeMap<u64, WatchErrorFn>,
    /// The failure the pipeline is in now, for handlers added late.
    current: Option<WatchError>,
}

/// The watch-error handlers of one pipeline, shared by its informer handles (which add and
/// remove them) and its supervisor (which calls them).
#[derive(Default, Clone)]
pub struct WatchErrors {
    inner: Arc<Mutex<Handlers>>,
}

impl fmt::Debug for WatchErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("WatchErrors")
            .field("handlers", &inner.by_id.len())
            .field("current", &inner.current)
            .finish()
    }
}

impl WatchErrors {
    /// Registers `handler`; if the pipeline is failing now, calls it at once with that failure.
    pub fn add(&self, handler: WatchErrorFn) -> WatchErrorHandlerId {
        let (id, current) = {
            let mut inner = self.inner.lock();
            inner.next += 1;
            let id = inner.next;
            inner.by_id.insert(id, handler.clone());
            (id, inner.current.clone())
        };
        if let Some(error) = current {
            handler(&error);
        }
        WatchErrorHandlerId(id)
    }

    /// Unregisters a handler. False if it was not registered.
    pub fn remove(&self, id: WatchErrorHandlerId) -> bool {
        self.inner.lock().by_id.remove(&id.0).is_some()
    }

    /// The failure the pipeline is in now, if any.
    pub fn current(&self) -> Option<WatchError> {
        self.inner.lock().current.clone()
    }

    /// Records the pipeline's current failure (`None`: healthy) and, for a failure, calls
    /// every handler outside the lock (a handler may add or remove handlers).
    fn publish(&self, failure: Option<&WatchError>) {
        let handlers: Vec<WatchErrorFn> = {
            let mut inner = self.inner.lock();
            inner.current = failure.cloned();
            inner.by_id.values().cloned().collect()
        };
        if let Some(error) = failure {
            for handler in handlers {
                handler(error);
            }
        }
    }
}

/// A failure being tracked: what it is, and where the watch counter stood when it began.
#[derive(Debug, Clone)]
struct Failing {
    error: WatchError,
    watches_at_start: u64,
    since: Instant,
}

/// What one report changed in a pipeline's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    /// The pipeline started failing, or fails differently now.
    Failing(WatchError),
    /// The pipeline works again after `error`, which lasted `lasted`.
    Recovered {
        /// The failure it recovered from.
        error: WatchError,
        /// From the failure's first report to the recovery.
        lasted: std::time::Duration,
    },
}

/// Follows one pipeline's reports and says when its health changed. Pure (no logging, no
/// handlers), so it is tested without actors; [`PipelineHealth`] acts on what it says.
#[derive(Debug, Default)]
pub struct HealthTracker {
    failing: Option<Failing>,
}

impl HealthTracker {
    /// The change `report` makes, if any (see the module's contract). `report`'s counters must
    /// be the pipeline's totals (monotonic across reflector restarts).
    pub fn observe(&mut self, report: &ReflectorReport, now: Instant) -> Option<HealthChange> {
        let (code, message) = match &report.state {
            ReflectorState::BackingOff { error, code, .. } => (*code, error.clone()),
            ReflectorState::Forbidden { message } => (Some(403), message.clone()),
            ReflectorState::Listing | ReflectorState::Watching => {
                let recovered = self
                    .failing
                    .as_ref()
                    .is_some_and(|f| report.watches > f.watches_at_start);
                if !recovered {
                    return None;
                }
                let failing = self.failing.take()?;
                return Some(HealthChange::Recovered {
                    error: failing.error,
                    lasted: now.saturating_duration_since(failing.since),
                });
            }
            ReflectorState::Stopped => return None,
        };
        let error = WatchError {
            cluster: report.cluster.clone(),
            resource: report.resource.clone(),
            kind: WatchErrorKind::of_failure(code, &message),
            code,
            message,
        };
        match &mut self.failing {
            Some(failing) if failing.error == error => None,
            Some(failing) => {
                // Still failing, differently: the start and watch mark of the episode stay.
                failing.error = error.clone();
                Some(HealthChange::Failing(error))
            }
            None => {
                self.failing = Some(Failing {
                    error: error.clone(),
                    watches_at_start: report.watches,
                    since: now,
                });
                Some(HealthChange::Failing(error))
            }
        }
    }
}

/// A pipeline's health as its supervisor keeps it: the tracker, the log lines and the
/// handlers.
#[derive(Debug, Default)]
pub struct PipelineHealth {
    tracker: HealthTracker,
    handlers: WatchErrors,
}

impl PipelineHealth {
    /// Health reported to `handlers` (shared with the informer's handles).
    pub fn new(handlers: WatchErrors) -> Self {
        Self {
            tracker: HealthTracker::default(),
            handlers,
        }
    }

    /// Logs and publishes what `report` changed, if anything.
    pub fn observe(&mut self, report: &ReflectorReport) {
        let Some(change) = self.tracker.observe(report, Instant::now()) else {
            return;
        };
        match &change {
            HealthChange::Failing(error) => {
                log_failing(error);
                self.handlers.publish(Some(error));
            }
            HealthChange::Recovered { error, lasted } => {
                tracing::warn!(
                    cluster = %error.cluster,
                    resource = %error.resource,
                    after = %error.kind,
                    lasted_secs = lasted.as_secs(),
                    "{} in cluster {}: recovered, listing and watching again",
                    error.resource,
                    error.cluster,
                );
                self.handlers.publish(None);
            }
        }
    }
}

fn log_failing(error: &WatchError) {
    let (cluster, resource, kind) = (&error.cluster, &error.resource, error.kind);
    if kind == WatchErrorKind::Forbidden {
        tracing::error!(%cluster, %resource, code = error.code, "{error}; retrying slowly");
    } else {
        tracing::warn!(%cluster, %resource, code = error.code, "{error}; retrying with backoff");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn report(state: ReflectorState, watches: u64) -> ReflectorReport {
        ReflectorReport {
            cluster: ClusterId::new("east"),
            resource: "example.com/v1/widgets".into(),
            state,
            synced: false,
            lists: 1,
            relists: 0,
            watches,
            last_resource_version: None,
            streaming_refused: false,
            bad_input: BTreeMap::new(),
            quarantined: Vec::new(),
            stalled_watches: 0,
        }
    }

    fn backing_off(code: Option<u16>, error: &str, retry_in_ms: u64) -> ReflectorState {
        ReflectorState::BackingOff {
            error: error.into(),
            code,
            retry_in: Duration::from_millis(retry_in_ms),
        }
    }

    #[test]
    fn should_report_a_failure_once_across_its_retries() {
        let mut tracker = HealthTracker::default();
        let now = Instant::now();
        let not_found = "list failed with 404: the server could not find the requested resource";
        let first = tracker.observe(&report(backing_off(Some(404), not_found, 800), 0), now);
        let Some(HealthChange::Failing(error)) = first else {
            panic!("the first failure is reported: {first:?}");
        };
        assert_eq!(error.kind, WatchErrorKind::NotFound);
        assert_eq!(error.message, not_found);
        for state in [
            ReflectorState::Listing,
            backing_off(Some(404), not_found, 1600),
            ReflectorState::Listing,
            backing_off(Some(404), not_found, 3200),
        ] {
            assert_eq!(tracker.observe(&report(state, 0), now), None);
        }
    }

    #[test]
    fn should_recover_only_once_a_watch_really_opened() {
        let mut tracker = HealthTracker::default();
        let start = Instant::now();
        let refused = "list failed: client error (Connect): Connection refused (os error 111)";
        assert!(
            tracker
                .observe(&report(backing_off(None, refused, 800), 3), start)
                .is_some()
        );
        // A retry begins: listing, then (optimistically) watching, but no watch opened yet.
        assert_eq!(
            tracker.observe(&report(ReflectorState::Listing, 3), start),
            None
        );
        assert_eq!(
            tracker.observe(&report(ReflectorState::Watching, 3), start),
            None
        );
        let later = start + Duration::from_secs(7);
        let recovered = tracker.observe(&report(ReflectorState::Watching, 4), later);
        assert!(
            matches!(&recovered, Some(HealthChange::Recovered { error, lasted })
                if error.kind == WatchErrorKind::Unreachable && *lasted == Duration::from_secs(7)),
            "{recovered:?}"
        );
        assert_eq!(
            tracker.observe(&report(ReflectorState::Watching, 5), later),
            None
        );
    }

    #[test]
    fn should_report_a_changed_failure_and_classify_codes() {
        let mut tracker = HealthTracker::default();
        let now = Instant::now();
        assert!(
            tracker
                .observe(&report(backing_off(None, "refused", 800), 0), now)
                .is_some()
        );
        let forbidden = tracker.observe(
            &report(
                ReflectorState::Forbidden {
                    message: "pods is forbidden".into(),
                },
                0,
            ),
            now,
        );
        assert!(
            matches!(&forbidden, Some(HealthChange::Failing(e)) if e.kind == WatchErrorKind::Forbidden && e.code == Some(403)),
            "{forbidden:?}"
        );
        assert_eq!(WatchErrorKind::of_code(Some(410)), WatchErrorKind::Expired);
        assert_eq!(
            WatchErrorKind::of_code(Some(401)),
            WatchErrorKind::Unauthorized
        );
        assert_eq!(WatchErrorKind::of_code(Some(503)), WatchErrorKind::Other);
        assert_eq!(
            WatchErrorKind::of_failure(None, "the watch ended at once without events"),
            WatchErrorKind::Other
        );
        assert_eq!(
            WatchErrorKind::of_failure(None, "watch failed: client error (Connect)"),
            WatchErrorKind::Unreachable
        );
    }

    #[test]
    fn should_call_handlers_on_failure_and_late_handlers_at_once() {
        let handlers = WatchErrors::default();
        let seen: Arc<Mutex<Vec<WatchErrorKind>>> = Arc::default();
        let early = {
            let seen = seen.clone();
            handlers.add(Arc::new(move |e: &WatchError| seen.lock().push(e.kind)))
        };
        let mut health = PipelineHealth::new(handlers.clone());
        health.observe(&report(
            backing_off(Some(404), "list failed with 404: gone", 800),
            0,
        ));
        health.observe(&report(
            backing_off(Some(404), "list failed with 404: gone", 1600),
            0,
        ));
        assert_eq!(*seen.lock(), vec![WatchErrorKind::NotFound]);
        let late: Arc<Mutex<Vec<WatchErrorKind>>> = Arc::default();
        {
            let late = late.clone();
            handlers.add(Arc::new(move |e: &WatchError| late.lock().push(e.kind)));
        }
        assert_eq!(*late.lock(), vec![WatchErrorKind::NotFound]);
        assert!(handlers.remove(early));
        assert!(!handlers.remove(early));
        health.observe(&report(ReflectorState::Watching, 1));
        assert_eq!(handlers.current(), None);
    }
}
