//! The pipeline registry: one per process, it hands out shared informers keyed by *who*
//! watches *what* — client-go's `SharedInformerFactory` dedup lifted across clusters.
//!
//! # Contract
//! - **Key.** (cluster identity, resource, Rust type, namespace, label selector, field
//!   selector, transform, cache mode). The identity is an opaque [`ClusterKey`] the caller derives from
//!   the server URL and the credential (never the secret itself), so two configured clusters
//!   that reach the same API server as the same user share pipelines. A custom transform is
//!   keyed by its `Arc`: the same closure shares, a different one does not.
//! - **Attach.** A request for a running key gets a handle on that pipeline: no new list,
//!   no new watch.
//! - **Filtered views** (beyond client-go). A request with a namespace, a label selector
//!   and/or a field selector on `metadata.name`/`metadata.namespace` is served from a
//!   running pipeline of the same key *without* them (the cluster-wide informer) through a
//!   [`View`]: its events and reads are filtered as the server would filter them (one
//!   [`selector`](crate::selector) grammar; an update that moves an object into the selector
//!   is an add, out of it a delete). A field selector on any other field cannot be evaluated
//!   locally: such a request views the pipeline with the same field selector, or opens its
//!   own narrow watch. Selectors are read first, with the server's grammar (so a selector
//!   the server takes never fails here, and one it refuses fails whatever runs); then the
//!   view-or-narrow decision is made, in one place (`view_candidates`).
//! - **Reference counting.** Every [`InformerHandle`] (clones share one reference) and every
//!   handler added through one holds the pipeline. When the last goes — the handle dropped,
//!   the handler removed with [`InformerHandle::remove_handler`] — the pipeline stops and
//!   its watch is closed at the server. A view holds the pipeline it reads.
//! - Pipelines start when created; handlers added later get the cache replayed first.
//! - **Cache mode.** A [`CacheMode::Metadata`] request (or one for a `PartialObjectMeta<K>`,
//!   always metadata) starts a metadata-only pipeline ([`crate::metadata_only`]); a type that
//!   cannot hold a `PartialObjectMetadata` is refused with [`RegistryError::NotMetadata`].
//!
//! # The registry actor
//! The pipeline table has one owner, the `PipelineTable` actor (`registry/table.rs`) on the registry's own
//! arbiter: it attaches, starts, counts references and stops pipelines, one message at a
//! time. Releases are asynchronous (`do_send` from a dropped handle or a removed handler);
//! an acquisition waits for the actor's answer (the caller's thread blocks for the few
//! microseconds an attach takes, or for a new pipeline's actors to be started; the table
//! runs on its own thread, so this never waits on the caller's own arbiter). `len` and
//! `keys` read a snapshot the actor publishes after every change, without a message. The
//! actor and its thread stop once the registry and every handle are gone.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), panoptes_actors::registry::RegistryError> {
//! use k8s_openapi::api::core::v1::Pod;
//! use panoptes_actors::registry::{ClusterKey, PipelineRequest, Registry};
//! use panoptes_actors::{Transform, ids::ClusterId};
//!
//! let registry = Registry::new();
//! let request = PipelineRequest::new(ClusterId::new("east"), ClusterKey::new("https://10.0.0.1:6443#ab12"), client);
//! let all_pods = registry.informer::<Pod>(&request, Transform::default())?;
//! // Same key: attaches; narrower: a view over `all_pods`' watch.
//! let again = registry.informer::<Pod>(&request, Transform::default())?;
//! let in_prod = registry.informer::<Pod>(&request.clone().namespace("prod"), Transform::default())?;
//! assert_eq!(registry.len(), 1);
//! # drop((all_pods, again, in_prod)); Ok(()) }
//! ```

mod table;

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use kube::api::{ApiResource, DynamicObject};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;

