//! The `panoptes` binary as a user runs it: bad configurations fail clearly (never a panic),
//! the shipped `clusters.toml` syncs its three embedded clusters, and `check` reports.

use std::path::Path;
use std::process::{Command, Output};

const PANOPTES: &str = env!("CARGO_BIN_EXE_panoptes");
const GOOD_CLUSTER: &str = "[[clusters]]\nname = \"east\"\nembedded = { pods = 3 }\n";

fn panoptes(dir: &Path, args: &[&str]) -> Output {
    Command::new(PANOPTES)
        .args(args)
        .current_dir(dir)
        .env_remove("PANOPTES_CONFIG")
        // Port 0: tests run in parallel, and a developer may run panoptes on 9464.
        .env("PANOPTES__RUNTIME__METRICS_ADDR", "127.0.0.1:0")
        .env("PANOPTES__TELEMETRY__LOG", "warn")
        .output()
        .expect("the panoptes binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_kind_of_bad_configuration_fails_clearly_without_a_panic() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "syntax",
            "[[clusters]]\nname = \"east\nembedded = {}\n".into(),
            &["clusters.toml:2", "syntax"],
        ),
        (
            "unknown key",
            format!("{GOOD_CLUSTER}bogus = 1\n"),
            &["bogus", "unknown field"],
        ),
        (
            "bad resource",
            format!("{GOOD_CLUSTER}[[watch]]\nresource = \"pods\"\n"),
            &["[[watch]] #1 resource", "v1/pods"],
        ),
        (
            "missing kubeconfig",
            "[[clusters]]\nname = \"kind\"\nkubeconfig = \"missing/kubeconfig\"\n".into(),
            &["[[clusters]] #1 kubeconfig", "does not exist"],
        ),
        (
            "duplicate name",
            format!("{GOOD_CLUSTER}[[clusters]]\nname = \"east\"\nin_cluster = true\n"),
            &["used twice"],
        ),
        (
            "unknown cluster in watch",
            format!("{GOOD_CLUSTER}[[watch]]\nresource = \"v1/pods\"\nclusters = [\"wets\"]\n"),
            &["\"wets\"", "known: east"],
        ),
        (
            "two sources",
            "[[clusters]]\nname = \"east\"\nin_cluster = true\nembedded = {}\n".into(),
            &["both in_cluster and embedded"],
        ),
        (
            "no source",
            format!("{GOOD_CLUSTER}[[clusters]]\nname = \"west\"\n"),
            &["[[clusters]] #2", "no source"],
        ),
        (
            "no clusters",
            "[runtime]\ndefault_resync = \"1m\"\n".into(),
            &["[[clusters]]", "none defined"],
        ),
        (
            "bad resync",
            format!("{GOOD_CLUSTER}[[watch]]\nresource = \"v1/pods\"\nresync = \"30\"\n"),
            &["resync", "no unit"],
        ),
        (
            "bad label selector",
            format!(
                "{GOOD_CLUSTER}[[watch]]\nresource = \"v1/pods\"\nlabel_selector = \"tier in (a\"\n"
            ),
            &["label_selector"],
        ),
        (
            "sampling ratio",
            format!("[telemetry]\nsampling_ratio = 1.5\n{GOOD_CLUSTER}"),
            &["sampling_ratio", "1.5"],
        ),
        (
            "bad name",
            "[[clusters]]\nname = \"East_1\"\nembedded = {}\n".into(),
            &["name", "\"East_1\""],
        ),
        (
            "burst without qps",
            format!("{GOOD_CLUSTER}burst = 10\n"),
            &["burst", "only together with qps"],
        ),
    ];
    for (what, config, fragments) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clusters.toml"), config).unwrap();
        for command in ["run", "check"] {
            let output = panoptes(dir.path(), &[command]);
            let message = text(&output);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{what} ({command}): {message}"
            );
            assert!(
                !message.contains("panicked"),
                "{what} ({command}) panicked: {message}"
            );
            for fragment in *fragments {
                assert!(
                    message.contains(fragment),
                    "{what} ({command}): expected {fragment:?} in: {message}"
                );
            }
        }
    }
}

#[test]
fn a_missing_configuration_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = panoptes(dir.path(), &["run", "--config", "nowhere.toml"]);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.contains("nowhere.toml"), "{message}");
}

#[test]
fn run_exit_after_sync_syncs_the_three_shipped_embedded_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters.toml");
    std::fs::copy(shipped, dir.path().join("clusters.toml")).unwrap();
    let output = panoptes(dir.path(), &["run", "--exit-after-sync"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", text(&output));
    for cluster in ["east", "west", "edge"] {
        assert!(
            stdout.contains(&format!("{cluster}: v1/pods synced")),
            "{cluster} in: {stdout}"
        );
        assert!(stdout.contains(&format!("{cluster}: apps/v1/deployments synced")));
    }
    assert!(stdout.contains("all synced: 3 cluster(s)"), "{stdout}");
}

#[test]
fn check_passes_on_embedded_clusters_and_fails_on_an_unreachable_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clusters.toml"),
        format!("{GOOD_CLUSTER}[[watch]]\nresource = \"v1/pods\"\n"),
    )
    .unwrap();
    let output = panoptes(dir.path(), &["check"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok   east: v1/pods listable"));

    // A kubeconfig pointing at a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\n"
    );
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
    std::fs::write(
        dir.path().join("clusters.toml"),
        format!("{GOOD_CLUSTER}[[clusters]]\nname = \"gone\"\nkubeconfig = \"kubeconfig\"\n[[watch]]\nresource = \"v1/pods\"\n"),
    )
    .unwrap();
    let output = panoptes(dir.path(), &["check", "--timeout-secs", "5"]);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("FAIL gone"), "{message}");
    assert!(message.contains("ok   east"), "{message}");
}

#[test]
fn the_readme_shows_the_multi_cluster_example_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/multi_cluster.rs")).unwrap();
    let code: Vec<&str> = example.lines().filter(|l| !l.starts_with("//!")).collect();
    let code = code.join("\n");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(code.trim()),
        "README.md's example is out of date with examples/multi_cluster.rs"
    );
}
