//! The in-memory state of one simulated cluster: what etcd plus the API server's registry
//! and watch cache hold for a real kube-apiserver v1.28. The HTTP side (`crate`'s server)
//! turns requests into calls on [`ClusterStore`] and its answers into responses; tests,
//! seeding ([`crate::pods`]) and churn ([`crate::churn`]) call it directly.
//!
//! # What a client can rely on
//!
//! - **One resourceVersion per cluster** (the etcd revision): every write, of any type,
//!   increments it by one; an object's `metadata.resourceVersion` is the revision that wrote
//!   it; a list's is the revision it was read at. A write that changes nothing (a no-op
//!   patch) is not a write and bumps nothing.
//! - **Objects are shared, not copied**: each is stored once as an `Arc<`[`StoredObject`]`>`
//!   with its JSON serialized at write time, so lists, watches, list snapshots and the
//!   watch history hand out the same `Arc`s and bytes.
//! - **Errors are the real ones**: every failure is a [`Status`] with the code, reason,
//!   message and details a real server gives (`shared/fixtures/apiserver-v1.28/status/`).
//! - **Writes** validate names, namespaces and pods, default pods and namespaces, check
//!   `resourceVersion` preconditions (409), bump `metadata.generation` on spec changes of
//!   apps types and custom resources, keep `/status` and the main resource apart, record
//!   `managedFields` per manager (with server-side apply's conflicts), and delete as the
//!   real registry does: graceful pod deletion, finalizers, propagation policies, and
//!   namespaces through `Terminating` (`store/deletion.rs`).
//! - **History** is etcd's: every write since the last compaction, compacted every
//!   `compaction_interval` (5 min) to the revision the previous run saw, as kube-apiserver's
//!   compactor does. Lists read it at any revision not compacted (`resourceVersionMatch=Exact`,
//!   the legacy `resourceVersion=N&limit=L`, continue tokens), and get 410 "The resourceVersion
//!   for the provided list is too old." past it; `resourceVersion=0&resourceVersionMatch=Exact`
//!   is 422 (`read` has the whole table).
//! - **Lists** are consistent: all pages of a paginated list come from one snapshot and
//!   carry its resourceVersion; tokens and 400/410 answers match the real server's.
//! - **Watches** are served from a watch cache window per resource (v1.28: 100 events, grown
//!   to hold the last 75 s, at most 102 400); from before it: one ERROR event (410 Expired
//!   "too old resource version: N (M)") and the end of the stream, while a compacted revision
//!   still in the window is served. A watch from a future resourceVersion is silent until the
//!   store gets there. Events come in resourceVersion order through a bounded channel; a watch
//!   whose consumer falls `watch_buffer` events behind is closed, as are all watches on
//!   [`ClusterStore::drop_watches`]. An object leaving a selector is DELETED with its old state.
//! - **Freshness**: what the watch cache serves (lists at `resourceVersion=0` or at N
//!   without `limit`, streaming lists) carries the resource's own last write as its
//!   resourceVersion, and waits until that reaches N (504 "Too large resource version" after
//!   `too_large_rv_wait`), so a version taken from another resource may be too new.
//! - **Bookmarks** follow v1.28's cacher: a watch is due one every `bookmark_interval` (60 s)
//!   and 2 s before its `timeoutSeconds`, and gets it only if its resource changed since the
//!   watch's resourceVersion; a streaming list's `initial-events-end` bookmark waits for the
//!   resource's last write to reach the version asked for (on a quiet resource, its next
//!   write), or comes at once with `prompt_initial_events_end` (v1.30+).
//!
//! # Memory
//!
//! A stored object costs its compact JSON plus a small index (name, namespace, string
//! labels, the values of the fields field selectors may name): no `serde_json::Value` is
//! kept. Selectors, watch scoping and list ordering read only the index; a write, a patch,
//! YAML and Table output parse the JSON again ([`StoredObject::value`]). The history (etcd's
//! revisions since the last compaction plus the watch cache window, at most `history_limit`
//! events per resource) and list snapshots hold `Arc`s of stored objects, never copies, so
//! they cost only the versions that the map no longer holds: with a write load of W objects
//! per second, up to 2 × `compaction_interval` × W of them.
//!
//! Measured with the ignored test `listing_100k_pods_in_pages_of_500` (release, 100k
//! realistic pods of 8.0 KB JSON from [`crate::pods`], a shared 2-core machine): about
//! 8.9 KB resident per pod (889 MB for the process), against 95 KB (9.5 GB) when a parsed
//! `Value` was kept next to the JSON; seeding 100k pods takes about 16 s (74 s before) and
//! listing all of them in pages of 500 about 25 ms (310 ms before). Merge patches of pods
//! with four watchers (`sustained_pod_writes_with_four_watchers`) run at 4.6–4.8k/s
//! (4.2–4.3k/s before): a write parses the stored JSON once, where it used to deep-copy
//! the kept `Value`.
//!
//! # Threads and locking
//!
//! One `parking_lot::Mutex` guards a cluster's state. It is held for the bookkeeping of a
//! write (including serializing the object once and offering the event to each watch with
//! `try_send`) and to clone a persistent map for a list (and to roll it back through the
//! history for a list at an old revision: O(writes since)); never while waiting (a future
//! resourceVersion is polled without it) and never while filtering a list. A housekeeping
//! thread per store runs the bookmark timer (1 s), the compactor and the expiry of list
//! snapshots; it ends when the last clone of the store is dropped.
//!
//! # Differences from a real server
//!
//! Server-side apply merges with strategic-merge rules (conflicts, `force` and removal as
//! `store/server_side_apply.rs` keeps them, without `set` lists or atomic maps); deletions finish
//! through a simulated kubelet, garbage collector and namespace controller
//! (`store/lifecycle.rs`, timed by [`LifecycleConfig`]) that write less status than the real ones.
//! History: a resource keeping more than `history_limit` revisions compacts its oldest early
//! (etcd keeps them on disk until the compactor runs); a plain watch without resourceVersion
//! (served by etcd, no bookmarks) and one with it (the watch cache) otherwise behave alike.

