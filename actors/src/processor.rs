//! client-go's `sharedProcessor` (`tools/cache/shared_informer.go`) as an actor: fans each
//! batch of cache changes out to one supervised [`Listener`] per registered handler.
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
//! # Lifecycle
//! Started by the informer on the pipeline's arbiter; stops with it. Listeners run under
//! actix [`Supervisor`]s on the same arbiter and are restarted without touching the others.
//!
//! # Backpressure
//! None of its own: each batch moves on at once into the listeners' buffers. The FIFO waits
//! for `Distribute` to be handled before it pops again, so batches do not pile up here.
//!
//! # Differences from client-go
//! Resync rounds reach every listener and each decides whether it is due, instead of the
//! processor computing `syncingListeners`.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::event::EventHandler;
use crate::ids::ClusterId;
use crate::listener::{
    HandlerId, HandlerOptions, Listener, ListenerCounters, Notify, StopListener,
};
use crate::notification::NotificationBatch;
use crate::object::CacheObject;
use crate::store::Store;

/// One batch of changes the indexer applied. Sent by the delta FIFO with `send` (awaited).
pub struct Distribute<K>(pub Arc<NotificationBatch<K>>);

impl<K: CacheObject> Message for Distribute<K> {
    type Result = ();
}

/// Registers a handler. Sent by the informer with `do_send`.
pub struct AddListener<K: CacheObject> {
    pub id: HandlerId,
    pub handler: EventHandler<K>,
    pub options: HandlerOptions,
    pub counters: Arc<ListenerCounters>,
}

impl<K: CacheObject> Message for AddListener<K> {
    type Result = ();
}

/// Unregisters a handler; answers whether it was registered. Sent by the informer with
/// `do_send` or `send`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "bool")]
pub struct RemoveListener(pub HandlerId);

/// The processor actor. See the module docs.
pub struct Processor<K: CacheObject> {
    cluster: ClusterId,
    resource: Arc<str>,
    store: Store<K>,
    listeners: HashMap<HandlerId, Addr<Listener<K>>>,
}

impl<K: CacheObject> Processor<K> {
    pub fn new(cluster: ClusterId, resource: Arc<str>, store: Store<K>) -> Self {
        Self {
            cluster,
            resource,
            store,
            listeners: HashMap::new(),
        }
    }

    fn distribute(&self, batch: Arc<NotificationBatch<K>>) {
        for listener in self.listeners.values() {
            listener.do_send(Notify(batch.clone()));
        }
    }

    /// A listener primed with the cache as it is now, aligned on the last applied batch.
    fn listener_for(&self, msg: AddListener<K>) -> Listener<K> {
        let (replay, replay_seq, synced) = self.store.snapshot();
        Listener::new(
            msg.id,
            self.cluster.clone(),
            self.resource.clone(),
            msg.handler,
            msg.options,
            msg.counters,
            replay,
            replay_seq,
            synced,
        )
    }
}

impl<K: CacheObject> Actor for Processor<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX);
    }
}

impl<K: CacheObject> Handler<Distribute<K>> for Processor<K> {
    type Result = ();

    fn handle(&mut self, msg: Distribute<K>, _ctx: &mut Self::Context) {
        let _span = tracing::debug_span!("processor.distribute", cluster = %self.cluster, resource = %self.resource, seq = msg.0.seq, notifications = msg.0.notifications.len(), listeners = self.listeners.len()).entered();
        self.distribute(msg.0);
    }
}

impl<K: CacheObject> Handler<AddListener<K>> for Processor<K> {
    type Result = ();

    fn handle(&mut self, msg: AddListener<K>, _ctx: &mut Self::Context) {
        let _span = tracing::debug_span!("processor.add_listener", cluster = %self.cluster, resource = %self.resource, handler = msg.id.0).entered();
        let id = msg.id;
        let listener = self.listener_for(msg);
        let addr = Supervisor::start(move |_| listener);
        if let Some(previous) = self.listeners.insert(id, addr) {
            tracing::warn!(
                handler = id.0,
                "handler id registered twice; the older listener is stopped"
            );
            previous.do_send(StopListener);
        }
    }
}

impl<K: CacheObject> Handler<RemoveListener> for Processor<K> {
    type Result = bool;

    fn handle(&mut self, msg: RemoveListener, _ctx: &mut Self::Context) -> bool {
        let _span = tracing::debug_span!("processor.remove_listener", cluster = %self.cluster, resource = %self.resource, handler = msg.0.0).entered();
        match self.listeners.remove(&msg.0) {
            Some(addr) => {
                addr.do_send(StopListener);
                true
            }
            None => false,
        }
    }
}
