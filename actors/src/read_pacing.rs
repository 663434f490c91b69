//! Read pacing: a reflector reads its watch no faster than its pipeline's fastest handler
//! takes events, so a burst waits on the server as bytes instead of in memory as objects.
//!
//! client-go's reflector reads every event as it comes and its listeners buffer without
//! bound. When a server writes faster than a pipeline delivers (one client core, ten
//! handlers), every handler's buffer then holds the burst, and each buffered update keeps the
//! object it replaced alive: in bench P2 (30 000 realistic-pod updates written at ~14 000/s)
//! the buffers reached 19 000 events each and about a third of the pipeline thread's time
//! went to page faults of the growing heap.
//!
//! # Contract
//! - A watch is read while at least one counted handler of the pipeline has fewer than
//!   `read_ahead` watch events waiting (buffered or being handled), or while none is
//!   counted. When every counted handler is `read_ahead` or more behind, the reflector stops
//!   reading until one of them is down to half of it.
//! - A synced handler counts its whole backlog. A handler still taking its initial list or
//!   a replay of the cache counts only the events queued behind that list (what the watch
//!   brought meanwhile), and is not counted before the list's end is known. So a replay,
//!   however long, pauses nothing by itself, but the watch events piling up behind it are
//!   bounded like any other backlog: a burst that comes while every handler still takes its
//!   list (bench P2, which writes as soon as the cache has synced) used to be read whole,
//!   27 000 events per handler and ~1 GB of client heap for 5 000 pods.
//! - A slow handler never stalls the others: one handler that keeps up keeps the watch read
//!   (its slower peers buffer, as before). Only when all are behind (the pipeline's thread
//!   is saturated, or every handler waits on something) does reading pause, and the cache
//!   lags by at most what the server holds for the watch.
//! - Lists are not paced; only watch reads are.
//! - A paused watch is the server's backlog: a real apiserver closes a watch whose buffer
//!   overflows, and the reflector then resumes from its last resourceVersion (or relists).
//! - `read_ahead = 0` turns pacing off (client-go's behaviour).
//!
//! kube-runtime's shared reflector applies backpressure from its *slowest* subscriber (a
//! bounded broadcast channel); pacing here follows the *fastest*, so one stuck handler does
//! not freeze the cache.
//!
//! ```
//! use panoptes_actors::read_pacing::{DEFAULT_READ_AHEAD, ReadPacing};
//!
//! let pacing = ReadPacing::new(DEFAULT_READ_AHEAD);
//! assert_eq!(pacing.read_ahead(), 1024);
//! assert!(!pacing.all_behind(), "no handler: nothing to wait for");
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What pacing reads of one handler (its listener's counters implement it): defined here so
/// that the reflector, which waits on handlers, imports nothing of the stages after it.
pub(crate) trait HandlerProgress: Send + Sync + std::fmt::Debug {
    /// Watch events buffered or being handled that pacing counts: the whole backlog once
    /// the handler has taken its initial list (or replay), only the events queued behind
    /// that list before, and `None` while the list's end is not known yet.
    fn watch_backlog(&self) -> Option<usize>;
}

/// One handler's link to its pipeline's pacing, held by that handler's counters: tells the
/// pacing when the backlog falls or the handler becomes synced, and when the link is dropped
/// with the counters (a reader paused on that handler must look again without it).
#[derive(Debug)]
pub(crate) struct PacedHandler(Arc<ReadPacing>);

impl PacedHandler {
    /// Links `handler` to `pacing`, which counts it from now on (until it is dropped).
    pub(crate) fn follow(pacing: &Arc<ReadPacing>, handler: Weak<dyn HandlerProgress>) -> Self {
        let mut handlers = pacing.handlers.lock();
        handlers.retain(|h| h.strong_count() > 0);
        handlers.push(handler);
        Self(pacing.clone())
    }

    /// The handler's backlog went from `before` to `now`: wakes a waiting reader when it
    /// fell to half the slack.
    pub(crate) fn backlog_changed(&self, before: usize, now: usize) {
        let low = self.0.read_ahead / 2;
        if now <= low && before > low {
            self.0.wake();
        }
    }

    /// The handler took its initial list: its whole backlog counts from now on.
    pub(crate) fn synced(&self) {
        self.0.wake();
    }
}

impl Drop for PacedHandler {
    fn drop(&mut self) {
        self.0.wake();
    }
}

/// Events the fastest handler may be behind before the watch waits: about 30 MB of typed
/// realistic pods, far below what one burst used to pile up, far above one read's batch.
pub const DEFAULT_READ_AHEAD: usize = 1024;

/// A paused reader looks again this often even without a wake-up, so a handler that went
/// away without a word cannot hold the watch forever.
const RECHECK: Duration = Duration::from_secs(1);

/// One pipeline's pacing: its handlers' backlogs as the reflector sees them.
#[derive(Debug)]
pub struct ReadPacing {
    read_ahead: usize,
    handlers: Mutex<Vec<Weak<dyn HandlerProgress>>>,
    /// Set while the reflector waits, so handlers only wake it when it needs waking.
    waiting: AtomicBool,
    caught_up: Notify,
}

impl ReadPacing {
    /// Pacing with `read_ahead` events of slack per handler (`0`: never pause).
    pub fn new(read_ahead: usize) -> Arc<Self> {
        Arc::new(Self {
            read_ahead,
            handlers: Mutex::default(),
            waiting: AtomicBool::new(false),
            caught_up: Notify::new(),
        })
    }

    /// The slack this pacing allows.
    pub fn read_ahead(&self) -> usize {
        self.read_ahead
    }

    /// Every counted handler is `read_ahead` or more watch events behind (false with none).
    pub fn all_behind(&self) -> bool {
        if self.read_ahead == 0 {
            return false;
        }
        let mut any = false;
        for handler in self.handlers.lock().iter().filter_map(Weak::upgrade) {
            let Some(backlog) = handler.watch_backlog() else {
                continue;
            };
            if backlog < self.read_ahead {
                return false;
            }
            any = true;
        }
        any
    }

    /// Returns once the watch may be read (at once unless [`all_behind`](Self::all_behind)).
    pub async fn until_caught_up(&self) {
        // The common case, before every watch read: nothing to wait for, no wake-up to arm.
        if !self.all_behind() {
            return;
        }
        loop {
            let caught_up = self.caught_up.notified();
            let mut caught_up = std::pin::pin!(caught_up);
            caught_up.as_mut().enable();
            self.waiting.store(true, Ordering::SeqCst);
            if !self.all_behind() {
                self.waiting.store(false, Ordering::SeqCst);
                return;
            }
            let _ = tokio::time::timeout(RECHECK, caught_up).await;
        }
    }

    /// Wakes a waiting reader to look again (a handler caught up, joined or went away).
    fn wake(&self) {
        if self.waiting.swap(false, Ordering::SeqCst) {
            self.caught_up.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler as pacing sees it: `None` while its list's end is unknown.
    #[derive(Debug, Default)]
    struct Handler {
        watch_backlog: Mutex<Option<usize>>,
        link: std::sync::OnceLock<PacedHandler>,
    }

    impl HandlerProgress for Handler {
        fn watch_backlog(&self) -> Option<usize> {
            *self.watch_backlog.lock()
        }
    }

    impl Handler {
        fn set(&self, watch_backlog: Option<usize>) {
            let before = std::mem::replace(&mut *self.watch_backlog.lock(), watch_backlog);
            if let (Some(link), Some(before), Some(now)) = (self.link.get(), before, watch_backlog)
            {
                link.backlog_changed(before, now);
            }
        }
    }

    fn handler(pacing: &Arc<ReadPacing>, watch_backlog: Option<usize>) -> Arc<Handler> {
        let handler = Arc::new(Handler::default());
        handler.set(watch_backlog);
        let progress: Arc<dyn HandlerProgress> = handler.clone();
        let link = PacedHandler::follow(pacing, Arc::downgrade(&progress));
        handler.link.set(link).expect("linked once");
        handler
    }

    #[test]
    fn should_pause_only_when_every_counted_handler_is_behind() {
        let pacing = ReadPacing::new(10);
        let slow = handler(&pacing, Some(50));
        assert!(pacing.all_behind());
        let fast = handler(&pacing, Some(9));
        assert!(!pacing.all_behind(), "one handler keeps up");
        fast.set(Some(10));
        assert!(pacing.all_behind());
        let _list_end_unknown = handler(&pacing, None);
        assert!(
            pacing.all_behind(),
            "a handler whose list's end is unknown neither pauses nor frees the watch"
        );
        drop((slow, fast));
        assert!(!pacing.all_behind(), "handlers gone: nothing to wait for");
    }

    #[test]
    fn should_count_only_the_watch_events_behind_a_handlers_list() {
        let pacing = ReadPacing::new(10);
        // Taking a list of 5 000: 3 watch events queued behind it so far.
        let replaying = handler(&pacing, Some(3));
        let slow = handler(&pacing, Some(50));
        assert!(
            !pacing.all_behind(),
            "a replay with few events behind it does not hold the watch back"
        );
        replaying.set(Some(10));
        assert!(
            pacing.all_behind(),
            "the events behind a list are bounded like any backlog"
        );
        drop(slow);
        assert!(
            pacing.all_behind(),
            "a lone replaying handler bounds them too"
        );
    }

    #[test]
    fn should_never_pause_with_zero_read_ahead() {
        let pacing = ReadPacing::new(0);
        let _behind = handler(&pacing, Some(1_000_000));
        assert!(!pacing.all_behind());
    }

    #[tokio::test(start_paused = true)]
    async fn should_resume_when_a_handler_catches_up() {
        let pacing = ReadPacing::new(10);
        let behind = handler(&pacing, Some(10));
        let reader = {
            let pacing = pacing.clone();
            tokio::spawn(async move { pacing.until_caught_up().await })
        };
        tokio::task::yield_now().await;
        assert!(!reader.is_finished(), "the only handler is behind");
        behind.set(Some(5));
        tokio::time::timeout(Duration::from_millis(10), reader)
            .await
            .expect("woken without waiting for the recheck")
            .expect("the reader task ran");
    }
}
