//! Tiny fixtures shared by the unit tests.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::api::ObjectMeta;

use crate::ids::ClusterId;

/// A pod `ns/name` at resourceVersion `rv`.
pub fn pod(name: &str, rv: u64) -> Arc<Pod> {
    pod_on(name, rv, None)
}

/// A pod `ns/name` at `rv`, scheduled on `node`.
pub fn pod_on(name: &str, rv: u64, node: Option<&str>) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(rv.to_string()),
            labels: Some([("app".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec { node_name: node.map(Into::into), ..Default::default() }),
        ..Default::default()
    })
}

pub fn rv(pod: &Pod) -> u64 {
    pod.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub fn cluster() -> ClusterId {
    ClusterId::new("test")
}
