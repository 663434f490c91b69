//! Watch fan-out: the revisions one resource keeps (etcd's history and the watch cache's
//! window over it) and the open watches on it.
//!
//! Contract (as kube-apiserver v1.28's cacher and etcd keep it):
//! - **etcd history.** Every write since the last compaction is kept, so a list can read the
//!   resource at any revision not older than the compacted one ([`History::state_at`]). The
//!   compactor (in the store's housekeeping) compacts to the revision it saw one interval
//!   earlier, as kube-apiserver's `compactor` does every `--etcd-compaction-interval`.
//! - **Watch cache window** (`watch_cache.go`): the newest events, at least `watch_cache_min`
//!   (100); a full window whose oldest event is younger than `watch_cache_fresh` (75 s)
//!   doubles, up to `watch_cache_max` (102 400); one whose newest quarter is older than that
//!   halves. A watch from resourceVersion N is served iff N >= oldest - 1, where oldest is the
//!   first event of the window, or the cacher's list resourceVersion + 1 while no event left
//!   the window; older gets 410 `too old resource version: N (oldest-1)`. Compaction does not
//!   touch the window: a compacted but cached revision is still watchable
//!   (`gone/watch-compacted-but-cached-rv.timed.txt`).
//! - A watch sees events after its start resourceVersion, in order, filtered by namespace
//!   and selectors. An object that starts matching arrives as ADDED; one that stops matching
//!   as DELETED carrying its **previous** state (the one that matched) at the event's
//!   resourceVersion, as `cacheWatcher.convertToWatchEvent` sends it.
//! - Bookmarks (`cacheWatcher.nextBookmarkTime`, `Cacher.dispatchEvents`): about once a
//!   second the store offers each due watch a bookmark at the resource's last event; it is
//!   sent only if that is newer than the watch's start (a quiet watch gets none). A watch is
//!   due every `bookmark_interval` (60 s) and 2 s before its deadline. A streaming list owes
//!   its `k8s.io/initial-events-end` bookmark until a bookmark reaches the resourceVersion
//!   it asked for, which on a quiet resource means after its next write.
//! - Each watch has a bounded channel; a watch whose consumer falls that far behind is closed
//!   (its sender dropped), as the real server terminates a blocked watcher. Delivery happens
//!   under the store lock with `try_send`, so it never blocks a write.
//!
//! Memory: the history holds `Arc`s of stored objects (no copies), and never more than
//! `history_limit` events per resource; past that its oldest revisions are compacted early
//! (a departure: etcd keeps them on disk until the compactor runs).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imbl::OrdMap;
use serde_json::Value;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::selector::ObjectFilter;
use super::{StoreConfig, StoredObject, WatchEvent};

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
    /// The object before a MODIFIED or DELETED, to decide selector transitions and to undo
    /// the write when reading an older revision.
    pub prev: Option<Arc<StoredObject>>,
    /// When the write happened (the window's 75 s rule).
    pub recorded: Instant,
}

impl HistoryEvent {
    pub fn resource_version(&self) -> u64 {
        self.object.resource_version
    }

    /// The previous state stamped with this event's resourceVersion (what a watch whose
    /// selector the object leaves receives as DELETED).
    fn prev_at_event_version(&self) -> Option<Arc<StoredObject>> {
        let prev = self.prev.as_ref()?;
        let rv = self.resource_version();
        let mut value = prev.value();
        value["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        Some(Arc::new(StoredObject::new(&value, rv)))
    }
}

/// The map key of a stored object (`namespace/name` or `name`).
pub(crate) fn key_of(object: &StoredObject) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name()),
        None => object.name().to_string(),
    }
}

