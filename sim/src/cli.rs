//! `panoptes sim`: run simulated clusters as a process, for demos and manual testing.
//!
//! ```text
//! panoptes sim --clusters 3 --kubeconfig /tmp/sim.yaml [--pods 1000] [--churn-rate 50]
//!              [--etcd-compaction-interval 300] [--prompt-initial-events-end]
//! ```
//!
//! writes a kubeconfig with contexts `sim-1` … `sim-N`, prints
//! `sim-1 ready at https://127.0.0.1:PORT (context sim-1)` per cluster, and serves until
//! Ctrl-C or SIGTERM (exit 0).
//!
//! Faults are controlled by commands on **stdin**, one per line, `<cluster> <command> [args]`;
//! each answers one line on stdout (`ok ...` or `error: ...`):
//!
//! ```text
//! sim-1 fail-next 3 429          sim-1 fail-fraction 0.1 500     sim-1 latency 250   (ms)
//! sim-1 stall-watches on|off     sim-1 forbid pods               sim-1 allow pods
//! sim-1 refuse-watch-list on|off sim-1 drop-watches              sim-1 compact
//! sim-1 clear                    sim-1 stop | start              sim-1 restart keep|fresh
//! sim-1 counters pods            (prints lists, watches, open watches, requests, and the
//!                                 open watches per User-Agent as a JSON object)
//! sim-1 partition <agent-substring> on|off   (cut off the clients whose User-Agent
//!                                 contains the substring: see `faults`)
//! ```

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use crate::churn::{Churn, ChurnConfig};
use crate::store::StoreConfig;
use crate::{Sim, SimOptions};

/// Arguments of `panoptes sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Number of clusters to serve (sim-1 … sim-N).
    #[arg(long, default_value_t = 1)]
    pub clusters: usize,
    /// Where to write the kubeconfig (contexts sim-1 … sim-N, current sim-1).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Realistic pods to create in namespace `default` of every cluster before serving.
    #[arg(long, default_value_t = 0)]
    pub pods: usize,
    /// Pod writes per second per cluster (creates, updates, deletes); 0 = no churn.
    #[arg(long, default_value_t = 0.0)]
    pub churn_rate: f64,
    /// The Kubernetes minor version /version reports.
    #[arg(long, default_value_t = 28)]
    pub kubernetes_minor: u32,
    /// Seconds between etcd compactions (kube-apiserver's `--etcd-compaction-interval`):
    /// lists and continues older than the previous run's revision get 410.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub etcd_compaction_interval: u64,
    /// Send a streaming list's `k8s.io/initial-events-end` bookmark right after its initial
    /// events, as v1.30+ servers do (default: v1.28's, after the resource's next write).
    #[arg(long)]
    pub prompt_initial_events_end: bool,
}

/// Runs the clusters until Ctrl-C or SIGTERM.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.clusters >= 1,
        "--clusters must be at least 1 (got {})",
        args.clusters
    );
    anyhow::ensure!(
        args.churn_rate >= 0.0 && args.churn_rate.is_finite(),
        "--churn-rate must be a non-negative number (got {})",
        args.churn_rate
    );
    let sim = Sim::start(SimOptions {
        clusters: args.clusters,
        kubernetes_minor: args.kubernetes_minor,
        store: StoreConfig {
            compaction_interval: Duration::from_secs(args.etcd_compaction_interval),
            prompt_initial_events_end: args.prompt_initial_events_end,
            ..Default::default()
        },
        ..Default::default()
    })?;
    sim.write_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("writing the kubeconfig to {}", args.kubeconfig.display()))?;
    let mut churns = Vec::new();
    for cluster in sim.clusters() {
        if args.pods > 0 {
            crate::pods::seed(&cluster.store(), "default", args.pods);
        }
        if args.churn_rate > 0.0 {
            let config = ChurnConfig {
                target_pods: args.pods.max(1),
                rate_per_sec: args.churn_rate,
                ..Default::default()
            };
            churns.push(Churn::start(cluster.store(), config));
        }
        println!(
            "{} ready at {} (context {})",
            cluster.name(),
            cluster.url(),
            cluster.name()
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handler")?;
    }
    let (commands_tx, commands) = std::sync::mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("sim-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if commands_tx.send(line).is_err() {
                    break;
                }
            }
        })
        .context("starting the stdin reader")?;
    while !stop.load(Ordering::Relaxed) {
        match commands.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.trim().is_empty() => {}
            Ok(line) => match apply_command(&sim, &line) {
                Ok(answer) => println!("ok {answer}"),
                Err(e) => println!("error: {e}"),
            },
            Err(_) => {}
        }
    }
    for churn in churns {
        churn.stop();
    }
    drop(sim);
    Ok(())
}

