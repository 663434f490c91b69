//! `[leader_election]` in `clusters.toml`: defaults, the shipped example, and errors that name
//! the file, line and key (or the environment variable) for a missing cluster, bad or unsafe
//! durations; `PANOPTES__LEADER_ELECTION__*` overrides.

use std::path::Path;
use std::time::Duration;

use panoptes_runtime::config::{DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE, PanoptesConfig};

mod lease_table_support;

use lease_table_support::{CLUSTERS, assert_contains, load_env, table_error};

/// The error message `[leader_election]` body `table` (after the clusters) produces.
fn error(table: &str) -> String {
    table_error("leader_election", table)
}

#[test]
fn absent_or_disabled_means_no_election() {
    assert_eq!(load_env(CLUSTERS, &[]).unwrap().leader_election, None);
    let disabled =
        format!("{CLUSTERS}\n[leader_election]\nenabled = false\ncluster = \"nowhere\"\n");
    assert_eq!(load_env(&disabled, &[]).unwrap().leader_election, None);
}

#[test]
fn enabled_takes_client_go_defaults() {
    let text = format!("{CLUSTERS}\n[leader_election]\nenabled = true\ncluster = \"west\"\n");
    let election = load_env(&text, &[])
        .unwrap()
        .leader_election
        .expect("enabled");
    assert_eq!(election.cluster.as_str(), "west");
    assert_eq!(election.namespace, DEFAULT_LEASE_NAMESPACE);
    assert_eq!(election.name, DEFAULT_LEASE_NAME);
    assert!(
        election
            .identity
            .ends_with(&format!("_{}", std::process::id())),
        "{}",
        election.identity
    );
    assert_eq!(election.timings.lease_duration, Duration::from_secs(15));
    assert_eq!(election.timings.renew_deadline, Duration::from_secs(10));
    assert_eq!(election.timings.retry_period, Duration::from_secs(2));
}

#[test]
fn every_key_is_read() {
    let text = format!(
        "{CLUSTERS}\n[leader_election]\nenabled = true\ncluster = \"east\"\nnamespace = \"kube-system\"\nname = \"my-controller.example.com\"\nidentity = \"replica-a\"\nlease_duration = \"2s\"\nrenew_deadline = \"1500ms\"\nretry_period = \"300ms\"\n"
    );
    let election = load_env(&text, &[])
        .unwrap()
        .leader_election
        .expect("enabled");
    assert_eq!(election.namespace, "kube-system");
    assert_eq!(election.name, "my-controller.example.com");
    assert_eq!(election.identity, "replica-a");
    assert_eq!(election.timings.renew_deadline, Duration::from_millis(1500));
    assert_eq!(election.timings.retry_period, Duration::from_millis(300));
}

#[test]
fn a_missing_or_unknown_cluster_is_an_error_at_its_key() {
    let message = error("enabled = true\ncluster = \"north\"\n");
    assert_contains(
        &message,
        &[
            "clusters.toml:11:",
            "[leader_election] cluster",
            "\"north\"",
            "known: east, west",
        ],
    );
    let message = error("enabled = true\n");
    assert_contains(
        &message,
        &[
            "clusters.toml:",
            "[leader_election] cluster",
            "is required",
            "east, west",
        ],
    );
}

#[test]
fn bad_durations_explain_the_units_at_their_line() {
    let message = error("enabled = true\ncluster = \"east\"\nretry_period = \"2\"\n");
    assert_contains(
        &message,
        &[
            "clusters.toml:12:",
            "[leader_election] retry_period",
            "\"2s\"",
        ],
    );
    let message = error("enabled = true\ncluster = \"east\"\nlease_duration = \"fifteen\"\n");
    assert_contains(
        &message,
        &["clusters.toml:12:", "[leader_election] lease_duration"],
    );
}

