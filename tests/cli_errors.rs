//! What a person reads when something is wrong, through the `panoptes` binary (issue 13):
//! a kubeconfig whose CA does not match the server names the certificate problem; a closed
//! port says "connection refused" with the address; a 403 prints the server's message and
//! reason, not a `Debug` of its `Status`; kube's per-retry ERROR lines stay out unless the
//! filter names kube, and `RUST_LOG` overrides `[telemetry] log`; a kubeconfig written by
//! `sim` becomes a `clusters.toml` that passes `check`, and so does the one
//! `scripts/kind-up.sh` writes (run with a stand-in for `kind`, so no docker is needed);
//! every subcommand's `--help` shows examples.

use std::path::Path;
use std::process::{Command, Output};

use panoptes_sim::{Sim, SimOptions};

const PANOPTES: &str = env!("CARGO_BIN_EXE_panoptes");

fn panoptes(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(PANOPTES);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("PANOPTES_CONFIG")
        .env_remove("RUST_LOG")
        .env("PANOPTES__RUNTIME__METRICS_ADDR", "127.0.0.1:0");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the panoptes binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn sim(clusters: usize) -> Sim {
    Sim::start(SimOptions {
        clusters,
        worker_threads: 1,
        ..SimOptions::default()
    })
    .expect("the sim starts")
}

/// A config watching pods on one cluster reached through `kubeconfig` (context `context`).
fn write_config(dir: &Path, kubeconfig: &str, context: &str, extra: &str) {
    std::fs::write(dir.join("kubeconfig"), kubeconfig).unwrap();
    std::fs::write(
        dir.join("clusters.toml"),
        format!(
            "{extra}[[clusters]]\nname = \"east\"\nkubeconfig = \"kubeconfig\"\ncontext = \"{context}\"\n\
             [[watch]]\nresource = \"v1/pods\"\n"
        ),
    )
    .unwrap();
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn check_names_the_certificate_problem_when_the_ca_does_not_match() {
    let sim = sim(2);
    let dir = tempfile::tempdir().unwrap();
    // Cluster 1's address with cluster 2's CA: the TLS handshake must fail.
    let kubeconfig = sim.cluster(0).kubeconfig_yaml().replace(
        &b64(&sim.cluster(0).ca_pem()),
        &b64(&sim.cluster(1).ca_pem()),
    );
    assert!(kubeconfig.contains(&b64(&sim.cluster(1).ca_pem())));
    write_config(dir.path(), &kubeconfig, "sim-1", "");
    let output = panoptes(dir.path(), &["check"], &[]);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    let line = message
        .lines()
        .find(|l| l.starts_with("FAIL east"))
        .unwrap_or_else(|| panic!("a FAIL line for east: {message}"));
    assert!(
        line.contains("invalid peer certificate") && line.contains("UnknownIssuer"),
        "names the certificate check that failed: {line}"
    );
    assert!(
        line.contains(&sim.cluster(0).url()),
        "names the server: {line}"
    );
}

#[test]
fn check_says_connection_refused_with_the_address_of_a_closed_port() {
    let sim = sim(1);
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let address = format!("https://127.0.0.1:{port}");
    let kubeconfig = sim
        .cluster(0)
        .kubeconfig_yaml()
        .replace(&sim.cluster(0).url(), &address);
    write_config(dir.path(), &kubeconfig, "sim-1", "");
    let output = panoptes(dir.path(), &["check"], &[]);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    let line = message
        .lines()
        .find(|l| l.starts_with("FAIL east"))
        .unwrap_or_else(|| panic!("a FAIL line for east: {message}"));
    assert!(line.contains("Connection refused"), "{line}");
    assert!(line.contains(&address), "{line}");
}

#[test]
fn check_prints_a_403_as_the_server_words_it() {
    let sim = sim(1);
    sim.cluster(0).faults().forbid("pods");
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &sim.cluster(0).kubeconfig_yaml(), "sim-1", "");
    let output = panoptes(dir.path(), &["check"], &[]);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    let line = message
        .lines()
        .find(|l| l.contains("cannot list v1/pods"))
        .unwrap_or_else(|| panic!("a FAIL line for the pods: {message}"));
    assert!(
        line.contains("pods is forbidden: User")
            && line.contains("cannot list resource \"pods\"")
            && line.contains("(reason Forbidden, code 403)"),
        "{line}"
    );
    assert!(!message.contains("Status {"), "no Debug dump: {message}");
    assert!(
        !message.contains("ApiError"),
        "no kube wrapper text: {message}"
    );
}

#[test]
fn kube_retry_errors_stay_out_unless_the_filter_names_kube_and_rust_log_overrides_the_config() {
    let sim = sim(1);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = sim.cluster(0).kubeconfig_yaml().replace(
        &sim.cluster(0).url(),
        &format!("https://127.0.0.1:{}", closed_port()),
    );
    write_config(
        dir.path(),
        &kubeconfig,
        "sim-1",
        "[telemetry]\nlog = \"warn\"\n",
    );
    let args = ["run", "--exit-after-sync", "--sync-timeout-secs", "4"];

    let quiet = panoptes(dir.path(), &args, &[]);
    let stderr = String::from_utf8_lossy(&quiet.stderr).into_owned();
    assert_eq!(quiet.status.code(), Some(1), "{}", text(&quiet));
    assert!(
        !stderr.contains("kube_client"),
        "kube's retry lines are off: {stderr}"
    );
    let reported: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("v1/pods in cluster east: unreachable"))
        .collect();
    assert_eq!(reported.len(), 1, "one line for the state change: {stderr}");
    assert!(
        reported[0].contains("Connection refused"),
        "{}",
        reported[0]
    );

    let asked = panoptes(dir.path(), &args, &[("RUST_LOG", "warn,kube_client=error")]);
    let stderr = String::from_utf8_lossy(&asked.stderr).into_owned();
    assert!(
        stderr.matches("kube_client").count() >= 2,
        "asked for, kube's lines are back (one per retry): {stderr}"
    );

    let rust_log = panoptes(dir.path(), &args, &[("RUST_LOG", "error")]);
    let stderr = String::from_utf8_lossy(&rust_log.stderr).into_owned();
    assert!(
        !stderr.contains(" WARN "),
        "RUST_LOG=error hides the config's warn lines: {stderr}"
    );

    let bad = panoptes(dir.path(), &args, &[("RUST_LOG", "info,panoptes=loud")]);
    let message = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{message}");
    assert!(
        message.contains("RUST_LOG = \"info,panoptes=loud\" is not a log filter"),
        "{message}"
    );
}

