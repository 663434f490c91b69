//! Where a controller and its work queue report what they do: a small sink trait, so this
//! crate knows no metrics library. `panoptes-runtime` implements it over its Prometheus
//! registry under controller-runtime's names (`workqueue_*`, `controller_runtime_*`), as
//! client-go's `workqueue.MetricsProvider` lets a program plug its own.
//!
//! Every method has an empty default, so a test or a program without metrics passes
//! [`NoMetrics`]. Calls come from the queue actor's thread and from the workers; they must be
//! quick and must not block.

use std::time::Duration;

use crate::ids::ClusterId;

/// How one reconcile ended: the `result` label of `controller_runtime_reconcile_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconcileOutcome {
    /// Done: nothing more to do for the key until it changes.
    Success,
    /// The reconciler failed (or could not be reached); the key is retried with backoff.
    Error,
    /// The reconciler asked to be called again with the key's backoff.
    Requeue,
    /// The reconciler asked to be called again after a set delay.
    RequeueAfter,
}

impl ReconcileOutcome {
    /// controller-runtime's spelling of the outcome.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Requeue => "requeue",
            Self::RequeueAfter => "requeue_after",
        }
    }
}

/// Receives a controller's measurements. `cluster` is the cluster of the key concerned.
pub trait ControllerMetrics: Send + Sync + 'static {
    /// A key was added (`workqueue_adds_total`), coalesced or not.
    fn added(&self, _cluster: &ClusterId) {}
    /// Keys of `cluster` waiting to be handed to a worker now (`workqueue_depth`).
    fn depth(&self, _cluster: &ClusterId, _depth: usize) {}
    /// A key waited `_waited` between being queued and handed to a worker
    /// (`workqueue_queue_duration_seconds`).
    fn queued_for(&self, _cluster: &ClusterId, _waited: Duration) {}
    /// A worker held a key for `_worked` (`workqueue_work_duration_seconds`).
    fn worked_for(&self, _cluster: &ClusterId, _worked: Duration) {}
    /// A key was re-added through the rate limiter (`workqueue_retries_total`).
    fn retried(&self, _cluster: &ClusterId) {}
    /// Of the keys of `cluster` being processed now: their summed age and the oldest's
    /// (`workqueue_unfinished_work_seconds`, `workqueue_longest_running_processor_seconds`).
    fn in_progress(&self, _cluster: &ClusterId, _unfinished: Duration, _longest: Duration) {}
    /// One reconcile ended after `_took` (`controller_runtime_reconcile_total`,
    /// `controller_runtime_reconcile_errors_total`, `controller_runtime_reconcile_time_seconds`).
    fn reconciled(&self, _cluster: &ClusterId, _outcome: ReconcileOutcome, _took: Duration) {}
    /// Workers busy in a reconcile now (`controller_runtime_active_workers`).
    fn active_workers(&self, _active: usize) {}
}

/// A sink that records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl ControllerMetrics for NoMetrics {}
