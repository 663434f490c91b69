//! A loose memory bound for the compact cache, counted by a counting global allocator (this
//! test binary's own): the heap a synced compact informer keeps per realistic pod is well
//! under what a typed one keeps. The exact figures are the bench's (P3); this only guards
//! against a regression such as a stage keeping decoded copies of every object.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::reflector::{ReflectorBatch, ReflectorDelta};
use panoptes_actors::{CacheMode, Informer, Transform, ids::ClusterId};

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PODS: u64 = 2_000;
const PATIENCE: Duration = Duration::from_secs(60);

/// Heap bytes per pod a synced detached informer of `mode` keeps, fed `PODS` realistic pods.
async fn heap_per_pod(mode: CacheMode) -> f64 {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let (informer, feed) = Informer::<Pod>::detached_cached(
        ClusterId::new("test"),
        "v1/pods",
        Transform::default(),
        mode,
    );
    let objects: Vec<Arc<Pod>> = (0..PODS)
        .map(|i| {
            let json = panoptes_sim::pods::realistic_pod("default", &format!("pod-{i}"), i);
            Arc::new(serde_json::from_value(json).expect("a realistic pod decodes"))
        })
        .collect();
    feed.do_send(ReflectorBatch {
        cluster: ClusterId::new("test"),
        deltas: vec![ReflectorDelta::Replace {
            objects,
            resource_version: "1".into(),
        }],
        trace: panoptes_actors::TraceContext::none(),
        arrived: tokio::time::Instant::now(),
    });
    assert!(
        informer.wait_synced(PATIENCE).await,
        "{mode} informer synced"
    );
    assert_eq!(informer.store().len(), PODS as usize);
    // Let the FIFO take the indexer's acknowledgement (it forgets acknowledged states).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while informer.fifo_status().await.unwrap().batch_in_flight {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the FIFO got its ack"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    informer.stop();
    held as f64 / PODS as f64
}

#[actix_rt::test]
async fn should_keep_a_compact_pod_in_well_under_the_heap_of_a_typed_one() {
    // Compact first: memory the first informer frees late only makes the second look
    // smaller, and the bound must not pass by that.
    let compact = heap_per_pod(CacheMode::Compact).await;
    let typed = heap_per_pod(CacheMode::Typed).await;
    eprintln!(
        "typed {:.1} KB/pod, compact {:.1} KB/pod",
        typed / 1024.0,
        compact / 1024.0
    );
    assert!(
        compact < 0.6 * typed,
        "compact {compact:.0} B/pod is not under 60 % of typed {typed:.0} B/pod"
    );
}
