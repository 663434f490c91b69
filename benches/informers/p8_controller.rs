//! P8: the controller loop — Panoptes' controller (`runtime.controller::<Pod>(..).run(actor)`:
//! work queue actor, workers, a reconciler actor) beside kube-runtime's `Controller`, both over the pods of one server process and
//! both calling the same reconciler ([`Probe::reconcile`]: read the object's stamp, count).
//! One worker each (controller-runtime's default `MaxConcurrentReconciles`; kube-runtime's
//! `concurrency(1)`), so the second measure below can hold the only worker.
//!
//! 1. **Throughput.** After the initial sync (every pod reconciled once), the server patches
//!    each of the `p8_objects` pods once (as fast as it can); measured: time from the write
//!    command to the moment every pod was reconciled at that write's generation.
//! 2. **Coalescing.** The reconcile of a blocker pod is held open; meanwhile one target pod
//!    is patched 10 times and the contender's cache shows the 10th version; then the blocker
//!    is let go. Counted: reconciles of the target after the burst (goal: exactly 1), after
//!    the final version was reconciled and a quiet period passed.
//!
//! Both contenders run in the same process against the same server, one after the other.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::{Context as _, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{self as kube_controller, Controller as KubeController};
use kube::runtime::watcher;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::{Action, Reconcile, ReconcileError, ShutdownMode};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::Sizes;
use crate::contenders::{PanoptesRuntime, SYNC_PATIENCE, client};
use crate::report::Line;
use crate::server_process::{STAMP, ServerProcess, parse_stamp};

/// Updates to the target key while it is queued.
const BURST: u64 = 10;
/// How long after the last expected reconcile an extra one would have to show up by.
const QUIET: Duration = Duration::from_millis(700);
/// Time for the last update's event to reach the queue after the cache shows it (neither
/// library says when an event was queued; the cache is updated just before).
const SETTLE: Duration = Duration::from_millis(300);
/// How often a wait with no progress says what it waits for.
const PROGRESS: Duration = Duration::from_secs(10);
/// The pod whose reconcile is held open, and the one updated in a burst.
const BLOCKER: u64 = 0;
const TARGET: u64 = 1;

/// What the shared reconciler saw. One per contender.
struct Probe {
    /// Which contender, for progress messages.
    contender: &'static str,
    state: Mutex<ProbeState>,
    /// Woken when anything is recorded, so waiters need not poll.
    changed: Notify,
    /// Lets the held blocker reconcile finish.
    release: Notify,
}

#[derive(Default)]
struct ProbeState {
    /// The generation phase 1 waits for (`None`: any, for the initial reconciles), and the
    /// pods reconciled at it.
    generation: Option<u64>,
    at_generation: HashSet<String>,
    /// Reconciles per pod name at a stamp generation of at least `burst_from`.
    burst_from: u64,
    burst_counts: HashMap<String, u32>,
    /// The blocker reconcile at this generation holds until released.
    hold_generation: Option<u64>,
    holding: bool,
}

impl Probe {
    fn new(contender: &'static str) -> Self {
        Self {
            contender,
            state: Mutex::default(),
            changed: Notify::new(),
            release: Notify::new(),
        }
    }

    /// The reconciler both contenders call.
    async fn reconcile(&self, pod: Option<&Pod>) {
        let Some(pod) = pod else { return };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let generation = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STAMP))
            .and_then(|v| parse_stamp(v))
            .map_or(0, |(generation, _)| generation);
        let hold = {
            let mut state = self.state.lock();
            if state.generation.is_none_or(|wanted| wanted == generation) {
                state.at_generation.insert(name.clone());
            }
            if state.burst_from > 0 && generation >= state.burst_from {
                *state.burst_counts.entry(name.clone()).or_default() += 1;
            }
            let hold = Some(generation) == state.hold_generation
                && name == panoptes_sim::pods::pod_name(BLOCKER);
            state.holding |= hold;
            hold
        };
        self.changed.notify_waiters();
        if hold {
            self.release.notified().await;
        }
    }

    async fn wait(
        &self,
        what: &str,
        patience: Duration,
        check: impl Fn(&ProbeState) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let notified = self.changed.notified();
            if check(&self.state.lock()) {
                return Ok(());
            }
            let next = deadline.min(tokio::time::Instant::now() + PROGRESS);
            if tokio::time::timeout_at(next, notified).await.is_err() {
                let state = self.state.lock();
                let progress = format!(
                    "{what} ({}): {} reconciled at generation {:?}, holding: {}",
                    self.contender,
                    state.at_generation.len(),
                    state.generation,
                    state.holding
                );
                drop(state);
                if next == deadline {
                    bail!("P8: timed out waiting for {progress}");
                }
                eprintln!("P8: still waiting for {progress}");
            }
        }
    }
}

