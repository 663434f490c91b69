//! The API server under load runs in its own process (this same bench binary started with
//! `__serve`), so its CPU time and heap never mix with the client's figures.
//!
//! Protocol: the parent starts `<bench exe> __serve <clusters> <pods> <kubeconfig path>`;
//! the child seeds `<pods>` realistic pods (`panoptes_sim::pods::seed`, managedFields
//! included) into namespace `default` of every cluster, writes the kubeconfig and prints
//! `ready`. Then it answers one line per command on stdin (`ok ...` or `error: ...`):
//!
//! ```text
//! counters <cluster index>            -> ok lists=<n> watches=<n>      (pods)
//! latency <cluster index> <ms>        -> ok                            (every request waits)
//! write <generation> <rate/s> <count> -> ok                            (stamped updates, cluster 0)
//! written                             -> ok <n> <nanos>                (updates made so far, time since the first)
//! churn <rate/s> <seconds>            -> ok                            (stamped updates spread over every cluster)
//! ```
//!
//! `churn` (P7) is `write` over the whole fleet: update `seq` goes to cluster
//! `seq % clusters`, pod `(seq / clusters) % pods`, generation 0; `written` counts it too.
//!
//! The child prints `seeded <clusters> x <pods> pods in <seconds> s` on stderr: seeding a
//! fleet (P7: 500k realistic pods) runs one thread per cluster and is timed.
//!
//! Stamped updates patch annotation [`STAMP`] of pod `seq % pods` to
//! `<generation>:<unix nanos>`, so a client measures event→handler latency against the
//! server's own clock (same machine). EOF on stdin ends the child.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use panoptes_sim::store::{PatchType, Subresource, WriteOptions};
use panoptes_sim::{Sim, SimOptions};

/// The annotation stamped updates write: `<generation>:<unix nanos>`.
pub const STAMP: &str = "bench.panoptes.dev/written-at";

/// The CPU the server is pinned to when pinning (the client gets the other one).
pub const SERVER_CPU: usize = 1;
pub const CLIENT_CPU: usize = 0;

/// Nanoseconds since the Unix epoch (comparable across processes on one machine).
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Parses a [`STAMP`] value: `(generation, unix nanos)`.
pub fn parse_stamp(value: &str) -> Option<(u64, u64)> {
    let (generation, nanos) = value.split_once(':')?;
    Some((generation.parse().ok()?, nanos.parse().ok()?))
}

