//! What Panoptes exports over OTLP/gRPC, decoded (issue 13): an in-process collector
//! (`opentelemetry-proto`'s `TraceService` on tonic's server) receives a real run — a
//! `Runtime` with an embedded cluster, a closure handler that opens a span of its own, a pod
//! created, updated and deleted through `kube::Client` — and the test decodes the protobuf:
//! every span's parent arrived (0 orphans), the update's trace runs from the watch event to
//! the handler's span and the user's span under it with cluster, resource, key and
//! resourceVersion, the service name is set, and no attribute carries the bearer token.
//!
//! `the_shipped_config_exports_no_orphans_in_30s` (ignored: it takes 30 s) runs the
//! `panoptes` binary on the shipped `clusters.toml` against the same collector, stops it with
//! SIGTERM and prints the orphan count and one pod update's trace as a tree:
//! `cargo nextest run -p panoptes --test otlp_traces --run-ignored only --no-capture`.
//!
//! The subscriber is process-global: nextest runs each test in its own process.

mod informer_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use informer_support::wait_until;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use panoptes_actors::{Event, HandlerOptions, ids::ClusterId};
use panoptes_runtime::{PanoptesConfig, Runtime, telemetry};
use parking_lot::Mutex;

const DEADLINE: Duration = Duration::from_secs(30);

/// Every export request the collector received, decoded.
type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

struct Collector(Received);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC collector on a free port of 127.0.0.1; it stops with the test's runtime.
async fn collector() -> (std::net::SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let service = TraceServiceServer::new(Collector(received.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, received)
}

/// One exported span with the service that sent it.
#[derive(Debug, Clone)]
struct Exported {
    service: Option<String>,
    span: Span,
}

fn spans(received: &Received) -> Vec<Exported> {
    let mut out = Vec::new();
    for request in received.lock().iter() {
        for resource_spans in &request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| text(&r.attributes, "service.name"));
            for scope in &resource_spans.scope_spans {
                for span in &scope.spans {
                    out.push(Exported {
                        service: service.clone(),
                        span: span.clone(),
                    });
                }
            }
        }
    }
    out
}

fn value(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| value(&kv.value))
}

fn every_value(span: &Span) -> Vec<String> {
    let mut values: Vec<String> = span.attributes.iter().map(|kv| value(&kv.value)).collect();
    for event in &span.events {
        values.push(event.name.clone());
        values.extend(event.attributes.iter().map(|kv| value(&kv.value)));
    }
    values.push(span.name.clone());
    values
}

/// Spans whose parent did not arrive, by name.
fn orphans(spans: &[Exported]) -> Vec<String> {
    let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span.span_id.as_slice()).collect();
    spans
        .iter()
        .filter(|s| {
            !s.span.parent_span_id.is_empty() && !ids.contains(s.span.parent_span_id.as_slice())
        })
        .map(|s| s.span.name.clone())
        .collect()
}

/// `span`'s name and its ancestors' up to the root.
fn ancestry<'a>(spans: &'a [Exported], span: &'a Span) -> Vec<&'a Span> {
    let by_id: HashMap<&[u8], &Span> = spans
        .iter()
        .map(|s| (s.span.span_id.as_slice(), &s.span))
        .collect();
    let mut chain = vec![span];
    let mut current = span;
    while let Some(parent) = by_id.get(current.parent_span_id.as_slice()) {
        chain.push(parent);
        current = parent;
    }
    chain
}

