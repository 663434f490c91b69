//! The span context one pipeline stage hands the next across a mailbox: what W3C trace
//! context is to HTTP hops, and what client-go's `context.Context` carries between an informer
//! and a controller's work queue.
//!
//! # Contract
//! - Messages carry a [`TraceContext`] (trace id, span id, sampled flag), never a live
//!   [`tracing::Span`]: a live span held by a later stage would keep its stage's span open, and
//!   a span is exported only once closed. So each stage's span closes when that stage is done,
//!   and every exported span's parent was exported before or with it.
//! - [`TraceContext::adopt`] makes a new span the child of a carried context before the span
//!   is entered (OpenTelemetry cannot re-parent a started span).
//! - Without an OpenTelemetry layer every context is empty and adopting one is a no-op, so
//!   the cost of tracing is a few pointer copies per batch.
//! - A batch span names its keys so that Jaeger's tag search `key=ns/name` finds the trace:
//!   one key as the span's `key` attribute, several as one `key` span event each (Jaeger
//!   searches span events' fields too), at most [`MAX_KEY_EVENTS`] per span.
//!
//! Inside a handler, [`TraceContext::current`] is the context of the `handler` span the
//! listener opened for the event: a controller continues the trace from it (work queue,
//! reconcile) by carrying it with the key and adopting it in its own spans.

use std::fmt;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::ids::ObjectKey;

/// At most this many per-key events on one batch span: the SDK's default span limit (128
/// events) would drop the rest anyway, and a 10 000-object relist needs no 10 000 events.
pub const MAX_KEY_EVENTS: usize = 128;

/// The span context of one stage, carried in a message to the next. Cheap to clone (an
/// `Arc` inside); empty when nothing is traced.
#[derive(Clone, Default)]
pub struct TraceContext(opentelemetry::Context);

impl TraceContext {
    /// No context: a span adopting it starts a trace of its own.
    pub fn none() -> Self {
        Self::default()
    }

    /// Wraps an OpenTelemetry context (one extracted by a propagator, say).
    pub fn from_otel(cx: opentelemetry::Context) -> Self {
        Self(cx)
    }

    /// The context of `span` (empty when no OpenTelemetry layer sees it).
    pub fn of(span: &tracing::Span) -> Self {
        Self(span.context())
    }

    /// The context of the span entered on this thread: in a handler, its `handler` span.
    pub fn current() -> Self {
        Self::of(&tracing::Span::current())
    }

    /// Makes `span` (not yet entered) a child of this context, and returns it. An empty
    /// context makes it a root.
    pub fn adopt(&self, span: tracing::Span) -> tracing::Span {
        // Fails only when no OpenTelemetry layer is installed or the span is disabled: then
        // there is no trace to continue.
        let _ = span.set_parent(self.0.clone());
        span
    }

    /// The OpenTelemetry span context (trace id, span id, flags); invalid when empty.
    pub fn span_context(&self) -> SpanContext {
        self.0.span().span_context().clone()
    }

    /// Whether this names a span (false without tracing).
    pub fn is_valid(&self) -> bool {
        self.0.span().span_context().is_valid()
    }

    /// The OpenTelemetry context, for APIs that take one (propagators, `set_parent`).
    pub fn as_otel(&self) -> &opentelemetry::Context {
        &self.0
    }

    /// Links `span` to this context (a batch that merges several upstream traces).
    pub fn link_from(&self, span: &tracing::Span) {
        if self.is_valid() {
            span.add_link(self.span_context());
        }
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cx = self.span_context();
        if cx.is_valid() {
            write!(f, "TraceContext({}/{})", cx.trace_id(), cx.span_id())
        } else {
            f.write_str("TraceContext(none)")
        }
    }
}

/// Names the keys a batch span covers, so a trace is found by `key=ns/name`: a single key
/// becomes the span's `key` (and `resource_version`) attribute; several become one `key`
/// event each, up to [`MAX_KEY_EVENTS`]. `keys` yields `(key, resourceVersion)` lazily, and
/// `count` of them.
pub fn record_keys<'a>(
    span: &tracing::Span,
    count: usize,
    keys: impl Iterator<Item = (String, Option<&'a str>)>,
) {
    if span.is_disabled() || count == 0 {
        return;
    }
    span.set_attribute("keys", i64::try_from(count).unwrap_or(i64::MAX));
    if count == 1 {
        for (key, resource_version) in keys {
            span.set_attribute("key", key);
            if let Some(rv) = resource_version {
                span.set_attribute("resource_version", rv.to_owned());
            }
        }
        return;
    }
    for (key, resource_version) in keys.take(MAX_KEY_EVENTS) {
        let mut attributes = vec![KeyValue::new("key", key)];
        if let Some(rv) = resource_version {
            attributes.push(KeyValue::new("resource_version", rv.to_owned()));
        }
        span.add_event("key", attributes);
    }
}

/// An object's key and resourceVersion, as [`record_keys`] takes them.
pub(crate) fn key_and_version<K: kube::Resource>(obj: &Arc<K>) -> (String, Option<&str>) {
    (
        ObjectKey::of(obj.as_ref()).to_string(),
        obj.meta().resource_version.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_be_empty_and_harmless_without_an_opentelemetry_layer() {
        let cx = TraceContext::of(&tracing::info_span!("untraced"));
        assert!(!cx.is_valid());
        assert_eq!(format!("{cx:?}"), "TraceContext(none)");
        let child = cx.adopt(tracing::info_span!("child"));
        record_keys(&child, 1, [("ns/a".to_owned(), Some("1"))].into_iter());
        assert!(!TraceContext::current().is_valid());
    }
}
