//! Item 11: discovery as recorded (storageVersionHash, pod subresources) and the legacy
//! `/watch/` paths.

use panoptes_sim::{Sim, SimOptions};
use serde_json::{Value, json};

use super::{cluster, common, events, parse, sim_with_configmaps};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Every resource and subresource `sim` lists in `uri` is listed the same way in the
/// recorded document (name, kind, group/version, verbs, scope, storageVersionHash).
async fn assert_resource_list_matches(client: &kube::Client, uri: &str, recorded: &Value) {
    let served = parse(&common::raw(client, "GET", uri, None, None).await.2);
    let recorded: Vec<&Value> = recorded["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .collect();
    let served = served["resources"].as_array().expect("resources");
    assert!(!served.is_empty());
    for entry in served {
        let name = entry["name"].as_str().expect("name");
        let Some(real) = recorded.iter().find(|r| r["name"] == name) else {
            panic!("{uri}: {name} is not in the recording");
        };
        for field in [
            "kind",
            "group",
            "version",
            "verbs",
            "namespaced",
            "singularName",
            "storageVersionHash",
            "shortNames",
        ] {
            assert_eq!(entry.get(field), real.get(field), "{uri} {name}: {field}");
        }
    }
}

#[tokio::test]
async fn discovery_lists_storage_version_hashes_and_pod_subresources_as_recorded() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let client = common::client(cluster(&sim)).await;
    assert_resource_list_matches(&client, "/api/v1", &fixture("api-v1.json")).await;
    assert_resource_list_matches(&client, "/apis/apps/v1", &fixture("apis-apps-v1.json")).await;
    let core = parse(&common::raw(&client, "GET", "/api/v1", None, None).await.2);
    let pod_entries: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .filter(|n| n.starts_with("pods/"))
        .collect();
    assert_eq!(
        pod_entries,
        [
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

    // Aggregated discovery (what kubectl asks for) lists the same pod subresources.
    let aggregated = parse(
        &common::raw(
            &client,
            "GET",
            "/api",
            Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
            None,
        )
        .await
        .2,
    );
    let pods = |doc: &Value| -> Value {
        doc["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .expect("pods")["subresources"]
            .clone()
    };
    assert_eq!(pods(&aggregated), pods(&fixture("aggregated-api.json")));

    // CRDs get the hash of their storage version.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [
                     {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                     {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    });
    let (code, _, text) = common::raw(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        None,
        Some(("application/json", &crd.to_string())),
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let expected = panoptes_sim::discovery::storage_version_hash("example.com", "v1", "Gadget");
    for version in ["v1", "v1beta1"] {
        let list = parse(
            &common::raw(
                &client,
                "GET",
                &format!("/apis/example.com/{version}"),
                None,
                None,
            )
            .await
            .2,
        );
        assert_eq!(
            list["resources"][0]["storageVersionHash"],
            expected.as_str(),
            "{version}"
        );
    }
}

#[tokio::test]
async fn legacy_watch_paths_are_served_as_watches() {
    let (_sim, client) = sim_with_configmaps(2).await;
    for (uri, expected) in [
        ("/api/v1/watch/namespaces/fx/configmaps?timeoutSeconds=1", 3),
        (
            "/api/v1/watch/namespaces/fx/configmaps/cm-1?timeoutSeconds=1",
            1,
        ),
        (
            "/api/v1/watch/configmaps?timeoutSeconds=1&labelSelector=app%3Dweb",
            2,
        ),
        ("/api/v1/watch/namespaces/fx?timeoutSeconds=1", 1),
        (
            "/apis/apps/v1/watch/namespaces/fx/deployments?timeoutSeconds=1",
            0,
        ),
    ] {
        let (code, content_type, body) = common::raw(&client, "GET", uri, None, None).await;
        assert_eq!(
            (code, content_type.as_str()),
            (200, "application/json"),
            "{uri}: {body}"
        );
        let events = events(&body);
        assert_eq!(events.len(), expected, "{uri}: {body}");
        assert!(events.iter().all(|e| e["type"] == "ADDED"), "{uri}: {body}");
    }
}
