//! Watch fan-out: the watch cache's event history of one resource and the open watches on it.
//!
//! Contract (as kube-apiserver's cacher keeps it):
//! - A watch sees events in resourceVersion order, filtered by namespace and selectors.
//! - An object that stops matching a selector arrives as DELETED, one that starts matching
//!   as ADDED (the cacher compares the previous and the new object).
//! - Each watch has a bounded channel; a watch whose consumer falls that far behind is closed
//!   (its sender dropped), as the real server terminates a blocked watcher.
//! - Delivery happens under the store lock with `try_send`, so it never blocks a write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::selector::ObjectFilter;
use super::{StoredObject, WatchEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One retained write of a resource (the watch cache's `watchCacheEvent`).
#[derive(Debug, Clone)]
pub(crate) struct HistoryEvent {
    pub kind: EventKind,
    pub object: Arc<StoredObject>,
    /// The object before a MODIFIED or DELETED, to decide selector transitions.
    pub prev: Option<Arc<StoredObject>>,
}

impl HistoryEvent {
    pub fn resource_version(&self) -> u64 {
        self.object.resource_version
    }
}

/// The bounded event window of one resource.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// Events with strictly increasing resourceVersions.
    events: VecDeque<HistoryEvent>,
    /// A watch from resourceVersion `rv` can be served iff `rv >= floor`: every event after
    /// `floor` is still in `events`.
    floor: u64,
}

impl History {
    pub fn new(floor: u64) -> History {
        History {
            events: VecDeque::new(),
            floor,
        }
    }

    pub fn push(&mut self, event: HistoryEvent, capacity: usize) {
        self.events.push_back(event);
        while self.events.len() > capacity.max(1) {
            if let Some(dropped) = self.events.pop_front() {
                self.floor = dropped.resource_version();
            }
        }
    }

    /// Forgets everything up to `rv` (a compaction).
    pub fn compact(&mut self, rv: u64) {
        self.events.clear();
        self.floor = rv;
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Events after `rv`, oldest first.
    pub fn since(&self, rv: u64) -> impl Iterator<Item = &HistoryEvent> {
        let start = self.events.partition_point(|e| e.resource_version() <= rv);
        self.events.range(start..)
    }
}

/// What a watch looks at: a namespace (or all) and its selectors.
pub(crate) struct WatchScope {
    pub namespace: Option<String>,
    pub filter: ObjectFilter,
}

/// One open watch.
pub(crate) struct Watcher {
    pub scope: WatchScope,
    pub allow_bookmarks: bool,
    pub tx: Sender<WatchEvent>,
    pub last_bookmark: Instant,
}

impl WatchScope {
    /// Whether the watch sees this object at all (namespace and selectors).
    pub fn sees(&self, object: &StoredObject) -> bool {
        if let Some(ns) = &self.namespace
            && object.namespace() != Some(ns.as_str())
        {
            return false;
        }
        self.filter.matches(object)
    }

    /// The event this watch gets for a write, if any.
    pub fn translate(&self, event: &HistoryEvent) -> Option<WatchEvent> {
        let now = self.sees(&event.object);
        let before = event.prev.as_ref().is_some_and(|p| self.sees(p));
        let object = event.object.clone();
        match event.kind {
            EventKind::Added => now.then_some(WatchEvent::Added(object)),
            EventKind::Deleted => (now || before).then_some(WatchEvent::Deleted(object)),
            EventKind::Modified => match (before, now) {
                (true, true) => Some(WatchEvent::Modified(object)),
                (false, true) => Some(WatchEvent::Added(object)),
                (true, false) => Some(WatchEvent::Deleted(object)),
                (false, false) => None,
            },
        }
    }
}

impl Watcher {
    /// Sends without blocking; false when the watch must be closed (gone or too far behind).
    pub fn offer(&self, event: WatchEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::debug!("closing a watch whose consumer fell behind by its whole buffer");
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Delivers one write; false when the watch must be closed.
    pub fn deliver(&self, event: &HistoryEvent) -> bool {
        match self.scope.translate(event) {
            Some(watch_event) => self.offer(watch_event),
            None => !self.tx.is_closed(),
        }
    }
}
