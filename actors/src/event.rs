//! What a handler receives: client-go's `ResourceEventHandler` calls (`OnAdd`, `OnUpdate`,
//! `OnDelete`) as one actix message, [`Event<K>`].
//!
//! A handler is an actor implementing `Handler<Event<K>>` (restartable when registered with
//! [`handler_actor`]), any [`Recipient`] of events, or a closure ([`handler_fn`]) for small
//! cases. Every event names its cluster; objects are shared [`Arc`]s, never copies.
//!
//! # Tracing
//! The listener handles each event inside a `handler` span (`cluster`, `resource`, `key`,
//! `resource_version`, `event`), the last of the trace that began with the watch event. Spans
//! opened in a closure handler or in a [`handler_actor`]'s `handle` nest under it, and
//! [`TraceContext::current`](crate::TraceContext::current) there is its context: carry it to
//! continue the trace (a work queue, a reconcile).

use std::fmt;
use std::sync::Arc;

use actix::prelude::*;

use crate::handler_span::HandlerSpan;
use crate::ids::{ClusterId, ObjectKey};

/// One change of one object, as a handler sees it. Sent by the handler's listener with
/// `send` (one at a time, awaited: the next event waits until this one was handled).
#[derive(Message)]
#[rtype(result = "()")]
pub enum Event<K> {
    /// The object appeared. `initial` is true for objects of the first complete list (or of
    /// the cache replay a late handler gets), false for objects created later.
    Added {
        /// The cluster the object lives in.
        cluster: ClusterId,
        /// The object, shared with the cache (never copied per handler).
        obj: Arc<K>,
        /// Part of the first complete list (or a late handler's replay), not a later create.
        initial: bool,
    },
    /// The object changed. A periodic resync delivers `Updated` with `old` and `new` the same
    /// `Arc` (`Arc::ptr_eq(old, new)`).
    Updated {
        /// The cluster the object lives in.
        cluster: ClusterId,
        /// The state before the change.
        old: Arc<K>,
        /// The state after the change (the cache's state now).
        new: Arc<K>,
    },
    /// The object is gone. `obj` is its last state; with `final_state_unknown` the deletion
    /// was missed (seen only by a relist) and `obj` is the last state the cache knew
    /// (client-go's `DeletedFinalStateUnknown`).
    Deleted {
        /// The cluster the object lived in.
        cluster: ClusterId,
        /// The object's last state.
        obj: Arc<K>,
        /// The deletion was missed and seen only by a relist (`obj` may be stale).
        final_state_unknown: bool,
    },
}

impl<K> Event<K> {
    /// The cluster the event comes from.
    pub fn cluster(&self) -> &ClusterId {
        match self {
            Event::Added { cluster, .. }
            | Event::Updated { cluster, .. }
            | Event::Deleted { cluster, .. } => cluster,
        }
    }

    /// The object's latest state (`new` for updates).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Event::Added { obj, .. } | Event::Deleted { obj, .. } => obj,
            Event::Updated { new, .. } => new,
        }
    }

    /// True for a resync: an update whose old and new are the same object.
    pub fn is_resync(&self) -> bool {
        matches!(self, Event::Updated { old, new, .. } if Arc::ptr_eq(old, new))
    }
}

impl<K: kube::Resource> Event<K> {
    /// The object's storage key (`namespace/name`).
    pub fn key(&self) -> ObjectKey {
        ObjectKey::of(self.object().as_ref())
    }
}

impl<K> Clone for Event<K> {
    fn clone(&self) -> Self {
        match self {
            Event::Added {
                cluster,
                obj,
                initial,
            } => Event::Added {
                cluster: cluster.clone(),
                obj: obj.clone(),
                initial: *initial,
            },
            Event::Updated { cluster, old, new } => Event::Updated {
                cluster: cluster.clone(),
                old: old.clone(),
                new: new.clone(),
            },
            Event::Deleted {
                cluster,
                obj,
                final_state_unknown,
            } => Event::Deleted {
                cluster: cluster.clone(),
                obj: obj.clone(),
                final_state_unknown: *final_state_unknown,
            },
        }
    }
}

impl<K> fmt::Debug for Event<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Added {
                cluster, initial, ..
            } => {
                write!(f, "Added {{ cluster: {cluster}, initial: {initial} }}")
            }
            Event::Updated { cluster, .. } => {
                write!(
                    f,
                    "Updated {{ cluster: {cluster}, resync: {} }}",
                    self.is_resync()
                )
            }
            Event::Deleted {
                cluster,
                final_state_unknown,
                ..
            } => {
                write!(
                    f,
                    "Deleted {{ cluster: {cluster}, final_state_unknown: {final_state_unknown} }}"
                )
            }
        }
    }
}

/// A closure run for every event, inside the handler's listener (on the pipeline's thread:
/// keep it short and non-blocking). A panic in it is caught, counted, and the listener
/// restarted; the panicking event is not retried.
pub type EventFn<K> = Box<dyn FnMut(Event<K>) + Send + 'static>;

/// Starts a fresh handler actor; called once at registration and again after each crash,
/// with the listener's [`HandlerSpan`] to start it in (so its spans nest under each event's
/// `handler` span).
pub type HandlerFactory<K> = Box<dyn Fn(&HandlerSpan) -> Recipient<Event<K>> + Send + 'static>;

/// Who handles a listener's events.
pub enum EventHandler<K: Send + Sync + 'static> {
    /// An actor the caller started and owns. If it stops, its listener cannot restart it: the
    /// listener logs once, drops what it buffered, and discards further events.
    Recipient(Recipient<Event<K>>),
    /// An actor the listener starts (on the pipeline's arbiter) and restarts when it stops
    /// or panics; buffered events wait for the new instance.
    Actor(HandlerFactory<K>),
    /// A closure run inside the listener.
    Fn(EventFn<K>),
}

/// A closure handler: `informer.add_handler(handler_fn(|ev| println!("{ev:?}")), opts)`.
pub fn handler_fn<K: Send + Sync + 'static>(
    f: impl FnMut(Event<K>) + Send + 'static,
) -> EventHandler<K> {
    EventHandler::Fn(Box::new(f))
}

/// A restartable handler actor: `factory` builds a fresh actor value; the listener starts it
/// (and starts a new one if it panics or stops).
pub fn handler_actor<K, A>(factory: impl Fn() -> A + Send + 'static) -> EventHandler<K>
where
    K: Send + Sync + 'static,
    A: Actor<Context = Context<A>> + Handler<Event<K>>,
{
    EventHandler::Actor(Box::new(move |span| span.start(factory()).recipient()))
}

impl<K: Send + Sync + 'static> From<Recipient<Event<K>>> for EventHandler<K> {
    fn from(recipient: Recipient<Event<K>>) -> Self {
        EventHandler::Recipient(recipient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{cluster, pod};

    #[test]
    fn should_call_an_update_with_one_object_a_resync() {
        let obj = pod("a", 1);
        let resync = Event::Updated {
            cluster: cluster(),
            old: obj.clone(),
            new: obj.clone(),
        };
        let change = Event::Updated {
            cluster: cluster(),
            old: obj,
            new: pod("a", 2),
        };
        assert!(resync.is_resync() && !change.is_resync());
        assert_eq!(change.key(), ObjectKey::new("ns/a"));
        assert_eq!(
            change.object().metadata.resource_version.as_deref(),
            Some("2")
        );
        assert_eq!(
            format!("{resync:?}"),
            "Updated { cluster: test, resync: true }"
        );
    }
}
