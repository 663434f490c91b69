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
//! **Bounded loads.** Plain HRW over 30 clusters and 3 peers is only even on average (one
//! peer often gets 14); so, as in consistent hashing with bounded loads (Mirrokni et al.),
//! each peer takes at most `ceil(clusters / peers × (1 + LOAD_SLACK))`: clusters are placed
//! in name order, each on its highest-weight peer that has room. A peer joining still takes
//! mostly its own first choices; the tighter cap moves a few more between old peers.
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

/// How far above an even share a peer's load may go: 10 % keeps 3 peers over 30 clusters
/// within 8..=11 each (the issue asks for ±30 %) while leaving room for first choices.
pub const LOAD_SLACK: f64 = 0.1;

/// The owner of each of `clusters` among `peers`, no peer above its bounded load.
pub fn assign<'c>(
    peers: &BTreeSet<String>,
    clusters: impl IntoIterator<Item = &'c ClusterId>,
) -> BTreeMap<ClusterId, String> {
    let clusters: BTreeSet<&ClusterId> = clusters.into_iter().collect();
    if peers.is_empty() {
        return BTreeMap::new();
    }
    let even = clusters.len() as f64 / peers.len() as f64;
    let cap = ((even * (1.0 + LOAD_SLACK)).ceil() as usize).max(1);
    let mut load: BTreeMap<&str, usize> = peers.iter().map(|p| (p.as_str(), 0)).collect();
    let mut owners = BTreeMap::new();
    for cluster in clusters {
        let mut ranked: Vec<(u64, &str)> = peers
            .iter()
            .map(|p| (weight(p, cluster.as_str()), p.as_str()))
            .collect();
        // Highest weight first; ties to the smaller identity.
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        // cap × peers >= clusters, so some peer always has room.
        if let Some((_, peer)) = ranked.iter().find(|(_, p)| load[p] < cap) {
            *load.entry(*peer).or_default() += 1;
            owners.insert(cluster.clone(), peer.to_string());
        }
    }
    owners
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
    assign(&with_me, clusters)
        .into_iter()
        .filter(|(_, owner)| owner == me)
        .map(|(cluster, _)| cluster)
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
        (0..n)
            .map(|i| ClusterId::from(format!("cluster-{i}").as_str()))
            .collect()
    }

    #[test]
    fn should_split_thirty_clusters_over_three_peers_within_thirty_percent_of_even() {
        let clusters = fleet(30);
        let live = peers(&["host-a_101", "host-b_202", "host-c_303"]);
        let owners = assign(&live, &clusters);
        assert_eq!(owners.len(), 30, "every cluster has an owner");
        for peer in &live {
            let n = owners.values().filter(|o| *o == peer).count();
            assert!((8..=11).contains(&n), "{peer} owns {n} of 30: {owners:?}");
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
        assert_eq!(weight("replica-a", "east"), 0x1d6a_7fc8_1811_8a55);
        assert_eq!(weight("", ""), 0x4f2d_b50f_1240_40cd);
        assert_ne!(weight("ab", "c"), weight("a", "bc"));
    }

    /// Every seed, not a sample of them: the hash is fixed, so each seed's answer is too, and
    /// a sampled proptest met a rare seed (716: 36 of 47 moves to the newcomer) only now and
    /// then.
    #[test]
    fn should_move_only_to_a_joining_peer_and_about_a_quarter() {
        let clusters = fleet(200);
        for seed in 0u32..1000 {
            let three = peers(&[
                &format!("a{seed}"),
                &format!("b{seed}"),
                &format!("c{seed}"),
            ]);
            let mut four = three.clone();
            let newcomer = format!("d{seed}");
            four.insert(newcomer.clone());
            let before = assign(&three, &clusters);
            let after = assign(&four, &clusters);
            let moved: Vec<_> = clusters
                .iter()
                .filter(|c| before[*c] != after[*c])
                .collect();
            let to_newcomer = moved.iter().filter(|c| after[**c] == newcomer).count();
            // 200 / 4 = 50 expected; the tighter cap moves a few between old peers.
            assert!(
                (30..=80).contains(&moved.len()),
                "seed {seed}: {} of 200 moved",
                moved.len()
            );
            assert!(
                to_newcomer * 10 >= moved.len() * 7,
                "seed {seed}: {to_newcomer} of {} moves to the newcomer",
                moved.len()
            );
        }
    }

    proptest! {
        #[test]
        fn should_keep_three_random_peers_within_thirty_percent_over_thirty(
            a in "[a-z]{1,8}_[0-9]{1,6}", b in "[a-z]{1,8}_[0-9]{1,6}", c in "[a-z]{1,8}_[0-9]{1,6}",
        ) {
            let live: BTreeSet<String> = [a, b, c].into_iter().collect();
            prop_assume!(live.len() == 3);
            let owners = assign(&live, &fleet(30));
            prop_assert_eq!(owners.len(), 30);
            for peer in &live {
                let n = owners.values().filter(|o| *o == peer).count();
                prop_assert!((8..=11).contains(&n), "{} owns {}", peer, n);
            }
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
            let mut stayed_moved = 0;
            for c in &clusters {
                prop_assert_ne!(&after[c], &gone);
                if before[c] != gone && before[c] != after[c] {
                    stayed_moved += 1;
                }
            }
            // Only clusters that had overflowed to a second choice may move back.
            prop_assert!(stayed_moved <= 10, "{stayed_moved} clusters of staying peers moved");
        }
    }
}
