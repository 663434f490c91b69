//! [`WatchCounters`]: what one pipeline's reflectors read from their watches — events by
//! type, watches that ended and why, and when the last event or bookmark arrived — kept in
//! atomics that the informer reads without a message, at scrape time.
//!
//! client-go's reflector counts these through its `reflectorMetricsProvider`
//! (`tools/cache/reflector_metrics.go`: items per watch, short watches, last resource
//! version); kube-apiserver's `apiserver_watch_events_total{kind}` counts events by type on
//! the other side. Here one set of counters belongs to the informer and outlives its
//! reflectors: a reflector restarted after a panic keeps adding to the same counters, so the
//! totals never go backwards (Prometheus would read a drop as a counter reset).
//!
//! # Contract
//! - [`WatchCounters::observe`] is called once per watch item, in arrival order, by the one
//!   running reflector; readers ([`WatchCounters::snapshot`]) may run on any thread and see
//!   each counter's latest value (no cross-counter consistency is promised).
//! - A bookmark is an event here (type `BOOKMARK`): it proves the watch is alive, which is
//!   what [`WatchStats::last_event_at`] is for.
//! - Each watch that ends counts once, under the first [`WatchEnd`] that applies.

use std::sync::atomic::{AtomicU64, Ordering};

use kube::api::WatchEvent;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::list_watch::{Failure, WatchItem};

/// The type of one watch event, as the server spells it in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchEventType {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
    /// `BOOKMARK`.
    Bookmark,
}

impl WatchEventType {
    /// Every type, in label order.
    pub const ALL: [Self; 4] = [Self::Added, Self::Modified, Self::Deleted, Self::Bookmark];

    /// The type as it appears on the wire (and in the `type` label).
    pub fn label(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
            Self::Bookmark => "BOOKMARK",
        }
    }
}

/// Why a watch ended (and was resumed, or replaced by a relist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchEnd {
    /// The server closed the stream cleanly: its `timeoutSeconds` ran out, or it dropped the
    /// connection between events. Expected every 5–10 minutes.
    Timeout,
    /// `410 Gone` / "too old resource version": the version is out of the watch cache; a
    /// relist follows.
    Expired,
    /// An `ERROR` event or a failed read, other than 410.
    Error,
    /// No byte (event or bookmark) for twice the bookmark interval: torn down and resumed.
    Stalled,
}

impl WatchEnd {
    /// Every reason, in label order.
    pub const ALL: [Self; 4] = [Self::Timeout, Self::Expired, Self::Error, Self::Stalled];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Expired => "expired",
            Self::Error => "error",
            Self::Stalled => "stalled",
        }
    }

    fn of_failure(failure: &Failure) -> Self {
        if failure.code == Some(410) {
            Self::Expired
        } else {
            Self::Error
        }
    }

    /// Why `item` ends its watch, or `None` if the watch goes on after it.
    pub fn of<K>(item: &WatchItem<K>) -> Option<Self> {
        match item {
            WatchItem::Ended { stalled: false } => Some(Self::Timeout),
            WatchItem::Ended { stalled: true } => Some(Self::Stalled),
            WatchItem::Failed(failure) => Some(Self::of_failure(failure)),
            WatchItem::Event(WatchEvent::Error(status)) => Some(if status.code == 410 {
                Self::Expired
            } else {
                Self::Error
            }),
            WatchItem::Event(_) | WatchItem::Quarantined(_) | WatchItem::Skipped(_) => None,
        }
    }
}

/// The watch counters of one pipeline, shared by its reflectors (writers) and its informer
/// (reader).
#[derive(Debug)]
pub struct WatchCounters {
    /// Indexed as [`WatchEventType::ALL`].
    events: [AtomicU64; 4],
    /// Indexed as [`WatchEnd::ALL`].
    ends: [AtomicU64; 4],
    /// When the last event or bookmark arrived; the pipeline's creation until the first.
    last_event_at: Mutex<Instant>,
}

impl Default for WatchCounters {
    fn default() -> Self {
        Self {
            events: Default::default(),
            ends: Default::default(),
            last_event_at: Mutex::new(Instant::now()),
        }
    }
}

