//! Telemetry setup: logs through `tracing-subscriber` (fmt + `EnvFilter` from `RUST_LOG` or
//! `[telemetry] log`, see [`crate::log_filter`]) and, when `[telemetry] otlp_endpoint` is set, every `tracing` span
//! exported over OTLP (gRPC or HTTP/protobuf) so that one watch event can be followed in
//! Jaeger from the API server to the handler.
//!
//! # Contract
//!
//! - No endpoint, no exporter: nothing is sent anywhere and no exporter thread is started.
//! - Sampling is parent-based with a trace-id ratio at the root (`sampling_ratio`), so a trace
//!   is kept or dropped whole; a span that ends in error is exported even from a dropped
//!   trace ([`sampling`]).
//! - One watch event (or list page) is one trace, from the reflector's span down to the
//!   handler's (`panoptes_actors::trace_context`): every stage's span closes when the stage is
//!   done, so every exported span's parent is exported too.
//! - Spans carry the resource attribute `service.name` (`service_name`, default `panoptes`).
//! - Export never blocks the caller: spans are batched on the SDK's own thread.
//! - Logs go to stderr (colours only on a terminal), filtered by `log`; stdout is left to the
//!   program's own output. Exported spans have their own filter, [`TRACE_FILTER`]: the
//!   pipeline's stage spans are at `debug`, and a quiet log must not cut a trace short.
//!
//! # Shutdown
//!
//! The SDK's `force_flush` and `shutdown` block until the exporter answers, and the exporter
//! runs on the tokio runtime: called from an async task they can deadlock a single-threaded
//! runtime. [`TelemetryGuard::shutdown`] therefore runs them under `spawn_blocking`; dropping
//! the guard instead runs them on a fresh OS thread and waits (fine from `main` after the
//! runtime finished, slow but safe elsewhere).

use std::future::Future;
use std::io::IsTerminal;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use thiserror::Error;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{OtlpProtocol, TelemetryConfig};

pub mod sampling;

use sampling::{KeepErrors, RatioKeepingErrors};

/// Which spans are exported over OTLP: Panoptes' own at `debug` (one per pipeline stage, from
/// the reflector's batch to each handler), everything else at `info`.
pub const TRACE_FILTER: &str = "info,panoptes_actors=debug,panoptes_runtime=debug";

/// Name of the OpenTelemetry tracer (instrumentation scope) Panoptes' spans are reported under.
pub const TRACER_NAME: &str = "panoptes";

/// How long one OTLP/HTTP export may take before it is abandoned (the SDK's default is 10s).
const HTTP_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Telemetry could not be set up. None of these is retryable without a change.
#[derive(Debug, Error)]
pub enum TelemetryError {
    /// `RUST_LOG` or `[telemetry] log` does not parse ([`crate::log_filter`]).
    #[error(transparent)]
    LogFilter(#[from] crate::log_filter::LogFilterError),
    #[error(
        "OTLP export to {endpoint} must be set up inside a tokio runtime (its client runs there)"
    )]
    /// OTLP export was set up outside a tokio runtime.
    NeedsTokio {
        /// The OTLP endpoint URL.
        endpoint: String,
    },
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter for {endpoint}: {source}")]
    Exporter {
        /// The OTLP endpoint URL.
        endpoint: String,
        #[source]
        /// The exporter's error.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error(
        "a global tracing subscriber is already installed; call telemetry::init once per process"
    )]
    /// A global tracing subscriber was installed before.
    AlreadyInstalled,
    /// Flushing spans at shutdown failed; the message says why.
    #[error("flushing spans at shutdown failed: {0}")]
    Shutdown(String),
}

/// Keeps the exporter alive; flushes and shuts it down when dropped or on [`Self::shutdown`].
#[derive(Debug)]
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// The tracer provider, when an OTLP endpoint is configured.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Flushes pending spans and stops the exporter, off the async threads.
    pub async fn shutdown(mut self) -> Result<(), TelemetryError> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .map_err(|e| TelemetryError::Shutdown(e.to_string()))?
            .map_err(|e| TelemetryError::Shutdown(e.to_string()))
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // A thread of its own: shutdown blocks, and this may be a runtime worker.
            let flushed = std::thread::spawn(move || provider.shutdown()).join();
            if !matches!(flushed, Ok(Ok(()))) {
                eprintln!("panoptes: flushing traces at exit failed: {flushed:?}");
            }
        }
    }
}