mod continue_token;
mod defaults;
mod deletion;
mod fast_patch;
mod garbage_collector;
mod kubelet;
mod lifecycle;
mod lifecycle_queues;
mod managed_fields;
mod namespace_lifecycle;
mod object_meta;
mod owner_graph;
mod partial_object;
mod patch;
mod raw_managed_fields;
mod read;
mod registry;
mod selector;
mod server_side_apply;
mod state;
mod status;
mod storage_key;
mod stored_object;
mod watch;
mod writes;

pub use lifecycle::LifecycleConfig;
pub(crate) use managed_fields::field_set;
pub use stored_object::StoredObject;

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use serde_json::Value;

/// A `metav1.Status` failure, exactly as a real API server words it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct Status {
    /// HTTP status code (404, 409, 410, 422, ...).
    pub code: u16,
    /// `reason` (NotFound, AlreadyExists, Conflict, Invalid, Expired, Gone, BadRequest, ...).
    pub reason: String,
    /// Human message, worded as the real server words it.
    pub message: String,
    /// `details` (name, group, kind, causes, retryAfterSeconds), if any.
    pub details: Option<Value>,
    /// Extra `metadata` for the Status (e.g. a fresh `continue` on an expired token), if any.
    pub metadata: Option<Value>,
}

/// A store operation's result: the failure is the [`Status`] the server answers with.
pub type Result<T> = std::result::Result<T, Status>;

