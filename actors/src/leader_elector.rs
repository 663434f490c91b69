//! [`LeaderElector`]: client-go's `tools/leaderelection.LeaderElector` as an actor. It keeps
//! trying to hold one Lease ([`LeaseLock`]) and drives the [`Leadership`] gate controllers
//! consult: open while it holds the Lease, closed otherwise.
//!
//! # Contract
//! - **Acquire.** While following it tries every `retry_period`, jittered as client-go does
//!   (`wait.JitterUntil` with [`JITTER_FACTOR`] 1.2: each wait is `retry_period × (1 + 1.2 ×
//!   rand)`), so candidates started together do not write in lockstep. The first attempt is
//!   immediate. A Lease held by another is free once its record has not changed for its
//!   `leaseDurationSeconds` as observed *here* (see [`LeaseLock`]).
//! - **Renew.** While leading it renews every `retry_period` (no jitter, as client-go's renew
//!   loop). A successful renew sent at `t` vouches for leadership until `t + renew_deadline`.
//! - **Losing.** When that moment passes without a newer successful renew — the server answers
//!   errors, stalls, or cannot be reached — the gate closes *at* that moment, on a timer, not
//!   when a hanging request finally fails. Because `renew_deadline < lease_duration` and other
//!   candidates count the lease from when *they* saw our last renew (after we sent it), our
//!   gate is closed before anyone else may take the Lease: no split brain, given clocks that
//!   run at the same rate. Seeing another holder closes the gate at once. Unlike
//!   controller-runtime (which exits the process), the elector then keeps trying as a follower.
//! - **Clean stop** ([`LeaderElection::release`]): the gate closes first, then the Lease is
//!   written free (client-go's `ReleaseOnCancel`), so another candidate takes over at its next
//!   attempt instead of after the lease duration.
//! - **Abandon** ([`LeaderElection::abandon`]): the actor stops without writing anything, as a
//!   crashed process would; others take over once the lease runs out.
//! - "became leader" and "lost leadership" are logged once per change, with the identity.
//!
//! # Lifecycle
//! Started by [`LeaderElector::start`] on the current actix arbiter. It stops on `Release` or
//! `Abandon`, or with its system. It is not restarted: once stopped, its gate reads closed
//! for good ([`Leadership`] treats a gone elector as "not leader").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::leadership::Leadership;
use crate::lease_lock::{Attempt, LeaseError, LeaseLock, LeaseStatus, Observation};

/// client-go's `leaderelection.JitterFactor`: acquire attempts wait `retry_period × (1 +
/// 1.2 × rand)`.
pub const JITTER_FACTOR: f64 = 1.2;

/// Lease duration, renew deadline and retry period of one election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTimings {
    /// How long others wait, after last seeing the Lease change, before taking it.
    /// Default 15 s (client-go and controller-runtime).
    pub lease_duration: Duration,
    /// How long the leader may go without a successful renew before it closes its gate.
    /// Default 10 s.
    pub renew_deadline: Duration,
    /// Wait between two attempts to acquire or renew. Default 2 s.
    pub retry_period: Duration,
}

impl Default for ElectionTimings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Timings that would allow two leaders at once or could never renew (client-go's checks in
/// `NewLeaderElector`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// A duration is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// `lease_duration` must exceed `renew_deadline`, or a leader cut off from the server
    /// would still act after others may take over.
    #[error(
        "lease_duration ({lease_duration:?}) must be greater than renew_deadline ({renew_deadline:?}), or a cut-off leader could still act after another took over"
    )]
    LeaseNotLongerThanRenew {
        /// The lease duration given.
        lease_duration: Duration,
        /// The renew deadline given.
        renew_deadline: Duration,
    },
    /// `renew_deadline` must exceed `retry_period × 1.2`, or a single slow attempt loses
    /// the lease.
    #[error(
        "renew_deadline ({renew_deadline:?}) must be greater than retry_period × 1.2 ({retry_period:?} × 1.2), so that more than one renew fits in it"
    )]
    RenewNotLongerThanRetry {
        /// The renew deadline given.
        renew_deadline: Duration,
        /// The retry period given.
        retry_period: Duration,
    },
    /// Leases hold whole seconds.
    #[error("lease_duration ({0:?}) must be whole seconds: the Lease records it in seconds")]
    LeaseNotWholeSeconds(Duration),
}

