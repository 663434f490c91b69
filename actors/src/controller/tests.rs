//! The controller's worker rules that need no cluster: leadership and live clusters. The
//! reconcile path itself is driven against `sim` in the workspace's `tests/controller.rs`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use parking_lot::Mutex;

use super::*;
use crate::controller_metrics::NoMetrics;
use crate::work_queue::Len;

/// A reconciler that records keys and succeeds.
struct Recorder(Arc<Mutex<Vec<ReconcileKey>>>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Reconcile<ConfigMap>> for Recorder {
    type Result = Result<Action, ReconcileError>;

    fn handle(&mut self, msg: Reconcile<ConfigMap>, _: &mut Context<Self>) -> Self::Result {
        self.0.lock().push(msg.key);
        Ok(Action::Done)
    }
}

fn key(name: &str) -> ReconcileKey {
    ReconcileKey::new(ClusterId::new("gone"), Some("ns"), name)
}

/// A controller whose context source knows no cluster.
fn start(leadership: Leadership) -> (Controller, Arc<Mutex<Vec<ReconcileKey>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let contexts: ContextSource<ConfigMap> = Arc::new(|_: &ClusterId| None);
    let controller = Controller::start(
        ControllerOptions {
            workers: 2,
            ..ControllerOptions::new("test")
        },
        Recorder(seen.clone()).start().recipient(),
        contexts,
        leadership,
        Arc::new(NoMetrics),
    );
    (controller, seen)
}

/// Fails the test (instead of hanging it) if `future` does not finish; on paused time an
/// idle runtime jumps to the deadline at once.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish (deadlock?)"))
}

#[actix_rt::test]
async fn should_drop_keys_of_a_cluster_that_is_not_live_without_reconciling() {
    tokio::time::pause();
    let (controller, seen) = start(Leadership::always());
    for name in ["a", "b"] {
        controller.enqueue(key(name));
    }
    let queue = controller.queue().clone();
    within("the queue empties", async {
        loop {
            let len = queue.send(Len).await.unwrap();
            if len == Default::default() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(seen.lock().is_empty());
    within("shutdown", controller.shutdown(ShutdownMode::Drain)).await;
}

#[actix_rt::test]
async fn should_abandon_instead_of_draining_when_stopping_as_a_follower() {
    tokio::time::pause();
    let (_elector, gate) = watch::channel(false);
    let (controller, seen) = start(Leadership::from_receiver(gate));
    for name in ["a", "b", "c"] {
        controller.enqueue(key(name));
    }
    let queue = controller.queue().clone();
    assert_eq!(queue.send(Len).await.unwrap().queued, 3);
    within(
        "a follower's drain",
        controller.shutdown(ShutdownMode::Drain),
    )
    .await;
    assert!(seen.lock().is_empty(), "a follower reconciles nothing");
}

#[actix_rt::test]
async fn should_stop_when_the_leadership_gate_goes_away() {
    tokio::time::pause();
    let (elector, gate) = watch::channel(false);
    let (mut controller, _seen) = start(Leadership::from_receiver(gate));
    controller.enqueue(key("a"));
    drop(elector);
    // Await the workers while the controller lives (dropping it would stop them anyway).
    let workers = std::mem::take(&mut controller.workers);
    within("the workers end", futures::future::join_all(workers)).await;
    assert_eq!(
        controller.queue().send(Len).await.ok(),
        None,
        "queue stopped"
    );
}
