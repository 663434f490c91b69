//! Lists and watches, as the API server serves them from etcd and its watch cache.
//!
//! - A list reads one snapshot: the storage's persistent map is cloned in O(1) under the
//!   lock, and filtering happens after the lock is released.
//! - A paginated list keeps its snapshot (keyed by storage, namespace and rv) for
//!   `snapshot_ttl`, so every page of one list shows the same state and carries the same
//!   resourceVersion; writes between pages do not show up.
//! - `resourceVersion=0` lists are served "from the watch cache": any recent state, and
//!   `limit` is ignored (as in v1.28).

use std::sync::Arc;
use std::time::Instant;

use imbl::OrdMap;
use tokio::sync::mpsc;

use super::continue_token::ContinueToken;
use super::selector::ObjectFilter;
use super::state::{Snapshot, SnapshotKey, State, storage_key};
use super::watch::{WatchScope, Watcher};
use super::{
    ListOptions, ListPage, ResourceType, ResourceVersionMatch, Status, StoredObject, Watch,
    WatchEvent,
};

/// What a list reads from, decided under the lock.
pub(crate) enum ListSource {
    /// The current objects (cloned map) at this rv.
    Current(OrdMap<String, Arc<StoredObject>>, u64),
    /// A kept snapshot; `after` is the last key already returned.
    Kept(Arc<Vec<Arc<StoredObject>>>, u64, Option<String>),
}

/// The parsed resourceVersion of a list or watch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestedRv {
    /// Unset or "": the most recent state.
    Latest,
    /// "0": any state.
    Any,
    At(u64),
}

pub(crate) fn parse_rv(raw: Option<&str>) -> Result<RequestedRv, Status> {
    match raw {
        None | Some("") => Ok(RequestedRv::Latest),
        Some("0") => Ok(RequestedRv::Any),
        Some(s) => s.parse::<u64>().map(RequestedRv::At).map_err(|_| {
            Status::bad_request(format!(
                "invalid resource version: strconv.ParseUint: parsing {s:?}: invalid syntax"
            ))
        }),
    }
}

impl State {
    /// Where a list reads from, or its error. Waiting for a future rv is the caller's job.
    pub fn list_source(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
        requested: RequestedRv,
    ) -> Result<ListSource, Status> {
        let storage = self.storage(rt)?;
        if let Some(raw) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            if requested != RequestedRv::Latest {
                return Err(Status::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let token = ContinueToken::decode(raw)?;
            let key = SnapshotKey {
                storage: storage_key(rt),
                namespace: namespace.map(str::to_string),
                rv: token.rv.max(0) as u64,
            };
            if let Some(snapshot) = self.snapshots.get(&key) {
                return Ok(ListSource::Kept(
                    snapshot.items.clone(),
                    key.rv,
                    Some(token.last_key),
                ));
            }
            let rv = token.rv as u64;
            let unchanged_since = token.rv > 0 && storage.last_write <= rv && rv >= self.compacted;
            if unchanged_since {
                let items = items_in(&storage.objects, namespace);
                return Ok(ListSource::Kept(Arc::new(items), rv, Some(token.last_key)));
            }
            let fresh = ContinueToken {
                rv: -1,
                last_key: token.last_key,
            };
            return Err(Status::continue_expired(fresh.encode()));
        }
        match (requested, opts.resource_version_match) {
            (RequestedRv::At(rv), Some(ResourceVersionMatch::Exact)) if rv != self.rv => {
                let key = SnapshotKey {
                    storage: storage_key(rt),
                    namespace: namespace.map(str::to_string),
                    rv,
                };
                if let Some(snapshot) = self.snapshots.get(&key) {
                    return Ok(ListSource::Kept(snapshot.items.clone(), rv, None));
                }
                if storage.last_write <= rv && rv >= self.compacted && rv <= self.rv {
                    return Ok(ListSource::Current(storage.objects.clone(), rv));
                }
                Err(Status::list_rv_too_old())
            }
            _ => Ok(ListSource::Current(storage.objects.clone(), self.rv)),
        }
    }

    pub fn keep_snapshot(&mut self, key: SnapshotKey, items: Arc<Vec<Arc<StoredObject>>>) {
        self.snapshots.entry(key).or_insert(Snapshot {
            created: Instant::now(),
            items,
        });
    }
}

/// The `ns/` range of keys (or all keys) in key order.
///
/// Only `Arc`s are collected (keys are derived again from the objects when needed), so a
/// kept snapshot of 100k objects costs 800 KB.
pub(crate) fn items_in(
    map: &OrdMap<String, Arc<StoredObject>>,
    namespace: Option<&str>,
) -> Vec<Arc<StoredObject>> {
    match namespace {
        Some(ns) => {
            let prefix = format!("{ns}/");
            map.range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.clone())
                .collect()
        }
        None => map.values().cloned().collect(),
    }
}