impl ElectionTimings {
    /// Checks the rules client-go enforces: all positive, `lease_duration > renew_deadline >
    /// retry_period × 1.2`; plus whole seconds for `lease_duration`, which the Lease stores
    /// in seconds.
    pub fn validate(&self) -> Result<(), TimingError> {
        for (name, value) in [
            ("lease_duration", self.lease_duration),
            ("renew_deadline", self.renew_deadline),
            ("retry_period", self.retry_period),
        ] {
            if value.is_zero() {
                return Err(TimingError::Zero(name));
            }
        }
        if self.lease_duration.subsec_nanos() != 0 {
            return Err(TimingError::LeaseNotWholeSeconds(self.lease_duration));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(TimingError::LeaseNotLongerThanRenew {
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
            });
        }
        if self.renew_deadline.as_secs_f64() <= self.retry_period.as_secs_f64() * JITTER_FACTOR {
            return Err(TimingError::RenewNotLongerThanRetry {
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            });
        }
        Ok(())
    }

    /// The wait before the next acquire attempt: `retry_period × (1 + 1.2 × rand)`.
    fn jittered_retry(&self) -> Duration {
        self.retry_period
            .mul_f64(1.0 + JITTER_FACTOR * rand::random::<f64>())
    }
}

/// Stop now: close the gate, write the Lease free, stop. Sent by [`LeaderElection::release`]
/// (`send`, awaited) or [`LeaderElection::release_in_background`] (`do_send`). Answers
/// whether the Lease was written free (false: we did not hold it).
#[derive(Message)]
#[rtype(result = "Result<bool, LeaseError>")]
pub struct Release;

/// Stop now without writing anything, as a crash would. Sent with `do_send` by
/// [`LeaderElection::abandon`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Abandon;

/// The sending side of the [`Leadership`] gate, shared by the actor and its handle so that a
/// stop closes the gate in the caller's own call, before the actor even sees the message.
struct Gate {
    sender: watch::Sender<bool>,
    /// Set once a stop was asked for: the gate never opens again.
    stopping: AtomicBool,
}

impl Gate {
    /// Opens the gate unless a stop was asked for. The check runs under the channel's lock,
    /// so it cannot interleave with [`close_for_good`](Self::close_for_good).
    fn open(&self) -> bool {
        self.sender.send_if_modified(|open| {
            if self.stopping.load(Ordering::SeqCst) || *open {
                return false;
            }
            *open = true;
            true
        });
        *self.sender.borrow()
    }

    fn close(&self) {
        self.sender.send_replace(false);
    }

    fn close_for_good(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.sender.send_replace(false);
    }
}

/// Where the elector stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Not holding the Lease; trying every jittered retry period.
    Following,
    /// Holding it; the gate is open until `valid_until` unless a renew moves it later.
    Leading { valid_until: Instant },
    /// Releasing or abandoning: no more attempts.
    Stopping,
}

/// The elector actor. See the module docs.
pub struct LeaderElector {
    lock: LeaseLock,
    timings: ElectionTimings,
    /// Open only while `role` is `Leading` (closed early by a stop from the handle).
    gate: Arc<Gate>,
    role: Role,
    /// The Lease as last seen, passed to the next attempt.
    observation: Option<Observation>,
    /// The attempt in flight, if any (never two at once).
    attempt: Option<SpawnHandle>,
    /// The next scheduled attempt.
    next: Option<SpawnHandle>,
    /// Closes the gate at `valid_until` while leading.
    deadline: Option<SpawnHandle>,
}

/// A running election: the gate it drives, and how to stop it. Cheap to clone.
#[derive(Clone)]
pub struct LeaderElection {
    addr: Addr<LeaderElector>,
    /// Weak: the actor owns the gate, so the sender drops (and the gate reads "elector gone")
    /// when the actor stops, however many handles live on.
    gate: Weak<Gate>,
    leadership: Leadership,
    identity: String,
    lease: String,
}

impl std::fmt::Debug for LeaderElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElection")
            .field("identity", &self.identity)
            .field("lease", &self.lease)
            .field("leading", &self.leadership.is_leader())
            .finish()
    }
}

impl LeaderElection {
    /// The gate this election drives.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// `namespace/name` of the Lease.
    pub fn lease(&self) -> &str {
        &self.lease
    }

