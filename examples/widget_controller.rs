//! A controller users copy: a custom resource `Widget { replicas }` reconciled into owned
//! ConfigMaps (one per replica) on every cluster of a `clusters.toml`, with a finalizer and
//! a status.
//!
//! ```text
//! cargo run --example widget_controller                     # ./clusters.toml (3 embedded clusters)
//! cargo run --example widget_controller -- --config my.toml
//! # then, against any of the clusters:
//! kubectl apply -f - <<<'{"apiVersion":"panoptes.example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"default"},"spec":{"replicas":3}}'
//! kubectl get widgets,configmaps -l panoptes.example.com/widget=w
//! ```
//!
//! The pieces to copy:
//! - `widget_controller/widget.rs`: the CRD as a Rust type (`#[derive(CustomResource)]`) and
//!   installing it where it is missing;
//! - `widget_controller/reconciler.rs`: the reconciler actor (`impl Handler<Reconcile<Widget>>`),
//!   reading caches, writing through the message's cluster client, behind
//!   `panoptes_actors::finalizer`;
//! - `widget_controller/controller.rs`: `runtime.controller::<Widget>("widget")
//!   .owns::<ConfigMap>().run(reconciler)`.
//!
//! With `--demo`, the example creates a Widget on every cluster, shows the ConfigMaps it
//! got, scales it, deletes it (the finalizer's cleanup runs) and exits.

#[path = "widget_controller/controller.rs"]
mod controller;
#[path = "widget_controller/reconciler.rs"]
mod reconciler;
#[path = "widget_controller/widget.rs"]
mod widget;

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use panoptes_actors::ShutdownMode;
use panoptes_runtime::Runtime;
use panoptes_runtime::config::ConfigArgs;

#[derive(Parser)]
#[command(about = "Widgets reconciled into ConfigMaps on every cluster of clusters.toml")]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Create, scale and delete a Widget on every cluster, print what happened, and exit.
    #[arg(long)]
    demo: bool,
    /// Make the first N cleanups fail, to see the finalizer hold a deleted Widget until a
    /// retry (with the key's backoff) succeeds.
    #[arg(long, default_value_t = 0)]
    failing_cleanups: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.config.load()?;
    actix_rt::System::new().block_on(async move {
        let runtime = Runtime::start(&config).await?;
        for (cluster, outcome) in controller::install_crds(&runtime).await {
            match outcome {
                Ok(outcome) => println!("[{cluster}] Widget CRD: {outcome:?}"),
                Err(error) => eprintln!("[{cluster}] {error}"),
            }
        }
        let cleanups = reconciler::CleanupLog::default();
        cleanups.fail_next(args.failing_cleanups);
        let handle = controller::start(&runtime, cleanups.clone());
        println!("reconciling Widgets on {:?}", runtime.clusters());
        if args.demo {
            demo(&runtime).await?;
        } else {
            tokio::signal::ctrl_c().await?;
        }
        handle.shutdown(ShutdownMode::Drain).await;
        println!(
            "{} cleanup(s) ran: {:?}",
            cleanups.entries().len(),
            cleanups.entries()
        );
        runtime.shutdown();
        Ok(())
    })
}

/// One Widget per cluster: created with 3 replicas, scaled to 1, deleted.
async fn demo(runtime: &Runtime) -> anyhow::Result<()> {
    let widget: widget::Widget = serde_json::from_value(serde_json::json!({
        "apiVersion": "panoptes.example.com/v1", "kind": "Widget",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"replicas": 3}
    }))?;
    for replicas in [3, 1] {
        for cluster in runtime.clusters() {
            let client = runtime.client(&cluster).context("cluster client")?;
            let widgets: Api<widget::Widget> = Api::namespaced(client.clone(), "default");
            if replicas == 3 {
                widgets.create(&PostParams::default(), &widget).await?;
            } else {
                let patch = serde_json::json!({"spec": {"replicas": replicas}});
                widgets
                    .patch("demo", &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
            }
        }
        for cluster in runtime.clusters() {
            let client = runtime.client(&cluster).context("cluster client")?;
            let config_maps: Api<ConfigMap> = Api::namespaced(client, "default");
            let selector = format!("{}=demo", reconciler::WIDGET_LABEL);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let names: Vec<_> = config_maps
                    .list(&ListParams::default().labels(&selector))
                    .await?
                    .items
                    .into_iter()
                    .filter_map(|cm| cm.metadata.name)
                    .collect();
                if names.len() == replicas || tokio::time::Instant::now() > deadline {
                    println!("[{cluster}] replicas={replicas}: {names:?}");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    for cluster in runtime.clusters() {
        let client = runtime.client(&cluster).context("cluster client")?;
        let widgets: Api<widget::Widget> = Api::namespaced(client, "default");
        widgets.delete("demo", &DeleteParams::default()).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while widgets.get_opt("demo").await?.is_some() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "[{cluster}] the Widget was not gone within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("[{cluster}] widget deleted after its cleanup");
    }
    Ok(())
}
