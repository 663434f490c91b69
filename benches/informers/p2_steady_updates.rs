//! P2: steady updates flowing through the pipeline to 10 handlers.
//!
//! The server process patches a [`STAMP`] annotation (`<generation>:<unix nanos>`) on its
//! pods; every handler reads the stamp of each object it receives. Two phases per contender:
//! - throughput: `W` updates written as fast as the server can; events/s = `W` / (last
//!   handler's receipt of the last update − first write);
//! - latency: updates at 5 000/s (the goal's rate); p50/p99 of (handler receipt − server
//!   write) over every handler and event. Each line also says the rate the server process
//!   actually wrote at: a sim patch of a realistic pod costs ~0.3 ms of the server's one CPU
//!   (before partial writes, which parse only the metadata of an annotation patch),
//!   so it may fall short of 5 000/s and the backlog then builds up at the server, not in the
//!   client. A second latency phase at a rate the server sustains shows the pipeline's own
//!   latency (context, not judged).
//!
//! Panoptes: 10 `handler_actor`s on one pod informer. kube-runtime: `store_shared` +
//! `reflect_shared`, 10 `subscribe()` handles, each drained by its own task (its fan-out).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::bail;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{Event, HandlerOptions, handler_actor};
use parking_lot::Mutex;

use crate::Sizes;
use crate::contenders::{KubeRuntimePods, PanoptesPods, client};
use crate::report::Line;
use crate::server_process::{STAMP, ServerProcess, parse_stamp, unix_nanos};

pub const HANDLERS: usize = 10;

/// What one handler saw of the current generation.
#[derive(Default)]
pub struct Recorder {
    generation: AtomicU64,
    seen: AtomicU64,
    last_receipt: AtomicU64,
    latencies_ns: Mutex<Vec<u64>>,
}

impl Recorder {
    fn begin(&self, generation: u64) {
        self.latencies_ns.lock().clear();
        self.seen.store(0, Ordering::SeqCst);
        self.last_receipt.store(0, Ordering::SeqCst);
        self.generation.store(generation, Ordering::SeqCst);
    }

    fn observe(&self, pod: &Pod) {
        let now = unix_nanos();
        let Some((generation, written)) = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STAMP))
            .and_then(|v| parse_stamp(v))
        else {
            return;
        };
        if generation != self.generation.load(Ordering::Relaxed) {
            return;
        }
        self.latencies_ns.lock().push(now.saturating_sub(written));
        self.last_receipt.store(now, Ordering::Relaxed);
        self.seen.fetch_add(1, Ordering::Release);
    }
}

/// A handler actor that records the stamps of updated objects.
struct Recording(Arc<Recorder>);