    /// Closes the gate, writes the Lease free if held, and stops the elector; waits for the
    /// write. An elector already stopped answers `Ok(false)`.
    pub async fn release(&self) -> Result<bool, LeaseError> {
        self.close_gate();
        match self.addr.send(Release).await {
            Ok(result) => result,
            Err(_) => Ok(false),
        }
    }

    /// Like [`release`](Self::release) without waiting: the write completes while the actix
    /// system keeps running.
    /// The gate closes before this returns.
    pub fn release_in_background(&self) {
        self.close_gate();
        self.addr.do_send(Release);
    }

    /// Stops the elector without releasing the Lease, as a crash would: others take over
    /// once the lease runs out. For tests of failover, and for callers that must not write.
    /// The gate closes before this returns.
    pub fn abandon(&self) {
        self.close_gate();
        self.addr.do_send(Abandon);
    }
}

impl LeaderElection {
    fn close_gate(&self) {
        if let Some(gate) = self.gate.upgrade() {
            gate.close_for_good();
        }
    }
}

impl LeaderElector {
    /// Starts an elector for `lock` on the current arbiter (needs a running actix system).
    /// It makes its first attempt at once.
    pub fn start(lock: LeaseLock, timings: ElectionTimings) -> LeaderElection {
        let (sender, receiver) = watch::channel(false);
        let gate = Arc::new(Gate {
            sender,
            stopping: AtomicBool::new(false),
        });
        let identity = lock.identity().to_string();
        let lease = lock.describe();
        let addr = LeaderElector {
            lock,
            timings,
            gate: gate.clone(),
            role: Role::Following,
            observation: None,
            attempt: None,
            next: None,
            deadline: None,
        }
        .start();
        LeaderElection {
            addr,
            gate: Arc::downgrade(&gate),
            leadership: Leadership::from_receiver(receiver),
            identity,
            lease,
        }
    }

    fn attempt(&mut self, ctx: &mut Context<Self>) {
        if self.role == Role::Stopping || self.attempt.is_some() {
            return;
        }
        let sent_at = Instant::now();
        let (lock, last) = (self.lock.clone(), self.observation.clone());
        // A hanging request must not hold up the next attempts forever; the deadline timer
        // closes the gate on time regardless.
        let limit = self.timings.renew_deadline;
        let request =
            async move { tokio::time::timeout(limit, lock.try_acquire_or_renew(last)).await };
        let handle = ctx.spawn(request.into_actor(self).map(move |result, act, ctx| {
            act.attempt = None;
            act.attempted(result.ok(), sent_at, ctx);
        }));
        self.attempt = Some(handle);
    }

    /// Handles one attempt's answer (`None`: it timed out) and schedules the next.
    fn attempted(&mut self, attempt: Option<Attempt>, sent_at: Instant, ctx: &mut Context<Self>) {
        if self.role == Role::Stopping {
            return;
        }
        let status = match attempt {
            Some(attempt) => {
                self.observation = attempt.observation;
                attempt.status
            }
            None => {
                tracing::warn!(lease = %self.lock.describe(), timeout = ?self.timings.renew_deadline, "lease request timed out");
                self.schedule_next(ctx);
                return;
            }
        };
        match status {
            Ok(LeaseStatus::Held) => {
                let valid_until = sent_at + self.timings.renew_deadline;
                if valid_until > Instant::now() {
                    self.lead_until(valid_until, ctx);
                }
            }
            Ok(LeaseStatus::HeldBy(holder)) => {
                if matches!(self.role, Role::Leading { .. }) {
                    self.lose(&format!("the lease is now held by {holder}"));
                }
            }
            Err(error) => {
                if matches!(self.role, Role::Leading { .. }) {
                    tracing::warn!(lease = %self.lock.describe(), %error, "cannot renew the lease; retrying");
                } else {
                    tracing::debug!(lease = %self.lock.describe(), %error, "cannot acquire the lease; retrying");
                }
            }
        }
        self.schedule_next(ctx);
    }

