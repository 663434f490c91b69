//! `panoptes run [--config PATH] [--exit-after-sync]`: runs a `clusters.toml`.
//!
//! 1. Loads and checks the file (errors print as [`ConfigError`](crate::ConfigError) formats
//!    them, exit 2), installs logging/tracing, serves `/metrics`, `/healthz`, `/readyz`.
//! 2. Starts every cluster (embedded ones in-process) and every `[[watch]]`, printing one
//!    line per (cluster, resource) as it syncs, and what holds back the rest (a cluster that
//!    is down, a 403): a spinner per line on a terminal, plain lines otherwise.
//! 3. With `--exit-after-sync`, exits 0 once everything has synced (1 if that takes longer
//!    than `--sync-timeout-secs`). Otherwise prints a summary every `--summary-secs`
//!    (objects per cluster and resource, events/s, handler backlog) until Ctrl-C or SIGTERM
//!    (exit 0). SIGHUP, or a change of the file, reloads its clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kube::api::DynamicObject;
use panoptes_actors::HandlerOptions;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::reflector::ReflectorState;
use parking_lot::Mutex;

use super::CliError;
use crate::config::{ConfigArgs, PanoptesConfig};
use crate::health::{HealthServer, Readiness};
use crate::metrics::Metrics;
use crate::multi_informer::{ClusterInformerStatus, MultiInformer};
use crate::runtime::Runtime;
use crate::telemetry;

/// Arguments of `panoptes run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// `--config PATH`: the file to run.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Exit 0 as soon as every cluster's caches have synced (for scripts and CI).
    #[arg(long)]
    pub exit_after_sync: bool,
    /// With --exit-after-sync: give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub sync_timeout_secs: u64,
    /// Seconds between two summaries.
    #[arg(long, default_value_t = 5)]
    pub summary_secs: u64,
}

/// Events seen per (cluster, resource), counted by a handler on every watch.
type EventCounts = Arc<Mutex<BTreeMap<(ClusterId, String), Arc<AtomicU64>>>>;

/// Runs until synced (`--exit-after-sync`) or until Ctrl-C / SIGTERM.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    let config = args.config.load()?;
    actix::System::new().block_on(run_config(args, config))
}

async fn run_config(args: RunArgs, config: PanoptesConfig) -> Result<(), CliError> {
    let telemetry = telemetry::init(&config.telemetry).context("starting telemetry")?;
    let (metrics, readiness) = (Metrics::new(), Readiness::new());
    let health = HealthServer::start(
        config.runtime.metrics_addr,
        metrics.clone(),
        readiness.clone(),
    )
    .await
    .context("starting the health server")?;
    println!(
        "panoptes: {} cluster(s), {} watch(es) from {}; /metrics /healthz /readyz on http://{}",
        config.clusters.len(),
        config.watches.len(),
        config.file.display(),
        health.local_addr()
    );
    let runtime = Runtime::start_with(&config, metrics, readiness)
        .await
        .context("starting the clusters")?;
    for (cluster, error) in runtime.connection_errors() {
        println!("{cluster}: cannot connect: {error}");
    }
    let counts: EventCounts = Arc::default();
    let informers: Vec<MultiInformer<DynamicObject>> = config
        .watches
        .iter()
        .map(|watch| {
            let informer = runtime.watch(watch);
            let (counts, resource) = (counts.clone(), watch.resource.to_string());
            informer.add_handler_fn(
                move |event| {
                    let counter = counts
                        .lock()
                        .entry((event.cluster().clone(), resource.clone()))
                        .or_default()
                        .clone();
                    counter.fetch_add(1, Ordering::Relaxed);
                },
                HandlerOptions::default(),
            );
            informer
        })
        .collect();

    let outcome = if args.exit_after_sync {
        wait_for_sync(&args, &runtime).await
    } else {
        serve(&args, &runtime, &counts).await
    };
    drop(informers);
    runtime.shutdown();
    if let Err(error) = health.stop().await {
        tracing::warn!(%error, "stopping the health server");
    }
    if let Err(error) = telemetry.shutdown().await {
        tracing::warn!(%error, "flushing telemetry");
    }
    outcome
}