impl Status {
    /// The Status object as JSON (`kind: Status`, `apiVersion: v1`, `status: Failure`).
    pub fn to_json(&self) -> Value {
        let mut status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": self.metadata.clone().unwrap_or_else(|| serde_json::json!({})),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// One served resource: built-in or from a CRD.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// "" for the core group.
    pub group: String,
    /// Served version (`v1`).
    pub version: String,
    /// Object kind (`Pod`).
    pub kind: String,
    /// Kind of its lists (`PodList`).
    pub list_kind: String,
    /// Plural, lower case: "pods".
    pub plural: String,
    /// Singular, lower case: "pod".
    pub singular: String,
    /// Short names for kubectl (`po`).
    pub short_names: Vec<String>,
    /// Categories for kubectl (`all`).
    pub categories: Vec<String>,
    /// Objects live in namespaces (else cluster-scoped).
    pub namespaced: bool,
    /// Verbs discovery lists (`get`, `list`, `watch`, ...).
    pub verbs: Vec<String>,
    /// Has a `/status` subresource.
    pub status_subresource: bool,
    /// Has a `/scale` subresource (deployments, replicasets, CRDs that declare it).
    pub scale_subresource: bool,
    /// Served from a CustomResourceDefinition. Its lists are unstructured, so their items keep
    /// `kind` and `apiVersion`; built-in lists are typed and their items carry neither.
    pub custom_resource: bool,
    /// The version objects are stored in (a CRD's `storage: true` version), which discovery's
    /// `storageVersionHash` is computed from.
    pub storage_version: String,
}

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself.
    Main,
    /// `/status`: only `status` changes; the rest of the body is ignored.
    Status,
    /// `/scale`: an `autoscaling/v1` Scale mapped to the object's replicas.
    Scale,
}

/// Options that every write carries (query parameters of the request).
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `?fieldManager=`; the server's default when absent depends on the user agent.
    pub field_manager: Option<String>,
    /// `?dryRun=All`.
    pub dry_run: bool,
    /// `?fieldValidation=Strict|Warn|Ignore`.
    pub field_validation: Option<String>,
    /// `?force=true` (server-side apply).
    pub force: bool,
}

/// The patch encodings the real server accepts (by Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// application/merge-patch+json
    Merge,
    /// application/json-patch+json
    Json,
    /// application/strategic-merge-patch+json
    StrategicMerge,
    /// application/apply-patch+yaml (server-side apply; body may be YAML or JSON)
    Apply,
}

/// `DeleteOptions` (body or query of a DELETE).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`: 0 deletes at once; None takes the object's (a pod's 30 s).
    pub grace_period_seconds: Option<i64>,
    /// "Foreground" | "Background" | "Orphan".
    pub propagation_policy: Option<String>,
    /// `preconditions.uid`: 409 Conflict unless the object has this uid.
    pub preconditions_uid: Option<String>,
    /// `preconditions.resourceVersion`: 409 Conflict unless the object is at this version.
    pub preconditions_resource_version: Option<String>,
    /// `dryRun=All`: check and answer without deleting.
    pub dry_run: bool,
}

/// What a DELETE did.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// Gone from the store; the last state of the object.
    Deleted(Arc<StoredObject>),
    /// Finalizers (or a grace period) keep it: it now carries a deletionTimestamp.
    Pending(Arc<StoredObject>),
}

/// `?resourceVersionMatch=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    /// Any state at least as new as the given resourceVersion (the default with one).
    NotOlderThan,
    /// Exactly the given resourceVersion; 410 Expired if it was compacted.
    Exact,
}

/// The query of a list (and of the initial part of a watch).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Raw `labelSelector`; parse errors are 400 BadRequest with the real message.
    pub label_selector: Option<String>,
    /// Raw `fieldSelector`; unsupported fields are 400 BadRequest with the real message.
    pub field_selector: Option<String>,
    /// Page size; None lists everything.
    pub limit: Option<u64>,
    /// Raw `continue` token (base64url JSON `{"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}`).
    pub continue_token: Option<String>,
    /// Raw `resourceVersion`: None or "" reads the newest state, "0" any state.
    pub resource_version: Option<String>,
    /// How `resource_version` is matched.
    pub resource_version_match: Option<ResourceVersionMatch>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// The page's objects, in key order (namespace, name).
    pub items: Vec<Arc<StoredObject>>,
    /// The list's resourceVersion (the snapshot it was read from).
    pub resource_version: u64,
    /// Set when more items remain.
    pub continue_token: Option<String>,
    /// Set with `continue_token` (as a real server does when it knows the count).
    pub remaining_item_count: Option<u64>,
}

