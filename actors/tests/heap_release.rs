//! The heap a large list freed goes back to the operating system after a sync: resident
//! memory falls once `heap_release::after_first_sync` has run its trim (glibc only).
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::time::{Duration, Instant};

use panoptes_actors::heap_release::{LARGE_LIST, SETTLE, after_first_sync, set_enabled};

/// Resident bytes of this process (`/proc/self/statm`, second field, in pages).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs is mounted");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm has a resident field");
    // SAFETY: sysconf only reads a system constant.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page_size
}

const CHUNKS: usize = 100_000;
const CHUNK: usize = 2_048;

#[test]
fn should_return_a_freed_list_to_the_system_after_a_sync() {
    let baseline = resident_bytes();
    // Like a decoded list: many small objects; every 16th outlives the rest (as cached
    // entries do), so the freed ones are holes glibc keeps mapped, not a free heap top.
    let mut chunks: Vec<Vec<u8>> = (0..CHUNKS).map(|i| vec![i as u8; CHUNK]).collect();
    let kept: Vec<Vec<u8>> = chunks.iter_mut().step_by(16).map(std::mem::take).collect();
    drop(chunks);
    let freed = CHUNKS * CHUNK * 15 / 16;
    let after_free = resident_bytes();
    assert!(
        after_free > baseline + freed / 2,
        "precondition: the allocator kept the freed holes mapped \
         (resident {after_free} B, baseline {baseline} B)"
    );

    set_enabled(true);
    after_first_sync(LARGE_LIST);
    let deadline = Instant::now() + SETTLE + Duration::from_secs(30);
    loop {
        let now = resident_bytes();
        if now < after_free - freed / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resident memory stayed at {now} B (after the free: {after_free} B, freed {freed} B)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(kept.len(), CHUNKS / 16);
}

#[test]
fn should_not_trim_after_a_small_list() {
    // A small list schedules nothing, nor does a large one while the release is off: no
    // thread named heap-release appears.
    after_first_sync(LARGE_LIST);
    set_enabled(true);
    after_first_sync(LARGE_LIST - 1);
    let threads = std::fs::read_dir("/proc/self/task").expect("procfs is mounted");
    for thread in threads.flatten() {
        let name = std::fs::read_to_string(thread.path().join("comm")).unwrap_or_default();
        assert_ne!(
            name.trim(),
            "heap-release",
            "a trim was scheduled for a small list"
        );
    }
}