/// etcd's history of one resource and the watch cache window over its newest part.
#[derive(Debug)]
pub(crate) struct History {
    /// Events with strictly increasing resourceVersions: every event after `compacted`,
    /// plus the window (which may reach further back).
    events: VecDeque<HistoryEvent>,
    /// The newest `window` events are the watch cache.
    window: usize,
    /// The watch cache's current capacity.
    capacity: usize,
    /// An event left the window since the cacher's last list (`removedEventSinceRelist`).
    removed_since_list: bool,
    /// The resourceVersion of the cacher's last list (`listResourceVersion`).
    list_rv: u64,
    /// Revisions below this were compacted early for this resource (`history_limit`).
    own_floor: u64,
}

impl History {
    pub fn new(list_rv: u64, config: &StoreConfig) -> History {
        History {
            events: VecDeque::new(),
            window: 0,
            capacity: config.watch_cache_min.max(1),
            removed_since_list: false,
            list_rv,
            own_floor: 0,
        }
    }

    /// Records a write: resizes the window as `resizeCacheLocked` does, evicts its oldest
    /// event when full, then drops what neither the window nor etcd (above `compacted`)
    /// still needs.
    pub fn push(&mut self, event: HistoryEvent, config: &StoreConfig, compacted: u64) {
        self.resize(event.recorded, config);
        if self.window >= self.capacity {
            self.window = self.capacity - 1;
            self.removed_since_list = true;
        }
        self.events.push_back(event);
        self.window += 1;
        self.trim(compacted, config.history_limit);
    }

    fn resize(&mut self, now: Instant, config: &StoreConfig) {
        if self.window < self.capacity {
            return;
        }
        let fresh = config.watch_cache_fresh;
        let len = self.events.len();
        let oldest = &self.events[len - self.window];
        if now.saturating_duration_since(oldest.recorded) < fresh {
            self.capacity = (self.capacity * 2).min(config.watch_cache_max.max(1));
            return;
        }
        let quarter = &self.events[len - (self.capacity / 4).max(1)];
        if now.saturating_duration_since(quarter.recorded) > fresh {
            let smaller = (self.capacity / 2).max(config.watch_cache_min.max(1));
            if smaller < self.window {
                self.window = smaller;
                self.removed_since_list = true;
            }
            self.capacity = smaller;
        }
    }

    /// Drops events outside the window that etcd no longer needs; past `limit` events the
    /// oldest are compacted early.
    pub fn trim(&mut self, compacted: u64, limit: usize) {
        while self.events.len() > limit.max(self.window) {
            let Some(dropped) = self.events.pop_front() else {
                break;
            };
            self.own_floor = self.own_floor.max(dropped.resource_version());
        }
        let floor = compacted.max(self.own_floor);
        while self.events.len() > self.window
            && self
                .events
                .front()
                .is_some_and(|e| e.resource_version() <= floor)
        {
            self.events.pop_front();
        }
    }

    /// The cacher relisted at `rv` (the `compact` fault): the window is empty and nothing
    /// older than `rv` can be watched.
    pub fn relist(&mut self, rv: u64, compacted: u64, limit: usize) {
        self.window = 0;
        self.removed_since_list = false;
        self.list_rv = rv;
        self.trim(compacted, limit);
    }

    /// `oldest - 1` of `getAllEventsSinceLocked`: a watch from below it gets 410.
    pub fn watch_floor(&self) -> u64 {
        let first_in_window = self.events.len() - self.window;
        match self.events.get(first_in_window) {
            Some(oldest) if self.removed_since_list => oldest.resource_version() - 1,
            _ => self.list_rv,
        }
    }

    /// The oldest revision a list may read, given the global compacted revision.
    pub fn list_floor(&self, compacted: u64) -> u64 {
        compacted.max(self.own_floor)
    }

    /// Window events after `rv`, oldest first.
    pub fn since(&self, rv: u64) -> impl Iterator<Item = &HistoryEvent> {
        let window_start = self.events.len() - self.window;
        let first_after = self.events.partition_point(|e| e.resource_version() <= rv);
        self.events.range(first_after.max(window_start)..)
    }

