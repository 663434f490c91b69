//! Faults of a pipeline stage: a panic in the reflector, the delta FIFO, the indexer or the
//! processor. The FIFO and the indexer catch panics in their own code (the transform and
//! user index functions run there) and report them with [`StageFailed`]; the reflector's
//! death is seen by the [supervisor](crate::supervisor) through its final report. Either way
//! the supervisor restarts the pipeline from a relist (see its module docs).
//!
//! [`InjectPanic`] is a fault-injection hook for tests and fault schedules: public, hidden
//! from the docs, sent through [`Informer::inject_stage_panic`](crate::Informer::inject_stage_panic).

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;

/// One stage of a pipeline that can fail and be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Lists and watches the server.
    Reflector,
    /// Queues and deduplicates deltas (the delta FIFO).
    Fifo,
    /// Writes the cache and its indexes.
    Indexer,
    /// Fans notifications out to the handlers.
    Processor,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [
        Stage::Reflector,
        Stage::Fifo,
        Stage::Indexer,
        Stage::Processor,
    ];

    /// `reflector`, `fifo`, `indexer`, `processor` (metric labels, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Reflector => "reflector",
            Stage::Fifo => "fifo",
            Stage::Indexer => "indexer",
            Stage::Processor => "processor",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage caught a panic in its own code and needs the pipeline restarted from a relist.
/// Sent by the delta FIFO and the indexer to the supervisor with `do_send`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StageFailed {
    /// The stage that panicked.
    pub stage: Stage,
    /// The panic's message.
    pub message: String,
}

/// Makes `0` panic now, as a bug in that stage would. Fault injection for tests; sent by
/// [`Informer::inject_stage_panic`](crate::Informer::inject_stage_panic) with `do_send`.
#[doc(hidden)]
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectPanic(pub Stage);

impl InjectPanic {
    /// Panics with a message naming the stage.
    pub fn fire(self) -> ! {
        panic!("injected fault: the {} stage panics", self.0)
    }
}

/// Restarts per stage, shared by a pipeline's supervisor and its informer.
#[derive(Debug, Default)]
pub struct StageRestartCounters([AtomicU64; 4]);

impl StageRestartCounters {
    pub(crate) fn record(&self, stage: Stage) {
        self.0[stage as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Restarts of `stage` so far.
    pub fn get(&self, stage: Stage) -> u64 {
        self.0[stage as usize].load(Ordering::Relaxed)
    }
}

/// What a caught panic said.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
