//! Per-cluster request counters, so tests can assert what a client did ("one LIST, then
//! one WATCH per relist") without scraping logs: requests served, lists and watches started
//! per resource (plural), and watches currently streaming at the HTTP level.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// The counters of one cluster. Cheap to clone; all clones count together.
#[derive(Clone, Default)]
pub struct Counters {
    inner: Arc<CountersInner>,
}

#[derive(Default)]
struct CountersInner {
    requests: AtomicU64,
    lists: Mutex<HashMap<String, u64>>,
    watches: Mutex<HashMap<String, u64>>,
    open_watches: Mutex<HashMap<String, u64>>,
}

impl Counters {
    /// LIST requests on `plural` since start or the last [`Counters::reset`].
    pub fn lists(&self, plural: &str) -> u64 {
        self.inner.lists.lock().get(plural).copied().unwrap_or(0)
    }

    /// WATCH requests on `plural` since start or the last reset.
    pub fn watches(&self, plural: &str) -> u64 {
        self.inner.watches.lock().get(plural).copied().unwrap_or(0)
    }

    /// Watch responses on `plural` streaming right now (not affected by reset).
    pub fn open_watches(&self, plural: &str) -> u64 {
        self.inner
            .open_watches
            .lock()
            .get(plural)
            .copied()
            .unwrap_or(0)
    }

    /// Every HTTP request received, whatever its answer.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Zeroes requests, lists and watches.
    pub fn reset(&self) {
        self.inner.requests.store(0, Ordering::Relaxed);
        self.inner.lists.lock().clear();
        self.inner.watches.lock().clear();
    }

    pub(crate) fn count_request(&self) {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_list(&self, plural: &str) {
        *self
            .inner
            .lists
            .lock()
            .entry(plural.to_string())
            .or_default() += 1;
    }

    pub(crate) fn count_watch(&self, plural: &str) {
        *self
            .inner
            .watches
            .lock()
            .entry(plural.to_string())
            .or_default() += 1;
    }

    /// Marks a watch as streaming until the guard drops.
    pub(crate) fn open_watch(&self, plural: &str) -> OpenWatchGuard {
        *self
            .inner
            .open_watches
            .lock()
            .entry(plural.to_string())
            .or_default() += 1;
        OpenWatchGuard {
            counters: self.clone(),
            plural: plural.to_string(),
        }
    }
}

/// Keeps one watch counted in [`Counters::open_watches`] while alive.
pub(crate) struct OpenWatchGuard {
    counters: Counters,
    plural: String,
}

impl Drop for OpenWatchGuard {
    fn drop(&mut self) {
        let mut open = self.counters.inner.open_watches.lock();
        if let Some(count) = open.get_mut(&self.plural) {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let counters = Counters::default();
        counters.count_request();
        counters.count_list("pods");
        counters.count_watch("pods");
        let guard = counters.open_watch("pods");
        assert_eq!(
            (
                counters.requests(),
                counters.lists("pods"),
                counters.watches("pods")
            ),
            (1, 1, 1)
        );
        assert_eq!(counters.open_watches("pods"), 1);
        counters.reset();
        assert_eq!(
            (
                counters.requests(),
                counters.lists("pods"),
                counters.open_watches("pods")
            ),
            (0, 0, 1)
        );
        drop(guard);
        assert_eq!(counters.open_watches("pods"), 0);
    }
}
