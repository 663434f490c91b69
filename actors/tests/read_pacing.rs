//! Read pacing against the embedded API server (`read_pacing.rs`): an informer whose every
//! handler is far behind (or still on its initial list with the watch's slack queued behind
//! it) stops reading its watch, so the burst waits on the server, and reads on as soon as
//! one handler keeps up; nothing is lost either way.

mod sim_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::watch_counters::WatchEventType;
use panoptes_actors::{
    Event, FactoryOptions, HandlerId, HandlerOptions, Informer, InformerFactory, handler_fn,
    ids::ClusterId,
};
use panoptes_sim::store::{PatchType, Subresource, WriteOptions};
use panoptes_sim::{Sim, SimCluster, SimOptions};
use parking_lot::{Condvar, Mutex};
use sim_support::{client, eventually};

const WAIT: Duration = Duration::from_secs(30);
/// Each pod is updated once, so the FIFO has no two updates of one key to coalesce and every
/// handler must get exactly `UPDATES` updates.
const PODS: usize = 600;
const UPDATES: usize = PODS;
const READ_AHEAD: usize = 20;

/// One label patch (`round=last`) on every seeded pod.
fn write_updates(cluster: &SimCluster) {
    let store = cluster.store();
    let pods = store.builtin("", "pods");
    let body = br#"{"metadata":{"labels":{"round":"last"}}}"#;
    for seq in 0..UPDATES {
        let name = panoptes_sim::pods::pod_name(seq as u64);
        store
            .patch(
                &pods,
                Some("default"),
                &name,
                Subresource::Main,
                PatchType::StrategicMerge,
                body,
                &WriteOptions::default(),
            )
            .expect("pod patched");
    }
}

/// A handler actor on its own thread that blocks on every event while its gate is shut.
struct Gated {
    gate: Arc<(Mutex<bool>, Condvar)>,
    updates: Arc<AtomicUsize>,
}

impl Actor for Gated {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for Gated {
    type Result = ();

