//! P4: K parts of a program ask one factory for the pod informer; the server must see
//! exactly one list and one watch. The counters are read from the server process over its
//! command channel. Fewer pods than one list page (500), so one list is one request.
//! (The multi-cluster registry had not landed on this branch; only the factory is measured.)

use std::time::{Duration, Instant};

use anyhow::bail;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{
    FactoryOptions, HandlerOptions, InformerFactory, handler_fn, ids::ClusterId,
};

use crate::Sizes;
use crate::contenders::{SYNC_PATIENCE, client};
use crate::report::Line;
use crate::server_process::ServerProcess;

/// How long to keep watching the counters after the first watch for a second one.
const QUIET: Duration = Duration::from_millis(1500);

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let k = sizes.p4_requests;
    let mut server = ServerProcess::spawn(1, sizes.p4_pods, pin)?;
    let factory = InformerFactory::new(
        client(server.kubeconfig(), "sim-1").await?,
        ClusterId::new("sim-1"),
        FactoryOptions::default(),
    );
    let informers: Vec<_> = (0..k).map(|_| factory.informer::<Pod>()).collect();
    for informer in &informers {
        informer.add_handler(handler_fn(|_| {}), HandlerOptions::default());
    }
    factory.start();
    for informer in &informers {
        informer.start();
    }
    let synced = factory.wait_for_cache_sync(SYNC_PATIENCE).await;
    if !synced.values().all(|ok| *ok) {
        bail!("P4: the factory did not sync: {synced:?}");
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
    factory.shutdown();
    lines.push(
        Line::new("P4", format!("{k} requests for the pod informer of one factory, then start + sync ({} pods)", sizes.p4_pods))
            .result(format!("server saw {lists} list, {watches} watch (sim counters via the server's command channel)"))
            .against(format!("{lists} + {watches}"), "exactly 1 list + 1 watch", lists == 1 && watches == 1),
    );
    Ok(())
}
