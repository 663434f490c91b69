//! What a pipeline can cache: any kube resource, typed (k8s-openapi types,
//! `#[derive(CustomResource)]` types) or dynamic ([`kube::api::DynamicObject`]).
//!
//! Serde both ways is part of the contract: the reflector decodes objects, and a
//! [compact](crate::CacheMode::Compact) cache keeps them as JSON bytes and decodes on read.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A kube resource an informer can cache and share between threads. Implemented for every
/// type that qualifies; never implement it yourself.
pub trait CacheObject:
    kube::Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}

impl<T> CacheObject for T where
    T: kube::Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}