use crate::cache_mode::CacheMode;
use crate::event::{Event, EventHandler};
use crate::event_stream::{EventStream, StreamHooks};
use crate::ids::ClusterId;
use crate::informer::Informer;
use crate::informer_factory::{FactoryOptions, InformerFactory, ListScope, resource_name};
use crate::list_gate::ListGate;
use crate::listener::{EventMap, HandlerOptions, HandlerStatus};
use crate::object::CacheObject;
use crate::processor::HandlerId;
use crate::read_pacing::DEFAULT_READ_AHEAD;
use crate::selector::{
    FieldSelector, LabelSelector, METADATA_FIELDS, SelectorError, metadata_field,
};
use crate::store::{IndexError, NAMESPACE_INDEX};
use crate::transform::Transform;

/// Who a pipeline talks to and as whom, as an opaque string (the runtime builds it from the
/// server URL and a credential fingerprint). Equal keys share pipelines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterKey(Arc<str>);

impl ClusterKey {
    /// Wraps the key string; equal strings are the same cluster and user.
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// The key string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to watch where: the connection and the list options of one request.
#[derive(Clone)]
pub struct PipelineRequest {
    /// Names a *new* pipeline in logs, traces and events; an attached request reuses the
    /// running pipeline's name (relabel with [`InformerHandle::add_mapped_handler`] if that
    /// matters).
    pub cluster: ClusterId,
    /// Who the pipeline talks to and as whom; equal identities share pipelines.
    pub identity: ClusterKey,
    /// The client lists and watches go through (only used when a new pipeline starts).
    pub client: kube::Client,
    /// Watch one namespace; `None` watches all.
    pub namespace: Option<String>,
    /// `labelSelector`, e.g. `app=web`; checked before anything starts.
    pub label_selector: Option<String>,
    /// `fieldSelector`, e.g. `status.phase=Running`; checked before anything starts.
    pub field_selector: Option<String>,
    /// Resync of handlers that set none.
    pub default_resync: Option<Duration>,
    /// How the pipeline caches its objects; part of the pipeline's key.
    pub cache: CacheMode,
}

impl PipelineRequest {
    /// A cluster-wide request without selectors.
    pub fn new(cluster: ClusterId, identity: ClusterKey, client: kube::Client) -> Self {
        Self {
            cluster,
            identity,
            client,
            namespace: None,
            label_selector: None,
            field_selector: None,
            default_resync: None,
            cache: CacheMode::Typed,
        }
    }

    /// Keeps the cache as `mode` says (see [`CacheMode`]).
    pub fn cache(mut self, mode: CacheMode) -> Self {
        self.cache = mode;
        self
    }

    /// Watches only `namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Watches only objects whose labels match `selector` (the API server's grammar).
    pub fn label_selector(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// Watches only objects whose fields match `selector` (the API server's grammar).
    pub fn field_selector(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }
}

impl fmt::Debug for PipelineRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineRequest")
            .field("cluster", &self.cluster)
            .field("identity", &self.identity)
            .field("namespace", &self.namespace)
            .field("label_selector", &self.label_selector)
            .field("field_selector", &self.field_selector)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// A request the registry cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cluster {cluster}, {resource}: {source}")]
    /// A selector the API server would refuse (with its own words): failing here gives the
    /// same answer whether or not a wider pipeline runs, instead of a list retried forever.
    Selector {
        /// The request's cluster.
        cluster: ClusterId,
        /// The request's resource (`v1/pods`).
        resource: String,
        /// What the server would have said.
        #[source]
        source: SelectorError,
    },
    /// A metadata-only pipeline was asked for a type that cannot hold a
    /// `PartialObjectMetadata` (e.g. `Pod`): ask for `PartialObjectMeta<Pod>`
    /// ([`crate::MetadataObject`]) or `DynamicObject` instead.
    #[error(
        "cluster {cluster}, {resource}: cache = \"metadata\" needs a type that holds a \
         PartialObjectMetadata (PartialObjectMeta<K> or DynamicObject), not {type_name}"
    )]
    NotMetadata {
        /// The request's cluster.
        cluster: ClusterId,
        /// The request's resource (`v1/pods`).
        resource: String,
        /// The Rust type asked for.
        type_name: &'static str,
    },
    /// The registry's actor is gone (its actix system stopped).
    #[error("cluster {cluster}, {resource}: the pipeline registry is stopped")]
    Stopped {
        /// The request's cluster.
        cluster: ClusterId,
        /// The request's resource (`v1/pods`).
        resource: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TransformKey {
    Keep,
    DropManagedFields,
    /// The address of the closure's `Arc`.
    Custom(usize),
}

impl TransformKey {
    fn of<K>(transform: &Transform<K>) -> Self {
        match transform {
            Transform::Keep => Self::Keep,
            Transform::DropManagedFields => Self::DropManagedFields,
            Transform::Custom(f) => Self::Custom(Arc::as_ptr(f) as *const () as usize),
        }
    }
}

/// Identifies one pipeline in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The cluster and user.
    pub identity: ClusterKey,
    /// `v1/pods`.
    pub resource: String,
    type_id: TypeId,
    /// The watched namespace; `None` for all.
    pub namespace: Option<String>,
    /// The pipeline's `labelSelector`, normalised (equivalent selectors compare equal).
    pub label_selector: Option<String>,
    /// The pipeline's `fieldSelector`, normalised.
    pub field_selector: Option<String>,
    transform: TransformKey,
    /// How the pipeline caches (a metadata pipeline and a typed one never share).
    pub cache: CacheMode,
}