/// Panoptes' reconciler actor: forwards to the probe.
struct ProbeActor(Arc<Probe>);

impl Actor for ProbeActor {
    type Context = Context<Self>;
}

impl Handler<Reconcile<Pod>> for ProbeActor {
    type Result = ResponseFuture<Result<Action, ReconcileError>>;

    fn handle(&mut self, msg: Reconcile<Pod>, _ctx: &mut Self::Context) -> Self::Result {
        let probe = self.0.clone();
        Box::pin(async move {
            probe.reconcile(msg.object.as_deref()).await;
            Ok(Action::Done)
        })
    }
}

/// A contender under test: how to see its cache.
trait Cache {
    fn stamp_generation(&self, name: &str) -> Option<u64>;
}

struct PanoptesCache(panoptes_runtime::MultiInformer<Pod>, ClusterId);

impl Cache for PanoptesCache {
    fn stamp_generation(&self, name: &str) -> Option<u64> {
        let pod = self.0.get(&self.1, Some("default"), name)?;
        generation_of(&pod)
    }
}

struct KubeCache(kube::runtime::reflector::Store<Pod>);

impl Cache for KubeCache {
    fn stamp_generation(&self, name: &str) -> Option<u64> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within("default");
        generation_of(self.0.get(&key)?.as_ref())
    }
}

fn generation_of(pod: &Pod) -> Option<u64> {
    let stamp = pod.metadata.annotations.as_ref()?.get(STAMP)?;
    parse_stamp(stamp).map(|(generation, _)| generation)
}

/// What one contender measured.
struct Measured {
    all_reconciled: Duration,
    burst_reconciles: u32,
}

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let objects = sizes.p8_objects;
    let mut server = ServerProcess::spawn(1, objects, pin)?;
    let writer = client(server.kubeconfig(), "sim-1").await?;
    let pods: Api<Pod> = Api::namespaced(writer, "default");

    let panoptes = panoptes(&mut server, &pods, objects, 1_000).await?;
    let kube = kube_runtime(&mut server, &pods, objects, 2_000).await?;

    let ratio = panoptes.all_reconciled.as_secs_f64() / kube.all_reconciled.as_secs_f64().max(1e-9);
    lines.push(
        Line::new(
            "P8",
            format!("{objects} pods each patched once after the sync → every one reconciled (1 worker each)"),
        )
        .result(format!(
            "Panoptes {:.0} ms, kube-runtime {:.0} ms",
            panoptes.all_reconciled.as_secs_f64() * 1e3,
            kube.all_reconciled.as_secs_f64() * 1e3
        ))
        .against(format!("{ratio:.2}x"), "≤ 1.0x kube-runtime", ratio <= 1.0),
    );
    lines.push(
        Line::new(
            "P8",
            format!("{BURST} updates to one key while it is queued (the only worker held)"),
        )
        .result(format!(
            "Panoptes {} reconcile(s), kube-runtime {} reconcile(s)",
            panoptes.burst_reconciles, kube.burst_reconciles
        ))
        .against(
            format!("{}", panoptes.burst_reconciles),
            "exactly 1 reconcile",
            panoptes.burst_reconciles == 1,
        ),
    );
    Ok(())
}

