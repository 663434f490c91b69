//! The shard coordinator: one task per sharded [`Runtime`](crate::Runtime) that keeps this replica's peer
//! Lease, decides by rendezvous hashing which clusters it should own, and engages a cluster
//! only while it holds that cluster's shard Lease (the fence).
//!
//! # One round, every `retry_period`
//! 1. At once: renew the peer Lease, list the peer Leases (label
//!    `panoptes.io/shard-role=peer`, this deployment's name prefix), renew every held shard
//!    Lease. A renew that comes back `Held` moves that cluster's deadline to when it was
//!    *sent* + `renew_deadline`; one that finds another holder loses the cluster at once.
//! 2. If the listing succeeded: live peers ([`super::peers`]) → desired clusters
//!    ([`super::rendezvous`]) → [`super::plan`]: disengage then release what is no longer
//!    desired; try to acquire what is desired and not held, engaging each one acquired.
//!
//! Every wait — each phase's requests, the sleep between rounds — ends at the earliest
//! renew deadline, and overdue clusters are disengaged then, even while a request to the
//! home cluster hangs. `renew_deadline < lease_duration`, and peers count the lease from
//! when *they* saw the renew, so a replica cut off from the home cluster has stopped
//! before anyone may take over; it keeps trying and re-acquires when it can.
//!
//! # Stop
//! [`ShardHandle::release`] (awaited) or [`ShardHandle::release_in_background`]: the task
//! disengages every cluster, then writes every shard Lease and its peer Lease free (no
//! holder, 1 s) at once, so peers take over at their next round instead of waiting for
//! expiry. Dropping every handle (the [`Runtime`](crate::Runtime) and its clones) does the same. A
//! process that dies without either is a crash: peers take over after `lease_duration`.
//!
//! Not an actor: it owns its state alone, receives nothing but the stop signal, and its
//! work is a sequence of awaits; a task says that more plainly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::lease_lock::{Attempt, LeaseLock, LeaseStatus, Observation};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::ShardHost;
use super::lease_names::{
    PEER_ROLE, ROLE_LABEL, SHARD_ROLE, peer_lease_name, peer_lease_prefix, role_labels,
    shard_lease_name,
};
use super::peers::{PeerRecord, PeerTable};
use super::plan::{next_deadline, overdue, plan};
use super::rendezvous;
use crate::config::ShardingConfig;

/// Why a cluster changed hands here (`panoptes_shard_handoffs_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffReason {
    /// Acquired a free shard Lease (nobody held it, or its holder released it).
    Acquired,
    /// Acquired after the previous holder (no longer a live peer) let its Lease expire.
    ExpiredPeer,
    /// Released because another live peer should own it now (or it left the config).
    Rebalanced,
    /// Released at a clean stop.
    Released,
    /// Disengaged because the Lease could not be renewed within `renew_deadline`, or was
    /// found held by someone else.
    Lost,
}

impl HandoffReason {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acquired => "acquired",
            Self::ExpiredPeer => "expired_peer",
            Self::Rebalanced => "rebalanced",
            Self::Released => "released",
            Self::Lost => "lost",
        }
    }
}

/// What the runtime keeps of a running coordinator: the owned set as it changes, and the
/// stop signal.
#[derive(Debug, Clone)]
pub struct ShardHandle {
    identity: String,
    owned: watch::Receiver<BTreeSet<ClusterId>>,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

impl ShardHandle {
    /// This replica's identity (its `holderIdentity`).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The clusters engaged here now, following every change.
    pub fn owned(&self) -> watch::Receiver<BTreeSet<ClusterId>> {
        self.owned.clone()
    }