impl PipelineKey {
    /// The same pipeline without namespace and label selector: the one a view reads.
    fn widest(&self) -> Self {
        Self {
            namespace: None,
            label_selector: None,
            ..self.clone()
        }
    }
}

/// A pipeline's informer, type-erased (an `Informer<K>`).
type SharedInformer = Arc<dyn Any + Send + Sync>;

/// The leases of the handlers added through any handle on one pipeline.
type HandlerLeases = Arc<Mutex<HashMap<HandlerId, Lease>>>;

/// Builds and starts a new pipeline; returns its informer and how to stop it.
type CreatePipeline = Box<dyn FnOnce() -> (SharedInformer, Box<dyn Fn() + Send>) + Send>;

/// Asks the table for a pipeline: `key` if it runs, else the first of `views` whose wider
/// pipeline runs (read through its view), else a new one made by `create`. The answer goes to `reply`. Sent by [`Registry`]
/// with `do_send`; the caller waits on `reply`.
struct Acquire {
    key: PipelineKey,
    views: Vec<(PipelineKey, Arc<View>)>,
    create: CreatePipeline,
    reply: std::sync::mpsc::SyncSender<Acquired>,
}

impl Message for Acquire {
    type Result = ();
}

/// What an acquisition got (with one reference counted for it).
struct Acquired {
    /// The pipeline read: `key`, or a wider one read through `view`.
    key: PipelineKey,
    view: Option<Arc<View>>,
    informer: SharedInformer,
    handler_leases: HandlerLeases,
}

/// One more reference on a running pipeline (a handler added). Sent by [`InformerHandle`]
/// with `do_send`.
#[derive(Message)]
#[rtype(result = "()")]
struct Retain(PipelineKey);

/// One reference fewer; the last stops the pipeline. Sent by a dropped [`Lease`] with
/// `do_send`.
#[derive(Message)]
#[rtype(result = "()")]
struct Release(PipelineKey);

/// Stop every pipeline and the registry's actor (and its thread). Sent by
/// [`Registry::shutdown`] with `do_send`.
#[derive(Message)]
#[rtype(result = "()")]
struct Shutdown;

/// One reference on a pipeline; the last one dropped stops it.
struct Lease {
    table: Addr<table::PipelineTable>,
    key: PipelineKey,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.table.do_send(Release(self.key.clone()));
    }
}

/// The process's shared pipelines: a handle on the registry actor. Cheap to clone; clones
/// share one registry. Needs a running actix `System`.
#[derive(Clone)]
pub struct Registry {
    table: Addr<table::PipelineTable>,
    /// The keys of the running pipelines, as the actor last published them.
    running: Arc<RwLock<HashSet<PipelineKey>>>,
    /// Given to every pipeline created from now on (see [`Self::limit_concurrent_lists`]).
    list_gate: Arc<RwLock<Option<ListGate>>>,
    /// Given to every pipeline created from now on (see [`Self::set_read_ahead`]).
    read_ahead: Arc<AtomicUsize>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("pipelines", &self.len())
            .finish()
    }
}

