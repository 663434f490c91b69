//! Shared by the actors' integration tests that run against the embedded API server: a
//! `kube::Client` for a sim cluster, and polling with a deadline.
#![allow(dead_code)]

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use panoptes_sim::SimCluster;

/// The client configuration of `cluster`, read from its kubeconfig as a user's would be.
pub async fn config(cluster: &SimCluster) -> kube::Config {
    let kubeconfig =
        Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).expect("sim kubeconfig parses");
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("sim kubeconfig is usable")
}

/// A client of `cluster` over HTTPS.
pub async fn client(cluster: &SimCluster) -> kube::Client {
    kube::Client::try_from(config(cluster).await).expect("client builds")
}

/// Polls `check` every 10 ms until it holds; panics naming `what` after `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