/// Sync progress. On a terminal, a spinner per (cluster, resource) that turns into its
/// "synced" line; otherwise (pipes, logs, CI) each line once, when it first becomes true.
struct Progress {
    started: Instant,
    display: ProgressDisplay,
    announced: bool,
}

enum ProgressDisplay {
    Lines {
        printed: BTreeSet<(ClusterId, String, String)>,
    },
    Bars {
        bars: MultiProgress,
        by_key: BTreeMap<(ClusterId, String), ProgressBar>,
    },
}

impl Progress {
    fn new() -> Self {
        let display = if std::io::stdout().is_terminal() {
            ProgressDisplay::Bars {
                bars: MultiProgress::new(),
                by_key: BTreeMap::new(),
            }
        } else {
            ProgressDisplay::Lines {
                printed: BTreeSet::new(),
            }
        };
        Self {
            started: Instant::now(),
            display,
            announced: false,
        }
    }

    /// Shows what changed; true once everything has synced.
    fn update(&mut self, runtime: &Runtime) -> bool {
        let statuses = runtime.status();
        let elapsed = self.started.elapsed();
        for status in &statuses {
            match &mut self.display {
                ProgressDisplay::Lines { printed } => {
                    if let Some((tag, line)) = sync_line(status, elapsed)
                        && printed.insert((status.cluster.clone(), status.resource.clone(), tag))
                    {
                        println!("{line}");
                    }
                }
                ProgressDisplay::Bars { bars, by_key } => {
                    let key = (status.cluster.clone(), status.resource.clone());
                    let bar = by_key
                        .entry(key)
                        .or_insert_with(|| bars.add(spinner(status)));
                    if bar.is_finished() {
                        continue;
                    }
                    match sync_line(status, elapsed) {
                        Some((_, line)) if status.synced => {
                            bar.set_style(
                                ProgressStyle::default_spinner()
                                    .template("{msg}")
                                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                            );
                            bar.finish_with_message(line);
                        }
                        Some((_, line)) => bar.set_message(line),
                        None => bar.tick(),
                    }
                }
            }
        }
        let all_synced = !statuses.is_empty()
            && statuses.iter().all(|s| s.synced)
            && runtime.connection_errors().is_empty();
        if all_synced && !self.announced {
            self.announced = true;
            let clusters: BTreeSet<_> = statuses.iter().map(|s| s.cluster.to_string()).collect();
            println!(
                "all synced: {} cluster(s) ({}) in {:.1}s",
                clusters.len(),
                clusters.into_iter().collect::<Vec<_>>().join(", "),
                elapsed.as_secs_f64()
            );
        }
        let _ = std::io::stdout().flush();
        all_synced
    }
}

/// A spinner for one (cluster, resource) still listing.
fn spinner(status: &ClusterInformerStatus) -> ProgressBar {
    let bar = ProgressBar::new_spinner()
        .with_message(format!("{}: {} listing", status.cluster, status.resource));
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `--exit-after-sync`: returns once everything synced, fails after the timeout.
async fn wait_for_sync(args: &RunArgs, runtime: &Runtime) -> Result<(), CliError> {
    let timeout = Duration::from_secs(args.sync_timeout_secs.max(1));
    let mut progress = Progress::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if progress.update(runtime) {
            return Ok(());
        }
        if progress.started.elapsed() > timeout {
            let waiting: Vec<String> = runtime
                .status()
                .iter()
                .filter(|s| !s.synced)
                .map(|s| format!("{} {}", s.cluster, s.resource))
                .chain(
                    runtime
                        .connection_errors()
                        .keys()
                        .map(|c| format!("{c} (connection)")),
                )
                .collect();
            return Err(CliError::Failed(anyhow::anyhow!(
                "not synced after {timeout:?}: {}",
                waiting.join(", ")
            )));
        }
    }
}

