//! What one coordinator round does with the shard Leases: the difference between the
//! clusters this replica *should* own (rendezvous over live peers) and those it *holds*.
//! Pure, so the decisions are tested without a server.
//!
//! - Held and still desired: renew.
//! - Held, no longer desired (a peer joined, or the cluster left the configuration):
//!   disengage, then release, so the new owner can take it at its next attempt.
//! - Desired, not held: try to acquire (the Lease may still be held by its previous owner,
//!   which then releases it, or by a crashed one, until it expires).
//! - Held but not renewed for `renew_deadline` (counted from when the last successful renew
//!   was *sent*): disengage at once, before anyone else may take it over (they wait
//!   `lease_duration > renew_deadline` from when they saw that renew).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use panoptes_actors::ids::ClusterId;
use tokio::time::Instant;

/// One round's decisions, each list in cluster-name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Held and still desired.
    pub renew: Vec<ClusterId>,
    /// Held, not desired any more: disengage, then release.
    pub release: Vec<ClusterId>,
    /// Desired, not held: try to acquire; engage once held.
    pub acquire: Vec<ClusterId>,
}

/// The round for `desired` clusters when `held` are held.
pub fn plan(desired: &BTreeSet<ClusterId>, held: &BTreeSet<ClusterId>) -> Plan {
    Plan {
        renew: held.intersection(desired).cloned().collect(),
        release: held.difference(desired).cloned().collect(),
        acquire: desired.difference(held).cloned().collect(),
    }
}

/// The held clusters whose last successful renew was sent more than `renew_deadline` before
/// `now`: they must be disengaged now.
pub fn overdue(
    renewed: &BTreeMap<ClusterId, Instant>,
    now: Instant,
    renew_deadline: Duration,
) -> Vec<ClusterId> {
    renewed
        .iter()
        .filter(|(_, sent)| now >= **sent + renew_deadline)
        .map(|(cluster, _)| cluster.clone())
        .collect()
}

/// The earliest instant at which one of `renewed` becomes overdue.
pub fn next_deadline(
    renewed: &BTreeMap<ClusterId, Instant>,
    renew_deadline: Duration,
) -> Option<Instant> {
    renewed.values().min().map(|sent| *sent + renew_deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<ClusterId> {
        names.iter().map(|n| ClusterId::from(*n)).collect()
    }

    fn ids(names: &[&str]) -> Vec<ClusterId> {
        names.iter().map(|n| ClusterId::from(*n)).collect()
    }

    #[test]
    fn should_renew_kept_release_lost_and_acquire_new() {
        let p = plan(&set(&["a", "b", "d"]), &set(&["a", "b", "c"]));
        assert_eq!(p.renew, ids(&["a", "b"]));
        assert_eq!(p.release, ids(&["c"]));
        assert_eq!(p.acquire, ids(&["d"]));
    }

    #[test]
    fn should_release_everything_when_nothing_is_desired() {
        let p = plan(&BTreeSet::new(), &set(&["a", "b"]));
        assert_eq!(
            p,
            Plan {
                release: ids(&["a", "b"]),
                ..Plan::default()
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn should_be_overdue_exactly_at_the_renew_deadline() {
        let start = Instant::now();
        let deadline = Duration::from_secs(10);
        let renewed = BTreeMap::from([
            (ClusterId::from("a"), start),
            (ClusterId::from("b"), start + Duration::from_secs(4)),
        ]);
        assert!(overdue(&renewed, start + Duration::from_millis(9_999), deadline).is_empty());
        assert_eq!(overdue(&renewed, start + deadline, deadline), ids(&["a"]));
        assert_eq!(
            overdue(&renewed, start + Duration::from_secs(14), deadline),
            ids(&["a", "b"])
        );
        assert_eq!(next_deadline(&renewed, deadline), Some(start + deadline));
        assert_eq!(next_deadline(&BTreeMap::new(), deadline), None);
    }
}
