//! A multi-cluster aggregator served over HTTP from the shared caches: pods per phase per
//! cluster and the deployments not at their replica count, for every cluster of a
//! `clusters.toml`.
//!
//! ```text
//! cargo run --example fleet_summary                      # ./clusters.toml (3 embedded clusters)
//! cargo run --example fleet_summary -- --config my.toml --listen 127.0.0.1:9000
//! curl localhost:8081/summary          # JSON
//! curl localhost:8081/summary.txt      # a line per cluster
//! ```
//!
//! The pieces to copy: two `runtime.informer::<K>()` (they share watches with anything else
//! in the process asking for the same resources) and an axum router that only reads their
//! listers (`fleet_summary/app.rs`), so a request costs no API-server call.

#[path = "fleet_summary/app.rs"]
mod app;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use panoptes_runtime::Runtime;
use panoptes_runtime::config::ConfigArgs;

#[derive(Parser)]
#[command(about = "Pods per phase and lagging deployments of every cluster, over HTTP")]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Where the summary is served.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.config.load()?;
    actix_rt::System::new().block_on(async move {
        let runtime = Runtime::start(&config).await?;
        let fleet = app::Fleet {
            pods: runtime.informer::<Pod>(),
            deployments: runtime.informer::<Deployment>(),
        };
        // Serving before every cluster synced is fine: each cluster says whether it has.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(axum::serve(listener, app::router(fleet.clone())).into_future());
        println!("serving http://{addr}/summary and http://{addr}/summary.txt");
        fleet.pods.wait_all_synced(Duration::from_secs(60)).await;
        fleet
            .deployments
            .wait_all_synced(Duration::from_secs(60))
            .await;
        print!("{}", app::render_text(&app::summarize(&fleet)));
        tokio::signal::ctrl_c().await?;
        server.abort();
        runtime.shutdown();
        Ok(())
    })
}
