//! The churn generator: creates, updates and deletes realistic pods at a given rate, as the
//! pods of a busy cluster come and go (a Deployment rolling, kubelets starting containers,
//! restarting them and reporting readiness, controllers annotating).
//!
//! Contract:
//! - One thread per `Churn`, paced by wall time: after `t` seconds about `t * rate_per_sec`
//!   writes were made (it catches up in bursts if it fell behind, never exceeds the rate on
//!   average), and never more than `max_writes`. Every write is one of the kinds below.
//! - The kind of each write comes from a deterministic RNG seeded with `seed`: an update with
//!   probability `update_fraction`, else a create when below `target_pods` or a delete when
//!   above (either, at random, when at it).
//! - Creates write a [`realistic_pod`] as the scheduler leaves it: `Pending`, containers
//!   `ContainerCreating`, `Ready=False`. Every [`JOB_EVERY`]-th created pod has
//!   `restartPolicy: OnFailure` (it runs to completion); the others `Always`.
//! - Updates, as the kubelet and controllers write them (`pod_life.rs` has the exact
//!   patches):
//!   - half the time, when pods are waiting to start, the oldest one starts: a `/status`
//!     patch to `Running` with containers running and `Ready=True`;
//!   - otherwise a random pod: if it is `Running`, a `/status` patch that flips its
//!     readiness (probability [`FLIP_READY`]), restarts its `app` container
//!     ([`RESTART`]: `restartCount` + 1, `lastState.terminated` with exit code 1 or 137
//!     and `Ready=False` if it was ready) or ends it ([`FINISH`]: `Succeeded` with exit code 0
//!     for `OnFailure` pods, `Failed` with `reason: Evicted` for `Always` pods); else, and
//!     for pods that are not running, an annotation patch (`panoptes.dev/churn`, manager
//!     `churn`) on the main resource.
//!   - `Ready` and `ContainersReady` get a new `lastTransitionTime` only when their status
//!     flips; times are RFC 3339 with whole seconds.
//! - Pods already in the namespace when it starts are churned too, from the status they have.
//! - Deletes pick a random pod (any phase). They are force deletes (`gracePeriodSeconds=0`):
//!   each is the pair a real server
//!   writes when a pod's kubelet (or an operator's `--force`) finishes it, MODIFIED with
//!   `deletionTimestamp` then DELETED, in one step. Graceful deletes would leave each
//!   deleted pod Terminating for its grace period (30 s by default), so the live count
//!   would drift above `target_pods` by rate × grace and a pod picked for deletion twice
//!   would make a no-op write: the churn's rate and counters would no longer say what
//!   reaches the informers. Graceful deletion is tested through the HTTP API instead.
//! - `stop` (or dropping the `Churn`) ends the thread and waits for it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::pod_life::{Phase, PodLife, Step};
use crate::pods::{ensure_namespace, realistic_pod};
use crate::store::{
    ClusterStore, DeleteOptions, ListOptions, PatchType, ResourceType, Subresource, WriteOptions,
};

/// How long the thread sleeps when it is ahead of the rate (bounds how late a stop is seen).
const PACING_SLEEP: Duration = Duration::from_millis(1);
/// How often `wait` looks at the counters.
const WAIT_POLL: Duration = Duration::from_millis(2);
/// Every this many created pods, one runs to completion (`restartPolicy: OnFailure`).
pub const JOB_EVERY: u64 = 4;
/// Share of updates to a running pod that flip its readiness.
pub const FLIP_READY: f64 = 0.35;
/// Share of updates to a running pod that restart its `app` container.
pub const RESTART: f64 = 0.2;
/// Share of updates to a running pod that end it (`Succeeded` or `Failed`). Small, so that
/// most pods stay running until deleted (about one in eight is finished at a time with the
/// default mix).
pub const FINISH: f64 = 0.08;

