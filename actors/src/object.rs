//! What a pipeline can cache: any kube resource, typed (k8s-openapi types,
//! `#[derive(CustomResource)]` types) or dynamic ([`kube::api::DynamicObject`]).

use std::fmt::Debug;

/// A kube resource an informer can cache and share between threads. Implemented for every
/// type that qualifies; never implement it yourself.
pub trait CacheObject: kube::Resource + Clone + Debug + Send + Sync + 'static {}

impl<T> CacheObject for T where T: kube::Resource + Clone + Debug + Send + Sync + 'static {}
