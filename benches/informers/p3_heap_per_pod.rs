//! P3: heap bytes (and live allocations) per cached pod, counted exactly by the counting
//! global allocator: live heap after a synced cache minus live heap before it, divided by
//! the pods. The server runs in another process, so nothing of its heap is counted.
//!
//! Variants: kube-runtime's default store (managedFields kept), kube-runtime with
//! managedFields set to `None` by `.modify()` (what Panoptes' default transform does),
//! Panoptes' default (typed cache), Panoptes with a compact cache, Panoptes with 10 handler
//! actors that have handled the initial list. Then the price of the compact cache on read:
//! lister `get` p50 and a `list` of every pod, typed and compact.

use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::bail;
use k8s_openapi::api::core::v1::Pod;
use kube::core::Selector;
use panoptes_actors::{CacheMode, Event, HandlerOptions, handler_actor};

use crate::Sizes;
use crate::contenders::{KubeRuntimePods, PanoptesPods, warm_server};
use crate::counting_alloc::HeapSnapshot;
use crate::report::Line;

/// Time for transient buffers (pages, sockets' read buffers, actor mailboxes) to be freed.
const SETTLE: Duration = Duration::from_millis(500);

struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for Idle {
    type Result = ();
    fn handle(&mut self, _: Event<Pod>, _: &mut Context<Self>) {}
}