#[test]
fn a_config_generated_from_a_sim_kubeconfig_passes_check() {
    let sim = sim(2);
    let dir = tempfile::tempdir().unwrap();
    sim.write_kubeconfig(&dir.path().join("sim.kubeconfig"))
        .unwrap();
    let generated = panoptes(
        dir.path(),
        &[
            "config",
            "from-kubeconfig",
            "--kubeconfig",
            "sim.kubeconfig",
            "--contexts",
            "sim-1,sim-2",
            "--output",
            "clusters.kind.toml",
        ],
        &[],
    );
    assert_eq!(generated.status.code(), Some(0), "{}", text(&generated));
    let file = std::fs::read_to_string(dir.path().join("clusters.kind.toml")).unwrap();
    assert_eq!(file.matches("[[clusters]]").count(), 2, "{file}");

    // Checked from another directory: the kubeconfig path in the file is absolute.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = dir.path().join("clusters.kind.toml");
    let checked = panoptes(
        elsewhere.path(),
        &["check", "--config", config.to_str().unwrap()],
        &[],
    );
    let message = text(&checked);
    assert_eq!(checked.status.code(), Some(0), "{message}");
    for line in [
        "ok   sim-1: reachable",
        "ok   sim-2: v1/pods listable",
        "ok   sim-2: apps/v1/deployments listable",
        "all checks passed",
    ] {
        assert!(message.contains(line), "{line}: {message}");
    }

    let unknown = panoptes(
        dir.path(),
        &[
            "config",
            "from-kubeconfig",
            "--kubeconfig",
            "sim.kubeconfig",
            "--contexts",
            "kind-panoptes-1",
        ],
        &[],
    );
    let message = text(&unknown);
    assert_eq!(unknown.status.code(), Some(1), "{message}");
    assert!(
        message.contains("no context \"kind-panoptes-1\" (it has: sim-1, sim-2)"),
        "{message}"
    );
}

#[test]
fn every_subcommand_help_shows_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["sim", "--help"],
        &["config", "from-kubeconfig", "--help"],
    ] {
        let output = panoptes(dir.path(), command, &[]);
        let help = text(&output);
        assert_eq!(output.status.code(), Some(0), "{command:?}: {help}");
        assert!(
            help.contains("Examples:\n  panoptes"),
            "{command:?} has an example: {help}"
        );
    }
}

fn b64(pem: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())
}

