//! `[leader_election]`: which Lease the replicas of one deployment compete for, on which
//! cluster, and with what timings — controller-runtime's `LeaderElection*` manager options
//! (`LeaderElectionID`, `LeaderElectionNamespace`, `LeaseDuration`, `RenewDeadline`,
//! `RetryPeriod`) as a table of `clusters.toml`.
//!
//! ```toml
//! [leader_election]
//! enabled = true
//! cluster = "east"          # the [[clusters]] entry holding the Lease
//! namespace = "default"
//! name = "panoptes"
//! lease_duration = "15s"
//! renew_deadline = "10s"
//! retry_period = "2s"
//! ```
//!
//! Left out, or `enabled = false`, there is no election: every replica reconciles.

use panoptes_actors::ElectionTimings;
use panoptes_actors::ids::ClusterId;

/// Namespace of the Lease when none is written. `"default"` rather than `"kube-system"`: it
/// exists on every cluster, and a user deploying a controller can usually be granted a Role
/// there, while `kube-system` is reserved for the cluster's own components and often locked
/// down. (controller-runtime defaults to the pod's own namespace in-cluster, which Panoptes,
/// reaching clusters from anywhere, cannot assume.)
pub const DEFAULT_LEASE_NAMESPACE: &str = "default";

/// Name of the Lease when none is written.
pub const DEFAULT_LEASE_NAME: &str = "panoptes";

/// A checked, enabled `[leader_election]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// The `[[clusters]]` entry holding the Lease (known to exist).
    pub cluster: ClusterId,
    /// Namespace of the Lease. Default [`DEFAULT_LEASE_NAMESPACE`].
    pub namespace: String,
    /// Name of the Lease. Default [`DEFAULT_LEASE_NAME`].
    pub name: String,
    /// Who this replica says it is in `holderIdentity`. Default `<hostname>_<pid>`, unique per
    /// process on one machine and recognisable in `kubectl get lease -o yaml`.
    pub identity: String,
    /// Lease duration, renew deadline and retry period (defaults 15 s, 10 s, 2 s), checked
    /// as client-go checks them.
    pub timings: ElectionTimings,
}

/// `<hostname>_<pid>` (client-go examples use `os.Hostname()` plus a unique suffix).
pub fn default_identity() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "panoptes".into());
    format!("{host}_{}", std::process::id())
}
