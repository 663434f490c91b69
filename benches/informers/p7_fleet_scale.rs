//! P7, fleet scale: one `panoptes_runtime::Runtime` holding a fleet of clusters (full mode:
//! 50 × 10 000 realistic pods = 500k) through one multi-cluster pod informer in compact
//! mode, with one handler; then 1 000 updates/s spread over the fleet for 60 s.
//!
//! The clusters live in one server process (`churn <rate/s> <seconds>` of
//! `server_process.rs` spreads stamped updates over every cluster), reached through its
//! kubeconfig as a user's `clusters.toml` would (no embedded clusters: their memory would
//! be counted as the runtime's). Measured:
//! - seeding time of the server (reported, not judged);
//! - time until every cluster's cache is synced (goal ≤ 5 min);
//! - this process's RSS (`/proc/self/statm`) once a second into a series (`p7.svg`); the
//!   steady-state figure is the highest RSS seen during the churn (goal ≤ 6 GiB), which
//!   starts once the runtime gave back the heap the sync freed (`[runtime]
//!   release_heap_after_sync = true`, `heap_release::SETTLE` after the last sync); the sync's
//!   peak is reported beside it. The runtime lets [`CONCURRENT_LISTS`] lists gather at once
//!   (`[runtime] concurrent_lists`);
//! - the handler's backlog (summed over clusters) when the churn starts and when it ends,
//!   and the mean event latency of the churn from the handler's latency histograms
//!   (goal: the backlog does not grow);
//! - every written update reaches the handler (checked, with a deadline).
//!
//! kube-runtime is not run at this size (a store of 500k default pods is ~28 GB): its heap
//! per pod at P3's size (P3's figure when this run has it, else measured here) × the fleet's
//! pods is reported as an extrapolation line.
//!
//! Bounded: the whole row fails after [`ROW_LIMIT`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{CacheMode, Event, HandlerOptions};
use panoptes_runtime::{ClusterInformerStatus, InformerSpec, MultiInformer};
use parking_lot::Mutex;

use crate::Sizes;
use crate::charts::{self, P7Series};
use crate::contenders::{KubeRuntimePods, PanoptesRuntime, warm_server};
use crate::counting_alloc::{HeapSnapshot, release_free_memory};
use crate::report::Line;
use crate::server_process::{STAMP, ServerProcess};

/// The whole row (seeding, sync, churn, drain) must finish within this, or it fails.
const ROW_LIMIT: Duration = Duration::from_secs(600);
/// The sync goal.
const SYNC_GOAL: Duration = Duration::from_secs(300);
/// The RSS goal at steady state.
const RSS_GOAL: u64 = 6 << 30;
/// `[runtime] concurrent_lists` of the fleet's runtime: a list holds its decoded pods until
/// its last page, so fifty at once would hold the whole fleet decoded (`list_gate.rs`).
const CONCURRENT_LISTS: usize = 4;
/// How long the handler may take to take in the initial lists after the sync, and to
/// receive the last update after the churn ends.
const DRAIN_PATIENCE: Duration = Duration::from_secs(60);

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let started = Instant::now();
    let (clusters, pods) = (sizes.p7_clusters, sizes.p7_pods);
    // The server process is spawned (and seeds) on a blocking thread so the limit holds
    // there too; the server dies with its handle if the row gives up.
    let seeding = tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        ServerProcess::spawn(clusters, pods, pin).map(|server| (server, began.elapsed()))
    });
    let (server, seeded_in) = tokio::time::timeout(ROW_LIMIT, seeding)
        .await
        .context("P7: seeding the fleet took longer than the row's limit")?
        .context("P7: the seeding thread")??;
    eprintln!(
        "P7: server seeded {clusters} × {pods} pods in {:.1} s",
        seeded_in.as_secs_f64()
    );
    let left = ROW_LIMIT.saturating_sub(started.elapsed());
    let measured = tokio::time::timeout(left, fleet(sizes, server, seeded_in))
        .await
        .with_context(|| format!("P7 did not finish within {ROW_LIMIT:?}"))??;
    let kube_per_pod = kube_runtime_per_pod(sizes, pin).await?;
    report(sizes, &measured, kube_per_pod, lines);
    Ok(())
}

