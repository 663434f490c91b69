//! Drives the installed `kubectl` against two in-process simulated clusters: the sim must be
//! a server kubectl accepts for everyday commands (discovery, Table output, apply, patch,
//! scale, watch, CRDs, chunked lists). kubectl missing is a failure, not a skip: CI installs it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use panoptes_sim::{Sim, SimOptions};

struct Kubectl {
    /// `kubectl`, or one version's binary (`.../kubectl.1.27`).
    binary: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    fn command(&self, context: &str, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .arg("--context")
            .arg(context)
            .args(args);
        command
    }

    fn run(&self, context: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(context, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "kubectl must be installed and on PATH for this test (spawning it failed: {e})"
                )
            });
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs on sim-1, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_on("sim-1", args, None)
    }

    fn ok_on(&self, context: &str, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(context, args, stdin);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{} --context {context} {} failed ({}):\nstdout: {stdout}\nstderr: {}",
            self.binary.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Asserts failure, returns stderr.
    fn fails_on(&self, context: &str, args: &[&str]) -> String {
        let output = self.run(context, args, None);
        assert!(
            !output.status.success(),
            "kubectl --context {context} {} should fail but printed {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

fn setup() -> (Sim, Kubectl, tempfile::TempDir) {
    let installed = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output();
    assert!(
        installed.as_ref().is_ok_and(|o| o.status.success()),
        "kubectl is not installed or not on PATH ({:?}); this test needs it",
        installed.err()
    );
    let sim = Sim::start(SimOptions {
        clusters: 2,
        ..Default::default()
    })
    .expect("sim starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let binary = PathBuf::from("kubectl");
    (
        sim,
        Kubectl {
            binary,
            kubeconfig,
            home,
        },
        dir,
    )
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: p1
  namespace: demo
  labels: {run: p1, tier: front}
spec:
  containers:
  - name: c
    image: nginx
"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#;

const GADGET: &str = r#"
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g1, namespace: demo}
spec: {size: 3, color: red}
"#;

#[test]
fn everyday_kubectl_commands_work_against_the_sim() {
    let (sim, k, _dir) = setup();

    assert!(k.ok(&["version"]).contains("Server Version: v1.28.0"));
    assert!(
        k.ok(&["create", "namespace", "demo"])
            .contains("namespace/demo created")
    );
    assert!(
        k.ok_on("sim-1", &["apply", "-f", "-"], Some(DEPLOYMENT))
            .contains("deployment.apps/web created")
    );
    assert!(
        k.ok_on("sim-1", &["apply", "-f", "-"], Some(POD))
            .contains("pod/p1 created")
    );

    // Table output comes from the server: without it kubectl prints only NAME and AGE.
    let table = k.ok(&["get", "pods", "-n", "demo"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] {
        assert!(header.contains(column), "missing {column} in {table}");
    }
    assert!(table.lines().any(|l| l.starts_with("p1 ")), "{table}");
    let deployments = k.ok(&["get", "deployments", "-n", "demo"]);
    assert!(
        deployments.contains("UP-TO-DATE") && deployments.contains("web"),
        "{deployments}"
    );
    assert!(k.ok(&["get", "ns"]).contains("demo"));

    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "pod", "p1", "-n", "demo", "-o", "json"]))
            .expect("json output");
    assert_eq!(json["metadata"]["labels"]["tier"], "front");
    assert!(
        k.ok(&["get", "pod", "p1", "-n", "demo", "-o", "yaml"])
            .contains("name: p1")
    );
    assert_eq!(
        k.ok(&["get", "pods", "-n", "demo", "-l", "run=p1", "-o", "name"])
            .trim(),
        "pod/p1"
    );
    assert_eq!(
        k.ok(&["get", "pods", "-n", "demo", "-l", "run=nope", "-o", "name"])
            .trim(),
        ""
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "-n",
            "demo",
            "--field-selector",
            "metadata.name=p1",
            "-o",
            "name"
        ])
        .trim(),
        "pod/p1"
    );

    assert!(
        k.ok(&["label", "pod", "p1", "-n", "demo", "color=blue"])
            .contains("pod/p1 labeled")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "p1",
            "-n",
            "demo",
            "-o",
            "jsonpath={.metadata.labels.color}"
        ]),
        "blue"
    );
    assert!(
        k.ok(&["annotate", "pod", "p1", "-n", "demo", "note=hi"])
            .contains("pod/p1 annotated")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "p1",
            "-n",
            "demo",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ]),
        "hi"
    );

    assert!(
        k.ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            "demo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#
        ])
        .contains("patched")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    let json_patch = r#"[{"op":"add","path":"/metadata/labels/extra","value":"x"}]"#;
    assert!(
        k.ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            "demo",
            "--type",
            "json",
            "-p",
            json_patch
        ])
        .contains("patched")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.metadata.labels.extra}"
        ]),
        "x"
    );

    let mut current: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deployment", "web", "-n", "demo", "-o", "json"]))
            .expect("json");
    current["metadata"]["labels"]["replaced"] = "yes".into();
    assert!(
        k.ok_on("sim-1", &["replace", "-f", "-"], Some(&current.to_string()))
            .contains("deployment.apps/web replaced")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.metadata.labels.replaced}"
        ]),
        "yes"
    );

    assert!(
        k.ok(&["scale", "deployment", "web", "-n", "demo", "--replicas=3"])
            .contains("scaled")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );

    let ssa = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: demo}\ndata: {a: \"1\"}\n";
    let applied = k.ok_on("sim-1", &["apply", "--server-side", "-f", "-"], Some(ssa));
    assert!(
        applied.contains("configmap/ssa serverside-applied"),
        "{applied}"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "configmap",
            "ssa",
            "-n",
            "demo",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "1"
    );

    assert!(
        k.ok(&["delete", "pod", "p1", "-n", "demo"])
            .contains("pod \"p1\" deleted")
    );
    assert!(
        k.fails_on("sim-1", &["get", "pod", "p1", "-n", "demo"])
            .contains("NotFound")
    );

    let resources = k.ok(&["api-resources"]);
    assert!(
        resources.contains("pods")
            && resources.contains("deployments")
            && resources.contains("namespaces"),
        "{resources}"
    );

    assert!(
        k.ok_on("sim-1", &["apply", "-f", "-"], Some(CRD))
            .contains("customresourcedefinition.apiextensions.k8s.io/gadgets.example.com created")
    );
    assert!(
        k.ok_on("sim-1", &["apply", "-f", "-"], Some(GADGET))
            .contains("gadget.example.com/g1 created")
    );
    let gadgets = k.ok(&["get", "gadgets", "-n", "demo"]);
    assert!(
        gadgets.lines().next().unwrap_or_default().contains("SIZE"),
        "{gadgets}"
    );
    assert!(
        gadgets
            .lines()
            .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == ["g1", "3"]),
        "{gadgets}"
    );

    // 100 pods read 10 at a time: kubectl follows the continue tokens.
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "bulk", 100);
    let lists_before = sim.cluster(0).counters().lists("pods");
    let names = k.ok(&["get", "pods", "-n", "bulk", "--chunk-size=10", "-o", "name"]);
    assert_eq!(names.lines().count(), 100, "{names}");
    assert!(
        sim.cluster(0).counters().lists("pods") - lists_before >= 10,
        "kubectl should have fetched 10 pages"
    );

    // The second cluster saw none of it.
    assert!(
        k.fails_on("sim-2", &["get", "namespace", "demo"])
            .contains("NotFound")
    );
    assert_eq!(
        k.ok_on("sim-2", &["get", "pods", "-n", "bulk", "-o", "name"], None)
            .trim(),
        ""
    );
    assert!(k.ok_on("sim-2", &["get", "ns"], None).contains("default"));
}

