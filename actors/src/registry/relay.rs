//! A relay actor: sits between a listener and a handler, rewrites or drops each event on the
//! way, and keeps the listener's one-at-a-time delivery (it answers only once the handler
//! has handled the rewritten event). Used by [filtered views](super::View) (drop events of
//! other namespaces, turn label changes into adds and deletes) and by the runtime (name the
//! configured cluster in every event of a shared pipeline).

use std::sync::Arc;

use actix::prelude::*;

use crate::event::{Event, EventHandler};
use crate::object::CacheObject;

/// Rewrites an event, or drops it with `None`.
pub type EventMap<K> = Arc<dyn Fn(Event<K>) -> Option<Event<K>> + Send + Sync>;

/// Forwards mapped events to `target`; stops when `target` is gone, so a listener that
/// restarts it (an [`EventHandler::Actor`]) also restarts the handler behind it.
pub struct Relay<K: CacheObject> {
    target: Recipient<Event<K>>,
    map: EventMap<K>,
}

impl<K: CacheObject> Actor for Relay<K> {
    type Context = Context<Self>;
}

impl<K: CacheObject> Handler<Event<K>> for Relay<K> {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, event: Event<K>, _ctx: &mut Self::Context) -> Self::Result {
        let Some(event) = (self.map)(event) else {
            return Box::pin(actix::fut::ready(()));
        };
        let delivery = self.target.send(event);
        Box::pin(delivery.into_actor(self).map(|delivered, _relay, ctx| {
            if delivered.is_err() {
                ctx.stop();
            }
        }))
    }
}

/// `handler` with `map` applied to every event before it. Closures stay closures (no actor);
/// actors get a relay in front, started next to the handler.
pub fn map_handler<K: CacheObject>(handler: EventHandler<K>, map: EventMap<K>) -> EventHandler<K> {
    match handler {
        EventHandler::Fn(mut f) => EventHandler::Fn(Box::new(move |event| {
            if let Some(event) = map(event) {
                f(event)
            }
        })),
        EventHandler::Recipient(target) => EventHandler::Actor(Box::new(move || {
            Relay {
                target: target.clone(),
                map: map.clone(),
            }
            .start()
            .recipient()
        })),
        EventHandler::Actor(factory) => EventHandler::Actor(Box::new(move || {
            Relay {
                target: factory(),
                map: map.clone(),
            }
            .start()
            .recipient()
        })),
    }
}
