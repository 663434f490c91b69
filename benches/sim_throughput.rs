//! Throughput of the embedded API server (not a test; `harness = false`):
//!
//! - list: N realistic pods read through HTTPS in pages of 500 (what a reflector's initial
//!   list does), reported as MB/s and pods/s;
//! - watch: one watcher on pods while the churn generator writes as fast as it can,
//!   reported as events/s delivered to the client;
//! - stamped: one watcher on the seeded pods while one thread writes the informers bench's
//!   stamped update (`server_process.rs::write_stamped`: a strategic merge patch of one
//!   annotation, manager `bench`) to them round robin as fast as it can, reported as
//!   events/s delivered (issue 15's "server fast enough to measure the client"), in three
//!   rounds. The store keeps one revision per seeded pod (`history_limit` and the watch cache
//!   window), and a history event holds its object and the one it replaced, so:
//!   - "history filling": compactions free only what the watch phase wrote, so most writes'
//!     bytes land in fresh heap (0.45 page faults per write);
//!   - "settling": compactions free the seeded objects, but those were allocated by the
//!     seeding thread, in another of glibc's arenas, which the writer does not allocate
//!     from (2.0 faults/write; a 1 ms `snapshot_ttl` changes nothing);
//!   - "steady state", a server that has run for a while: each write compacts a revision
//!     holding objects the writer itself allocated, and the allocator reuses that memory
//!     (0 faults).
//!     On a VM whose host backs guest memory lazily, first touches of fresh pages are dear:
//!     a profile of a round with ~2 faults per write had 41 % of the writer's samples in the
//!     kernel's `clear_page_erms`.
//!
//! On a machine with two or more CPUs the server's threads (the sim's runtime, the writer,
//! the churn generator) are pinned to CPU 1 and the counting client to CPU 0, so the figures
//! are what the server delivers from one core; `--no-pin` turns that off.
//!
//! `cargo bench --bench sim_throughput [-- PODS | -- --full] [--no-pin]`; `SIM_BENCH_PODS` also sets N
//! (default 20 000; `--full` = 100 000). `SIM_BENCH_WATCH_EVENTS` sets the churn and stamped writes
//! (default 20 000). The stamped line also gives the writer thread's CPU time and minor page
//! faults per write: on a shared host they say more about the write path than the wall clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use panoptes_sim::churn::{Churn, ChurnConfig};
use panoptes_sim::store::{PatchType, StoreConfig, Subresource, WriteOptions};
use panoptes_sim::{Sim, SimOptions};

fn pods_to_seed() -> usize {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.iter().any(|a| a == "--full") {
        return 100_000;
    }
    args.iter()
        .find_map(|a| a.parse().ok())
        .or_else(|| {
            std::env::var("SIM_BENCH_PODS")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(20_000)
}

async fn get(client: &kube::Client, uri: &str) -> http::Response<kube::client::Body> {
    let request = http::Request::builder()
        .uri(uri)
        .header("accept", "application/json")
        .body(Vec::new().into())
        .expect("request");
    client.send(request).await.expect("response")
}

/// The `continue` token of a list body, read from the metadata that precedes the items.
fn continue_token(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(2048)];
    let text = String::from_utf8_lossy(head);
    let start = text.find("\"continue\":\"")? + "\"continue\":\"".len();
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_string())
}

async fn bench_list(client: &kube::Client, pods: usize) {
    let started = Instant::now();
    let (mut bytes, mut pages) = (0usize, 0usize);
    let mut token: Option<String> = None;
    loop {
        let uri = match &token {
            Some(t) => format!("/api/v1/namespaces/bench/pods?limit=500&continue={t}"),
            None => "/api/v1/namespaces/bench/pods?limit=500".to_string(),
        };
        let response = get(client, &uri).await;
        assert_eq!(response.status(), 200, "list page {pages}");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        bytes += body.len();
        pages += 1;
        token = continue_token(&body);
        if token.is_none() {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "list:  {pods} pods, {pages} pages of 500, {:.1} MB in {secs:.2} s = {:.1} MB/s, {:.0} pods/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        pods as f64 / secs
    );
}

/// Watch events (lines) read from `body` until `expected` arrived, the stream paused for 10 s,
/// or 120 s passed since `started`.
async fn count_events(body: &mut kube::client::Body, expected: u64, started: Instant) -> u64 {
    let mut events = 0u64;
    let deadline = started + Duration::from_secs(120);
    while events < expected && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    events += data.iter().filter(|b| **b == b'\n').count() as u64;
                }
            }
            _ => break,
        }
    }
    events
}

async fn bench_watch(sim: &Sim, client: &kube::Client, writes: u64) {
    let store = sim.cluster(0).store();
    let rv = store.resource_version();
    let response = get(
        client,
        &format!("/api/v1/namespaces/churn/pods?watch=true&resourceVersion={rv}"),
    )
    .await;
    assert_eq!(response.status(), 200, "watch");
    let mut body = response.into_body();
    let config = ChurnConfig {
        namespace: "churn".into(),
        target_pods: 1000,
        rate_per_sec: 1e9,
        max_writes: Some(writes),
        ..Default::default()
    };
    let started = Instant::now();
    let churn = on_server_core(|| Churn::start(store, config));
    let events = count_events(&mut body, writes, started).await;
    let secs = started.elapsed().as_secs_f64();
    let stats = churn.stop();
    println!(
        "watch: {events} events of {writes} writes ({} created, {} updated, {} deleted) in {secs:.2} s = {:.0} events/s",
        stats.created,
        stats.updated,
        stats.deleted,
        events as f64 / secs
    );
}

/// The annotation the informers bench stamps (`server_process.rs::STAMP`).
const STAMP: &str = "bench.panoptes.dev/written-at";

