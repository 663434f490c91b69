//! The listener's delivery contract holds on every path to a handler — plain, through a
//! filtered view, and through a multi-cluster informer's relabelling: "delivered" means the
//! handler took the event (a handler that is gone counts its events as dropped), and an event
//! a restartable handler actor dies on is delivered once more.

mod multicluster_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use multicluster_support::{Clusters, DEADLINE, eventually};
use panoptes_actors::{Event, HandlerOptions, handler_actor, ids::ClusterId};
use panoptes_runtime::{InformerSpec, Runtime};
use parking_lot::Mutex;

type Seen = Arc<Mutex<Vec<String>>>;

/// Records the key of every event; panics on the key `crash_on` while `crashes` is above 0;
/// stops on [`Quit`].
struct Recorder {
    seen: Seen,
    crash_on: Option<(String, Arc<AtomicU32>)>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for Recorder {
    type Result = ();

    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) {
        let key = event.key().to_string();
        if let Some((crash_key, crashes)) = &self.crash_on
            && *crash_key == key
            && crashes.load(Ordering::SeqCst) > 0
        {
            crashes.fetch_sub(1, Ordering::SeqCst);
            panic!("test handler crashes on {key}");
        }
        self.seen.lock().push(key);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Quit;

impl Handler<Quit> for Recorder {
    type Result = ();

    fn handle(&mut self, _msg: Quit, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A cluster with `initial` pods in `ns-b` and a runtime already watching all pods on it.
async fn watched_cluster(initial: usize) -> (Clusters, Runtime, ClusterId) {
    let clusters = Clusters::start(1, 0);
    panoptes_sim::pods::seed(&clusters.sim.cluster(0).store(), "ns-b", initial);
    let runtime = Runtime::start(&clusters.config(&[("only", "sim-1")]))
        .await
        .unwrap();
    let cluster = ClusterId::new("only");
    (clusters, runtime, cluster)
}

#[actix_rt::test]
async fn events_for_a_handler_that_is_gone_behind_a_view_are_dropped_not_delivered() {
    let (clusters, runtime, cluster) = watched_cluster(3).await;
    let everything = runtime.informer::<Pod>();
    assert!(everything.wait_synced(&cluster, DEADLINE).await);
    let in_b = runtime.informer_with::<Pod>(InformerSpec {
        namespace: Some("ns-b".into()),
        ..InformerSpec::default()
    });
    let view = in_b.handle(&cluster).unwrap();
    assert!(view.view().is_some(), "served through a view");

    let seen = Seen::default();
    let handler = Recorder {
        seen: seen.clone(),
        crash_on: None,
    }
    .start();
    let id = view.add_handler(handler.clone().recipient(), HandlerOptions::default());
    eventually("the 3 initial pods", || seen.lock().len() == 3).await;
    handler.send(Quit).await.unwrap();

    panoptes_sim::pods::seed(&clusters.sim.cluster(0).store(), "ns-b", 5);
    eventually("the 2 new pods are accounted for", || {
        let status = view.handler_status(id).unwrap();
        status.delivered + status.dropped >= 5
    })
    .await;
    let status = view.handler_status(id).unwrap();
    assert_eq!(
        (status.delivered, status.dropped),
        (3, 2),
        "only what the handler took counts as delivered: {status:?}"
    );
    assert_eq!(seen.lock().len(), 3);
}

#[actix_rt::test]
async fn events_for_a_handler_that_is_gone_behind_a_multi_cluster_informer_are_dropped() {
    let (clusters, runtime, cluster) = watched_cluster(3).await;
    let pods = runtime.informer::<Pod>();
    let seen = Seen::default();
    let handler = Recorder {
        seen: seen.clone(),
        crash_on: None,
    }
    .start();
    let id = pods.add_handler(handler.clone().recipient(), HandlerOptions::default());
    eventually("the 3 initial pods", || seen.lock().len() == 3).await;
    handler.send(Quit).await.unwrap();

    panoptes_sim::pods::seed(&clusters.sim.cluster(0).store(), "ns-b", 5);
    eventually("the 2 new pods are accounted for", || {
        let status = pods.handler_status(&cluster, id).unwrap();
        status.delivered + status.dropped >= 5
    })
    .await;
    let status = pods.handler_status(&cluster, id).unwrap();
    assert_eq!(
        (status.delivered, status.dropped),
        (3, 2),
        "only what the handler took counts as delivered: {status:?}"
    );
}

#[actix_rt::test]
async fn an_event_a_restartable_handler_dies_on_behind_a_view_is_retried_once() {
    let (clusters, runtime, cluster) = watched_cluster(2).await;
    let everything = runtime.informer::<Pod>();
    assert!(everything.wait_synced(&cluster, DEADLINE).await);
    let in_b = runtime.informer_with::<Pod>(InformerSpec {
        namespace: Some("ns-b".into()),
        ..InformerSpec::default()
    });
    let view = in_b.handle(&cluster).unwrap();
    assert!(view.view().is_some(), "served through a view");

    let seen = Seen::default();
    let crashes = Arc::new(AtomicU32::new(1));
    let factory = {
        let (seen, crashes) = (seen.clone(), crashes.clone());
        handler_actor(move || Recorder {
            seen: seen.clone(),
            crash_on: Some(("ns-b/pod-00002".into(), crashes.clone())),
        })
    };
    let id = view.add_handler(factory, HandlerOptions::default());
    eventually("the 2 initial pods", || seen.lock().len() == 2).await;

    panoptes_sim::pods::seed(&clusters.sim.cluster(0).store(), "ns-b", 4);
    eventually("the pods after the crash", || {
        seen.lock().iter().any(|k| k == "ns-b/pod-00003")
    })
    .await;
    eventually("the handler's counters settle", || {
        view.handler_status(id).unwrap().backlog == 0
    })
    .await;
    let status = view.handler_status(id).unwrap();
    assert_eq!(
        crashes.load(Ordering::SeqCst),
        0,
        "the handler crashed once"
    );
    assert!(
        seen.lock().iter().any(|k| k == "ns-b/pod-00002"),
        "the event it died on was retried: {:?}",
        seen.lock()
    );
    assert_eq!(
        (status.delivered, status.restarts, status.failed),
        (4, 1, 0),
        "{status:?}"
    );
}
