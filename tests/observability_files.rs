//! `deploy/observability/` without docker: the compose file's services, ports and mounted
//! files; Prometheus scraping Panoptes where the README says it listens; Grafana's data
//! source and dashboard provider pointing at what the compose file mounts; and every metric
//! the dashboard's PromQL uses being a family Panoptes exports (a `_bucket`, `_count` or
//! `_sum` name is a histogram's, a `_total` name a counter's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::HandlerOptions;
use panoptes_runtime::metrics::{Metrics, ReconcileResult};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/observability")
}

fn yaml(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

fn strings(value: &serde_yaml::Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The compose file's services by name.
fn services() -> serde_yaml::Mapping {
    let compose = yaml(&dir().join("docker-compose.yml"));
    compose["services"]
        .as_mapping()
        .expect("docker-compose.yml has services")
        .clone()
}

#[test]
fn compose_runs_jaeger_prometheus_and_grafana_on_their_usual_ports() {
    let services = services();
    let ports = |name: &str| -> Vec<String> {
        let service = services
            .get(name)
            .unwrap_or_else(|| panic!("no {name} service"));
        strings(&service["ports"])
    };
    for (service, wanted) in [
        ("jaeger", &["16686:16686", "4317:4317", "4318:4318"][..]),
        ("prometheus", &["9090:9090"][..]),
        ("grafana", &["3000:3000"][..]),
    ] {
        let published = ports(service);
        for port in wanted {
            assert!(
                published.iter().any(|p| p == port),
                "{service} publishes {port}: {published:?}"
            );
        }
    }
    let prometheus = &services[&serde_yaml::Value::from("prometheus")];
    assert!(
        strings(&prometheus["extra_hosts"]).contains(&"host.docker.internal:host-gateway".into()),
        "Prometheus reaches the host as host.docker.internal"
    );
}

#[test]
fn every_mounted_file_exists_and_grafana_finds_what_is_mounted() {
    let mut mounts: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (name, service) in services() {
        let name = name.as_str().unwrap_or("?").to_owned();
        for volume in strings(&service["volumes"]) {
            let mut parts = volume.split(':');
            let (host, target) = (parts.next().unwrap(), parts.next().expect("host:container"));
            assert!(
                host.starts_with("./"),
                "{name}: {volume} mounts a file of this directory"
            );
            let path = dir().join(host);
            assert!(
                path.exists(),
                "{name} mounts {} which does not exist",
                path.display()
            );
            mounts.insert(target.to_owned(), path);
        }
    }
    let prometheus = yaml(&mounts["/etc/prometheus/prometheus.yml"]);
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    assert_eq!(
        strings(&job["static_configs"][0]["targets"]),
        vec!["host.docker.internal:9464".to_owned()],
        "the port of clusters.toml's metrics_addr"
    );

    let provisioning = &mounts["/etc/grafana/provisioning/datasources"];
    let datasource = yaml(&provisioning.join("prometheus.yml"));
    assert_eq!(
        datasource["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090"),
        "the compose file's prometheus service"
    );
    let providers = yaml(&mounts["/etc/grafana/provisioning/dashboards"].join("panoptes.yml"));
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("a dashboard path");
    let dashboards = mounts
        .get(path)
        .unwrap_or_else(|| panic!("the provider reads {path}, which nothing mounts"));
    assert!(dashboards.join("panoptes.json").exists());
}

/// Every identifier of `expr` that names a series: not a function, keyword, label or
/// aggregation clause, and outside label matchers, ranges and strings.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: [&str; 9] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
    ];
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let mut names = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    // Set after `by`/`without`/...: the next parenthesised list holds labels.
    let mut labels_next = false;
    while i < chars.len() {
        let c = chars[i];
        let skip_to = |close: char, from: usize| {
            (from..chars.len())
                .find(|j| chars[*j] == close)
                .map_or(chars.len(), |j| j + 1)
        };
        if c == '{' {
            i = skip_to('}', i);
        } else if c == '[' {
            i = skip_to(']', i);
        } else if c == '"' {
            i = skip_to('"', i + 1);
        } else if c == '(' && labels_next {
            labels_next = false;
            i = skip_to(')', i);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if AGGREGATIONS.contains(&word.as_str()) {
                // `sum by (le) (...)`: an operator, whether its clause comes first or not.
            } else if KEYWORDS.contains(&word.as_str()) {
                labels_next = !matches!(word.as_str(), "and" | "or" | "unless");
            } else if next != Some(&'(') {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The families `Metrics` exports, with their types, after something used each of them.
fn exported_families() -> BTreeMap<String, String> {
    let system = actix::System::new();
    let text = system.block_on(async {
        let metrics = Metrics::new();
        metrics.workqueue("pods", "east").adds.inc();
        metrics.record_reconcile("pods", "east", ReconcileResult::Error);
        let config = panoptes_runtime::PanoptesConfig::parse(
            "[[clusters]]\nname = \"demo\"\nembedded = { pods = 2 }\n",
            Path::new("clusters.toml"),
            std::iter::empty(),
        )
        .expect("a valid config");
        let runtime =
            panoptes_runtime::Runtime::start_with(&config, metrics.clone(), Default::default())
                .await
                .expect("runtime");
        let pods = runtime.informer::<Pod>();
        pods.add_handler_fn(|_| {}, HandlerOptions::default());
        let synced = pods
            .wait_all_synced(std::time::Duration::from_secs(30))
            .await;
        assert!(synced.values().all(|s| *s), "{synced:?}");
        let text = metrics.encode();
        runtime.shutdown();
        text
    });
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

#[test]
fn every_metric_the_dashboard_charts_is_exported() {
    let path = dir().join("grafana/dashboards/panoptes.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard JSON"))
            .expect("the dashboard is JSON");
    let mut used = BTreeMap::<String, String>::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            for name in metric_names(expr) {
                used.insert(name, panel["title"].as_str().unwrap_or("?").to_owned());
            }
        }
    }
    for required in [
        "panoptes_informer_synced",
        "panoptes_informer_events_total",
        "panoptes_listener_backlog",
        "panoptes_handler_latency_seconds_bucket",
        "panoptes_informer_relists_total",
        "workqueue_depth",
        "controller_runtime_reconcile_total",
    ] {
        assert!(
            used.contains_key(required),
            "the dashboard charts {required}"
        );
    }

    let exported = exported_families();
    let family_of = |name: &str| -> Option<String> {
        if exported.contains_key(name) {
            return Some(name.to_owned());
        }
        let suffixed = [
            ("_bucket", "histogram"),
            ("_count", "histogram"),
            ("_sum", "histogram"),
            ("_total", "counter"),
        ];
        suffixed.iter().find_map(|(suffix, kind)| {
            let base = name.strip_suffix(suffix)?;
            (exported.get(base)? == kind).then(|| base.to_owned())
        })
    };
    let missing: Vec<_> = used
        .iter()
        .filter(|(name, _)| family_of(name).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "charted but not exported (metric, panel): {missing:?}\nexported: {exported:?}"
    );
}

#[test]
fn promql_names_are_told_apart_from_functions_labels_and_ranges() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le, cluster) (rate(a_bucket{x=\"y\"}[5m]))) / on (cluster) b_total"
        ),
        vec!["a_bucket", "b_total"]
    );
}