/// Runs both measures on a contender whose reconciler reports to `probe` and whose cache is
/// `cache`; `base` keeps each contender's stamp generations apart.
async fn measure(
    server: &mut ServerProcess,
    pods: &Api<Pod>,
    objects: usize,
    base: u64,
    probe: &Probe,
    cache: &dyn Cache,
) -> anyhow::Result<Measured> {
    // Every pod reconciled once after the sync, whatever its stamp (a previous contender's).
    probe
        .wait("the initial reconciles", SYNC_PATIENCE, |s| {
            s.at_generation.len() >= objects
        })
        .await?;

    // 1. Each pod patched once, by the server itself (no client round trips in the timing).
    let generation = base + 1;
    {
        let mut state = probe.state.lock();
        state.generation = Some(generation);
        state.at_generation.clear();
    }
    let started = Instant::now();
    server.command(&format!("write {generation} 1000000000 {objects}"))?;
    probe
        .wait(
            "every pod reconciled at the new generation",
            SYNC_PATIENCE,
            |s| s.at_generation.len() >= objects,
        )
        .await?;
    let all_reconciled = started.elapsed();

    // 2. Hold the only worker on the blocker, then update the target BURST times.
    let hold = base + 2;
    probe.state.lock().hold_generation = Some(hold);
    stamp(pods, BLOCKER, hold).await?;
    probe
        .wait(
            "the blocker's reconcile to start",
            Duration::from_secs(60),
            |s| s.holding,
        )
        .await?;
    let first = base + 10;
    probe.state.lock().burst_from = first;
    for generation in first..first + BURST {
        stamp(pods, TARGET, generation).await?;
    }
    let last = first + BURST - 1;
    let target = panoptes_sim::pods::pod_name(TARGET);
    let deadline = Instant::now() + Duration::from_secs(60);
    while cache.stamp_generation(&target) != Some(last) {
        ensure!(
            Instant::now() < deadline,
            "P8: the cache never showed the burst's last update"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(SETTLE).await;
    probe.release.notify_one();
    probe
        .wait(
            "the target reconciled at its last version",
            Duration::from_secs(60),
            |s| s.burst_counts.contains_key(&target),
        )
        .await?;
    tokio::time::sleep(QUIET).await;
    let burst_reconciles = probe
        .state
        .lock()
        .burst_counts
        .get(&target)
        .copied()
        .unwrap_or(0);
    Ok(Measured {
        all_reconciled,
        burst_reconciles,
    })
}

/// Sets pod `index`'s stamp to `generation` through the API.
async fn stamp(pods: &Api<Pod>, index: u64, generation: u64) -> anyhow::Result<()> {
    let name = panoptes_sim::pods::pod_name(index);
    let patch = serde_json::json!({"metadata": {"annotations": {
        STAMP: format!("{generation}:{}", crate::server_process::unix_nanos())
    }}});
    pods.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("patching {name}"))?;
    Ok(())
}

async fn panoptes(
    server: &mut ServerProcess,
    pods: &Api<Pod>,
    objects: usize,
    base: u64,
) -> anyhow::Result<Measured> {
    let cluster = ClusterId::new("sim-1");
    let entries = [("sim-1".to_string(), "sim-1".to_string())];
    let started = PanoptesRuntime::start(server.kubeconfig(), &entries, "").await?;
    let runtime = &started.runtime;
    let probe = Arc::new(Probe::new("Panoptes"));
    let handle = runtime
        .controller::<Pod>("p8")
        .workers(1)
        .run(ProbeActor(probe.clone()).start());
    let cache = PanoptesCache(handle.primary().clone(), cluster);
    let measured = measure(server, pods, objects, base, &probe, &cache).await;
    probe.release.notify_waiters();
    handle.shutdown(ShutdownMode::Abandon).await;
    measured
}

async fn kube_runtime(
    server: &mut ServerProcess,
    pods: &Api<Pod>,
    objects: usize,
    base: u64,
) -> anyhow::Result<Measured> {
    let api: Api<Pod> = Api::namespaced(client(server.kubeconfig(), "sim-1").await?, "default");
    let probe = Arc::new(Probe::new("kube-runtime"));
    let controller = KubeController::new(api, watcher::Config::default())
        .with_config(kube_controller::Config::default().concurrency(1));
    let cache = KubeCache(controller.store());
    let running = controller.run(
        |pod: Arc<Pod>, probe: Arc<Probe>| async move {
            probe.reconcile(Some(&pod)).await;
            Ok::<_, kube::Error>(kube_controller::Action::await_change())
        },
        |_pod, _error: &kube::Error, _probe| kube_controller::Action::await_change(),
        probe.clone(),
    );
    let errors = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let task = tokio::spawn(running.for_each(move |result| {
        // The controller's own errors (watch failures, reconciler errors) are logged, a few.
        if let Err(error) = result
            && errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5
        {
            eprintln!("P8 kube-runtime controller: {error}");
        }
        async {}
    }));
    let measured = measure(server, pods, objects, base, &probe, &cache).await;
    probe.release.notify_waiters();
    task.abort();
    measured
}
