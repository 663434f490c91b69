//! [`LatencyHistogram`]: a fixed-bucket histogram of durations in atomics, written by one
//! listener per handled event and read at scrape time without a message.
//!
//! It measures a handler's event latency: from the moment the reflector read the event from
//! the server to the moment the handler returned (controller-runtime measures its reconciles
//! the same way, `controller_runtime_reconcile_time_seconds`, but from the work queue's pop).
//! The bounds ([`LATENCY_BUCKETS`]) span half a millisecond (an idle pipeline's four
//! mailbox hops) to a minute (a handler stuck behind a long backlog), so a Prometheus
//! `histogram_quantile` over them resolves both. The actors crate keeps its own histogram
//! instead of taking a metrics library: the runtime encodes the snapshot in whatever format
//! it exposes.
//!
//! # Contract
//! - Bucket counts are not cumulative here; [`LatencySnapshot::cumulative`] gives the
//!   Prometheus form. An observation above the last bound counts only in the total.
//! - Writers and readers never block each other; a snapshot taken during an observation may
//!   see the count before the sum (a reader sees at most one observation's skew).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the histogram's buckets (`le`), ascending.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Durations counted by bucket. See the module docs.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket of [`LATENCY_BUCKETS`] (at most its bound, above the previous).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum of all observations, in nanoseconds (584 years fit).
    sum_nanos: AtomicU64,
}

/// A copy of a [`LatencyHistogram`] at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// Observations in each bucket of [`LATENCY_BUCKETS`], not cumulative.
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    /// Every observation, including those above the last bound.
    pub count: u64,
    /// Sum of every observation, in seconds.
    pub sum_seconds: f64,
}

impl LatencySnapshot {
    /// `(le, observations at most le)` per bucket, as Prometheus exposes them (the `+Inf`
    /// bucket is [`count`](Self::count)).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        LATENCY_BUCKETS
            .iter()
            .zip(self.buckets)
            .map(|(le, n)| {
                total += n;
                (*le, total)
            })
            .collect()
    }
}

impl LatencyHistogram {
    /// Counts one observation.
    pub fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram now.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_count_each_observation_in_the_first_bucket_that_holds_it() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(200));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(120));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum_seconds - 120.0312).abs() < 1e-9);
        let cumulative = snapshot.cumulative();
        assert_eq!(cumulative[0], (0.0005, 1));
        assert_eq!(cumulative[1], (0.001, 2), "a bound is inclusive");
        assert_eq!(cumulative[5], (0.025, 2));
        assert_eq!(cumulative[6], (0.05, 3));
        assert_eq!(
            cumulative.last().copied(),
            Some((60.0, 3)),
            "above the last bound: only in the count (+Inf)"
        );
    }
}
