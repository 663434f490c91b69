//! One handler actor for the pods of every cluster in a `clusters.toml`.
//!
//! ```text
//! cargo run --example multi_cluster                       # ./clusters.toml (3 embedded clusters), 10 s
//! cargo run --example multi_cluster -- --config my.toml --seconds 60
//! ```
//!
//! The pieces to copy: load the config, `Runtime::start`, `runtime.informer::<Pod>()`, an
//! actor with `impl Handler<Event<Pod>>` added with `add_handler`, per-cluster sync and reads.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{Event, HandlerOptions, ids::ClusterId};
use panoptes_runtime::Runtime;
use panoptes_runtime::config::ConfigArgs;

/// Counts pod events per cluster; every event names the cluster it came from.
#[derive(Default)]
struct PodCounter {
    per_cluster: BTreeMap<ClusterId, u64>,
}

impl Actor for PodCounter {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for PodCounter {
    type Result = ();

    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) {
        let seen = self.per_cluster.entry(event.cluster().clone()).or_default();
        *seen += 1;
        if let Event::Deleted { .. } = event {
            println!("[{}] deleted {}", event.cluster(), event.key());
        }
    }
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.config.load()?;
    System::new().block_on(async move {
        let runtime = Runtime::start(&config).await?;
        let pods = runtime.informer::<Pod>();
        let counter = PodCounter::default().start();
        pods.add_handler(counter.recipient(), HandlerOptions::default());

        for (cluster, synced) in pods.wait_all_synced(Duration::from_secs(30)).await {
            let cached = pods.list(&cluster).map_or(0, |p| p.len());
            println!("{cluster}: synced={synced}, {cached} pods cached");
        }
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        println!("{} pods across all clusters", pods.list_all().len());
        runtime.shutdown();
        Ok(())
    })
}
