//! `[sharding]` in `clusters.toml`: off by default, client-go's timing defaults, errors at
//! the file, line and key (the same checks as `[leader_election]`), and
//! `PANOPTES__SHARDING__*` overrides.

use std::time::Duration;

use panoptes_runtime::config::{DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE};

mod lease_table_support;

use lease_table_support::{CLUSTERS, assert_contains, load_env, table_error};

/// The error message `[sharding]` body `table` (after the clusters) produces.
fn error(table: &str) -> String {
    table_error("sharding", table)
}

#[test]
fn absent_or_disabled_means_no_sharding() {
    assert_eq!(load_env(CLUSTERS, &[]).unwrap().sharding, None);
    let disabled = format!("{CLUSTERS}\n[sharding]\nenabled = false\ncluster = \"nowhere\"\n");
    assert_eq!(load_env(&disabled, &[]).unwrap().sharding, None);
}

#[test]
fn enabled_takes_the_defaults() {
    let text = format!("{CLUSTERS}\n[sharding]\nenabled = true\ncluster = \"west\"\n");
    let sharding = load_env(&text, &[]).unwrap().sharding.expect("enabled");
    assert_eq!(sharding.cluster.as_str(), "west");
    assert_eq!(sharding.namespace, DEFAULT_LEASE_NAMESPACE);
    assert_eq!(sharding.name, DEFAULT_LEASE_NAME);
    assert!(
        sharding
            .identity
            .ends_with(&format!("_{}", std::process::id())),
        "{}",
        sharding.identity
    );
    assert_eq!(sharding.timings.lease_duration, Duration::from_secs(15));
    assert_eq!(sharding.timings.renew_deadline, Duration::from_secs(10));
    assert_eq!(sharding.timings.retry_period, Duration::from_secs(2));
}

#[test]
fn every_key_is_read() {
    let text = format!(
        "{CLUSTERS}\n[sharding]\nenabled = true\ncluster = \"east\"\nnamespace = \"shards\"\nname = \"fleet\"\nidentity = \"replica-a\"\nlease_duration = \"2s\"\nrenew_deadline = \"1500ms\"\nretry_period = \"300ms\"\n"
    );
    let sharding = load_env(&text, &[]).unwrap().sharding.expect("enabled");
    assert_eq!(sharding.namespace, "shards");
    assert_eq!(sharding.name, "fleet");
    assert_eq!(sharding.identity, "replica-a");
    assert_eq!(sharding.timings.renew_deadline, Duration::from_millis(1500));
}

#[test]
fn a_missing_or_unknown_cluster_is_an_error_at_its_key() {
    assert_contains(
        &error("enabled = true\ncluster = \"north\"\n"),
        &[
            "clusters.toml:11:",
            "[sharding] cluster",
            "\"north\"",
            "known: east, west",
        ],
    );
    assert_contains(
        &error("enabled = true\n"),
        &["clusters.toml:", "[sharding] cluster", "is required"],
    );
}

#[test]
fn unsafe_timings_and_bad_values_are_rejected_at_their_key() {
    assert_contains(
        &error(
            "enabled = true\ncluster = \"east\"\nlease_duration = \"10s\"\nrenew_deadline = \"10s\"\n",
        ),
        &[
            "clusters.toml:12:",
            "[sharding] lease_duration",
            "greater than renew_deadline",
        ],
    );
    assert_contains(
        &error(
            "enabled = true\ncluster = \"east\"\nrenew_deadline = \"2s\"\nretry_period = \"2s\"\n",
        ),
        &[
            "clusters.toml:12:",
            "[sharding] renew_deadline",
            "retry_period × 1.2",
        ],
    );
    assert_contains(
        &error("enabled = true\ncluster = \"east\"\nretry_period = \"2\"\n"),
        &["clusters.toml:12:", "[sharding] retry_period"],
    );
    assert_contains(
        &error("enabled = true\ncluster = \"east\"\nnamespace = \"Kube_System\"\n"),
        &["[sharding] namespace", "Kube_System"],
    );
    assert_contains(
        &error("enabled = true\ncluster = \"east\"\nidentity = \" \"\n"),
        &["[sharding] identity", "empty"],
    );
    assert_contains(
        &error("enabled = true\ncluster = \"east\"\nshards = 3\n"),
        &["clusters.toml:12:", "shards"],
    );
}

#[test]
fn environment_overrides_enable_and_set_the_identity() {
    let text = format!("{CLUSTERS}\n[sharding]\ncluster = \"west\"\n");
    assert_eq!(load_env(&text, &[]).unwrap().sharding, None);
    let config = load_env(
        &text,
        &[
            ("PANOPTES__SHARDING__ENABLED", "true"),
            ("PANOPTES__SHARDING__IDENTITY", "from-env"),
        ],
    )
    .unwrap();
    let sharding = config.sharding.expect("enabled by the environment");
    assert_eq!(sharding.cluster.as_str(), "west");
    assert_eq!(sharding.identity, "from-env");
    assert_eq!(config.leader_election, None, "the tables are independent");
}
