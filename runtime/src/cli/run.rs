//! `panoptes run [--config PATH] [--exit-after-sync]`: runs a `clusters.toml`.
//!
//! 1. Loads and checks the file (errors print as [`ConfigError`](crate::ConfigError) formats
//!    them, exit 2), installs logging/tracing, serves `/metrics`, `/healthz`, `/readyz`.
//! 2. Starts every cluster (embedded ones in-process) and every `[[watch]]`, printing one
//!    line per (cluster, resource) as it syncs, and what holds back the rest (a cluster that
//!    is down, a 403), each once; on a terminal, one spinner naming what is still listing,
//!    cleared when done.
//! 3. With `--exit-after-sync`, exits 0 once everything has synced (1 if that takes longer
//!    than `--sync-timeout-secs`). Otherwise prints a summary every `--summary-secs`
//!    (objects per cluster and resource, events/s, handler backlog) until Ctrl-C or SIGTERM
//!    (exit 0). SIGHUP, or a change of the file, reloads its clusters.
//! 4. With `[leader_election]` enabled, prints each change of this replica's leadership, and
//!    releases the Lease on the way out so another replica takes over at once.
//! 5. With `[sharding]` enabled, prints `shard <identity> owns <n>/<total>: <a,b,c>` each
//!    time the set of clusters this replica owns changes, and on the way out disengages
//!    everything and releases every Lease so peers take its clusters at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use kube::api::DynamicObject;
use panoptes_actors::HandlerOptions;
use panoptes_actors::error_chain::error_chain;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::leader_elector::LeaderElection;
use panoptes_actors::reflector::ReflectorState;
use panoptes_actors::watch_error::WatchErrorKind;
use parking_lot::Mutex;

use super::CliError;
use crate::config::{ConfigArgs, PanoptesConfig};
use crate::health::{HealthServer, Readiness};
use crate::metrics::Metrics;
use crate::multi_informer::{ClusterInformerStatus, MultiInformer};
use crate::runtime::Runtime;
use crate::sharding::ShardHandle;
use crate::telemetry;

/// Arguments of `panoptes run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// `--config PATH` (or `PANOPTES_CONFIG`).
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
    let outcome = run_traced(args, config).await;
    // On every exit path (Ctrl-C, SIGTERM, a failed start) the batched spans are flushed.
    if let Err(error) = telemetry.shutdown().await {
        tracing::warn!(%error, "flushing telemetry");
    }
    outcome
}

/// How long a stop waits for the pipelines to end (and their last spans to close) before
/// the spans are flushed anyway.
const PIPELINES_STOP_WAIT: Duration = Duration::from_secs(5);