    /// Disengages everything and writes every Lease free, waiting until done (or until
    /// the task is gone).
    pub async fn release(&self) {
        let _ = self.stop.send(true);
        let mut stopped = self.stopped.clone();
        // An error means the task is gone: nothing more will be written.
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Asks for the same as [`release`](Self::release) without waiting.
    pub fn release_in_background(&self) {
        let _ = self.stop.send(true);
    }
}

/// One shard Lease and the last observation of it, kept across rounds (the local clock
/// of "unchanged for its duration" runs from the first observation).
struct ShardLease {
    lock: LeaseLock,
    last: Option<Observation>,
}

struct Coordinator<H: ShardHost> {
    runtime: H::Weak,
    config: ShardingConfig,
    leases: Api<Lease>,
    peer_lock: LeaseLock,
    peer_last: Option<Observation>,
    peers: PeerTable,
    shards: BTreeMap<ClusterId, ShardLease>,
    client: kube::Client,
    /// Engaged clusters → when their last successful renew (or acquire) was sent.
    /// Invariant: exactly the clusters the runtime has active.
    held: BTreeMap<ClusterId, Instant>,
    owned: watch::Sender<BTreeSet<ClusterId>>,
}

/// Starts the coordinator for `runtime` on the current actix system, with `client` on the
/// home cluster.
pub(crate) fn start<H: ShardHost>(
    runtime: &H,
    config: ShardingConfig,
    client: kube::Client,
) -> ShardHandle {
    let (owned_tx, owned_rx) = watch::channel(BTreeSet::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let peer_lock = LeaseLock::new(
        client.clone(),
        &config.namespace,
        &peer_lease_name(&config.name, &config.identity),
        &config.identity,
        config.timings.lease_duration,
    )
    .with_labels(role_labels(PEER_ROLE));
    let coordinator = Coordinator::<H> {
        runtime: H::downgrade(runtime),
        leases: Api::namespaced(client.clone(), &config.namespace),
        peer_lock,
        peer_last: None,
        peers: PeerTable::default(),
        shards: BTreeMap::new(),
        client,
        held: BTreeMap::new(),
        owned: owned_tx,
        config: config.clone(),
    };
    tracing::info!(
        identity = %config.identity,
        cluster = %config.cluster,
        namespace = %config.namespace,
        "sharding started"
    );
    actix::spawn(async move {
        coordinator.run(stop_rx).await;
        let _ = stopped_tx.send(true);
    });
    ShardHandle {
        identity: config.identity,
        owned: owned_rx,
        stop: stop_tx,
        stopped: stopped_rx,
    }
}

impl<H: ShardHost> Coordinator<H> {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            let next_round = Instant::now() + self.config.timings.retry_period;
            let stopping = tokio::select! {
                alive = self.round() => !alive,
                _ = stop.changed() => true,
            };
            if stopping {
                break;
            }
            // Wait for the next round, waking at each renew deadline on the way.
            loop {
                let wake = self.wake_at(next_round);
                tokio::select! {
                    () = sleep_until(wake) => {}
                    _ = stop.changed() => break,
                }
                if !self.enforce_deadlines() {
                    return;
                }
                if Instant::now() >= next_round {
                    break;
                }
            }
        }
        self.release_all().await;
    }

    /// The earlier of `at` and the next renew deadline.
    fn wake_at(&self, at: Instant) -> Instant {
        next_deadline(&self.held, self.config.timings.renew_deadline).map_or(at, |d| d.min(at))
    }

