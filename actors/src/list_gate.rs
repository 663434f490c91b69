//! How many lists a process gathers at once: the memory bound of a fleet's first sync.
//!
//! A reflector holds a list whole, decoded, until its last page has arrived (one `Replace`,
//! as client-go's reflector does), so a fleet whose clusters all list at once holds every
//! cluster's decoded objects at the same moment: 50 clusters × 10 000 realistic pods peaked
//! at about 27 KB of live heap per pod while their compact caches keep 5 KB
//! (`benches/informers`, P7). A gate shared by a registry's reflectors lets at most `limit`
//! lists gather at a time; the client's one decode pool is the bottleneck of a fleet sync
//! anyway, so a few lists in flight keep it as busy as fifty.
//!
//! # Contract
//! - A reflector takes a permit before a list's first page and holds it until the list ends:
//!   its `Replace` is sent, or the list failed and the reflector backs off. Watches, resumed
//!   or not, never wait for one.
//! - A list whose next page is not in after the gate's `stall` time gives its permit up and
//!   goes on without one, so a slow or stalled server never holds back the others (the
//!   memory it holds meanwhile is the pages it has, which a stall does not grow).
//! - Permits go out first come, first served (tokio's semaphore is fair).
//! - Streaming lists (`sendInitialEvents=true` watches) are not gated.
//!
//! client-go and kube-runtime have no such gate: every informer lists when it starts.
//!
//! ```
//! use panoptes_actors::list_gate::ListGate;
//!
//! let gate = ListGate::new(4);
//! assert_eq!(gate.limit(), 4);
//! assert_eq!(gate.in_use(), 0);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a gated list may wait for one page before it gives its permit up.
pub const DEFAULT_STALL: Duration = Duration::from_secs(5);

/// A limit on the lists gathering at once, shared by clones (see the module docs).
#[derive(Clone, Debug)]
pub struct ListGate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    permits: Arc<Semaphore>,
    limit: usize,
    stall: Duration,
    in_use: AtomicUsize,
    most_in_use: AtomicUsize,
}

/// A list's right to gather; dropping it lets the next list start.
#[derive(Debug)]
pub struct ListPermit {
    _permit: OwnedSemaphorePermit,
    gate: Arc<Inner>,
}

impl Drop for ListPermit {
    fn drop(&mut self) {
        self.gate.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ListGate {
    /// A gate letting `limit` lists (at least one) gather at once, each giving its permit up
    /// after [`DEFAULT_STALL`] without a page.
    pub fn new(limit: usize) -> Self {
        Self::with_stall(limit, DEFAULT_STALL)
    }

    /// A gate letting `limit` lists (at least one) gather at once, each giving its permit up
    /// after `stall` without a page.
    pub fn with_stall(limit: usize, stall: Duration) -> Self {
        let limit = limit.max(1);
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(limit)),
                limit,
                stall,
                in_use: AtomicUsize::new(0),
                most_in_use: AtomicUsize::new(0),
            }),
        }
    }

    /// How many lists may gather at once.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// How long a list waits for one page before giving its permit up.
    pub fn stall(&self) -> Duration {
        self.inner.stall
    }

    /// Lists holding a permit now.
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Acquire)
    }

    /// The most lists that held a permit at once so far.
    pub fn most_in_use(&self) -> usize {
        self.inner.most_in_use.load(Ordering::Acquire)
    }

    /// Waits for a permit. `None` only if the gate was closed, which nothing does: the list
    /// then goes on ungated rather than never.
    pub async fn enter(&self) -> Option<ListPermit> {
        let permit = self.inner.permits.clone().acquire_owned().await.ok()?;
        let now = self.inner.in_use.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner.most_in_use.fetch_max(now, Ordering::AcqRel);
        Some(ListPermit {
            _permit: permit,
            gate: self.inner.clone(),
        })
    }
}
