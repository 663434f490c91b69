//! A lane: a few `sim` clusters that run seeds one after another, each seed with a fresh
//! [`Runtime`] (so that one seed's backoff does not slow the next) over a kubeconfig naming
//! the lane's clusters, as a user would configure it.
//!
//! A seed runs its [`Schedule`] against the servers while the informers run, heals every
//! fault, then checks, with a deadline: every cache equals the server's list with the same
//! resourceVersions, every handler's replayed history ends in the server's state (so every
//! deletion reached it, as a tombstone where the informer missed it), and no history breaks
//! the per-key rules of [`super::history`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{Event, HandlerOptions, ids::ClusterId};
use panoptes_runtime::{InformerSpec, MultiInformer, PanoptesConfig, Runtime};
use panoptes_sim::SimCluster;
use panoptes_sim::store::{DeleteOptions, ListOptions, PatchType, Subresource, WriteOptions};
use serde_json::json;

use super::history::{EPOCH, History, Key};
use super::schedule::{Fault, Schedule, Step};

/// How long a seed may take to converge once its faults are healed: generous, for a loaded
/// 2-core machine and up to three backoffs in a row.
pub const CONVERGE_DEADLINE: Duration = Duration::from_secs(90);

/// Before a seed starts, each server's resourceVersion is raised to at least this, so that a
/// restart losing state (which starts again near 1) cannot catch up, within one seed's few
/// dozen writes, with the versions the informers resume from. Were it to catch up, a resume
/// would be accepted and the loss go unnoticed — the hazard etcd's
/// `snapshot restore --bump-revision --mark-compacted` exists for, which no informer can
/// detect. For the same reason a schedule loses a cluster's state at most once.
pub const RESOURCE_VERSION_FLOOR: u64 = 1_000;

/// What one seed did and saw.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub faults: BTreeMap<&'static str, u64>,
    pub events: u64,
    pub tombstones: u64,
    /// Keys whose handler state differs from the server at the deadline (must be 0).
    pub lost: u64,
}

/// The clusters of one lane.
pub struct Lane {
    pub clusters: Vec<SimCluster>,
    pub kubeconfig: PathBuf,
    pub config_dir: PathBuf,
    /// Per cluster: how many restarts lost its state so far (stamped on pods as [`EPOCH`]).
    epochs: Vec<u64>,
}

/// The handlers' records of one seed: each handler's history and which informer it is on.
struct Recorded {
    namespaced: Vec<History>,
    cluster_wide: Option<History>,
}

/// A handler actor recording every event.
struct RecordingActor(History);

impl Actor for RecordingActor {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for RecordingActor {
    type Result = ();

    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) {
        self.0.record(&event);
    }
}

impl Lane {
    pub fn new(clusters: Vec<SimCluster>, kubeconfig: PathBuf, config_dir: PathBuf) -> Self {
        let epochs = vec![0; clusters.len()];
        Self {
            clusters,
            kubeconfig,
            config_dir,
            epochs,
        }
    }

    fn config(&self) -> PanoptesConfig {
        let mut text = String::from("[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n");
        for cluster in &self.clusters {
            text.push_str(&format!(
                "[[clusters]]\nname = \"{0}\"\nkubeconfig = {1:?}\ncontext = \"{0}\"\n",
                cluster.name(),
                self.kubeconfig.display().to_string()
            ));
        }
        text.push_str("[[watch]]\nresource = \"v1/pods\"\n");
        let file = self.config_dir.join("clusters.toml");
        PanoptesConfig::parse(&text, &file, std::iter::empty()).expect("the lane's config is valid")
    }

    /// Runs one schedule and checks the outcome: what happened, and `Err` saying what broke.
    pub async fn run(&mut self, schedule: &Schedule) -> (SeedReport, Result<(), String>) {
        let mut report = SeedReport::default();
        for fault in schedule.faults() {
            *report.faults.entry(fault.kind()).or_default() += 1;
        }
        let outcome = self.run_into(schedule, &mut report).await;
        (report, outcome)
    }