/// One trace as an indented tree: name, duration, attributes (and per-key events).
fn tree(spans: &[Exported], trace_id: &[u8]) -> String {
    let trace: Vec<&Span> = spans
        .iter()
        .map(|s| &s.span)
        .filter(|s| s.trace_id == trace_id)
        .collect();
    let mut children: BTreeMap<&[u8], Vec<&Span>> = BTreeMap::new();
    for span in &trace {
        children
            .entry(span.parent_span_id.as_slice())
            .or_default()
            .push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_time_unix_nano);
    }
    fn print(out: &mut String, children: &BTreeMap<&[u8], Vec<&Span>>, span: &Span, depth: usize) {
        let micros = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano)
            / 1000;
        let attributes: Vec<String> = span
            .attributes
            .iter()
            .filter(|kv| !kv.key.starts_with("code.") && !kv.key.starts_with("thread."))
            .filter(|kv| !matches!(kv.key.as_str(), "target" | "busy_ns" | "idle_ns"))
            .map(|kv| format!("{}={}", kv.key, value(&kv.value)))
            .collect();
        let _ = writeln!(
            out,
            "{:indent$}{} ({micros} µs) {}{}",
            "",
            span.name,
            attributes.join(" "),
            if span.events.is_empty() {
                String::new()
            } else {
                format!(" [{} events]", span.events.len())
            },
            indent = depth * 2
        );
        for child in children.get(span.span_id.as_slice()).into_iter().flatten() {
            print(out, children, child, depth + 1);
        }
    }
    let mut out = String::new();
    for root in children.get([].as_slice()).into_iter().flatten() {
        print(&mut out, &children, root, 0);
    }
    out
}

const STAGES: [&str; 8] = [
    "handler",
    "listener.deliver",
    "listener.notify",
    "processor.distribute",
    "indexer.apply",
    "delta_fifo.pop",
    "delta_fifo.push",
    "watch_event",
];

/// What the handler records when the traced pod is added and deleted (an update records its
/// resourceVersion).
const ADDED: &str = "added";
const DELETED: &str = "deleted";

