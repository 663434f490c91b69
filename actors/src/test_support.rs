//! Tiny fixtures shared by the unit tests.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::api::ObjectMeta;

use crate::ids::ClusterId;

/// A pod `ns/name` at resourceVersion `rv`.
pub fn pod(name: &str, rv: u64) -> Arc<Pod> {
    pod_on(name, rv, None)
}

/// A pod `ns/name` at `rv`, scheduled on `node`.
pub fn pod_on(name: &str, rv: u64, node: Option<&str>) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(rv.to_string()),
            labels: Some([("app".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(Into::into),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn rv(pod: &Pod) -> u64 {
    pod.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn cluster() -> ClusterId {
    ClusterId::new("test")
}

/// Polls `done` every few milliseconds until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// A handler actor that records every event it gets, optionally slowly, and panics on
/// events for objects named `panic_on` (the first `panics` times).
pub struct Recorder {
    pub seen: Arc<parking_lot::Mutex<Vec<crate::event::Event<Pod>>>>,
    pub delay: Option<std::time::Duration>,
    pub panic_on: Option<(String, Arc<std::sync::atomic::AtomicU32>)>,
}

impl Recorder {
    pub fn new(seen: Arc<parking_lot::Mutex<Vec<crate::event::Event<Pod>>>>) -> Self {
        Self {
            seen,
            delay: None,
            panic_on: None,
        }
    }
}

impl actix::Actor for Recorder {
    type Context = actix::Context<Self>;
}

impl actix::Handler<crate::event::Event<Pod>> for Recorder {
    type Result = actix::ResponseActFuture<Self, ()>;

    fn handle(
        &mut self,
        event: crate::event::Event<Pod>,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        use actix::{ActorFutureExt, WrapFuture};
        if let Some((name, panics)) = &self.panic_on
            && event.object().metadata.name.as_deref() == Some(name)
            && panics.load(std::sync::atomic::Ordering::SeqCst) > 0
        {
            panics.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            panic!("test handler panics on {name}");
        }
        let delay = self.delay;
        Box::pin(
            async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
            }
            .into_actor(self)
            .map(move |(), act, _| act.seen.lock().push(event)),
        )
    }
}

/// Swallows stage faults (for stages tested without a supervisor).
struct FaultSink;

impl actix::Actor for FaultSink {
    type Context = actix::Context<Self>;
}

impl actix::Handler<crate::stage_fault::StageFailed> for FaultSink {
    type Result = ();
    fn handle(&mut self, _msg: crate::stage_fault::StageFailed, _ctx: &mut Self::Context) {}
}

/// A recipient for a stage's faults that ignores them.
pub fn ignore_faults() -> actix::Recipient<crate::stage_fault::StageFailed> {
    use actix::Actor;
    FaultSink.start().recipient()
}
