//! Telemetry: configuration maps onto the exporter and sampler, spans reach a real OTLP/HTTP
//! collector, and the no-endpoint path installs logging only.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use panoptes_runtime::config::{OtlpProtocol, TelemetryConfig};
use panoptes_runtime::telemetry::{TelemetryError, init, tracer_provider};
use tokio::sync::mpsc;

fn telemetry(endpoint: Option<String>, protocol: OtlpProtocol, ratio: f64) -> TelemetryConfig {
    TelemetryConfig {
        otlp_endpoint: endpoint,
        otlp_protocol: protocol,
        service_name: "panoptes-under-test".into(),
        sampling_ratio: ratio,
        log: "warn".into(),
    }
}

/// A collector that accepts `POST /v1/traces` and forwards each body; stops with the runtime.
async fn start_collector() -> (String, mpsc::UnboundedReceiver<Bytes>) {
    let (bodies, received) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(bodies): State<mpsc::UnboundedSender<Bytes>>, body: Bytes| async move {
                    let _ = bodies.send(body);
                    // An empty ExportTraceServiceResponse: full success.
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                },
            ),
        )
        .with_state(bodies);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_reaches_an_otlp_http_collector_with_the_service_name() {
    let (endpoint, mut received) = start_collector().await;
    let config = telemetry(Some(endpoint), OtlpProtocol::Http, 1.0);
    let provider = tracer_provider(&config)
        .expect("provider")
        .expect("endpoint set");
    provider
        .tracer("test")
        .in_span("reflector-list-east", |cx| {
            assert!(cx.span().span_context().is_sampled());
        });
    let flushing = provider.clone();
    let flushed = tokio::task::spawn_blocking(move || flushing.force_flush())
        .await
        .unwrap();
    assert!(flushed.is_ok(), "{flushed:?}");

    let body = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("collector got an export within 10s")
        .expect("collector alive");
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"reflector-list-east"),
        "span name in the protobuf body"
    );
    assert!(
        contains(b"panoptes-under-test"),
        "service.name in the protobuf body"
    );
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn sampling_ratio_zero_keeps_no_root_span() {
    // The grpc exporter connects lazily, so nothing needs to listen here.
    let config = telemetry(Some("http://127.0.0.1:9".into()), OtlpProtocol::Grpc, 0.0);
    let provider = tracer_provider(&config)
        .expect("provider")
        .expect("endpoint set");
    let mut span = provider.tracer("test").start("dropped");
    assert!(!span.span_context().is_sampled());
    span.end();
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .ok();
}

#[test]
fn exporter_outside_a_runtime_is_an_error_not_a_panic() {
    let config = telemetry(
        Some("http://127.0.0.1:4317".into()),
        OtlpProtocol::Grpc,
        1.0,
    );
    let err = tracer_provider(&config).unwrap_err();
    assert!(matches!(err, TelemetryError::NeedsTokio { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:4317"));
}

#[test]
fn no_endpoint_means_no_exporter() {
    let config = telemetry(None, OtlpProtocol::Http, 1.0);
    assert!(tracer_provider(&config).unwrap().is_none());
}

/// The only test here that installs the global subscriber (once per process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_exports_tracing_spans_and_installs_only_once() {
    let (endpoint, mut received) = start_collector().await;
    let mut config = telemetry(Some(endpoint), OtlpProtocol::Http, 1.0);
    config.log = "info".into();
    let guard = init(&config).expect("first init");
    assert!(guard.tracer_provider().is_some());
    tracing::info_span!("listener-deliver", cluster = "east-cluster").in_scope(|| {
        tracing::info!("delivered");
    });
    assert!(matches!(
        init(&config),
        Err(TelemetryError::AlreadyInstalled)
    ));
    guard.shutdown().await.expect("flush and shut down");

    let body = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("collector got an export within 10s")
        .expect("collector alive");
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"listener-deliver"), "span name exported");
    assert!(
        contains(b"east-cluster"),
        "span field exported as an attribute"
    );
}