#[test]
fn kubectl_get_watch_sees_add_modify_and_delete() {
    let (_sim, k, _dir) = setup();
    let mut watcher = k
        .command(
            "sim-1",
            &[
                "get",
                "configmaps",
                "-n",
                "default",
                "--watch",
                "--output-watch-events",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl must be installed and on PATH");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = watcher.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |predicate: &dyn Fn(&str) -> bool, what: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
                let hit = predicate(&line);
                seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("kubectl get --watch never printed {what}; it printed {seen:?}");
    };
    let mut seen = Vec::new();
    // The initial list (kube-root-ca.crt exists in every namespace) means the watch is next.
    wait_for(
        &|l| l.contains("kube-root-ca.crt"),
        "the initial list",
        &mut seen,
    );
    k.ok(&[
        "create",
        "configmap",
        "w1",
        "-n",
        "default",
        "--from-literal=a=1",
    ]);
    wait_for(
        &|l| l.starts_with("ADDED") && l.contains("w1"),
        "ADDED w1",
        &mut seen,
    );
    k.ok(&["label", "configmap", "w1", "-n", "default", "x=y"]);
    wait_for(
        &|l| l.starts_with("MODIFIED") && l.contains("w1"),
        "MODIFIED w1",
        &mut seen,
    );
    k.ok(&["delete", "configmap", "w1", "-n", "default"]);
    wait_for(
        &|l| l.starts_with("DELETED") && l.contains("w1"),
        "DELETED w1",
        &mut seen,
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
}

#[test]
fn kubectl_sees_a_scheduled_pod_terminating_until_a_force_delete() {
    // The real defaults: the kubelet takes the pod's whole 30 s grace period.
    let (sim, k, _dir) = setup();
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "graceful", 1);
    assert!(
        k.ok(&[
            "delete",
            "pod",
            "pod-00000",
            "-n",
            "graceful",
            "--wait=false"
        ])
        .contains("pod \"pod-00000\" deleted")
    );
    let table = k.ok(&["get", "pod", "pod-00000", "-n", "graceful"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("pod-00000") && l.contains("Terminating")),
        "a gracefully deleted pod is listed as Terminating: {table}"
    );
    let grace = k.ok(&[
        "get",
        "pod",
        "pod-00000",
        "-n",
        "graceful",
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds}",
    ]);
    assert_eq!(grace, "30");
    assert!(
        k.ok(&[
            "delete",
            "pod",
            "pod-00000",
            "-n",
            "graceful",
            "--grace-period=0",
            "--force"
        ])
        .contains("pod \"pod-00000\" force deleted")
    );
    assert!(
        k.fails_on("sim-1", &["get", "pod", "pod-00000", "-n", "graceful"])
            .contains("NotFound")
    );
}

