//! P4: K parts of a program ask the `panoptes_runtime::Runtime` for the pod informer of one
//! cluster — each its own `runtime.informer::<Pod>()` call with its own handler, the way
//! independent controllers in one process would — and the server must see exactly one list
//! and one watch. The dedup measured is the process-wide pipeline registry's
//! (`panoptes_actors::registry`), reached through the runtime as users reach it. Two more
//! configured entries name the same server and user under other names: they too must
//! share the one pipeline. Counters come from the server process's command channel; fewer
//! pods than one list page (500), so one list is one request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::HandlerOptions;

use crate::Sizes;
use crate::contenders::{PanoptesRuntime, SYNC_PATIENCE};
use crate::report::Line;
use crate::server_process::ServerProcess;

/// How long to keep watching the counters after the first watch for a second one.
const QUIET: Duration = Duration::from_millis(1500);

/// Configured names for the server's one cluster (same context: same server, same user).
const ENTRIES: [&str; 3] = ["east", "east-alias", "east-again"];

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let (k, pods) = (sizes.p4_requests, sizes.p4_pods);
    let mut server = ServerProcess::spawn(1, pods, pin)?;
    let entries: Vec<(String, String)> = ENTRIES
        .iter()
        .map(|name| (name.to_string(), "sim-1".to_string()))
        .collect();
    let panoptes = PanoptesRuntime::start(server.kubeconfig(), &entries, "").await?;
    let runtime = &panoptes.runtime;

    let delivered: Vec<Arc<AtomicUsize>> = (0..k).map(|_| Arc::default()).collect();
    let parts: Vec<_> = delivered
        .iter()
        .map(|count| {
            let informer = runtime.informer::<Pod>();
            let count = count.clone();
            informer.add_handler_fn(
                move |_| {
                    count.fetch_add(1, Ordering::Relaxed);
                },
                HandlerOptions::default(),
            );
            informer
        })
        .collect();
    for part in &parts {
        let synced = part.wait_all_synced(SYNC_PATIENCE).await;
        ensure!(
            synced.len() == ENTRIES.len() && synced.values().all(|ok| *ok),
            "P4: a part did not sync: {synced:?}"
        );
    }
    // Every part's handler gets every pod once per configured entry.
    let expected = pods * ENTRIES.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered
        .iter()
        .any(|count| count.load(Ordering::Relaxed) < expected)
    {
        if Instant::now() > deadline {
            let got: Vec<usize> = delivered
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
            bail!("P4: handlers got {got:?} initial events, {expected} each expected");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.pod_counters(0)?.1 == 0 {
        if Instant::now() > deadline {
            bail!("P4: no watch reached the server within 10 s of the sync");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(QUIET).await;
    let (lists, watches) = server.pod_counters(0)?;
    let pipelines = runtime.registry().len();
    drop(parts);
    lines.push(
        Line::new(
            "P4",
            format!(
                "{k} parts each call `Runtime::informer::<Pod>()` + add a handler; {} config entries reach the same server and user ({pods} pods)",
                ENTRIES.len()
            ),
        )
        .result(format!(
            "server saw {lists} list, {watches} watch; {pipelines} pipeline in the registry; every handler got {expected} initial events"
        ))
        .against(
            format!("{lists} + {watches}"),
            "exactly 1 list + 1 watch",
            lists == 1 && watches == 1,
        ),
    );
    Ok(())
}
