//! `Metrics`: the process's Prometheus registry, with the metric families controller-runtime
//! users already chart, plus the informer's own.
//!
//! Names follow controller-runtime (`pkg/metrics/workqueue.go`, `pkg/internal/controller/
//! metrics/metrics.go`) so existing dashboards and alerts keep working: `workqueue_*` labelled
//! by queue `name`, `controller_runtime_reconcile_*` by `controller`, each also by `cluster`
//! (one controller's queue holds the keys of every cluster). Informer families have a
//! `panoptes_` prefix and `cluster`/`resource` labels, because unlike client-go one process
//! watches many clusters. Counters are registered without `_total`; the OpenMetrics encoder
//! appends it, so they are scraped as `workqueue_adds_total` and so on.
//!
//! [`Metrics`] is a cheap clonable handle; each accessor returns the child for one label set,
//! which callers keep and update without further lookups.
//!
//! The informer families (`panoptes_informer_*`, `panoptes_listener_backlog`,
//! `panoptes_handler_*`, `panoptes_pipeline_stage_restarts_total`) are not kept here: they
//! are read from the live pipelines at each scrape ([`informer`]), so they are current and
//! follow the clusters a reload adds and removes. The process families (`process_*`) are
//! read from `/proc` at each scrape (`metrics/process.rs`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub mod informer;
mod process;

pub use informer::StatusSource;

/// Content type of [`Metrics::encode`]'s output, for the `/metrics` response.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// controller-runtime's queue-latency buckets (`ExponentialBuckets(10e-9, 10, 12)`): 10ns to
/// 1000s, so the same histogram_quantile queries work on our scrape.
fn queue_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(10e-9, 10.0, 12))
}

/// controller-runtime's reconcile-time buckets (`pkg/internal/controller/metrics`), in
/// seconds, so the same dashboards read our scrape.
const RECONCILE_TIME_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0,
    25.0, 30.0, 40.0, 50.0, 60.0,
];

fn reconcile_time_histogram() -> Histogram {
    Histogram::new(RECONCILE_TIME_BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: String,
    cluster: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
    cluster: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    controller: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    cluster: String,
    result: &'static str,
}

/// How one reconcile ended; the `result` label of `controller_runtime_reconcile_total`,
/// spelled as controller-runtime spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// The reconcile succeeded and asked for nothing more.
    Success,
    /// The reconcile failed; the key is retried with backoff.
    Error,
    /// The reconciler asked to be called again with the key's backoff.
    Requeue,
    /// The reconciler asked to be called again after a set delay.
    RequeueAfter,
}

impl ReconcileResult {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Requeue => "requeue",
            Self::RequeueAfter => "requeue_after",
        }
    }
}

/// The metrics of one work queue, as a queue implementation updates them.
#[derive(Debug, Clone)]
pub struct WorkqueueMetrics {
    /// `workqueue_depth`: keys waiting now.
    pub depth: Gauge,
    /// `workqueue_adds_total`: keys added.
    pub adds: Counter,
    /// `workqueue_retries_total`: rate-limited re-adds.
    pub retries: Counter,
    /// `workqueue_queue_duration_seconds`: time from add to being handed to a worker.
    pub queue_duration: Histogram,
    /// `workqueue_work_duration_seconds`: time a worker held a key.
    pub work_duration: Histogram,
    /// `workqueue_unfinished_work_seconds`: summed age of the keys being processed now.
    pub unfinished_work: Gauge<f64, AtomicU64>,
    /// `workqueue_longest_running_processor_seconds`: age of the oldest key being processed.
    pub longest_running: Gauge<f64, AtomicU64>,
}

/// The reconcile metrics of one controller on one cluster.
#[derive(Debug, Clone)]
pub struct ReconcileMetrics {
    /// `controller_runtime_reconcile_time_seconds`: how long each reconcile took.
    pub time: Histogram,
}