/// The storage key of an object (`namespace/name` or `name`), as `object_key` builds it.
fn key_of(object: &StoredObject) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name()),
        None => object.name().to_string(),
    }
}

/// The key as a continue token names it: relative to the namespace prefix.
fn relative_key(object: &StoredObject, namespace: Option<&str>) -> String {
    match namespace {
        Some(_) => object.name().to_string(),
        None => key_of(object),
    }
}

/// Builds one page from the prefix's items, starting after `after` (a relative key).
pub(crate) fn page(
    items: &[Arc<StoredObject>],
    namespace: Option<&str>,
    after: Option<&str>,
    filter: &ObjectFilter,
    limit: Option<u64>,
    rv: u64,
) -> ListPage {
    let start = match after {
        Some(last) => {
            let full = match namespace {
                Some(ns) => format!("{ns}/{last}"),
                None => last.to_string(),
            };
            items.partition_point(|o| key_of(o).as_str() <= full.as_str())
        }
        None => 0,
    };
    let limit = limit.filter(|l| *l > 0).map(|l| l as usize);
    let mut out = Vec::new();
    let mut last_index = None;
    for (index, object) in items.iter().enumerate().skip(start) {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        if filter.matches(object) {
            out.push(object.clone());
        }
        last_index = Some(index);
    }
    let more = match (limit, last_index) {
        (Some(l), Some(i)) => out.len() >= l && items[i + 1..].iter().any(|o| filter.matches(o)),
        _ => false,
    };
    let (continue_token, remaining_item_count) = if more {
        let last = last_index.expect("more implies a last item");
        let token = ContinueToken {
            rv: rv as i64,
            last_key: relative_key(&items[last], namespace),
        }
        .encode();
        // Like etcd, the count is only known without selectors.
        let remaining = filter.is_empty().then(|| (items.len() - last - 1) as u64);
        (Some(token), remaining)
    } else {
        (None, None)
    };
    ListPage {
        items: out,
        resource_version: rv,
        continue_token,
        remaining_item_count,
    }
}

/// A watch that only carries one ERROR event and then ends.
pub(crate) fn failed_watch(status: Status) -> Watch {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(WatchEvent::Error(status));
    Watch { events: rx }
}

/// Opens a watch under the lock: replays what it must, then registers it for live events.
pub(crate) struct WatchStart<'a> {
    pub rt: &'a ResourceType,
    pub namespace: Option<&'a str>,
    pub filter: ObjectFilter,
    pub allow_bookmarks: bool,
    /// Synthetic ADDED for every current object first.
    pub initial_events: bool,
    /// After the initial events, a BOOKMARK annotated initial-events-end.
    pub initial_events_end: bool,
    /// Replay history after this rv (when not sending initial events).
    pub since: Option<u64>,
    pub buffer: usize,
}

impl State {
    pub fn open_watch(&mut self, start: WatchStart<'_>) -> Result<Watch, Status> {
        let current_rv = self.rv;
        let storage = self
            .storages
            .get_mut(&storage_key(start.rt))
            .ok_or_else(super::state::unknown_resource)?;
        if let Some(since) = start.since
            && since < storage.history.floor()
        {
            return Ok(failed_watch(Status::too_old_resource_version(
                since,
                storage.history.floor(),
            )));
        }
        let scope = WatchScope {
            namespace: start.namespace.map(str::to_string),
            filter: start.filter,
        };
        let mut backlog: Vec<WatchEvent> = Vec::new();
        if start.initial_events {
            let items = items_in(&storage.objects, start.namespace);
            backlog.extend(
                items
                    .into_iter()
                    .filter(|o| scope.sees(o))
                    .map(WatchEvent::Added),
            );
            if start.initial_events_end && start.allow_bookmarks {
                backlog.push(WatchEvent::Bookmark {
                    resource_version: current_rv,
                    initial_events_end: true,
                });
            }
        } else if let Some(since) = start.since {
            backlog.extend(
                storage
                    .history
                    .since(since)
                    .filter_map(|e| scope.translate(e)),
            );
        }
        // The channel holds the whole backlog plus the live buffer, so a fresh watch with a
        // large initial list is not mistaken for a slow consumer.
        let (tx, rx) = mpsc::channel(backlog.len() + start.buffer.max(1));
        let watcher = Watcher {
            scope,
            allow_bookmarks: start.allow_bookmarks,
            tx,
            last_bookmark: Instant::now(),
        };
        for event in backlog {
            watcher.offer(event);
        }
        storage.watchers.push(watcher);
        Ok(Watch { events: rx })
    }
}