    /// One round; false once the runtime is gone.
    async fn round(&mut self) -> bool {
        let retry = self.config.timings.retry_period;
        // Phase 1: peer renew, peer listing, shard renewals, at once.
        let phase_end = self.wake_at(Instant::now() + retry);
        let peer_lock = self.peer_lock.clone();
        let peer_last = self.peer_last.take();
        let peer = async move {
            let sent = Instant::now();
            (peer_lock.try_acquire_or_renew(peer_last).await, sent)
        };
        let leases = self.leases.clone();
        let list = async move {
            // Shard Leases too: a dead holder's lease runs out as observed from its last
            // renew seen here, not from our first attempt to take it (which would make a
            // crash takeover wait two lease durations).
            let params = ListParams::default()
                .labels(&format!("{ROLE_LABEL} in ({PEER_ROLE},{SHARD_ROLE})"));
            leases.list(&params).await
        };
        let renewals = join_all(
            self.take_locks(self.held.keys().cloned().collect())
                .into_iter()
                .map(|(cluster, lock, last)| async move {
                    let sent = Instant::now();
                    (cluster, lock.try_acquire_or_renew(last).await, sent)
                }),
        );
        let phase1 = timeout_at(phase_end, futures::future::join3(peer, list, renewals)).await;
        let Some(runtime) = H::upgrade(&self.runtime) else {
            return false;
        };
        let listed = match phase1 {
            Err(_elapsed) => {
                tracing::debug!(identity = %self.config.identity, "shard round: the home cluster did not answer in time");
                None
            }
            Ok(((peer, peer_sent), list, renewals)) => {
                self.after_peer_renew(&runtime, peer, peer_sent);
                for (cluster, attempt, sent) in renewals {
                    self.after_renew(&runtime, &cluster, attempt, sent);
                }
                list.map_err(|error| tracing::debug!(%error, "cannot list peer Leases"))
                    .ok()
            }
        };
        self.enforce_deadlines_with(&runtime);
        let Some(listing) = listed else { return true };
        // Phase 2: who should own what, then release and acquire.
        let now = Instant::now();
        let prefix = peer_lease_prefix(&self.config.name);
        let (peer_leases, shard_leases): (Vec<Lease>, Vec<Lease>) =
            listing.items.into_iter().partition(|lease| {
                lease
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(ROLE_LABEL))
                    .map(String::as_str)
                    == Some(PEER_ROLE)
            });
        self.peers.observe(
            peer_leases.into_iter().filter_map(|lease| {
                let name = lease.metadata.name.clone()?;
                name.starts_with(&prefix)
                    .then(|| (name, peer_record(&lease)))
            }),
            now,
        );
        let live = self.peers.live(now);
        let universe = runtime.clusters();
        self.observe_shard_leases(&universe, &shard_leases, now);
        let desired = rendezvous::desired(&self.config.identity, &live, &universe);
        let held: BTreeSet<ClusterId> = self.held.keys().cloned().collect();
        let plan = plan(&desired, &held);
        for cluster in &plan.release {
            self.disengage(&runtime, cluster, HandoffReason::Rebalanced);
        }
        let phase_end = self.wake_at(Instant::now() + retry);
        let releases = join_all(
            self.take_locks(plan.release)
                .into_iter()
                .map(|(cluster, lock, _)| async move { (cluster, lock.release().await) }),
        );
        let acquires = join_all(self.take_locks(plan.acquire).into_iter().map(
            |(cluster, lock, last)| async move {
                let previous = last
                    .as_ref()
                    .and_then(|o| o.record.holder().map(String::from));
                let sent = Instant::now();
                (
                    cluster,
                    lock.try_acquire_or_renew(last).await,
                    sent,
                    previous,
                )
            },
        ));
        if let Ok((releases, acquires)) =
            timeout_at(phase_end, futures::future::join(releases, acquires)).await
        {
            for (cluster, result) in releases {
                if let Err(error) = result {
                    tracing::warn!(%cluster, %error, "cannot release the shard Lease; its new owner takes it when it expires");
                }
            }
            for (cluster, attempt, sent, previous) in acquires {
                self.after_acquire(&runtime, &cluster, attempt, sent, previous, &live);
            }
        }
        self.enforce_deadlines_with(&runtime);
        true
    }

    /// The lock of each cluster with its last observation taken out (put back by the
    /// `after_*` step; lost when a phase times out, which only restarts the local clock).
    fn take_locks(
        &mut self,
        clusters: Vec<ClusterId>,
    ) -> Vec<(ClusterId, LeaseLock, Option<Observation>)> {
        clusters
            .into_iter()
            .map(|cluster| {
                let lease = self.shard_lease(&cluster);
                let (lock, last) = (lease.lock.clone(), lease.last.take());
                (cluster, lock, last)
            })
            .collect()
    }