/// The query of a watch.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Raw `labelSelector`; events of objects that do not match are left out.
    pub label_selector: Option<String>,
    /// Raw `fieldSelector`; events of objects that do not match are left out.
    pub field_selector: Option<String>,
    /// None or "" or "0": start with synthetic ADDED events for every current object.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (only `NotOlderThan`, with `send_initial_events`).
    pub resource_version_match: Option<ResourceVersionMatch>,
    /// `allowWatchBookmarks=true`: periodic BOOKMARK events.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents=true`: ADDED for all, then a BOOKMARK annotated
    /// `k8s.io/initial-events-end: "true"` (422 without resourceVersionMatch=NotOlderThan);
    /// when that bookmark comes: [`StoreConfig::prompt_initial_events_end`].
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds`: the last bookmark is due 2 s before it.
    pub timeout: Option<Duration>,
}

/// One event of a watch stream, as it goes on the wire (`{"type":..,"object":..}`).
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// An object was created (or matched the selector for the first time).
    Added(Arc<StoredObject>),
    /// An object was changed.
    Modified(Arc<StoredObject>),
    /// An object was deleted; its last state.
    Deleted(Arc<StoredObject>),
    /// A BOOKMARK at this resourceVersion; `initial_events_end` adds the annotation.
    Bookmark {
        /// The store's resourceVersion at the bookmark.
        resource_version: u64,
        /// Adds `k8s.io/initial-events-end: "true"` (the end of a WatchList's initial events).
        initial_events_end: bool,
    },
    /// An ERROR event (e.g. 410 Expired "too old resource version: 5 (545)"); the stream ends after it.
    Error(Status),
}

/// An open watch. Dropping it unsubscribes.
pub struct Watch {
    /// Events in resourceVersion order. `None` means the server closed the watch
    /// (history compacted past it, `drop_watches`, the consumer fell too far behind, restart).
    pub events: tokio::sync::mpsc::Receiver<WatchEvent>,
}

/// Tuning of one cluster's store. The defaults are kube-apiserver v1.28's (with etcd 3.4);
/// tests shorten the times.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How often etcd is compacted (`--etcd-compaction-interval`, 5 min): each run compacts
    /// to the revision the previous run saw, so lists and continues from before it get 410.
    pub compaction_interval: Duration,
    /// The watch cache window's smallest capacity per resource (100).
    pub watch_cache_min: usize,
    /// Its largest capacity (102 400).
    pub watch_cache_max: usize,
    /// The window grows while it holds less than this much time (75 s).
    pub watch_cache_fresh: Duration,
    /// Most revisions kept per resource for lists at an old resourceVersion; past it the
    /// oldest are compacted early (etcd keeps them on disk, `sim` in memory).
    pub history_limit: usize,
    /// Per-watch buffer; a watcher this far behind is closed, as the real server does.
    pub watch_buffer: usize,
    /// How long list snapshots (for continue tokens) are kept in memory; a continue after
    /// that is read again from the history (410 once compacted).
    pub snapshot_ttl: Duration,
    /// How often a watch that allows bookmarks is due one (a real server: 60 s; also 2 s
    /// before its `timeoutSeconds` ends). It gets one only if its resource changed since the
    /// watch started. The store sends them through the watch's own channel, so a
    /// bookmark's resourceVersion never runs ahead of events already queued for that watch.
    pub bookmark_interval: Duration,
    /// Send a streaming list's `k8s.io/initial-events-end` bookmark right after its initial
    /// events, as v1.30+ servers do. Off (v1.28): it waits for a bookmark at the
    /// resourceVersion the request asked for, which on a quiet resource is its next write.
    pub prompt_initial_events_end: bool,
    /// How long a list (or a streaming list) at a resourceVersion the store has not reached
    /// waits for it before answering 504 Timeout (a real server: 3 s).
    pub too_large_rv_wait: Duration,
    /// Timing of the simulated kubelet and controllers that complete deletions.
    pub lifecycle: LifecycleConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            compaction_interval: Duration::from_secs(300),
            watch_cache_min: 100,
            watch_cache_max: 100 * 1024,
            watch_cache_fresh: Duration::from_secs(75),
            history_limit: 100 * 1024,
            watch_buffer: 10_000,
            snapshot_ttl: Duration::from_secs(300),
            bookmark_interval: Duration::from_secs(60),
            prompt_initial_events_end: false,
            too_large_rv_wait: Duration::from_secs(3),
            lifecycle: LifecycleConfig::default(),
        }
    }
}

/// One cluster's state. Cheap to clone (shared inside); every method is synchronous and
/// safe to call from any thread.
///
/// ```
/// use panoptes_sim::store::{ClusterStore, ListOptions, StoreConfig, WriteOptions};
///
/// let store = ClusterStore::new(StoreConfig::default());
/// let configmaps = store.builtin("", "configmaps");
/// let body = serde_json::json!({"metadata": {"name": "demo"}, "data": {"k": "v"}});
/// let created = store.create(&configmaps, Some("default"), body, &WriteOptions::default())?;
/// assert_eq!(created.resource_version, store.resource_version());
/// let page = store.list(&configmaps, Some("default"), &ListOptions::default())?;
/// assert_eq!(page.items.len(), 2, "demo and the namespace's kube-root-ca.crt");
/// # Ok::<(), panoptes_sim::store::Status>(())
/// ```
#[derive(Clone)]
pub struct ClusterStore {
    shared: Arc<Shared>,
}

