//! [`LeaseLock`]: one `coordination.k8s.io/v1` Lease used as a lock — client-go's
//! `resourcelock.LeaseLock` together with the `tryAcquireOrRenew` step of
//! `tools/leaderelection/leaderelection.go`.
//!
//! One Lease is one lock. Leader election ([`crate::leader_elector`]) is one user of it; a
//! sharded controller holds one per shard. The lock knows nothing about timers: its user
//! decides when to call [`LeaseLock::try_acquire_or_renew`] and what an answer means for the
//! work it guards.
//!
//! # Contract
//! - **Optimistic concurrency.** Every write carries the `resourceVersion` last read, so of
//!   two candidates writing the same Lease at once exactly one succeeds; the other gets 409
//!   Conflict ([`LeaseError::Conflict`]) and has not got the lock. A create racing another
//!   create is the same 409 (AlreadyExists).
//! - **Local clocks only.** A Lease held by someone else is free once its record has not
//!   *changed* for `leaseDurationSeconds`, measured from when this process first saw the
//!   record as it is ([`Observation::observed_at`], a local monotonic instant), never from
//!   the `renewTime` the holder wrote: clocks of two machines need not agree.
//! - **The record.** Acquiring sets `holderIdentity`, `acquireTime`, `renewTime`,
//!   `leaseDurationSeconds` and increments `leaseTransitions` when the holder changes;
//!   renewing moves `renewTime` only.
//! - **Release** ([`LeaseLock::release`]) re-reads the Lease and, if we hold it, writes the
//!   record client-go's `ReleaseOnCancel` writes: no holder and a 1 s duration, so a candidate may take it at its next attempt
//!   instead of waiting out the lease.
//! - Other failures (403, 500s, timeouts) are [`LeaseError::Api`]: nothing was acquired; try
//!   again later. The lock never retries by itself.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

/// Why an attempt on the Lease did not go through. The lock is not held after any of them.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else wrote the Lease between our read and our write (409): they won this round.
    #[error("lease {namespace}/{name}: changed by someone else while we wrote it (409 Conflict)")]
    Conflict {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
    },
    /// The server refused or failed the request, or it could not be sent.
    #[error("lease {namespace}/{name}: {action} failed: {source}")]
    Api {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// What was being done: `get`, `create`, `update`.
        action: &'static str,
        /// What the client reported (boxed: `kube::Error` is large).
        #[source]
        source: Box<kube::Error>,
    },
}

/// The leader-election fields of a Lease's spec (client-go's `LeaderElectionRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// Who holds the Lease; `None` (or empty) when nobody does.
    pub holder_identity: Option<String>,
    /// How long the holder may go without renewing before others may take over.
    pub lease_duration_seconds: i32,
    /// When the current holder acquired it (the holder's clock; informational).
    pub acquire_time: Option<Timestamp>,
    /// When the holder last renewed it (the holder's clock; informational).
    pub renew_time: Option<Timestamp>,
    /// How many times the holder changed.
    pub lease_transitions: i32,
}

impl LeaseRecord {
    fn from_lease(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder_identity: spec.holder_identity.filter(|h| !h.is_empty()),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            lease_transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: self.holder_identity.clone(),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.lease_transitions),
            ..LeaseSpec::default()
        }
    }

    /// The holder, if any.
    pub fn holder(&self) -> Option<&str> {
        self.holder_identity.as_deref()
    }
}

/// A Lease as this process last saw it, and when it first saw it that way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The record read or written.
    pub record: LeaseRecord,
    /// The `resourceVersion` the next write must carry.
    pub resource_version: Option<String>,
    /// When this record was first seen here (local monotonic clock): the start of the
    /// holder's lease as far as this process is concerned.
    pub observed_at: Instant,
}

impl Observation {
    /// Whether a candidate called `identity` may take the Lease at `now`: nobody holds it, we
    /// hold it, or its holder has not renewed for the record's duration as observed here.
    pub fn is_free_for(&self, identity: &str, now: Instant) -> bool {
        match self.record.holder() {
            None => true,
            Some(holder) if holder == identity => true,
            Some(_) => now >= self.expires_at(),
        }
    }

    /// When the holder's lease runs out as observed here.
    pub fn expires_at(&self) -> Instant {
        let seconds = u64::try_from(self.record.lease_duration_seconds).unwrap_or(0);
        self.observed_at + Duration::from_secs(seconds)
    }

    /// The Lease as read elsewhere (a LIST of many Leases), observed at `now`: keeps
    /// `previous`'s `observed_at` when the record is unchanged, so a holder's lease runs
    /// out as observed here even before this process first tries to take it.
    pub fn of_lease(previous: Option<&Observation>, lease: &Lease, now: Instant) -> Self {
        Self::advance(
            previous,
            LeaseRecord::from_lease(lease),
            lease.metadata.resource_version.clone(),
            now,
        )
    }

