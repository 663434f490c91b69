//! Membership: which replicas are live, from their peer Leases, by local clocks only.
//!
//! Each replica renews its own peer Lease every retry period. A peer is live while its
//! Lease names a holder and its record has changed within its `leaseDurationSeconds`
//! *as observed here* — the rule [`LeaseLock`](panoptes_actors::lease_lock::LeaseLock)
//! applies to a single Lease, never trusting the `renewTime` another machine's clock wrote.
//! So a peer first seen now counts as live for a full lease duration (a stale Lease of a
//! crashed replica delays nothing: its shard Leases are fenced for that long anyway), a
//! released peer Lease (no holder) is gone at once, and a `kill -9`'d peer is gone once its
//! record has not moved for its duration.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

/// What one peer Lease said, as far as liveness goes: two reads that differ here mean the
/// holder renewed (or changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// `holderIdentity`; `None` once released.
    pub holder: Option<String>,
    /// `renewTime` as written (compared for change only, never as a clock).
    pub renew_time: Option<String>,
    /// `leaseDurationSeconds`.
    pub lease_duration: Duration,
}

/// The peer Leases as last listed, keyed by Lease name, each with when its record was first
/// seen as it is.
#[derive(Debug, Default)]
pub struct PeerTable {
    /// Invariant: `observed_at` is when this exact record was first seen here.
    seen: BTreeMap<String, (PeerRecord, Instant)>,
}

impl PeerTable {
    /// Takes a fresh listing of every peer Lease (name → record) read at `now`; Leases gone
    /// from the listing are forgotten.
    pub fn observe(
        &mut self,
        listing: impl IntoIterator<Item = (String, PeerRecord)>,
        now: Instant,
    ) {
        let mut next = BTreeMap::new();
        for (name, record) in listing {
            let observed_at = match self.seen.get(&name) {
                Some((previous, at)) if *previous == record => *at,
                _ => now,
            };
            next.insert(name, (record, observed_at));
        }
        self.seen = next;
    }

    /// The identities of the live peers at `now`.
    pub fn live(&self, now: Instant) -> BTreeSet<String> {
        self.seen
            .values()
            .filter(|(record, at)| now < *at + record.lease_duration)
            .filter_map(|(record, _)| record.holder.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: Option<&str>, renew: &str) -> PeerRecord {
        PeerRecord {
            holder: holder.map(String::from),
            renew_time: Some(renew.into()),
            lease_duration: Duration::from_secs(15),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn should_drop_a_peer_whose_record_stops_moving_for_its_duration() {
        let t0 = Instant::now();
        let mut table = PeerTable::default();
        table.observe(
            [
                ("p-a".into(), record(Some("a"), "1")),
                ("p-b".into(), record(Some("b"), "1")),
            ],
            t0,
        );
        let t1 = t0 + Duration::from_secs(10);
        // a renews, b does not.
        table.observe(
            [
                ("p-a".into(), record(Some("a"), "2")),
                ("p-b".into(), record(Some("b"), "1")),
            ],
            t1,
        );
        let live = table.live(t0 + Duration::from_secs(14));
        assert_eq!(live, BTreeSet::from(["a".to_string(), "b".to_string()]));
        let live = table.live(t0 + Duration::from_secs(15));
        assert_eq!(live, BTreeSet::from(["a".to_string()]));
    }

    #[tokio::test(start_paused = true)]
    async fn should_drop_a_released_peer_at_once_and_forget_deleted_ones() {
        let t0 = Instant::now();
        let mut table = PeerTable::default();
        table.observe(
            [
                ("p-a".into(), record(Some("a"), "1")),
                ("p-b".into(), record(Some("b"), "1")),
            ],
            t0,
        );
        table.observe(
            [("p-a".into(), record(None, "2"))],
            t0 + Duration::from_secs(1),
        );
        assert!(table.live(t0 + Duration::from_secs(1)).is_empty());
    }
}
