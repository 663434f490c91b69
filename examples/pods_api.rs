//! The seed's comparison (a gin service answering `/pods` from an informer's lister or by a
//! direct List on every request) as a Panoptes program: an axum service whose `/pods` reads
//! the pod informer's lister (a compact cache's stored bytes, concatenated) and whose
//! `/pods/direct` lists from the API server.
//!
//! ```text
//! cargo run --release --example pods_api                       # embedded sim, 5 000 pods, :8080
//! cargo run --release --example pods_api -- --load 10          # measure both endpoints, exit
//! cargo run --release --example pods_api -- --kubeconfig ~/.kube/config --context prod
//! ```
//!
//! `--load SECONDS` runs the bounded load generator (`pods_api/load.rs`) against the service
//! for each endpoint and prints QPS and p50/p99; `cargo bench --bench informers` does the
//! same as its row P6 with the API server in a separate process.

#[path = "pods_api/app.rs"]
mod app;
#[path = "pods_api/load.rs"]
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use panoptes_actors::{CacheMode, FactoryOptions, InformerFactory, ids::ClusterId};

#[derive(Parser)]
#[command(about = "Pods from an informer's lister (/pods) or a direct List (/pods/direct)")]
struct Args {
    /// A real cluster's kubeconfig; without it an embedded sim cluster serves `--pods` pods.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (its current context when omitted).
    #[arg(long)]
    context: Option<String>,
    /// Realistic pods the embedded sim serves.
    #[arg(long, default_value_t = 5000)]
    pods: usize,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Measure both endpoints for this many seconds each, print, and exit.
    #[arg(long)]
    load: Option<u64>,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// How the pod cache holds pods: `compact` serves `/pods` from stored bytes, `typed`
    /// serialises each pod per request.
    #[arg(long, default_value = "compact")]
    cache: CacheMode,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The embedded sim runs on its own runtime; it must outlive the service.
    let (sim, kubeconfig) = match &args.kubeconfig {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
            (None, text)
        }
        None => {
            let sim = panoptes_sim::Sim::start(panoptes_sim::SimOptions::default())?;
            panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", args.pods);
            let kubeconfig = sim.kubeconfig_yaml();
            (Some(sim), kubeconfig)
        }
    };
    let result = actix_rt::System::new().block_on(serve(args, kubeconfig));
    drop(sim);
    result
}

async fn serve(args: Args, kubeconfig: String) -> anyhow::Result<()> {
    let kubeconfig = Kubeconfig::from_yaml(&kubeconfig).context("parsing the kubeconfig")?;
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .context("the kubeconfig is not usable")?;
    let client = kube::Client::try_from(config)?;
    let cluster = ClusterId::new(args.context.as_deref().unwrap_or("default"));
    let options = FactoryOptions {
        cache: args.cache,
        ..FactoryOptions::default()
    };
    let factory = InformerFactory::new(client.clone(), cluster, options);
    let pods = factory.informer::<Pod>();
    factory.start();
    let synced = factory.wait_for_cache_sync(Duration::from_secs(120)).await;
    if !synced.values().all(|ok| *ok) {
        bail!("the pod informer did not sync within 120 s: {synced:?}");
    }
    println!("{} pods cached", pods.store().list().len());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let service = app::router(pods.lister(), client);
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    println!("serving http://{addr}/pods and http://{addr}/pods/direct");

    match args.load {
        Some(seconds) => {
            for path in ["/pods", "/pods/direct"] {
                let report = load::run(
                    addr,
                    path,
                    args.connections,
                    Duration::from_secs(seconds),
                    1_000_000,
                )
                .await?;
                println!("{path:<14} {report}");
            }
            server.abort();
        }
        None => {
            tokio::signal::ctrl_c().await?;
        }
    }
    factory.shutdown();
    Ok(())
}
