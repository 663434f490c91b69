//! The in-memory state of one simulated cluster: what etcd plus the API server's registry
//! and watch cache hold for a real kube-apiserver.
//!
//! INTERFACE CONTRACT (written before the implementation, shared by the HTTP layer):
//! the public items below are what `crate::http` and the fault/churn code call. Their names
//! and signatures are fixed; their bodies and any private submodules are free.
//!
//! - One global resourceVersion counter per cluster (etcd revision), across all types.
//! - Objects are `serde_json::Value`s stored once as [`StoredObject`] with their serialized
//!   JSON cached, so lists and watches copy bytes instead of re-serializing.
//! - Every failure is a [`Status`] with the code, reason and message a real v1.28 server gives.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

/// A `metav1.Status` failure, exactly as a real API server words it.
#[derive(Debug, Clone, PartialEq)]
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

pub type Result<T> = std::result::Result<T, Status>;

impl Status {
    /// The Status object as JSON (`kind: Status`, `apiVersion: v1`, `status: Failure`).
    pub fn to_json(&self) -> Value {
        todo!()
    }
}

/// One served resource: built-in or from a CRD.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    /// Plural, lower case: "pods".
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// Has a `/status` subresource.
    pub status_subresource: bool,
    /// Has a `/scale` subresource (deployments, replicasets, CRDs that declare it).
    pub scale_subresource: bool,
}

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        todo!()
    }
}

/// A stored object and its cached serialized form.
#[derive(Debug)]
pub struct StoredObject {
    pub value: Value,
    /// `serde_json::to_vec(&value)`, computed once at write time.
    pub json: Bytes,
    /// The object's `metadata.resourceVersion` as a number.
    pub resource_version: u64,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
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
    pub grace_period_seconds: Option<i64>,
    /// "Foreground" | "Background" | "Orphan".
    pub propagation_policy: Option<String>,
    pub preconditions_uid: Option<String>,
    pub preconditions_resource_version: Option<String>,
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
    NotOlderThan,
    Exact,
}

/// The query of a list (and of the initial part of a watch).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Raw `labelSelector`; parse errors are 400 BadRequest with the real message.
    pub label_selector: Option<String>,
    /// Raw `fieldSelector`; unsupported fields are 400 BadRequest with the real message.
    pub field_selector: Option<String>,
    pub limit: Option<u64>,
    /// Raw `continue` token (base64url JSON `{"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}`).
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<ResourceVersionMatch>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
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
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// None or "" or "0": start with synthetic ADDED events for every current object.
    pub resource_version: Option<String>,
    pub resource_version_match: Option<ResourceVersionMatch>,
    pub allow_bookmarks: bool,
    /// `sendInitialEvents=true`: ADDED for all, then a BOOKMARK annotated
    /// `k8s.io/initial-events-end: "true"` (422 without resourceVersionMatch=NotOlderThan).
    pub send_initial_events: Option<bool>,
}

/// One event of a watch stream, as it goes on the wire (`{"type":..,"object":..}`).
#[derive(Debug, Clone)]
pub enum WatchEvent {
    Added(Arc<StoredObject>),
    Modified(Arc<StoredObject>),
    Deleted(Arc<StoredObject>),
    /// A BOOKMARK at this resourceVersion; `initial_events_end` adds the annotation.
    Bookmark { resource_version: u64, initial_events_end: bool },
    /// An ERROR event (e.g. 410 Expired "too old resource version: 5 (545)"); the stream ends after it.
    Error(Status),
}

/// An open watch. Dropping it unsubscribes.
pub struct Watch {
    /// Events in resourceVersion order. `None` means the server closed the watch
    /// (history compacted past it, `drop_watches`, the consumer fell too far behind, restart).
    pub events: tokio::sync::mpsc::Receiver<WatchEvent>,
}

