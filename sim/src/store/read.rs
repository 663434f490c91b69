//! Lists and watches, as the API server serves them from etcd and its watch cache.
//!
//! Which one answers a list follows v1.28's `shouldDelegateList` and etcd3's `GetList`:
//! - `resourceVersion=0` (without `Exact`): the watch cache, any recent state, `limit`
//!   ignored; `resourceVersion=N` without `limit` (and without `Exact`): the watch cache once
//!   it reached N, the current state. Both carry the cache's resourceVersion: the resource's
//!   last write, not the global revision.
//! - unset: etcd, the current state, paginated.
//! - `resourceVersion=N&resourceVersionMatch=Exact`, and the legacy `resourceVersion=N&limit=L`
//!   (no match): etcd **at revision N**, the historical state, list resourceVersion N, 410
//!   "The resourceVersion for the provided list is too old." once compacted past N.
//! - `resourceVersion=N&resourceVersionMatch=NotOlderThan&limit=L`: etcd, the current state.
//! - `resourceVersion=0&resourceVersionMatch=Exact`: 422 (checked by the caller).
//!
//! A list reads one snapshot: the storage's persistent map is cloned in O(1) under the lock
//! (and rolled back through the history for an older revision), filtering happens after the
//! lock is released. A paginated list keeps its snapshot (keyed by storage, namespace and
//! rv) for `snapshot_ttl` or until compacted past, so every page of one list shows the same
//! state and carries the same resourceVersion; a continue whose snapshot is gone is read
//! again at its revision, and is 410 once that revision is compacted.

use std::sync::Arc;
use std::time::Instant;

use imbl::OrdMap;
use tokio::sync::mpsc;

use super::continue_token::ContinueToken;
use super::selector::ObjectFilter;
use super::state::{Snapshot, SnapshotKey, State};
use super::storage_key::storage_key;
use super::watch::{WatchScope, Watcher, key_of};
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
            let readable = token.rv > 0
                && (token.rv as u64) >= self.list_floor(storage)
                && (token.rv as u64) <= self.rv;
            if readable {
                let rv = token.rv as u64;
                let items = items_in(&storage.history.state_at(&storage.objects, rv), namespace);
                return Ok(ListSource::Kept(Arc::new(items), rv, Some(token.last_key)));
            }
            let fresh = ContinueToken {
                rv: -1,
                last_key: token.last_key,
            };
            return Err(Status::continue_expired(fresh.encode()));
        }
        let from_etcd_at = match (requested, opts.resource_version_match) {
            (RequestedRv::At(rv), Some(ResourceVersionMatch::Exact)) => Some(rv),
            (RequestedRv::At(rv), None) if opts.limit.is_some() => Some(rv),
            _ => None,
        };
        match from_etcd_at {
            Some(rv) if rv < self.rv => {
                let key = SnapshotKey {
                    storage: storage_key(rt),
                    namespace: namespace.map(str::to_string),
                    rv,
                };
                if let Some(snapshot) = self.snapshots.get(&key) {
                    return Ok(ListSource::Kept(snapshot.items.clone(), rv, None));
                }
                if rv < self.list_floor(storage) {
                    return Err(Status::list_rv_too_old());
                }
                Ok(ListSource::Current(
                    storage.history.state_at(&storage.objects, rv),
                    rv,
                ))
            }
            // The watch cache answers at its own resourceVersion, etcd at its revision.
            None if requested == RequestedRv::Any
                || matches!(requested, RequestedRv::At(_)) && opts.limit.is_none() =>
            {
                Ok(ListSource::Current(
                    storage.objects.clone(),
                    storage.last_write,
                ))
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
    pub requested: RequestedRv,
    /// `sendInitialEvents` as given.
    pub send_initial_events: Option<bool>,
    pub allow_bookmarks: bool,
    /// When the server ends the watch (`timeoutSeconds`).
    pub deadline: Option<Instant>,
    pub buffer: usize,
}

impl State {
    /// `Cacher.Watch` of v1.28 (a plain watch without resourceVersion is etcd's, which sends
    /// no bookmarks with progress notifications off).
    pub fn open_watch(&mut self, start: WatchStart<'_>) -> Result<Watch, Status> {
        let global_rv = self.rv;
        let prompt_end = self.config.prompt_initial_events_end;
        let interval = self.config.bookmark_interval;
        let storage = self
            .storages
            .get_mut(&storage_key(start.rt))
            .ok_or_else(super::state::unknown_resource)?;
        let cache_rv = storage.last_write;
        let served_by_etcd =
            start.send_initial_events.is_none() && start.requested == RequestedRv::Latest;
        let scope = WatchScope {
            namespace: start.namespace.map(str::to_string),
            filter: start.filter,
        };
        // Without sendInitialEvents, only "no RV" and "0" start with the current objects.
        let initial_events = start.send_initial_events.unwrap_or(matches!(
            start.requested,
            RequestedRv::Latest | RequestedRv::Any
        ));
        let mut backlog: Vec<WatchEvent> = Vec::new();
        let mut start_rv = match start.requested {
            RequestedRv::At(rv) => rv,
            RequestedRv::Latest if served_by_etcd => global_rv,
            RequestedRv::Latest if start.send_initial_events == Some(false) => global_rv,
            RequestedRv::Any if start.send_initial_events == Some(false) => cache_rv,
            _ => 0,
        };
        if initial_events {
            let items = items_in(&storage.objects, start.namespace);
            backlog.extend(
                items
                    .into_iter()
                    .filter(|o| scope.sees(o))
                    .map(WatchEvent::Added),
            );
            // The cache hands its state out at its own resourceVersion (processInterval).
            if !backlog.is_empty() {
                start_rv = start_rv.max(cache_rv);
            }
        } else {
            let floor = storage.history.watch_floor();
            if start_rv < floor {
                return Ok(failed_watch(Status::too_old_resource_version(
                    start_rv, floor,
                )));
            }
            for event in storage.history.since(start_rv) {
                if let Some(watch_event) = scope.translate(event) {
                    backlog.push(watch_event);
                }
            }
            if let Some(last) = storage.history.since(start_rv).last() {
                start_rv = start_rv.max(last.resource_version());
            }
        }
        let allow_bookmarks = start.allow_bookmarks && !served_by_etcd;
        let owes_end_bookmark = start.send_initial_events == Some(true) && allow_bookmarks;
        let initial_events_end_after = match start.requested {
            _ if !owes_end_bookmark || prompt_end => None,
            RequestedRv::Latest => Some(global_rv),
            RequestedRv::Any => Some(cache_rv),
            RequestedRv::At(rv) => Some(rv),
        }
        // v1.28 never annotates a bookmark when the version to wait for is 0.
        .filter(|rv| *rv > 0);
        if owes_end_bookmark && prompt_end {
            backlog.push(WatchEvent::Bookmark {
                resource_version: global_rv,
                initial_events_end: true,
            });
        }
        // The channel holds the whole backlog plus the live buffer, so a fresh watch with a
        // large initial list is not mistaken for a slow consumer.
        let (tx, rx) = mpsc::channel(backlog.len() + start.buffer.max(1));
        let mut watcher = Watcher {
            scope,
            allow_bookmarks,
            tx,
            start_rv,
            initial_events_end_after,
            next_bookmark: None,
            deadline: start.deadline,
        };
        watcher.next_bookmark = watcher.next_bookmark_time(Instant::now(), interval);
        for event in backlog {
            watcher.offer(event);
        }
        storage.watchers.push(watcher);
        Ok(Watch { events: rx })
    }
}