/// Bytes and allocations per pod held by what `sync` returns.
pub(crate) async fn per_pod<T, F>(pods: usize, sync: F) -> anyhow::Result<(f64, f64)>
where
    F: AsyncFnOnce() -> anyhow::Result<T>,
{
    tokio::time::sleep(SETTLE).await;
    let before = HeapSnapshot::now();
    let holder = sync().await?;
    tokio::time::sleep(SETTLE).await;
    let held = HeapSnapshot::now().since(before);
    drop(holder);
    // What the holder left behind once dropped: its figure is only trustworthy if the heap
    // came back to where it was. The residue line below reports it if it does not.
    crate::counting_alloc::settle_heap(before).await;
    crate::counting_alloc::release_free_memory();
    let residue = HeapSnapshot::now().since(before);
    eprintln!(
        "P3: held {:.1} KB/pod; after dropping it {:+.1} KB/pod remain",
        held.bytes as f64 / pods as f64 / 1024.0,
        residue.bytes as f64 / pods as f64 / 1024.0
    );
    Ok((
        held.bytes as f64 / pods as f64,
        held.allocations as f64 / pods as f64,
    ))
}

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let pods = sizes.p3_pods;
    let (_server, client) = warm_server(pods, pin).await?;

    let kube_default = per_pod(pods, async || {
        KubeRuntimePods::sync(client.clone(), false, 0).await
    })
    .await?;
    let kube_stripped = per_pod(pods, async || {
        KubeRuntimePods::sync(client.clone(), true, 0).await
    })
    .await?;
    let ours = per_pod(pods, async || {
        PanoptesPods::sync(client.clone(), "sim-1", |_| {}).await
    })
    .await?;
    let compact = per_pod(pods, async || {
        PanoptesPods::sync_cached(client.clone(), "sim-1", CacheMode::Compact, |_| {}).await
    })
    .await?;
    let ours_handlers = per_pod(pods, async || {
        let mut ids = Vec::new();
        let synced = PanoptesPods::sync(client.clone(), "sim-1", |informer| {
            for _ in 0..10 {
                ids.push(informer.add_handler(handler_actor(|| Idle), HandlerOptions::default()));
            }
        })
        .await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ids.iter().all(|id| synced.informer.handler_has_synced(*id)) {
            if Instant::now() > deadline {
                bail!("10 handlers did not handle the initial list in 120 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(synced)
    })
    .await?;

    for (variant, (bytes, _)) in [
        (crate::charts::KUBE_DEFAULT, kube_default),
        ("kube-runtime, managedFields stripped", kube_stripped),
        ("Panoptes default", ours),
        ("Panoptes + 10 handlers", ours_handlers),
    ] {
        crate::charts::record_p3(variant, bytes);
    }
    let describe =
        |(bytes, allocs): (f64, f64)| format!("{:.1} KB, {allocs:.0} allocs", bytes / 1024.0);
    lines.push(
        Line::new(
            "P3",
            format!(
                "heap per cached pod ({pods} pods): Panoptes default vs kube-runtime default store"
            ),
        )
        .result(format!(
            "Panoptes {}; kube-runtime {}",
            describe(ours),
            describe(kube_default)
        ))
        .against(
            format!("{:.2}×", ours.0 / kube_default.0),
            "≤ 0.25×",
            ours.0 <= 0.25 * kube_default.0,
        ),
    );
    lines.push(
        Line::new(
            "P3",
            "… vs kube-runtime with managedFields stripped the same way",
        )
        .result(format!("kube-runtime stripped {}", describe(kube_stripped)))
        .against(
            format!("{:.2}×", ours.0 / kube_stripped.0),
            "≤ 0.6×",
            ours.0 <= 0.6 * kube_stripped.0,
        ),
    );
    lines.push(
        Line::new(
            "P3",
            "… Panoptes compact cache vs kube-runtime default store",
        )
        .result(format!(
            "Panoptes compact {}; {:.2}× Panoptes typed",
            describe(compact),
            compact.0 / ours.0
        ))
        .against(
            format!(
                "{:.2}×, {:.1} KB",
                compact.0 / kube_default.0,
                compact.0 / 1024.0
            ),
            "≤ 0.15× and ≤ 8 KB",
            compact.0 <= 0.15 * kube_default.0 && compact.0 <= 8.0 * 1024.0,
        ),
    );
    for mode in [CacheMode::Typed, CacheMode::Compact] {
        let before = HeapSnapshot::now();
        let informer = PanoptesPods::sync_cached(client.clone(), "sim-1", mode, |_| {}).await?;
        quiet(&informer).await?;
        let reads = crate::counting_alloc::uncounted(|| lister_reads(&informer));
        drop(informer);
        // The cache is freed on the informer's arbiter after the drop: not during the next
        // mode's timing.
        crate::counting_alloc::settle_heap(before).await;
        let goal = mode == CacheMode::Typed
            || (reads.get_p50 <= Duration::from_micros(20)
                && reads.list_per_5000 <= Duration::from_millis(100));
        lines.push(
            Line::new("P3", format!("… lister reads, {mode} cache ({pods} pods)"))
                .result(format!(
                    "get p50 {:.1} µs; list of all {pods} {:.1} ms = {:.1} ms per 5 000",
                    reads.get_p50.as_secs_f64() * 1e6,
                    reads.list_all.as_secs_f64() * 1e3,
                    reads.list_per_5000.as_secs_f64() * 1e3
                ))
                .against(
                    format!(
                        "get {:.1} µs, list {:.1} ms per 5 000",
                        reads.get_p50.as_secs_f64() * 1e6,
                        reads.list_per_5000.as_secs_f64() * 1e3
                    ),
                    "compact: get p50 ≤ 20 µs, list ≤ 100 ms (per 5 000 pods)",
                    goal,
                ),
        );
    }
    let growth = ours_handlers.0 / ours.0 - 1.0;
    lines.push(
        Line::new("P3", "… with 10 handler actors (initial list handled)")
            .result(format!(
                "Panoptes + 10 handlers {}",
                describe(ours_handlers)
            ))
            .against(
                format!("{:+.1} %", growth * 100.0),
                "≤ +5 %",
                growth <= 0.05,
            ),
    );
    Ok(())
}

/// Waits (polling, at most 120 s) until the FIFO has the indexer's acknowledgement of the
/// initial list, so the pipeline is idle when reads are timed.
///
/// Why: `wait_for_cache_sync` returns once the list is applied, while the FIFO still holds
/// the list's decoded pods until the acknowledgement and then frees them (20 000 pods × ~130
/// allocations) on the pipeline's arbiter. With the client pinned to one CPU that freeing can
/// run beside the first timed `get`s. (The "8.5 µs per pod" a `list` once seemed to cost
/// beside a 40 µs `get`, benches/RESULTS.md 2026-12-02 18:13, was the list's time scaled to
/// 5 000 pods twice; a `list` decodes each pod as a `get` does.)
async fn quiet(informer: &PanoptesPods) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while informer.informer.fifo_status().await?.batch_in_flight {
        if Instant::now() > deadline {
            bail!("the FIFO got no acknowledgement of the initial list in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Lister read times of one synced informer.
struct ListerReads {
    get_p50: Duration,
    /// The median of a few `list(None, everything)`.
    list_all: Duration,
    /// `list_all` scaled to 5 000 pods (the goal's unit).
    list_per_5000: Duration,
}

fn lister_reads(informer: &PanoptesPods) -> ListerReads {
    let lister = informer.informer.lister();
    let names: Vec<(String, String)> = lister
        .list_all()
        .iter()
        .map(|pod| {
            (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut gets: Vec<Duration> = names
        .iter()
        .cycle()
        .take(5_000)
        .map(|(ns, name)| {
            let started = Instant::now();
            let pod = lister.get(Some(ns), name);
            let took = started.elapsed();
            assert!(pod.is_some(), "{ns}/{name} is cached");
            took
        })
        .collect();
    gets.sort();
    let mut lists: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let all = lister.list(None, &Selector::default());
            let took = started.elapsed();
            assert_eq!(all.len(), names.len());
            took
        })
        .collect();
    lists.sort();
    let scale = 5_000.0 / names.len().max(1) as f64;
    let list_all = lists[lists.len() / 2];
    ListerReads {
        get_p50: gets[gets.len() / 2],
        list_all,
        list_per_5000: list_all.mul_f64(scale),
    }
}

/// `__heapcheck`: live heap per pod of one decoded page, Panoptes' decode (managedFields cut
/// from the bytes) against serde_json's decode with managedFields then set to `None`.
pub fn heapcheck() -> anyhow::Result<()> {
    use crate::counting_alloc::HeapSnapshot;
    let items: Vec<serde_json::Value> = (0..500)
        .map(|i| panoptes_sim::pods::realistic_pod("default", &format!("p{i}"), i))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({"metadata": {}, "items": items}))?;
    drop(items);
    let before = HeapSnapshot::now();
    let ours = panoptes_actors::list_watch::decode_page_with::<Pod>(
        &body,
        panoptes_actors::managed_fields::ManagedFields::Drop,
    )?;
    let held_ours = HeapSnapshot::now().since(before);
    let before = HeapSnapshot::now();
    let mut theirs: kube::core::ObjectList<Pod> = serde_json::from_slice(&body)?;
    for pod in &mut theirs.items {
        pod.metadata.managed_fields = None;
    }
    let held_theirs = HeapSnapshot::now().since(before);
    eprintln!(
        "decode cut: {} B/pod {} allocs/pod; decode+strip: {} B/pod {} allocs/pod",
        held_ours.bytes / 500,
        held_ours.allocations / 500,
        held_theirs.bytes / 500,
        held_theirs.allocations / 500
    );
    drop((ours, theirs));
    Ok(())
}