struct Families {
    registry: Registry,
    workqueue_depth: Family<QueueLabels, Gauge>,
    workqueue_adds: Family<QueueLabels, Counter>,
    workqueue_retries: Family<QueueLabels, Counter>,
    workqueue_queue_duration: Family<QueueLabels, Histogram, fn() -> Histogram>,
    workqueue_work_duration: Family<QueueLabels, Histogram, fn() -> Histogram>,
    workqueue_unfinished: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    workqueue_longest: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    reconcile_time: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    active_workers: Family<WorkerLabels, Gauge>,
    leader_status: Family<LeaseLabels, Gauge>,
    shard_owned: Gauge,
    shard_handoffs: Family<ReasonLabels, Counter>,
    shard_renew: Histogram,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// The process's metrics; clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
    /// What the informer families are read from at scrape time.
    sources: informer::StatusSources,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every family registered (and no series until first use).
    pub fn new() -> Self {
        let mut f = Families {
            workqueue_depth: Family::default(),
            workqueue_adds: Family::default(),
            workqueue_retries: Family::default(),
            workqueue_queue_duration: Family::new_with_constructor(queue_duration_histogram),
            workqueue_work_duration: Family::new_with_constructor(queue_duration_histogram),
            workqueue_unfinished: Family::default(),
            workqueue_longest: Family::default(),
            reconcile_total: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_time: Family::new_with_constructor(reconcile_time_histogram),
            active_workers: Family::default(),
            leader_status: Family::default(),
            shard_owned: Gauge::default(),
            shard_handoffs: Family::default(),
            // 5 ms to ~10 s: a renew is one GET and one PUT, and anything near
            // renew_deadline (10 s by default) is a replica about to lose its clusters.
            shard_renew: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            registry: Registry::default(),
        };
        let r = &mut f.registry;
        r.register(
            "workqueue_depth",
            "Current depth of workqueue",
            f.workqueue_depth.clone(),
        );
        r.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            f.workqueue_adds.clone(),
        );
        r.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            f.workqueue_retries.clone(),
        );
        r.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            f.workqueue_queue_duration.clone(),
        );
        r.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            f.workqueue_work_duration.clone(),
        );
        r.register(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by work_duration",
            f.workqueue_unfinished.clone(),
        );
        r.register(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running",
            f.workqueue_longest.clone(),
        );
        r.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            f.reconcile_total.clone(),
        );
        r.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            f.reconcile_errors.clone(),
        );
        r.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            f.reconcile_time.clone(),
        );
        r.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            f.active_workers.clone(),
        );
        r.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
            f.leader_status.clone(),
        );
        r.register(
            "panoptes_shard_owned_clusters",
            "Clusters this replica holds the shard Lease of and watches ([sharding])",
            f.shard_owned.clone(),
        );
        r.register(
            "panoptes_shard_handoffs",
            "Clusters engaged or disengaged here, by reason (acquired, expired_peer, rebalanced, released, lost)",
            f.shard_handoffs.clone(),
        );
        r.register(
            "panoptes_shard_lease_renew_seconds",
            "Time a successful renew of a peer or shard Lease took",
            f.shard_renew.clone(),
        );
        // Read from the live pipelines and /proc at each scrape (see the module docs).
        let sources = informer::StatusSources::default();
        r.register_collector(Box::new(informer::InformerCollector {
            sources: sources.clone(),
        }));
        r.register_collector(Box::new(process::ProcessCollector));
        Self {
            families: Arc::new(f),
            sources,
        }
    }

    /// The text exposition (OpenMetrics) of every series; see [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric.
        if let Err(e) =
            prometheus_client::encoding::text::encode(&mut text, &self.families.registry)
        {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        text
    }

    /// The metrics of the work queue called `name`, for the keys of `cluster`.
    pub fn workqueue(&self, name: &str, cluster: &str) -> WorkqueueMetrics {
        let f = &self.families;
        let labels = QueueLabels {
            name: name.into(),
            cluster: cluster.into(),
        };
        WorkqueueMetrics {
            depth: f.workqueue_depth.get_or_create(&labels).clone(),
            adds: f.workqueue_adds.get_or_create(&labels).clone(),
            retries: f.workqueue_retries.get_or_create(&labels).clone(),
            queue_duration: f.workqueue_queue_duration.get_or_create(&labels).clone(),
            work_duration: f.workqueue_work_duration.get_or_create(&labels).clone(),
            unfinished_work: f.workqueue_unfinished.get_or_create(&labels).clone(),
            longest_running: f.workqueue_longest.get_or_create(&labels).clone(),
        }
    }

    /// Counts one reconcile of `controller` on `cluster`; an error also counts in
    /// `_errors_total`.
    pub fn record_reconcile(&self, controller: &str, cluster: &str, result: ReconcileResult) {
        let f = &self.families;
        let labels = ReconcileLabels {
            controller: controller.into(),
            cluster: cluster.into(),
            result: result.label(),
        };
        f.reconcile_total.get_or_create(&labels).inc();
        if result == ReconcileResult::Error {
            let labels = ControllerLabels {
                controller: controller.into(),
                cluster: cluster.into(),
            };
            f.reconcile_errors.get_or_create(&labels).inc();
        }
    }

    /// The reconcile metrics of `controller` on `cluster`.
    pub fn reconcile(&self, controller: &str, cluster: &str) -> ReconcileMetrics {
        let labels = ControllerLabels {
            controller: controller.into(),
            cluster: cluster.into(),
        };
        ReconcileMetrics {
            time: self.families.reconcile_time.get_or_create(&labels).clone(),
        }
    }

    /// `controller_runtime_active_workers` of `controller`: workers in a reconcile now.
    pub fn active_workers(&self, controller: &str) -> Gauge {
        let labels = WorkerLabels {
            controller: controller.into(),
        };
        self.families.active_workers.get_or_create(&labels).clone()
    }

    /// Adds a source of the informer families, asked at each scrape; it answers `None` once
    /// it is gone, and is then forgotten. [`Runtime`](crate::Runtime) registers itself.
    pub fn read_informers_from(&self, source: StatusSource) {
        self.sources.add(source);
    }
}