/// What a [`Churn`] writes and how fast. The default: 100 pods in `default`, 10 writes/s,
/// 60 % updates, unbounded, seed 1.
#[derive(Debug, Clone)]
pub struct ChurnConfig {
    /// Namespace the pods live in; created if missing.
    pub namespace: String,
    /// Pods kept alive on average (creates and deletes balance around it).
    pub target_pods: usize,
    /// Writes per second, all kinds together.
    pub rate_per_sec: f64,
    /// Share of writes that are updates (rest split between creates and deletes).
    pub update_fraction: f64,
    /// Stop after this many writes (None: until stopped).
    pub max_writes: Option<u64>,
    /// Seeds the RNG that picks each write (same seed, same sequence of kinds and pods), and
    /// names the pods it creates (`churn-<seed>-000042`), so churns with different seeds can
    /// share a namespace.
    pub seed: u64,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            target_pods: 100,
            rate_per_sec: 10.0,
            update_fraction: 0.6,
            max_writes: None,
            seed: 1,
        }
    }
}

/// What a churn run did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChurnStats {
    /// Pods created (each starts `Pending`).
    pub created: u64,
    /// Updates that succeeded: status steps and annotation patches.
    pub updated: u64,
    /// Force deletes that succeeded.
    pub deleted: u64,
}

impl ChurnStats {
    /// All writes together.
    pub fn total(&self) -> u64 {
        self.created + self.updated + self.deleted
    }
}

#[derive(Default)]
struct Counters {
    created: AtomicU64,
    updated: AtomicU64,
    deleted: AtomicU64,
    stop: AtomicBool,
    finished: AtomicBool,
}

impl Counters {
    fn snapshot(&self) -> ChurnStats {
        ChurnStats {
            created: self.created.load(Ordering::Relaxed),
            updated: self.updated.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
        }
    }
}

/// A running churn generator (its own thread). Dropping it stops it.
pub struct Churn {
    counters: Arc<Counters>,
    max_writes: Option<u64>,
    thread: Option<JoinHandle<()>>,
}

impl Churn {
    /// Starts the churn thread on `store`; it creates `config.namespace` if missing. If the
    /// thread cannot be spawned the error is logged and the churn makes no writes.
    pub fn start(store: ClusterStore, config: ChurnConfig) -> Churn {
        let counters = Arc::new(Counters::default());
        let max_writes = config.max_writes;
        let worker = Worker::new(store, config, counters.clone());
        let thread = std::thread::Builder::new()
            .name("sim-churn".into())
            .spawn(move || worker.run());
        let thread = match thread {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::error!(%error, "could not start the churn thread");
                counters.finished.store(true, Ordering::Release);
                None
            }
        };
        Churn {
            counters,
            max_writes,
            thread,
        }
    }

    /// Stops and returns the final stats.
    pub fn stop(mut self) -> ChurnStats {
        self.halt();
        self.counters.snapshot()
    }

    /// What it did so far (writes that failed, e.g. on a pod deleted by someone else, are not counted).
    pub fn stats(&self) -> ChurnStats {
        self.counters.snapshot()
    }

    /// Waits until `max_writes` is reached (returns at once when unbounded), at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> ChurnStats {
        let Some(max) = self.max_writes else {
            return self.stats();
        };
        let deadline = Instant::now() + timeout;
        while self.stats().total() < max
            && !self.counters.finished.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            std::thread::sleep(WAIT_POLL);
        }
        self.stats()
    }

    fn halt(&mut self) {
        self.counters.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the churn thread panicked");
        }
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The churn thread's state.
struct Worker {
    store: ClusterStore,
    config: ChurnConfig,
    counters: Arc<Counters>,
    rng: StdRng,
    /// Names of the pods this churn may update or delete (random picks index this).
    live: Vec<String>,
    /// What the churn last wrote of each live pod's status.
    pods: HashMap<String, PodLife>,
    /// Pods created and not yet started, oldest first (may hold since-deleted names).
    waiting: VecDeque<String>,
    next_seq: u64,
}

