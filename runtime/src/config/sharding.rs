//! `[sharding]`: N replicas split the fleet by Kubernetes Leases — which cluster holds the
//! Leases, their names, this replica's identity and the timings (the same keys and checks as
//! [`[leader_election]`](super::LeaderElectionConfig), because a shard Lease is held and
//! renewed exactly as the leader's Lease is).
//!
//! ```toml
//! [sharding]
//! enabled = true
//! cluster = "east"          # the [[clusters]] entry holding the Leases
//! namespace = "default"
//! name = "panoptes"         # prefix: Leases <name>-peer-<identity> and <name>-shard-<cluster>
//! lease_duration = "15s"
//! renew_deadline = "10s"
//! retry_period = "2s"
//! ```
//!
//! Left out, or `enabled = false`, there is no sharding: this replica watches every cluster,
//! exactly as without the table. See [`crate::sharding`] for what the replicas do with it.

use panoptes_actors::ElectionTimings;
use panoptes_actors::ids::ClusterId;

use super::LeaderElectionConfig;

/// A checked, enabled `[sharding]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardingConfig {
    /// The `[[clusters]]` entry holding the Leases (known to exist). It is also a member of
    /// the fleet like any other: whether it is watched here depends on who owns it.
    pub cluster: ClusterId,
    /// Namespace of the Leases. Default
    /// [`DEFAULT_LEASE_NAMESPACE`](super::DEFAULT_LEASE_NAMESPACE).
    pub namespace: String,
    /// Prefix of the Lease names. Default [`DEFAULT_LEASE_NAME`](super::DEFAULT_LEASE_NAME).
    pub name: String,
    /// Who this replica is in `holderIdentity`. Default `<hostname>_<pid>`.
    pub identity: String,
    /// Lease duration, renew deadline and retry period (defaults 15 s, 10 s, 2 s), checked
    /// as client-go checks them.
    pub timings: ElectionTimings,
}

impl From<LeaderElectionConfig> for ShardingConfig {
    /// Both tables have the same keys and checks; the validator reads both the same way.
    fn from(table: LeaderElectionConfig) -> Self {
        Self {
            cluster: table.cluster,
            namespace: table.namespace,
            name: table.name,
            identity: table.identity,
            timings: table.timings,
        }
    }
}
