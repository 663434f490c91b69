//! client-go's Indexer (`tools/cache/index.go`, `thread_safe_store.go`) as an actor: the only
//! writer of an informer's cache.
//!
//! # Contract
//! - Applies each FIFO batch under one write lock, in order, and answers with the
//!   notifications it implies, computed against the cache's previous state; the FIFO forwards
//!   them to the processor only after this answer, so the cache is never behind a handler.
//! - Keeps the namespace index and every user index exact after each batch.
//! - Reads never come here: they go through [`Store`] handles.
//!
//! # Lifecycle
//! Started by the informer on the pipeline's arbiter before the FIFO; stopped with the
//! arbiter. Its state lives in the [`Store`] it shares, so a restart would lose nothing, but
//! it is not supervised: it runs no user code.
//!
//! # Backpressure
//! None needed: the FIFO sends one batch at a time and waits for the answer.
//!
//! # Differences from client-go
//! Index functions can be added at any time (the existing objects are indexed then); client-go
//! refuses once the informer has started.

use std::sync::Arc;

use actix::prelude::*;

use crate::delta_fifo::PoppedKey;
use crate::ids::{ClusterId, IndexName};
use crate::notification::NotificationBatch;
use crate::object::CacheObject;
use crate::store::{IndexError, IndexFn, Store};

/// One FIFO pop to apply. Sent by the delta FIFO with `send` (awaited: one in flight).
pub struct ApplyDeltas<K> {
    pub seq: u64,
    pub keys: Vec<PoppedKey<K>>,
    pub marks_synced: bool,
    pub resync_generation: u64,
    /// The FIFO's pop span (itself a child of the latest reflector batch's span).
    pub span: tracing::Span,
}

impl<K: CacheObject> Message for ApplyDeltas<K> {
    type Result = NotificationBatch<K>;
}

/// Adds index functions. Sent by the informer with `send`.
pub struct AddIndexers<K> {
    pub indexers: Vec<(IndexName, IndexFn<K>)>,
}

impl<K: CacheObject> Message for AddIndexers<K> {
    type Result = Result<(), IndexError>;
}

/// The indexer actor. See the module docs.
pub struct Indexer<K: CacheObject> {
    cluster: ClusterId,
    resource: Arc<str>,
    store: Store<K>,
}

impl<K: CacheObject> Indexer<K> {
    pub fn new(cluster: ClusterId, resource: Arc<str>, store: Store<K>) -> Self {
        Self {
            cluster,
            resource,
            store,
        }
    }

    fn apply(&mut self, msg: ApplyDeltas<K>) -> NotificationBatch<K> {
        let ApplyDeltas {
            seq,
            keys,
            marks_synced,
            resync_generation,
            span,
        } = msg;
        let (notifications, newly_synced) = self.store.write(|cache| {
            let notes = cache.apply(keys, resync_generation);
            (notes, cache.finish_batch(seq, marks_synced))
        });
        if newly_synced {
            self.store.announce_synced();
            tracing::info!(cluster = %self.cluster, resource = %self.resource, objects = self.store.len(), "cache synced");
        }
        NotificationBatch {
            seq,
            notifications,
            marks_synced,
            span,
        }
    }
}

impl<K: CacheObject> Actor for Indexer<K> {
    type Context = Context<Self>;
}

impl<K: CacheObject> Handler<ApplyDeltas<K>> for Indexer<K> {
    type Result = MessageResult<ApplyDeltas<K>>;

    fn handle(&mut self, msg: ApplyDeltas<K>, _ctx: &mut Self::Context) -> Self::Result {
        let first_key = msg
            .keys
            .first()
            .map(|k| k.key.to_string())
            .unwrap_or_default();
        let _span = tracing::debug_span!(parent: &msg.span, "indexer.apply", cluster = %self.cluster, resource = %self.resource, key = %first_key, keys = msg.keys.len(), seq = msg.seq).entered();
        MessageResult(self.apply(msg))
    }
}

impl<K: CacheObject> Handler<AddIndexers<K>> for Indexer<K> {
    type Result = Result<(), IndexError>;

    fn handle(&mut self, msg: AddIndexers<K>, _ctx: &mut Self::Context) -> Self::Result {
        let _span = tracing::debug_span!("indexer.add_indexers", cluster = %self.cluster, resource = %self.resource).entered();
        self.store.write(|cache| cache.add_indexers(msg.indexers))
    }
}
