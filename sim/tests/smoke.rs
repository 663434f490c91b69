mod common;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn smoke() {
    let sim = panoptes_sim::Sim::start(Default::default()).expect("sim starts");
    let client = common::client(sim.cluster(0)).await;
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.git_version, "v1.28.0");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let list = namespaces.list(&ListParams::default()).await.expect("list namespaces");
    let names: Vec<_> = list.items.iter().filter_map(|n| n.metadata.name.clone()).collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");
    for (uri, accept) in [("/api", None), ("/apis", None), ("/api", Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")), ("/api/v1/namespaces?limit=2", Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")), ("/apis/foo/v1/bars", None), ("/api/v1/foos", None)] {
        let (code, ct, body) = common::raw(&client, "GET", uri, accept, None).await;
        println!("{uri} -> {code} {ct} {}", &body[..body.len().min(400)]);
    }
}
