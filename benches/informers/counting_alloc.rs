//! A counting `#[global_allocator]`: the system allocator plus two relaxed atomics (bytes
//! live, allocations live), so P3 can state exactly what a cached pod costs on the heap
//! instead of guessing from RSS, which also counts freed-but-kept pages and fragmentation.
//! Timed reads run [`uncounted`]: the two atomic adds per allocation and free are the
//! instrument's cost, not the code's (a compact `get` makes ~130 allocations).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

pub struct CountingAlloc;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCATIONS: AtomicI64 = AtomicI64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(true);

/// Runs `f` with the counters off. What `f` allocates it must also free (a block allocated
/// uncounted and freed counted would skew the live figures), so time reads that drop what
/// they read, nothing that keeps memory.
pub fn uncounted<T>(f: impl FnOnce() -> T) -> T {
    COUNTING.store(false, Ordering::SeqCst);
    let out = f();
    COUNTING.store(true, Ordering::SeqCst);
    out
}

/// The heap as the program sees it: requested bytes and blocks not yet freed.
#[derive(Debug, Clone, Copy)]
pub struct HeapSnapshot {
    pub bytes: i64,
    pub allocations: i64,
}

impl HeapSnapshot {
    pub fn now() -> Self {
        Self {
            bytes: LIVE_BYTES.load(Ordering::Relaxed),
            allocations: LIVE_ALLOCATIONS.load(Ordering::Relaxed),
        }
    }

    /// What was allocated and is still live since `earlier`.
    pub fn since(self, earlier: HeapSnapshot) -> HeapSnapshot {
        HeapSnapshot {
            bytes: self.bytes - earlier.bytes,
            allocations: self.allocations - earlier.allocations,
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
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

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        new
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}

/// Hands freed heap back to the OS. A contender's cache of 100k pods is gigabytes; glibc
/// keeps freed blocks in its per-thread arenas, so without this the next contender's heap
/// would be stacked on the last one's and the run could be killed for memory it no longer
/// uses. (Live-heap figures are unaffected: they count what the program holds.)
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it needs no arguments of ours
    // beyond the padding to keep.
    unsafe {
        malloc_trim(0);
    }
}

/// What may stay allocated after a contender is dropped (pooled connections' buffers). Small:
/// at the quick mode's 1000 pods a whole cache is only ~30 MB.
const DROPPED_SLACK: i64 = 1 << 20;
/// How long a dropped contender's heap may take to be freed.
const DROPPED_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until the live heap is back within 1 MiB of `baseline` (polling, at most 60 s);
/// false if it never gets there. A contender's cache can be freed on another thread after
/// its handle is dropped (kube-runtime's aborted watcher task, Panoptes' stopping arbiter):
/// freeing 100k pods takes seconds, and it must not overlap the next contender's timing.
pub async fn settle_heap(baseline: HeapSnapshot) -> bool {
    let deadline = std::time::Instant::now() + DROPPED_PATIENCE;
    loop {
        if HeapSnapshot::now().since(baseline).bytes <= DROPPED_SLACK {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// This process's resident set in MiB (0 when /proc is unavailable), for progress lines.
pub fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096 / (1024 * 1024))
}
