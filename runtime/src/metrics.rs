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

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InformerLabels {
    cluster: String,
    resource: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BadInputLabels {
    cluster: String,
    resource: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    cluster: String,
    resource: String,
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    cluster: String,
    resource: String,
    r#type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    cluster: String,
    resource: String,
    handler: String,
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

/// A watch event's type, the `type` label of `panoptes_informer_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
}

impl EventType {
    fn label(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
            Self::Bookmark => "BOOKMARK",
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

/// The metrics of one informer (one cluster, one resource).
#[derive(Debug, Clone)]
pub struct InformerMetrics {
    /// `panoptes_informer_lists_total`: LIST requests (each page counts once).
    pub lists: Counter,
    /// `panoptes_informer_watches_total`: WATCH requests opened.
    pub watches: Counter,
    /// `panoptes_informer_relists_total`: full relists after the first (410 Gone, errors).
    pub relists: Counter,
    /// `panoptes_informer_objects`: objects in the cache now.
    pub objects: Gauge,
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
    informer_lists: Family<InformerLabels, Counter>,
    informer_watches: Family<InformerLabels, Counter>,
    informer_relists: Family<InformerLabels, Counter>,
    informer_events: Family<EventLabels, Counter>,
    informer_objects: Family<InformerLabels, Gauge>,
    informer_bad_input: Family<BadInputLabels, Counter>,
    listener_backlog: Family<ListenerLabels, Gauge>,
    stage_restarts: Family<StageLabels, Counter>,
    leader_status: Family<LeaseLabels, Gauge>,
}

/// The process's metrics; clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
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
            informer_lists: Family::default(),
            informer_watches: Family::default(),
            informer_relists: Family::default(),
            informer_events: Family::default(),
            informer_objects: Family::default(),
            informer_bad_input: Family::default(),
            listener_backlog: Family::default(),
            stage_restarts: Family::default(),
            leader_status: Family::default(),
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
            "panoptes_informer_lists",
            "LIST requests made by informers",
            f.informer_lists.clone(),
        );
        r.register(
            "panoptes_informer_watches",
            "WATCH requests opened by informers",
            f.informer_watches.clone(),
        );
        r.register(
            "panoptes_informer_relists",
            "Full relists after the initial list (expired resourceVersion, errors)",
            f.informer_relists.clone(),
        );
        r.register(
            "panoptes_informer_events",
            "Watch events received, by type",
            f.informer_events.clone(),
        );
        r.register(
            "panoptes_informer_objects",
            "Objects currently in the informer cache",
            f.informer_objects.clone(),
        );
        r.register(
            "panoptes_informer_bad_input",
            "Bad input from servers, by reason: quarantined objects (wrong_kind, undecodable), invalid frames, oversized events, truncated bodies, expired continue tokens",
            f.informer_bad_input.clone(),
        );
        r.register(
            "panoptes_listener_backlog",
            "Notifications buffered for a handler and not yet delivered",
            f.listener_backlog.clone(),
        );
        r.register(
            "panoptes_pipeline_stage_restarts",
            "Pipeline restarts (from a relist) after a stage panicked, by stage",
            f.stage_restarts.clone(),
        );
        r.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
            f.leader_status.clone(),
        );
        Self {
            families: Arc::new(f),
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

    /// The metrics of the informer for `resource` (e.g. `apps/v1/deployments`) on `cluster`.
    pub fn informer(&self, cluster: &str, resource: &str) -> InformerMetrics {
        let f = &self.families;
        let labels = InformerLabels {
            cluster: cluster.into(),
            resource: resource.into(),
        };
        InformerMetrics {
            lists: f.informer_lists.get_or_create(&labels).clone(),
            watches: f.informer_watches.get_or_create(&labels).clone(),
            relists: f.informer_relists.get_or_create(&labels).clone(),
            objects: f.informer_objects.get_or_create(&labels).clone(),
        }
    }

    /// The `panoptes_informer_events_total` counter for one event type.
    pub fn informer_events(&self, cluster: &str, resource: &str, event: EventType) -> Counter {
        let labels = EventLabels {
            cluster: cluster.into(),
            resource: resource.into(),
            r#type: event.label(),
        };
        self.families.informer_events.get_or_create(&labels).clone()
    }

    /// The `panoptes_informer_bad_input_total` counter for one reason (a
    /// [`BadInput`](panoptes_actors::quarantine::BadInput) label).
    pub fn informer_bad_input(
        &self,
        cluster: &str,
        resource: &str,
        reason: &'static str,
    ) -> Counter {
        let labels = BadInputLabels {
            cluster: cluster.into(),
            resource: resource.into(),
            reason,
        };
        self.families
            .informer_bad_input
            .get_or_create(&labels)
            .clone()
    }

    /// The `panoptes_pipeline_stage_restarts_total` counter of one stage (`reflector`,
    /// `fifo`, `indexer`, `processor`) of one informer.
    pub fn stage_restarts(&self, cluster: &str, resource: &str, stage: &'static str) -> Counter {
        let labels = StageLabels {
            cluster: cluster.into(),
            resource: resource.into(),
            stage,
        };
        self.families.stage_restarts.get_or_create(&labels).clone()
    }

    /// The `panoptes_listener_backlog` gauge of one handler's listener.
    pub fn listener_backlog(&self, cluster: &str, resource: &str, handler: &str) -> Gauge {
        let labels = ListenerLabels {
            cluster: cluster.into(),
            resource: resource.into(),
            handler: handler.into(),
        };
        self.families
            .listener_backlog
            .get_or_create(&labels)
            .clone()
    }
}

impl Metrics {
    /// client-go's `leader_election_master_status{name}` gauge for the Lease `name`: 1 while
    /// this process leads, 0 otherwise.
    pub fn leader_election_status(&self, name: &str) -> Gauge {
        let labels = LeaseLabels { name: name.into() };
        self.families.leader_status.get_or_create(&labels).clone()
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
        metrics.informer("east", "v1/pods").lists.inc();
        metrics
            .informer_events("east", "v1/pods", EventType::Added)
            .inc_by(5);
        metrics
            .listener_backlog("east", "v1/pods", "printer")
            .set(7);
        metrics
            .informer_bad_input("east", "v1/pods", "wrong_kind")
            .inc();

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
            "panoptes_informer_lists_total{cluster=\"east\",resource=\"v1/pods\"} 1",
            "panoptes_informer_events_total{cluster=\"east\",resource=\"v1/pods\",type=\"ADDED\"} 5",
            "panoptes_listener_backlog{cluster=\"east\",resource=\"v1/pods\",handler=\"printer\"} 7",
            "panoptes_informer_bad_input_total{cluster=\"east\",resource=\"v1/pods\",reason=\"wrong_kind\"} 1",
            "# TYPE panoptes_informer_objects gauge",
            "# TYPE workqueue_retries counter",
            "# TYPE panoptes_informer_relists counter",
            "# TYPE panoptes_informer_watches counter",
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