#[test]
fn unsafe_timings_are_rejected_as_client_go_rejects_them() {
    let message = error(
        "enabled = true\ncluster = \"east\"\nlease_duration = \"10s\"\nrenew_deadline = \"10s\"\n",
    );
    assert_contains(
        &message,
        &[
            "clusters.toml:12:",
            "[leader_election] lease_duration",
            "greater than renew_deadline",
        ],
    );
    let message = error(
        "enabled = true\ncluster = \"east\"\nrenew_deadline = \"2s\"\nretry_period = \"2s\"\n",
    );
    assert_contains(
        &message,
        &[
            "clusters.toml:12:",
            "[leader_election] renew_deadline",
            "retry_period × 1.2",
        ],
    );
    let message = error("enabled = true\ncluster = \"east\"\nretry_period = \"0s\"\n");
    assert_contains(
        &message,
        &["[leader_election] retry_period", "greater than zero"],
    );
    let message = error(
        "enabled = true\ncluster = \"east\"\nlease_duration = \"2500ms\"\nrenew_deadline = \"1s\"\nretry_period = \"100ms\"\n",
    );
    assert_contains(
        &message,
        &["[leader_election] lease_duration", "whole seconds"],
    );
}

#[test]
fn bad_names_and_unknown_keys_are_rejected() {
    assert_contains(
        &error("enabled = true\ncluster = \"east\"\nnamespace = \"Kube_System\"\n"),
        &["[leader_election] namespace", "Kube_System"],
    );
    assert_contains(
        &error("enabled = true\ncluster = \"east\"\nname = \"\"\n"),
        &["[leader_election] name"],
    );
    assert_contains(
        &error("enabled = true\ncluster = \"east\"\nidentity = \" \"\n"),
        &["[leader_election] identity", "empty"],
    );
    assert_contains(
        &error("enabled = true\ncluster = \"east\"\nlease = \"x\"\n"),
        &["clusters.toml:12:", "lease"],
    );
}

#[test]
fn environment_overrides_enable_and_name_their_variable() {
    let text = format!("{CLUSTERS}\n[leader_election]\ncluster = \"west\"\n");
    assert_eq!(load_env(&text, &[]).unwrap().leader_election, None);
    let config = load_env(
        &text,
        &[
            ("PANOPTES__LEADER_ELECTION__ENABLED", "true"),
            ("PANOPTES__LEADER_ELECTION__IDENTITY", "from-env"),
        ],
    )
    .unwrap();
    let election = config.leader_election.expect("enabled by the environment");
    assert_eq!(election.cluster.as_str(), "west");
    assert_eq!(election.identity, "from-env");

    let err = load_env(
        CLUSTERS,
        &[
            ("PANOPTES__LEADER_ELECTION__ENABLED", "true"),
            ("PANOPTES__LEADER_ELECTION__CLUSTER", "north"),
        ],
    )
    .unwrap_err();
    assert_contains(
        &err.to_string(),
        &["PANOPTES__LEADER_ELECTION__CLUSTER", "\"north\""],
    );
    let err = load_env(
        &text,
        &[
            ("PANOPTES__LEADER_ELECTION__ENABLED", "true"),
            ("PANOPTES__LEADER_ELECTION__RENEW_DEADLINE", "20s"),
        ],
    )
    .unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "PANOPTES__LEADER_ELECTION__RENEW_DEADLINE",
            "greater than renew_deadline",
        ],
    );
}

#[test]
fn shipped_clusters_toml_documents_it_disabled() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clusters.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# [leader_election]"),
        "the shipped file shows the table commented out"
    );
    let config = PanoptesConfig::load_with_env(&path, std::iter::empty()).unwrap();
    assert_eq!(config.leader_election, None);
    // Uncommented, the example is valid as written.
    let mut in_example = false;
    let example: String = text
        .lines()
        .map(|line| {
            if line == "# [leader_election]" {
                in_example = true;
            } else if !line.starts_with("# ") {
                in_example = false;
            }
            match line.strip_prefix("# ") {
                Some(rest) if in_example => rest,
                _ => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let config = PanoptesConfig::parse(
        &example,
        &dir.path().join("clusters.toml"),
        std::iter::empty(),
    )
    .unwrap();
    let election = config.leader_election.expect("the example enables it");
    assert_eq!(election.identity, "replica-a");
    assert_eq!(election.timings.retry_period, Duration::from_secs(2));
}
