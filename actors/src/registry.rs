//! The pipeline registry: one per process, it hands out shared informers keyed by *who*
//! watches *what* — client-go's `SharedInformerFactory` dedup lifted across clusters.
//!
//! # Contract
//! - **Key.** (cluster identity, resource, Rust type, namespace, label selector, field
//!   selector, transform). The identity is an opaque [`ClusterKey`] the caller derives from
//!   the server URL and the credential (never the secret itself), so two configured clusters
//!   that reach the same API server as the same user share pipelines. A custom transform is
//!   keyed by its `Arc`: the same closure shares, a different one does not.
//! - **Attach.** A request for a running key gets a handle on that pipeline: no new list,
//!   no new watch.
//! - **Filtered views** (beyond client-go). A request with a namespace and/or a label
//!   selector is served from a running pipeline of the same key *without* them (the
//!   cluster-wide informer) through a [`View`]: its events and reads are filtered as the
//!   server would filter them (an update that moves an object into the selector is an add,
//!   out of it a delete). Only when no such pipeline runs is a narrower watch opened.
//! - **Reference counting.** Every [`InformerHandle`] (clones share one reference) and every
//!   handler added through one holds the pipeline. When the last goes — the handle dropped,
//!   the handler removed with [`InformerHandle::remove_handler`] — the pipeline stops and
//!   its watch is closed at the server. A view holds the pipeline it reads.
//! - Pipelines start when created; handlers added later get the cache replayed first.
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

mod label_selector;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject};
use kube::core::Selector;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

pub use label_selector::LabelSelectorError;

use crate::event::{Event, EventHandler};
use crate::ids::ClusterId;
use crate::informer::Informer;
use crate::informer_factory::{FactoryOptions, InformerFactory, ListScope, resource_name};
use crate::listener::{EventMap, HandlerOptions, HandlerStatus};
use crate::object::CacheObject;
use crate::processor::HandlerId;
use crate::store::NAMESPACE_INDEX;
use crate::transform::Transform;

/// Who a pipeline talks to and as whom, as an opaque string (the runtime builds it from the
/// server URL and a credential fingerprint). Equal keys share pipelines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterKey(Arc<str>);

impl ClusterKey {
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

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
    pub identity: ClusterKey,
    pub client: kube::Client,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Resync of handlers that set none.
    pub default_resync: Option<Duration>,
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
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn label_selector(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

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
            .finish_non_exhaustive()
    }
}

/// A request the registry cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cluster {cluster}, {resource}: {source}")]
    LabelSelector {
        cluster: ClusterId,
        resource: String,
        #[source]
        source: LabelSelectorError,
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
    pub identity: ClusterKey,
    /// `v1/pods`.
    pub resource: String,
    type_id: TypeId,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    transform: TransformKey,
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

struct Entry {
    informer: Box<dyn Any + Send + Sync>,
    stop: Box<dyn Fn() + Send + Sync>,
    /// Handles (one per acquisition, shared by clones) plus handlers.
    refs: usize,
    handler_leases: Arc<Mutex<HashMap<HandlerId, Lease>>>,
}

type State = Mutex<HashMap<PipelineKey, Entry>>;

/// One reference on a pipeline; the last one dropped stops it.
struct Lease {
    state: Weak<State>,
    key: PipelineKey,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let stopped = {
            let mut pipelines = state.lock();
            let Some(entry) = pipelines.get_mut(&self.key) else {
                return;
            };
            entry.refs -= 1;
            if entry.refs > 0 {
                return;
            }
            pipelines.remove(&self.key)
        };
        if let Some(entry) = stopped {
            tracing::debug!(key = ?self.key, "last reference gone; stopping the pipeline");
            (entry.stop)();
        }
    }
}

/// The process's shared pipelines. Cheap to clone; clones share one registry.
#[derive(Clone, Default)]
pub struct Registry {
    state: Arc<State>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("pipelines", &self.len())
            .finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pipelines running now.
    pub fn len(&self) -> usize {
        self.state.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of the running pipelines (diagnostics, tests).
    pub fn keys(&self) -> Vec<PipelineKey> {
        self.state.lock().keys().cloned().collect()
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
        let key = self.key_for::<K>(request, &resource, &transform);
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
        }
    }

