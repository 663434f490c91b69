//! How long a key waits before it is retried: client-go's `DefaultControllerRateLimiter`
//! (`util/workqueue/default_rate_limiters.go`), the maximum of a per-item exponential backoff
//! and an overall token bucket.
//!
//! # Contract
//! - Per item: the n-th consecutive retry of one key waits `base_delay * 2^n`, capped at
//!   `max_delay` (client-go's `ItemExponentialFailureRateLimiter(5ms, 1000s)`); [`forget`]
//!   starts the key over, and [`num_requeues`] counts the retries since the last forget.
//! - Overall: a token bucket of `burst` tokens refilled at `qps` per second (client-go's
//!   `BucketRateLimiter{rate.NewLimiter(10, 100)}`). Each retry reserves one token; when the
//!   bucket is empty the reservation is honoured later, so a storm of failures is spread out
//!   instead of refused (Go's `rate.Limiter.Reserve`).
//! - The delay handed out is the larger of the two.
//!
//! Time comes in as an argument, so tests need no clock.
//!
//! [`forget`]: RateLimiter::forget
//! [`num_requeues`]: RateLimiter::num_requeues

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// First retry delay of one key: short enough that a conflict on write is retried at once,
/// as client-go's default (5 ms).
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(5);

/// Cap of one key's retry delay: client-go's default (1000 s), so a key that always fails is
/// still retried about every quarter of an hour.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(1000);

/// Overall retries per second once the burst is spent (client-go's default, 10/s), so a
/// controller whose every reconcile fails does not hammer the API server.
pub const DEFAULT_QPS: f64 = 10.0;

/// Retries allowed at once before the overall rate applies (client-go's default, 100).
pub const DEFAULT_BURST: u32 = 100;

/// The settings of a [`RateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// First per-item delay; doubles on each consecutive retry.
    pub base_delay: Duration,
    /// Largest per-item delay.
    pub max_delay: Duration,
    /// Overall retries per second once the burst is spent; `f64::INFINITY` turns the bucket
    /// off.
    pub qps: f64,
    /// Retries allowed at once.
    pub burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
        }
    }
}

/// Per-item exponential backoff combined with an overall token bucket. See the module docs.
#[derive(Debug)]
pub struct RateLimiter<T> {
    limits: RateLimits,
    /// Retries of each key since its last forget; a key with none has no entry.
    failures: HashMap<T, u32>,
    /// Tokens left at `refilled`; negative when reservations ran ahead of the refill.
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` before the first reservation (the
    /// bucket starts full).
    refilled: Option<Instant>,
}

impl<T: Eq + Hash + Clone> RateLimiter<T> {
    /// A limiter with the given settings and a full bucket.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            failures: HashMap::new(),
            tokens: f64::from(limits.burst),
            refilled: None,
        }
    }

    /// The settings it applies.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// How long `item` must wait before its next retry, asked at `now`; counts the retry.
    pub fn when(&mut self, item: &T, now: Instant) -> Duration {
        let failures = self.failures.entry(item.clone()).or_insert(0);
        let exponent = (*failures).min(63);
        *failures = failures.saturating_add(1);
        let item_delay = backoff(self.limits.base_delay, exponent, self.limits.max_delay);
        item_delay.max(self.reserve(now))
    }

    /// Starts `item` over: its next retry waits the base delay again.
    pub fn forget(&mut self, item: &T) {
        self.failures.remove(item);
    }

    /// Retries of `item` since it was last forgotten.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.failures.get(item).copied().unwrap_or(0)
    }

    /// Forgets every key `drop` selects (a cluster leaving).
    pub fn forget_where(&mut self, mut drop: impl FnMut(&T) -> bool) {
        self.failures.retain(|key, _| !drop(key));
    }

    /// Reserves one token of the bucket and answers how long until it is available.
    fn reserve(&mut self, now: Instant) -> Duration {
        let qps = self.limits.qps;
        if qps.is_infinite() {
            return Duration::ZERO;
        }
        let burst = f64::from(self.limits.burst);
        if let Some(last) = self.refilled {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * qps).min(burst);
        }
        self.refilled = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else if qps <= 0.0 {
            self.limits.max_delay
        } else {
            Duration::from_secs_f64(-self.tokens / qps)
        }
    }
}

/// `base * 2^exponent`, capped at `max`, without overflowing.
fn backoff(base: Duration, exponent: u32, max: Duration) -> Duration {
    let factor = 2f64.powi(exponent.min(1023) as i32);
    let secs = base.as_secs_f64() * factor;
    if !secs.is_finite() || secs >= max.as_secs_f64() {
        max
    } else {
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_bucket() -> RateLimits {
        RateLimits {
            qps: f64::INFINITY,
            ..RateLimits::default()
        }
    }

    #[test]
    fn should_double_per_item_and_start_over_after_forget() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(no_bucket());
        let delays: Vec<_> = (0..4).map(|_| limiter.when(&"a", now)).collect();
        assert_eq!(delays, [5, 10, 20, 40].map(Duration::from_millis));
        assert_eq!(limiter.when(&"b", now), Duration::from_millis(5));
        assert_eq!(limiter.num_requeues(&"a"), 4);
        limiter.forget(&"a");
        assert_eq!(limiter.num_requeues(&"a"), 0);
        assert_eq!(limiter.when(&"a", now), Duration::from_millis(5));
    }

    #[test]
    fn should_cap_the_item_delay() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(no_bucket());
        let last = (0..100).map(|_| limiter.when(&"a", now)).last();
        assert_eq!(last, Some(DEFAULT_MAX_DELAY));
    }

    #[test]
    fn should_spread_retries_past_the_burst_at_the_bucket_rate() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(RateLimits {
            base_delay: Duration::ZERO,
            ..RateLimits::default()
        });
        for i in 0..100 {
            assert_eq!(limiter.when(&i, now), Duration::ZERO, "burst item {i}");
        }
        assert_eq!(limiter.when(&100, now), Duration::from_millis(100));
        assert_eq!(limiter.when(&101, now), Duration::from_millis(200));
        // A second later ten tokens came back; two of them paid the reservations above.
        let later = now + Duration::from_secs(1);
        let delays: Vec<_> = (200..210).map(|i| limiter.when(&i, later)).collect();
        assert_eq!(delays[..8], [Duration::ZERO; 8]);
        assert_eq!(delays[8], Duration::from_millis(100));
    }

    #[test]
    fn should_answer_the_larger_of_item_and_bucket_delays() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(RateLimits {
            burst: 1,
            qps: 1.0,
            ..RateLimits::default()
        });
        assert_eq!(limiter.when(&"a", now), Duration::from_millis(5));
        assert_eq!(limiter.when(&"a", now), Duration::from_secs(1));
    }
}
