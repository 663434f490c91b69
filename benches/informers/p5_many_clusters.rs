//! P5: one `panoptes_runtime::Runtime` configured with n clusters of one server process
//! (every cluster its own HTTPS listener, CA and token) and one multi-cluster pod informer
//! over all of them (`runtime.informer::<Pod>()`: one pipeline per cluster, opened at
//! once); time until every cluster's cache holds its pods. Then the same with the last
//! cluster stalled (every request to it waits 10 minutes): the other clusters' sync time
//! must not move.
//!
//! All clusters live in ONE separate server process (its own tokio runtime, 2 threads).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::ids::ClusterId;

use crate::Sizes;
use crate::contenders::{PanoptesRuntime, SYNC_PATIENCE};
use crate::report::Line;
use crate::server_process::ServerProcess;

const STALL_MS: u64 = 600_000;

/// Starts a runtime over the first `clusters` clusters and one pod informer over all of
/// them; returns the time until the first `must_sync` synced (each checked to hold `pods`
/// pods).
async fn sync_clusters(
    server: &ServerProcess,
    clusters: usize,
    must_sync: usize,
    pods: usize,
) -> anyhow::Result<Duration> {
    let entries: Vec<(String, String)> = (1..=clusters)
        .map(|i| (format!("c{i}"), format!("sim-{i}")))
        .collect();
    let panoptes = PanoptesRuntime::start(server.kubeconfig(), &entries, "").await?;
    let started = Instant::now();
    let informer = panoptes.runtime.informer::<Pod>();
    let names: Vec<ClusterId> = entries[..must_sync]
        .iter()
        .map(|(name, _)| ClusterId::new(name.as_str()))
        .collect();
    let synced = join_all(
        names
            .iter()
            .map(|name| informer.wait_synced(name, SYNC_PATIENCE)),
    )
    .await;
    let took = started.elapsed();
    if !synced.iter().all(|ok| *ok) {
        bail!("P5: not every cluster synced within {SYNC_PATIENCE:?}");
    }
    for name in &names {
        let cached = informer.list(name).map_or(0, |pods| pods.len());
        ensure!(cached == pods, "{name} cached {cached} pods, not {pods}");
    }
    ensure!(
        informer.clusters().len() == clusters,
        "the informer holds {} clusters, not {clusters}",
        informer.clusters().len()
    );
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
            format!(
                "clusters × {pods} pods synced at once (one `Runtime`, one multi-cluster informer)"
            ),
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
