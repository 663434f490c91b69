//! Sharding the fleet across replicas by Kubernetes Leases (`[sharding]` in
//! `clusters.toml`): each cluster is watched and reconciled by exactly one replica, and
//! clusters move when replicas join, leave or die.
//!
//! The scheme is controller-runtime's multicluster sharding:
//! - **Membership** ([`peers`]): every replica holds and renews a peer Lease in the home
//!   cluster; live peers are those whose Lease has moved within its duration.
//! - **Ownership** ([`rendezvous`]): highest-random-weight hashing of cluster names over the
//!   live peers says who *should* own each cluster; a peer joining or leaving moves only the
//!   clusters it must (about 1/N).
//! - **Fence**: a replica engages a cluster only while it holds that cluster's shard Lease,
//!   and disengages (stops reconciling, closes its watches, drops its caches) before it
//!   releases it, or as soon as it could not renew it for `renew_deadline`
//!   ([`plan`], [`coordinator`]).
//! - **Enforcement**: the runtime's active clusters are the configured ones it owns. An
//!   informer, lister or controller of a cluster not owned here has no member for it
//!   ([`MultiInformer::handle`](crate::MultiInformer::handle) and its reads answer `None`),
//!   [`Runtime::client`](crate::Runtime::client) answers `None` and
//!   [`Runtime::try_client`](crate::Runtime::try_client) [`ClientError::NotOwned`];
//!   a controller drops keys of such a cluster, including keys queued before it was
//!   disengaged ([`ControllerHandle::try_enqueue`](crate::ControllerHandle::try_enqueue)).
//!
//! Lease names and labels are in [`lease_names`]. With sharding off, every configured
//! cluster is active, as before.

pub mod coordinator;
pub mod lease_names;
pub mod peers;
pub mod plan;
pub mod rendezvous;

use panoptes_actors::ids::ClusterId;

pub use coordinator::{HandoffReason, ShardHandle};

use crate::health::Readiness;
use crate::metrics::Metrics;

/// What the coordinator drives: the [`Runtime`](crate::Runtime), seen only through what
/// sharding needs of it, so that the runtime depends on sharding and not the other way.
pub(crate) trait ShardHost: Sized + 'static {
    /// A handle that does not keep the host alive (the coordinator must not).
    type Weak: 'static;

    /// A weak handle to this host.
    fn downgrade(&self) -> Self::Weak;
    /// The host, unless it was dropped.
    fn upgrade(weak: &Self::Weak) -> Option<Self>;
    /// The configured clusters now, owned or not.
    fn clusters(&self) -> Vec<ClusterId>;
    /// This replica now holds `cluster`'s shard Lease: its informers and controllers join it.
    fn activate_shard(&self, cluster: &ClusterId);
    /// This replica is about to release (or has lost) `cluster`'s shard Lease: everything
    /// of it stops before this returns.
    fn deactivate_shard(&self, cluster: &ClusterId);
    /// Where the shard metrics go.
    fn metrics(&self) -> &Metrics;
    /// Where `/readyz` reads the owned set from.
    fn readiness(&self) -> &Readiness;
}

/// Why [`Runtime::try_client`](crate::Runtime::try_client) has no client for a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No `[[clusters]]` entry has this name.
    #[error("cluster \"{cluster}\" is not configured")]
    Unknown {
        /// The name asked for.
        cluster: ClusterId,
    },
    /// Configured, but its connection could not be built.
    #[error("cluster \"{cluster}\" is not connected: {error}")]
    NotConnected {
        /// The name asked for.
        cluster: ClusterId,
        /// Why its connection failed.
        error: String,
    },
    /// Sharding is on and another replica owns the cluster (or nobody holds its Lease yet):
    /// this replica must not touch it.
    #[error("cluster \"{cluster}\" is not owned here (sharding): another replica reconciles it")]
    NotOwned {
        /// The name asked for.
        cluster: ClusterId,
    },
}

/// The `User-Agent` every client of a sharded replica sends, so a server (sim's per-client
/// counters, an apiserver's audit log) can tell replicas apart.
pub fn user_agent(identity: &str) -> String {
    format!("panoptes/{} (shard {identity})", env!("CARGO_PKG_VERSION"))
}