impl Registry {
    /// Starts the registry's actor on its own arbiter.
    pub fn new() -> Self {
        let running = Arc::new(RwLock::new(HashSet::new()));
        let published = running.clone();
        let table = table::PipelineTable::start_in_arbiter(&Arbiter::new().handle(), move |_| {
            table::PipelineTable::new(published)
        });
        Self {
            table,
            running,
            list_gate: Arc::default(),
            read_ahead: Arc::new(AtomicUsize::new(DEFAULT_READ_AHEAD)),
        }
    }

    /// Lets at most `limit` of the lists of pipelines created from now on gather at once
    /// (`None`: no limit, the default); see [`crate::list_gate`]. Pipelines already running
    /// keep the gate they started with.
    pub fn limit_concurrent_lists(&self, limit: Option<usize>) {
        *self.list_gate.write() = limit.map(ListGate::new);
    }

    /// How far behind every handler of a pipeline created from now on may be before its
    /// watch waits ([`crate::read_pacing`]; `0`: never). Default [`DEFAULT_READ_AHEAD`].
    pub fn set_read_ahead(&self, events: usize) {
        self.read_ahead.store(events, Ordering::Relaxed);
    }

    /// The gate of the lists of new pipelines, if any.
    pub fn list_gate(&self) -> Option<ListGate> {
        self.list_gate.read().clone()
    }

    /// Stops every pipeline and the registry's own actor and thread (a program's clean
    /// stop). Asynchronous: [`is_empty`](Self::is_empty) turns true once it is done. Later
    /// requests fail with [`RegistryError::Stopped`]; handles still held read their caches.
    pub fn shutdown(&self) {
        self.table.do_send(Shutdown);
    }

    /// Pipelines running now.
    pub fn len(&self) -> usize {
        self.running.read().len()
    }

    /// No pipeline runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of the running pipelines (diagnostics, tests).
    pub fn keys(&self) -> Vec<PipelineKey> {
        self.running.read().iter().cloned().collect()
    }

    /// A handle on the shared informer for `K`: attached, a view, or newly started.
    pub fn informer<K>(
        &self,
        request: &PipelineRequest,
        transform: Transform<K>,
    ) -> Result<InformerHandle<K>, RegistryError>
    where
        K: CacheObject + DeserializeOwned,
        K::DynamicType: Default + Clone + Send + Sync,
        K::Scope: ListScope,
    {
        let resource = resource_name::<K>(&Default::default());
        let mut key = self.key_for::<K>(request, &resource, &transform);
        if K::metadata_api() {
            key.cache = CacheMode::Metadata;
        }
        check_cache_type::<K>(request, &key)?;
        self.acquire(request, key, move |factory| {
            factory.set_transform(transform);
            factory.informer::<K>()
        })
    }

    /// A handle on the shared informer for a resource known at run time (the default
    /// transform, dropping managed fields).
    pub fn dynamic_informer(
        &self,
        request: &PipelineRequest,
        resource: &ApiResource,
    ) -> Result<InformerHandle<DynamicObject>, RegistryError> {
        let name = resource_name::<DynamicObject>(resource);
        let key = self.key_for::<DynamicObject>(request, &name, &Transform::default());
        check_cache_type::<DynamicObject>(request, &key)?;
        let resource = resource.clone();
        self.acquire(request, key, move |factory| {
            factory.dynamic_informer(&resource)
        })
    }

