//! Pod events of two clusters as one `futures::Stream`, the way kube-runtime users write
//! `watcher(api, config).applied_objects()` — built in code, no `clusters.toml`.
//!
//! ```text
//! cargo run --example stream                  # 20 events, then exit
//! cargo run --example stream -- --events 100
//! ```
//!
//! The pieces to copy: `Runtime::builder()` with clusters, `runtime.informer::<Pod>()`,
//! `stream_with(HandlerOptions::default().predicate(..))`, `while let Some(event) =
//! stream.next().await`. The stream is bounded: if this loop is slow, only its own backlog
//! grows. Dropping the stream removes its handler.

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::{Event, HandlerOptions, predicate};
use panoptes_runtime::Runtime;
use panoptes_runtime::config::EmbeddedCluster;

#[derive(Parser)]
struct Args {
    /// How many events to print before exiting.
    #[arg(long, default_value_t = 20)]
    events: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    actix::System::new().block_on(async move {
        let churning = EmbeddedCluster {
            pods: 20,
            churn_per_sec: 5.0,
            ..EmbeddedCluster::default()
        };
        let runtime = Runtime::builder()
            .embedded("east", churning.clone())
            .embedded("west", churning)
            .start()
            .await?;
        let pods = runtime.informer::<Pod>();
        // Status changes (phase, readiness, restarts) and label changes; adds and deletes
        // always pass.
        let interesting = predicate::status_changed().or(predicate::labels_changed());
        let mut events = pods.stream_with(HandlerOptions::default().predicate(interesting));
        for _ in 0..args.events {
            let Some(event) = events.next().await else {
                break;
            };
            let what = match &event {
                Event::Added { initial: true, .. } => "cached",
                Event::Added { .. } => "added",
                Event::Updated { .. } => "changed",
                Event::Deleted { .. } => "deleted",
            };
            let phase = event
                .object()
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref());
            println!(
                "[{}] {what} {} ({})",
                event.cluster(),
                event.key(),
                phase.unwrap_or("-")
            );
        }
        drop(events);
        runtime.shutdown();
        Ok(())
    })
}