/// A copy of [`WatchCounters`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchStats {
    /// Events received, by type, in [`WatchEventType::ALL`] order.
    pub events: [(WatchEventType, u64); 4],
    /// Watches ended, by reason, in [`WatchEnd::ALL`] order.
    pub ends: [(WatchEnd, u64); 4],
    /// When the last event or bookmark arrived (the pipeline's creation before the first).
    pub last_event_at: Instant,
}

impl WatchStats {
    /// Events of `kind` received so far.
    pub fn events_of(&self, kind: WatchEventType) -> u64 {
        self.events
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Watches that ended for `reason` so far.
    pub fn ends_of(&self, reason: WatchEnd) -> u64 {
        self.ends
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

impl WatchCounters {
    /// Counts one watch item that arrived at `now`.
    pub fn observe<K>(&self, item: &WatchItem<K>, now: Instant) {
        let kind = match item {
            WatchItem::Event(WatchEvent::Added(_)) => Some(WatchEventType::Added),
            WatchItem::Event(WatchEvent::Modified(_)) => Some(WatchEventType::Modified),
            WatchItem::Event(WatchEvent::Deleted(_)) => Some(WatchEventType::Deleted),
            WatchItem::Event(WatchEvent::Bookmark(_)) => Some(WatchEventType::Bookmark),
            _ => None,
        };
        if let Some(kind) = kind {
            self.events[kind as usize].fetch_add(1, Ordering::Relaxed);
        }
        // A quarantined event arrived too: the watch is alive.
        if kind.is_some() || matches!(item, WatchItem::Quarantined(_)) {
            *self.last_event_at.lock() = now;
        }
        if let Some(end) = WatchEnd::of(item) {
            self.ends[end as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> WatchStats {
        WatchStats {
            events: WatchEventType::ALL
                .map(|k| (k, self.events[k as usize].load(Ordering::Relaxed))),
            ends: WatchEnd::ALL.map(|r| (r, self.ends[r as usize].load(Ordering::Relaxed))),
            last_event_at: *self.last_event_at.lock(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::Pod;
    use kube::api::WatchEvent;

    use super::*;
    use crate::list_watch::{FailureKind, Request};

    fn failure(code: Option<u16>) -> Failure {
        Failure {
            request: Request::Watch,
            kind: FailureKind::Transient,
            code,
            message: "boom".into(),
            retry_after: None,
            bad_input: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn should_count_events_by_type_and_remember_the_last_arrival() {
        let counters = WatchCounters::default();
        let start = Instant::now();
        counters.observe::<Pod>(&WatchItem::Event(WatchEvent::Added(Pod::default())), start);
        counters.observe::<Pod>(
            &WatchItem::Event(WatchEvent::Modified(Pod::default())),
            start,
        );
        let later = start + Duration::from_secs(3);
        counters.observe::<Pod>(
            &WatchItem::Event(WatchEvent::Modified(Pod::default())),
            later,
        );
        let stats = counters.snapshot();
        assert_eq!(stats.events_of(WatchEventType::Added), 1);
        assert_eq!(stats.events_of(WatchEventType::Modified), 2);
        assert_eq!(stats.events_of(WatchEventType::Deleted), 0);
        assert_eq!(stats.last_event_at, later);
        assert_eq!(stats.ends.iter().map(|(_, n)| n).sum::<u64>(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn should_name_why_each_watch_ended() {
        let counters = WatchCounters::default();
        let now = Instant::now();
        for item in [
            WatchItem::<Pod>::Ended { stalled: false },
            WatchItem::Ended { stalled: true },
            WatchItem::Failed(failure(Some(410))),
            WatchItem::Failed(failure(None)),
            WatchItem::Failed(failure(Some(500))),
        ] {
            counters.observe(&item, now);
        }
        let stats = counters.snapshot();
        assert_eq!(stats.ends_of(WatchEnd::Timeout), 1);
        assert_eq!(stats.ends_of(WatchEnd::Stalled), 1);
        assert_eq!(stats.ends_of(WatchEnd::Expired), 1);
        assert_eq!(stats.ends_of(WatchEnd::Error), 2);
        assert_eq!(stats.events.iter().map(|(_, n)| n).sum::<u64>(), 0);
    }
}
