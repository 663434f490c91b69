//! A clean stop (issue 11): after `Runtime::shutdown`, or after the runtime and its informers
//! are simply dropped, everything it started is gone — pipelines in the registry, pipeline
//! threads (one actix arbiter each), handler actors, watches the servers count as open, and
//! TCP connections to the servers — back to what the process had before the runtime started.
//!
//! Threads are counted in `/proc/self/task`, connections in `/proc/net/tcp` (established
//! sockets to 127.0.0.1 on one of the sims' ports), watches by the sim's own counters.
//! The baseline is taken with the sim already running, so its threads are in it.

mod multicluster_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use multicluster_support::{Clusters, DEADLINE, eventually};
use panoptes_actors::{Event, HandlerOptions};
use panoptes_runtime::{InformerSpec, Runtime};

/// Threads of this process now.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable")
        .count()
}

/// Established TCP connections to 127.0.0.1 on one of `ports` (the sims listen there only).
fn connections_to(ports: &[u16]) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp is readable");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state)) = (fields.get(2), fields.get(3)) else {
                return false;
            };
            let Some((address, port)) = remote.split_once(':') else {
                return false;
            };
            let port = u16::from_str_radix(port, 16).unwrap_or(0);
            // 127.0.0.1 in the kernel's little-endian hex; 01 is ESTABLISHED.
            address == "0100007F" && *state == "01" && ports.contains(&port)
        })
        .count()
}

/// A handler actor counting how many of its kind are alive.
struct Counted(Arc<AtomicUsize>);

impl Actor for Counted {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handler<Event<Pod>> for Counted {
    type Result = ();

    fn handle(&mut self, _event: Event<Pod>, _ctx: &mut Self::Context) {}
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// `Runtime::shutdown`, with the informers still held by the program.
    Shutdown,
    /// Dropping the informers and the runtime, without calling anything.
    Drop,
}

/// Starts a runtime over every cluster with several informers (typed cluster-wide, a
/// namespaced view of it, a `[[watch]]` entry's dynamic one) and handlers (an actor, a
/// closure), lets it sync and open its watches, stops it as `stop` says, and checks that
/// everything returns to the baseline.
async fn run_and_stop(clusters: &Clusters, stop: Stop) {
    let sims = clusters.sim.clusters();
    let ports: Vec<u16> = sims
        .iter()
        .map(|c| c.url().rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let threads_before = threads();
    assert_eq!(
        connections_to(&ports),
        0,
        "no connection before the runtime"
    );
    let live_actors = Arc::new(AtomicUsize::new(0));

    let names: Vec<(String, String)> = sims
        .iter()
        .map(|c| (c.name().to_string(), c.name().to_string()))
        .collect();
    let entries: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let config = clusters.config(&entries);
    let runtime = Runtime::start(&config).await.expect("the runtime starts");
    let pods = runtime.informer::<Pod>();
    let view = runtime.informer_with::<Pod>(InformerSpec {
        namespace: Some("default".into()),
        ..InformerSpec::default()
    });
    let dynamic = runtime.watch(&config.watches[0]);
    pods.add_handler(
        Counted(live_actors.clone()).start().recipient(),
        HandlerOptions::default(),
    );
    view.add_handler_fn(|_event| {}, HandlerOptions::default());
    dynamic.add_handler_fn(|_event| {}, HandlerOptions::default());
    for informer_synced in [
        pods.wait_all_synced(DEADLINE).await,
        view.wait_all_synced(DEADLINE).await,
        dynamic.wait_all_synced(DEADLINE).await,
    ] {
        assert!(informer_synced.values().all(|s| *s), "{informer_synced:?}");
    }
    eventually("every cluster's pod watch is open", || {
        sims.iter().all(|c| c.counters().open_watches("pods") >= 1)
    })
    .await;
    assert!(
        threads() > threads_before,
        "the pipelines run on threads of their own"
    );
    assert!(
        connections_to(&ports) >= sims.len(),
        "the runtime is connected"
    );
    assert_eq!(live_actors.load(Ordering::SeqCst), 1);

    if stop == Stop::Shutdown {
        runtime.shutdown();
        eventually("the registry holds no pipeline", || {
            runtime.registry().is_empty()
        })
        .await;
        eventually("the informers show no cluster", || {
            pods.clusters().is_empty() && view.clusters().is_empty()
        })
        .await;
        released(sims, &ports, threads_before, stop).await;
    }
    // The informers keep their handlers for clusters that may join later; once the program
    // drops them, the handler actors stop.
    drop(pods);
    drop(view);
    drop(dynamic);
    drop(runtime);
    released(sims, &ports, threads_before, stop).await;
    eventually("the handler actor stopped", || {
        live_actors.load(Ordering::SeqCst) == 0
    })
    .await;
}

/// Waits until watches, connections and threads are back to the baseline.
async fn released(
    sims: &[panoptes_sim::SimCluster],
    ports: &[u16],
    threads_before: usize,
    stop: Stop,
) {
    eventually("every watch is closed on every server", || {
        sims.iter().all(|c| c.counters().open_watches("pods") == 0)
    })
    .await;
    eventually("every connection to the servers is closed", || {
        connections_to(ports) == 0
    })
    .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while threads() > threads_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stop:?}: {} threads remain, {threads_before} before the runtime started",
            threads()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn shutdown_returns_threads_watches_connections_and_actors_to_the_baseline() {
    let clusters = Clusters::start(3, 20);
    run_and_stop(&clusters, Stop::Shutdown).await;
    // A second run from the same baseline: nothing accumulates across runs.
    run_and_stop(&clusters, Stop::Shutdown).await;
}

#[actix_rt::test]
async fn dropping_the_runtime_and_its_informers_returns_everything_to_the_baseline() {
    let clusters = Clusters::start(3, 20);
    run_and_stop(&clusters, Stop::Drop).await;
    run_and_stop(&clusters, Stop::Drop).await;
}