struct Shared {
    config: StoreConfig,
    state: Mutex<state::State>,
}

/// How often the background thread looks for due bookmarks, compactions, expired snapshots,
/// and whether the store is still alive (at most this long after the last clone is dropped
/// it exits).
const HOUSEKEEPING_TICK: Duration = Duration::from_millis(200);

/// How often due watches are offered a bookmark (the cacher's bookmark timer: 1 s, plus a
/// jitter of up to 25 % as `wait.Jitter(time.Second, 0.25)` adds).
const BOOKMARK_TIMER: Duration = Duration::from_secs(1);

/// How often a wait for a future resourceVersion looks again.
const RV_POLL: Duration = Duration::from_millis(5);

impl ClusterStore {
    /// A fresh cluster: built-in resources served; namespaces `default`, `kube-system`,
    /// `kube-public`, `kube-node-lease` exist; each namespace has a `default` ServiceAccount
    /// and a `kube-root-ca.crt` ConfigMap as the controller-manager would make.
    pub fn new(config: StoreConfig) -> Self {
        Self::starting_at(config, 0)
    }

    /// A fresh cluster standing for one restored from an empty backup as etcd documents it
    /// (`etcdutl snapshot restore --bump-revision --mark-compacted`): its resourceVersions
    /// continue above `revision` (the lost cluster's last), and everything up to them counts
    /// as compacted, so a client resuming from a lost version gets 410 Expired and relists.
    /// Without the bump a resume from a version the new cluster has not reached would wait in
    /// silence (a watch at a future resourceVersion), and the loss would go unseen.
    pub fn restored_after(config: StoreConfig, revision: u64) -> Self {
        let store = Self::starting_at(config, revision);
        store.compact();
        store
    }