    async fn run_into(
        &mut self,
        schedule: &Schedule,
        report: &mut SeedReport,
    ) -> Result<(), String> {
        let namespace = format!("seed-{}", schedule.seed);
        for cluster in &self.clusters {
            cluster.faults().clear();
            cluster
                .start()
                .map_err(|e| format!("{}: cannot listen again: {e}", cluster.name()))?;
            raise_resource_version(cluster, RESOURCE_VERSION_FLOOR);
            panoptes_sim::pods::ensure_namespace(&cluster.store(), &namespace);
        }
        let runtime = Runtime::start(&self.config())
            .await
            .map_err(|e| format!("the runtime does not start: {e}"))?;
        let cluster_wide = schedule.cluster_wide.then(|| runtime.informer::<Pod>());
        let namespaced = runtime.informer_with::<Pod>(InformerSpec {
            namespace: Some(namespace.clone()),
            ..InformerSpec::default()
        });
        let recorded = Recorded {
            namespaced: vec![History::default(), History::default()],
            cluster_wide: cluster_wide.as_ref().map(|_| History::default()),
        };
        namespaced.add_handler(
            RecordingActor(recorded.namespaced[0].clone())
                .start()
                .recipient(),
            HandlerOptions::default(),
        );
        let closure = recorded.namespaced[1].clone();
        namespaced.add_handler_fn(move |e| closure.record(&e), HandlerOptions::default());
        if let (Some(informer), Some(history)) = (&cluster_wide, &recorded.cluster_wide) {
            let history = history.clone();
            informer.add_handler_fn(move |e| history.record(&e), HandlerOptions::default());
        }

        for step in &schedule.steps {
            self.apply(step, &namespace, &namespaced).await?;
        }
        let outcome = self
            .converge(&namespace, &namespaced, cluster_wide.as_ref(), &recorded)
            .await;
        for history in recorded.namespaced.iter().chain(&recorded.cluster_wide) {
            let (events, tombstones) = history.counts();
            report.events += events;
            report.tombstones += tombstones;
        }
        drop(namespaced);
        drop(cluster_wide);
        runtime.shutdown();
        let (lost, outcome) = outcome;
        report.lost = lost;
        outcome
    }

