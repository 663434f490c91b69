//! From a changed object to the keys a controller must reconcile: controller-runtime's
//! `handler.EnqueueRequestForOwner(..., OnlyControllerOwner())` and kube-runtime's
//! `trigger_owners`.
//!
//! A child maps to its **controller owner**: the ownerReference with `controller: true`
//! whose kind and API group are the controller's primary resource's (the version may differ,
//! as an owner reference outlives a version bump). The owner is looked for in the child's
//! cluster and namespace (owner references never cross namespaces; a cluster-scoped owner has
//! none). At most one reference is the controller, so at most one key comes out.

use std::any::TypeId;

use kube::Resource;
use kube::core::ClusterResourceScope;

use crate::ids::ClusterId;
use crate::work_queue::ReconcileKey;

/// The API group of an `apiVersion` (`""` for the core group `v1`).
fn group_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map_or("", |(group, _version)| group)
}

/// The key of `child`'s controller owner when that owner is a `P`, on `cluster`.
pub fn controller_owner_key<P>(
    cluster: &ClusterId,
    child: &impl Resource,
    owner_type: &P::DynamicType,
) -> Option<ReconcileKey>
where
    P: Resource,
    P::Scope: 'static,
{
    let kind = P::kind(owner_type);
    let group = P::group(owner_type);
    let meta = child.meta();
    let owner = meta
        .owner_references
        .as_deref()?
        .iter()
        .find(|o| o.controller == Some(true))?;
    if owner.kind != kind || group_of(&owner.api_version) != group {
        return None;
    }
    let namespace = is_namespaced::<P>()
        .then_some(meta.namespace.as_deref())
        .flatten();
    Some(ReconcileKey::new(cluster.clone(), namespace, &owner.name))
}

/// Whether objects of type `P` may live in a namespace (true for dynamic types, whose scope
/// is known only at run time: a cluster-scoped child then gives no namespace anyway).
fn is_namespaced<P: Resource>() -> bool
where
    P::Scope: 'static,
{
    TypeId::of::<P::Scope>() != TypeId::of::<ClusterResourceScope>()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ObjectMeta;

    use super::*;

    fn child(owners: Vec<OwnerReference>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("child".into()),
                namespace: Some("ns".into()),
                owner_references: Some(owners),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn owner(api_version: &str, kind: &str, name: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: Some(controller),
            block_owner_deletion: None,
        }
    }

    #[test]
    fn should_map_a_child_to_its_controller_owner_only() {
        let cluster = ClusterId::new("east");
        let cm = child(vec![
            owner("apps/v1", "Deployment", "not-controller", false),
            owner("apps/v1", "Deployment", "web", true),
        ]);
        assert_eq!(
            controller_owner_key::<Deployment>(&cluster, &cm, &()),
            Some(ReconcileKey::new(cluster.clone(), Some("ns"), "web"))
        );
        let other_kind = child(vec![owner("v1", "ConfigMap", "web", true)]);
        assert_eq!(
            controller_owner_key::<Deployment>(&cluster, &other_kind, &()),
            None
        );
        let other_group = child(vec![owner("extensions/v1beta1", "Deployment", "web", true)]);
        assert_eq!(
            controller_owner_key::<Deployment>(&cluster, &other_group, &()),
            None
        );
        let no_controller = child(vec![owner("apps/v1", "Deployment", "web", false)]);
        assert_eq!(
            controller_owner_key::<Deployment>(&cluster, &no_controller, &()),
            None
        );
    }

    #[test]
    fn should_give_a_cluster_scoped_owner_no_namespace() {
        let cluster = ClusterId::new("east");
        let cm = child(vec![owner("v1", "Namespace", "ns", true)]);
        assert_eq!(
            controller_owner_key::<Namespace>(&cluster, &cm, &()),
            Some(ReconcileKey::new(cluster, None, "ns"))
        );
    }
}
