//! Shared by the `multicluster_*` tests: simulated clusters reached through a kubeconfig
//! file, a `clusters.toml` naming them, and polling with a deadline.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use panoptes_runtime::PanoptesConfig;
use panoptes_sim::{Sim, SimOptions};

/// How long anything in these tests may take to happen.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// `n` simulated clusters (`sim-1`…) with `pods` pods each in namespace `default`, and a
/// kubeconfig file with one context per cluster.
pub struct Clusters {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Clusters {
    pub fn start(n: usize, pods: usize) -> Self {
        let sim = Sim::start(SimOptions {
            clusters: n,
            worker_threads: 1,
            ..SimOptions::default()
        })
        .expect("sim starts");
        for cluster in sim.clusters() {
            panoptes_sim::pods::seed(&cluster.store(), "default", pods);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        sim.write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        Self {
            sim,
            dir,
            kubeconfig,
        }
    }

    /// A configuration with one `[[clusters]]` entry per `(name, context)`.
    pub fn config(&self, entries: &[(&str, &str)]) -> PanoptesConfig {
        config_text(&self.kubeconfig, entries, self.dir.path())
    }

    /// A configuration with one cluster, `home` (context `sim-1`), holding the Lease `lease`
    /// for leader election as `identity`, on short test timings (2 s / 1.5 s / 300 ms).
    pub fn leader_config(&self, identity: &str, lease: &str) -> PanoptesConfig {
        let text = format!(
            "[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n\
             [[clusters]]\nname = \"home\"\nkubeconfig = {:?}\ncontext = \"sim-1\"\n\
             [leader_election]\nenabled = true\ncluster = \"home\"\nname = \"{lease}\"\nidentity = \"{identity}\"\n\
             lease_duration = \"2s\"\nrenew_deadline = \"1500ms\"\nretry_period = \"300ms\"\n",
            self.kubeconfig.display().to_string()
        );
        PanoptesConfig::parse(
            &text,
            &self.dir.path().join("clusters.toml"),
            std::iter::empty(),
        )
        .expect("test config is valid")
    }
}

pub fn config_text(kubeconfig: &Path, entries: &[(&str, &str)], dir: &Path) -> PanoptesConfig {
    let mut text = String::from("[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n");
    for (name, context) in entries {
        text.push_str(&format!(
            "[[clusters]]\nname = \"{name}\"\nkubeconfig = {:?}\ncontext = \"{context}\"\n",
            kubeconfig.display().to_string()
        ));
    }
    text.push_str("[[watch]]\nresource = \"v1/pods\"\n");
    let file = dir.join("clusters.toml");
    PanoptesConfig::parse(&text, &file, std::iter::empty()).expect("test config is valid")
}

/// Polls `check` until it is true or [`DEADLINE`] passed; panics naming `what` on timeout.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`] for an async check.
pub async fn eventually_async<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