/// What [`fleet`] measured.
struct Measured {
    seeded_in: Duration,
    synced_in: Duration,
    baseline_rss: u64,
    /// The highest RSS from the start of the runtime to the end of the sync's settling.
    sync_peak_rss: u64,
    steady_rss: u64,
    backlog_start: usize,
    backlog_end: usize,
    backlog_most: usize,
    written: u64,
    written_per_sec: f64,
    mean_latency_ms: f64,
}

async fn fleet(
    sizes: &Sizes,
    mut server: ServerProcess,
    seeded_in: Duration,
) -> anyhow::Result<Measured> {
    let (clusters, pods) = (sizes.p7_clusters, sizes.p7_pods);
    release_free_memory();
    let baseline_rss = rss_bytes();
    let sampler = RssSampler::start();
    let entries: Vec<(String, String)> = (1..=clusters)
        .map(|i| (format!("c{i}"), format!("sim-{i}")))
        .collect();
    let fleet_settings =
        format!("concurrent_lists = {CONCURRENT_LISTS}\nrelease_heap_after_sync = true\n");
    let panoptes = PanoptesRuntime::start(server.kubeconfig(), &entries, &fleet_settings).await?;
    let sync_began = Instant::now();
    let informer: MultiInformer<Pod> = panoptes.runtime.informer_with(InformerSpec {
        cache: CacheMode::Compact,
        ..Default::default()
    });
    let updates = Arc::new(AtomicU64::new(0));
    let counted = updates.clone();
    let handler = informer.add_handler_fn(
        move |event: Event<Pod>| {
            if let Event::Updated { new, .. } = &event
                && new
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(STAMP))
            {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        },
        HandlerOptions::default(),
    );
    let synced = informer.wait_all_synced(ROW_LIMIT).await;
    let synced_in = sync_began.elapsed();
    if let Some((cluster, _)) = synced.iter().find(|(_, ok)| !**ok) {
        bail!("P7: cluster {cluster} did not sync");
    }
    ensure!(
        synced.len() == clusters,
        "P7: {} clusters synced, not {clusters}",
        synced.len()
    );
    for status in informer.status() {
        ensure!(
            status.objects == pods,
            "P7: {} caches {} pods, not {pods}",
            status.cluster,
            status.objects
        );
    }
    // Steady state: the handler has taken in every cluster's initial list.
    let deadline = Instant::now() + DRAIN_PATIENCE;
    while backlog(&informer.status()) > 0 {
        if Instant::now() > deadline {
            bail!("P7: the handler still holds initial events {DRAIN_PATIENCE:?} after the sync");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let synced_at = sampler.now();
    eprintln!(
        "P7: {clusters} clusters synced in {:.1} s, RSS {} MiB",
        synced_in.as_secs_f64(),
        rss_bytes() >> 20
    );
    // The runtime gives the heap the sync freed back `SETTLE` after the last cache synced
    // (`panoptes_actors::heap_release`); steady state starts after that.
    tokio::time::sleep(panoptes_actors::heap_release::SETTLE + Duration::from_secs(2)).await;
    let sync_peak_rss = sampler.most_since(0.0);

    // The churn: backlog and latency histograms at its start and end.
    let before = informer.status();
    let backlog_start = backlog(&before);
    let (count_before, sum_before) = latency_totals(&before, handler);
    let churn_from = sampler.now();
    server.command(&format!("churn {} {}", sizes.p7_rate, sizes.p7_seconds))?;
    let churn_ends = Instant::now() + Duration::from_secs_f64(sizes.p7_seconds);
    let mut backlog_most = backlog_start;
    while Instant::now() < churn_ends {
        tokio::time::sleep(Duration::from_millis(500)).await;
        backlog_most = backlog_most.max(backlog(&informer.status()));
    }
    let after = informer.status();
    let backlog_end = backlog(&after);
    let churn_to = sampler.now();
    let steady_rss = sampler.most_since(churn_from);
    let (written, writing_nanos) = written(&mut server)?;
    let deadline = Instant::now() + DRAIN_PATIENCE;
    while updates.load(Ordering::Relaxed) < written {
        if Instant::now() > deadline {
            bail!(
                "P7: the handler got {} of {written} updates {DRAIN_PATIENCE:?} after the churn",
                updates.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (count_after, sum_after) = latency_totals(&informer.status(), handler);
    let events = count_after.saturating_sub(count_before).max(1);
    let mean_latency_ms = (sum_after - sum_before) / events as f64 * 1e3;
    drop(informer);
    drop(panoptes);
    let rss = sampler.stop();
    charts::record_p7(P7Series {
        title: format!(
            "P7: runtime RSS, {clusters} clusters × {pods} pods, then {:.0} updates/s for {:.0} s",
            sizes.p7_rate, sizes.p7_seconds
        ),
        rss,
        synced_at: Some(synced_at),
        churn: Some((churn_from, churn_to)),
        goal_bytes: RSS_GOAL,
    });
    Ok(Measured {
        seeded_in,
        synced_in,
        baseline_rss,
        sync_peak_rss,
        steady_rss,
        backlog_start,
        backlog_end,
        backlog_most,
        written,
        written_per_sec: written as f64 / (writing_nanos as f64 / 1e9).max(1e-9),
        mean_latency_ms,
    })
}

/// `(updates written, nanoseconds spent writing)` of the server's current job.
fn written(server: &mut ServerProcess) -> anyhow::Result<(u64, u64)> {
    let answer = server.command("written")?;
    match answer.split_whitespace().collect::<Vec<_>>().as_slice() {
        [n, nanos] => Ok((n.parse()?, nanos.parse()?)),
        _ => bail!("unreadable `written` answer {answer:?}"),
    }
}

/// Events buffered for the informer's handlers, over every cluster.
fn backlog(statuses: &[ClusterInformerStatus]) -> usize {
    statuses.iter().map(|s| s.backlog).sum()
}

/// `(events, seconds)` the handler's latency histograms hold, over every cluster.
fn latency_totals(
    statuses: &[ClusterInformerStatus],
    handler: panoptes_runtime::MultiHandlerId,
) -> (u64, f64) {
    statuses
        .iter()
        .flat_map(|s| s.handlers.iter())
        .filter(|h| h.handler == handler)
        .fold((0, 0.0), |(n, sum), h| {
            (n + h.latency.count, sum + h.latency.sum_seconds)
        })
}

/// kube-runtime's heap per pod (default store): P3's figure when this run measured it, else
/// measured here at P3's size.
async fn kube_runtime_per_pod(sizes: &Sizes, pin: bool) -> anyhow::Result<(f64, &'static str)> {
    if let Some(bytes) = charts::kube_runtime_bytes_per_pod() {
        return Ok((bytes, "P3's figure"));
    }
    let pods = sizes.p3_pods;
    let (_server, client) = warm_server(pods, pin).await?;
    release_free_memory();
    let before = HeapSnapshot::now();
    let store = KubeRuntimePods::sync(client, false, 0).await?;
    ensure!(
        store.reader.len() == pods,
        "kube-runtime cached {} pods",
        store.reader.len()
    );
    let held = HeapSnapshot::now().since(before);
    drop(store);
    Ok((held.bytes as f64 / pods as f64, "measured by P7"))
}

fn report(
    sizes: &Sizes,
    m: &Measured,
    (kube_per_pod, source): (f64, &'static str),
    lines: &mut Vec<Line>,
) {
    let (clusters, pods) = (sizes.p7_clusters, sizes.p7_pods);
    let fleet = clusters * pods;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    lines.push(
        Line::new(
            "P7",
            format!(
                "fleet: {clusters} clusters × {pods} pods ({fleet}) in one `Runtime`, time to all synced"
            ),
        )
        .result(format!(
            "{:.1} s (server seeded in {:.1} s)",
            m.synced_in.as_secs_f64(),
            m.seeded_in.as_secs_f64()
        ))
        .against(
            format!("{:.2}× goal", m.synced_in.as_secs_f64() / SYNC_GOAL.as_secs_f64()),
            "≤ 5 min",
            m.synced_in <= SYNC_GOAL,
        ),
    );
    lines.push(
        Line::new(
            "P7",
            format!(
                "… runtime RSS at steady state (most during {:.0} updates/s for {:.0} s)",
                sizes.p7_rate, sizes.p7_seconds
            ),
        )
        .result(format!(
            "{:.2} GiB ({:.1} KB/pod; peak {:.2} GiB during the sync with {CONCURRENT_LISTS} lists at once, {:.2} GiB before the runtime)",
            gib(m.steady_rss),
            m.steady_rss.saturating_sub(m.baseline_rss) as f64 / fleet as f64 / 1024.0,
            gib(m.sync_peak_rss),
            gib(m.baseline_rss)
        ))
        .against(
            format!("{:.2}× goal", m.steady_rss as f64 / RSS_GOAL as f64),
            "≤ 6 GiB",
            m.steady_rss <= RSS_GOAL,
        ),
    );
    // Growth allowed: one second of updates (what a handler that keeps up may hold at a
    // sampling instant), so a backlog only fails when it builds up.
    let allowed = m.backlog_start + sizes.p7_rate as usize;
    lines.push(
        Line::new("P7", "… handler backlog at the churn's start and end")
            .result(format!(
                "{} → {} events (most {}); {} updates written at {:.0}/s, all handled, mean latency {:.2} ms",
                m.backlog_start,
                m.backlog_end,
                m.backlog_most,
                m.written,
                m.written_per_sec,
                m.mean_latency_ms
            ))
            .against(
                format!("{:+} events", m.backlog_end as i64 - m.backlog_start as i64),
                "no growth (≤ 1 s of updates)",
                m.backlog_end <= allowed,
            ),
    );
    lines.push(
        Line::new(
            "P7",
            format!(
                "… kube-runtime (not run): its default store's heap per pod at {} pods, × {fleet} pods",
                sizes.p3_pods
            ),
        )
        .result(format!(
            "{:.1} KB/pod ({source}) → {:.1} GiB for {fleet} pods, heap only",
            kube_per_pod / 1024.0,
            kube_per_pod * fleet as f64 / (1u64 << 30) as f64
        )),
    );
}

/// This process's resident set in bytes (0 when /proc is unavailable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Samples [`rss_bytes`] once a second on its own thread (the runtime's threads may be busy
/// exactly when the figure matters).
struct RssSampler {
    began: Instant,
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> Self {
        let began = Instant::now();
        let samples = Arc::new(Mutex::new(vec![(0.0, rss_bytes())]));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = began + Duration::from_secs(1);
                while !stop.load(Ordering::Relaxed) {
                    // Short naps so `stop` is seen within 50 ms.
                    std::thread::sleep(Duration::from_millis(50));
                    if Instant::now() >= next {
                        samples
                            .lock()
                            .push((began.elapsed().as_secs_f64(), rss_bytes()));
                        next += Duration::from_secs(1);
                    }
                }
            })
        };
        Self {
            began,
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// Seconds since the sampler started (the series' clock).
    fn now(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

    /// The highest sample from `from` (seconds) on, and the RSS now.
    fn most_since(&self, from: f64) -> u64 {
        self.samples
            .lock()
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, b)| *b)
            .fold(rss_bytes(), u64::max)
    }

    /// Stops sampling; returns the series.
    fn stop(mut self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.samples.lock())
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
