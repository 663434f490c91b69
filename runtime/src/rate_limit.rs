//! Client-side request rate limiting: client-go's token bucket
//! (`flowcontrol.NewTokenBucketRateLimiter(qps, burst)`, set from `rest.Config.QPS`/`Burst`)
//! as a tower layer on a cluster's `kube::Client`.
//!
//! # Contract
//!
//! - The bucket starts full: the first `burst` requests go out at once, as in client-go.
//! - Tokens refill at `qps` per second up to `burst`; each request (a list page, a watch, a
//!   write) takes one token, waiting in `poll_ready` until one is available.
//! - The wait is a tokio timer, never a blocked thread. kube's client buffers requests in front
//!   of this layer, so callers queue fairly in arrival order.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// A token bucket: `tokens` refill at `qps` per second, never above `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    /// Tokens available at `updated`; always within `0.0..=burst`.
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket. `qps` must be positive and `burst` at least 1 (validated in config).
    pub fn new(qps: f32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: f64::from(qps).max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            updated: Instant::now(),
        }
    }

    /// Takes a token at `now`, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// Wraps a service so that its requests are admitted by a [`TokenBucket`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitLayer {
    /// Requests per second admitted on average (client-go's `QPS`).
    pub qps: f32,
    /// Requests admitted at once before `qps` applies (client-go's `Burst`).
    pub burst: u32,
}

impl RateLimitLayer {
    /// The limiter for `qps`/`burst` as configured; `None` without `qps` (unlimited, kube's
    /// default). A missing `burst` is `ceil(qps)`: about one second's worth of requests.
    pub fn from_config(qps: Option<f32>, burst: Option<u32>) -> Option<Self> {
        let qps = qps?;
        let burst = burst.unwrap_or_else(|| (qps.ceil() as u32).max(1));
        Some(Self { qps, burst })
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: TokenBucket::new(self.qps, self.burst),
            wait: None,
            admitted: false,
        }
    }
}

/// The service produced by [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimited<S> {
    inner: S,
    bucket: TokenBucket,
    /// Set while waiting for the next token.
    wait: Option<Pin<Box<Sleep>>>,
    /// A token was taken for the next `call`; cleared by `call`.
    admitted: bool,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.admitted {
            if let Some(wait) = self.wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                self.wait = None;
            }
            match self.bucket.try_take(Instant::now()) {
                Ok(()) => self.admitted = true,
                Err(delay) => self.wait = Some(Box::pin(tokio::time::sleep(delay))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.admitted = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[test]
    fn should_start_full_then_refill_at_qps() {
        let mut bucket = TokenBucket::new(10.0, 2);
        let start = bucket.updated;
        assert_eq!(bucket.try_take(start), Ok(()));
        assert_eq!(bucket.try_take(start), Ok(()));
        let wait = bucket.try_take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert_eq!(bucket.try_take(start + Duration::from_millis(100)), Ok(()));
        // Never more than `burst` saved up, however long it was idle.
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.try_take(later), Ok(()));
        assert_eq!(bucket.try_take(later), Ok(()));
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn should_default_burst_to_one_second_of_qps() {
        assert_eq!(RateLimitLayer::from_config(None, Some(5)), None);
        assert_eq!(
            RateLimitLayer::from_config(Some(2.5), None),
            Some(RateLimitLayer { qps: 2.5, burst: 3 })
        );
        assert_eq!(
            RateLimitLayer::from_config(Some(0.2), None),
            Some(RateLimitLayer { qps: 0.2, burst: 1 })
        );
    }

    /// Answers every request with its own number.
    struct Echo;

    impl Service<u32> for Echo {
        type Response = u32;
        type Error = Infallible;
        type Future = std::future::Ready<Result<u32, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: u32) -> Self::Future {
            std::future::ready(Ok(request))
        }
    }

    #[tokio::test]
    async fn should_space_requests_beyond_the_burst_by_one_over_qps() {
        let mut service = RateLimitLayer {
            qps: 50.0,
            burst: 1,
        }
        .layer(Echo);
        let start = Instant::now();
        for i in 0..4 {
            futures::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .unwrap();
            assert_eq!(service.call(i).await, Ok(i));
        }
        // Three waits of 20ms each after the first (free) request.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(59), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}
