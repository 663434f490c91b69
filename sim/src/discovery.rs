//! Discovery documents generated from the store's served resources (so CRDs created at run
//! time appear at once): `/version`, `/api` (APIVersions), `/apis` (APIGroupList),
//! `/apis/<g>` (APIGroup), `/api/v1` and `/apis/<g>/<v>` (APIResourceList), and aggregated
//! discovery (apidiscovery.k8s.io/v2beta1 APIGroupDiscoveryList) for `/api` and `/apis`.
//! Shapes follow discovery/*.json of a real v1.28 server: every resource has its
//! `storageVersionHash` in the legacy documents (aggregated discovery v2beta1 has no such
//! field), and subresources are listed in name order with their own kinds and verbs (pods:
//! attach, binding, ephemeralcontainers, eviction, exec, log, portforward, proxy, status).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::pod_subresources::extra_subresources;
use crate::store::ResourceType;

/// `/version` reporting `v1.<minor>.0` (the kubectl dispatcher picks `kubectl.1.<minor>` from it).
pub fn version(minor: u32) -> Value {
    json!({
        "major": "1",
        "minor": minor.to_string(),
        "gitVersion": format!("v1.{minor}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.21.13",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`: the core group's versions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// The named groups and their versions, in the order the store serves them.
fn groups(resources: &[Arc<ResourceType>]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for rt in resources.iter().filter(|rt| !rt.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == rt.group) {
            Some((_, versions)) if !versions.contains(&rt.version) => {
                versions.push(rt.version.clone())
            }
            Some(_) => {}
            None => groups.push((rt.group.clone(), vec![rt.version.clone()])),
        }
    }
    groups
}

fn api_group_json(group: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(gv).unwrap_or(Value::Null)
    })
}

/// `/apis`: every named group.
pub fn api_group_list(resources: &[Arc<ResourceType>]) -> Value {
    let groups: Vec<Value> = groups(resources)
        .iter()
        .map(|(g, v)| api_group_json(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, if the group is served.
pub fn api_group(resources: &[Arc<ResourceType>], group: &str) -> Option<Value> {
    let (name, versions) = groups(resources).into_iter().find(|(g, _)| g == group)?;
    let mut doc = api_group_json(&name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// Whether any resource is served in this group version.
pub fn serves_group_version(resources: &[Arc<ResourceType>], group: &str, version: &str) -> bool {
    resources
        .iter()
        .any(|rt| rt.group == group && rt.version == version)
}

/// One subresource of a resource, as both discovery forms list it.
struct SubresourceEntry<'a> {
    name: &'a str,
    /// The response kind's group and version when not the resource's own (`scale`, `eviction`).
    group_version: Option<(&'a str, &'a str)>,
    kind: &'a str,
    verbs: &'a [&'a str],
}

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// `rt`'s subresources in name order, as the real server lists them.
fn subresources(rt: &ResourceType) -> Vec<SubresourceEntry<'_>> {
    let mut subs: Vec<SubresourceEntry<'_>> = extra_subresources(rt)
        .iter()
        .map(|s| SubresourceEntry {
            name: s.name,
            group_version: (!s.group.is_empty()).then_some((s.group, s.version)),
            kind: s.kind,
            verbs: s.verbs,
        })
        .collect();
    if rt.scale_subresource {
        subs.push(SubresourceEntry {
            name: "scale",
            group_version: Some(("autoscaling", "v1")),
            kind: "Scale",
            verbs: STATUS_VERBS,
        });
    }
    if rt.status_subresource {
        subs.push(SubresourceEntry {
            name: "status",
            group_version: None,
            kind: &rt.kind,
            verbs: STATUS_VERBS,
        });
    }
    subs.sort_by(|a, b| a.name.cmp(b.name));
    subs
}

/// kube-apiserver's `discovery.StorageVersionHash`: the first 8 bytes of the SHA-256 of
/// `<group>/<storage version>/<kind>`, base64. Clients (the storage version migrator, some
/// caches) compare it to notice that a resource's storage encoding changed.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{group}/{version}/{kind}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

/// `/api/v1` or `/apis/<g>/<v>`, if served.
pub fn api_resource_list(
    resources: &[Arc<ResourceType>],
    group: &str,
    version: &str,
) -> Option<Value> {
    if !serves_group_version(resources, group, version) {
        return None;
    }
    let mut list = Vec::new();
    for rt in resources
        .iter()
        .filter(|rt| rt.group == group && rt.version == version)
    {
        let mut entry = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs,
        });
        if !rt.short_names.is_empty() {
            entry["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            entry["categories"] = json!(rt.categories);
        }
        entry["storageVersionHash"] = json!(storage_version_hash(
            &rt.group,
            &rt.storage_version,
            &rt.kind
        ));
        list.push(entry);
        for sub in subresources(rt) {
            let mut entry = json!({
                "name": format!("{}/{}", rt.plural, sub.name),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if let Some((group, version)) = sub.group_version {
                entry["group"] = json!(group);
                entry["version"] = json!(version);
            }
            list.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}),
    )
}

fn aggregated_resource(rt: &ResourceType) -> Value {
    let mut entry = json!({
        "resource": rt.plural,
        "responseKind": {"group": "", "version": "", "kind": rt.kind},
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": rt.verbs,
    });
    if !rt.short_names.is_empty() {
        entry["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        entry["categories"] = json!(rt.categories);
    }
    let subs: Vec<Value> = subresources(rt)
        .into_iter()
        .map(|sub| {
            let (group, version) = sub.group_version.unwrap_or(("", ""));
            json!({"subresource": sub.name, "responseKind": {"group": group, "version": version, "kind": sub.kind}, "verbs": sub.verbs})
        })
        .collect();
    if !subs.is_empty() {
        entry["subresources"] = json!(subs);
    }
    entry
}

/// Aggregated discovery: the core group for `/api` (`core == true`), the named groups for `/apis`.
pub fn aggregated(resources: &[Arc<ResourceType>], core: bool) -> Value {
    let group_names: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(resources)
    };
    let items: Vec<Value> = group_names
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = resources
                        .iter()
                        .filter(|rt| rt.group == *group && rt.version == *version)
                        .map(|rt| aggregated_resource(rt))
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2beta1", "metadata": {}, "items": items})
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn resource(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) -> Arc<ResourceType> {
        Arc::new(ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: vec![],
            categories: vec![],
            namespaced,
            verbs: [
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
            .map(String::from)
            .to_vec(),
            status_subresource: true,
            scale_subresource: plural == "deployments",
            custom_resource: group.contains('.'),
            storage_version: version.into(),
        })
    }

    fn fake() -> Vec<Arc<ResourceType>> {
        vec![
            resource("", "v1", "Pod", "pods", true),
            resource("", "v1", "Namespace", "namespaces", false),
            resource("apps", "v1", "Deployment", "deployments", true),
            resource("example.com", "v1", "Gadget", "gadgets", true),
        ]
    }

    #[test]
    fn group_list_and_resource_lists() {
        let resources = fake();
        let groups = api_group_list(&resources);
        assert_eq!(groups["groups"][1]["name"], "example.com");
        assert_eq!(
            groups["groups"][0]["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        let apps = api_resource_list(&resources, "apps", "v1").expect("apps/v1 served");
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["deployments", "deployments/scale", "deployments/status"]
        );
        assert!(api_resource_list(&resources, "foo.example", "v1").is_none());
        assert_eq!(
            api_group(&resources, "apps").expect("apps")["kind"],
            "APIGroup"
        );
    }

    #[test]
    fn storage_version_hashes_match_the_recorded_ones() {
        // discovery/api-v1.json and apis-apps-v1.json of a real v1.28 server.
        assert_eq!(storage_version_hash("", "v1", "ConfigMap"), "qFsyl6wFWjQ=");
        assert_eq!(storage_version_hash("", "v1", "Pod"), "xPOwRZ+Yhw8=");
        assert_eq!(
            storage_version_hash("apps", "v1", "Deployment"),
            "8aSe+NMegvE="
        );
        let resources = fake();
        let core = api_resource_list(&resources, "", "v1").expect("core");
        let pods: Vec<&Value> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"].as_str().unwrap().starts_with("pods"))
            .collect();
        assert_eq!(pods[0]["storageVersionHash"], "xPOwRZ+Yhw8=");
        assert!(
            pods[1..]
                .iter()
                .all(|r| r.get("storageVersionHash").is_none())
        );
        let names: Vec<&str> = pods.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "pods",
                "pods/attach",
                "pods/binding",
                "pods/ephemeralcontainers",
                "pods/eviction",
                "pods/exec",
                "pods/log",
                "pods/portforward",
                "pods/proxy",
                "pods/status"
            ]
        );
    }

    #[test]
    fn aggregated_splits_core_and_named_groups() {
        let resources = fake();
        let core = aggregated(&resources, true);
        assert_eq!(
            core["items"][0]["versions"][0]["resources"][1]["scope"],
            "Cluster"
        );
        let named = aggregated(&resources, false);
        assert_eq!(named["items"].as_array().unwrap().len(), 2);
        assert_eq!(named["items"][0]["metadata"]["name"], "apps");
        assert_eq!(
            named["items"][0]["versions"][0]["resources"][0]["subresources"][0]["subresource"],
            "scale"
        );
    }
}
