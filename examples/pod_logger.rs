//! A handler actor that prints every pod event of a cluster.
//!
//! ```text
//! cargo run --example pod_logger                      # an embedded sim cluster with churn, 10 s
//! cargo run --example pod_logger -- ~/.kube/config    # your current context, until Ctrl-C
//! ```
//!
//! The pieces to copy: an actor with `impl Handler<Event<Pod>>`, an [`InformerFactory`] for the
//! cluster, `add_handler`, `start`, `wait_for_cache_sync`, and reads through the lister.

use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use panoptes_actors::{
    Event, FactoryOptions, HandlerOptions, InformerFactory, handler_actor, ids::ClusterId,
};
use panoptes_sim::churn::{Churn, ChurnConfig};
use panoptes_sim::{Sim, SimOptions};

/// Prints one line per event. Restarted by its listener if it ever panics.
struct PodLogger;

impl Actor for PodLogger {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for PodLogger {
    type Result = ();

    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) {
        let pod = event.object();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("-");
        let what = match &event {
            Event::Added { initial: true, .. } => "listed",
            Event::Added { .. } => "added",
            Event::Updated { .. } if event.is_resync() => "resynced",
            Event::Updated { .. } => "updated",
            Event::Deleted {
                final_state_unknown: true,
                ..
            } => "deleted (missed, last known state)",
            Event::Deleted { .. } => "deleted",
        };
        println!(
            "[{}] {what:<8} {} phase={phase} rv={}",
            event.cluster(),
            event.key(),
            pod.metadata.resource_version.as_deref().unwrap_or("?")
        );
    }
}

async fn client_from(
    kubeconfig_yaml: &str,
    context: Option<String>,
) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml)?;
    let options = KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok(kube::Client::try_from(config)?)
}

fn main() -> anyhow::Result<()> {
    let kubeconfig_path = std::env::args().nth(1);
    System::new().block_on(async move {
        // Without a kubeconfig: one simulated cluster with 20 pods and a little churn.
        let embedded = match &kubeconfig_path {
            Some(_) => None,
            None => {
                let sim = Sim::start(SimOptions::default())?;
                panoptes_sim::pods::seed(&sim.cluster(0).store(), "default", 20);
                let churn = ChurnConfig {
                    target_pods: 20,
                    rate_per_sec: 5.0,
                    ..Default::default()
                };
                let churn = Churn::start(sim.cluster(0).store(), churn);
                Some((sim, churn))
            }
        };
        let (client, cluster) = match (&kubeconfig_path, &embedded) {
            (Some(path), _) => (
                client_from(&std::fs::read_to_string(path)?, None).await?,
                ClusterId::new("kubeconfig"),
            ),
            (None, Some((sim, _))) => {
                let c = sim.cluster(0);
                (
                    client_from(&c.kubeconfig_yaml(), Some(c.name().to_string())).await?,
                    ClusterId::new(c.name()),
                )
            }
            (None, None) => unreachable!("no kubeconfig means an embedded sim"),
        };

        let factory = InformerFactory::new(client, cluster, FactoryOptions::default());
        let pods = factory.informer::<Pod>();
        pods.add_handler(
            handler_actor(|| PodLogger),
            HandlerOptions::default().resync(Duration::from_secs(30)),
        );
        factory.start();
        let synced = factory.wait_for_cache_sync(Duration::from_secs(30)).await;
        println!(
            "synced: {synced:?}; {} pods cached",
            pods.lister().list_all().len()
        );

        let run_for = if embedded.is_some() {
            Duration::from_secs(10)
        } else {
            Duration::MAX
        };
        tokio::select! {
            _ = tokio::time::sleep(run_for) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        factory.shutdown();
        if let Some((_sim, churn)) = embedded {
            println!("churn: {:?}", churn.stop());
        }
        Ok(())
    })
}
