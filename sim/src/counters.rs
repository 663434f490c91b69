//! Per-cluster request counters, so tests can assert what a client did ("one LIST, then
//! one WATCH per relist") without scraping logs: requests served, lists and watches started
//! per resource (plural), and watches currently streaming at the HTTP level.
//!
//! Watches are also counted per client, keyed by the request's `User-Agent` (the way the
//! apiserver's audit log and `apiserver_request_total` tell clients apart), so a test that
//! runs several replicas can see which one watches a cluster right now. A request without a
//! User-Agent counts under [`NO_USER_AGENT`].

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
    /// (plural, User-Agent) → watches started since start or reset.
    watches_by_agent: Mutex<HashMap<(String, String), u64>>,
    /// (plural, User-Agent) → watches streaming now.
    open_watches_by_agent: Mutex<HashMap<(String, String), u64>>,
}

/// The key requests without a `User-Agent` header are counted under.
pub const NO_USER_AGENT: &str = "";

/// Entries of `map` for `plural`, by agent, leaving out zeros.
fn by_agent(map: &HashMap<(String, String), u64>, plural: &str) -> HashMap<String, u64> {
    map.iter()
        .filter(|((p, _), n)| p == plural && **n > 0)
        .map(|((_, agent), n)| (agent.clone(), *n))
        .collect()
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

    /// Watch responses on `plural` streaming right now, per User-Agent (agents with none open
    /// are left out). Not affected by reset.
    pub fn open_watches_by_agent(&self, plural: &str) -> HashMap<String, u64> {
        by_agent(&self.inner.open_watches_by_agent.lock(), plural)
    }

    /// WATCH requests on `plural` since start or the last reset, per User-Agent.
    pub fn watches_by_agent(&self, plural: &str) -> HashMap<String, u64> {
        by_agent(&self.inner.watches_by_agent.lock(), plural)
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
        self.inner.watches_by_agent.lock().clear();
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

    pub(crate) fn count_watch(&self, plural: &str, agent: &str) {
        *self
            .inner
            .watches
            .lock()
            .entry(plural.to_string())
            .or_default() += 1;
        *self
            .inner
            .watches_by_agent
            .lock()
            .entry((plural.to_string(), agent.to_string()))
            .or_default() += 1;
    }

    /// Marks a watch by `agent` as streaming until the guard drops.
    pub(crate) fn open_watch(&self, plural: &str, agent: &str) -> OpenWatchGuard {
        *self
            .inner
            .open_watches
            .lock()
            .entry(plural.to_string())
            .or_default() += 1;
        let key = (plural.to_string(), agent.to_string());
        *self
            .inner
            .open_watches_by_agent
            .lock()
            .entry(key.clone())
            .or_default() += 1;
        OpenWatchGuard {
            counters: self.clone(),
            key,
        }
    }
}

/// Keeps one watch counted in [`Counters::open_watches`] while alive.
pub(crate) struct OpenWatchGuard {
    counters: Counters,
    /// (plural, User-Agent).
    key: (String, String),
}

impl Drop for OpenWatchGuard {
    fn drop(&mut self) {
        if let Some(count) = self.counters.inner.open_watches.lock().get_mut(&self.key.0) {
            *count = count.saturating_sub(1);
        }
        let mut by_agent = self.counters.inner.open_watches_by_agent.lock();
        if let Some(count) = by_agent.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                by_agent.remove(&self.key);
            }
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
        counters.count_watch("pods", "a/1");
        let guard = counters.open_watch("pods", "a/1");
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

    #[test]
    fn watches_are_counted_per_agent_and_plural() {
        let counters = Counters::default();
        counters.count_watch("pods", "a/1");
        counters.count_watch("pods", "b/1");
        counters.count_watch("pods", "b/1");
        counters.count_watch("leases", "b/1");
        let a = counters.open_watch("pods", "a/1");
        let b1 = counters.open_watch("pods", "b/1");
        let b2 = counters.open_watch("pods", "b/1");
        let started = counters.watches_by_agent("pods");
        assert_eq!((started["a/1"], started["b/1"]), (1, 2));
        let open = counters.open_watches_by_agent("pods");
        assert_eq!((open.len(), open["a/1"], open["b/1"]), (2, 1, 2));
        drop((a, b1));
        let open = counters.open_watches_by_agent("pods");
        assert_eq!(open, HashMap::from([("b/1".to_string(), 1)]));
        drop(b2);
        assert!(counters.open_watches_by_agent("pods").is_empty());
        assert!(counters.open_watches_by_agent("leases").is_empty());
        counters.reset();
        assert!(counters.watches_by_agent("pods").is_empty());
    }
}
