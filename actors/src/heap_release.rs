//! Gives the heap a large list freed back to the operating system.
//!
//! An informer's first list decodes every object at once (the `Replace` of all pages); a
//! compact cache then keeps only bytes, and the decoded objects are freed once the handlers
//! have seen them. glibc's allocator keeps freed pages mapped, in every thread's arena, so
//! without this a process's resident memory stays at the height of its syncs for good: a
//! 100 000-pod compact sync measured 3.2 GiB resident against 0.5 GiB of live heap, and
//! 0.55 GiB resident after `malloc_trim(0)` (`benches/informers`, P7).
//!
//! # Contract
//! - Off until [`set_enabled`] turns it on (the runtime's `[runtime] release_heap_after_sync`):
//!   `malloc_trim` holds glibc's arena locks while it walks the heap, so every allocating
//!   thread of the process stalls meanwhile. Landing in a stream of updates, it set P2's
//!   event→handler p99 at 5 000/s to 54–119 ms (0.7–1.0 ms without it): a trade of a one-off
//!   stall per sync for a resident size near the live heap, which a fleet wants and a
//!   latency-bound controller may not.
//! - [`after_first_sync`] asks for one `malloc_trim(0)`, run on its own thread a few seconds
//!   later ([`SETTLE`]), when the handlers have had time to drop the list's objects; requests
//!   made while one is pending join it, so a fleet syncing together trims a few times, not
//!   once per informer.
//! - Only on Linux with glibc, and only for lists of at least [`LARGE_LIST`] objects; elsewhere
//!   a no-op (other allocators return memory their own way).
//!
//! client-go has no counterpart: Go's runtime returns freed memory by itself.

use std::sync::atomic::{AtomicBool, Ordering};

/// Lists smaller than this leave too little garbage to be worth a trim.
pub const LARGE_LIST: usize = 1_000;

/// How long after a sync the trim runs: the list's objects are freed only once every handler
/// has taken its initial events.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether syncs give freed heap back (process-wide; off by default).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the release after syncs on or off for the whole process (see the module docs).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Release);
}

/// Whether the release after syncs is on.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Schedules a trim after an informer's first sync of `objects` objects, if enabled (see the
/// module docs).
pub fn after_first_sync(objects: usize) {
    if is_enabled() && objects >= LARGE_LIST {
        trim::schedule();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod trim {
    use super::{AtomicBool, Ordering};

    /// A trim is scheduled and has not started yet.
    static PENDING: AtomicBool = AtomicBool::new(false);

    pub(super) fn schedule() {
        if PENDING.swap(true, Ordering::AcqRel) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("heap-release".into())
            .spawn(|| {
                std::thread::sleep(super::SETTLE);
                PENDING.store(false, Ordering::Release);
                // SAFETY: malloc_trim only returns free pages of glibc's arenas to the kernel;
                // it takes the arena locks itself and touches no live allocation.
                let released = unsafe { libc::malloc_trim(0) };
                tracing::debug!(released = released != 0, "heap trimmed after a sync");
            });
        if let Err(error) = spawned {
            PENDING.store(false, Ordering::Release);
            tracing::warn!(%error, "cannot start the heap-release thread; freed memory stays mapped");
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod trim {
    pub(super) fn schedule() {}
}
