//! The informer families, read from the live pipelines at scrape time: client-go's
//! reflector and informer metrics (`tools/cache/reflector_metrics.go`) and controller-runtime's
//! per-handler view, labelled by `cluster` and `resource` because one process watches many
//! clusters.
//!
//! # Contract
//! - **Current when scraped.** Nothing is copied on a timer: each scrape asks every
//!   registered [`StatusSource`] (the [`Runtime`](crate::Runtime)) for its pipelines' state,
//!   so `panoptes_informer_objects` is the cache's size at that moment.
//! - **Series follow the clusters.** A source reports engaged clusters only: a cluster
//!   removed by a reload has no series from the next scrape on (Prometheus marks them stale),
//!   and one added by a reload appears with its counters from zero.
//! - **Counters never go back** while a pipeline lives: they are the pipeline's own totals,
//!   kept across reflector and stage restarts ([`panoptes_actors::watch_counters`]).
//! - When two informers report the same (cluster, resource) — two selections of one
//!   resource — the first reported wins, so no series is exposed twice; handler series are
//!   unique anyway (handler ids are process-wide).
//!
//! The families (counters scraped with `_total`):
//!
//! | family | labels | what |
//! | --- | --- | --- |
//! | `panoptes_informer_synced` | cluster, resource | 1 once the cache holds a complete list and the watch is up, else 0 |
//! | `panoptes_informer_objects` | cluster, resource | objects in the cache |
//! | `panoptes_informer_lists_total` | cluster, resource | LIST requests (each page) |
//! | `panoptes_informer_relists_total` | cluster, resource | lists after the first sync |
//! | `panoptes_informer_watches_total` | cluster, resource | watches opened |
//! | `panoptes_informer_events_total` | cluster, resource, type | watch events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`) |
//! | `panoptes_informer_watch_restarts_total` | cluster, resource, reason | watches ended (`timeout`, `expired`, `error`, `stalled`) |
//! | `panoptes_informer_last_event_age_seconds` | cluster, resource | since the last event or bookmark |
//! | `panoptes_informer_decode_errors_total` | cluster, resource | objects or frames that did not decode |
//! | `panoptes_informer_bad_input_total` | cluster, resource, reason | every kind of bad input |
//! | `panoptes_pipeline_stage_restarts_total` | cluster, resource, stage | restarts after a stage panicked |
//! | `panoptes_listener_backlog` | cluster, resource, handler | events buffered for a handler |
//! | `panoptes_handler_events_total` | cluster, resource, handler, outcome | events `delivered`, `failed` (skipped after panics) or `dropped` (handler gone) |
//! | `panoptes_handler_panics_total` | cluster, resource, handler | handler panics |
//! | `panoptes_handler_latency_seconds` | cluster, resource, handler | histogram: reflector read → handler returned |

use std::collections::BTreeSet;
use std::fmt::Error;
use std::sync::Arc;

use panoptes_actors::latency::LatencySnapshot;
use panoptes_actors::quarantine::BadInput;
use panoptes_actors::reflector::ReflectorState;
use panoptes_actors::watch_counters::{WatchEnd, WatchEventType};
use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder};
use prometheus_client::metrics::MetricType;

use crate::multi_informer::ClusterInformerStatus;

/// Something that reports its pipelines' state on demand; `None` once it is gone (then it
/// is forgotten). The [`Runtime`](crate::Runtime) registers one reporting engaged clusters.
pub type StatusSource = Box<dyn Fn() -> Option<Vec<ClusterInformerStatus>> + Send + Sync>;

/// The sources a [`Metrics`](super::Metrics) reads at scrape time; clones share them.
#[derive(Clone, Default)]
pub(super) struct StatusSources(Arc<RwLock<Vec<StatusSource>>>);

impl std::fmt::Debug for StatusSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatusSources")
            .field(&self.0.read().len())
            .finish()
    }
}

impl StatusSources {
    pub(super) fn add(&self, source: StatusSource) {
        self.0.write().push(source);
    }

    /// Every live source's statuses, one per (cluster, resource); dead sources are dropped.
    fn statuses(&self) -> Vec<ClusterInformerStatus> {
        let mut all = Vec::new();
        let mut dead = false;
        for source in self.0.read().iter() {
            match source() {
                Some(statuses) => all.extend(statuses),
                None => dead = true,
            }
        }
        if dead {
            self.0.write().retain(|source| source().is_some());
        }
        let mut seen = BTreeSet::new();
        all.retain(|s| seen.insert((s.cluster.clone(), s.resource.clone())));
        all
    }
}