/// A progress line for `status`, tagged so each is printed once.
fn sync_line(status: &ClusterInformerStatus, elapsed: Duration) -> Option<(String, String)> {
    let (cluster, resource) = (&status.cluster, &status.resource);
    if status.synced {
        return Some((
            "synced".into(),
            format!(
                "{cluster}: {resource} synced, {} objects ({:.1}s)",
                status.objects,
                elapsed.as_secs_f64()
            ),
        ));
    }
    match &status.state {
        Some(ReflectorState::Forbidden { message }) => Some((
            "forbidden".into(),
            format!("{cluster}: {resource} forbidden (403): {message}"),
        )),
        Some(ReflectorState::BackingOff { error, .. }) => Some((
            "backoff".into(),
            format!("{cluster}: {resource} not reachable yet, retrying: {error}"),
        )),
        _ => None,
    }
}

/// Prints a summary every `--summary-secs` until Ctrl-C or SIGTERM; reloads on SIGHUP or
/// when the file changes.
async fn serve(args: &RunArgs, runtime: &Runtime, counts: &EventCounts) -> Result<(), CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut summary = tokio::time::interval(Duration::from_secs(args.summary_secs.max(1)));
    summary.tick().await;
    let mut file_check = tokio::time::interval(Duration::from_secs(2));
    let mut last_modified = modified(&args.config.path);
    let mut previous: BTreeMap<(ClusterId, String), u64> = BTreeMap::new();
    let mut last_summary = Instant::now();
    let mut progress = Progress::new();
    let mut progress_tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = progress_tick.tick() => {
                progress.update(runtime);
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => reload(args, runtime).await,
            _ = file_check.tick() => {
                let now = modified(&args.config.path);
                if now != last_modified {
                    last_modified = now;
                    reload(args, runtime).await;
                }
            }
            _ = summary.tick() => {
                print_summary(runtime, counts, &mut previous, last_summary.elapsed());
                last_summary = Instant::now();
            }
        }
    }
    println!("stopping");
    Ok(())
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn reload(args: &RunArgs, runtime: &Runtime) {
    match args.config.load() {
        Ok(config) => match runtime.reload(&config).await {
            Ok(report) if report.is_empty() => println!("reloaded: no cluster changed"),
            Ok(report) => println!(
                "reloaded: added {:?}, removed {:?}, replaced {:?}",
                names(&report.added),
                names(&report.removed),
                names(&report.replaced)
            ),
            Err(error) => println!("reload failed: {error}"),
        },
        Err(error) => println!("reload failed, keeping the running configuration:\n{error}"),
    }
}

fn names(ids: &[ClusterId]) -> Vec<&str> {
    ids.iter().map(ClusterId::as_str).collect()
}

fn print_summary(
    runtime: &Runtime,
    counts: &EventCounts,
    previous: &mut BTreeMap<(ClusterId, String), u64>,
    elapsed: Duration,
) {
    let seconds = elapsed.as_secs_f64().max(0.001);
    println!("--- {} cluster(s)", runtime.clusters().len());
    for status in runtime.status() {
        let key = (status.cluster.clone(), status.resource.clone());
        let total = counts
            .lock()
            .get(&key)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        let before = previous.insert(key, total).unwrap_or(0);
        let rate = total.saturating_sub(before) as f64 / seconds;
        let state = match (&status.state, status.synced) {
            (_, true) => "synced".to_string(),
            (Some(ReflectorState::Forbidden { .. }), _) => "forbidden".to_string(),
            (Some(ReflectorState::BackingOff { .. }), _) => "retrying".to_string(),
            _ => "syncing".to_string(),
        };
        println!(
            "{:<16} {:<28} {:>8} objects {:>9.1} events/s  backlog {:<6} {state}",
            status.cluster.as_str(),
            status.resource,
            status.objects,
            rate,
            status.backlog
        );
    }
}
