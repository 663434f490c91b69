//! Secrets stay secret and TLS is verified (issue 11), through the public API.
//!
//! One runtime at TRACE, every crate included, with three captures installed as the global
//! subscriber: the formatted log, every span's and event's fields (span capture), and the
//! spans exported over OTLP/HTTP to a local collector (the raw protobuf bodies). Its clusters
//! authenticate with an exec plugin, a bearer token plus a client certificate and key, a
//! token over `insecure-skip-tls-verify`, a token against the wrong CA and a wrong token. The
//! runtime syncs, delivers, meets a fault, and stops; then every capture, the `/metrics` and
//! `/readyz` pages, the `Debug` output of what the runtime hands out and every panic message
//! are searched for the tokens, the key and the exec plugin's output.
//!
//! The subscriber is process-global: nextest runs each test in its own process, and the other
//! test here installs none.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use opentelemetry::trace::TracerProvider as _;
use panoptes_actors::{HandlerOptions, ids::ClusterId};
use panoptes_runtime::config::{OtlpProtocol, TelemetryConfig};
use panoptes_runtime::{HealthServer, Metrics, PanoptesConfig, Readiness, Runtime};
use panoptes_sim::{Sim, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

const DEADLINE: Duration = Duration::from_secs(30);

type Buffer = Arc<Mutex<Vec<u8>>>;

/// Every span's name and fields, every recorded value, every event's fields.
struct SpanCapture(Buffer);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanCapture {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut line = format!("span {}", attrs.metadata().name());
        attrs.record(&mut Fields(&mut line));
        self.push(line);
    }

    fn on_record(&self, _id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut line = String::from("record");
        values.record(&mut Fields(&mut line));
        self.push(line);
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut line = format!("event {}", event.metadata().target());
        event.record(&mut Fields(&mut line));
        self.push(line);
    }
}

impl SpanCapture {
    fn push(&self, mut line: String) {
        line.push('\n');
        self.0.lock().unwrap().extend_from_slice(line.as_bytes());
    }
}

/// A writer appending to a shared buffer (the formatted log).
struct Appender(Buffer);

