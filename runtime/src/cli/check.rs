//! `panoptes check [--config PATH]`: loads the configuration, connects every cluster (embedded
//! ones are started), asks each for its version, and lists one object of every watched
//! resource there. Prints one line per check; exits non-zero if any failed.

use std::time::Duration;

use anyhow::anyhow;
use kube::api::{Api, DynamicObject, ListParams};

use super::CliError;
use crate::config::ConfigArgs;
use crate::runtime::Runtime;

/// Arguments of `panoptes check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// `--config PATH`: the file to check.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Seconds to wait for each request.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
}

/// Runs the checks; needs no async runtime of its own caller (it starts an actix system).
pub fn check(args: CheckArgs) -> Result<(), CliError> {
    let config = args.config.load()?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    actix::System::new().block_on(async move {
        let runtime = Runtime::start(&config)
            .await
            .map_err(|e| CliError::Failed(e.into()))?;
        let mut failures = 0;
        for (cluster, error) in runtime.connection_errors() {
            println!("FAIL {cluster}: {error}");
            failures += 1;
        }
        for cluster in &config.clusters {
            let Some(client) = runtime.client(&cluster.name) else {
                continue;
            };
            match tokio::time::timeout(timeout, client.apiserver_version()).await {
                Ok(Ok(version)) => println!(
                    "ok   {}: reachable, Kubernetes {}",
                    cluster.name, version.git_version
                ),
                Ok(Err(error)) => {
                    println!("FAIL {}: unreachable: {error}", cluster.name);
                    failures += 1;
                    continue;
                }
                Err(_) => {
                    println!("FAIL {}: no answer within {timeout:?}", cluster.name);
                    failures += 1;
                    continue;
                }
            }
            for watch in config
                .watches
                .iter()
                .filter(|w| config.clusters_of(w).iter().any(|c| c.name == cluster.name))
            {
                let r = &watch.resource;
                let resource = r.api_resource();
                let api: Api<DynamicObject> = match &watch.namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                    None => Api::all_with(client.clone(), &resource),
                };
                let mut params = ListParams::default().limit(1);
                if let Some(labels) = &watch.label_selector {
                    params = params.labels(labels);
                }
                if let Some(fields) = &watch.field_selector {
                    params = params.fields(fields);
                }
                match tokio::time::timeout(timeout, api.list(&params)).await {
                    Ok(Ok(_)) => println!("ok   {}: {r} listable", cluster.name),
                    Ok(Err(error)) => {
                        println!("FAIL {}: cannot list {r}: {error}", cluster.name);
                        failures += 1;
                    }
                    Err(_) => {
                        println!("FAIL {}: listing {r} took over {timeout:?}", cluster.name);
                        failures += 1;
                    }
                }
            }
        }
        runtime.shutdown();
        if failures > 0 {
            return Err(CliError::Failed(anyhow!(
                "{failures} check(s) failed for {}",
                config.file.display()
            )));
        }
        println!("{}: all checks passed", config.file.display());
        Ok(())
    })
}
