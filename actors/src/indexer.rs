//! client-go's Indexer and `processDeltas` (`tools/cache/index.go`, `thread_safe_store.go`,
//! `shared_informer.go`) as an actor: the only writer of an informer's cache, and the host
//! of its [processor](crate::processor).
//!
//! # Contract
//! - Applies each FIFO batch under one write lock, in order, deciding what each delta means
//!   against the cache's previous state (client-go's `processDeltas`: an upsert is an add
//!   when the key is absent, else an update; a relisted object with an unchanged
//!   resourceVersion is not re-announced; a delete of an absent key announces nothing).
//! - Then, and only then, hands the batch's notifications to the processor: the cache is
//!   never behind what a handler has been told.
//! - Keeps the namespace index and every user index exact after each batch.
//! - Reads never come here: they go through [`Store`](crate::Store) readers; this actor holds
//!   the cache's only [`StoreWriter`].
//!
//! # Lifecycle
//! Started by the informer on the pipeline's arbiter before the FIFO; stopped with the
//! arbiter. A panic while applying a batch (user index functions run here) or distributing
//! it is caught: the batch is not distributed, its keys are remembered as *unannounced*, and
//! the [supervisor](crate::supervisor) is told ([`StageFailed`]) and restarts the pipeline
//! from a relist. The relist re-announces every unannounced key it lists, even at an
//! unchanged resourceVersion, so no handler misses a change the cache took. A key the failed
//! batch deleted from the cache is not re-announced (the relist no longer lists it): one
//! deletion may go unannounced when a user index function panics while unindexing it.
//!
//! # Backpressure
//! The FIFO sends one batch at a time and waits until it has been applied and distributed.
//!
//! # Differences from client-go
//! Index functions can be added at any time (the existing objects are indexed then); client-go
//! refuses once the informer has started.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use actix::prelude::*;

use crate::delta_fifo::{DeltaObject, DeltaType, PoppedBatch, PoppedKey, popped_key};
use crate::ids::{ClusterId, IndexName, ObjectKey};
use crate::notification::{Notification, NotificationBatch};
use crate::object::CacheObject;
use crate::processor::{AddListener, Processor, RemoveListener};
use crate::stage_fault::{InjectPanic, Stage, StageFailed, panic_message};
use crate::store::{Cache, IndexError, IndexFn, StoreWriter};
use crate::trace_context::{TraceContext, record_keys};

/// Adds index functions. Sent by the informer with `send`.
pub struct AddIndexers<K> {
    /// Index names and their functions; a name already in use is an [`IndexError`].
    pub indexers: Vec<(IndexName, IndexFn<K>)>,
}

impl<K: CacheObject> Message for AddIndexers<K> {
    type Result = Result<(), IndexError>;
}

/// The indexer actor. See the module docs.
pub struct Indexer<K: CacheObject> {
    cluster: ClusterId,
    resource: Arc<str>,
    writer: StoreWriter<K>,
    processor: Processor<K>,
    /// Keys of a batch that failed: the cache may hold changes no handler heard of.
    unannounced: HashSet<ObjectKey>,
    faults: Recipient<StageFailed>,
}

impl<K: CacheObject> Indexer<K> {
    /// The indexer actor of one informer: writes the cache through `writer`, hosts the
    /// processor that fans notifications out, reports its panics to `faults`.
    pub fn new(
        cluster: ClusterId,
        resource: Arc<str>,
        writer: StoreWriter<K>,
        faults: Recipient<StageFailed>,
    ) -> Self {
        let processor = Processor::new(cluster.clone(), resource.clone(), writer.reader());
        Self {
            cluster,
            resource,
            writer,
            processor,
            unannounced: HashSet::new(),
            faults,
        }
    }

    fn report(&self, stage: Stage, payload: &(dyn std::any::Any + Send)) {
        self.faults.do_send(StageFailed {
            stage,
            message: panic_message(payload),
        });
    }

    /// Applies and distributes `batch`; a panic is caught and reported (see the module docs).
    fn apply_guarded(&mut self, batch: PoppedBatch<K>) {
        let keys: Vec<ObjectKey> = batch.keys.iter().map(|k| k.key.clone()).collect();
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.apply(batch))) {
            self.unannounced.extend(keys);
            self.report(Stage::Indexer, payload.as_ref());
        }
    }

    fn apply(&mut self, batch: PoppedBatch<K>) {
        let PoppedBatch {
            seq,
            keys,
            marks_synced,
            resync_generation,
            trace: _,
            arrived,
        } = batch;
        let unannounced = &mut self.unannounced;
        let (notifications, newly_synced) = self.writer.write(|cache| {
            let notes = process_deltas(cache, keys, resync_generation, unannounced);
            (notes, cache.finish_batch(seq, marks_synced))
        });
        if newly_synced {
            self.writer.announce_synced();
            let objects = self.writer.reader().len();
            tracing::info!(cluster = %self.cluster, resource = %self.resource, objects, "cache synced");
            crate::heap_release::after_first_sync(objects);
        }
        // Runs inside the `indexer.apply` span: the processor's span is its child.
        self.processor.distribute(NotificationBatch {
            seq,
            notifications,
            marks_synced,
            trace: TraceContext::current(),
            arrived,
        });
    }
}

