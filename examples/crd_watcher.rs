//! A custom resource watched over every cluster: the `Backup` type is derived with
//! `#[derive(CustomResource, JsonSchema, ...)]` as in any kube-rs program, its CRD is
//! applied to each embedded cluster that lacks it, and one multi-cluster informer's handler
//! prints every backup event with the cluster it came from.
//!
//! ```text
//! cargo run --example crd_watcher                             # ./clusters.toml, 10 s
//! cargo run --example crd_watcher -- --config my.toml --seconds 60
//! cargo run --example crd_watcher -- --exit-after 6           # stop after 6 events
//! ```
//!
//! On embedded clusters it also creates `--create` backups in `default`, so there is
//! something to see; real clusters need the CRD installed and backups of their own.

#[path = "crd_watcher/backups.rs"]
mod backups;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::System;
use clap::Parser;
use panoptes_runtime::Runtime;
use panoptes_runtime::config::ConfigArgs;

#[derive(Parser)]
#[command(about = "Watch a custom resource (Backup) over every configured cluster")]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// How long to watch, at most.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Stop as soon as this many events arrived.
    #[arg(long)]
    exit_after: Option<usize>,
    /// Backups to create in `default` of each embedded cluster.
    #[arg(long, default_value_t = 3)]
    create: usize,
}

/// How often the main loop looks at the event count.
const POLL: Duration = Duration::from_millis(50);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.config.load()?;
    System::new().block_on(async move {
        let runtime = Runtime::start(&config).await?;
        for (cluster, outcome) in backups::ensure_crd_on_embedded(&runtime).await? {
            println!("{cluster}: CRD backups.demo.panoptes.dev {outcome:?}");
        }
        let events = Arc::new(AtomicUsize::new(0));
        let counter = events.clone();
        let (informer, _seen) = backups::watch_backups(&runtime, move |line| {
            println!("{line}");
            counter.fetch_add(1, Ordering::Relaxed);
        });
        for cluster in runtime.clusters() {
            if let (Some(_), Some(client)) = (runtime.embedded(&cluster), runtime.client(&cluster))
            {
                backups::create_backups(client, "default", args.create).await?;
            }
        }
        for (cluster, synced) in informer.wait_all_synced(Duration::from_secs(30)).await {
            println!("{cluster}: synced={synced}");
        }
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        while Instant::now() < deadline
            && args
                .exit_after
                .is_none_or(|n| events.load(Ordering::Relaxed) < n)
        {
            tokio::time::sleep(POLL).await;
        }
        println!(
            "{} events; {} backups cached across all clusters",
            events.load(Ordering::Relaxed),
            informer.list_all().len()
        );
        runtime.shutdown();
        Ok(())
    })
}
