//! One watch event is one trace down to the handler's own spans (issue 13), through the
//! public API: a detached informer fed a reflector batch whose root span the test opens, a
//! closure handler and a restartable handler actor that each open a span of their own, and
//! an OpenTelemetry SDK whose ended spans the test collects.
//!
//! The subscriber is process-global (the pipeline runs on its own arbiter thread): nextest
//! runs each test in its own process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use panoptes_actors::reflector::{ReflectorBatch, ReflectorDelta};
use panoptes_actors::{
    Event, HandlerOptions, Informer, TraceContext, Transform, handler_actor, handler_fn,
    ids::ClusterId,
};
use parking_lot::Mutex;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const PATIENCE: Duration = Duration::from_secs(10);

/// Every ended span, as the exporter would get it.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Collect {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn pod(name: &str, rv: u64) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(rv.to_string()),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A handler actor that opens a span of its own for every update of `ns/a`.
struct Worker(Arc<AtomicBool>);

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for Worker {
    type Result = ();

    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) {
        if matches!(event, Event::Updated { .. }) {
            let _span = tracing::info_span!("user.actor").entered();
            assert!(TraceContext::current().is_valid());
            self.0.store(true, Ordering::Release);
        }
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The names from `span` up to its root, following parents among `spans`.
fn ancestry(spans: &[SpanData], span: &SpanData) -> Vec<String> {
    let mut names = vec![span.name.to_string()];
    let mut parent = span.parent_span_id;
    while parent != SpanId::INVALID {
        let Some(up) = spans.iter().find(|s| s.span_context.span_id() == parent) else {
            names.push(format!("<missing {parent}>"));
            break;
        };
        names.push(up.name.to_string());
        parent = up.parent_span_id;
    }
    names
}

#[actix_rt::test]
async fn should_trace_one_watch_event_from_the_reflector_to_the_handlers_own_spans() {
    let collected = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(collected.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .init();

    let (informer, feed) =
        Informer::<Pod>::detached(ClusterId::new("c1"), "v1/pods", Transform::default());
    let closure_saw = Arc::new(AtomicBool::new(false));
    let seen = closure_saw.clone();
    informer.add_handler(
        handler_fn(move |event: Event<Pod>| {
            if matches!(event, Event::Updated { .. }) {
                let _span = tracing::info_span!("user.closure").entered();
                seen.store(true, Ordering::Release);
            }
        }),
        HandlerOptions::default(),
    );
    let actor_saw = Arc::new(AtomicBool::new(false));
    let seen = actor_saw.clone();
    informer.add_handler(
        handler_actor(move || Worker(seen.clone())),
        HandlerOptions::default(),
    );
    informer.start();

    let list = tracing::info_span!("list_page");
    feed.do_send(ReflectorBatch {
        cluster: ClusterId::new("c1"),
        deltas: vec![ReflectorDelta::Replace {
            objects: vec![pod("a", 1), pod("b", 2)],
            resource_version: "2".into(),
        }],
        trace: TraceContext::of(&list),
        arrived: tokio::time::Instant::now(),
    });
    drop(list);
    assert!(informer.wait_synced(PATIENCE).await);
    let watch = tracing::info_span!("watch_event");
    let root = TraceContext::of(&watch).span_context();
    feed.do_send(ReflectorBatch {
        cluster: ClusterId::new("c1"),
        deltas: vec![ReflectorDelta::Modified(pod("a", 3))],
        trace: TraceContext::of(&watch),
        arrived: tokio::time::Instant::now(),
    });
    drop(watch);

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let wanted = |spans: &[SpanData]| {
        ["user.actor", "user.closure"]
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name))
            && spans
                .iter()
                .filter(|s| {
                    s.name == "listener.deliver"
                        && attribute(s, "resource_version").as_deref() == Some("3")
                })
                .count()
                == 2
    };
    while !(closure_saw.load(Ordering::Acquire)
        && actor_saw.load(Ordering::Acquire)
        && wanted(&collected.0.lock()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handlers' spans never ended"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    informer.stop();

    let spans = collected.0.lock().clone();
    let chain = |leaf: &str| {
        let span = spans.iter().find(|s| s.name == leaf).expect(leaf);
        assert_eq!(span.span_context.trace_id(), root.trace_id(), "{leaf}");
        ancestry(&spans, span)
    };
    let stages = [
        "handler",
        "listener.deliver",
        "listener.notify",
        "processor.distribute",
        "indexer.apply",
        "delta_fifo.pop",
        "delta_fifo.push",
        "watch_event",
    ];
    for leaf in ["user.actor", "user.closure"] {
        let mut expected = vec![leaf.to_string()];
        expected.extend(stages.iter().map(|s| s.to_string()));
        assert_eq!(chain(leaf), expected);
    }
    let handler = spans
        .iter()
        .find(|s| s.name == "handler" && attribute(s, "resource_version").as_deref() == Some("3"))
        .expect("a handler span of the update");
    assert_eq!(attribute(handler, "key").as_deref(), Some("ns/a"));
    assert_eq!(attribute(handler, "cluster").as_deref(), Some("c1"));
    assert_eq!(attribute(handler, "resource").as_deref(), Some("v1/pods"));
    assert_eq!(attribute(handler, "event").as_deref(), Some("updated"));
    let pop = spans
        .iter()
        .find(|s| s.name == "delta_fifo.pop" && s.span_context.trace_id() == root.trace_id())
        .unwrap();
    assert_eq!(
        attribute(pop, "key").as_deref(),
        Some("ns/a"),
        "one key: an attribute"
    );
    let list_pop = spans
        .iter()
        .find(|s| s.name == "delta_fifo.pop" && s.span_context.trace_id() != root.trace_id())
        .unwrap();
    let keys: Vec<String> = list_pop
        .events
        .iter()
        .flat_map(|e| e.attributes.iter().filter(|kv| kv.key.as_str() == "key"))
        .map(|kv| kv.value.to_string())
        .collect();
    assert_eq!(keys, ["ns/a", "ns/b"], "several keys: one event each");
    let ids: std::collections::HashSet<SpanId> =
        spans.iter().map(|s| s.span_context.span_id()).collect();
    let orphans: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent_span_id != SpanId::INVALID && !ids.contains(&s.parent_span_id))
        .map(|s| s.name.as_ref())
        .collect();
    assert!(
        orphans.is_empty(),
        "spans whose parent never ended: {orphans:?}"
    );
}
