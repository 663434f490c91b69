//! Shared by the tests of the Lease-timed tables of `clusters.toml` (`[leader_election]`,
//! `[sharding]`): a file with two embedded clusters, loaded with an environment, and the
//! error a table body produces.

use panoptes_runtime::config::{ConfigError, PanoptesConfig};

/// Two embedded clusters, `east` and `west`.
pub const CLUSTERS: &str = "[[clusters]]\nname = \"east\"\nembedded = { pods = 1 }\n\n[[clusters]]\nname = \"west\"\nembedded = { pods = 1 }\n";

/// Loads `text` as a `clusters.toml` in a temporary directory, with `env` as the environment.
pub fn load_env(text: &str, env: &[(&str, &str)]) -> Result<PanoptesConfig, ConfigError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("clusters.toml");
    std::fs::write(&path, text).expect("write");
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    PanoptesConfig::load_with_env(path, env)
}

/// The error message that `[table]` with `body` (after [`CLUSTERS`]) produces.
pub fn table_error(table: &str, body: &str) -> String {
    match load_env(&format!("{CLUSTERS}\n[{table}]\n{body}"), &[]) {
        Ok(config) => panic!("expected an error from [{table}], loaded {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// Fails naming the first of `fragments` that `message` lacks.
pub fn assert_contains(message: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "expected {fragment:?} in: {message}"
        );
    }
}