    fn handle(&mut self, event: Event<Pod>, _: &mut Context<Self>) {
        let (open, changed) = &*self.gate;
        let mut open = open.lock();
        while !*open {
            changed.wait(&mut open);
        }
        if matches!(event, Event::Updated { .. }) {
            self.updates.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct GatedHandler {
    id: HandlerId,
    gate: Arc<(Mutex<bool>, Condvar)>,
    updates: Arc<AtomicUsize>,
}

impl GatedHandler {
    fn add(informer: &Informer<Pod>) -> Self {
        let gate = Arc::new((Mutex::new(true), Condvar::new()));
        let updates = Arc::new(AtomicUsize::new(0));
        let actor = {
            let (gate, updates) = (gate.clone(), updates.clone());
            Gated::start_in_arbiter(&Arbiter::new().handle(), move |_| Gated { gate, updates })
        };
        let id = informer.add_handler(actor.recipient(), HandlerOptions::default());
        Self { id, gate, updates }
    }

    fn set_open(&self, open: bool) {
        *self.gate.0.lock() = open;
        self.gate.1.notify_all();
    }

    fn backlog(&self, informer: &Informer<Pod>) -> usize {
        informer.handler_status(self.id).map_or(0, |s| s.backlog)
    }
}

fn modified_read(informer: &Informer<Pod>) -> u64 {
    informer.watch_stats().events_of(WatchEventType::Modified)
}

async fn synced_informer(sim: &Sim, read_ahead: usize) -> (InformerFactory, Informer<Pod>) {
    let cluster = sim.cluster(0);
    let factory = InformerFactory::new(
        client(cluster).await,
        ClusterId::new("sim"),
        FactoryOptions {
            read_ahead: Some(read_ahead),
            ..FactoryOptions::default()
        },
    );
    let informer = factory.informer::<Pod>();
    (factory, informer)
}

async fn start_and_sync(factory: &InformerFactory, informer: &Informer<Pod>) {
    factory.start();
    assert!(informer.wait_synced(WAIT).await, "informer synced");
}

fn every_pod_at_last_round(informer: &Informer<Pod>) -> bool {
    let pods = informer.lister().list_all();
    pods.len() == PODS
        && pods.iter().all(|pod| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("round"))
                .is_some_and(|r| r == "last")
        })
}

/// Opens both gates; the paced informer then reads on: its handler gets every update,
/// nothing is lost and the cache converges.
async fn open_and_read_on(paced: &Informer<Pod>, handler: &GatedHandler, control: &GatedHandler) {
    handler.set_open(true);
    control.set_open(true);
    eventually("the paced handler got every update", WAIT, || {
        handler.updates.load(Ordering::SeqCst) == UPDATES
    })
    .await;
    assert_eq!(
        modified_read(paced),
        UPDATES as u64,
        "read on, nothing lost"
    );
    assert!(every_pod_at_last_round(paced), "the cache converged");
}

#[actix_rt::test]
async fn should_stop_reading_while_every_handler_is_behind_and_lose_nothing() {
    let sim = Sim::start(SimOptions::default()).expect("sim starts");
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", PODS);
    let (paced_factory, paced) = synced_informer(&sim, READ_AHEAD).await;
    let (unpaced_factory, unpaced) = synced_informer(&sim, 0).await;
    let slow = GatedHandler::add(&paced);
    let control = GatedHandler::add(&unpaced);
    start_and_sync(&paced_factory, &paced).await;
    start_and_sync(&unpaced_factory, &unpaced).await;
    eventually("both handlers took their initial list", WAIT, || {
        paced.handler_status(slow.id).is_some_and(|s| s.synced)
            && unpaced.handler_status(control.id).is_some_and(|s| s.synced)
    })
    .await;

    slow.set_open(false);
    control.set_open(false);
    write_updates(sim.cluster(0));
    // Without pacing the whole burst is read into the blocked handler's buffer.
    eventually("the unpaced informer read every update", WAIT, || {
        modified_read(&unpaced) == UPDATES as u64
    })
    .await;
    eventually("all of them buffered for the unpaced handler", WAIT, || {
        control.backlog(&unpaced) == UPDATES
    })
    .await;
    eventually("the paced handler is behind", WAIT, || {
        slow.backlog(&paced) >= READ_AHEAD
    })
    .await;
    let read = modified_read(&paced);
    assert!(
        read < UPDATES as u64,
        "the paced watch stops once its only handler is {READ_AHEAD} behind; it read {read} of {UPDATES}"
    );
    assert!(
        !every_pod_at_last_round(&paced),
        "the paced cache has not seen the end of the burst yet"
    );

    open_and_read_on(&paced, &slow, &control).await;
    paced_factory.shutdown();
    unpaced_factory.shutdown();
}

#[actix_rt::test]
async fn should_keep_reading_while_one_handler_keeps_up() {
    let sim = Sim::start(SimOptions::default()).expect("sim starts");
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", PODS);
    let (factory, informer) = synced_informer(&sim, READ_AHEAD).await;
    let slow = GatedHandler::add(&informer);
    let fast_updates = Arc::new(AtomicUsize::new(0));
    informer.add_handler(
        {
            let fast_updates = fast_updates.clone();
            handler_fn(move |event: Event<Pod>| {
                if matches!(event, Event::Updated { .. }) {
                    fast_updates.fetch_add(1, Ordering::SeqCst);
                }
            })
        },
        HandlerOptions::default(),
    );
    start_and_sync(&factory, &informer).await;
    eventually("the slow handler took its initial list", WAIT, || {
        informer.handler_status(slow.id).is_some_and(|s| s.synced)
    })
    .await;

    slow.set_open(false);
    write_updates(sim.cluster(0));
    eventually("the fast handler got every update", WAIT, || {
        fast_updates.load(Ordering::SeqCst) == UPDATES
    })
    .await;
    assert!(every_pod_at_last_round(&informer), "the cache is current");
    assert_eq!(
        slow.backlog(&informer),
        UPDATES,
        "the slow handler buffers the burst (its peer kept the watch read)"
    );
    slow.set_open(true);
    eventually("the slow handler caught up", WAIT, || {
        slow.updates.load(Ordering::SeqCst) == UPDATES
    })
    .await;
    factory.shutdown();
}

#[actix_rt::test]
async fn should_bound_the_watch_events_behind_a_handlers_initial_list() {
    let sim = Sim::start(SimOptions::default()).expect("sim starts");
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", PODS);
    let (paced_factory, paced) = synced_informer(&sim, READ_AHEAD).await;
    let (unpaced_factory, unpaced) = synced_informer(&sim, 0).await;
    // Both handlers block on their first initial event: neither takes its list until opened.
    let replaying = GatedHandler::add(&paced);
    let control = GatedHandler::add(&unpaced);
    replaying.set_open(false);
    control.set_open(false);
    start_and_sync(&paced_factory, &paced).await;
    start_and_sync(&unpaced_factory, &unpaced).await;

    write_updates(sim.cluster(0));
    // Without pacing the whole burst is read behind the handler's unfinished list.
    eventually("the unpaced informer read every update", WAIT, || {
        modified_read(&unpaced) == UPDATES as u64
    })
    .await;
    eventually(
        "the paced watch brought its slack behind the list",
        WAIT,
        || modified_read(&paced) >= READ_AHEAD as u64,
    )
    .await;
    let status = paced.handler_status(replaying.id).expect("handler known");
    assert!(!status.synced, "the handler is still on its initial list");
    let read = modified_read(&paced);
    assert!(
        read < UPDATES as u64,
        "the paced watch stops once {READ_AHEAD} events wait behind the only handler's list; it read {read} of {UPDATES}"
    );

    open_and_read_on(&paced, &replaying, &control).await;
    paced_factory.shutdown();
    unpaced_factory.shutdown();
}
