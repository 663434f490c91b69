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
}

impl<K: CacheObject> Handler<Distribute<K>> for Processor<K> {
    type Result = ();

    fn handle(&mut self, msg: Distribute<K>, _ctx: &mut Self::Context) {
        let _span = tracing::debug_span!(parent: &msg.0.span, "processor.distribute", cluster = %self.cluster, resource = %self.resource, seq = msg.0.seq, notifications = msg.0.notifications.len(), listeners = self.listeners.len()).entered();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::Pod;
    use parking_lot::Mutex;

    use super::*;
    use crate::delta_fifo::{Delta, DeltaObject, DeltaType, PoppedKey};
    use crate::ids::ObjectKey;
    use crate::notification::Notification;
    use crate::test_support::{Recorder, cluster, pod, wait_until};

    const PATIENCE: Duration = Duration::from_secs(5);

    fn add_listener(
        processor: &Addr<Processor<Pod>>,
        id: u64,
        recorder: Recorder,
        options: HandlerOptions,
    ) -> Arc<ListenerCounters> {
        let counters = Arc::new(ListenerCounters::default());
        processor.do_send(AddListener {
            id: HandlerId(id),
            handler: recorder.start().recipient().into(),
            options,
            counters: counters.clone(),
        });
        counters
    }

    fn updates(seq: u64, names: impl Iterator<Item = String>) -> Distribute<Pod> {
        let notifications = names
            .map(|n| Notification::Updated {
                key: ObjectKey::new(format!("ns/{n}")),
                old: pod(&n, seq),
                new: pod(&n, seq + 1),
            })
            .collect();
        Distribute(Arc::new(NotificationBatch {
            seq,
            notifications,
            marks_synced: false,
            span: tracing::Span::none(),
        }))
    }

    #[actix_rt::test]
    async fn should_fan_out_without_waiting_for_a_slow_handler() {
        let processor = Processor::new(cluster(), "v1/pods".into(), Store::new()).start();
        let (fast_seen, slow_seen) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(Vec::new())),
        );
        let fast = add_listener(
            &processor,
            1,
            Recorder::new(fast_seen.clone()),
            HandlerOptions::default(),
        );
        let mut slow_recorder = Recorder::new(slow_seen.clone());
        slow_recorder.delay = Some(Duration::from_millis(50));
        let slow = add_listener(
            &processor,
            2,
            slow_recorder,
            HandlerOptions::default().coalescing(),
        );
        for seq in 1..=20 {
            processor
                .send(updates(seq, (0..10).map(|i| format!("p{i}"))))
                .await
                .unwrap();
        }
        wait_until("the fast handler has all 200 events", PATIENCE, || {
            fast.snapshot().delivered == 200
        })
        .await;
        let slow_status = slow.snapshot();
        assert!(
            slow_status.backlog > 0,
            "the slow handler should still be behind: {slow_status:?}"
        );
        assert!(
            slow_status.backlog <= 10 + 1,
            "coalescing bounds the backlog by keys (+ the one in hand): {slow_status:?}"
        );
        // Whatever the slow one got last is the latest state of each key.
        wait_until("the slow handler catches up", PATIENCE, || {
            slow.snapshot().backlog == 0
        })
        .await;
        let last: std::collections::HashMap<String, Arc<Pod>> = slow_seen
            .lock()
            .iter()
            .map(|e| {
                (
                    e.object().metadata.name.clone().unwrap(),
                    e.object().clone(),
                )
            })
            .collect();
        assert!(
            last.values()
                .all(|p| p.metadata.resource_version.as_deref() == Some("21")),
            "{last:?}"
        );
    }

    #[actix_rt::test]
    async fn should_replay_the_cache_to_a_late_handler_and_stop_a_removed_one() {
        let store: Store<Pod> = Store::new();
        let keys = vec![PoppedKey {
            key: ObjectKey::new("ns/a"),
            deltas: vec![Delta {
                kind: DeltaType::Replaced,
                object: DeltaObject::Live(pod("a", 1)),
            }],
            initial_list: true,
        }];
        store.write(|c| {
            c.apply(keys, 0);
            c.finish_batch(1, true)
        });
        let processor = Processor::new(cluster(), "v1/pods".into(), store).start();
        let late_seen = Arc::new(Mutex::new(Vec::new()));
        let late = add_listener(
            &processor,
            1,
            Recorder::new(late_seen.clone()),
            HandlerOptions::default(),
        );
        wait_until("the late handler syncs", PATIENCE, || late.has_synced()).await;
        assert!(matches!(
            &late_seen.lock()[..],
            [Event::Added { initial: true, .. }]
        ));
        assert!(processor.send(RemoveListener(HandlerId(1))).await.unwrap());
        assert!(!processor.send(RemoveListener(HandlerId(1))).await.unwrap());
        processor
            .send(updates(2, ["a".to_string()].into_iter()))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        assert_eq!(late_seen.lock().len(), 1, "a removed handler got an event");
    }
    use crate::event::Event;
}