/// Tuning of one cluster's store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Events kept per resource for watch resumes (the watch cache window); older → 410.
    pub history_per_resource: usize,
    /// Per-watch buffer; a watcher this far behind is closed, as the real server does.
    pub watch_buffer: usize,
    /// How long list snapshots (for continue tokens) are kept; older tokens → 410 Expired.
    pub snapshot_ttl: Duration,
    /// How often watches that allow bookmarks get a BOOKMARK (a real server: about 60 s).
    /// The store sends them through the watch's own channel, so a bookmark's resourceVersion
    /// never runs ahead of events already queued for that watch.
    pub bookmark_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            history_per_resource: 10_000,
            watch_buffer: 10_000,
            snapshot_ttl: Duration::from_secs(300),
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

/// One cluster's state. Cheap to clone (shared inside); every method is synchronous and
/// safe to call from any thread.
#[derive(Clone)]
pub struct ClusterStore {
    // implementation-defined
}

impl ClusterStore {
    /// A fresh cluster: built-in resources served; namespaces `default`, `kube-system`,
    /// `kube-public`, `kube-node-lease` exist; each namespace has a `default` ServiceAccount
    /// and a `kube-root-ca.crt` ConfigMap as the controller-manager would make.
    pub fn new(config: StoreConfig) -> Self {
        let _ = config;
        todo!()
    }

    /// Every served resource, CRD-defined ones included (for discovery).
    pub fn resources(&self) -> Vec<Arc<ResourceType>> {
        todo!()
    }

    /// The resource served at group/version/plural, if any.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        let _ = (group, version, plural);
        todo!()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        todo!()
    }

    pub fn get(&self, rt: &ResourceType, namespace: Option<&str>, name: &str, sub: Subresource) -> Result<Arc<StoredObject>> {
        let _ = (rt, namespace, name, sub);
        todo!()
    }

    pub fn list(&self, rt: &ResourceType, namespace: Option<&str>, opts: &ListOptions) -> Result<ListPage> {
        let _ = (rt, namespace, opts);
        todo!()
    }

    pub fn create(&self, rt: &ResourceType, namespace: Option<&str>, obj: Value, opts: &WriteOptions) -> Result<Arc<StoredObject>> {
        let _ = (rt, namespace, obj, opts);
        todo!()
    }

    pub fn update(&self, rt: &ResourceType, namespace: Option<&str>, name: &str, sub: Subresource, obj: Value, opts: &WriteOptions) -> Result<Arc<StoredObject>> {
        let _ = (rt, namespace, name, sub, obj, opts);
        todo!()
    }

    pub fn patch(&self, rt: &ResourceType, namespace: Option<&str>, name: &str, sub: Subresource, patch_type: PatchType, body: &[u8], opts: &WriteOptions) -> Result<Arc<StoredObject>> {
        let _ = (rt, namespace, name, sub, patch_type, body, opts);
        todo!()
    }

    pub fn delete(&self, rt: &ResourceType, namespace: Option<&str>, name: &str, opts: &DeleteOptions) -> Result<DeleteOutcome> {
        let _ = (rt, namespace, name, opts);
        todo!()
    }

    /// Deletes every object the selectors match; returns what was deleted or marked.
    pub fn delete_collection(&self, rt: &ResourceType, namespace: Option<&str>, list: &ListOptions, opts: &DeleteOptions) -> Result<Vec<DeleteOutcome>> {
        let _ = (rt, namespace, list, opts);
        todo!()
    }

    pub fn watch(&self, rt: &ResourceType, namespace: Option<&str>, opts: &WatchOptions) -> Result<Watch> {
        let _ = (rt, namespace, opts);
        todo!()
    }

    /// Fault: forget all watch history and list snapshots, so that any resume or continue
    /// from a resourceVersion before now gets 410 Expired.
    pub fn compact(&self) {
        todo!()
    }

    /// Fault: close every open watch now (clients see the stream end).
    pub fn drop_watches(&self) {
        todo!()
    }

    /// Sends a BOOKMARK now to every open watch that allows bookmarks (tests, faults).
    pub fn send_bookmarks_now(&self) {
        todo!()
    }

    /// Number of open watches on a resource (plural), for counters and tests.
    pub fn open_watches(&self, plural: &str) -> usize {
        let _ = plural;
        todo!()
    }
}
