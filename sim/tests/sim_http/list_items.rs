//! Item 8: list and deletecollection items carry no `kind`/`apiVersion` (typed lists);
//! gets, watch events and custom resource list items keep them.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::{common, events, parse, sim_with_configmaps};

#[tokio::test]
async fn list_items_carry_no_kind_but_gets_watch_events_and_custom_resources_do() {
    let (_sim, client) = sim_with_configmaps(2).await;
    let list = parse(
        &common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/configmaps",
            None,
            None,
        )
        .await
        .2,
    );
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("ConfigMapList"), Some("v1"))
    );
    for item in list["items"].as_array().expect("items") {
        assert!(
            item.get("kind").is_none() && item.get("apiVersion").is_none(),
            "{item}"
        );
        assert!(
            item["data"].is_object(),
            "the rest of the object is kept: {item}"
        );
    }
    let yaml = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps",
        Some("application/yaml"),
        None,
    )
    .await
    .2;
    let yaml: Value = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(yaml["kind"], "ConfigMapList");
    assert!(yaml["items"][0].get("kind").is_none());
    let table = parse(
        &common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/configmaps",
            Some("application/json;as=Table;v=v1;g=meta.k8s.io"),
            None,
        )
        .await
        .2,
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let get = parse(
        &common::raw(
            &client,
            "GET",
            "/api/v1/namespaces/fx/configmaps/cm-0",
            None,
            None,
        )
        .await
        .2,
    );
    assert_eq!(
        (get["kind"].as_str(), get["apiVersion"].as_str()),
        (Some("ConfigMap"), Some("v1"))
    );
    let watch = common::raw(
        &client,
        "GET",
        "/api/v1/namespaces/fx/configmaps?watch=1&timeoutSeconds=1",
        None,
        None,
    )
    .await
    .2;
    assert!(
        events(&watch)
            .iter()
            .all(|e| e["object"]["kind"] == "ConfigMap"),
        "{watch}"
    );

    // kube decodes such lists into typed objects.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fx");
    assert_eq!(
        cms.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        3
    );

    // deletecollection answers a list too, items without kind.
    let (code, _, text) = common::raw(
        &client,
        "DELETE",
        "/api/v1/namespaces/fx/configmaps",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200);
    let deleted = parse(&text);
    assert_eq!(deleted["kind"], "ConfigMapList");
    assert_eq!(deleted["items"].as_array().map(Vec::len), Some(3));
    assert!(deleted["items"][0].get("kind").is_none(), "{text}");

    // Custom resources are unstructured: their list items keep kind and apiVersion.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
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
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}});
    let (code, _, text) = common::raw(
        &client,
        "POST",
        "/apis/example.com/v1/namespaces/fx/gadgets",
        None,
        Some(("application/json", &gadget.to_string())),
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let gadgets = parse(
        &common::raw(
            &client,
            "GET",
            "/apis/example.com/v1/namespaces/fx/gadgets",
            None,
            None,
        )
        .await
        .2,
    );
    assert_eq!(gadgets["items"][0]["kind"], "Gadget");
    assert_eq!(gadgets["items"][0]["apiVersion"], "example.com/v1");
}