    fn starting_at(config: StoreConfig, revision: u64) -> Self {
        let mut state = state::State::new(config.clone());
        state.rv = revision;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            config,
        });
        let store = ClusterStore { shared };
        let namespaces = store.builtin("", "namespaces");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            store
                .create(&namespaces, None, ns, &WriteOptions::default())
                .expect("built-in namespaces are valid");
        }
        spawn_housekeeping(Arc::downgrade(&store.shared));
        lifecycle::spawn(Arc::downgrade(&store.shared));
        store
    }

    /// A built-in resource by group and plural, for code that names fixed built-ins.
    ///
    /// # Panics
    ///
    /// If `group`/`plural` is not one of the built-in resources (a programming error).
    pub fn builtin(&self, group: &str, plural: &str) -> Arc<ResourceType> {
        let state = self.shared.state.lock();
        state
            .served
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
            .unwrap_or_else(|| panic!("{group}/{plural} is not built in"))
    }

    /// Every served resource, CRD-defined ones included (for discovery).
    pub fn resources(&self) -> Vec<Arc<ResourceType>> {
        self.shared.state.lock().served.clone()
    }

    /// The resource served at group/version/plural, if any.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        let state = self.shared.state.lock();
        state
            .served
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state.lock().rv
    }

    /// One object (or its `/scale` view). 404 NotFound if absent.
    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        sub: Subresource,
    ) -> Result<Arc<StoredObject>> {
        let object = self
            .shared
            .state
            .lock()
            .get(rt, scope(rt, namespace), name)?;
        match sub {
            Subresource::Scale => scale_object(rt, &object),
            _ => Ok(object),
        }
    }

    /// A page of objects in `namespace` (None: all namespaces) as of the list's
    /// resourceVersion. 400 for bad selectors or tokens, 410 for a compacted resourceVersion.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage> {
        let namespace = scope(rt, namespace);
        let filter = selector::ObjectFilter::parse(
            rt,
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
        )?;
        let requested = read::parse_rv(opts.resource_version.as_deref())?;
        if opts.resource_version_match.is_some() && requested == read::RequestedRv::Latest {
            return Err(Status::resource_version_match_without_rv());
        }
        if opts.resource_version_match == Some(ResourceVersionMatch::Exact)
            && requested == read::RequestedRv::Any
        {
            return Err(Status::exact_match_at_zero());
        }
        if let read::RequestedRv::At(rv) = requested
            && opts.continue_token.as_deref().is_none_or(str::is_empty)
        {
            // Served by the watch cache unless etcd reads it (Exact, or a limit).
            let from_cache = opts.resource_version_match != Some(ResourceVersionMatch::Exact)
                && opts.limit.is_none();
            self.wait_for_rv(from_cache.then_some(rt), rv)?;
        }
        let source = self
            .shared
            .state
            .lock()
            .list_source(rt, namespace, opts, requested)?;
        // resourceVersion=0 is served from the watch cache, which ignores limit in v1.28.
        let limit = if requested == read::RequestedRv::Any {
            None
        } else {
            opts.limit
        };
        match source {
            read::ListSource::Kept(items, rv, after) => Ok(read::page(
                &items,
                namespace,
                after.as_deref(),
                &filter,
                limit,
                rv,
            )),
            read::ListSource::Current(map, rv) => {
                let items = read::items_in(&map, namespace);
                let page = read::page(&items, namespace, None, &filter, limit, rv);
                if page.continue_token.is_some() {
                    let key = state::SnapshotKey {
                        storage: storage_key::storage_key(rt),
                        namespace: namespace.map(str::to_string),
                        rv,
                    };
                    self.shared.state.lock().keep_snapshot(key, Arc::new(items));
                }
                Ok(page)
            }
        }
    }

    /// Stores a complete object as given, without defaulting, validation or managedFields
    /// changes: what a controller plus kubelet would have produced (for seeding and churn).
    /// Only `metadata.resourceVersion` is stamped. 404 if the namespace is missing, 409 if
    /// the object exists.
    pub fn insert_as_is(&self, rt: &ResourceType, obj: Value) -> Result<Arc<StoredObject>> {
        self.shared
            .state
            .lock()
            .insert_as_is(rt, obj, &self.shared.config)
    }

    /// Creates `obj` as a POST does: defaulting, validation, managedFields, uid and timestamps.
    /// 409 AlreadyExists, 422 Invalid, 404 if the namespace is missing.
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<StoredObject>> {
        self.shared
            .state
            .lock()
            .create(rt, scope(rt, namespace), obj, opts, &self.shared.config)
    }

    /// Replaces an object (or its status or scale) as a PUT does. 409 Conflict on a stale
    /// `metadata.resourceVersion`, 404 if absent.
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        sub: Subresource,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<StoredObject>> {
        let updated = self.shared.state.lock().update(
            rt,
            scope(rt, namespace),
            name,
            sub,
            obj,
            opts,
            &self.shared.config,
            None,
        )?;
        match sub {
            Subresource::Scale => scale_object(rt, &updated),
            _ => Ok(updated),
        }
    }

    /// Applies a PATCH body of `patch_type` (including server-side apply). 400 or 422 for bad
    /// bodies, 409 for apply conflicts without `force`, 404 if absent (except apply, which creates).
    #[allow(clippy::too_many_arguments)] // the contract mirrors a PATCH request's parts
    pub fn patch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        sub: Subresource,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
    ) -> Result<Arc<StoredObject>> {
        let patched = self.shared.state.lock().patch(
            rt,
            scope(rt, namespace),
            name,
            sub,
            patch_type,
            body,
            opts,
            &self.shared.config,
        )?;
        match sub {
            Subresource::Scale => scale_object(rt, &patched),
            _ => Ok(patched),
        }
    }

    /// Deletes an object as a DELETE does: at once, or marked with a deletionTimestamp while a
    /// grace period or finalizers keep it (see [`DeleteOutcome`]).
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome> {
        self.shared
            .state
            .lock()
            .delete(rt, scope(rt, namespace), name, opts, &self.shared.config)
    }

    /// Deletes every object the selectors match; returns what was deleted or marked.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<DeleteOutcome>> {
        let listing = ListOptions {
            limit: None,
            continue_token: None,
            ..list.clone()
        };
        let page = self.list(rt, namespace, &listing)?;
        let mut outcomes = Vec::with_capacity(page.items.len());
        for object in page.items {
            match self.delete(rt, object.namespace(), object.name(), opts) {
                Ok(outcome) => outcomes.push(outcome),
                // Deleted by someone else in between: nothing left to do for it.
                Err(status) if status.code == 404 => {}
                Err(status) => return Err(status),
            }
        }
        Ok(outcomes)
    }

    /// Opens a watch in `namespace` (None: all), starting after `opts.resource_version` or
    /// with the current objects; 410 Expired when that version was compacted.
    pub fn watch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &WatchOptions,
    ) -> Result<Watch> {
        let namespace = scope(rt, namespace);
        let filter = selector::ObjectFilter::parse(
            rt,
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
        )?;
        let requested = read::parse_rv(opts.resource_version.as_deref())?;
        let send_initial = opts.send_initial_events == Some(true);
        if send_initial && opts.resource_version_match != Some(ResourceVersionMatch::NotOlderThan) {
            return Err(Status::send_initial_events_needs_not_older_than());
        }
        // v1.28's cacher waits for a resourceVersion only for a streaming list; a plain
        // watch from a future one is accepted and stays silent until the store gets there.
        if send_initial
            && let read::RequestedRv::At(rv) = requested
            && let Err(status) = self.wait_for_rv(Some(rt), rv)
        {
            return Ok(read::failed_watch(status));
        }
        let deadline = opts.timeout.map(|timeout| Instant::now() + timeout);
        self.shared.state.lock().open_watch(read::WatchStart {
            rt,
            namespace,
            filter,
            requested,
            send_initial_events: opts.send_initial_events,
            allow_bookmarks: opts.allow_bookmarks,
            deadline,
            buffer: self.shared.config.watch_buffer,
        })
    }

    /// Fault: compact etcd at the current resourceVersion and empty every watch cache
    /// window, so that any list, continue or watch from before now gets 410 Expired.
    pub fn compact(&self) {
        self.shared.state.lock().compact();
    }

    /// Fault: close every open watch now (clients see the stream end).
    pub fn drop_watches(&self) {
        self.shared.state.lock().drop_watches();
    }

    /// Sends a BOOKMARK now to every open watch that allows bookmarks (tests, faults).
    pub fn send_bookmarks_now(&self) {
        self.shared.state.lock().send_bookmarks_now();
    }

    /// Number of open watches on a resource (plural), for counters and tests.
    pub fn open_watches(&self, plural: &str) -> usize {
        let state = self.shared.state.lock();
        state
            .storages
            .iter()
            .filter(|(key, _)| key.rsplit('/').next() == Some(plural))
            .map(|(_, s)| s.watchers.iter().filter(|w| !w.tx.is_closed()).count())
            .sum()
    }

    /// The 422 a real server answers to `sendInitialEvents` on a plain list (the HTTP side
    /// calls it when a list request carries that parameter).
    pub fn reject_send_initial_events_on_list(opts: &ListOptions) -> Status {
        Status::send_initial_events_on_list(
            opts.resource_version_match.is_some()
                && opts.resource_version.as_deref().is_none_or(str::is_empty),
        )
    }

    /// Waits (without the lock) until the store reaches `rv`, at most `too_large_rv_wait`:
    /// the watch cache of `cache` (its resource's own last write, as v1.28's
    /// `waitUntilFreshAndBlock` compares), or etcd's revision when `cache` is `None`.
    fn wait_for_rv(&self, cache: Option<&ResourceType>, rv: u64) -> Result<()> {
        let deadline = Instant::now() + self.shared.config.too_large_rv_wait;
        loop {
            let current = {
                let state = self.shared.state.lock();
                match cache {
                    Some(rt) => state.storage(rt)?.last_write,
                    None => state.rv,
                }
            };
            if current >= rv {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Status::too_large_resource_version(rv, current));
            }
            std::thread::sleep(RV_POLL);
        }
    }
}