/// Encodes the informer families from the sources' statuses on each scrape.
#[derive(Debug)]
pub(super) struct InformerCollector {
    pub(super) sources: StatusSources,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Pipeline {
    cluster: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Typed {
    cluster: String,
    resource: String,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    cluster: String,
    resource: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    cluster: String,
    resource: String,
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    cluster: String,
    resource: String,
    handler: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    cluster: String,
    resource: String,
    handler: String,
    outcome: &'static str,
}

/// Bad input that is a decoding failure (the rest are stream or paging faults).
fn is_decode_error(reason: BadInput) -> bool {
    matches!(
        reason,
        BadInput::InvalidFrame | BadInput::WrongKind | BadInput::Undecodable
    )
}

/// Synced, and not cut off now: a cluster whose reflector backs off after losing its watch
/// (server down, connection refused) or is forbidden shows stale data.
pub(crate) fn is_serving(status: &ClusterInformerStatus) -> bool {
    status.synced
        && !matches!(
            status.state,
            Some(
                ReflectorState::BackingOff { .. }
                    | ReflectorState::Forbidden { .. }
                    | ReflectorState::Stopped
            )
        )
}

/// `(le, count)` per bucket, not cumulative, closed by `+Inf` (what the text encoder wants).
fn histogram_buckets(latency: &LatencySnapshot) -> Vec<(f64, u64)> {
    let mut buckets: Vec<(f64, u64)> = panoptes_actors::latency::LATENCY_BUCKETS
        .iter()
        .copied()
        .zip(latency.buckets)
        .collect();
    let counted: u64 = latency.buckets.iter().sum();
    buckets.push((f64::INFINITY, latency.count.saturating_sub(counted)));
    buckets
}

/// One family: a descriptor, then one sample per item that `sample` encodes.
fn family<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    items: &[T],
    mut sample: impl FnMut(&T, &mut MetricEncoder) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for item in items {
        sample(item, &mut metric)?;
    }
    Ok(())
}

fn counter(metric: &mut MetricEncoder, labels: &impl EncodeLabelSet, v: u64) -> Result<(), Error> {
    metric
        .encode_family(labels)?
        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    metric: &mut MetricEncoder,
    labels: &impl EncodeLabelSet,
    v: V,
) -> Result<(), Error> {
    metric.encode_family(labels)?.encode_gauge(&v)
}

impl Collector for InformerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let statuses = self.sources.statuses();
        let now = tokio::time::Instant::now();
        let e = &mut encoder;
        let pipeline = |s: &ClusterInformerStatus| Pipeline {
            cluster: s.cluster.to_string(),
            resource: s.resource.clone(),
        };
        let s = &statuses;
        family(
            e,
            "panoptes_informer_synced",
            "1 once the cache holds a complete list and its watch is up (not backing off or forbidden), else 0",
            MetricType::Gauge,
            s,
            |s, m| gauge(m, &pipeline(s), i64::from(is_serving(s))),
        )?;
        family(
            e,
            "panoptes_informer_objects",
            "Objects currently in the informer cache",
            MetricType::Gauge,
            s,
            |s, m| gauge(m, &pipeline(s), s.objects as i64),
        )?;
        family(
            e,
            "panoptes_informer_lists",
            "LIST requests made by informers (each page counts once)",
            MetricType::Counter,
            s,
            |s, m| counter(m, &pipeline(s), s.lists),
        )?;
        family(
            e,
            "panoptes_informer_relists",
            "Full relists after the initial list (expired resourceVersion, errors)",
            MetricType::Counter,
            s,
            |s, m| counter(m, &pipeline(s), s.relists),
        )?;
        family(
            e,
            "panoptes_informer_watches",
            "WATCH requests opened by informers",
            MetricType::Counter,
            s,
            |s, m| counter(m, &pipeline(s), s.watches),
        )?;
        family(
            e,
            "panoptes_informer_events",
            "Watch events received, by type",
            MetricType::Counter,
            s,
            |s, m| {
                let Some(watch) = &s.watch else { return Ok(()) };
                for kind in WatchEventType::ALL {
                    let labels = Typed {
                        cluster: s.cluster.to_string(),
                        resource: s.resource.clone(),
                        r#type: kind.label(),
                    };
                    counter(m, &labels, watch.events_of(kind))?;
                }
                Ok(())
            },
        )?;
        family(
            e,
            "panoptes_informer_watch_restarts",
            "Watches that ended and were resumed or replaced by a relist, by reason (timeout, expired, error, stalled)",
            MetricType::Counter,
            s,
            |s, m| {
                let Some(watch) = &s.watch else { return Ok(()) };
                for reason in WatchEnd::ALL {
                    let labels = Reason {
                        cluster: s.cluster.to_string(),
                        resource: s.resource.clone(),
                        reason: reason.label(),
                    };
                    counter(m, &labels, watch.ends_of(reason))?;
                }
                Ok(())
            },
        )?;
        family(
            e,
            "panoptes_informer_last_event_age_seconds",
            "Seconds since the last watch event or bookmark arrived (since the pipeline started, before the first)",
            MetricType::Gauge,
            s,
            |s, m| {
                let Some(watch) = &s.watch else { return Ok(()) };
                gauge(
                    m,
                    &pipeline(s),
                    now.saturating_duration_since(watch.last_event_at)
                        .as_secs_f64(),
                )
            },
        )?;
        family(
            e,
            "panoptes_informer_decode_errors",
            "Objects or frames from servers that did not decode (quarantined objects, invalid frames)",
            MetricType::Counter,
            s,
            |s, m| {
                let errors = s
                    .bad_input
                    .iter()
                    .filter(|(r, _)| is_decode_error(**r))
                    .map(|(_, n)| n)
                    .sum();
                counter(m, &pipeline(s), errors)
            },
        )?;
        family(
            e,
            "panoptes_informer_bad_input",
            "Bad input from servers, by reason: quarantined objects (wrong_kind, undecodable), invalid frames, oversized events, truncated bodies, expired continue tokens",
            MetricType::Counter,
            s,
            |s, m| {
                for (reason, n) in &s.bad_input {
                    let labels = Reason {
                        cluster: s.cluster.to_string(),
                        resource: s.resource.clone(),
                        reason: reason.label(),
                    };
                    counter(m, &labels, *n)?;
                }
                Ok(())
            },
        )?;
        family(
            e,
            "panoptes_pipeline_stage_restarts",
            "Pipeline restarts (from a relist) after a stage panicked, by stage",
            MetricType::Counter,
            s,
            |s, m| {
                for (stage, n) in &s.stage_restarts {
                    let labels = StageLabels {
                        cluster: s.cluster.to_string(),
                        resource: s.resource.clone(),
                        stage: stage.as_str(),
                    };
                    counter(m, &labels, *n)?;
                }
                Ok(())
            },
        )?;
        let handler = |s: &ClusterInformerStatus, id: u64| HandlerLabels {
            cluster: s.cluster.to_string(),
            resource: s.resource.clone(),
            handler: id.to_string(),
        };
        family(
            e,
            "panoptes_listener_backlog",
            "Notifications buffered for a handler and not yet handled",
            MetricType::Gauge,
            s,
            |s, m| {
                for h in &s.handlers {
                    gauge(m, &handler(s, h.handler.0), h.status.backlog as i64)?;
                }
                Ok(())
            },
        )?;
        family(
            e,
            "panoptes_handler_events",
            "Events per handler by outcome: delivered, failed (skipped after panicking), dropped (handler gone)",
            MetricType::Counter,
            s,
            |s, m| {
                for h in &s.handlers {
                    for (outcome, n) in [
                        ("delivered", h.status.delivered),
                        ("failed", h.status.failed),
                        ("dropped", h.status.dropped),
                    ] {
                        let labels = Outcome {
                            cluster: s.cluster.to_string(),
                            resource: s.resource.clone(),
                            handler: h.handler.0.to_string(),
                            outcome,
                        };
                        counter(m, &labels, n)?;
                    }
                }
                Ok(())
            },
        )?;
        family(
            e,
            "panoptes_handler_panics",
            "Times a handler panicked (closures) or stopped mid-event and was restarted (actors)",
            MetricType::Counter,
            s,
            |s, m| {
                for h in &s.handlers {
                    counter(m, &handler(s, h.handler.0), h.status.panics)?;
                }
                Ok(())
            },
        )?;
        family(
            e,
            "panoptes_handler_latency_seconds",
            "Seconds from the reflector reading an event to the handler returning from it",
            MetricType::Histogram,
            s,
            |s, m| {
                for h in &s.handlers {
                    let labels = handler(s, h.handler.0);
                    m.encode_family(&labels)?
                        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                            h.latency.sum_seconds,
                            h.latency.count,
                            &histogram_buckets(&h.latency),
                            None,
                        )?;
                }
                Ok(())
            },
        )?;
        Ok(())
    }
}