impl Actor for Recording {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for Recording {
    type Result = ();
    fn handle(&mut self, event: Event<Pod>, _: &mut Context<Self>) {
        if let Event::Updated { new, .. } = &event {
            self.0.observe(new);
        }
    }
}

/// One phase's outcome.
pub struct Phase {
    pub events_per_sec: f64,
    /// The rate the server actually wrote at (it may fall short of the rate asked for).
    pub written_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Every (handler receipt − server write), sorted: P2's chart (`charts.rs`).
    pub latencies_ns: Vec<u64>,
}

async fn phase(
    server: &mut ServerProcess,
    recorders: &[Arc<Recorder>],
    generation: u64,
    rate: f64,
    writes: u64,
) -> anyhow::Result<Phase> {
    for r in recorders {
        r.begin(generation);
    }
    let first_write = unix_nanos();
    server.command(&format!("write {generation} {rate} {writes}"))?;
    let patience = Duration::from_secs(30) + Duration::from_secs_f64(writes as f64 / rate.min(1e6));
    let deadline = Instant::now() + patience;
    while recorders
        .iter()
        .any(|r| r.seen.load(Ordering::Acquire) < writes)
    {
        if Instant::now() > deadline {
            let delivered: Vec<u64> = recorders
                .iter()
                .map(|r| r.seen.load(Ordering::Relaxed))
                .collect();
            let written = server.command("written")?;
            bail!(
                "handlers got {delivered:?} of {writes} updates (server wrote {written}) within {patience:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let written = server.command("written")?;
    let written_per_sec = match written.split_whitespace().collect::<Vec<_>>().as_slice() {
        [n, nanos] => {
            let n: f64 = n.parse()?;
            let nanos: f64 = nanos.parse()?;
            n / (nanos / 1e9).max(1e-9)
        }
        _ => bail!("unreadable `written` answer {written:?}"),
    };
    let last = recorders
        .iter()
        .map(|r| r.last_receipt.load(Ordering::Relaxed))
        .max()
        .unwrap_or(first_write);
    let mut all: Vec<u64> = recorders
        .iter()
        .flat_map(|r| r.latencies_ns.lock().clone())
        .collect();
    all.sort_unstable();
    let pick = |q: f64| Duration::from_nanos(all[((all.len() - 1) as f64 * q) as usize]);
    let (p50, p99) = (pick(0.50), pick(0.99));
    Ok(Phase {
        events_per_sec: writes as f64 / (Duration::from_nanos(last - first_write).as_secs_f64()),
        written_per_sec,
        p50,
        p99,
        latencies_ns: all,
    })
}

/// Every phase of one contender, in order: throughput, latency at the goal's rate, latency at
/// a rate the server process sustains.
struct Phases {
    throughput: Phase,
    at_goal_rate: Phase,
    sustained: Phase,
}

async fn phases(
    server: &mut ServerProcess,
    recorders: &[Arc<Recorder>],
    first_generation: u64,
    sizes: &Sizes,
) -> anyhow::Result<Phases> {
    let g = first_generation;
    Ok(Phases {
        throughput: phase(server, recorders, g, 1e9, sizes.p2_writes).await?,
        at_goal_rate: phase(
            server,
            recorders,
            g + 1,
            sizes.p2_latency_rate,
            sizes.p2_latency_writes,
        )
        .await?,
        sustained: phase(
            server,
            recorders,
            g + 2,
            sizes.p2_sustained_rate,
            sizes.p2_sustained_writes,
        )
        .await?,
    })
}

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let mut server = ServerProcess::spawn(1, sizes.p2_pods, pin)?;
    let recorders: Vec<Arc<Recorder>> = (0..HANDLERS).map(|_| Arc::default()).collect();

    let ours = {
        let pods = PanoptesPods::sync(
            client(server.kubeconfig(), "sim-1").await?,
            "sim-1",
            |informer| {
                for r in &recorders {
                    let r = r.clone();
                    informer.add_handler(
                        handler_actor(move || Recording(r.clone())),
                        HandlerOptions::default(),
                    );
                }
            },
        )
        .await?;
        let phases = phases(&mut server, &recorders, 1, sizes).await?;
        drop(pods);
        phases
    };
    let theirs = {
        let mut pods =
            KubeRuntimePods::sync(client(server.kubeconfig(), "sim-1").await?, false, HANDLERS)
                .await?;
        let tasks: Vec<_> = pods
            .writer_subscribers
            .drain(..)
            .zip(recorders.iter().cloned())
            .map(|(mut handle, r)| {
                tokio::spawn(async move {
                    while let Some(pod) = handle.next().await {
                        r.observe(&pod);
                    }
                })
            })
            .collect();
        let phases = phases(&mut server, &recorders, 11, sizes).await;
        for t in tasks {
            t.abort();
        }
        phases?
    };

    let (goal_rate, sustained_rate) = (sizes.p2_latency_rate, sizes.p2_sustained_rate);
    for (label, rate, phase) in [
        ("Panoptes", goal_rate, &ours.at_goal_rate),
        ("kube-runtime", goal_rate, &theirs.at_goal_rate),
        ("Panoptes", sustained_rate, &ours.sustained),
        ("kube-runtime", sustained_rate, &theirs.sustained),
    ] {
        crate::charts::record_p2(
            format!("{label}, {rate:.0} updates/s asked"),
            &phase.latencies_ns,
        );
    }
    let ratio = ours.throughput.events_per_sec / theirs.throughput.events_per_sec;
    lines.push(
        Line::new("P2", format!("update throughput, {} writes as fast as the server goes, to {HANDLERS} handlers ({} pods)", sizes.p2_writes, sizes.p2_pods))
            .result(format!(
                "Panoptes {:.0}/s (server wrote {:.0}/s), kube-runtime {:.0}/s (server wrote {:.0}/s)",
                ours.throughput.events_per_sec,
                ours.throughput.written_per_sec,
                theirs.throughput.events_per_sec,
                theirs.throughput.written_per_sec
            ))
            .against(format!("{ratio:.2}×"), "≥ 1.5× kube-runtime", ratio >= 1.5),
    );
    for (rate, writes, ours, theirs, judged) in [
        (
            sizes.p2_latency_rate,
            sizes.p2_latency_writes,
            &ours.at_goal_rate,
            &theirs.at_goal_rate,
            true,
        ),
        (
            sizes.p2_sustained_rate,
            sizes.p2_sustained_writes,
            &ours.sustained,
            &theirs.sustained,
            false,
        ),
    ] {
        let line = Line::new(
            "P2",
            format!(
                "event→handler latency, {rate:.0} updates/s asked ({writes} updates × {HANDLERS} handlers){}",
                if judged { "" } else { ", a rate the server process sustains (context)" }
            ),
        )
        .result(format!(
            "Panoptes p50 {:.2} ms p99 {:.2} ms (server wrote {:.0}/s); kube-runtime p50 {:.2} ms p99 {:.2} ms (server wrote {:.0}/s)",
            ms(ours.p50),
            ms(ours.p99),
            ours.written_per_sec,
            ms(theirs.p50),
            ms(theirs.p99),
            theirs.written_per_sec
        ));
        lines.push(if judged {
            line.against(
                format!("p99 {:.2} ms", ms(ours.p99)),
                "p99 ≤ 5 ms",
                ours.p99 <= Duration::from_millis(5),
            )
        } else {
            line
        });
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