/// A stdin command that could not be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CommandError {
    /// The line had no words.
    #[error("empty command; expected `<cluster> <command> [args]`")]
    Empty,
    /// The first word names no running cluster.
    #[error("no cluster named {0:?}")]
    UnknownCluster(String),
    /// The second word is not one of the commands.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// The command's arguments are wrong; `problem` says how.
    #[error("{command}: {problem}")]
    BadArgument {
        /// The command as typed.
        command: String,
        /// What is wrong with its arguments.
        problem: String,
    },
}

fn arg<T: std::str::FromStr>(
    command: &str,
    args: &[&str],
    i: usize,
    what: &str,
) -> Result<T, CommandError> {
    let bad = |problem: String| CommandError::BadArgument {
        command: command.to_string(),
        problem,
    };
    let raw = args.get(i).ok_or_else(|| bad(format!("missing {what}")))?;
    raw.parse()
        .map_err(|_| bad(format!("{what} {raw:?} is not valid")))
}

fn on_off(command: &str, args: &[&str]) -> Result<bool, CommandError> {
    match args.first().copied() {
        Some("on" | "true") => Ok(true),
        Some("off" | "false") => Ok(false),
        other => Err(CommandError::BadArgument {
            command: command.to_string(),
            problem: format!("expected on|off, got {other:?}"),
        }),
    }
}

/// Applies one stdin command; returns what to print after `ok`.
pub fn apply_command(sim: &Sim, line: &str) -> Result<String, CommandError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (cluster_name, command, args) = match words.as_slice() {
        [] => return Err(CommandError::Empty),
        [cluster, command, args @ ..] => (*cluster, *command, args),
        [only] => return Err(CommandError::UnknownCommand(only.to_string())),
    };
    let cluster = sim
        .clusters()
        .iter()
        .find(|c| c.name() == cluster_name)
        .ok_or_else(|| CommandError::UnknownCluster(cluster_name.to_string()))?;
    let faults = cluster.faults();
    let restart_failed = |e: crate::SimError| CommandError::BadArgument {
        command: command.to_string(),
        problem: e.to_string(),
    };
    match command {
        "fail-next" => faults.fail_next(
            arg(command, args, 0, "count")?,
            arg(command, args, 1, "status code")?,
        ),
        "fail-fraction" => faults.fail_fraction(
            arg(command, args, 0, "fraction")?,
            arg(command, args, 1, "status code")?,
        ),
        "latency" => faults.set_latency(Duration::from_millis(arg(
            command,
            args,
            0,
            "milliseconds",
        )?)),
        "stall-watches" => faults.stall_watches(on_off(command, args)?),
        "forbid" => faults.forbid(&arg::<String>(command, args, 0, "resource")?),
        "allow" => faults.allow(&arg::<String>(command, args, 0, "resource")?),
        "refuse-watch-list" => faults.refuse_watch_list(on_off(command, args)?),
        "drop-watches" => faults.drop_watches(),
        "compact" => faults.compact(),
        "clear" => faults.clear(),
        "stop" => cluster.stop(),
        "start" => cluster.start().map_err(restart_failed)?,
        "restart" => {
            let keep = match args.first().copied() {
                Some("keep") => true,
                Some("fresh") => false,
                other => {
                    return Err(CommandError::BadArgument {
                        command: command.into(),
                        problem: format!("expected keep|fresh, got {other:?}"),
                    });
                }
            };
            cluster.restart(keep).map_err(restart_failed)?
        }
        "counters" => {
            let plural: String = arg(command, args, 0, "resource")?;
            let c = cluster.counters();
            let by_agent: std::collections::BTreeMap<String, u64> =
                c.open_watches_by_agent(&plural).into_iter().collect();
            return Ok(format!(
                "{cluster_name} {plural}: lists={} watches={} open_watches={} requests={} open_watches_by_agent={}",
                c.lists(&plural),
                c.watches(&plural),
                c.open_watches(&plural),
                c.requests(),
                serde_json::to_string(&by_agent).unwrap_or_default()
            ));
        }
        "partition" => {
            let substring: String = arg(command, args, 0, "User-Agent substring")?;
            let on = on_off(command, args.get(1..).unwrap_or_default())?;
            faults
                .partition(&substring, on)
                .map_err(|e| CommandError::BadArgument {
                    command: command.to_string(),
                    problem: e.to_string(),
                })?;
        }
        other => return Err(CommandError::UnknownCommand(other.to_string())),
    }
    Ok(line.trim().to_string())
}
