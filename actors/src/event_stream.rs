//! Events as a [`futures::Stream`]: [`EventStream<K>`], what `informer.stream()` returns —
//! kube-runtime's `watcher(..).applied_objects()` habit, on top of a shared informer.
//!
//! # Contract
//! - A stream **is a listener**: it gets the cache as `Added { initial: true }` first, then
//!   every change, in the order the cache applied them (per cluster, for multi-cluster
//!   informers), through the same listener as a handler — so resync, coalescing, event maps
//!   (views, relabelling) and [predicates](crate::predicate) apply as they do to handlers.
//! - **Bounded.** Between the listener and the consumer sits a channel of
//!   [`STREAM_CAPACITY`] events. When it is full, the listener waits (as it waits for a busy
//!   handler actor) and the backlog stays in *this* stream's listener buffer
//!   ([`EventStream::backlog`]); no other handler or stream is held back. With
//!   [`BufferMode::Coalescing`](crate::BufferMode::Coalescing) that backlog is bounded by
//!   keys.
//! - **Dropping the stream removes its handler** (on every cluster): its listener stops and
//!   the pipeline reference it held is released.
//!
//! # How it is built
//! The listener delivers to a small restartable actor ([`handler_actor`]) on the pipeline's
//! thread whose handler awaits room in the channel; the listener sends the next event only
//! once that one was taken, which is where the backpressure comes from.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::event::{Event, EventHandler, handler_actor};
use crate::object::CacheObject;

/// Events a stream holds between its listener(s) and its consumer. Small: the listener's
/// own buffer takes the rest, where it is counted as the handler's backlog.
pub const STREAM_CAPACITY: usize = 64;

/// What an informer hands back when it installs a stream's handler.
pub struct StreamHooks {
    /// Removes the handler(s); run once, when the stream is dropped.
    pub detach: Box<dyn FnOnce() + Send>,
    /// Events buffered by the stream's listener(s) and not yet in the channel.
    pub backlog: Box<dyn Fn() -> usize + Send + Sync>,
}

/// A bounded stream of one informer's events; see the [module docs](self). Dropping it
/// removes its handler.
///
/// ```no_run
/// # async fn demo(informer: panoptes_actors::Informer<k8s_openapi::api::core::v1::Pod>) {
/// use futures::StreamExt;
///
/// let mut events = informer.stream();
/// while let Some(event) = events.next().await {
///     println!("{} {:?}", event.key(), event);
/// }
/// # }
/// ```
pub struct EventStream<K> {
    events: mpsc::Receiver<Event<K>>,
    hooks: Option<StreamHooks>,
}

impl<K: CacheObject> EventStream<K> {
    /// A stream fed by the handler `install` registers (on one informer, or on every cluster
    /// of a multi-cluster informer: the handler is a restartable actor factory, so each
    /// listener gets its own feeder).
    pub fn attach(install: impl FnOnce(EventHandler<K>) -> StreamHooks) -> Self {
        let (sender, events) = mpsc::channel(STREAM_CAPACITY);
        let handler = handler_actor(move || StreamFeeder {
            sender: sender.clone(),
        });
        let hooks = install(handler);
        Self {
            events,
            hooks: Some(hooks),
        }
    }

    /// Events waiting for the consumer: in the channel and in the listener buffer(s).
    pub fn backlog(&self) -> usize {
        let buffered = self.hooks.as_ref().map_or(0, |hooks| (hooks.backlog)());
        self.events.len() + buffered
    }
}

impl<K> futures::Stream for EventStream<K> {
    type Item = Event<K>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Event<K>>> {
        self.events.poll_recv(cx)
    }
}

impl<K> Drop for EventStream<K> {
    fn drop(&mut self) {
        if let Some(hooks) = self.hooks.take() {
            (hooks.detach)();
        }
    }
}

/// Moves events from a listener into the stream's channel, waiting for room.
struct StreamFeeder<K> {
    sender: mpsc::Sender<Event<K>>,
}

impl<K: CacheObject> Actor for StreamFeeder<K> {
    type Context = Context<Self>;
}

impl<K: CacheObject> Handler<Event<K>> for StreamFeeder<K> {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, event: Event<K>, _ctx: &mut Self::Context) -> Self::Result {
        let sender = self.sender.clone();
        Box::pin(async move {
            // An error means the stream was dropped: its handler is being removed, and
            // nobody is left to receive the event.
            let _ = sender.send(event).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use parking_lot::Mutex;

    use crate::reflector::{ReflectorBatch, ReflectorDelta};
    use crate::test_support::{cluster, pod, rv, wait_until};
    use crate::{HandlerOptions, Informer, Transform, handler_fn};

    const PATIENCE: Duration = Duration::from_secs(5);

    /// One new pod per version (distinct keys: the FIFO coalesces updates of one key).
    fn adds(feed: &actix::Recipient<ReflectorBatch<Pod>>, versions: std::ops::Range<u64>) {
        for version in versions {
            feed.do_send(ReflectorBatch {
                cluster: cluster(),
                deltas: vec![ReflectorDelta::Added(pod(&format!("p{version}"), version))],
                trace: crate::trace_context::TraceContext::none(),
                arrived: tokio::time::Instant::now(),
            });
        }
    }

    #[actix_rt::test]
    async fn should_hold_back_only_a_slow_stream_and_keep_order() {
        let (informer, feed) = Informer::<Pod>::detached(cluster(), "v1/pods", Transform::Keep);
        let handled = std::sync::Arc::new(Mutex::new(0_u64));
        let counter = handled.clone();
        informer.add_handler(
            handler_fn(move |_| *counter.lock() += 1),
            HandlerOptions::default(),
        );
        let mut stream = informer.stream();
        let total = super::STREAM_CAPACITY as u64 * 4;
        adds(&feed, 1..total + 1);
        wait_until("the closure handler took every event", PATIENCE, || {
            *handled.lock() == total
        })
        .await;
        wait_until("the stream's backlog is counted", PATIENCE, || {
            stream.backlog() == total as usize
        })
        .await;
        assert!(
            stream.events.len() <= super::STREAM_CAPACITY,
            "the channel is bounded"
        );
        let mut seen = Vec::new();
        while seen.len() < total as usize {
            let event = tokio::time::timeout(PATIENCE, stream.next())
                .await
                .expect("the stream yields")
                .expect("the stream is open");
            seen.push(rv(event.object()));
        }
        assert_eq!(seen, (1..total + 1).collect::<Vec<_>>(), "in order");
        // The listener counts the last hand-over after the channel took it.
        wait_until("the backlog is drained", PATIENCE, || stream.backlog() == 0).await;
        informer.stop();
    }

    #[actix_rt::test]
    async fn should_remove_its_handler_when_dropped() {
        let (informer, feed) = Informer::<Pod>::detached(cluster(), "v1/pods", Transform::Keep);
        let stream = informer.stream();
        adds(&feed, 1..3);
        drop(stream);
        // The only handler the informer knew is gone: a new one gets id 2 and nothing is
        // left registered under id 1.
        assert!(informer.handler_status(crate::HandlerId(1)).is_none());
        informer.stop();
    }
}
