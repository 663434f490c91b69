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
//! - [`after_first_sync`] asks for one `malloc_trim(0)`, run on its own thread a few seconds
//!   later ([`SETTLE`]), when the handlers have had time to drop the list's objects; requests
//!   made while one is pending join it, so a fleet syncing together trims a few times, not
//!   once per informer.
//! - Only on Linux with glibc, and only for lists of at least [`LARGE_LIST`] objects; elsewhere
//!   a no-op (other allocators return memory their own way).
//!
//! client-go has no counterpart: Go's runtime returns freed memory by itself.

/// Lists smaller than this leave too little garbage to be worth a trim.
pub const LARGE_LIST: usize = 1_000;

/// How long after a sync the trim runs: the list's objects are freed only once every handler
/// has taken its initial events.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Schedules a trim after an informer's first sync of `objects` objects (see the module docs).
pub fn after_first_sync(objects: usize) {
    if objects >= LARGE_LIST {
        trim::schedule();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod trim {
    use std::sync::atomic::{AtomicBool, Ordering};

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
