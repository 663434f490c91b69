//! `Metrics`: the process's Prometheus registry, with the metric families controller-runtime
//! users already chart, plus the informer's own.
//!
//! Names follow controller-runtime (`pkg/metrics/workqueue.go`, `pkg/internal/controller/
//! metrics/metrics.go`) so existing dashboards and alerts keep working: `workqueue_*` labelled
//! by queue `name`, `controller_runtime_reconcile_*` by `controller`. Informer families have a
//! `panoptes_` prefix and `cluster`/`resource` labels, because unlike client-go one process
//! watches many clusters. Counters are registered without `_total`; the OpenMetrics encoder
//! appends it, so they are scraped as `workqueue_adds_total` and so on.
//!
//! [`Metrics`] is a cheap clonable handle; each accessor returns the child for one label set,
//! which callers keep and update without further lookups.

use std::fmt;
use std::sync::Arc;

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
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
    /// The reconcile returned an error (it will be retried with backoff).
    Error,
    /// The reconcile asked to run again soon (rate limited).
    Requeue,
    /// The reconcile asked to run again after a delay.
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
    /// ADDED.
    Added,
    /// MODIFIED.
    Modified,
    /// DELETED.
    Deleted,
    /// BOOKMARK (no object; a resourceVersion checkpoint).
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
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    informer_lists: Family<InformerLabels, Counter>,
    informer_watches: Family<InformerLabels, Counter>,
    informer_relists: Family<InformerLabels, Counter>,
    informer_events: Family<EventLabels, Counter>,
    informer_objects: Family<InformerLabels, Gauge>,
    informer_bad_input: Family<BadInputLabels, Counter>,
    listener_backlog: Family<ListenerLabels, Gauge>,
    stage_restarts: Family<StageLabels, Counter>,
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
            reconcile_total: Family::default(),
            reconcile_errors: Family::default(),
            informer_lists: Family::default(),
            informer_watches: Family::default(),
            informer_relists: Family::default(),
            informer_events: Family::default(),
            informer_objects: Family::default(),
            informer_bad_input: Family::default(),
            listener_backlog: Family::default(),
            stage_restarts: Family::default(),
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

    /// The metrics of the work queue called `name`.
    pub fn workqueue(&self, name: &str) -> WorkqueueMetrics {
        let f = &self.families;
        let labels = QueueLabels { name: name.into() };
        WorkqueueMetrics {
            depth: f.workqueue_depth.get_or_create(&labels).clone(),
            adds: f.workqueue_adds.get_or_create(&labels).clone(),
            retries: f.workqueue_retries.get_or_create(&labels).clone(),
            queue_duration: f.workqueue_queue_duration.get_or_create(&labels).clone(),
        }
    }

    /// Counts one reconcile of `controller`; an error also counts in `_errors_total`.
    pub fn record_reconcile(&self, controller: &str, result: ReconcileResult) {
        let f = &self.families;
        let labels = ReconcileLabels {
            controller: controller.into(),
            result: result.label(),
        };
        f.reconcile_total.get_or_create(&labels).inc();
        if result == ReconcileResult::Error {
            let labels = ControllerLabels {
                controller: controller.into(),
            };
            f.reconcile_errors.get_or_create(&labels).inc();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_expose_every_family_with_help_and_labels() {
        let metrics = Metrics::new();
        let queue = metrics.workqueue("pods-controller");
        queue.adds.inc();
        queue.depth.set(3);
        queue.queue_duration.observe(0.002);
        metrics.record_reconcile("pods-controller", ReconcileResult::Error);
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
            "workqueue_depth{name=\"pods-controller\"} 3",
            "workqueue_adds_total{name=\"pods-controller\"} 1",
            "workqueue_queue_duration_seconds_bucket",
            "controller_runtime_reconcile_total{controller=\"pods-controller\",result=\"error\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"pods-controller\"} 1",
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
        metrics.clone().workqueue("q").adds.inc();
        metrics.workqueue("q").adds.inc();
        assert_eq!(metrics.workqueue("q").adds.get(), 2);
    }
}