async fn bench_stamped(sim: &Sim, client: &kube::Client, pods: usize, writes: u64, round: &str) {
    let store = sim.cluster(0).store();
    let rv = store.resource_version();
    let response = get(
        client,
        &format!("/api/v1/namespaces/bench/pods?watch=true&resourceVersion={rv}"),
    )
    .await;
    assert_eq!(response.status(), 200, "watch");
    let mut body = response.into_body();
    let started = Instant::now();
    let writer = std::thread::Builder::new()
        .name("stamped-writer".into())
        .spawn(move || {
            pin_this_thread(SERVER_CPU);
            let cpu_before = thread_cpu_nanos();
            let faults_before = thread_minor_faults();
            let rt = store.builtin("", "pods");
            let options = WriteOptions {
                field_manager: Some("bench".into()),
                ..Default::default()
            };
            for seq in 0..writes {
                let name = panoptes_sim::pods::pod_name(seq % pods.max(1) as u64);
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let patch =
                    format!(r#"{{"metadata":{{"annotations":{{"{STAMP}":"1:{nanos}"}}}}}}"#);
                store
                    .patch(
                        &rt,
                        Some("bench"),
                        &name,
                        Subresource::Main,
                        PatchType::StrategicMerge,
                        patch.as_bytes(),
                        &options,
                    )
                    .expect("stamped update");
            }
            let cpu = thread_cpu_nanos()
                .zip(cpu_before)
                .map(|(after, before)| (after - before) as f64 / 1e9);
            let faults = thread_minor_faults()
                .zip(faults_before)
                .map(|(after, before)| after - before);
            (started.elapsed().as_secs_f64(), cpu, faults)
        })
        .expect("writer thread");
    let events = count_events(&mut body, writes, started).await;
    let secs = started.elapsed().as_secs_f64();
    let (write_secs, write_cpu, write_faults) = writer.join().expect("writer");
    println!(
        "stamped, {round}: {events} events of {writes} stamped updates in {secs:.2} s = {:.0} events/s (writes alone {:.0}/s; writer CPU {}; {} page faults/write)",
        events as f64 / secs,
        writes as f64 / write_secs,
        write_cpu.map_or("unknown".into(), |cpu| format!(
            "{:.1} µs/write = {:.0} writes per CPU-second",
            cpu * 1e6 / writes as f64,
            writes as f64 / cpu
        )),
        write_faults.map_or("unknown".into(), |faults| format!(
            "{:.2}",
            faults as f64 / writes as f64
        ))
    );
}

/// This thread's time on a CPU (Linux `schedstat`), if the system says: on a shared
/// machine it says more about the write path's cost than the wall clock.
fn thread_cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// This thread's minor page faults (Linux `/proc/thread-self/stat`, field 10): the writer's
/// first touches of fresh heap, which on this kind of host cost as much as the write itself.
fn thread_minor_faults() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised name: state is field 3, minflt field 10.
    let after_name = &text[text.rfind(')')? + 1..];
    after_name.split_whitespace().nth(7)?.parse().ok()
}

/// The smallest history the bench gives its store (revisions kept per resource).
const MIN_HISTORY: usize = 1_000;

/// Where the server's threads run when pinned, and where the client runs.
const SERVER_CPU: usize = 1;
const CLIENT_CPU: usize = 0;

static PINNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Pins the calling thread, and so the threads it starts afterwards, to `cpu` when pinning is
/// on.
fn pin_this_thread(cpu: usize) {
    if PINNED.load(std::sync::atomic::Ordering::Relaxed) {
        set_affinity(cpu);
    }
}

/// Moves the calling thread to `cpu`; says whether the system allowed it.
fn set_affinity(cpu: usize) -> bool {
    // SAFETY: `set` is a plain bit set owned by this frame; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Runs `start` on the server's core, so the threads it starts run there, then returns the
/// calling (client) thread to its own core.
fn on_server_core<T>(start: impl FnOnce() -> T) -> T {
    pin_this_thread(SERVER_CPU);
    let started = start();
    pin_this_thread(CLIENT_CPU);
    started
}

fn main() {
    let pods = pods_to_seed();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cpus >= 2 && !std::env::args().any(|a| a == "--no-pin");
    // A system that refuses affinity (a restricted cpuset) runs the bench unpinned.
    let pinned = pin && set_affinity(CLIENT_CPU);
    PINNED.store(pinned, std::sync::atomic::Ordering::Relaxed);
    let writes = std::env::var("SIM_BENCH_WATCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000u64);
    // One revision per seeded pod in the history and the watch cache window, so that writing
    // every pod twice over reaches the steady state (see the module docs).
    let history = pods.max(MIN_HISTORY);
    let sim = on_server_core(|| {
        Sim::start(SimOptions {
            worker_threads: 2,
            store: StoreConfig {
                history_limit: history,
                watch_cache_max: history,
                ..Default::default()
            },
            ..Default::default()
        })
        .expect("sim starts")
    });
    println!(
        "{}",
        if pinned {
            "server threads on CPU 1, client on CPU 0"
        } else {
            "not pinned"
        }
    );
    let seeded = Instant::now();
    panoptes_sim::pods::seed(&sim.cluster(0).store(), "bench", pods);
    println!(
        "seed:  {pods} pods in {:.2} s",
        seeded.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    runtime.block_on(async {
        let kubeconfig =
            Kubeconfig::from_yaml(&sim.cluster(0).kubeconfig_yaml()).expect("kubeconfig");
        let options = KubeConfigOptions {
            context: Some("sim-1".into()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        bench_list(&client, pods).await;
        bench_watch(&sim, &client, writes).await;
        for round in ["history filling", "settling", "steady state"] {
            bench_stamped(&sim, &client, pods, writes, round).await;
        }
    });
}
