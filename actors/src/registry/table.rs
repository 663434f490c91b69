//! The registry's actor: the one owner of the pipeline table and of every pipeline's
//! lifecycle — attach, start, reference counting, stop — handled one message at a time, so
//! no lock is held across a pipeline's start and no two requests race to start the same
//! key.
//!
//! # Contract
//! - [`Acquire`]: attaches to `key` if it runs, else to the first of its wider pipelines that
//!   runs (through that one's view), else starts a new pipeline; one reference is counted for the answer.
//! - [`Retain`] / [`Release`]: a reference more / fewer; the last release stops the pipeline
//!   (its arbiter, and with it the watch) and removes it from the table.
//! - [`Shutdown`]: every pipeline stops, then the actor (and its arbiter).
//! - After every change the running keys are published to the registry's read handle.
//!
//! # Lifecycle
//! Started by [`Registry::new`](super::Registry::new) on an arbiter of its own; it stops
//! when the registry and every handle and lease are gone, and then stops its arbiter.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use parking_lot::{Mutex, RwLock};

use super::{
    Acquire, Acquired, HandlerLeases, PipelineKey, Release, Retain, SharedInformer, Shutdown, View,
};

struct Entry {
    informer: SharedInformer,
    stop: Box<dyn Fn() + Send>,
    /// Handles (one per acquisition, shared by clones) plus handlers.
    refs: usize,
    handler_leases: HandlerLeases,
}

/// The registry actor. See the module docs.
pub(super) struct PipelineTable {
    pipelines: HashMap<PipelineKey, Entry>,
    published: Arc<RwLock<HashSet<PipelineKey>>>,
}

impl PipelineTable {
    pub(super) fn new(published: Arc<RwLock<HashSet<PipelineKey>>>) -> Self {
        Self {
            pipelines: HashMap::new(),
            published,
        }
    }

    fn publish(&self) {
        *self.published.write() = self.pipelines.keys().cloned().collect();
    }

    /// One more reference on `key`, if it runs.
    fn attach(&mut self, key: &PipelineKey, view: Option<Arc<View>>) -> Option<Acquired> {
        let entry = self.pipelines.get_mut(key)?;
        entry.refs += 1;
        Some(Acquired {
            key: key.clone(),
            view,
            informer: entry.informer.clone(),
            handler_leases: entry.handler_leases.clone(),
        })
    }
}

impl Actor for PipelineTable {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        Arbiter::current().stop();
    }
}

impl Handler<Acquire> for PipelineTable {
    type Result = ();

    fn handle(&mut self, msg: Acquire, _ctx: &mut Self::Context) {
        let Acquire {
            key,
            views,
            create,
            reply,
        } = msg;
        let viewed = |table: &mut Self| {
            views.into_iter().find_map(|(wider, view)| {
                let viewed = table.attach(&wider, Some(view))?;
                tracing::debug!(?key, ?wider, "served from a wider pipeline through a view");
                Some(viewed)
            })
        };
        let acquired = match self.attach(&key, None) {
            Some(attached) => attached,
            None => match viewed(self) {
                Some(viewed) => viewed,
                None => {
                    let (informer, stop) = create();
                    tracing::debug!(?key, "started a pipeline");
                    let handler_leases = Arc::new(Mutex::new(HashMap::new()));
                    self.pipelines.insert(
                        key.clone(),
                        Entry {
                            informer: informer.clone(),
                            stop,
                            refs: 1,
                            handler_leases: handler_leases.clone(),
                        },
                    );
                    self.publish();
                    Acquired {
                        key,
                        view: None,
                        informer,
                        handler_leases,
                    }
                }
            },
        };
        // The caller waits for this; if it gave up, the lease it never got is released.
        if let Err(unsent) = reply.send(acquired) {
            let key = unsent.0.key;
            self.release(&key);
        }
    }
}

impl PipelineTable {
    fn release(&mut self, key: &PipelineKey) {
        let Some(entry) = self.pipelines.get_mut(key) else {
            return;
        };
        entry.refs -= 1;
        if entry.refs > 0 {
            return;
        }
        if let Some(entry) = self.pipelines.remove(key) {
            tracing::debug!(?key, "last reference gone; stopping the pipeline");
            (entry.stop)();
            self.publish();
        }
    }
}

impl Handler<Retain> for PipelineTable {
    type Result = ();

    fn handle(&mut self, msg: Retain, _ctx: &mut Self::Context) {
        if let Some(entry) = self.pipelines.get_mut(&msg.0) {
            entry.refs += 1;
        }
    }
}

impl Handler<Release> for PipelineTable {
    type Result = ();

    fn handle(&mut self, msg: Release, _ctx: &mut Self::Context) {
        self.release(&msg.0);
    }
}

impl Handler<Shutdown> for PipelineTable {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        for (key, entry) in self.pipelines.drain() {
            tracing::debug!(?key, "registry shutting down; stopping the pipeline");
            (entry.stop)();
        }
        self.publish();
        ctx.stop();
    }
}