    fn after_peer_renew(&mut self, runtime: &H, attempt: Attempt, sent: Instant) {
        match attempt.status {
            Ok(LeaseStatus::Held) => {
                runtime
                    .metrics()
                    .shard_lease_renew()
                    .observe(sent.elapsed().as_secs_f64());
            }
            Ok(LeaseStatus::HeldBy(other)) => tracing::warn!(
                identity = %self.config.identity, holder = %other,
                "another replica holds this replica's peer Lease: do two replicas share an identity?"
            ),
            Err(error) => tracing::debug!(%error, "cannot renew the peer Lease"),
        }
        self.peer_last = attempt.observation;
    }

    fn after_renew(&mut self, runtime: &H, cluster: &ClusterId, attempt: Attempt, sent: Instant) {
        self.shard_lease(cluster).last = attempt.observation;
        match attempt.status {
            Ok(LeaseStatus::Held) => {
                runtime
                    .metrics()
                    .shard_lease_renew()
                    .observe(sent.elapsed().as_secs_f64());
                if let Some(at) = self.held.get_mut(cluster) {
                    *at = sent;
                }
            }
            Ok(LeaseStatus::HeldBy(other)) => {
                tracing::warn!(%cluster, holder = %other, "shard Lease found held by another replica; disengaging");
                self.disengage(runtime, cluster, HandoffReason::Lost);
            }
            Err(error) => tracing::debug!(%cluster, %error, "cannot renew the shard Lease"),
        }
    }

    fn after_acquire(
        &mut self,
        runtime: &H,
        cluster: &ClusterId,
        attempt: Attempt,
        sent: Instant,
        previous: Option<String>,
        live: &BTreeSet<String>,
    ) {
        self.shard_lease(cluster).last = attempt.observation;
        match attempt.status {
            // Acquired too late to trust (the deadline counted from the send has passed):
            // the next round renews it and engages then.
            Ok(LeaseStatus::Held) if sent + self.config.timings.renew_deadline > Instant::now() => {
                let reason = match previous {
                    Some(p) if p != self.config.identity && !live.contains(&p) => {
                        HandoffReason::ExpiredPeer
                    }
                    _ => HandoffReason::Acquired,
                };
                self.held.insert(cluster.clone(), sent);
                self.engage(runtime, cluster, reason);
            }
            Ok(LeaseStatus::Held) => {}
            Ok(LeaseStatus::HeldBy(holder)) => {
                tracing::debug!(%cluster, %holder, "shard Lease still held by another replica");
            }
            Err(error) => tracing::debug!(%cluster, %error, "cannot acquire the shard Lease"),
        }
    }

    /// Advances the observation of every shard Lease not held here from a listing (held
    /// ones keep the observation of their own renew, whose resourceVersion is newer).
    fn observe_shard_leases(&mut self, universe: &[ClusterId], listed: &[Lease], now: Instant) {
        let by_name: BTreeMap<&str, &Lease> = listed
            .iter()
            .filter_map(|lease| Some((lease.metadata.name.as_deref()?, lease)))
            .collect();
        for cluster in universe {
            if self.held.contains_key(cluster) {
                continue;
            }
            let name = shard_lease_name(&self.config.name, cluster.as_str());
            if let Some(lease) = by_name.get(name.as_str()) {
                let shard = self.shard_lease(cluster);
                shard.last = Some(Observation::of_lease(shard.last.as_ref(), lease, now));
            }
        }
    }

