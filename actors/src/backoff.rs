//! Jittered exponential backoff that forgets after a healthy period: client-go's
//! `NewExponentialBackoffManager(800ms, 30s, 2min, 2.0, 1.0)` in `tools/cache/reflector.go`,
//! which kube-runtime's `watcher::DefaultBackoff` copies.
//!
//! Contract:
//! - the n-th consecutive delay is drawn from `[base, base * (1 + JITTER))` where `base` starts
//!   at [`INITIAL_DELAY`] and doubles up to [`MAX_DELAY`];
//! - if [`RESET_AFTER`] has passed since the previous delay was handed out, the sequence starts
//!   over (the reflector was healthy for that long);
//! - a server-given delay (`Retry-After`) wins when it is longer ([`Backoff::next_at_least`]).
//!
//! Time and randomness come in as arguments, so tests run without clocks or seeds.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// First delay: long enough that a flapping API server is not hammered, short enough that a
/// dropped connection costs under a second (client-go and kube-runtime both use 800 ms).
pub const INITIAL_DELAY: Duration = Duration::from_millis(800);

/// Cap of the doubling base (client-go and kube-runtime: 30 s).
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// A reflector that has not needed a delay for this long is healthy again and starts over at
/// [`INITIAL_DELAY`] (client-go's `backoffReset`, kube-runtime's `ResetTimerBackoff`: 2 min).
pub const RESET_AFTER: Duration = Duration::from_secs(120);

/// Jitter factor: client-go's `wait.Jitter(d, 1.0)` adds up to one more `d`, so many reflectors
/// failing at the same instant (an API server restart) spread their retries.
pub const JITTER: f64 = 1.0;

/// The delays of one reflector's consecutive failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The un-jittered delay the next failure gets; always in `INITIAL_DELAY..=MAX_DELAY`.
    base: Duration,
    /// When the previous delay was handed out; `None` before the first failure.
    last: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: INITIAL_DELAY,
            last: None,
        }
    }
}

impl Backoff {
    /// The delay before retrying after a failure at `now`.
    pub fn next(&mut self, now: Instant, rng: &mut impl Rng) -> Duration {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) >= RESET_AFTER)
        {
            self.base = INITIAL_DELAY;
        }
        self.last = Some(now);
        let base = self.base;
        self.base = (self.base * 2).min(MAX_DELAY);
        base.mul_f64(1.0 + JITTER * rng.random::<f64>())
    }

    /// Like [`Backoff::next`], but never shorter than what the server asked for.
    pub fn next_at_least(
        &mut self,
        now: Instant,
        rng: &mut impl Rng,
        server_delay: Option<Duration>,
    ) -> Duration {
        let ours = self.next(now, rng);
        server_delay.map_or(ours, |theirs| ours.max(theirs))
    }

    /// The slowest retry this backoff hands out, jittered: for failures that will not heal by
    /// themselves soon (403 until someone fixes RBAC), so they never become a hot loop.
    pub fn slowest(&mut self, now: Instant, rng: &mut impl Rng) -> Duration {
        self.last = Some(now);
        self.base = MAX_DELAY;
        MAX_DELAY.mul_f64(1.0 + JITTER * rng.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn within(delay: Duration, base: Duration) -> bool {
        delay >= base && delay < base.mul_f64(1.0 + JITTER)
    }

    #[test]
    fn should_double_from_800ms_to_30s_within_jitter_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut backoff = Backoff::default();
        let now = Instant::now();
        let bases = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0].map(Duration::from_secs_f64);
        for base in bases {
            let delay = backoff.next(now, &mut rng);
            assert!(within(delay, base), "{delay:?} not in [{base:?}, 2x)");
        }
    }

    #[test]
    fn should_spread_delays_with_jitter() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let delays: Vec<_> = (0..20)
            .map(|_| Backoff::default().next(now, &mut rng))
            .collect();
        assert!(delays.iter().all(|d| within(*d, INITIAL_DELAY)));
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "no jitter: {delays:?}"
        );
    }

    #[test]
    fn should_start_over_after_two_healthy_minutes() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut backoff = Backoff::default();
        let start = Instant::now();
        for _ in 0..5 {
            backoff.next(start, &mut rng);
        }
        let soon = backoff.next(start + RESET_AFTER / 2, &mut rng);
        assert!(soon >= Duration::from_secs(12), "reset too early: {soon:?}");
        let later = backoff.next(start + RESET_AFTER / 2 + RESET_AFTER, &mut rng);
        assert!(within(later, INITIAL_DELAY), "not reset: {later:?}");
    }

    #[test]
    fn should_wait_at_least_the_server_retry_after() {
        let mut rng = StdRng::seed_from_u64(5);
        let now = Instant::now();
        let asked = Duration::from_secs(7);
        assert_eq!(
            Backoff::default().next_at_least(now, &mut rng, Some(asked)),
            asked
        );
        let mut late = Backoff::default();
        for _ in 0..6 {
            late.next(now, &mut rng);
        }
        assert!(late.next_at_least(now, &mut rng, Some(asked)) >= MAX_DELAY);
    }

    #[test]
    fn should_retry_slowly_when_told_to() {
        let mut rng = StdRng::seed_from_u64(9);
        let delay = Backoff::default().slowest(Instant::now(), &mut rng);
        assert!(within(delay, MAX_DELAY));
    }
}
