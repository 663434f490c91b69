//! client-go's `sharedProcessor` (`tools/cache/shared_informer.go`): fans each batch of cache
//! changes out to one supervised listener per registered handler.
//!
//! # Contract
//! - Every listener gets every notification, in the order the cache applied them; the
//!   processor shares one `Arc` per batch and never copies objects.
//! - It never waits for a listener (`do_send`), so a slow handler never delays another.
//! - A handler added late first receives the current cache as `Added { initial: true }`,
//!   lined up with the batches that follow (none missed, none doubled), and gets its own
//!   `has_synced`.
//! - A removed handler receives nothing more.
//!
//! # Where it runs
//! Not an actor of its own: the [indexer](crate::indexer) actor owns it and calls
//! [`Processor::distribute`] right after applying a batch, as client-go's `HandleDeltas`
//! calls `processor.distribute` right after updating the indexer. So the cache is updated
//! before any listener hears of a change, a late listener's replay is taken between two
//! batches, and the chain saves a mailbox hop. The messages that add and remove listeners
//! are handled by the indexer actor on its behalf.
//!
//! # Lifecycle
//! Listeners are started by the informer's [`StartListener`] closure on the pipeline's
//! arbiter, under actix `Supervisor`s, and are restarted without touching the others. The
//! processor knows them only by their [`ListenerEndpoint`], so it does not depend on the
//! listener module (imports point one way: the listener reads the messages sent here).
//!
//! # Backpressure
//! None of its own: each batch moves on at once into the listeners' buffers.
//!
//! # Differences from client-go
//! Resync rounds reach every listener and each decides whether it is due, instead of the
//! processor computing `syncingListeners`.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::ids::ClusterId;
use crate::notification::NotificationBatch;
use crate::object::CacheObject;
use crate::stage_fault::InjectPanic;
use crate::store::{Snapshot, Store};
use crate::trace_context::TraceContext;

/// Identifies one registered handler within an informer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(pub u64);

/// A batch of notifications to buffer. Sent by the processor to every listener with
/// `do_send`.
pub struct Notify<K>(pub Arc<NotificationBatch<K>>);

impl<K: CacheObject> Message for Notify<K> {
    type Result = ();
}

/// Stops a listener for good. Sent by the processor with `do_send`, right before it drops
/// the listener's endpoint (so its supervisor does not restart it).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopListener;

/// How the processor reaches one listener.
pub struct ListenerEndpoint<K: CacheObject> {
    /// Delivers notifications to the listener.
    pub notify: Recipient<Notify<K>>,
    /// Stops the listener.
    pub stop: Recipient<StopListener>,
}

/// Starts a listener primed with the cache as it is (built by the informer, called by the
/// processor between two batches).
pub type StartListener<K> = Box<dyn FnOnce(Snapshot<K>) -> ListenerEndpoint<K> + Send>;

/// Registers a handler. Sent by the informer to the indexer actor (which hosts the
/// processor) with `do_send`.
pub struct AddListener<K: CacheObject> {
    /// The handler's id (returned to the caller of `add_handler`).
    pub id: HandlerId,
    /// How to start the listener actor.
    pub start: StartListener<K>,
}

impl<K: CacheObject> Message for AddListener<K> {
    type Result = ();
}

/// Unregisters a handler; answers whether it was registered. Sent by the informer to the
/// indexer actor with `do_send` or `send`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "bool")]
pub struct RemoveListener(pub HandlerId);

/// The listeners of one pipeline. See the module docs.
pub struct Processor<K: CacheObject> {
    cluster: ClusterId,
    resource: Arc<str>,
    store: Store<K>,
    listeners: HashMap<HandlerId, ListenerEndpoint<K>>,
}

impl<K: CacheObject> Processor<K> {
    /// A processor with no listeners; `store` is what late listeners replay from.
    pub fn new(cluster: ClusterId, resource: Arc<str>, store: Store<K>) -> Self {
        Self {
            cluster,
            resource,
            store,
            listeners: HashMap::new(),
        }
    }

    /// Hands one applied batch to every listener, under a `processor.distribute` span that
    /// becomes the batch's trace context (the listeners' spans are its children).
    pub fn distribute(&self, mut batch: NotificationBatch<K>) {
        let span = batch.trace.adopt(tracing::debug_span!(parent: None, "processor.distribute", cluster = %self.cluster, resource = %self.resource, seq = batch.seq, notifications = batch.notifications.len(), listeners = self.listeners.len()));
        batch.trace = TraceContext::of(&span);
        let _entered = span.entered();
        let batch = Arc::new(batch);
        for listener in self.listeners.values() {
            listener.notify.do_send(Notify(batch.clone()));
        }
    }

    /// Starts a listener primed with the cache as it is now.
    pub fn add(&mut self, msg: AddListener<K>) {
        let _span = tracing::debug_span!("processor.add_listener", cluster = %self.cluster, resource = %self.resource, handler = msg.id.0).entered();
        let endpoint = (msg.start)(self.store.snapshot());
        if let Some(previous) = self.listeners.insert(msg.id, endpoint) {
            tracing::warn!(
                handler = msg.id.0,
                "handler id registered twice; the older listener is stopped"
            );
            previous.stop.do_send(StopListener);
        }
    }

    /// Fault injection: panics in the processor's code (the indexer hosting it reports it).
    pub(crate) fn inject_panic(&self, msg: InjectPanic) -> ! {
        msg.fire()
    }

    /// Stops a listener; whether it was registered.
    pub fn remove(&mut self, id: HandlerId) -> bool {
        let _span = tracing::debug_span!("processor.remove_listener", cluster = %self.cluster, resource = %self.resource, handler = id.0).entered();
        match self.listeners.remove(&id) {
            Some(endpoint) => {
                endpoint.stop.do_send(StopListener);
                true
            }
            None => false,
        }
    }
}
