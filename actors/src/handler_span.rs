//! The `handler` span a restartable handler actor runs in while it handles an event, so that
//! the spans the user's `Handler<Event<K>>::handle` opens (with `info_span!`, which takes
//! `Span::current()` as parent) nest under it, continuing the event's trace.
//!
//! actix gives no hook around a message's handling: the listener's `send(...).await` runs in
//! the listener's task, the handler's `handle` in the handler actor's own task, and a span
//! entered in one is not current in the other. So the listener starts the handler actor
//! ([`crate::handler_actor`]) itself, with [`HandlerSpan::start`]: the actor's context future
//! is polled with the slot's span entered. The listener puts the event's `handler` span in the
//! slot before sending the event and empties it when the handler answered; the actor handles
//! one event of that listener at a time, so whatever it does meanwhile (its `handle`, an async
//! response future, messages it sends itself) belongs to that event.
//!
//! Caller-owned handler actors ([`EventHandler::Recipient`](crate::EventHandler)) run in
//! tasks the listener does not own: their `handler` span measures the handling, but their own
//! spans cannot nest under it.

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use parking_lot::Mutex;

/// The span a handler actor's task enters while it is polled. Shared by the listener (which
/// sets it per event) and the task of the handler actor it started.
#[derive(Clone)]
pub struct HandlerSpan(Arc<Mutex<tracing::Span>>);

impl HandlerSpan {
    /// Starts `actor` on the current arbiter, as `Actor::start` does, with every poll of its
    /// task inside this slot's span.
    pub fn start<A>(&self, actor: A) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
    {
        let mut task = Box::pin(Context::new().into_future(actor));
        let addr = task.address();
        let slot = self.clone();
        actix::spawn(futures::future::poll_fn(move |cx| {
            let span = slot.0.lock().clone();
            let _entered = span.enter();
            task.as_mut().poll(cx)
        }));
        addr
    }

    /// Enters `span` in the handler actor's task from now on.
    pub(crate) fn set(&self, span: tracing::Span) {
        *self.0.lock() = span;
    }

    /// Leaves the event's span: the actor is idle.
    pub(crate) fn clear(&self) {
        *self.0.lock() = tracing::Span::none();
    }
}

impl Default for HandlerSpan {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(tracing::Span::none())))
    }
}

impl std::fmt::Debug for HandlerSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HandlerSpan").field(&*self.0.lock()).finish()
    }
}
