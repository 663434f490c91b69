//! What flows from the indexer through the processor to the listeners: one change of one key,
//! computed by the indexer against the cache's previous state (client-go's `addNotification`,
//! `updateNotification`, `deleteNotification` in `shared_informer.go`).
//!
//! Handlers never see these; their listener turns each into an [`Event`].

use std::sync::Arc;

use crate::event::Event;
use crate::ids::{ClusterId, ObjectKey};
use crate::trace_context::TraceContext;

/// One change of one key.
#[derive(Debug)]
pub enum Notification<K> {
    /// The key appeared.
    Added {
        /// `namespace/name`.
        key: ObjectKey,
        /// The object.
        obj: Arc<K>,
        /// From the first complete list, not a later create.
        initial: bool,
    },
    /// The key's object changed.
    Updated {
        /// `namespace/name`.
        key: ObjectKey,
        /// The state before.
        old: Arc<K>,
        /// The state after.
        new: Arc<K>,
    },
    /// The key is gone.
    Deleted {
        /// `namespace/name`.
        key: ObjectKey,
        /// The last state.
        obj: Arc<K>,
        /// Seen only by a relist: `obj` may be stale.
        final_state_unknown: bool,
    },
    /// A periodic resync of an unchanged object. `generation` names the FIFO's resync round;
    /// each listener decides per round whether its own resync period is due.
    Resync {
        /// `namespace/name`.
        key: ObjectKey,
        /// The cached (unchanged) object.
        obj: Arc<K>,
        /// The FIFO's resync round.
        generation: u64,
    },
}

impl<K> Clone for Notification<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Added { key, obj, initial } => Self::Added {
                key: key.clone(),
                obj: obj.clone(),
                initial: *initial,
            },
            Self::Updated { key, old, new } => Self::Updated {
                key: key.clone(),
                old: old.clone(),
                new: new.clone(),
            },
            Self::Deleted {
                key,
                obj,
                final_state_unknown,
            } => Self::Deleted {
                key: key.clone(),
                obj: obj.clone(),
                final_state_unknown: *final_state_unknown,
            },
            Self::Resync {
                key,
                obj,
                generation,
            } => Self::Resync {
                key: key.clone(),
                obj: obj.clone(),
                generation: *generation,
            },
        }
    }
}

impl<K> Notification<K> {
    /// The `namespace/name` the notification is about.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Self::Added { key, .. }
            | Self::Updated { key, .. }
            | Self::Deleted { key, .. }
            | Self::Resync { key, .. } => key,
        }
    }

    /// The handler-facing event (a resync becomes an update with `old` and `new` the same).
    pub fn into_event(self, cluster: ClusterId) -> Event<K> {
        match self {
            Self::Added { obj, initial, .. } => Event::Added {
                cluster,
                obj,
                initial,
            },
            Self::Updated { old, new, .. } => Event::Updated { cluster, old, new },
            Self::Deleted {
                obj,
                final_state_unknown,
                ..
            } => Event::Deleted {
                cluster,
                obj,
                final_state_unknown,
            },
            Self::Resync { obj, .. } => Event::Updated {
                cluster,
                old: obj.clone(),
                new: obj,
            },
        }
    }
}

/// The notifications of one FIFO pop, in order. Shared by every listener behind one `Arc`.
#[derive(Debug)]
pub struct NotificationBatch<K> {
    /// Increases by one per pop; the cache records the last one it applied, so a late
    /// listener can skip batches its replay already contains.
    pub seq: u64,
    /// Notifications in the order the cache applied them.
    pub notifications: Vec<Notification<K>>,
    /// This pop finished the first complete list: after it the cache has synced.
    pub marks_synced: bool,
    /// The span context of the stage that sent it: the indexer's apply span when it reaches
    /// the processor, the processor's distribute span when it reaches the listeners (whose
    /// spans are its children), so a trace runs from the watch event to each handler.
    pub trace: TraceContext,
    /// When the reflector read the oldest change in it (`None` when no watch or list
    /// brought it: resyncs); listeners measure handler latency from here.
    pub arrived: Option<tokio::time::Instant>,
}
