//! `clusters.toml` loading: the shipped file works, and every kind of mistake yields an error
//! naming the file, the key and the line (or the environment variable), never a panic.

use std::path::{Path, PathBuf};

use panoptes_runtime::CacheMode;
use panoptes_runtime::config::{
    ClusterSelection, ClusterSource, ConfigError, OtlpProtocol, PanoptesConfig,
};

const KUBECONFIG: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:6443
contexts:
- name: ctx-a
  context: {cluster: c1, user: alice}
current-context: ctx-a
users:
- name: alice
  user:
    token: secret-token-abc
"#;

const GOOD_CLUSTER: &str = "[[clusters]]\nname = \"east\"\nembedded = { pods = 3 }\n";

/// A scratch folder holding `clusters.toml` (and whatever else a case needs).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }

    fn load(&self, text: &str) -> Result<PanoptesConfig, ConfigError> {
        self.load_env(text, &[])
    }

    fn load_env(&self, text: &str, env: &[(&str, &str)]) -> Result<PanoptesConfig, ConfigError> {
        let path = self.write("clusters.toml", text);
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        PanoptesConfig::load_with_env(path, env)
    }

    /// The message of the error `text` must produce.
    fn error(&self, text: &str) -> String {
        match self.load(text) {
            Ok(config) => panic!("expected an error, loaded {config:?}"),
            Err(e) => e.to_string(),
        }
    }
}

/// Asserts the message names the file at `line` and mentions every fragment.
fn assert_names(message: &str, line: usize, fragments: &[&str]) {
    eprintln!("{message}");
    let at = format!("clusters.toml:{line}:");
    assert!(message.contains(&at), "expected {at:?} in: {message}");
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "expected {fragment:?} in: {message}"
        );
    }
}

#[test]
fn shipped_clusters_toml_loads_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clusters.toml");
    let config = PanoptesConfig::load_with_env(&path, std::iter::empty()).expect("shipped config");
    let names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["east", "west", "edge"]);
    assert!(config.clusters.iter().all(
        |c| matches!(&c.source, ClusterSource::Embedded(e) if e.pods > 0 && e.churn_per_sec > 0.0)
    ));
    let resources: Vec<String> = config
        .watches
        .iter()
        .map(|w| w.resource.to_string())
        .collect();
    assert_eq!(resources, ["v1/pods", "apps/v1/deployments"]);
    assert!(
        config
            .watches
            .iter()
            .all(|w| w.clusters == ClusterSelection::All)
    );
    assert_eq!(config.telemetry.otlp_endpoint, None);
    assert_eq!(config.runtime.metrics_addr.to_string(), "127.0.0.1:9464");
}

