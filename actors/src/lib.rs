//! `panoptes-actors`: client-go's informer machinery (`k8s.io/client-go/tools/cache`) as
//! actix actors.
//!
//! # Where to start
//! - [`InformerFactory`] (client-go's `SharedInformerFactory`): one per cluster; ask it for
//!   [`Informer`]s by type (`factory.informer::<Pod>()`) or by resource at run time
//!   ([`InformerFactory::dynamic_informer_for_kind`]), then `start()` and
//!   `wait_for_cache_sync()`.
//! - [`Informer`] (client-go's `SharedIndexInformer`): add handlers, read the cache through
//!   [`Informer::lister`] / [`Informer::store`], add indexes.
//! - Handlers receive [`Event`]s: write an actix actor with `impl Handler<Event<K>>` and
//!   register it with [`handler_actor`] (restarted if it panics), or pass a closure with
//!   [`handler_fn`].
//!
//! # The pipeline (one per resource and cluster, on its own thread)
//! ```text
//! API server ─▶ reflector ─▶ delta_fifo ─▶ indexer ─(processor)─▶ listener ─▶ your handler
//!                  │                       │  writes Store     └──────▶ listener ─▶ another handler
//!                  └─ reports ─▶ supervisor └─▶ Store readers (listers, indexes)
//! ```
//! Each stage is a module with its contract at the top: [`reflector`], [`delta_fifo`],
//! [`indexer`] (+ [`store`], [`lister`]), [`processor`], [`listener`]
//! (+ [`listener_buffer`]), [`event`]. Each stage owns the message it *sends*, so imports
//! point one way, from a stage to the ones before it. The messages are public so that tests
//! can stand in for any stage; they may change between versions.

pub mod backoff;
pub mod cache_mode;
pub(crate) mod compact;
pub mod controller;
pub mod controller_metrics;
pub mod delta_fifo;
pub mod error_chain;
pub mod event;
pub mod event_stream;
pub mod finalizer;
pub mod handler_span;
pub mod heap_release;
pub mod ids;
pub mod indexer;
pub mod informer;
pub mod informer_factory;
pub(crate) mod label_index;
pub mod latency;
pub mod leader_elector;
pub mod leadership;
pub mod lease_lock;
pub mod list_gate;
pub mod list_json;
pub mod list_watch;
pub mod listener;
pub mod listener_buffer;
pub mod listener_traces;
pub mod lister;
pub mod managed_fields;
pub mod metadata_only;
pub mod notification;
pub mod object;
pub mod predicate;
pub mod processor;
pub mod quarantine;
pub mod rate_limiter;
pub mod read_pacing;
pub mod reflector;
pub mod registry;
pub mod selector;
pub mod stage_fault;
pub mod store;
pub mod supervisor;
pub mod trace_context;
pub mod transform;
pub mod watch_counters;
pub mod watch_error;
pub mod work_queue;

#[cfg(test)]
mod test_support;

pub use cache_mode::CacheMode;
pub use controller::{
    Action, Controller, ControllerOptions, Reconcile, ReconcileContext, ReconcileError,
};
pub use controller_metrics::{ControllerMetrics, NoMetrics, ReconcileOutcome};
pub use event::{Event, EventHandler, handler_actor, handler_fn};
pub use event_stream::EventStream;
pub use finalizer::{FinalizerError, FinalizerEvent, finalizer};
pub use informer::{Informer, InformerError};
pub use informer_factory::{FactoryError, FactoryOptions, InformerFactory};
pub use leader_elector::{ElectionTimings, LeaderElection, LeaderElector};
pub use leadership::Leadership;
pub use lease_lock::{LeaseError, LeaseLock};
pub use list_json::ListJson;
pub use listener::{EventMap, HandlerOptions, HandlerStatus};
pub use listener_buffer::BufferMode;
pub use lister::Lister;
pub use metadata_only::MetadataObject;
pub use object::CacheObject;
pub use predicate::Predicate;
pub use processor::HandlerId;
pub use rate_limiter::RateLimits;
pub use registry::{InformerHandle, Registry};
pub use stage_fault::Stage;
pub use store::{IndexError, IndexFn, NAMESPACE_INDEX, Snapshot, Store, StoreWriter};
pub use trace_context::TraceContext;
pub use transform::Transform;
pub use watch_error::{WatchError, WatchErrorHandlerId, WatchErrorKind};
pub use work_queue::{ReconcileKey, ShutdownMode, WorkQueue};