/// Applies popped deltas to `cache` in order and says what changed (client-go's
/// `processDeltas`; see the module's contract). A relisted key in `unannounced` is announced
/// even at an unchanged resourceVersion, and leaves the set.
pub(crate) fn process_deltas<K: CacheObject>(
    cache: &mut Cache<K>,
    popped: Vec<PoppedKey<K>>,
    resync_generation: u64,
    unannounced: &mut HashSet<ObjectKey>,
) -> Vec<Notification<K>> {
    let mut notes = Vec::with_capacity(popped.len());
    for PoppedKey {
        key,
        deltas,
        initial_list,
    } in popped
    {
        for delta in deltas {
            match (delta.kind, delta.object) {
                (DeltaType::Deleted, object) => {
                    let final_state_unknown = matches!(object, DeltaObject::Tombstone(_));
                    if cache.remove(&key).is_some() {
                        notes.push(Notification::Deleted {
                            key: key.clone(),
                            obj: object.object().clone(),
                            final_state_unknown,
                        });
                    }
                }
                (DeltaType::Sync, object) => match cache.get(&key) {
                    Some(current) => notes.push(Notification::Resync {
                        key: key.clone(),
                        obj: current,
                        generation: resync_generation,
                    }),
                    None => {
                        let obj = object.object().clone();
                        cache.insert(key.clone(), obj.clone());
                        notes.push(Notification::Added {
                            key: key.clone(),
                            obj,
                            initial: false,
                        });
                    }
                },
                (kind, object) => {
                    let obj = object.object().clone();
                    // Decided from the stored version alone: a compact cache decodes
                    // nothing for a relist's unchanged objects.
                    if kind == DeltaType::Replaced
                        && cache.contains(&key)
                        && same_version(
                            cache.resource_version(&key),
                            obj.meta().resource_version.as_deref(),
                        )
                        && !unannounced.remove(&key)
                    {
                        continue;
                    }
                    match cache.insert(key.clone(), obj.clone()) {
                        Some(old) => notes.push(Notification::Updated {
                            key: key.clone(),
                            old,
                            new: obj,
                        }),
                        None => notes.push(Notification::Added {
                            key: key.clone(),
                            obj,
                            initial: initial_list,
                        }),
                    }
                }
            }
        }
    }
    notes
}

/// Two states of one object with the same (non-empty) resourceVersion are the same state.
fn same_version(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => !a.is_empty() && a == b,
        _ => false,
    }
}

impl<K: CacheObject> Actor for Indexer<K> {
    type Context = Context<Self>;
}

impl<K: CacheObject> Handler<PoppedBatch<K>> for Indexer<K> {
    type Result = ();

    fn handle(&mut self, batch: PoppedBatch<K>, _ctx: &mut Self::Context) {
        let span = batch.trace.adopt(tracing::debug_span!(parent: None, "indexer.apply", cluster = %self.cluster, resource = %self.resource, seq = batch.seq));
        record_keys(&span, batch.keys.len(), batch.keys.iter().map(popped_key));
        let _entered = span.entered();
        self.apply_guarded(batch);
    }
}

impl<K: CacheObject> Handler<AddIndexers<K>> for Indexer<K> {
    type Result = Result<(), IndexError>;

    fn handle(&mut self, msg: AddIndexers<K>, _ctx: &mut Self::Context) -> Self::Result {
        let _span = tracing::debug_span!("indexer.add_indexers", cluster = %self.cluster, resource = %self.resource).entered();
        self.writer.write(|cache| cache.add_indexers(msg.indexers))
    }
}

impl<K: CacheObject> Handler<AddListener<K>> for Indexer<K> {
    type Result = ();

    fn handle(&mut self, msg: AddListener<K>, _ctx: &mut Self::Context) {
        self.processor.add(msg);
    }
}

impl<K: CacheObject> Handler<RemoveListener> for Indexer<K> {
    type Result = bool;

    fn handle(&mut self, msg: RemoveListener, _ctx: &mut Self::Context) -> bool {
        self.processor.remove(msg.0)
    }
}

impl<K: CacheObject> Handler<InjectPanic> for Indexer<K> {
    type Result = ();

    /// Fault injection for the indexer and for the processor it hosts.
    fn handle(&mut self, msg: InjectPanic, _ctx: &mut Self::Context) {
        let processor = &self.processor;
        let Err(payload) = catch_unwind(AssertUnwindSafe(|| match msg.0 {
            Stage::Processor => processor.inject_panic(msg),
            _ => msg.fire(),
        }));
        self.report(msg.0, payload.as_ref());
    }
}

#[cfg(test)]
mod tests;