/// Cluster-scoped resources ignore a namespace given with them.
fn scope<'a>(rt: &ResourceType, namespace: Option<&'a str>) -> Option<&'a str> {
    if rt.namespaced {
        namespace.filter(|ns| !ns.is_empty())
    } else {
        None
    }
}

fn scale_object(rt: &ResourceType, object: &StoredObject) -> Result<Arc<StoredObject>> {
    let scale = writes::scale_of(rt, &object.value())?;
    Ok(Arc::new(StoredObject::new(&scale, object.resource_version)))
}

/// The store's background thread: the cacher's bookmark timer, etcd's compactor and the
/// expiry of list snapshots. It holds only a weak reference, so it ends once the last
/// `ClusterStore` clone is dropped.
fn spawn_housekeeping(shared: Weak<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("sim-store-housekeeping".into())
        .spawn(move || {
            let mut compactor = Compactor::default();
            let mut next_bookmarks = Instant::now();
            loop {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let config = &shared.config;
                let bookmark_timer = BOOKMARK_TIMER.min(config.bookmark_interval);
                let now = Instant::now();
                {
                    let mut state = shared.state.lock();
                    if now >= next_bookmarks {
                        state.dispatch_bookmarks(now);
                        let jitter: f64 = rand::random();
                        next_bookmarks = now + bookmark_timer.mul_f64(1.0 + 0.25 * jitter);
                    }
                    if let Some(rv) = compactor.due(now, config.compaction_interval, state.rv) {
                        state.compact_etcd(rv);
                    }
                    state.expire_snapshots(config.snapshot_ttl);
                }
                let tick = HOUSEKEEPING_TICK
                    .min(bookmark_timer)
                    .min(config.compaction_interval / 2)
                    .max(Duration::from_millis(1));
                drop(shared);
                std::thread::sleep(tick);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the store's housekeeping thread: no bookmarks, no compaction");
    }
}

/// kube-apiserver's etcd `compactor`: every interval it compacts to the revision it saw at
/// the previous run (the first run only records one).
#[derive(Default)]
struct Compactor {
    last_run: Option<Instant>,
    seen: Option<u64>,
}

impl Compactor {
    /// The revision to compact to now, if a run is due; `current` is the store's rv.
    fn due(&mut self, now: Instant, interval: Duration, current: u64) -> Option<u64> {
        let last_run = *self.last_run.get_or_insert(now);
        if now.saturating_duration_since(last_run) < interval {
            return None;
        }
        self.last_run = Some(now);
        self.seen.replace(current)
    }
}

#[cfg(test)]
mod fast_patch_tests;
#[cfg(test)]
mod partial_object_tests;
#[cfg(test)]
mod tests;