#[test]
fn missing_file_names_the_path() {
    let scratch = Scratch::new();
    let path = scratch.dir.path().join("nope.toml");
    let err = PanoptesConfig::load_with_env(&path, std::iter::empty()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_names_line_and_section() {
    let message = Scratch::new().error("[[clusters]]\nname = \"east\nembedded = {}\n");
    assert_names(&message, 2, &["syntax", "[[clusters]]"]);
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let message = Scratch::new().error(&format!("{GOOD_CLUSTER}\nbogus = 1\n"));
    assert_names(&message, 5, &["bogus", "unknown field"]);
}

#[test]
fn unknown_key_inside_clusters_names_the_entry() {
    let text = format!("{GOOD_CLUSTER}\n[[clusters]]\nname = \"west\"\nembeded = {{}}\n");
    let message = Scratch::new().error(&text);
    assert_names(&message, 7, &["[[clusters]] #2 embeded", "unknown field"]);
}

#[test]
fn unknown_key_inside_runtime_is_rejected() {
    let message = Scratch::new().error(&format!("[runtime]\nmetrics_adr = \"x\"\n{GOOD_CLUSTER}"));
    assert_names(&message, 2, &["[runtime] metrics_adr", "unknown field"]);
}

#[test]
fn wrong_type_names_the_key() {
    let message =
        Scratch::new().error("[[clusters]]\nname = \"east\"\nembedded = { pods = \"many\" }\n");
    assert_names(&message, 3, &["[[clusters]] #1 embedded.pods"]);
}

#[test]
fn bad_resource_string_explains_the_form() {
    let message =
        Scratch::new().error(&format!("{GOOD_CLUSTER}\n[[watch]]\nresource = \"pods\"\n"));
    assert_names(&message, 6, &["[[watch]] #1 resource", "\"v1/pods\""]);
    let message = Scratch::new().error(&format!(
        "{GOOD_CLUSTER}\n[[watch]]\nresource = \"apps/v1/Deployments\"\n"
    ));
    assert_names(&message, 6, &["[[watch]] #1 resource", "plural"]);
}

#[test]
fn missing_kubeconfig_file_is_reported_with_its_line() {
    let message = Scratch::new()
        .error("[[clusters]]\nname = \"kind\"\nkubeconfig = \"missing/kubeconfig\"\n");
    assert_names(
        &message,
        3,
        &[
            "[[clusters]] #1 kubeconfig",
            "missing/kubeconfig",
            "does not exist",
        ],
    );
}

#[test]
fn context_not_in_kubeconfig_lists_the_ones_there() {
    let scratch = Scratch::new();
    scratch.write("kubeconfig", KUBECONFIG);
    let message = scratch
        .error("[[clusters]]\nname = \"kind\"\nkubeconfig = \"kubeconfig\"\ncontext = \"ctx-b\"\n");
    assert_names(
        &message,
        4,
        &["[[clusters]] #1 context", "\"ctx-b\"", "ctx-a"],
    );
}

#[test]
fn kubeconfig_relative_to_the_config_file_with_known_context_loads() {
    let scratch = Scratch::new();
    let kubeconfig = scratch.write("kubeconfig", KUBECONFIG);
    let config = scratch
        .load("[[clusters]]\nname = \"kind\"\nkubeconfig = \"kubeconfig\"\ncontext = \"ctx-a\"\nqps = 20.0\nburst = 40\n")
        .expect("valid");
    let source = ClusterSource::Kubeconfig {
        path: kubeconfig,
        context: Some("ctx-a".into()),
    };
    assert_eq!(config.clusters[0].source, source);
    assert_eq!(
        (config.clusters[0].qps, config.clusters[0].burst),
        (Some(20.0), Some(40))
    );
}

#[test]
fn duplicate_cluster_names_point_at_both_lines() {
    let text = "[[clusters]]\nname = \"east\"\nembedded = {}\n\n[[clusters]]\nname = \"east\"\nin_cluster = true\n";
    let message = Scratch::new().error(text);
    assert_names(
        &message,
        6,
        &[
            "[[clusters]] #2 name",
            "\"east\" is used twice (first at line 2)",
        ],
    );
}

#[test]
fn watch_naming_an_unknown_cluster_lists_known_ones() {
    let text = format!(
        "{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\nclusters = [\"east\", \"wets\"]\n"
    );
    let message = Scratch::new().error(&text);
    assert_names(
        &message,
        7,
        &["[[watch]] #1 clusters", "\"wets\"", "known: east"],
    );
}

#[test]
fn watch_with_an_empty_cluster_list_is_rejected() {
    let text = format!("{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\nclusters = []\n");
    let message = Scratch::new().error(&text);
    assert_names(&message, 7, &["[[watch]] #1 clusters", "empty list"]);
}

#[test]
fn two_sources_on_one_cluster_are_rejected() {
    let message =
        Scratch::new().error("[[clusters]]\nname = \"east\"\nin_cluster = true\nembedded = {}\n");
    assert_names(
        &message,
        4,
        &["[[clusters]] #1 embedded", "both in_cluster and embedded"],
    );
}

#[test]
fn a_cluster_without_source_is_rejected() {
    let message = Scratch::new().error(&format!("{GOOD_CLUSTER}\n[[clusters]]\nname = \"west\"\n"));
    assert_names(&message, 5, &["[[clusters]] #2", "no source"]);
}

#[test]
fn no_clusters_at_all_is_rejected() {
    let message = Scratch::new().error("[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n");
    assert_names(&message, 1, &["[[clusters]]", "none defined"]);
}

#[test]
fn bad_duration_explains_the_units() {
    let text = format!("{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\nresync = \"30\"\n");
    let message = Scratch::new().error(&text);
    assert_names(&message, 7, &["[[watch]] #1 resync", "no unit"]);
    let message = Scratch::new().error(&format!(
        "[runtime]\ndefault_resync = \"5 min\"\n{GOOD_CLUSTER}"
    ));
    assert_names(&message, 2, &["[runtime] default_resync"]);
}

#[test]
fn bad_selectors_fail_with_the_servers_message_at_their_key() {
    let text = format!(
        "{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\nlabel_selector = \"app=web,tier in (a\"\n"
    );
    let message = Scratch::new().error(&text);
    assert_names(
        &message,
        7,
        &[
            "[[watch]] #1 label_selector",
            "tier in (a",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ],
    );
    let text = format!(
        "{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\nfield_selector = \"status.phase\"\n"
    );
    let message = Scratch::new().error(&text);
    assert_names(
        &message,
        7,
        &[
            "[[watch]] #1 field_selector",
            "can't understand 'status.phase'",
        ],
    );
}

#[test]
fn selectors_the_server_accepts_load() {
    let text = format!(
        "{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\nlabel_selector = \"replicas>3,tier notin (db)\"\nfield_selector = 'metadata.name!=a\\,b'\n"
    );
    let config = Scratch::new().load(&text).expect("valid selectors load");
    assert_eq!(
        config.watches[0].label_selector.as_deref(),
        Some("replicas>3,tier notin (db)")
    );
}

#[test]
fn sampling_ratio_out_of_range_is_rejected() {
    let message = Scratch::new().error(&format!(
        "[telemetry]\nsampling_ratio = 1.5\n{GOOD_CLUSTER}"
    ));
    assert_names(
        &message,
        2,
        &["[telemetry] sampling_ratio", "1.5", "0.0..=1.0"],
    );
}

#[test]
fn bad_metrics_address_is_rejected() {
    let message = Scratch::new().error(&format!(
        "[runtime]\nmetrics_addr = \"localhost\"\n{GOOD_CLUSTER}"
    ));
    assert_names(
        &message,
        2,
        &["[runtime] metrics_addr", "\"localhost\"", "IP:PORT"],
    );
}

#[test]
fn bad_embedded_numbers_and_names_are_rejected() {
    let message = Scratch::new().error("[[clusters]]\nname = \"east\"\nembedded = { pods = -1 }\n");
    assert_names(&message, 3, &["[[clusters]] #1 embedded.pods", "-1"]);
    let message = Scratch::new().error("[[clusters]]\nname = \"East_1\"\nembedded = {}\n");
    assert_names(&message, 2, &["[[clusters]] #1 name", "\"East_1\""]);
    let message =
        Scratch::new().error("[[clusters]]\nname = \"e\"\nembedded = { namespaces = 0 }\n");
    assert_names(&message, 3, &["[[clusters]] #1 embedded.namespaces"]);
}

#[test]
fn bad_rate_limits_are_rejected() {
    let message = Scratch::new().error("[[clusters]]\nname = \"e\"\nembedded = {}\nqps = 0.0\n");
    assert_names(&message, 4, &["[[clusters]] #1 qps", "positive"]);
    let message = Scratch::new().error("[[clusters]]\nname = \"e\"\nembedded = {}\nburst = 10\n");
    assert_names(
        &message,
        4,
        &["[[clusters]] #1 burst", "only together with qps"],
    );
}

#[test]
fn bad_log_filter_and_protocol_are_rejected() {
    let message = Scratch::new().error(&format!("[telemetry]\nlog = \"info,[\"\n{GOOD_CLUSTER}"));
    assert_names(&message, 2, &["[telemetry] log"]);
    let message = Scratch::new().error(&format!(
        "[telemetry]\notlp_protocol = \"udp\"\n{GOOD_CLUSTER}"
    ));
    assert_names(
        &message,
        2,
        &["[telemetry] otlp_protocol", "\"grpc\" or \"http\""],
    );
}

#[test]
fn bad_env_override_names_the_variable() {
    let scratch = Scratch::new();
    let err = scratch
        .load_env(
            GOOD_CLUSTER,
            &[("PANOPTES__RUNTIME__METRICS_ADDR", "nonsense")],
        )
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("PANOPTES__RUNTIME__METRICS_ADDR"),
        "{message}"
    );
    assert!(
        message.contains("[runtime] metrics_addr") && message.contains("clusters.toml"),
        "{message}"
    );

    let err = scratch
        .load_env(GOOD_CLUSTER, &[("PANOPTES__RUNTIME__BOGUS", "1")])
        .unwrap_err();
    assert!(matches!(err, ConfigError::Override { .. }), "{err:?}");
    assert!(
        err.to_string().contains("PANOPTES__RUNTIME__BOGUS"),
        "{err}"
    );
}

#[test]
fn env_override_sets_the_otlp_endpoint() {
    let scratch = Scratch::new();
    let text = format!("[telemetry]\nsampling_ratio = 0.5\n{GOOD_CLUSTER}");
    let env = [
        (
            "PANOPTES__TELEMETRY__OTLP_ENDPOINT",
            "http://collector:4318",
        ),
        ("PANOPTES__TELEMETRY__OTLP_PROTOCOL", "http"),
        ("UNRELATED", "x"),
    ];
    let config = scratch.load_env(&text, &env).expect("valid");
    assert_eq!(
        config.telemetry.otlp_endpoint.as_deref(),
        Some("http://collector:4318")
    );
    assert_eq!(config.telemetry.otlp_protocol, OtlpProtocol::Http);
    assert_eq!(
        config.telemetry.sampling_ratio, 0.5,
        "file values survive the merge"
    );
    assert_eq!(config.clusters.len(), 1);
}

#[test]
fn missing_required_keys_point_at_their_entry() {
    let message = Scratch::new().error(&format!("{GOOD_CLUSTER}\n[[clusters]]\nembedded = {{}}\n"));
    assert_names(&message, 5, &["[[clusters]] #2", "name"]);
    let message = Scratch::new().error(&format!("{GOOD_CLUSTER}\n[[watch]]\nclusters = \"*\"\n"));
    assert_names(&message, 5, &["[[watch]] #1", "resource"]);
}

#[test]
fn a_single_cluster_name_string_asks_for_a_list() {
    let text = format!("{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\nclusters = \"east\"\n");
    let message = Scratch::new().error(&text);
    assert_names(&message, 7, &["[[watch]] #1 clusters", "[\"east\"]"]);
}

#[test]
fn odd_environment_variables_are_errors_or_ignored_never_panics() {
    let scratch = Scratch::new();
    for (name, value) in [
        ("PANOPTES__CLUSTERS__0__NAME", "x"),
        ("PANOPTES__TELEMETRY__SAMPLING_RATIO", "lots"),
        ("PANOPTES__TELEMETRY", "flat"),
        ("PANOPTES__", "x"),
        ("PANOPTES_RUNTIME_METRICS_ADDR", "nonsense"),
        ("panoptes__runtime__metrics_addr", "127.0.0.1:1"),
        ("PANOPTÉS__X", "x"),
    ] {
        match scratch.load_env(GOOD_CLUSTER, &[(name, value)]) {
            Ok(_) => {}
            Err(e) => assert!(
                e.to_string().to_uppercase().contains(&name.to_uppercase()),
                "{name}: {e}"
            ),
        }
    }
    let config = scratch
        .load_env(
            GOOD_CLUSTER,
            &[("panoptes__runtime__metrics_addr", "127.0.0.1:1")],
        )
        .expect("lowercase variables apply, as the config crate matches without case");
    assert_eq!(config.runtime.metrics_addr.port(), 1);
}

#[test]
fn resync_falls_back_to_the_runtime_default_and_zero_turns_it_off() {
    let text = format!(
        "[runtime]\ndefault_resync = \"10m\"\n{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\n\n[[watch]]\nresource = \"v1/pods\"\nresync = \"0s\"\n\n[[watch]]\nresource = \"v1/pods\"\nresync = \"1h30m\"\nnamespace = \"kube-system\"\nlabel_selector = \"app in (a,b),!canary\"\nfield_selector = \"status.phase=Running\"\n"
    );
    let config = Scratch::new().load(&text).expect("valid");
    let resyncs: Vec<_> = config
        .watches
        .iter()
        .map(|w| w.resync.map(|d| d.as_secs()))
        .collect();
    assert_eq!(resyncs, [Some(600), None, Some(5400)]);
    assert_eq!(config.watches[2].namespace.as_deref(), Some("kube-system"));
}

#[test]
fn columns_count_characters_not_bytes() {
    let message = Scratch::new().error("[[clusters]]\nname = \"ë\" ; bogus\n");
    assert_names(&message, 2, &[":2:12:"]);
}

#[test]
fn watch_cache_mode_parses_and_defaults_to_typed() {
    let text = format!(
        "{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\ncache = \"compact\"\n\n[[watch]]\nresource = \"v1/pods\"\n\n[[watch]]\nresource = \"v1/pods\"\ncache = \"typed\"\n"
    );
    let config = Scratch::new().load(&text).expect("valid");
    let modes: Vec<CacheMode> = config.watches.iter().map(|w| w.cache).collect();
    assert_eq!(
        modes,
        [CacheMode::Compact, CacheMode::Typed, CacheMode::Typed]
    );
}

#[test]
fn bad_watch_cache_mode_names_the_key_and_the_choices() {
    let text = format!("{GOOD_CLUSTER}\n[[watch]]\nresource = \"v1/pods\"\ncache = \"tiny\"\n");
    let message = Scratch::new().error(&text);
    assert_names(
        &message,
        7,
        &[
            "[[watch]] #1 cache",
            "\"tiny\"",
            "\"typed\", \"compact\" or \"metadata\"",
        ],
    );
}

#[test]
fn fleet_memory_settings_are_read_from_the_file_and_the_environment() {
    let scratch = Scratch::new();
    let unset = scratch.load(GOOD_CLUSTER).expect("a good file");
    assert_eq!(unset.runtime.concurrent_lists, None, "no limit by default");
    assert!(!unset.runtime.release_heap_after_sync, "off by default");
    let set = scratch
        .load(&format!(
            "[runtime]\nconcurrent_lists = 4\nrelease_heap_after_sync = true\n{GOOD_CLUSTER}"
        ))
        .expect("a good file");
    assert_eq!(set.runtime.concurrent_lists, Some(4));
    assert!(set.runtime.release_heap_after_sync);
    let overridden = scratch
        .load_env(
            GOOD_CLUSTER,
            &[("PANOPTES__RUNTIME__CONCURRENT_LISTS", "2")],
        )
        .expect("a good override");
    assert_eq!(overridden.runtime.concurrent_lists, Some(2));
    let message = Scratch::new().error(&format!("[runtime]\nconcurrent_lists = 0\n{GOOD_CLUSTER}"));
    assert_names(&message, 2, &["[runtime] concurrent_lists", "1 or more"]);
}

#[test]
fn read_ahead_is_read_from_the_file_and_the_environment() {
    let scratch = Scratch::new();
    let unset = scratch.load(GOOD_CLUSTER).expect("a good file");
    assert_eq!(unset.runtime.read_ahead, 1024, "paced by default");
    let off = scratch
        .load(&format!("[runtime]\nread_ahead = 0\n{GOOD_CLUSTER}"))
        .expect("a good file");
    assert_eq!(off.runtime.read_ahead, 0, "0 turns pacing off");
    let overridden = scratch
        .load_env(GOOD_CLUSTER, &[("PANOPTES__RUNTIME__READ_AHEAD", "64")])
        .expect("a good override");
    assert_eq!(overridden.runtime.read_ahead, 64);
    let message = Scratch::new().error(&format!("[runtime]\nread_ahead = -1\n{GOOD_CLUSTER}"));
    assert_names(
        &message,
        2,
        &["[runtime] read_ahead", "0 (never pause a watch) or more"],
    );
}