impl Metrics {
    /// client-go's `leader_election_master_status{name}` gauge for the Lease `name`: 1 while
    /// this process leads, 0 otherwise.
    pub fn leader_election_status(&self, name: &str) -> Gauge {
        let labels = LeaseLabels { name: name.into() };
        self.families.leader_status.get_or_create(&labels).clone()
    }

    /// `panoptes_shard_owned_clusters`: how many clusters this replica holds now.
    pub fn shard_owned_clusters(&self) -> Gauge {
        self.families.shard_owned.clone()
    }

    /// `panoptes_shard_handoffs_total{reason}`: one per cluster engaged or disengaged here.
    pub fn shard_handoff(&self, reason: &str) -> Counter {
        let labels = ReasonLabels {
            reason: reason.into(),
        };
        self.families.shard_handoffs.get_or_create(&labels).clone()
    }

    /// `panoptes_shard_lease_renew_seconds`: latency of each successful Lease renew.
    pub fn shard_lease_renew(&self) -> Histogram {
        self.families.shard_renew.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_expose_every_family_with_help_and_labels() {
        let metrics = Metrics::new();
        let queue = metrics.workqueue("pods-controller", "east");
        queue.adds.inc();
        queue.depth.set(3);
        queue.queue_duration.observe(0.002);
        queue.work_duration.observe(0.5);
        queue.unfinished_work.set(1.5);
        queue.longest_running.set(1.0);
        metrics.record_reconcile("pods-controller", "east", ReconcileResult::Error);
        metrics
            .reconcile("pods-controller", "east")
            .time
            .observe(0.01);
        metrics.active_workers("pods-controller").set(2);

        let text = metrics.clone().encode();
        for needle in [
            "# HELP workqueue_depth Current depth of workqueue",
            "workqueue_depth{name=\"pods-controller\",cluster=\"east\"} 3",
            "workqueue_adds_total{name=\"pods-controller\",cluster=\"east\"} 1",
            "workqueue_queue_duration_seconds_bucket",
            "workqueue_work_duration_seconds_sum{name=\"pods-controller\",cluster=\"east\"} 0.5",
            "workqueue_unfinished_work_seconds{name=\"pods-controller\",cluster=\"east\"} 1.5",
            "workqueue_longest_running_processor_seconds{name=\"pods-controller\",cluster=\"east\"} 1.0",
            "controller_runtime_reconcile_total{controller=\"pods-controller\",cluster=\"east\",result=\"error\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"pods-controller\",cluster=\"east\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"pods-controller\",cluster=\"east\"} 1",
            "controller_runtime_active_workers{controller=\"pods-controller\"} 2",
            "# TYPE panoptes_informer_objects gauge",
            "# TYPE workqueue_retries counter",
            "# TYPE panoptes_informer_relists counter",
            "# TYPE panoptes_informer_watches counter",
            "# TYPE panoptes_informer_events counter",
            "# TYPE panoptes_handler_latency_seconds histogram",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn should_share_series_between_clones() {
        let metrics = Metrics::new();
        metrics.clone().workqueue("q", "east").adds.inc();
        metrics.workqueue("q", "east").adds.inc();
        assert_eq!(metrics.workqueue("q", "east").adds.get(), 2);
    }
}
