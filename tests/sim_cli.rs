//! `panoptes sim` as a process: writes a kubeconfig, prints a ready line per cluster, takes
//! fault commands on stdin, and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn sim_subcommand_serves_until_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_panoptes"))
        .args(["sim", "--clusters", "2", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("panoptes runs");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a line from panoptes sim within 20 s")
    };
    for cluster in ["sim-1", "sim-2"] {
        let line = next();
        assert!(
            line.starts_with(&format!("{cluster} ready at https://127.0.0.1:"))
                && line.ends_with(&format!("(context {cluster})")),
            "{line}"
        );
    }
    let written = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written");
    assert!(
        written.contains("current-context: sim-1") && written.contains("name: sim-2"),
        "{written}"
    );

    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "sim-2 fail-next 1 429").expect("command");
    assert_eq!(next(), "ok sim-2 fail-next 1 429");
    writeln!(stdin, "sim-9 compact").expect("command");
    assert_eq!(next(), "error: no cluster named \"sim-9\"");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("exit");
    assert!(
        status.success(),
        "panoptes sim exits 0 on SIGTERM, got {status}"
    );
}

#[test]
fn sim_subcommand_takes_history_flags_and_rejects_a_zero_compaction_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let rejected = Command::new(env!("CARGO_BIN_EXE_panoptes"))
        .args(["sim", "--etcd-compaction-interval", "0", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .expect("panoptes runs");
    assert!(!rejected.status.success());
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert!(stderr.contains("--etcd-compaction-interval"), "{stderr}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_panoptes"))
        .args([
            "sim",
            "--etcd-compaction-interval",
            "1",
            "--prompt-initial-events-end",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("panoptes runs");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a ready line within 20 s");
    assert!(
        line.starts_with("sim-1 ready at https://127.0.0.1:"),
        "{line}"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    assert!(child.wait().expect("exit").success());
}