#[test]
fn kind_up_writes_a_config_that_passes_check_with_a_stand_in_for_kind() {
    use std::os::unix::fs::PermissionsExt;
    let sim = sim(2);
    let dir = tempfile::tempdir().unwrap();
    // What kind would write: the two clusters under kind's context names.
    let kubeconfig = sim.kubeconfig_yaml().replace("sim-", "kind-panoptes-");
    std::fs::write(dir.path().join("made-by-kind.yaml"), kubeconfig).unwrap();
    // `kind get clusters` lists none; `kind create cluster ... --kubeconfig F` writes F.
    let fake_kind = dir.path().join("kind");
    std::fs::write(
        &fake_kind,
        "#!/bin/sh\nset -e\necho \"$@\" >> \"$(dirname \"$0\")/kind.calls\"\n\
         case \"$1\" in\n  get) exit 0 ;;\n  create) cp \"$(dirname \"$0\")/made-by-kind.yaml\" \"$6\" ;;\n\
         *) exit 1 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake_kind, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kind-up.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("2")
        .current_dir(dir.path())
        .env("KIND", &fake_kind)
        .env("PANOPTES", PANOPTES)
        .output()
        .expect("bash runs");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let calls = std::fs::read_to_string(dir.path().join("kind.calls")).unwrap();
    assert!(
        calls.contains("create cluster --name panoptes-1 --kubeconfig kind.kubeconfig")
            && calls.contains("create cluster --name panoptes-2"),
        "{calls}"
    );
    let checked = panoptes(
        dir.path(),
        &["check", "--config", "clusters.kind.toml"],
        &[],
    );
    let message = text(&checked);
    assert_eq!(checked.status.code(), Some(0), "{message}");
    assert!(
        message.contains("ok   kind-panoptes-2: v1/pods listable"),
        "{message}"
    );
}

#[test]
fn sync_spinners_on_a_terminal_leave_no_listing_line_behind() {
    // `script` gives panoptes a terminal (spinners are drawn only on one).
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clusters.toml"),
        "[telemetry]\nlog = \"warn\"\n\
         [[clusters]]\nname = \"east\"\nembedded = { pods = 2000 }\n\
         [[clusters]]\nname = \"west\"\nembedded = { pods = 5 }\n\
         [[watch]]\nresource = \"v1/pods\"\n",
    )
    .unwrap();
    const WIDTH: usize = 160;
    let output = Command::new("script")
        .args(["-qfec"])
        .arg(format!(
            "stty rows 40 cols {WIDTH}; {PANOPTES} run --exit-after-sync --sync-timeout-secs 60"
        ))
        .arg("/dev/null")
        .current_dir(dir.path())
        .env_remove("PANOPTES_CONFIG")
        .env_remove("RUST_LOG")
        .env("PANOPTES__RUNTIME__METRICS_ADDR", "127.0.0.1:0")
        .output()
        .expect("script runs");
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{raw:?}");
    assert!(raw.contains("listing"), "spinners were drawn: {raw:?}");
    let screen = terminal_screen(&raw, WIDTH);
    let shown = screen.join("\n");
    assert!(
        !shown.contains("listing"),
        "a spinner line stayed:\n{shown}"
    );
    for line in [
        "east: v1/pods synced, 2000 objects",
        "west: v1/pods synced, 5 objects",
        "all synced: 2 cluster(s) (east, west)",
    ] {
        assert!(shown.contains(line), "{line}:\n{shown}");
    }
}

/// The lines a terminal `width` columns wide shows after `output`: enough of a VT100 for
/// indicatif (carriage return, newline, autowrap, cursor up/down, erase line/below); other
/// escape sequences are skipped.
fn terminal_screen(output: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut command = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        command = c;
                        break;
                    }
                    params.push(c);
                }
                let n = params.parse::<usize>().unwrap_or(1);
                match command {
                    'A' => row = row.saturating_sub(n),
                    'B' => row += n,
                    'K' if params == "2" => lines[row].clear(),
                    'K' => lines[row].truncate(col),
                    'J' => {
                        lines[row].truncate(col);
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
            }
            c if c.is_control() => {}
            c => {
                if col >= width {
                    row += 1;
                    col = 0;
                }
                if lines.len() <= row {
                    lines.resize(row + 1, Vec::new());
                }
                let line = &mut lines[row];
                if line.len() <= col {
                    line.resize(col + 1, ' ');
                }
                line[col] = c;
                col += 1;
            }
        }
        if lines.len() <= row {
            lines.resize(row + 1, Vec::new());
        }
    }
    lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}