    fn shard_lease(&mut self, cluster: &ClusterId) -> &mut ShardLease {
        let config = &self.config;
        let client = &self.client;
        self.shards
            .entry(cluster.clone())
            .or_insert_with(|| ShardLease {
                lock: LeaseLock::new(
                    client.clone(),
                    &config.namespace,
                    &shard_lease_name(&config.name, cluster.as_str()),
                    &config.identity,
                    config.timings.lease_duration,
                )
                .with_labels(role_labels(SHARD_ROLE)),
                last: None,
            })
    }

    /// Disengages every held cluster whose renew deadline passed; false once the runtime is
    /// gone.
    fn enforce_deadlines(&mut self) -> bool {
        match H::upgrade(&self.runtime) {
            Some(runtime) => {
                self.enforce_deadlines_with(&runtime);
                true
            }
            None => false,
        }
    }

    fn enforce_deadlines_with(&mut self, runtime: &H) {
        let deadline = self.config.timings.renew_deadline;
        for cluster in overdue(&self.held, Instant::now(), deadline) {
            tracing::warn!(
                %cluster, renew_deadline = ?deadline,
                "cannot renew the shard Lease within the renew deadline; disengaging before anyone may take it over"
            );
            self.disengage(runtime, &cluster, HandoffReason::Lost);
        }
    }

    fn engage(&mut self, runtime: &H, cluster: &ClusterId, reason: HandoffReason) {
        runtime.activate_shard(cluster);
        tracing::info!(%cluster, identity = %self.config.identity, reason = reason.as_str(), "shard engaged");
        runtime.metrics().shard_handoff(reason.as_str()).inc();
        self.publish(runtime);
    }

    fn disengage(&mut self, runtime: &H, cluster: &ClusterId, reason: HandoffReason) {
        if self.held.remove(cluster).is_none() {
            return;
        }
        runtime.deactivate_shard(cluster);
        tracing::info!(%cluster, identity = %self.config.identity, reason = reason.as_str(), "shard disengaged");
        runtime.metrics().shard_handoff(reason.as_str()).inc();
        self.publish(runtime);
    }

    fn publish(&self, runtime: &H) {
        let owned: BTreeSet<ClusterId> = self.held.keys().cloned().collect();
        runtime
            .metrics()
            .shard_owned_clusters()
            .set(owned.len() as i64);
        runtime
            .readiness()
            .set_shard_owned(Some(owned.iter().cloned().collect()));
        self.owned.send_replace(owned);
    }

    /// Clean stop: disengage everything, then write every Lease free at once.
    async fn release_all(mut self) {
        let held: Vec<ClusterId> = self.held.keys().cloned().collect();
        if let Some(runtime) = H::upgrade(&self.runtime) {
            for cluster in &held {
                self.disengage(&runtime, cluster, HandoffReason::Released);
            }
        }
        let mut locks: Vec<(String, LeaseLock)> = Vec::with_capacity(held.len() + 1);
        for cluster in &held {
            locks.push((cluster.to_string(), self.shard_lease(cluster).lock.clone()));
        }
        locks.push(("(peer)".to_string(), self.peer_lock.clone()));
        let deadline = Instant::now() + self.config.timings.renew_deadline;
        let releases = join_all(
            locks
                .iter()
                .map(|(what, lock)| async move { (what, lock.describe(), lock.release().await) }),
        );
        match timeout_at(deadline, releases).await {
            Ok(results) => {
                for (what, lease, result) in results {
                    if let Err(error) = result {
                        tracing::warn!(cluster = %what, %lease, %error, "cannot release the Lease; peers take over when it expires");
                    }
                }
            }
            Err(_) => tracing::warn!(
                "releasing the shard Leases timed out; peers take over when they expire"
            ),
        }
        tracing::info!(identity = %self.config.identity, released = held.len(), "sharding stopped; Leases released");
    }
}

/// The liveness-relevant part of a peer Lease.
fn peer_record(lease: &Lease) -> PeerRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    PeerRecord {
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        renew_time: spec.renew_time.map(|t| t.0.to_string()),
        lease_duration: Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        ),
    }
}