    /// Keeps `observed_at` when `next` carries the same record (nothing changed, the holder's
    /// lease keeps running), else starts a new observation at `now`.
    fn advance(
        previous: Option<&Observation>,
        record: LeaseRecord,
        rv: Option<String>,
        now: Instant,
    ) -> Self {
        let observed_at = match previous {
            Some(p) if p.record == record => p.observed_at,
            _ => now,
        };
        Self {
            record,
            resource_version: rv,
            observed_at,
        }
    }
}

/// What one [`LeaseLock::try_acquire_or_renew`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStatus {
    /// We hold the Lease now: acquired or renewed.
    Held,
    /// Someone else holds it and their lease has not run out (as observed here).
    HeldBy(String),
}

/// The answer of one attempt: the status, or why it failed, and the Lease as last seen
/// (keep it and pass it to the next attempt, also after an error).
#[derive(Debug)]
pub struct Attempt {
    /// Held, held by another, or the failure.
    pub status: Result<LeaseStatus, LeaseError>,
    /// The Lease as read or written during the attempt (or the previous observation when
    /// nothing could be read).
    pub observation: Option<Observation>,
}

/// One Lease used as a lock by one candidate. Cheap to clone; holds no state between
/// attempts other than what the caller passes back in as the last [`Observation`].
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// Written on every create and update (sharding tells peer from shard Leases by them).
    labels: BTreeMap<String, String>,
}

impl std::fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLock")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LeaseLock {
    /// The Lease `namespace/name` on the cluster behind `client`, taken by `identity` for
    /// `lease_duration` (written rounded up to whole seconds, at least 1).
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration,
            labels: BTreeMap::new(),
        }
    }

    /// The same lock, writing `labels` on the Lease with every create and update (an update
    /// replaces the Lease's labels with these).
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// This candidate's identity (what it writes as `holderIdentity`).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// `namespace/name` of the Lease, for logs.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// One round of client-go's `tryAcquireOrRenew`: read the Lease (creating it when
    /// missing); if it is free for us (see [`Observation::is_free_for`]) write ourselves in as
    /// holder with the `resourceVersion` read. `last` is the previous attempt's observation.
    pub async fn try_acquire_or_renew(&self, last: Option<Observation>) -> Attempt {
        let current = match self.api.get_opt(&self.name).await {
            Ok(current) => current,
            Err(source) => return self.failed(last, "get", source),
        };
        let now = Instant::now();
        let Some(current) = current else {
            let record = self.record_for(None, Timestamp::now());
            return match self
                .api
                .create(&PostParams::default(), &self.lease(&record, None))
                .await
            {
                Ok(created) => self.held(&created, None),
                Err(source) => self.failed(last, "create", source),
            };
        };
        let seen = Observation::advance(
            last.as_ref(),
            LeaseRecord::from_lease(&current),
            current.metadata.resource_version.clone(),
            now,
        );
        if !seen.is_free_for(&self.identity, now) {
            let holder = seen.record.holder().unwrap_or_default().to_string();
            return Attempt {
                status: Ok(LeaseStatus::HeldBy(holder)),
                observation: Some(seen),
            };
        }
        let record = self.record_for(Some(&seen.record), Timestamp::now());
        let lease = self.lease(&record, seen.resource_version.clone());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => self.held(&written, Some(&seen)),
            Err(source) => self.failed(Some(seen), "update", source),
        }
    }

    /// Gives the Lease up if we hold it: reads it and, when our identity is the holder, writes
    /// no holder and a 1 s duration (client-go's `ReleaseOnCancel`) with the `resourceVersion`
    /// read, so the next candidate takes it at once. Answers whether it wrote.
    pub async fn release(&self) -> Result<bool, LeaseError> {
        let current = match self.api.get_opt(&self.name).await {
            Ok(Some(current)) => current,
            Ok(None) => return Ok(false),
            Err(source) => return Err(self.error("get", source)),
        };
        let record = LeaseRecord::from_lease(&current);
        if record.holder() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        let now = Timestamp::now();
        let released = LeaseRecord {
            holder_identity: None,
            lease_duration_seconds: 1,
            acquire_time: Some(now),
            renew_time: Some(now),
            lease_transitions: record.lease_transitions,
        };
        let lease = self.lease(&released, current.metadata.resource_version.clone());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(source) => Err(self.error("update", source)),
        }
    }

    fn record_for(&self, current: Option<&LeaseRecord>, now: Timestamp) -> LeaseRecord {
        record_for(&self.identity, self.lease_duration, current, now)
    }

    fn lease(&self, record: &LeaseRecord, resource_version: Option<String>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                resource_version,
                labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(record.to_spec()),
        }
    }

    fn held(&self, written: &Lease, previous: Option<&Observation>) -> Attempt {
        let observation = Observation::advance(
            previous,
            LeaseRecord::from_lease(written),
            written.metadata.resource_version.clone(),
            Instant::now(),
        );
        Attempt {
            status: Ok(LeaseStatus::Held),
            observation: Some(observation),
        }
    }

    fn failed(
        &self,
        last: Option<Observation>,
        action: &'static str,
        source: kube::Error,
    ) -> Attempt {
        Attempt {
            status: Err(self.error(action, source)),
            observation: last,
        }
    }

    fn error(&self, action: &'static str, source: kube::Error) -> LeaseError {
        let (namespace, name) = (self.namespace.clone(), self.name.clone());
        match &source {
            kube::Error::Api(status) if status.is_conflict() || status.is_already_exists() => {
                LeaseError::Conflict { namespace, name }
            }
            _ => LeaseError::Api {
                namespace,
                name,
                action,
                source: Box::new(source),
            },
        }
    }
}

