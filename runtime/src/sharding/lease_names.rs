//! The names and labels of the sharding Leases in the home cluster — the contract other
//! tools (the multi-process tests, `kubectl get leases -l panoptes.io/shard-role`) rely on.
//!
//! - Peer Lease (membership): `<name>-peer-<identity-slug>`, label
//!   `panoptes.io/shard-role=peer`, `holderIdentity` = the replica's identity.
//! - Shard Lease (the fence of one cluster): `<name>-shard-<cluster>`, label
//!   `panoptes.io/shard-role=shard`, `holderIdentity` = the owning replica's identity.
//!
//! The identity slug is the identity lowercased with every character outside `[a-z0-9-]`
//! replaced by `-`; when that changed anything, a short hash of the identity is appended so
//! two identities that differ only in such characters (`a_1`, `a.1`) get two Leases.

use std::collections::BTreeMap;

use super::rendezvous::weight;

/// The label key telling peer Leases from shard Leases.
pub const ROLE_LABEL: &str = "panoptes.io/shard-role";
/// [`ROLE_LABEL`]'s value on peer (membership) Leases.
pub const PEER_ROLE: &str = "peer";
/// [`ROLE_LABEL`]'s value on shard (per-cluster fence) Leases.
pub const SHARD_ROLE: &str = "shard";

/// Longest slug kept: a Lease name is at most 253 characters and the prefix and hash need
/// room.
const MAX_SLUG: usize = 180;

/// `identity` as a name part: lowercase `[a-z0-9-]`, starting and ending alphanumeric, with
/// an 8-hex-digit hash of the original appended when anything had to change.
pub fn identity_slug(identity: &str) -> String {
    let mapped: String = identity
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            l @ ('a'..='z' | '0'..='9' | '-') => l,
            _ => '-',
        })
        .collect();
    let mut slug: String = mapped.trim_matches('-').chars().take(MAX_SLUG).collect();
    slug.truncate(slug.trim_end_matches('-').len());
    if slug == identity {
        return slug;
    }
    let hash = weight(identity, "") as u32;
    if slug.is_empty() {
        format!("{hash:08x}")
    } else {
        format!("{slug}-{hash:08x}")
    }
}

/// The peer Lease of `identity`: `<prefix>-peer-<identity-slug>`.
pub fn peer_lease_name(prefix: &str, identity: &str) -> String {
    format!("{prefix}-peer-{}", identity_slug(identity))
}

/// The prefix every peer Lease of this deployment starts with (`<prefix>-peer-`), to tell
/// ours from another deployment's in the same namespace.
pub fn peer_lease_prefix(prefix: &str) -> String {
    format!("{prefix}-peer-")
}

/// The shard Lease of `cluster`: `<prefix>-shard-<cluster>`.
pub fn shard_lease_name(prefix: &str, cluster: &str) -> String {
    format!("{prefix}-shard-{cluster}")
}

/// The labels a Lease of `role` carries.
pub fn role_labels(role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(ROLE_LABEL.to_string(), role.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_keep_a_clean_identity_as_is() {
        assert_eq!(identity_slug("replica-a"), "replica-a");
        assert_eq!(
            peer_lease_name("panoptes", "replica-a"),
            "panoptes-peer-replica-a"
        );
        assert_eq!(shard_lease_name("panoptes", "east"), "panoptes-shard-east");
    }

    #[test]
    fn should_replace_and_hash_when_the_identity_is_not_a_name() {
        let slug = identity_slug("Host.Example_123");
        assert!(slug.starts_with("host-example-123-"), "{slug}");
        assert_eq!(slug.len(), "host-example-123-".len() + 8);
        assert_ne!(identity_slug("a_1"), identity_slug("a.1"));
        assert_eq!(identity_slug("a_1"), identity_slug("a_1"), "stable");
    }

    #[test]
    fn should_start_and_end_alphanumeric() {
        let slug = identity_slug("_x_");
        assert!(slug.starts_with('x') && !slug.ends_with('-'), "{slug}");
        let only_symbols = identity_slug("__");
        assert_eq!(only_symbols.len(), 8, "{only_symbols}");
        assert!(identity_slug(&"y".repeat(400)).len() <= MAX_SLUG + 9);
    }
}