    fn key_for<K: 'static>(
        &self,
        request: &PipelineRequest,
        resource: &str,
        transform: &Transform<K>,
    ) -> PipelineKey {
        PipelineKey {
            identity: request.identity.clone(),
            resource: resource.to_string(),
            type_id: TypeId::of::<K>(),
            namespace: request.namespace.clone().filter(|ns| !ns.is_empty()),
            label_selector: request.label_selector.clone().filter(|s| !s.is_empty()),
            field_selector: request.field_selector.clone().filter(|s| !s.is_empty()),
            transform: TransformKey::of(transform),
            cache: request.cache,
        }
    }

    fn acquire<K: CacheObject>(
        &self,
        request: &PipelineRequest,
        mut key: PipelineKey,
        create: impl FnOnce(&InformerFactory) -> Informer<K> + Send + 'static,
    ) -> Result<InformerHandle<K>, RegistryError> {
        let invalid = |source| RegistryError::Selector {
            cluster: request.cluster.clone(),
            resource: key.resource.clone(),
            source,
        };
        let labels = LabelSelector::parse(key.label_selector.as_deref().unwrap_or_default())
            .map_err(invalid)?;
        let fields = FieldSelector::parse(key.field_selector.as_deref().unwrap_or_default())
            .map_err(invalid)?;
        // Keyed (and sent) in canonical form: every spelling of a selector shares one watch.
        key.label_selector = Some(labels.to_string()).filter(|s| !s.is_empty());
        key.field_selector = Some(fields.to_string()).filter(|s| !s.is_empty());
        let views = view_candidates(&key, labels, fields);
        let (cluster, resource) = (request.cluster.clone(), key.resource.clone());
        let options = FactoryOptions {
            namespace: key.namespace.clone(),
            label_selector: key.label_selector.clone(),
            field_selector: key.field_selector.clone(),
            default_resync: request.default_resync,
            cache: key.cache,
            list_gate: self.list_gate(),
            read_ahead: Some(self.read_ahead.load(Ordering::Relaxed)),
            ..FactoryOptions::default()
        };
        let (client, factory_cluster) = (request.client.clone(), request.cluster.clone());
        let create: CreatePipeline = Box::new(move || {
            let factory = InformerFactory::new(client, factory_cluster, options);
            let informer = create(&factory);
            informer.start();
            let stopper = informer.clone();
            (Arc::new(informer), Box::new(move || stopper.stop()))
        });
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.table.do_send(Acquire {
            key,
            views,
            create,
            reply,
        });
        let stopped = || RegistryError::Stopped {
            cluster: cluster.clone(),
            resource: resource.clone(),
        };
        let acquired = answer.recv().map_err(|_| stopped())?;
        let lease = Arc::new(Lease {
            table: self.table.clone(),
            key: acquired.key.clone(),
        });
        let informer = acquired
            .informer
            .downcast_ref::<Informer<K>>()
            .expect("the key names the informer's type")
            .clone();
        Ok(InformerHandle {
            informer,
            view: acquired.view,
            key: acquired.key,
            lease,
            handler_leases: acquired.handler_leases,
        })
    }
}

/// Refuses a metadata-only pipeline of a type that would quarantine every object.
fn check_cache_type<K: DeserializeOwned>(
    request: &PipelineRequest,
    key: &PipelineKey,
) -> Result<(), RegistryError> {
    if key.cache == CacheMode::Metadata && !crate::metadata_only::can_hold_metadata::<K>() {
        return Err(RegistryError::NotMetadata {
            cluster: request.cluster.clone(),
            resource: key.resource.clone(),
            type_name: std::any::type_name::<K>(),
        });
    }
    Ok(())
}

/// The wider pipelines that could serve `key` through a [`View`], in order of preference:
/// the cluster-wide pipeline when the field selector reads only [`METADATA_FIELDS`], else the
/// one with the same field selector. Empty: a request that runs with none of them needs its
/// own narrow watch, with its selectors evaluated by the server.
fn view_candidates(
    key: &PipelineKey,
    labels: LabelSelector,
    fields: FieldSelector,
) -> Vec<(PipelineKey, Arc<View>)> {
    let narrowed = key.namespace.is_some() || key.label_selector.is_some();
    let fields_local = fields.fields().all(|f| METADATA_FIELDS.contains(&f));
    let unfiltered = PipelineKey {
        field_selector: None,
        ..key.widest()
    };
    let candidates = [
        (fields_local && (narrowed || !fields.is_empty())).then_some((unfiltered, fields)),
        (narrowed && key.field_selector.is_some())
            .then(|| (key.widest(), FieldSelector::default())),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|(wider, fields)| {
            let view = View {
                namespace: key.namespace.clone(),
                labels: labels.clone(),
                fields,
            };
            (wider, Arc::new(view))
        })
        .collect()
}