enum Action {
    Create,
    Update,
    Delete,
}

impl Worker {
    fn new(store: ClusterStore, config: ChurnConfig, counters: Arc<Counters>) -> Worker {
        let rng = StdRng::seed_from_u64(config.seed);
        Worker {
            store,
            config,
            counters,
            rng,
            live: Vec::new(),
            pods: HashMap::new(),
            waiting: VecDeque::new(),
            next_seq: 0,
        }
    }

    fn run(mut self) {
        ensure_namespace(&self.store, &self.config.namespace);
        let pods = self.store.builtin("", "pods");
        if let Ok(page) =
            self.store
                .list(&pods, Some(&self.config.namespace), &ListOptions::default())
        {
            for pod in &page.items {
                let life = PodLife::observe(&pod.value());
                let name = pod.name().to_string();
                if life.phase() == Phase::Pending {
                    self.waiting.push_back(name.clone());
                }
                self.pods.insert(name.clone(), life);
                self.live.push(name);
            }
        }
        let started = Instant::now();
        let mut done: u64 = 0;
        let rate = self.config.rate_per_sec.max(0.0);
        while !self.counters.stop.load(Ordering::Acquire) {
            if self.config.max_writes.is_some_and(|max| done >= max) {
                break;
            }
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            if done >= due {
                std::thread::sleep(PACING_SLEEP);
                continue;
            }
            self.write_once(&pods);
            done += 1;
        }
        self.counters.finished.store(true, Ordering::Release);
    }

    fn choose(&mut self) -> Action {
        if !self.live.is_empty()
            && self
                .rng
                .random_bool(self.config.update_fraction.clamp(0.0, 1.0))
        {
            return Action::Update;
        }
        let target = self.config.target_pods;
        match self.live.len() {
            0 => Action::Create,
            n if n < target => Action::Create,
            n if n > target => Action::Delete,
            _ if self.rng.random_bool(0.5) => Action::Create,
            _ => Action::Delete,
        }
    }

    fn write_once(&mut self, pods: &ResourceType) {
        match self.choose() {
            Action::Create => self.create(pods),
            Action::Update => self.update(pods),
            Action::Delete => self.delete(pods),
        }
    }

