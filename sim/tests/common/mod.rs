//! Helpers shared by the sim's integration tests: a `kube::Client` for a simulated cluster
//! (through its kubeconfig, as users connect) and raw requests for exact status/header checks.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use panoptes_sim::SimCluster;

/// A client for `cluster`, built from the cluster's own kubeconfig.
pub async fn client(cluster: &SimCluster) -> kube::Client {
    client_from_yaml(&cluster.kubeconfig_yaml(), cluster.name()).await
}

pub async fn client_from_yaml(yaml: &str, context: &str) -> kube::Client {
    client_with_retry(yaml, context, true).await
}

/// kube retries 429/503/504 by default (honouring Retry-After); `retry: false` shows the raw errors.
pub async fn client_with_retry(yaml: &str, context: &str, retry: bool) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(yaml).expect("the sim's kubeconfig parses");
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kube accepts the sim's kubeconfig");
    config.default_retry = retry;
    kube::Client::try_from(config).expect("client")
}

/// A raw request; returns status, content type and body text.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    uri: &str,
    accept: Option<&str>,
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(accept) = accept {
        builder = builder.header("accept", accept);
    }
    let bytes = match body {
        Some((content_type, text)) => {
            builder = builder.header("content-type", content_type);
            text.as_bytes().to_vec()
        }
        None => Vec::new(),
    };
    let response = client
        .send(builder.body(bytes.into()).expect("request"))
        .await
        .expect("response");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// A raw GET; returns status and headers (for Retry-After and friends).
pub async fn raw_headers(client: &kube::Client, uri: &str) -> (u16, http::HeaderMap) {
    let request = http::Request::builder()
        .method("GET")
        .uri(uri)
        .body(Vec::new().into())
        .expect("request");
    let response = client.send(request).await.expect("response");
    (response.status().as_u16(), response.headers().clone())
}