async fn run_traced(args: RunArgs, config: PanoptesConfig) -> Result<(), CliError> {
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
    if let Some(election) = runtime.election() {
        print_leadership_changes(&election);
    }
    if let Some(shard) = runtime.sharding() {
        print_shard_changes(&runtime, &shard);
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
    runtime.release_leadership().await;
    runtime.release_shards().await;
    runtime.shutdown();
    let stop_deadline = Instant::now() + PIPELINES_STOP_WAIT;
    while !runtime.registry().is_empty() && Instant::now() < stop_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Err(error) = health.stop().await {
        tracing::warn!(%error, "stopping the health server");
    }
    outcome
}

/// One line per change of this replica's leadership, until the election stops.
fn print_leadership_changes(election: &LeaderElection) {
    let (identity, lease) = (
        election.identity().to_string(),
        election.lease().to_string(),
    );
    println!("leader election: {identity} competing for Lease {lease}");
    let mut gate = election.leadership();
    actix::spawn(async move {
        loop {
            let leading = gate.changed().await;
            if gate.is_closed() {
                return;
            }
            if leading {
                println!("leader election: {identity} became leader (Lease {lease})");
            } else {
                println!("leader election: {identity} lost leadership (Lease {lease})");
            }
        }
    });
}

/// One line per change of the clusters this replica owns, until sharding stops.
fn print_shard_changes(runtime: &Runtime, shard: &ShardHandle) {
    let identity = shard.identity().to_string();
    let mut owned = shard.owned();
    let runtime = runtime.downgrade();
    actix::spawn(async move {
        loop {
            let line = {
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                let set = owned.borrow_and_update();
                let names: Vec<&str> = set.iter().map(ClusterId::as_str).collect();
                format!(
                    "shard {identity} owns {}/{}: {}",
                    names.len(),
                    runtime.clusters().len(),
                    names.join(",")
                )
            };
            println!("{line}");
            if owned.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Sync progress: each line (synced, forbidden, retrying) printed once, when it first
/// becomes true. On a terminal, one spinner below them names what is still listing; it is
/// hidden while a line is printed and cleared at the end, so no "listing (0s)" line is ever
/// left behind. (One spinner, not one per line: indicatif's multi-bar redraws race with its
/// tick thread and could leave a stale bar line on screen.)
struct Progress {
    started: Instant,
    printed: BTreeSet<(ClusterId, String, String)>,
    /// `None` off a terminal (pipes, logs, CI).
    spinner: Option<ProgressBar>,
    announced: bool,
}

impl Progress {
    fn new() -> Self {
        let spinner = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            started: Instant::now(),
            printed: BTreeSet::new(),
            spinner,
            announced: false,
        }
    }

    /// Shows what changed; true once everything has synced.
    fn update(&mut self, runtime: &Runtime) -> bool {
        let statuses = runtime.status();
        let elapsed = self.started.elapsed();
        let mut listing = Vec::new();
        for status in &statuses {
            if !status.synced {
                listing.push(format!("{} {}", status.cluster, status.resource));
            }
            if let Some((tag, line)) = sync_line(status, elapsed, runtime)
                && self
                    .printed
                    .insert((status.cluster.clone(), status.resource.clone(), tag))
            {
                self.println(&line);
            }
        }
        if let Some(spinner) = &self.spinner {
            spinner.set_message(format!("listing: {}", listing.join(", ")));
        }
        let all_synced = !statuses.is_empty()
            && statuses.iter().all(|s| s.synced)
            && runtime.connection_errors().is_empty();
        if all_synced && !self.announced {
            self.announced = true;
            if let Some(spinner) = &self.spinner {
                spinner.finish_and_clear();
            }
            let clusters: BTreeSet<_> = statuses.iter().map(|s| s.cluster.to_string()).collect();
            self.println(&format!(
                "all synced: {} cluster(s) ({}) in {:.1}s",
                clusters.len(),
                clusters.into_iter().collect::<Vec<_>>().join(", "),
                elapsed.as_secs_f64()
            ));
        }
        let _ = std::io::stdout().flush();
        all_synced
    }

    /// Prints a line above the spinner (plainly when there is none).
    fn println(&self, line: &str) {
        self.suspend(|| println!("{line}"));
    }

    /// Runs `print` (which writes to stdout) with the spinner hidden, so its lines and the
    /// spinner never overwrite each other.
    fn suspend(&self, print: impl FnOnce()) {
        match &self.spinner {
            Some(spinner) if !spinner.is_finished() => spinner.suspend(print),
            _ => print(),
        }
    }
}

impl Drop for Progress {
    /// Clears the spinner if it still turns (Ctrl-C or a timeout before everything synced).
    fn drop(&mut self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
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
fn sync_line(
    status: &ClusterInformerStatus,
    elapsed: Duration,
    runtime: &Runtime,
) -> Option<(String, String)> {
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
        Some(ReflectorState::BackingOff { error, code, .. }) => {
            let server = runtime
                .identity(cluster)
                .map_or_else(String::new, |i| format!(" ({})", i.server()));
            let kind = WatchErrorKind::of_failure(*code, error);
            Some((
                format!("backoff {kind:?}"),
                format!("{cluster}{server}: {resource} {kind}; retrying: {error}"),
            ))
        }
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
            _ = hangup.recv() => reload(args, runtime, &progress).await,
            _ = file_check.tick() => {
                let now = modified(&args.config.path);
                if now != last_modified {
                    last_modified = now;
                    reload(args, runtime, &progress).await;
                }
            }
            _ = summary.tick() => {
                progress.suspend(|| {
                    print_summary(runtime, counts, &mut previous, last_summary.elapsed());
                });
                last_summary = Instant::now();
            }
        }
    }
    drop(progress);
    println!("stopping");
    Ok(())
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn reload(args: &RunArgs, runtime: &Runtime, progress: &Progress) {
    let line = match args.config.load() {
        Ok(config) => match runtime.reload(&config).await {
            Ok(report) if report.is_empty() => "reloaded: no cluster changed".to_string(),
            Ok(report) => format!(
                "reloaded: added {:?}, removed {:?}, replaced {:?}",
                names(&report.added),
                names(&report.removed),
                names(&report.replaced)
            ),
            Err(error) => format!("reload failed: {}", error_chain(&error)),
        },
        Err(error) => format!("reload failed, keeping the running configuration:\n{error}"),
    };
    progress.println(&line);
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