/// The record `identity` writes: renewing keeps acquireTime and transitions; taking over from
/// someone else (or from nobody) starts a new term. Durations are written in whole seconds,
/// rounded up (at least 1), as the field holds seconds.
fn record_for(
    identity: &str,
    lease_duration: Duration,
    current: Option<&LeaseRecord>,
    now: Timestamp,
) -> LeaseRecord {
    let seconds = i32::try_from(lease_duration.as_secs_f64().ceil() as u64)
        .unwrap_or(i32::MAX)
        .max(1);
    match current {
        Some(current) if current.holder() == Some(identity) => LeaseRecord {
            lease_duration_seconds: seconds,
            renew_time: Some(now),
            ..current.clone()
        },
        Some(current) => LeaseRecord {
            holder_identity: Some(identity.into()),
            lease_duration_seconds: seconds,
            acquire_time: Some(now),
            renew_time: Some(now),
            lease_transitions: current.lease_transitions.saturating_add(1),
        },
        None => LeaseRecord {
            holder_identity: Some(identity.into()),
            lease_duration_seconds: seconds,
            acquire_time: Some(now),
            renew_time: Some(now),
            lease_transitions: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: Option<&str>, renewed: i64) -> LeaseRecord {
        LeaseRecord {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: 15,
            renew_time: Some(Timestamp::from_second(renewed).unwrap()),
            ..LeaseRecord::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn should_judge_expiry_by_the_local_clock_from_the_last_change_seen() {
        let start = Instant::now();
        let first = Observation::advance(None, record(Some("a"), 100), None, start);
        assert!(!first.is_free_for("b", start + Duration::from_secs(14)));
        assert!(first.is_free_for("a", start), "the holder may always renew");
        assert!(first.is_free_for("b", start + Duration::from_secs(15)));

        // The same record seen again later does not restart the clock ...
        let later = start + Duration::from_secs(10);
        let same = Observation::advance(Some(&first), record(Some("a"), 100), None, later);
        assert_eq!(same.observed_at, start);
        // ... a renewal does, whatever time the holder's clock wrote.
        let renewed = Observation::advance(Some(&first), record(Some("a"), 1), None, later);
        assert_eq!(renewed.observed_at, later);
        assert!(!renewed.is_free_for("b", start + Duration::from_secs(16)));
    }

    #[tokio::test(start_paused = true)]
    async fn should_be_free_at_once_when_released() {
        let released = Observation::advance(None, record(None, 100), None, Instant::now());
        assert!(released.is_free_for("b", Instant::now()));
    }

    #[test]
    fn should_start_a_new_term_only_when_the_holder_changes() {
        let now = Timestamp::from_second(500).unwrap();
        let make = |current: Option<&LeaseRecord>| {
            record_for("me", Duration::from_millis(1500), current, now)
        };

        let fresh = make(None);
        assert_eq!(fresh.holder(), Some("me"));
        assert_eq!(fresh.lease_transitions, 0);
        assert_eq!(
            fresh.lease_duration_seconds, 2,
            "rounded up to whole seconds"
        );

        let mut theirs = record(Some("them"), 100);
        theirs.lease_transitions = 4;
        let taken = make(Some(&theirs));
        assert_eq!(taken.lease_transitions, 5);
        assert_eq!(taken.acquire_time, Some(now));

        let mut mine = record(Some("me"), 100);
        mine.acquire_time = Some(Timestamp::from_second(50).unwrap());
        mine.lease_transitions = 5;
        let renewed = make(Some(&mine));
        assert_eq!(renewed.lease_transitions, 5);
        assert_eq!(renewed.acquire_time, mine.acquire_time);
        assert_eq!(renewed.renew_time, Some(now));

        let from_nobody = make(Some(&LeaseRecord::default()));
        assert_eq!(from_nobody.lease_transitions, 1);
    }
}
