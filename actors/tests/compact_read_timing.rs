//! Timing of a compact cache's typed reads (issue 15), not a pass/fail test: run it in a
//! release build with
//! `cargo test --release -p panoptes-actors --test compact_read_timing -- --ignored --nocapture`
//! (`COUNT_ALLOC=1` turns on a counting global allocator like the bench's).
//!
//! Prints per-call times of: decoding one realistic pod's bytes again and again (hot), of
//! decoding 20 000 different pods' bytes once each (cold), and of `Lister::get` / `list` on
//! a synced detached compact informer of 20 000 pods; `decode_loop` compares
//! `serde_json::from_str` with simd-json over a scratch copy (what `compact::decode_json` does)
//! in a loop a profiler can sample.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::core::Selector;
use panoptes_actors::reflector::{ReflectorBatch, ReflectorDelta};
use panoptes_actors::{CacheMode, Informer, Transform, ids::ClusterId};

struct MaybeCounting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCATIONS: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe.
unsafe impl GlobalAlloc for MaybeCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[global_allocator]
static ALLOC: MaybeCounting = MaybeCounting;

const PODS: u64 = 20_000;
const GETS: usize = 5_000;
const PATIENCE: Duration = Duration::from_secs(120);

fn pod(i: u64) -> Pod {
    let mut value = panoptes_sim::pods::realistic_pod("default", &format!("pod-{i}"), i);
    value["metadata"]
        .as_object_mut()
        .expect("a pod has metadata")
        .remove("managedFields");
    serde_json::from_value(value).expect("a realistic pod decodes")
}

fn percentiles(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / times.len() as f64;
    eprintln!(
        "{label:<40} p10 {:6.1} µs  p50 {:6.1} µs  p90 {:6.1} µs  mean {mean:6.1} µs",
        at(0.1),
        at(0.5),
        at(0.9)
    );
}

#[actix_rt::test]
#[ignore = "a timing to read, run by hand in a release build"]
async fn compact_read_timing() {
    COUNTING.store(std::env::var_os("COUNT_ALLOC").is_some(), Ordering::Relaxed);
    eprintln!("counting allocator: {}", COUNTING.load(Ordering::Relaxed));
    let pods: Vec<Arc<Pod>> = (0..PODS).map(|i| Arc::new(pod(i))).collect();
    let bytes: Vec<Vec<u8>> = pods
        .iter()
        .map(|p| serde_json::to_vec(p.as_ref()).unwrap())
        .collect();
    eprintln!(
        "JSON bytes per pod: {}",
        bytes.iter().map(Vec::len).sum::<usize>() / bytes.len()
    );

    // Decode one pod's bytes again and again.
    let one = &bytes[7];
    let hot: Vec<Duration> = (0..GETS)
        .map(|_| {
            let started = Instant::now();
            let pod: Pod = serde_json::from_slice(one).unwrap();
            let took = started.elapsed();
            drop(pod);
            took
        })
        .collect();
    percentiles("from_slice, one pod again and again", hot);

    let allocs_before = LIVE_ALLOCATIONS.load(Ordering::Relaxed);
    let pod: Pod = serde_json::from_slice(one).unwrap();
    eprintln!(
        "allocations live per decoded pod (COUNT_ALLOC only): {}",
        LIVE_ALLOCATIONS.load(Ordering::Relaxed) - allocs_before
    );
    drop(pod);

    // Decode different pods, each dropped before the next (as the bench's gets do).
    let cold: Vec<Duration> = bytes
        .iter()
        .take(GETS)
        .map(|b| {
            let started = Instant::now();
            let pod: Pod = serde_json::from_slice(b).unwrap();
            let took = started.elapsed();
            drop(pod);
            took
        })
        .collect();
    percentiles("from_slice, 5000 pods, each dropped", cold);

    // Decode different pods, all kept (as list does).
    let started = Instant::now();
    let kept: Vec<Pod> = bytes
        .iter()
        .take(GETS)
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    eprintln!(
        "{:<40} mean {:6.1} µs",
        "from_slice, 5000 pods, all kept",
        started.elapsed().as_secs_f64() * 1e6 / GETS as f64
    );
    drop(kept);
    drop(bytes);

    let (informer, feed) = Informer::<Pod>::detached_cached(
        ClusterId::new("test"),
        "v1/pods",
        Transform::default(),
        CacheMode::Compact,
    );
    feed.do_send(ReflectorBatch {
        cluster: ClusterId::new("test"),
        deltas: vec![ReflectorDelta::Replace {
            objects: pods,
            resource_version: "1".into(),
        }],
        trace: panoptes_actors::TraceContext::none(),
        arrived: tokio::time::Instant::now(),
    });
    assert!(informer.wait_synced(PATIENCE).await, "informer synced");
    let lister = informer.lister();
    let names: Vec<String> = informer
        .store()
        .list_keys()
        .iter()
        .map(|k| k.as_str().rsplit('/').next().unwrap().to_string())
        .collect();
    for round in 0..3 {
        let gets: Vec<Duration> = names
            .iter()
            .cycle()
            .skip(round * GETS)
            .take(GETS)
            .map(|name| {
                let started = Instant::now();
                let pod = lister.get(Some("default"), name);
                let took = started.elapsed();
                assert!(pod.is_some(), "{name} is cached");
                took
            })
            .collect();
        percentiles(&format!("Lister::get, round {round}"), gets);
    }
    let gets: Vec<Duration> = (0..GETS)
        .map(|_| {
            let started = Instant::now();
            let pod = lister.get(Some("default"), &names[7]);
            let took = started.elapsed();
            assert!(pod.is_some());
            took
        })
        .collect();
    percentiles("Lister::get, one pod again and again", gets);
    for _ in 0..3 {
        let started = Instant::now();
        let all = lister.list(None, &Selector::default());
        let took = started.elapsed();
        assert_eq!(all.len(), PODS as usize);
        eprintln!(
            "{:<40} {:6.1} ms ({:.1} µs per pod)",
            "Lister::list of all",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / PODS as f64
        );
    }
    informer.stop();
}

/// A loop of decodes only, for a profiler: `perf record <test binary> --ignored decode_loop`.
#[test]
#[ignore = "a loop to profile, run by hand in a release build"]
fn decode_loop() {
    let bytes: Vec<Vec<u8>> = (0..64)
        .map(|i| serde_json::to_vec(&pod(i)).unwrap())
        .collect();
    let rounds = 20_000;
    for _ in 0..3 {
        let started = Instant::now();
        for i in 0..rounds {
            let text = std::str::from_utf8(&bytes[i % bytes.len()]).unwrap();
            let pod: Pod = serde_json::from_str(text).unwrap();
            std::hint::black_box(&pod);
        }
        let serde = started.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        let (mut scratch, mut buffers) = (Vec::new(), simd_json::Buffers::default());
        let started = Instant::now();
        for i in 0..rounds {
            scratch.clear();
            scratch.extend_from_slice(&bytes[i % bytes.len()]);
            let pod: Pod =
                simd_json::serde::from_slice_with_buffers(&mut scratch, &mut buffers).unwrap();
            std::hint::black_box(&pod);
        }
        let simd = started.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        eprintln!(
            "decode_loop: serde_json from_utf8+from_str {serde:.2} µs, simd-json {simd:.2} µs per pod"
        );
    }
}