    async fn apply(
        &mut self,
        step: &Step,
        namespace: &str,
        namespaced: &MultiInformer<Pod>,
    ) -> Result<(), String> {
        let pod_write = |cluster: &SimCluster, what: &str, result: Result<(), String>| {
            result.map_err(|e| format!("{}: {what}: {e}", cluster.name()))
        };
        match step {
            Step::Create { cluster, name } => {
                let sim = &self.clusters[*cluster];
                let store = sim.store();
                let body = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "labels": {"generation": "0"},
                        "annotations": {EPOCH: self.epochs[*cluster].to_string()},
                    },
                    "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
                });
                let created = store
                    .create(
                        &store.builtin("", "pods"),
                        Some(namespace),
                        body,
                        &WriteOptions::default(),
                    )
                    .map(drop)
                    .map_err(|s| s.message);
                pod_write(sim, &format!("create {name}"), created)
            }
            Step::Update { cluster, name } => {
                let sim = &self.clusters[*cluster];
                let store = sim.store();
                let patch = json!({"metadata": {"labels": {"generation": store.resource_version().to_string()}}});
                let updated = store
                    .patch(
                        &store.builtin("", "pods"),
                        Some(namespace),
                        name,
                        Subresource::Main,
                        PatchType::Merge,
                        patch.to_string().as_bytes(),
                        &WriteOptions::default(),
                    )
                    .map(drop)
                    .map_err(|s| s.message);
                pod_write(sim, &format!("update {name}"), updated)
            }
            Step::Delete { cluster, name } => {
                let sim = &self.clusters[*cluster];
                let store = sim.store();
                let options = DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                };
                let deleted = store
                    .delete(&store.builtin("", "pods"), Some(namespace), name, &options)
                    .map(drop)
                    .map_err(|s| s.message);
                pod_write(sim, &format!("delete {name}"), deleted)
            }
            Step::Fault { cluster, fault } => self.inject(*cluster, *fault, namespace, namespaced),
            Step::Pause(pause) => {
                tokio::time::sleep(*pause).await;
                Ok(())
            }
        }
    }

    fn inject(
        &mut self,
        index: usize,
        fault: Fault,
        namespace: &str,
        namespaced: &MultiInformer<Pod>,
    ) -> Result<(), String> {
        let cluster = &self.clusters[index];
        let faults = cluster.faults();
        let restarted = |r: Result<(), panoptes_sim::SimError>| {
            r.map_err(|e| format!("{}: cannot listen again: {e}", cluster.name()))
        };
        match fault {
            Fault::DropWatches => faults.drop_watches(),
            Fault::Compact => faults.compact(),
            Fault::TooManyRequests(n) => faults.fail_next(n, 429),
            Fault::InternalErrors(n) => faults.fail_next(n, 500),
            Fault::Latency(latency) => faults.set_latency(latency),
            Fault::LatencyOff => faults.set_latency(Duration::ZERO),
            Fault::Stall => {
                faults.stall_watches(true);
                faults.drop_watches();
            }
            Fault::StallOff => {
                faults.stall_watches(false);
                faults.drop_watches();
            }
            Fault::Down => cluster.stop(),
            Fault::Up => restarted(cluster.start())?,
            Fault::Restart => restarted(cluster.restart(true))?,
            Fault::RestartLosingState => {
                restarted(cluster.restart(false))?;
                self.epochs[index] += 1;
                panoptes_sim::pods::ensure_namespace(&cluster.store(), namespace);
            }
            Fault::StagePanic(stage) => {
                // The namespaced informer's pipeline: the cluster-wide one when it runs (the
                // namespaced informer is then a view of it), so both kinds get hit.
                let id = ClusterId::new(cluster.name());
                let handle = namespaced
                    .handle(&id)
                    .ok_or_else(|| format!("{}: no pod pipeline to fault", cluster.name()))?;
                handle.informer().inject_stage_panic(stage);
            }
        }
        Ok(())
    }

    /// Polls until caches and handlers agree with the servers. Returns the keys a handler
    /// still holds wrongly when it stopped (its lost events) and whether the run passed.
    async fn converge(
        &self,
        namespace: &str,
        namespaced: &MultiInformer<Pod>,
        cluster_wide: Option<&MultiInformer<Pod>>,
        recorded: &Recorded,
    ) -> (u64, Result<(), String>) {
        let deadline = tokio::time::Instant::now() + CONVERGE_DEADLINE;
        loop {
            let problems = match self.differences(namespace, namespaced, cluster_wide, recorded) {
                Ok(problems) => problems,
                Err(impossible) => return (0, Err(impossible)),
            };
            if problems.is_empty() {
                return (0, Ok(()));
            }
            if tokio::time::Instant::now() >= deadline {
                let statuses: Vec<String> = namespaced
                    .status()
                    .iter()
                    .map(|s| format!("{}: synced {} state {:?}", s.cluster, s.synced, s.state))
                    .collect();
                let lost = problems.iter().filter(|p| p.contains("handler")).count() as u64;
                return (
                    lost,
                    Err(format!(
                        "not converged after {CONVERGE_DEADLINE:?}: {} differences, first: {:?}; informers: {statuses:?}",
                        problems.len(),
                        &problems[..problems.len().min(5)]
                    )),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything that differs from the servers now; `Err` when a history is impossible.
    fn differences(
        &self,
        namespace: &str,
        namespaced: &MultiInformer<Pod>,
        cluster_wide: Option<&MultiInformer<Pod>>,
        recorded: &Recorded,
    ) -> Result<Vec<String>, String> {
        let mut problems = Vec::new();
        let mut truth_namespaced = BTreeMap::new();
        let mut truth_all = BTreeMap::new();
        for cluster in &self.clusters {
            let all = server_pods(cluster, None);
            let in_namespace: BTreeMap<Key, u64> = all
                .iter()
                .filter(|((_, key), _)| key.starts_with(&format!("{namespace}/")))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            let id = ClusterId::new(cluster.name());
            compare(
                &format!("namespaced cache of {}", cluster.name()),
                &cached(cluster.name(), namespaced.list(&id)),
                &in_namespace,
                &mut problems,
            );
            if let Some(informer) = cluster_wide {
                compare(
                    &format!("cluster-wide cache of {}", cluster.name()),
                    &cached(cluster.name(), informer.list(&id)),
                    &all,
                    &mut problems,
                );
            }
            truth_namespaced.extend(in_namespace);
            truth_all.extend(all);
        }
        for (i, history) in recorded.namespaced.iter().enumerate() {
            let told = history_versions(history)?;
            compare(
                &format!("namespaced handler {i}"),
                &told,
                &truth_namespaced,
                &mut problems,
            );
        }
        if let Some(history) = &recorded.cluster_wide {
            let told = history_versions(history)?;
            compare("cluster-wide handler", &told, &truth_all, &mut problems);
        }
        Ok(problems)
    }
}

fn history_versions(history: &History) -> Result<BTreeMap<Key, u64>, String> {
    Ok(history
        .final_states()?
        .into_iter()
        .map(|(key, version)| (key, version.rv))
        .collect())
}

fn compare(
    what: &str,
    seen: &BTreeMap<Key, u64>,
    truth: &BTreeMap<Key, u64>,
    problems: &mut Vec<String>,
) {
    for (key, rv) in truth {
        match seen.get(key) {
            Some(seen_rv) if seen_rv == rv => {}
            Some(seen_rv) => problems.push(format!("{what}: {key:?} at {seen_rv}, server {rv}")),
            None => problems.push(format!("{what}: {key:?} missing (server {rv})")),
        }
    }
    for (key, rv) in seen {
        if !truth.contains_key(key) {
            problems.push(format!("{what}: {key:?} at {rv} is gone from the server"));
        }
    }
}

fn cached(cluster: &str, pods: Option<Vec<Arc<Pod>>>) -> BTreeMap<Key, u64> {
    pods.unwrap_or_default()
        .iter()
        .map(|pod| {
            let key = format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            );
            let rv = pod
                .metadata
                .resource_version
                .as_deref()
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0);
            ((cluster.to_string(), key), rv)
        })
        .collect()
}

/// The server's pods (all namespaces or one): (cluster, namespace/name) → resourceVersion.
pub fn server_pods(cluster: &SimCluster, namespace: Option<&str>) -> BTreeMap<Key, u64> {
    let store = cluster.store();
    let page = store
        .list(
            &store.builtin("", "pods"),
            namespace,
            &ListOptions::default(),
        )
        .expect("the store lists pods");
    page.items
        .iter()
        .map(|o| {
            let key = format!("{}/{}", o.namespace().unwrap_or_default(), o.name());
            ((cluster.name().to_string(), key), o.resource_version)
        })
        .collect()
}

/// Rewrites a scratch ConfigMap until the server's resourceVersion reaches `floor`.
fn raise_resource_version(cluster: &SimCluster, floor: u64) {
    let store = cluster.store();
    if store.resource_version() >= floor {
        return;
    }
    let configmaps = store.builtin("", "configmaps");
    let name = "resource-version-floor";
    let body = json!({"metadata": {"name": name}, "data": {}});
    // 409 when a previous seed made it already.
    let _ = store.create(&configmaps, Some("default"), body, &WriteOptions::default());
    while store.resource_version() < floor {
        let patch = json!({"data": {"rv": store.resource_version().to_string()}});
        store
            .patch(
                &configmaps,
                Some("default"),
                name,
                Subresource::Main,
                PatchType::Merge,
                patch.to_string().as_bytes(),
                &WriteOptions::default(),
            )
            .expect("the scratch ConfigMap takes a merge patch");
    }
}
