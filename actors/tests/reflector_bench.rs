//! Initial-sync time of the reflector versus kube-runtime's `watcher` + `reflector` store,
//! against the embedded API server. Ignored by default (it is a measurement, not a check):
//!
//! ```text
//! REFLECTOR_BENCH_PODS=100000 cargo test --release -p panoptes-actors --test reflector_bench -- --ignored --nocapture
//! ```

mod sim_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::reflector::{
    Reflector, ReflectorBatch, ReflectorConfig, ReflectorDelta, StopReflector,
};
use panoptes_sim::{Sim, SimCluster, SimOptions};
use parking_lot::Mutex;
use sim_support::client;

/// Counts the objects of the first Replace it receives.
struct FirstReplace(Arc<Mutex<Option<usize>>>);

impl Actor for FirstReplace {
    type Context = Context<Self>;
}

impl Handler<ReflectorBatch<Pod>> for FirstReplace {
    type Result = ();
    fn handle(&mut self, msg: ReflectorBatch<Pod>, _: &mut Context<Self>) {
        for delta in msg.deltas {
            if let ReflectorDelta::Replace { objects, .. } = delta {
                self.0.lock().get_or_insert(objects.len());
            }
        }
    }
}

async fn panoptes_sync(cluster: &SimCluster, pods: usize, streaming: bool) -> Duration {
    let seen = Arc::new(Mutex::new(None));
    let sink = FirstReplace(seen.clone()).start();
    let started = Instant::now();
    let config = ReflectorConfig {
        streaming_lists: streaming,
        ..ReflectorConfig::default()
    };
    let reflector = Reflector::new(
        ClusterId::from("sim-1"),
        "v1/pods".to_owned(),
        kube::Api::<Pod>::all(client(cluster).await),
        config,
        sink.recipient(),
        None,
    )
    .start();
    let deadline = started + Duration::from_secs(600);
    while seen.lock().is_none() {
        assert!(Instant::now() < deadline, "no sync within 10 minutes");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    assert_eq!(*seen.lock(), Some(pods));
    reflector.do_send(StopReflector);
    elapsed
}

async fn kube_runtime_sync(cluster: &SimCluster, pods: usize, streaming: bool) -> Duration {
    let started = Instant::now();
    let (reader, writer) = reflector::store::<Pod>();
    let mut config = watcher::Config::default();
    if streaming {
        config = config.streaming_lists();
    }
    let stream = watcher(kube::Api::<Pod>::all(client(cluster).await), config).reflect(writer);
    let task = tokio::spawn(stream.applied_objects().for_each(|_| async {}));
    reader.wait_until_ready().await.expect("store ready");
    let elapsed = started.elapsed();
    assert_eq!(reader.len(), pods);
    task.abort();
    elapsed
}

#[actix_rt::test]
#[ignore = "a measurement; run with --ignored --nocapture (and --release)"]
async fn initial_sync_against_kube_runtime() {
    let pods: usize = std::env::var("REFLECTOR_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let sim = Sim::start(SimOptions::default()).expect("sim starts");
    let cluster = sim.cluster(0);
    panoptes_sim::pods::seed(&cluster.store(), "default", pods);
    let rounds: usize = std::env::var("REFLECTOR_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    for round in 0..rounds {
        let ours = panoptes_sync(cluster, pods, false).await;
        let theirs = kube_runtime_sync(cluster, pods, false).await;
        let ours_streaming = panoptes_sync(cluster, pods, true).await;
        let theirs_streaming = kube_runtime_sync(cluster, pods, true).await;
        println!(
            "round {round}: {pods} pods list+watch: panoptes {ours:?}, kube-runtime {theirs:?}; \
             streaming: panoptes {ours_streaming:?}, kube-runtime {theirs_streaming:?}"
        );
    }
}
