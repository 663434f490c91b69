//! P1: time from start to a synced cache of N realistic pods (managedFields as sim makes
//! them), Panoptes against kube-runtime's watcher + reflector store and against fetching and
//! decoding the same pages without caching. Each contender runs `rounds` times, alternating;
//! the best time of each counts (the least disturbed by the other tenants of the machine).

use std::time::Duration;

use anyhow::ensure;

use crate::Sizes;
use crate::contenders::{KubeRuntimePods, PanoptesPods, fetch_and_decode, warm_server};
use crate::counting_alloc::{HeapSnapshot, release_free_memory, rss_mib, settle_heap};

use crate::report::Line;

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let pods = sizes.p1_pods;
    let (_server, client) = warm_server(pods, pin).await?;

    let (mut ours, mut theirs, mut floor) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for round in 0..sizes.p1_rounds {
        // Every contender starts from a trimmed heap, so none inherits pages another freed
        // (faulting in fresh pages is a large part of building a cache of 100k pods).
        release_free_memory();
        let baseline = HeapSnapshot::now();
        let (n, took) = fetch_and_decode(&client).await?;
        ensure!(n == pods, "decode-only saw {n} pods");
        floor = floor.min(took);
        release_free_memory();

        let kr = KubeRuntimePods::sync(client.clone(), false, 0).await?;
        ensure!(
            kr.reader.len() == pods,
            "kube-runtime cached {} pods",
            kr.reader.len()
        );
        theirs = theirs.min(kr.synced_after);
        let kr_took = kr.synced_after;
        drop(kr);
        settle(baseline, "kube-runtime").await;

        let p = PanoptesPods::sync(client.clone(), "sim-1", |_| {}).await?;
        ensure!(p.cached() == pods, "Panoptes cached {} pods", p.cached());
        ours = ours.min(p.synced_after);
        let p_took = p.synced_after;
        drop(p);
        settle(baseline, "Panoptes").await;
        eprintln!(
            "P1 round {round}: decode-only {took:?}, kube-runtime {kr_took:?}, Panoptes {p_took:?} (client RSS now {} MiB)",
            rss_mib()
        );
    }
    crate::charts::record_p1(crate::charts::P1Times {
        pods,
        panoptes: ours.as_secs_f64(),
        kube_runtime: theirs.as_secs_f64(),
        fetch_decode: floor.as_secs_f64(),
    });
    let vs_kube = ours.as_secs_f64() / theirs.as_secs_f64();
    let vs_floor = ours.as_secs_f64() / floor.as_secs_f64();
    let result = format!(
        "Panoptes {:.2} s, kube-runtime {:.2} s, fetch+decode {:.2} s",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        floor.as_secs_f64()
    );
    lines.push(
        Line::new(
            "P1",
            format!(
                "initial sync of {pods} pods, time to synced (best of {})",
                sizes.p1_rounds
            ),
        )
        .result(result)
        .against(
            format!("{vs_kube:.2}× kube-runtime"),
            "≤ 0.8× kube-runtime",
            vs_kube <= 0.8,
        ),
    );
    lines.push(
        Line::new(
            "P1",
            "… against fetch+decode only (same pages, nothing cached)",
        )
        .result(format!(
            "kube-runtime is {:.2}× fetch+decode",
            theirs.as_secs_f64() / floor.as_secs_f64()
        ))
        .against(
            format!("{vs_floor:.2}× fetch+decode"),
            "≤ 1.3× fetch+decode",
            vs_floor <= 1.3,
        ),
    );
    Ok(())
}

/// Waits until a dropped contender's cache is really freed (its last `Arc`s may live on in a
/// task or an arbiter for a while), then returns the memory to the OS.
async fn settle(baseline: HeapSnapshot, contender: &str) {
    if !settle_heap(baseline).await {
        eprintln!("P1: {contender}'s heap was not freed in time; the next timing may overlap it");
    }
    release_free_memory();
}
