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
//!
//! The informer families (`panoptes_informer_*`, `panoptes_listener_backlog`,
//! `panoptes_handler_*`, `panoptes_pipeline_stage_restarts_total`) are not kept here: they
//! are read from the live pipelines at each scrape ([`informer`]), so they are current and
//! follow the clusters a reload adds and removes. The process families (`process_*`) are
//! read from `/proc` at each scrape (`metrics/process.rs`).

use std::fmt;
use std::sync::Arc;

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

/// How one reconcile ended; the `result` label of `controller_runtime_reconcile_total`,
/// spelled as controller-runtime spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    Success,
    Error,
    Requeue,
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
}

struct Families {
    registry: Registry,
    workqueue_depth: Family<QueueLabels, Gauge>,
    workqueue_adds: Family<QueueLabels, Counter>,
    workqueue_retries: Family<QueueLabels, Counter>,
    workqueue_queue_duration: Family<QueueLabels, Histogram, fn() -> Histogram>,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
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
            reconcile_total: Family::default(),
            reconcile_errors: Family::default(),
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

    /// Adds a source of the informer families, asked at each scrape; it answers `None` once
    /// it is gone, and is then forgotten. [`Runtime`](crate::Runtime) registers itself.
    pub fn read_informers_from(&self, source: StatusSource) {
        self.sources.add(source);
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

        let text = metrics.clone().encode();
        for needle in [
            "# HELP workqueue_depth Current depth of workqueue",
            "workqueue_depth{name=\"pods-controller\"} 3",
            "workqueue_adds_total{name=\"pods-controller\"} 1",
            "workqueue_queue_duration_seconds_bucket",
            "controller_runtime_reconcile_total{controller=\"pods-controller\",result=\"error\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"pods-controller\"} 1",
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
        metrics.clone().workqueue("q").adds.inc();
        metrics.workqueue("q").adds.inc();
        assert_eq!(metrics.workqueue("q").adds.get(), 2);
    }
}