/// The parent's handle on a server child. Dropping it kills the child.
pub struct ServerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    kubeconfig: String,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts a child serving `clusters` clusters of `pods` pods each; returns when it is ready.
    pub fn spawn(clusters: usize, pods: usize, pin: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("temporary directory for the kubeconfig")?;
        let kubeconfig_path = dir.path().join("kubeconfig.yaml");
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let mut command = if pin {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(SERVER_CPU.to_string()).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        command
            .arg("__serve")
            .arg(clusters.to_string())
            .arg(pods.to_string())
            .arg(&kubeconfig_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().context("starting the server process")?;
        let stdin = child.stdin.take().context("server stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("server stdout")?);
        let mut server = ServerProcess {
            child,
            stdin,
            stdout,
            kubeconfig: String::new(),
            _dir: dir,
        };
        let first = server.read_line()?;
        if first != "ready" {
            bail!("the server process said {first:?} instead of `ready`");
        }
        server.kubeconfig = std::fs::read_to_string(&kubeconfig_path)
            .with_context(|| format!("reading {}", kubeconfig_path.display()))?;
        Ok(server)
    }

    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// Sends one command; returns the text after `ok`.
    pub fn command(&mut self, line: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{line}").context("writing to the server process")?;
        self.stdin.flush()?;
        let answer = self.read_line()?;
        match answer.strip_prefix("ok") {
            Some(rest) => Ok(rest.trim().to_string()),
            None => bail!("server process: {line:?} -> {answer:?}"),
        }
    }

    /// `(lists, watches)` of pods in cluster `index` since it started.
    pub fn pod_counters(&mut self, index: usize) -> anyhow::Result<(u64, u64)> {
        let answer = self.command(&format!("counters {index}"))?;
        let mut lists = None;
        let mut watches = None;
        for word in answer.split_whitespace() {
            if let Some(n) = word.strip_prefix("lists=") {
                lists = n.parse().ok();
            } else if let Some(n) = word.strip_prefix("watches=") {
                watches = n.parse().ok();
            }
        }
        match (lists, watches) {
            (Some(l), Some(w)) => Ok((l, w)),
            _ => bail!("unreadable counters answer {answer:?}"),
        }
    }

    fn read_line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let read = self
            .stdout
            .read_line(&mut line)
            .context("reading from the server process")?;
        if read == 0 {
            bail!("the server process exited (see its stderr above)");
        }
        Ok(line.trim().to_string())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side: `args` are what follows `__serve`.
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    let [clusters, pods, kubeconfig] = args else {
        bail!("usage: __serve <clusters> <pods> <kubeconfig path>, got {args:?}");
    };
    let clusters: usize = clusters.parse().context("<clusters>")?;
    let pods: usize = pods.parse().context("<pods>")?;
    let sim = Sim::start(SimOptions {
        clusters,
        ..Default::default()
    })?;
    let seeding = Instant::now();
    // One thread per cluster (each cluster has its own store): with the server pinned to one
    // CPU this gains nothing, unpinned it divides P7's 500k-pod seed by the cores.
    std::thread::scope(|scope| {
        for cluster in sim.clusters() {
            let store = cluster.store();
            scope.spawn(move || panoptes_sim::pods::seed(&store, "default", pods));
        }
    });
    eprintln!(
        "seeded {clusters} x {pods} pods in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    sim.write_kubeconfig(std::path::Path::new(kubeconfig))?;
    println!("ready");
    let written = Arc::new(AtomicU64::new(0));
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let answer = match answer(&sim, pods, &written, &line) {
            Ok(text) => format!("ok {text}"),
            Err(e) => format!("error: {e:#}"),
        };
        println!("{answer}");
    }
    Ok(())
}

fn answer(sim: &Sim, pods: usize, written: &Arc<AtomicU64>, line: &str) -> anyhow::Result<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let cluster = |i: &str| -> anyhow::Result<&panoptes_sim::SimCluster> {
        let i: usize = i.parse().context("cluster index")?;
        sim.clusters().get(i).context("no such cluster")
    };
    match words.as_slice() {
        ["counters", i] => {
            let counters = cluster(i)?.counters();
            Ok(format!(
                "lists={} watches={}",
                counters.lists("pods"),
                counters.watches("pods")
            ))
        }
        ["latency", i, ms] => {
            cluster(i)?
                .faults()
                .set_latency(Duration::from_millis(ms.parse().context("milliseconds")?));
            Ok(String::new())
        }
        ["write", generation, rate, count] => {
            let generation: u64 = generation.parse().context("generation")?;
            let rate: f64 = rate.parse().context("rate")?;
            let count: u64 = count.parse().context("count")?;
            written.store(0, Ordering::Relaxed);
            WRITING_FOR_NANOS.store(0, Ordering::Relaxed);
            let store = sim.cluster(0).store();
            let written = written.clone();
            std::thread::spawn(move || {
                write_stamped(
                    std::slice::from_ref(&store),
                    pods.max(1),
                    generation,
                    rate,
                    count,
                    &written,
                )
            });
            Ok(String::new())
        }
        ["churn", rate, seconds] => {
            let rate: f64 = rate.parse().context("rate")?;
            let seconds: f64 = seconds.parse().context("seconds")?;
            written.store(0, Ordering::Relaxed);
            WRITING_FOR_NANOS.store(0, Ordering::Relaxed);
            let stores: Vec<_> = sim.clusters().iter().map(|c| c.store()).collect();
            let written = written.clone();
            let count = (rate * seconds).round() as u64;
            std::thread::spawn(move || {
                write_stamped(&stores, pods.max(1), 0, rate, count, &written)
            });
            Ok(String::new())
        }
        ["written"] => Ok(format!(
            "{} {}",
            written.load(Ordering::Relaxed),
            WRITING_FOR_NANOS.load(Ordering::Relaxed)
        )),
        _ => bail!("unknown command {line:?}"),
    }
}

/// How long the current write job has been writing (nanoseconds), updated per write.
static WRITING_FOR_NANOS: AtomicU64 = AtomicU64::new(0);

/// Patches `count` pods' [`STAMP`] annotation to `<generation>:<unix nanos>`, paced at `rate`
/// per second of wall time: update `seq` goes to store `seq % stores`, pod
/// `(seq / stores) % pods`, so every store gets an equal share and no pod is updated twice
/// before every pod of its store was. One store for P2's `write`, the whole fleet for P7's
/// `churn` (generation 0).
fn write_stamped(
    stores: &[panoptes_sim::store::ClusterStore],
    pods: usize,
    generation: u64,
    rate: f64,
    count: u64,
    written: &AtomicU64,
) {
    if stores.is_empty() {
        return;
    }
    // Each store's own resource type (they are equal, but a store is only asked about its own).
    let types: Vec<_> = stores.iter().map(|s| s.builtin("", "pods")).collect();
    let options = WriteOptions {
        field_manager: Some("bench".into()),
        ..Default::default()
    };
    let clusters = stores.len() as u64;
    let started = Instant::now();
    for seq in 0..count {
        while (started.elapsed().as_secs_f64() * rate) < seq as f64 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let index = (seq % clusters) as usize;
        let (store, rt) = (&stores[index], &types[index]);
        let name = panoptes_sim::pods::pod_name((seq / clusters) % pods as u64);
        let body = format!(
            r#"{{"metadata":{{"annotations":{{"{STAMP}":"{generation}:{}"}}}}}}"#,
            unix_nanos()
        );
        if let Err(status) = store.patch(
            rt,
            Some("default"),
            &name,
            Subresource::Main,
            PatchType::StrategicMerge,
            body.as_bytes(),
            &options,
        ) {
            eprintln!("bench server: patching {name} failed: {}", status.message);
        }
        WRITING_FOR_NANOS.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        written.fetch_add(1, Ordering::Relaxed);
    }
}