#[actix_rt::test]
async fn a_write_is_one_exported_trace_from_the_watch_event_to_the_handlers_own_span() {
    let (collector_addr, received) = collector().await;
    let toml = format!(
        r#"
[runtime]
metrics_addr = "127.0.0.1:0"
[telemetry]
log = "warn"
otlp_endpoint = "http://{collector_addr}"
otlp_protocol = "grpc"
service_name = "otlp-test"
[[clusters]]
name = "east"
embedded = {{ pods = 5, namespaces = 1, churn_per_sec = 0.0 }}
[[watch]]
resource = "v1/pods"
clusters = "*"
"#
    );
    let config = PanoptesConfig::parse(&toml, Path::new("otlp.toml"), std::iter::empty())
        .expect("the configuration is valid");
    let guard = telemetry::init(&config.telemetry).expect("telemetry starts");
    let runtime = Runtime::start(&config).await.expect("the runtime starts");
    let east = ClusterId::new("east");
    let token = runtime.embedded(&east).expect("east is embedded").token();
    let informer = runtime.watch(&config.watches[0]);
    let handled_log: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = handled_log.clone();
    informer.add_handler_fn(
        move |event| {
            if let Event::Updated { new, .. } = &event
                && new.metadata.name.as_deref() == Some("traced")
            {
                let _work = tracing::info_span!("user.work", step = "update").entered();
                seen.lock()
                    .push(new.metadata.resource_version.clone().unwrap_or_default());
            }
            let traced = event.object().metadata.name.as_deref() == Some("traced");
            match &event {
                Event::Added { .. } if traced => seen.lock().push(ADDED.to_owned()),
                Event::Deleted { .. } if traced => seen.lock().push(DELETED.to_owned()),
                _ => {}
            }
        },
        HandlerOptions::default(),
    );
    assert!(informer.wait_synced(&east, DEADLINE).await, "east syncs");
    let namespace = informer.list(&east).unwrap()[0]
        .metadata
        .namespace
        .clone()
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(runtime.client(&east).unwrap(), &namespace);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "traced"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let handled = async |what: &str, event: &str| {
        let what = format!("the handler sees the {what}");
        wait_until(&what, DEADLINE, || {
            handled_log.lock().iter().any(|seen| seen == event)
        })
        .await;
    };
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // Patched only once the handler has the pod: an update still queued behind the add would
    // coalesce into it in the delta FIFO (one `Added` with the newer object), never an update.
    handled("add", ADDED).await;
    let patch = serde_json::json!({"metadata": {"labels": {"traced": "yes"}}});
    let updated = pods
        .patch("traced", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let update_rv = updated.metadata.resource_version.clone().unwrap();
    handled("update", &update_rv).await;
    // Deleted only now: a delete still queued behind the update would replace it in the delta
    // FIFO (updates coalesce into a later delete), and the handler would never see it. Its
    // trace must also be complete before shutdown, or its spans arrive without their parents.
    pods.delete("traced", &DeleteParams::default())
        .await
        .unwrap();
    handled("delete", DELETED).await;

    drop(informer);
    runtime.shutdown();
    guard.shutdown().await.expect("spans flush");

    let spans = spans(&received);
    assert!(!spans.is_empty(), "nothing was exported");
    let services: HashSet<Option<String>> = spans.iter().map(|s| s.service.clone()).collect();
    assert_eq!(services, HashSet::from([Some("otlp-test".to_string())]));
    assert_eq!(
        orphans(&spans),
        Vec::<String>::new(),
        "spans whose parent never arrived"
    );

    let user = spans
        .iter()
        .find(|s| s.span.name == "user.work")
        .expect("the user's span arrived");
    let chain = ancestry(&spans, &user.span);
    let names: Vec<&str> = chain.iter().map(|s| s.name.as_str()).collect();
    let mut expected = vec!["user.work"];
    expected.extend(STAGES);
    assert_eq!(names, expected, "the update's trace");
    for span in &chain[1..] {
        assert_eq!(
            text(&span.attributes, "cluster").as_deref(),
            Some("east"),
            "{}",
            span.name
        );
        assert_eq!(
            text(&span.attributes, "resource").as_deref(),
            Some("v1/pods"),
            "{}",
            span.name
        );
    }
    let key = format!("{namespace}/traced");
    for name in [
        "handler",
        "listener.deliver",
        "delta_fifo.pop",
        "indexer.apply",
    ] {
        let span = chain.iter().find(|s| s.name == name).unwrap();
        assert_eq!(text(&span.attributes, "key"), Some(key.clone()), "{name}");
        assert_eq!(
            text(&span.attributes, "resource_version"),
            Some(update_rv.clone()),
            "{name}"
        );
    }
    let root = chain.last().unwrap();
    assert_eq!(
        text(&root.attributes, "resource_version"),
        Some(update_rv.clone())
    );

    let leaks: Vec<(String, String)> = spans
        .iter()
        .flat_map(|s| {
            every_value(&s.span)
                .into_iter()
                .map(|v| (s.span.name.clone(), v))
        })
        .filter(|(_, v)| v.contains(&token))
        .collect();
    assert!(leaks.is_empty(), "the bearer token was exported: {leaks:?}");
    eprintln!("{}", tree(&spans, &root.trace_id));
}

#[actix_rt::test]
#[ignore = "runs the shipped configuration for 30 s"]
async fn the_shipped_config_exports_no_orphans_in_30s() {
    let (collector_addr, received) = collector().await;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters.toml");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_panoptes"))
        .args(["run", "--config"])
        .arg(&config)
        .env(
            "PANOPTES__TELEMETRY__OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        )
        .env("PANOPTES__RUNTIME__METRICS_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("panoptes starts");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let pid = child.id().expect("still running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("panoptes stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit}");

    let spans = spans(&received);
    let traces: HashSet<&[u8]> = spans.iter().map(|s| s.span.trace_id.as_slice()).collect();
    let orphans = orphans(&spans);
    eprintln!(
        "{} spans in {} traces; {} orphans {:?}",
        spans.len(),
        traces.len(),
        orphans.len(),
        orphans.iter().collect::<HashSet<_>>()
    );
    let update = spans
        .iter()
        .filter(|s| s.span.name == "handler")
        .find(|s| text(&s.span.attributes, "event").as_deref() == Some("updated"))
        .expect("a pod update reached the handler");
    eprintln!("{}", tree(&spans, &update.span.trace_id));
    assert!(orphans.is_empty());
}