/// A namespace, label and field filter over a wider pipeline's events and cache.
#[derive(Debug, Clone)]
pub struct View {
    /// Shows only this namespace; `None` shows all.
    pub namespace: Option<String>,
    /// Shows only objects whose labels match.
    pub labels: LabelSelector,
    /// Reads only [`METADATA_FIELDS`] (or is empty).
    pub fields: FieldSelector,
}

impl View {
    /// Whether `obj` is one this view shows.
    pub fn shows<K: kube::Resource>(&self, obj: &K) -> bool {
        let meta = obj.meta();
        let in_namespace = match &self.namespace {
            Some(ns) => meta.namespace.as_deref() == Some(ns.as_str()),
            None => true,
        };
        static NO_LABELS: std::collections::BTreeMap<String, String> =
            std::collections::BTreeMap::new();
        in_namespace
            && self
                .labels
                .matches(meta.labels.as_ref().unwrap_or(&NO_LABELS))
            && self.fields.matches(|field| metadata_field(meta, field))
    }

    /// The event a watch with this namespace and selector would have produced, if any.
    pub fn filter<K: kube::Resource>(&self, event: Event<K>) -> Option<Event<K>> {
        match event {
            Event::Added { ref obj, .. } | Event::Deleted { ref obj, .. } => {
                self.shows(obj.as_ref()).then_some(event)
            }
            Event::Updated { cluster, old, new } => {
                match (self.shows(old.as_ref()), self.shows(new.as_ref())) {
                    (true, true) => Some(Event::Updated { cluster, old, new }),
                    (false, true) => Some(Event::Added {
                        cluster,
                        obj: new,
                        initial: false,
                    }),
                    (true, false) => Some(Event::Deleted {
                        cluster,
                        obj: new,
                        final_state_unknown: false,
                    }),
                    (false, false) => None,
                }
            }
        }
    }
}

/// A reference-counted handle on one shared pipeline, possibly through a [`View`]. Clones
/// share one reference; the pipeline stops when no handle and no handler holds it.
pub struct InformerHandle<K: CacheObject> {
    informer: Informer<K>,
    view: Option<Arc<View>>,
    key: PipelineKey,
    lease: Arc<Lease>,
    handler_leases: Arc<Mutex<HashMap<HandlerId, Lease>>>,
}

impl<K: CacheObject> Clone for InformerHandle<K> {
    fn clone(&self) -> Self {
        Self {
            informer: self.informer.clone(),
            view: self.view.clone(),
            key: self.key.clone(),
            lease: self.lease.clone(),
            handler_leases: self.handler_leases.clone(),
        }
    }
}

impl<K: CacheObject> InformerHandle<K> {
    /// The key of the pipeline this handle reads (for a view, the wider pipeline's).
    pub fn pipeline(&self) -> &PipelineKey {
        &self.key
    }

    /// The filter this handle applies, when it is a view over a wider pipeline.
    pub fn view(&self) -> Option<&View> {
        self.view.as_deref()
    }

    /// The shared informer itself, unfiltered (its cache may hold more than a view shows).
    pub fn informer(&self) -> &Informer<K> {
        &self.informer
    }

    /// The cluster of the request this handle was made for.
    pub fn cluster(&self) -> &ClusterId {
        self.informer.cluster()
    }

    /// Registers a handler (filtered for a view). It holds the pipeline until removed.
    pub fn add_handler(
        &self,
        handler: impl Into<EventHandler<K>>,
        options: HandlerOptions<K>,
    ) -> HandlerId {
        self.add_mapped_handler(handler, options, None)
    }