    /// The objects as they were at revision `rv`, from the current ones (at or after every
    /// kept event): each later write is undone, newest first. The caller checks `rv` against
    /// [`History::list_floor`].
    pub fn state_at(
        &self,
        current: &OrdMap<String, Arc<StoredObject>>,
        rv: u64,
    ) -> OrdMap<String, Arc<StoredObject>> {
        let mut map = current.clone();
        for event in self
            .events
            .iter()
            .rev()
            .take_while(|e| e.resource_version() > rv)
        {
            let key = key_of(&event.object);
            match &event.prev {
                Some(prev) => {
                    map.insert(key, prev.clone());
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        map
    }
}

/// What a watch looks at: a namespace (or all) and its selectors.
pub(crate) struct WatchScope {
    pub namespace: Option<String>,
    pub filter: ObjectFilter,
}

/// One open watch (the cacher's `cacheWatcher`).
pub(crate) struct Watcher {
    pub scope: WatchScope,
    pub allow_bookmarks: bool,
    pub tx: Sender<WatchEvent>,
    /// The cacher's `resourceVersion` for this watch: events and bookmarks at or below it
    /// are not sent.
    pub start_rv: u64,
    /// While set, the `k8s.io/initial-events-end` bookmark is owed; it goes out with the
    /// first bookmark at this resourceVersion or later (`bookmarkAfterResourceVersion`).
    pub initial_events_end_after: Option<u64>,
    /// When a bookmark is next due; `None` once none is left before the deadline.
    pub next_bookmark: Option<Instant>,
    /// When the server ends the watch (`timeoutSeconds`), if it does.
    pub deadline: Option<Instant>,
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
                (true, false) => event.prev_at_event_version().map(WatchEvent::Deleted),
                (false, false) => None,
            },
        }
    }
}

/// How long before its deadline a watch gets its last bookmark (`nextBookmarkTime`).
const PRE_TIMEOUT_BOOKMARK: Duration = Duration::from_secs(2);

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
        if event.resource_version() <= self.start_rv {
            return !self.tx.is_closed();
        }
        match self.scope.translate(event) {
            Some(watch_event) => self.offer(watch_event),
            None => !self.tx.is_closed(),
        }
    }

    /// `nextBookmarkTime`: at once while the initial-events-end bookmark is owed, else one
    /// `interval` from now but no later than 2 s before the deadline; `None` past that.
    pub fn next_bookmark_time(&self, now: Instant, interval: Duration) -> Option<Instant> {
        if !self.allow_bookmarks {
            return None;
        }
        if self.initial_events_end_after.is_some() {
            return Some(now);
        }
        let mut at = now + interval;
        if let Some(deadline) = self.deadline {
            at = at.min(deadline.checked_sub(PRE_TIMEOUT_BOOKMARK).unwrap_or(now));
        }
        (at > now).then_some(at)
    }

    /// Offers the bookmark a due watch gets when the resource's last event is at
    /// `last_event` (0: none since the store started, so no bookmark at all); false when the
    /// watch must be closed.
    pub fn bookmark(&mut self, now: Instant, last_event: u64, interval: Duration) -> bool {
        if self.next_bookmark.is_none_or(|due| due > now) || last_event == 0 {
            return !self.tx.is_closed();
        }
        let open = match self.initial_events_end_after {
            Some(after) if last_event < after || last_event < self.start_rv => !self.tx.is_closed(),
            Some(_) => {
                self.initial_events_end_after = None;
                self.offer(WatchEvent::Bookmark {
                    resource_version: last_event,
                    initial_events_end: true,
                })
            }
            None if last_event > self.start_rv => self.offer(WatchEvent::Bookmark {
                resource_version: last_event,
                initial_events_end: false,
            }),
            None => !self.tx.is_closed(),
        };
        self.next_bookmark = self.next_bookmark_time(now, interval);
        open
    }
}