impl std::io::Write for Appender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An OTLP/HTTP collector keeping every request body.
async fn collector() -> (SocketAddr, Buffer) {
    let bodies = Buffer::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|State(bodies): State<Buffer>, body: Bytes| async move {
                bodies.lock().unwrap().extend_from_slice(&body);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        )
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, bodies)
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn no_secret_reaches_logs_spans_metrics_debug_or_panics_and_tls_is_verified() {
    let (collector_addr, exported) = collector().await;
    let provider = panoptes_runtime::telemetry::tracer_provider(&TelemetryConfig {
        otlp_endpoint: Some(format!("http://{collector_addr}")),
        otlp_protocol: OtlpProtocol::Http,
        service_name: "secrets-test".into(),
        sampling_ratio: 1.0,
        log: "trace".into(),
    })
    .expect("the exporter builds")
    .expect("an endpoint gives a provider");
    let logs = Buffer::default();
    let spans = Buffer::default();
    let log_sink = logs.clone();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || Appender(log_sink.clone())),
        )
        .with(SpanCapture(spans.clone()))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("panoptes")))
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .init();
    let panics = Arc::new(Mutex::new(String::new()));
    let panic_sink = panics.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        panic_sink.lock().unwrap().push_str(&format!("{info}\n"));
        default_hook(info);
    }));

    let sim = Sim::start(SimOptions {
        clusters: 3,
        ..SimOptions::default()
    })
    .expect("the sim starts");
    let (exec_cluster, key_cluster, insecure_cluster) =
        (sim.cluster(0), sim.cluster(1), sim.cluster(2));
    let dir = tempfile::tempdir().unwrap();

    // The exec plugin prints sim-1's token; the runtime never sees it in a file.
    let exec_output = format!(
        r#"{{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{{"token":"{}"}}}}"#,
        exec_cluster.token()
    );
    let plugin = dir.path().join("credential-plugin.sh");
    {
        let mut file = std::fs::File::create(&plugin).unwrap();
        writeln!(file, "#!/bin/sh\ncat <<'EOF'\n{exec_output}\nEOF").unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let client = rcgen::generate_simple_self_signed(vec!["panoptes-client".to_string()]).unwrap();
    let client_cert = client.cert.pem();
    let client_key = client.signing_key.serialize_pem();
    let wrong_token = "wrong-token-9f1c2e7a5b3d4c6e8a0b1c2d3e4f5a6b".to_string();
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: exec
  cluster:
    server: {exec_url}
    certificate-authority-data: {exec_ca}
- name: client-key
  cluster:
    server: {key_url}
    certificate-authority-data: {key_ca}
- name: insecure
  cluster:
    server: {insecure_url}
    insecure-skip-tls-verify: true
- name: wrong-ca
  cluster:
    server: {insecure_url}
    certificate-authority-data: {exec_ca}
users:
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: {plugin}
      interactiveMode: Never
- name: client-key
  user:
    token: {key_token}
    client-certificate-data: {client_cert}
    client-key-data: {client_key}
- name: insecure
  user:
    token: {insecure_token}
- name: wrong-token
  user:
    token: {wrong_token}
contexts:
- name: exec
  context: {{cluster: exec, user: exec}}
- name: client-key
  context: {{cluster: client-key, user: client-key}}
- name: insecure
  context: {{cluster: insecure, user: insecure}}
- name: wrong-ca
  context: {{cluster: wrong-ca, user: insecure}}
- name: wrong-token
  context: {{cluster: client-key, user: wrong-token}}
current-context: exec
",
        exec_url = exec_cluster.url(),
        exec_ca = b64(&exec_cluster.ca_pem()),
        key_url = key_cluster.url(),
        key_ca = b64(&key_cluster.ca_pem()),
        insecure_url = insecure_cluster.url(),
        plugin = plugin.display(),
        key_token = key_cluster.token(),
        client_cert = b64(&client_cert),
        client_key = b64(&client_key),
        insecure_token = insecure_cluster.token(),
    );
    let kubeconfig_path = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig_path, &kubeconfig).unwrap();
    let names = ["exec", "client-key", "insecure", "wrong-ca", "wrong-token"];
    let mut text = String::from("[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n");
    for name in names {
        text.push_str(&format!(
            "[[clusters]]\nname = \"{name}\"\nkubeconfig = {:?}\ncontext = \"{name}\"\n",
            kubeconfig_path.display().to_string()
        ));
    }
    text.push_str("[[watch]]\nresource = \"v1/pods\"\n");
    let config =
        PanoptesConfig::parse(&text, &dir.path().join("clusters.toml"), std::iter::empty())
            .expect("the config is valid");

    let (metrics, readiness) = (Metrics::new(), Readiness::new());
    let health = HealthServer::start(
        config.runtime.metrics_addr,
        metrics.clone(),
        readiness.clone(),
    )
    .await
    .expect("the health server starts");
    let runtime = Runtime::start_with(&config, metrics.clone(), readiness.clone())
        .await
        .expect("the runtime starts");
    let pods = runtime.informer::<Pod>();
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let sink = delivered.clone();
    pods.add_handler_fn(
        move |event| {
            sink.lock()
                .unwrap()
                .push(format!("{} {}", event.cluster(), event.key()))
        },
        HandlerOptions::default(),
    );
    for name in ["exec", "client-key", "insecure"] {
        assert!(
            pods.wait_synced(&ClusterId::new(name), DEADLINE).await,
            "{name} syncs: {:?}",
            pods.status()
        );
    }
    for cluster in [exec_cluster, key_cluster, insecure_cluster] {
        panoptes_sim::pods::seed(&cluster.store(), "default", 2);
        cluster.faults().drop_watches();
    }
    eventually("a pod of every reachable cluster is delivered", || {
        let seen = delivered.lock().unwrap();
        ["exec", "client-key", "insecure"].iter().all(|c| {
            seen.iter()
                .any(|s| s.starts_with(&format!("{c} default/pod-0000")))
        })
    })
    .await;
    // TLS verification is on: the wrong CA never connects, and says why.
    eventually("the wrong CA is reported as a failure", || {
        pods.status().iter().any(|s| {
            s.cluster.as_str() == "wrong-ca"
                && !s.synced
                && matches!(
                    &s.state,
                    Some(panoptes_actors::reflector::ReflectorState::BackingOff { .. })
                )
        })
    })
    .await;
    eventually("the wrong token is reported as a failure", || {
        pods.status().iter().any(|s| {
            s.cluster.as_str() == "wrong-token"
                && matches!(
                    &s.state,
                    Some(panoptes_actors::reflector::ReflectorState::BackingOff { .. })
                )
        })
    })
    .await;
    eventually("readiness names both failing clusters", || {
        let waiting: Vec<String> = readiness
            .not_ready()
            .iter()
            .map(|(c, _)| c.to_string())
            .collect();
        waiting == ["wrong-ca", "wrong-token"]
    })
    .await;

    // Exactly one warning, naming the cluster whose kubeconfig skips verification (counted
    // before this test connects the entries once more for their `Debug` output).
    let log_so_far = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let warnings: Vec<&str> = log_so_far
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("TLS verification is off"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("cluster=insecure"), "{}", warnings[0]);

    let mut outputs: Vec<(&str, String)> = vec![
        ("/metrics", http_get(health.local_addr(), "/metrics").await),
        ("/readyz", http_get(health.local_addr(), "/readyz").await),
        ("metrics", metrics.encode()),
        ("status Debug", format!("{:?}", runtime.status())),
        (
            "connection errors Debug",
            format!("{:?}", runtime.connection_errors()),
        ),
        ("config Debug", format!("{config:?}")),
    ];
    for cluster in &config.clusters {
        let connection = panoptes_runtime::connection::connect(cluster).await;
        outputs.push(("connection Debug", format!("{connection:?}")));
        if let Ok(connection) = connection {
            outputs.push(("identity Display", connection.identity.to_string()));
        }
    }
    // Not merely a clean run: the captures hold the run.
    assert!(
        outputs[0].1.contains("panoptes_informer") || outputs[0].1.contains("# TYPE"),
        "{}",
        outputs[0].1
    );

    drop(pods);
    runtime.shutdown();
    drop(runtime);
    health.stop().await.expect("the health server stops");
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap()
        .expect("spans are exported");

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let spans = String::from_utf8_lossy(&spans.lock().unwrap()).into_owned();
    let exported = String::from_utf8_lossy(&exported.lock().unwrap()).into_owned();
    assert!(
        logs.contains("cluster client ready"),
        "the log was captured"
    );
    assert!(spans.contains("span "), "spans were captured");
    assert!(!exported.is_empty(), "spans were exported over OTLP");
    outputs.push(("log", logs.clone()));
    outputs.push(("span capture", spans));
    outputs.push(("OTLP export", exported));
    outputs.push(("panic messages", panics.lock().unwrap().clone()));

    // Secrets, and their encodings as they sit in the kubeconfig.
    let mut secrets: Vec<(&str, String)> = vec![
        ("exec plugin's token", exec_cluster.token()),
        ("exec plugin's output", exec_output.clone()),
        ("bearer token", key_cluster.token()),
        ("insecure cluster's token", insecure_cluster.token()),
        ("wrong token", wrong_token),
        ("client key (base64)", b64(&client_key)),
    ];
    for line in client_key.lines().filter(|l| !l.starts_with("-----")) {
        secrets.push(("client key (PEM line)", line.to_string()));
    }
    let mut leaks = Vec::new();
    for (secret_name, secret) in &secrets {
        for (output_name, output) in &outputs {
            if let Some(at) = output.find(secret.as_str()) {
                let from = at.saturating_sub(200);
                let context: String =
                    output[from..(at + secret.len()).min(output.len())].to_string();
                leaks.push(format!("{secret_name} in {output_name}: …{context}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n\n"));
}

#[test]
fn metrics_and_health_listen_on_loopback_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clusters.toml");
    let text = "[[clusters]]\nname = \"a\"\nin_cluster = true\n[[watch]]\nresource = \"v1/pods\"\n";
    let config = PanoptesConfig::parse(text, &file, std::iter::empty()).expect("valid");
    assert!(
        config.runtime.metrics_addr.ip().is_loopback(),
        "default metrics_addr {} is not loopback",
        config.runtime.metrics_addr
    );
    let open = format!("[runtime]\nmetrics_addr = \"0.0.0.0:9464\"\n{text}");
    let config = PanoptesConfig::parse(&open, &file, std::iter::empty()).expect("valid");
    assert!(
        config.runtime.metrics_addr.ip().is_unspecified(),
        "configured address is kept"
    );
}