    /// Registers a handler whose events (filtered first, for a view) pass through `map`,
    /// inside the handler's listener. It holds the pipeline until removed.
    pub fn add_mapped_handler(
        &self,
        handler: impl Into<EventHandler<K>>,
        options: HandlerOptions<K>,
        map: Option<EventMap<K>>,
    ) -> HandlerId {
        let map: Option<EventMap<K>> = match (self.view.clone(), map) {
            (None, map) => map,
            (Some(view), None) => Some(Arc::new(move |event| view.filter(event))),
            (Some(view), Some(map)) => Some(Arc::new(move |event| {
                view.filter(event).and_then(|e| map(e))
            })),
        };
        let id = self.informer.add_mapped_handler(handler, options, map);
        self.lease.table.do_send(Retain(self.key.clone()));
        let lease = Lease {
            table: self.lease.table.clone(),
            key: self.key.clone(),
        };
        self.handler_leases.lock().insert(id, lease);
        id
    }

    /// The events this handle shows (filtered for a view) as a bounded stream; see
    /// [`EventStream`]. It holds the pipeline until dropped.
    pub fn stream(&self) -> EventStream<K> {
        self.stream_with(HandlerOptions::default())
    }

    /// [`stream`](Self::stream) with a handler's options (resync, coalescing, predicate).
    pub fn stream_with(&self, options: HandlerOptions<K>) -> EventStream<K> {
        EventStream::attach(|handler| {
            let id = self.add_handler(handler, options);
            let (handle, status) = (self.clone(), self.clone());
            StreamHooks {
                detach: Box::new(move || {
                    handle.remove_handler(id);
                }),
                backlog: Box::new(move || status.handler_status(id).map_or(0, |s| s.backlog)),
            }
        })
    }

    /// The cached objects this handle shows whose index `name` holds `value` (for a view,
    /// only those the view shows: a namespace view never answers with another namespace's
    /// objects).
    pub fn by_index(&self, name: &str, value: &str) -> Result<Vec<Arc<K>>, IndexError> {
        let found = self.informer.store().by_index(name, value)?;
        Ok(match self.view.as_deref() {
            None => found,
            Some(view) => found
                .into_iter()
                .filter(|obj| view.shows(obj.as_ref()))
                .collect(),
        })
    }

    /// Unregisters a handler and releases its hold on the pipeline.
    pub fn remove_handler(&self, id: HandlerId) -> bool {
        let removed = self.informer.remove_handler(id);
        let lease = self.handler_leases.lock().remove(&id);
        drop(lease);
        removed
    }

    /// The state of one of this handle's handlers; `None` for an unknown id.
    pub fn handler_status(&self, id: HandlerId) -> Option<HandlerStatus> {
        self.informer.handler_status(id)
    }

    /// The handler's event latency, reflector to handler return; `None` for unknown ids.
    pub fn handler_latency(&self, id: HandlerId) -> Option<crate::latency::LatencySnapshot> {
        self.informer.handler_latency(id)
    }

    /// The shared pipeline's cache has synced (its first complete list is in).
    pub fn has_synced(&self) -> bool {
        self.informer.has_synced()
    }

    /// Waits for the pipeline's first complete list, at most `timeout`.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        self.informer.wait_synced(timeout).await
    }

    /// The cached objects this handle shows.
    pub fn list(&self) -> Vec<Arc<K>> {
        let store = self.informer.store();
        match self.view.as_deref() {
            None => store.list(),
            Some(view) => {
                let candidates = match &view.namespace {
                    Some(ns) => store.by_index(NAMESPACE_INDEX, ns).unwrap_or_default(),
                    None => store.list(),
                };
                candidates
                    .into_iter()
                    .filter(|obj| view.shows(obj.as_ref()))
                    .collect()
            }
        }
    }

    /// The object `name` in `namespace`, if this handle shows it.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let obj = self.informer.lister().get(namespace, name)?;
        match self.view.as_deref() {
            Some(view) if !view.shows(obj.as_ref()) => None,
            _ => Some(obj),
        }
    }

    /// How many objects this handle shows.
    pub fn len(&self) -> usize {
        match self.view {
            None => self.informer.store().len(),
            Some(_) => self.list().len(),
        }
    }

    /// This handle shows no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
