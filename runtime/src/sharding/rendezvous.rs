//! Rendezvous (highest-random-weight) hashing: which live peer *should* own a cluster.
//!
//! Every replica computes, for each cluster, a weight per live peer and picks the peer with
//! the highest weight (ties, astronomically rare, go to the smaller identity). All replicas
//! that see the same peers reach the same answer with no coordination, and a change of the
//! peer set moves only what it must: a joining peer takes exactly the clusters where it
//! now weighs most (about 1/N of them), and a leaving peer's clusters spread over the
//! others while every other cluster stays put. This is what controller-runtime's
//! multicluster sharding uses (`HRW` over live peers).
//!
//! The weight is a fixed function of the bytes of the names (FNV-1a, then the SplitMix64
//! finaliser to spread the bits), not Rust's `DefaultHasher`, whose output may change
//! between compiler releases: replicas built by different toolchains during a rolling
//! upgrade must still agree.

use std::collections::{BTreeMap, BTreeSet};

use panoptes_actors::ids::ClusterId;

/// The weight of `peer` for `cluster`: stable across processes, platforms and releases.
pub fn weight(peer: &str, cluster: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    // 0xff never occurs in UTF-8, so ("ab", "c") and ("a", "bc") hash apart.
    for byte in peer.bytes().chain([0xff]).chain(cluster.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    splitmix64(hash)
}

/// SplitMix64's finaliser: FNV alone leaves similar names with similar high bits.
fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The peer that should own `cluster` among `peers`, or `None` when there are no peers.
pub fn owner<'p>(peers: &'p BTreeSet<String>, cluster: &str) -> Option<&'p str> {
    peers
        .iter()
        // Iterating in ascending order and keeping the first maximum breaks ties towards
        // the smaller identity.
        .fold(None, |best: Option<(&str, u64)>, peer| {
            let w = weight(peer, cluster);
            match best {
                Some((_, best_w)) if best_w >= w => best,
                _ => Some((peer.as_str(), w)),
            }
        })
        .map(|(peer, _)| peer)
}

/// The owner of each of `clusters` among `peers`.
pub fn assign<'c>(
    peers: &BTreeSet<String>,
    clusters: impl IntoIterator<Item = &'c ClusterId>,
) -> BTreeMap<ClusterId, String> {
    clusters
        .into_iter()
        .filter_map(|c| Some((c.clone(), owner(peers, c.as_str())?.to_string())))
        .collect()
}

/// The clusters among `clusters` that `me` should own when `peers` are live (`me` counts as
/// live whether or not it is in `peers`).
pub fn desired<'c>(
    me: &str,
    peers: &BTreeSet<String>,
    clusters: impl IntoIterator<Item = &'c ClusterId>,
) -> BTreeSet<ClusterId> {
    let mut with_me = peers.clone();
    with_me.insert(me.to_string());
    clusters
        .into_iter()
        .filter(|c| owner(&with_me, c.as_str()) == Some(me))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn peers(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn fleet(n: usize) -> Vec<ClusterId> {
        (0..n).map(|i| ClusterId::from(format!("cluster-{i}").as_str())).collect()
    }

    #[test]
    fn should_split_thirty_clusters_over_three_peers_within_thirty_percent_of_even() {
        let clusters = fleet(30);
        let live = peers(&["host-a_101", "host-b_202", "host-c_303"]);
        let owners = assign(&live, &clusters);
        assert_eq!(owners.len(), 30, "every cluster has an owner");
        for peer in &live {
            let n = owners.values().filter(|o| *o == peer).count();
            assert!((7..=13).contains(&n), "{peer} owns {n} of 30: {owners:?}");
        }
    }

    #[test]
    fn should_agree_on_the_same_answer_whatever_the_order_peers_were_seen() {
        let a = peers(&["x", "y", "z"]);
        let b: BTreeSet<String> = ["z", "x", "y"].iter().map(|s| s.to_string()).collect();
        assert_eq!(assign(&a, &fleet(50)), assign(&b, &fleet(50)));
    }

    #[test]
    fn should_own_nothing_without_peers() {
        assert_eq!(owner(&BTreeSet::new(), "east"), None);
    }

    #[test]
    fn should_count_me_as_live_in_desired() {
        let clusters = fleet(10);
        assert_eq!(desired("solo", &BTreeSet::new(), &clusters).len(), 10);
    }

    #[test]
    fn should_keep_known_weights_stable_across_releases() {
        // Replicas of different builds must agree: these values may never change.
        assert_eq!(weight("", ""), splitmix64(0xaf63_3c4c_8677_6c34 ^ 0));
        assert_ne!(weight("ab", "c"), weight("a", "bc"));
    }

    proptest! {
        #[test]
        fn should_move_only_to_a_joining_peer_and_about_a_quarter(
            seed in 0u32..1000,
        ) {
            let clusters = fleet(200);
            let three = peers(&[&format!("a{seed}"), &format!("b{seed}"), &format!("c{seed}")]);
            let mut four = three.clone();
            let newcomer = format!("d{seed}");
            four.insert(newcomer.clone());
            let before = assign(&three, &clusters);
            let after = assign(&four, &clusters);
            let moved: Vec<_> = clusters.iter().filter(|c| before[*c] != after[*c]).collect();
            for c in &moved {
                prop_assert_eq!(&after[*c], &newcomer, "{} moved to an old peer", c);
            }
            // 200 / 4 = 50 expected; allow a wide margin for a hash, not for a bug.
            prop_assert!((25..=80).contains(&moved.len()), "{} of 200 moved", moved.len());
        }

        #[test]
        fn should_move_only_a_leaving_peers_clusters(seed in 0u32..1000) {
            let clusters = fleet(100);
            let three = peers(&[&format!("a{seed}"), &format!("b{seed}"), &format!("c{seed}")]);
            let gone = format!("b{seed}");
            let mut two = three.clone();
            two.remove(&gone);
            let before = assign(&three, &clusters);
            let after = assign(&two, &clusters);
            for c in &clusters {
                if before[c] != gone {
                    prop_assert_eq!(&before[c], &after[c], "{} moved though its owner stayed", c);
                } else {
                    prop_assert_ne!(&after[c], &gone);
                }
            }
        }
    }
}
