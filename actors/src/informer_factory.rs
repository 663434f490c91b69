//! client-go's `SharedInformerFactory` (`informers/factory.go`) for one cluster: hands out one
//! shared [`Informer`] per resource, so every part of a program that asks for pods gets the
//! same watch and the same cache.
//!
//! Options apply to every informer it makes (namespace, label/field selector — client-go's
//! `WithNamespace`, `WithTweakListOptions` — default and per-resource resync, managed fields,
//! streaming lists). `start` starts every informer requested so far (call it again after
//! requesting more, as in client-go); `wait_for_cache_sync` reports per resource.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) {
//! use std::time::Duration;
//! use k8s_openapi::api::core::v1::Pod;
//! use panoptes_actors::{FactoryOptions, HandlerOptions, InformerFactory, handler_fn, ids::ClusterId};
//!
//! let factory = InformerFactory::new(client, ClusterId::new("prod"), FactoryOptions::default());
//! let pods = factory.informer::<Pod>();
//! pods.add_handler(handler_fn(|ev| println!("{ev:?}")), HandlerOptions::default());
//! factory.start();
//! let synced = factory.wait_for_cache_sync(Duration::from_secs(30)).await;
//! assert!(synced.values().all(|ok| *ok));
//! let in_default = pods.lister().list(Some("default"), &Default::default());
//! # }
//! ```

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::{BoxFuture, FutureExt, join_all};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::{
    ClusterResourceScope, DynamicResourceScope, GroupVersion, GroupVersionKind,
    NamespaceResourceScope,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use crate::cache_mode::CacheMode;
use crate::ids::ClusterId;
use crate::informer::Informer;
use crate::list_gate::ListGate;
use crate::managed_fields::ManagedFields;
use crate::object::CacheObject;
use crate::read_pacing::{DEFAULT_READ_AHEAD, ReadPacing};
use crate::reflector::{Reflector, ReflectorConfig};
use crate::supervisor::{RunningReflector, StartSource};
use crate::transform::Transform;

/// Options shared by every informer of a factory.
#[derive(Debug, Clone, Default)]
pub struct FactoryOptions {
    /// Watch only this namespace (cluster-scoped resources ignore it).
    pub namespace: Option<String>,
    /// Label selector for every informer of this factory, e.g. `app=web,tier!=db`.
    pub label_selector: Option<String>,
    /// Field selector for every informer of this factory, e.g. `status.phase=Running`.
    pub field_selector: Option<String>,
    /// Resync period for handlers that set none.
    pub default_resync: Option<Duration>,
    /// Per resource (`v1/pods`), overriding `default_resync`.
    pub resync_per_resource: HashMap<String, Duration>,
    /// Keep `metadata.managedFields` in cached objects (dropped by default).
    pub keep_managed_fields: bool,
    /// List through `sendInitialEvents=true` watches (falls back when the server refuses).
    pub streaming_lists: bool,
    /// List page size (`limit`); the reflector's default when `None`.
    pub page_size: Option<u32>,
    /// How every informer of this factory caches its objects. `Metadata` lists and watches
    /// `PartialObjectMetadata` only, so the informers' types must hold one
    /// (`PartialObjectMeta<K>`, `DynamicObject`); `Compact` keeps JSON bytes, decoded on read.
    pub cache: CacheMode,
    /// Shared with every reflector of this factory (and of others given the same gate):
    /// at most its limit of lists gather at once. `None`: no limit.
    pub list_gate: Option<ListGate>,
    /// Events every handler of a pipeline may be behind before its watch waits
    /// ([`crate::read_pacing`]); `None`: [`DEFAULT_READ_AHEAD`], `Some(0)`: never wait.
    pub read_ahead: Option<usize>,
}

impl FactoryOptions {
    /// Sets the resync period of `K`'s informer.
    pub fn resync_for<K: kube::Resource>(mut self, period: Duration) -> Self
    where
        K::DynamicType: Default,
    {
        self.resync_per_resource
            .insert(resource_name::<K>(&Default::default()), period);
        self
    }
}

/// A failed dynamic informer request.
#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    /// Discovery failed or the server does not serve the resource.
    #[error("cannot discover {what} in cluster {cluster}")]
    Discovery {
        /// What was looked up (a kind or `group/version/plural`).
        what: String,
        /// The cluster asked.
        cluster: ClusterId,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// The group version is served but has no resource with that plural.
    #[error("cluster {cluster} serves no resource {plural:?} in {group_version}")]
    UnknownResource {
        /// The cluster asked.
        cluster: ClusterId,
        /// `v1` or `apps/v1`.
        group_version: String,
        /// The plural asked for.
        plural: String,
    },
}

/// `v1/pods`, `apps/v1/deployments`: how logs, traces and reports name a resource.
pub fn resource_name<K: kube::Resource>(dyntype: &K::DynamicType) -> String {
    format!("{}/{}", K::api_version(dyntype), K::plural(dyntype))
}

/// How to scope the `Api` of a resource by the kind of its scope.
pub trait ListScope {
    /// An `Api<K>` for `namespace` (ignored when the resource is cluster-scoped).
    fn api<K>(client: kube::Client, namespace: Option<&str>, dyntype: &K::DynamicType) -> Api<K>
    where
        K: kube::Resource<Scope = Self>;
}

impl ListScope for NamespaceResourceScope {
    fn api<K: kube::Resource<Scope = Self>>(
        client: kube::Client,
        ns: Option<&str>,
        dt: &K::DynamicType,
    ) -> Api<K> {
        let all = Api::all_with(client, dt);
        match ns {
            Some(ns) => all.constrain(ns),
            None => all,
        }
    }
}

impl ListScope for ClusterResourceScope {
    fn api<K: kube::Resource<Scope = Self>>(
        client: kube::Client,
        _ns: Option<&str>,
        dt: &K::DynamicType,
    ) -> Api<K> {
        Api::all_with(client, dt)
    }
}

impl ListScope for DynamicResourceScope {
    fn api<K: kube::Resource<Scope = Self>>(
        client: kube::Client,
        ns: Option<&str>,
        dt: &K::DynamicType,
    ) -> Api<K> {
        match ns {
            Some(ns) => Api::namespaced_with(client, ns, dt),
            None => Api::all_with(client, dt),
        }
    }
}

/// What the factory needs of every informer, whatever its type.
trait AnyInformer: Send + Sync {
    fn start(&self);
    fn stop(&self);
    fn has_synced(&self) -> bool;
    fn wait_synced(&self) -> BoxFuture<'static, ()>;
    fn as_any(&self) -> &dyn Any;
}

impl<K: CacheObject> AnyInformer for Informer<K> {
    fn start(&self) {
        Informer::start(self)
    }
    fn stop(&self) {
        Informer::stop(self)
    }
    fn has_synced(&self) -> bool {
        Informer::has_synced(self)
    }
    fn wait_synced(&self) -> BoxFuture<'static, ()> {
        let store = self.store();
        async move { store.wait_synced().await }.boxed()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Typed informers by type; dynamic ones by resource name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum InformerKey {
    Typed(TypeId),
    Dynamic(String),
}

struct Registered {
    resource: String,
    informer: Box<dyn AnyInformer>,
}

/// Shared informers for one cluster. Cheap to clone.
#[doc(alias = "SharedInformerFactory")]
#[derive(Clone)]
pub struct InformerFactory {
    client: kube::Client,
    cluster: ClusterId,
    options: Arc<FactoryOptions>,
    informers: Arc<Mutex<HashMap<InformerKey, Registered>>>,
    transforms: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>>,
}

impl InformerFactory {
    /// A factory for `cluster` reached through `client`; informers are started lazily, one per
    /// resource type, and shared by every caller asking for the same type.
    pub fn new(client: kube::Client, cluster: ClusterId, options: FactoryOptions) -> Self {
        Self {
            client,
            cluster,
            options: Arc::new(options),
            informers: Arc::default(),
            transforms: Arc::default(),
        }
    }

    /// The cluster this factory's informers watch.
    pub fn cluster(&self) -> &ClusterId {
        &self.cluster
    }

    /// Uses `transform` instead of the default for `K`'s informer; takes effect only if that
    /// informer does not exist yet (returns false otherwise).
    pub fn set_transform<K: CacheObject>(&self, transform: Transform<K>) -> bool {
        if self
            .informers
            .lock()
            .contains_key(&InformerKey::Typed(TypeId::of::<K>()))
        {
            return false;
        }
        self.transforms
            .lock()
            .insert(TypeId::of::<K>(), Box::new(transform));
        true
    }

    /// The shared informer for `K` (created on first request, started by [`start`](Self::start)).
    #[doc(alias = "InformerFor")]
    pub fn informer<K>(&self) -> Informer<K>
    where
        K: CacheObject + DeserializeOwned,
        K::DynamicType: Default + Clone + Send + Sync,
        K::Scope: ListScope,
    {
        let transform = self
            .transforms
            .lock()
            .remove(&TypeId::of::<K>())
            .and_then(|t| t.downcast::<Transform<K>>().ok().map(|t| *t));
        self.get_or_create(
            InformerKey::Typed(TypeId::of::<K>()),
            Default::default(),
            transform,
        )
    }

    /// The shared informer for a resource known only at run time.
    pub fn dynamic_informer(&self, resource: &ApiResource) -> Informer<DynamicObject> {
        let key = InformerKey::Dynamic(resource_name::<DynamicObject>(resource));
        self.get_or_create(key, resource.clone(), None)
    }

    /// The shared informer for group/version/kind, found by discovery.
    pub async fn dynamic_informer_for_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Informer<DynamicObject>, FactoryError> {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, _caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|source| FactoryError::Discovery {
                what: format!("{gvk:?}"),
                cluster: self.cluster.clone(),
                source,
            })?;
        Ok(self.dynamic_informer(&resource))
    }

    /// The shared informer for group/version/plural (`"apps", "v1", "deployments"`), found by
    /// discovery.
    pub async fn dynamic_informer_for_plural(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Informer<DynamicObject>, FactoryError> {
        let gv = GroupVersion::gv(group, version);
        let api_group = kube::discovery::pinned_group(&self.client, &gv)
            .await
            .map_err(|source| FactoryError::Discovery {
                what: gv.api_version(),
                cluster: self.cluster.clone(),
                source,
            })?;
        let resource = api_group
            .recommended_resources()
            .into_iter()
            .map(|(resource, _caps)| resource)
            .find(|resource| resource.plural == plural)
            .ok_or_else(|| FactoryError::UnknownResource {
                cluster: self.cluster.clone(),
                group_version: gv.api_version(),
                plural: plural.into(),
            })?;
        Ok(self.dynamic_informer(&resource))
    }

    fn get_or_create<K>(
        &self,
        key: InformerKey,
        dyntype: K::DynamicType,
        transform: Option<Transform<K>>,
    ) -> Informer<K>
    where
        K: CacheObject + DeserializeOwned,
        K::DynamicType: Clone + Send + Sync,
        K::Scope: ListScope,
    {
        let mut informers = self.informers.lock();
        if let Some(existing) = informers.get(&key)
            && let Some(informer) = existing.informer.as_any().downcast_ref::<Informer<K>>()
        {
            return informer.clone();
        }
        let resource = resource_name::<K>(&dyntype);
        let options = &self.options;
        let resync = options
            .resync_per_resource
            .get(&resource)
            .copied()
            .or(options.default_resync);
        let transform = transform.unwrap_or(if options.keep_managed_fields {
            Transform::Keep
        } else {
            Transform::DropManagedFields
        });
        let api = <K::Scope as ListScope>::api::<K>(
            self.client.clone(),
            options.namespace.as_deref(),
            &dyntype,
        );
        let mut config = ReflectorConfig {
            label_selector: options.label_selector.clone(),
            field_selector: options.field_selector.clone(),
            streaming_lists: options.streaming_lists,
            // The default transform would drop them after decoding; never decode them.
            managed_fields: match transform {
                Transform::DropManagedFields => ManagedFields::Drop,
                Transform::Keep | Transform::Custom(_) => ManagedFields::Keep,
            },
            // A `PartialObjectMeta<K>` can only ever hold metadata: never fetch more.
            metadata_only: options.cache == CacheMode::Metadata || K::metadata_api(),
            list_gate: options.list_gate.clone(),
            read_pacing: ReadPacing::new(options.read_ahead.unwrap_or(DEFAULT_READ_AHEAD)),
            ..ReflectorConfig::default()
        };
        if let Some(page_size) = options.page_size {
            config.page_size = page_size;
        }
        let (cluster, name) = (self.cluster.clone(), resource.clone());
        let shared = config.clone();
        let start: StartSource<K> = Arc::new(move |arbiter, sink, reports| {
            let (cluster, name, api, config) =
                (cluster.clone(), name.clone(), api.clone(), config.clone());
            let reflector = Reflector::start_in_arbiter(arbiter, move |_| {
                Reflector::new(cluster, name, api, config, sink, Some(reports))
            });
            RunningReflector {
                stop: reflector.clone().recipient(),
                inject: reflector.recipient(),
            }
        });
        let informer = Informer::build(
            self.cluster.clone(),
            &resource,
            transform,
            resync,
            options.cache,
            Some(start),
            &shared,
        );
        informers.insert(
            key,
            Registered {
                resource,
                informer: Box::new(informer.clone()),
            },
        );
        informer
    }

    /// Starts every informer requested so far that is not running (client-go's `Start`).
    pub fn start(&self) {
        for registered in self.informers.lock().values() {
            registered.informer.start();
        }
    }

    /// Stops every informer.
    pub fn shutdown(&self) {
        for registered in self.informers.lock().values() {
            registered.informer.stop();
        }
    }

    /// Waits until every informer has synced or `timeout` passed; reports per resource
    /// whether it synced (client-go's `WaitForCacheSync`).
    pub async fn wait_for_cache_sync(&self, timeout: Duration) -> BTreeMap<String, bool> {
        let waits: Vec<(String, BoxFuture<'static, ()>)> = self
            .informers
            .lock()
            .values()
            .map(|r| (r.resource.clone(), r.informer.wait_synced()))
            .collect();
        let deadline = tokio::time::Instant::now() + timeout;
        let results = join_all(waits.into_iter().map(|(resource, wait)| async move {
            (
                resource,
                tokio::time::timeout_at(deadline, wait).await.is_ok(),
            )
        }))
        .await;
        results.into_iter().collect()
    }

    /// Whether every informer has synced, per resource, now.
    pub fn synced(&self) -> BTreeMap<String, bool> {
        self.informers
            .lock()
            .values()
            .map(|r| (r.resource.clone(), r.informer.has_synced()))
            .collect()
    }
}