/// Installs the global subscriber from `config`. Call once, inside the tokio runtime when an
/// OTLP endpoint is set; keep the guard until the end of `main`.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let filter = crate::log_filter::log_filter(&config.log)?;
    let provider = tracer_provider(config)?;
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(TRACER_NAME))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    let log_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(TelemetryGuard { provider })
}

/// Installs the global subscriber from `config` unless one is installed already (by the
/// program, a test harness, or an earlier runtime): then it is kept, `config` is not applied,
/// and that is logged at `info`. `Ok(None)` in that case. What
/// [`Runtime::start`](crate::Runtime::start) calls, so that starting twice never fails.
pub fn init_or_keep(config: &TelemetryConfig) -> Result<Option<TelemetryGuard>, TelemetryError> {
    let kept = || {
        tracing::info!(log = %config.log, "a global tracing subscriber is already installed; keeping it ([telemetry] not applied)");
        Ok(None)
    };
    if tracing::dispatcher::has_been_set() {
        return kept();
    }
    match init(config) {
        Ok(guard) => Ok(Some(guard)),
        // Lost a race with another installer: the same situation.
        Err(TelemetryError::AlreadyInstalled) => kept(),
        Err(error) => Err(error),
    }
}

/// The OTLP tracer provider `config` asks for, or `None` without an endpoint. Does not touch
/// global state, so tests and embedders can use it directly.
pub fn tracer_provider(
    config: &TelemetryConfig,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let Some(endpoint) = config.otlp_endpoint.as_deref() else {
        return Ok(None);
    };
    let runtime =
        tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NeedsTokio {
            endpoint: endpoint.into(),
        })?;
    let url = otlp_traces_url(endpoint, config.otlp_protocol);
    let exporter = match config.otlp_protocol {
        OtlpProtocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&url)
            .build(),
        OtlpProtocol::Http => SpanExporter::builder()
            .with_http()
            .with_http_client(RuntimeHttpClient::new(runtime))
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(&url)
            .build(),
    }
    .map_err(|source| TelemetryError::Exporter {
        endpoint: url.clone(),
        source,
    })?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(RatioKeepingErrors::new(config.sampling_ratio))
        .with_span_processor(KeepErrors(BatchSpanProcessor::builder(exporter).build()))
        .build();
    Ok(Some(provider))
}

/// The URL the exporter is given. OTLP/HTTP uses it verbatim, so a bare collector address
/// (`http://host:4318`) gets the standard `/v1/traces` path; gRPC takes the address as is.
pub fn otlp_traces_url(endpoint: &str, protocol: OtlpProtocol) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    match protocol {
        OtlpProtocol::Grpc => endpoint.to_string(),
        OtlpProtocol::Http => {
            let has_path = endpoint
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('/'));
            if has_path {
                endpoint.to_string()
            } else {
                format!("{endpoint}/v1/traces")
            }
        }
    }
}

/// OTLP/HTTP client whose requests run on a tokio runtime. The SDK's batch thread polls
/// exports with a plain executor, where hyper cannot run; spawning onto the runtime captured
/// at setup and awaiting the join handle works from any executor.
#[derive(Debug)]
struct RuntimeHttpClient {
    inner: opentelemetry_http::hyper::HyperClient,
    runtime: tokio::runtime::Handle,
}

impl RuntimeHttpClient {
    fn new(runtime: tokio::runtime::Handle) -> Self {
        let inner = opentelemetry_http::hyper::HyperClient::with_default_connector(
            HTTP_EXPORT_TIMEOUT,
            None,
        );
        Self { inner, runtime }
    }
}

type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'a>>;

impl HttpClient for RuntimeHttpClient {
    // Written out as `#[async_trait]` would expand it, to avoid that dependency.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> SendFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let inner = self.inner.clone();
        let task = self
            .runtime
            .spawn(async move { inner.send_bytes(request).await });
        Box::pin(async move { task.await.map_err(|e| Box::new(e) as HttpError)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_add_the_traces_path_only_for_bare_http_endpoints() {
        let http = OtlpProtocol::Http;
        assert_eq!(
            otlp_traces_url("http://h:4318", http),
            "http://h:4318/v1/traces"
        );
        assert_eq!(
            otlp_traces_url("http://h:4318/", http),
            "http://h:4318/v1/traces"
        );
        assert_eq!(
            otlp_traces_url("http://h:4318/custom/traces", http),
            "http://h:4318/custom/traces"
        );
        assert_eq!(
            otlp_traces_url("http://h:4317/", OtlpProtocol::Grpc),
            "http://h:4317"
        );
    }
}
