//! Sampling that keeps or drops a trace whole, by ratio at its root, and yet exports every
//! span that ends in error: OpenTelemetry's `ParentBased(TraceIdRatioBased)` plus a tail rule.
//!
//! # How
//! The SDK samples when a span starts, and a span's error status is known only when it ends.
//! So a trace the ratio drops is not discarded but *recorded* ([`SamplingDecision::RecordOnly`]:
//! its spans collect their fields but are not marked sampled) and [`KeepErrors`], the span
//! processor in front of the batch exporter, passes on what is sampled plus any recorded span
//! whose status is `Error` (marked sampled on its way out). The cost of a ratio below 1 is
//! therefore the recording of the dropped traces' spans (no export); at 1.0 nothing changes.
//!
//! An error span of a dropped trace arrives without its ancestors: Jaeger shows it under a
//! "missing span" marker, which is the point — an error is never sampled away.

use std::time::Duration;

use opentelemetry::trace::{
    Link, SpanContext, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, ShouldSample, Span, SpanData, SpanProcessor,
};

/// Samples a root by trace-id `ratio` and every other span as its parent was; what it does not
/// sample it still records, for [`KeepErrors`].
#[derive(Debug, Clone)]
pub struct RatioKeepingErrors {
    root: Sampler,
}

impl RatioKeepingErrors {
    /// Keeps `ratio` (0.0..=1.0) of the traces.
    pub fn new(ratio: f64) -> Self {
        Self {
            root: Sampler::TraceIdRatioBased(ratio),
        }
    }
}

impl ShouldSample for RatioKeepingErrors {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .map(|cx| cx.span().span_context().clone())
            .filter(SpanContext::is_valid);
        let (sampled, trace_state) = match parent {
            Some(parent) => (parent.is_sampled(), parent.trace_state().clone()),
            None => {
                let root = self.root.should_sample(
                    parent_context,
                    trace_id,
                    name,
                    span_kind,
                    attributes,
                    links,
                );
                (
                    root.decision == SamplingDecision::RecordAndSample,
                    root.trace_state,
                )
            }
        };
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::RecordOnly
            },
            attributes: Vec::new(),
            trace_state,
        }
    }
}

/// Passes sampled spans, and recorded spans that ended in error, to `P` (the batch exporter).
#[derive(Debug)]
pub struct KeepErrors<P>(pub P);

impl<P: SpanProcessor> SpanProcessor for KeepErrors<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if !span.span_context.is_sampled() {
            if !matches!(span.status, Status::Error { .. }) {
                return;
            }
            let cx = &span.span_context;
            span.span_context = SpanContext::new(
                cx.trace_id(),
                cx.span_id(),
                cx.trace_flags() | TraceFlags::SAMPLED,
                cx.is_remote(),
                TraceState::clone(cx.trace_state()),
            );
        }
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Debug, Default, Clone)]
    struct Collect(Arc<Mutex<Vec<String>>>);

    impl SpanProcessor for Collect {
        fn on_start(&self, _span: &mut Span, _cx: &Context) {}
        fn on_end(&self, span: SpanData) {
            assert!(span.span_context.is_sampled(), "exported unsampled");
            self.0.lock().unwrap().push(span.name.to_string());
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    fn exported_at(ratio: f64) -> Vec<String> {
        let collect = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(RatioKeepingErrors::new(ratio))
            .with_span_processor(KeepErrors(collect.clone()))
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let root = tracing::info_span!("root");
            let _root = root.enter();
            tracing::info_span!("quiet child").in_scope(|| {});
            tracing::info_span!("failing child").in_scope(|| tracing::error!("it broke"));
        });
        collect.0.lock().unwrap().clone()
    }

    #[test]
    fn should_keep_whole_traces_at_ratio_one() {
        let mut names = exported_at(1.0);
        names.sort();
        assert_eq!(names, ["failing child", "quiet child", "root"]);
    }

    #[test]
    fn should_export_an_error_span_even_when_its_trace_is_sampled_away() {
        assert_eq!(exported_at(0.0), ["failing child"]);
    }
}