    fn lead_until(&mut self, valid_until: Instant, ctx: &mut Context<Self>) {
        if self.role == Role::Following {
            if !self.gate.open() {
                return;
            }
            tracing::info!(identity = %self.lock.identity(), lease = %self.lock.describe(), "became leader");
        }
        self.role = Role::Leading { valid_until };
        if let Some(old) = self.deadline.take() {
            ctx.cancel_future(old);
        }
        let wait = valid_until.saturating_duration_since(Instant::now());
        self.deadline = Some(ctx.run_later(wait, |act, _| {
            act.deadline = None;
            if let Role::Leading { valid_until } = act.role
                && Instant::now() >= valid_until
            {
                act.lose("could not renew the lease within the renew deadline");
            }
        }));
    }

    fn lose(&mut self, reason: &str) {
        self.role = Role::Following;
        self.gate.close();
        tracing::warn!(identity = %self.lock.identity(), lease = %self.lock.describe(), reason, "lost leadership");
    }

    fn schedule_next(&mut self, ctx: &mut Context<Self>) {
        let wait = match self.role {
            Role::Leading { .. } => self.timings.retry_period,
            Role::Following => self.timings.jittered_retry(),
            Role::Stopping => return,
        };
        if let Some(old) = self.next.take() {
            ctx.cancel_future(old);
        }
        self.next = Some(ctx.run_later(wait, |act, ctx| {
            act.next = None;
            act.attempt(ctx);
        }));
    }

    /// Closes the gate and cancels every timer and attempt: nothing more is written after.
    fn stop_trying(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.role, Role::Leading { .. }) {
            tracing::info!(identity = %self.lock.identity(), lease = %self.lock.describe(), "lost leadership: stepping down");
        }
        self.role = Role::Stopping;
        self.gate.close_for_good();
        for handle in [self.attempt.take(), self.next.take(), self.deadline.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_future(handle);
        }
    }
}

impl Actor for LeaderElector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.attempt(ctx);
    }
}

impl Handler<Release> for LeaderElector {
    type Result = ResponseActFuture<Self, Result<bool, LeaseError>>;

    fn handle(&mut self, _: Release, ctx: &mut Self::Context) -> Self::Result {
        let held = self
            .observation
            .as_ref()
            .is_some_and(|o| o.record.holder() == Some(self.lock.identity()));
        self.stop_trying(ctx);
        let lock = self.lock.clone();
        let release = async move {
            // Re-read rather than trusting the last observation: a renew cancelled in flight
            // may have reached the server and moved the resourceVersion.
            if held {
                lock.release().await
            } else {
                Ok(false)
            }
        };
        Box::pin(release.into_actor(self).map(|result, act, ctx| {
            match &result {
                Ok(true) => tracing::info!(lease = %act.lock.describe(), "lease released"),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(lease = %act.lock.describe(), %error, "cannot release the lease; others take over when it runs out");
                }
            }
            ctx.stop();
            result
        }))
    }
}

impl Handler<Abandon> for LeaderElector {
    type Result = ();

    fn handle(&mut self, _: Abandon, ctx: &mut Self::Context) {
        self.stop_trying(ctx);
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_accept_client_go_defaults_and_reject_unsafe_timings() {
        assert_eq!(ElectionTimings::default().validate(), Ok(()));
        let secs = Duration::from_secs;
        let t = |lease, renew, retry| ElectionTimings {
            lease_duration: lease,
            renew_deadline: renew,
            retry_period: retry,
        };
        assert!(matches!(
            t(secs(10), secs(10), secs(2)).validate(),
            Err(TimingError::LeaseNotLongerThanRenew { .. })
        ));
        assert!(matches!(
            t(secs(15), Duration::from_millis(2400), secs(2)).validate(),
            Err(TimingError::RenewNotLongerThanRetry { .. })
        ));
        assert_eq!(
            t(secs(15), secs(10), Duration::ZERO).validate(),
            Err(TimingError::Zero("retry_period"))
        );
        assert!(matches!(
            t(
                Duration::from_millis(2500),
                secs(1),
                Duration::from_millis(100)
            )
            .validate(),
            Err(TimingError::LeaseNotWholeSeconds(_))
        ));
        assert_eq!(
            t(
                secs(2),
                Duration::from_millis(1500),
                Duration::from_millis(300)
            )
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn should_jitter_acquire_waits_between_one_and_two_point_two_periods() {
        let timings = ElectionTimings::default();
        for _ in 0..100 {
            let wait = timings.jittered_retry();
            assert!(wait >= timings.retry_period && wait <= timings.retry_period.mul_f64(2.2));
        }
    }
}
