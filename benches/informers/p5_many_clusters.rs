//! P5: one Panoptes pod informer per cluster for n clusters of one server process (every
//! cluster its own HTTPS listener, CA and token), all started at once; time until every
//! cache holds its pods. Then the same with the last cluster stalled (every request to it
//! waits 10 minutes): the other clusters' sync time must not move.
//!
//! All clusters live in ONE separate server process (its own tokio runtime, 2 threads).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{FactoryOptions, Informer, InformerFactory, ids::ClusterId};

use crate::Sizes;
use crate::contenders::{SYNC_PATIENCE, client};
use crate::report::Line;
use crate::server_process::ServerProcess;

const STALL_MS: u64 = 600_000;

/// Starts one factory per cluster in `clusters` and returns the time until those in
/// `must_sync` synced (each checked to hold `pods` pods).
async fn sync_clusters(
    server: &ServerProcess,
    clusters: usize,
    must_sync: usize,
    pods: usize,
) -> anyhow::Result<Duration> {
    let mut factories: Vec<(InformerFactory, Informer<Pod>)> = Vec::new();
    for i in 1..=clusters {
        let name = format!("sim-{i}");
        let factory = InformerFactory::new(
            client(server.kubeconfig(), &name).await?,
            ClusterId::new(name),
            FactoryOptions::default(),
        );
        let informer = factory.informer::<Pod>();
        factories.push((factory, informer));
    }
    let started = Instant::now();
    for (factory, _) in &factories {
        factory.start();
    }
    let waits = factories[..must_sync]
        .iter()
        .map(|(factory, _)| factory.wait_for_cache_sync(SYNC_PATIENCE));
    let synced = join_all(waits).await;
    let took = started.elapsed();
    for (factory, _) in &factories {
        factory.shutdown();
    }
    if !synced.iter().all(|s| s.values().all(|ok| *ok)) {
        bail!("P5: not every cluster synced within {SYNC_PATIENCE:?}");
    }
    for (_, informer) in &factories[..must_sync] {
        let cached = informer.store().list().len();
        ensure!(
            cached == pods,
            "{} cached {cached} pods, not {pods}",
            informer.cluster()
        );
    }
    Ok(took)
}

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let pods = sizes.p5_pods;
    let most = *sizes.p5_steps.last().expect("P5 steps");
    let mut server = ServerProcess::spawn(most, pods, pin)?;
    let mut times = Vec::new();
    for &n in &sizes.p5_steps {
        let took = sync_clusters(&server, n, n, pods).await?;
        eprintln!("P5: {n} clusters × {pods} pods synced in {took:?}");
        times.push((n, took));
    }
    server.command(&format!("latency {} {STALL_MS}", most - 1))?;
    let stalled = sync_clusters(&server, most, most - 1, pods).await;
    server.command(&format!("latency {} 0", most - 1))?;
    let stalled = stalled?;

    let per_cluster = |(n, t): (usize, Duration)| t.as_secs_f64() / n as f64;
    let (mid, last) = (times[times.len() - 2], times[times.len() - 1]);
    let growth = per_cluster(last) / per_cluster(mid);
    let listing: Vec<String> = times
        .iter()
        .map(|(n, t)| format!("{n}: {:.2} s", t.as_secs_f64()))
        .collect();
    lines.push(
        Line::new(
            "P5",
            format!("clusters × {pods} pods synced at once (one informer per cluster)"),
        )
        .result(listing.join(", "))
        .against(
            format!("{growth:.2}× time per cluster ({} vs {})", last.0, mid.0),
            "linear: ≤ 1.25× per-cluster time",
            growth <= 1.25,
        ),
    );
    let delay = stalled.as_secs_f64() / last.1.as_secs_f64();
    lines.push(
        Line::new(
            "P5",
            format!(
                "{} healthy clusters synced while cluster {most} stalls (10 min latency)",
                most - 1
            ),
        )
        .result(format!(
            "{:.2} s (all {most} healthy: {:.2} s)",
            stalled.as_secs_f64(),
            last.1.as_secs_f64()
        ))
        .against(format!("{delay:.2}×"), "≤ 1.2× (no delay)", delay <= 1.2),
    );
    Ok(())
}