    fn create(&mut self, pods: &ResourceType) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = format!("churn-{}-{seq:06}", self.config.seed);
        let mut pod = realistic_pod(&self.config.namespace, &name, seq);
        let life = PodLife::pending(&mut pod, seq, JOB_EVERY, &now());
        match self.store.insert_as_is(pods, pod) {
            Ok(_) => {
                self.live.push(name.clone());
                self.pods.insert(name.clone(), life);
                self.waiting.push_back(name);
                self.counters.created.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                tracing::debug!(pod = %name, message = %status.message, "churn create failed")
            }
        }
    }

    /// The oldest pod still waiting to start, if any (names deleted meanwhile are dropped).
    fn oldest_waiting(&mut self) -> Option<String> {
        while let Some(name) = self.waiting.front() {
            if self
                .pods
                .get(name)
                .is_some_and(|life| life.allows(Step::Start))
            {
                return Some(name.clone());
            }
            self.waiting.pop_front();
        }
        None
    }

    fn update(&mut self, pods: &ResourceType) {
        let starting = match self.oldest_waiting() {
            Some(name) if self.rng.random_bool(0.5) => Some(name),
            _ => None,
        };
        let (name, step) = match starting {
            Some(name) => {
                self.waiting.pop_front();
                (name, Some(Step::Start))
            }
            None => {
                let name = self.live[self.rng.random_range(0..self.live.len())].clone();
                let roll: f64 = self.rng.random();
                let step = if roll < FLIP_READY {
                    Step::FlipReady
                } else if roll < FLIP_READY + RESTART {
                    Step::Restart
                } else if roll < FLIP_READY + RESTART + FINISH {
                    Step::Finish
                } else {
                    // An annotation patch (below).
                    Step::Start
                };
                let applies = step != Step::Start
                    && self.pods.get(&name).is_some_and(|life| life.allows(step));
                (name, applies.then_some(step))
            }
        };
        let exit_code = if self.rng.random_bool(0.5) { 137 } else { 1 };
        let (sub, body, manager) = match step {
            Some(step) => {
                let Some(life) = self.pods.get_mut(&name) else {
                    return;
                };
                (
                    Subresource::Status,
                    life.advance(step, &now(), exit_code),
                    "kubelet",
                )
            }
            None => {
                let stamp = self.counters.updated.load(Ordering::Relaxed);
                let body =
                    json!({"metadata": {"annotations": {"panoptes.dev/churn": stamp.to_string()}}});
                (Subresource::Main, body, "churn")
            }
        };
        let opts = WriteOptions {
            field_manager: Some(manager.into()),
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&body).expect("JSON values serialize");
        match self.store.patch(
            pods,
            Some(&self.config.namespace),
            &name,
            sub,
            PatchType::StrategicMerge,
            &bytes,
            &opts,
        ) {
            Ok(_) => {
                self.counters.updated.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                if status.code == 404 {
                    self.forget(&name);
                }
                tracing::debug!(pod = %name, message = %status.message, "churn update failed");
            }
        }
    }

    /// Stops churning a pod someone else deleted.
    fn forget(&mut self, name: &str) {
        if let Some(index) = self.live.iter().position(|live| live == name) {
            self.live.swap_remove(index);
        }
        self.pods.remove(name);
    }

    fn delete(&mut self, pods: &ResourceType) {
        let index = self.rng.random_range(0..self.live.len());
        let name = self.live.swap_remove(index);
        self.pods.remove(&name);
        // A force delete: see the module doc for why churn's deletes stay immediate.
        let force = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        match self
            .store
            .delete(pods, Some(&self.config.namespace), &name, &force)
        {
            Ok(_) => {
                self.counters.deleted.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                tracing::debug!(pod = %name, message = %status.message, "churn delete failed")
            }
        }
    }
}

/// Now as the kubelet writes condition times: RFC 3339, whole seconds.
fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[test]
    fn churn_stops_at_max_writes_and_counts_every_kind() {
        let store = ClusterStore::new(StoreConfig::default());
        let config = ChurnConfig {
            namespace: "churn".into(),
            target_pods: 20,
            rate_per_sec: 5_000.0,
            update_fraction: 0.5,
            max_writes: Some(300),
            seed: 7,
        };
        let churn = Churn::start(store.clone(), config);
        let stats = churn.wait(Duration::from_secs(20));
        assert_eq!(stats.total(), 300, "{stats:?}");
        assert!(
            stats.created >= 20 && stats.updated > 0 && stats.deleted > 0,
            "{stats:?}"
        );
        let final_stats = churn.stop();
        assert_eq!(final_stats, stats);
        let pods = store.builtin("", "pods");
        let live = store
            .list(&pods, Some("churn"), &Default::default())
            .unwrap()
            .items
            .len() as u64;
        assert_eq!(live, stats.created - stats.deleted);
    }

    #[test]
    fn an_unbounded_churn_runs_until_stopped() {
        let store = ClusterStore::new(StoreConfig::default());
        let churn = Churn::start(
            store.clone(),
            ChurnConfig {
                rate_per_sec: 2_000.0,
                ..Default::default()
            },
        );
        assert_eq!(
            churn.wait(Duration::from_secs(5)),
            churn.stats(),
            "unbounded wait returns at once"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while churn.stats().total() < 50 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = churn.stop();
        assert!(stats.total() >= 50, "{stats:?}");
        let rv = store.resource_version();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(store.resource_version(), rv, "no writes after stop");
    }
}