    fn acquire<K: CacheObject>(
        &self,
        request: &PipelineRequest,
        key: PipelineKey,
        create: impl FnOnce(&InformerFactory) -> Informer<K>,
    ) -> Result<InformerHandle<K>, RegistryError> {
        let view = match (&key.namespace, &key.label_selector) {
            (None, None) => None,
            (namespace, selector) => {
                let selector = match selector {
                    Some(text) => label_selector::parse(text).map_err(|source| {
                        RegistryError::LabelSelector {
                            cluster: request.cluster.clone(),
                            resource: key.resource.clone(),
                            source,
                        }
                    })?,
                    None => Selector::default(),
                };
                Some(Arc::new(View {
                    namespace: namespace.clone(),
                    selector,
                }))
            }
        };
        let mut pipelines = self.state.lock();
        if let Some(handle) = self.attach(&mut pipelines, &key, None) {
            return Ok(handle);
        }
        if let Some(view) = view {
            let widest = key.widest();
            if let Some(handle) = self.attach(&mut pipelines, &widest, Some(view)) {
                tracing::debug!(?key, "served from the cluster-wide pipeline through a view");
                return Ok(handle);
            }
        }
        let factory = InformerFactory::new(
            request.client.clone(),
            request.cluster.clone(),
            FactoryOptions {
                namespace: key.namespace.clone(),
                label_selector: key.label_selector.clone(),
                field_selector: key.field_selector.clone(),
                default_resync: request.default_resync,
                ..FactoryOptions::default()
            },
        );
        let informer = create(&factory);
        informer.start();
        tracing::debug!(?key, "started a pipeline");
        let stopper = informer.clone();
        let handler_leases = Arc::new(Mutex::new(HashMap::new()));
        pipelines.insert(
            key.clone(),
            Entry {
                informer: Box::new(informer.clone()),
                stop: Box::new(move || stopper.stop()),
                refs: 1,
                handler_leases: handler_leases.clone(),
            },
        );
        Ok(InformerHandle {
            informer,
            view: None,
            key: key.clone(),
            lease: Arc::new(self.lease(key)),
            handler_leases,
        })
    }

    /// A new reference on a running pipeline, if `key` runs with informers of type `K`.
    fn attach<K: CacheObject>(
        &self,
        pipelines: &mut HashMap<PipelineKey, Entry>,
        key: &PipelineKey,
        view: Option<Arc<View>>,
    ) -> Option<InformerHandle<K>> {
        let entry = pipelines.get_mut(key)?;
        let informer = entry.informer.downcast_ref::<Informer<K>>()?.clone();
        entry.refs += 1;
        Some(InformerHandle {
            informer,
            view,
            key: key.clone(),
            lease: Arc::new(self.lease(key.clone())),
            handler_leases: entry.handler_leases.clone(),
        })
    }

    fn lease(&self, key: PipelineKey) -> Lease {
        Lease {
            state: Arc::downgrade(&self.state),
            key,
        }
    }
}

/// A namespace and label filter over a wider pipeline's events and cache.
#[derive(Debug, Clone)]
pub struct View {
    pub namespace: Option<String>,
    pub selector: Selector,
}

impl View {
    /// Whether `obj` is one this view shows.
    pub fn shows<K: kube::Resource>(&self, obj: &K) -> bool {
        let meta = obj.meta();
        let in_namespace = match &self.namespace {
            Some(ns) => meta.namespace.as_deref() == Some(ns.as_str()),
            None => true,
        };
        in_namespace && label_selector::matches(&self.selector, meta.labels.as_ref())
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

    pub fn cluster(&self) -> &ClusterId {
        self.informer.cluster()
    }

    /// Registers a handler (filtered for a view). It holds the pipeline until removed.
    pub fn add_handler(
        &self,
        handler: impl Into<EventHandler<K>>,
        options: HandlerOptions,
    ) -> HandlerId {
        self.add_mapped_handler(handler, options, None)
    }

    /// Registers a handler whose events (filtered first, for a view) pass through `map`,
    /// inside the handler's listener. It holds the pipeline until removed.
    pub fn add_mapped_handler(
        &self,
        handler: impl Into<EventHandler<K>>,
        options: HandlerOptions,
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
        if let Some(state) = self.lease.state.upgrade() {
            if let Some(entry) = state.lock().get_mut(&self.key) {
                entry.refs += 1;
            }
            let lease = Lease {
                state: self.lease.state.clone(),
                key: self.key.clone(),
            };
            self.handler_leases.lock().insert(id, lease);
        }
        id
    }

    /// Unregisters a handler and releases its hold on the pipeline.
    pub fn remove_handler(&self, id: HandlerId) -> bool {
        let removed = self.informer.remove_handler(id);
        let lease = self.handler_leases.lock().remove(&id);
        drop(lease);
        removed
    }

    pub fn handler_status(&self, id: HandlerId) -> Option<HandlerStatus> {
        self.informer.handler_status(id)
    }

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

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