/// The `kubectl.1.NN` binaries installed beside the resolved `kubectl` (which dispatches to
/// one of them by the server's version), oldest first.
fn versioned_kubectls() -> Vec<(u32, PathBuf)> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file());
    let Some(dir) = on_path
        .and_then(|kubectl| std::fs::canonicalize(kubectl).ok())
        .and_then(|kubectl| kubectl.parent().map(PathBuf::from))
    else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let minor = name.strip_prefix("kubectl.1.")?.parse().ok()?;
            Some((minor, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Every kubectl from 1.27 on that is installed here works against the sim: discovery,
/// apply (1.27/1.28 need `/openapi/v2` for it, later ones `/openapi/v3` or v2), server-side
/// Table output, JSON, label, patch, delete. Where no versioned binaries are installed (a plain Debian kubectl), the
/// everyday test above covers the one there is.
#[test]
fn every_installed_kubectl_version_works_against_the_sim() {
    let versions = versioned_kubectls();
    println!(
        "kubectl versions found: {:?}",
        versions
            .iter()
            .map(|(minor, _)| format!("1.{minor}"))
            .collect::<Vec<_>>()
    );
    let (_sim, mut k, _dir) = setup();
    for (minor, binary) in versions {
        k.binary = binary;
        let namespace = format!("compat-1-{minor}");
        let ns = namespace.as_str();
        // `apply -f`, not `create namespace`: kubectl 1.32+'s typed generators send protobuf
        // bodies, which the sim does not decode (ARCHITECTURE.md, departures).
        let namespace_yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
        k.ok_on("sim-1", &["apply", "-f", "-"], Some(&namespace_yaml));
        let deployment = DEPLOYMENT.replace("namespace: demo", &format!("namespace: {ns}"));
        assert!(
            k.ok_on("sim-1", &["apply", "-f", "-"], Some(&deployment))
                .contains("deployment.apps/web created"),
            "kubectl 1.{minor} apply"
        );
        let table = k.ok(&["get", "deployments", "-n", ns]);
        assert!(
            table.contains("UP-TO-DATE") && table.contains("web"),
            "kubectl 1.{minor} table: {table}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "deployment", "web", "-n", ns, "-o", "json"]))
                .unwrap_or_else(|e| panic!("kubectl 1.{minor} -o json: {e}"));
        assert_eq!(json["metadata"]["namespace"], ns, "kubectl 1.{minor}");
        k.ok(&["label", "deployment", "web", "-n", ns, "compat=yes"]);
        k.ok(&[
            "patch",
            "deployment",
            "web",
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ]);
        let replicas = k.ok(&[
            "get",
            "deployments",
            "-n",
            ns,
            "-l",
            "compat=yes",
            "-o",
            "jsonpath={.items[*].spec.replicas}",
        ]);
        assert_eq!(replicas, "2", "kubectl 1.{minor} label + patch");
        assert!(
            k.ok(&["api-resources"]).contains("deployments"),
            "kubectl 1.{minor} api-resources"
        );
        k.ok(&["delete", "namespace", ns]);
    }
}

const GIZMO_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: A gizmo for the explain test.
        properties:
          spec:
            type: object
            description: What the gizmo should be.
            properties:
              size: {type: integer, description: How big the gizmo is.}
"#;

/// `kubectl explain` reads the sim's `/openapi/v3`: built-in kinds with their top-level
/// fields, custom resources with their CRD's own schema.
#[test]
fn kubectl_explain_reads_the_sims_openapi_v3() {
    let (_sim, k, _dir) = setup();
    let pods = k.ok(&["explain", "pods"]);
    assert!(
        pods.contains("KIND:") && pods.contains("Pod") && pods.contains("collection of containers"),
        "{pods}"
    );
    assert!(pods.contains("spec") && pods.contains("metadata"), "{pods}");
    let labels = k.ok(&["explain", "configmaps.metadata.labels"]);
    assert!(labels.contains("organize and categorize"), "{labels}");
    k.ok_on("sim-1", &["apply", "-f", "-"], Some(GIZMO_CRD));
    let size = k.ok(&["explain", "gizmos.spec.size"]);
    assert!(size.contains("How big the gizmo is"), "{size}");
}
