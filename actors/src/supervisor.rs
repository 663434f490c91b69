//! The pipeline's supervisor: the control path beside the data path. It owns the reflector's
//! lifecycle, receives its reports (so they never queue behind data in a stage's mailbox),
//! and restarts the pipeline when a stage fails.
//!
//! # Contract
//! - Keeps the latest reflector report for the informer to read without a message. Counters
//!   (`lists`, `relists`, `watches`) keep counting across reflector restarts.
//! - **A stage fails** — the reflector dies (its final report arrives while the pipeline
//!   runs), or the FIFO or the indexer reports a caught panic ([`StageFailed`]) — and the
//!   pipeline restarts *from a relist*: the FIFO's queue is rebuilt from the cache
//!   ([`ResetQueue`]), the reflector (if still alive) is stopped and a new one lists. The
//!   relist's `Replace` is diffed against the cache as any relist is, so handlers see a
//!   consistent stream: updates and adds for what changed, `Deleted` with
//!   `final_state_unknown` for what vanished while the pipeline was down, nothing for what did
//!   not change. The cache, the listeners and their buffers survive.
//! - Each change of the pipeline's health (failing, failing differently, recovered) is
//!   logged once and handed to its watch-error handlers ([`crate::watch_error`]).
//! - Each restart is counted per stage ([`StageRestartCounters`], read by the runtime's
//!   `panoptes_pipeline_stage_restarts_total`) and logged at ERROR with cluster, resource,
//!   stage and the panic's message.
//!
//! # Lifecycle
//! Started by the informer on the pipeline's arbiter, before the other actors; it starts the
//! first reflector on [`StartReflector`] and stops it on [`StopPipeline`] (after which a dying
//! reflector is not replaced). It stops with the arbiter.
//!
//! # Differences from client-go
//! client-go has no supervision: a panic in an informer goroutine crashes the process
//! (`runtime.HandleCrash`). A restart here costs a relist, like a 410.

use std::sync::Arc;

use actix::prelude::*;
use parking_lot::Mutex;

use crate::ids::ClusterId;
use crate::object::CacheObject;
use crate::reflector::{ReflectorBatch, ReflectorReport, ReflectorState, StopReflector};
use crate::stage_fault::{InjectPanic, Stage, StageFailed, StageRestartCounters};
use crate::watch_error::{PipelineHealth, WatchErrors};

/// Starts a reflector on the pipeline's arbiter, feeding the FIFO and reporting to the
/// supervisor; called again for each restart.
pub(crate) type StartSource<K> = Arc<
    dyn Fn(
            &ArbiterHandle,
            Recipient<ReflectorBatch<K>>,
            Recipient<ReflectorReport>,
        ) -> RunningReflector
        + Send
        + Sync,
>;

/// How the supervisor reaches a running reflector.
pub struct RunningReflector {
    /// Stops the reflector.
    pub stop: Recipient<StopReflector>,
    /// Makes the reflector panic (fault injection).
    pub inject: Recipient<InjectPanic>,
}

/// The latest reflector report, shared with the informer.
pub(crate) type LatestReport = Arc<Mutex<Option<ReflectorReport>>>;

/// Rebuilds the FIFO's queue from the cache before a relist: nothing pending, the known keys
/// are what the cache holds. Sent by the supervisor with `do_send`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ResetQueue;

/// Connects the supervisor to the FIFO and gives it the reflector's recipe. Sent by the
/// informer with `do_send`, once, right after starting the pipeline's actors.
pub struct Wire<K: CacheObject> {
    /// Where the reflector's batches go.
    pub fifo: Recipient<ReflectorBatch<K>>,
    /// Empties the FIFO before a restarted reflector relists.
    pub reset: Recipient<ResetQueue>,
    /// How to start (and restart) the reflector; `None` for a pipeline fed by hand.
    pub source: Option<StartSource<K>>,
}

impl<K: CacheObject> Message for Wire<K> {
    type Result = ();
}

/// Starts the reflector (idempotent). Sent by the informer with `do_send`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StartReflector;

/// Stops the reflector for good. Sent by the informer with `do_send`, before it stops the
/// arbiter.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopPipeline;

/// What the supervisor knows of the counters of reflectors that are gone.
#[derive(Debug, Default, Clone, Copy)]
struct Carried {
    lists: u64,
    relists: u64,
    watches: u64,
}

/// The supervisor actor. See the module docs.
pub struct PipelineSupervisor<K: CacheObject> {
    cluster: ClusterId,
    resource: Arc<str>,
    latest: LatestReport,
    restarts: Arc<StageRestartCounters>,
    fifo: Option<Recipient<ReflectorBatch<K>>>,
    reset: Option<Recipient<ResetQueue>>,
    source: Option<StartSource<K>>,
    reflector: Option<RunningReflector>,
    /// Reflectors stopped on purpose whose final report is still to come.
    retiring: usize,
    /// The counters of the running reflector's predecessors.
    carried: Carried,
    /// The counters of the running reflector, as last reported.
    current: Carried,
    stopping: bool,
    /// Logs each health change once and calls the watch-error handlers.
    health: PipelineHealth,
}

impl<K: CacheObject> PipelineSupervisor<K> {
    pub(crate) fn new(
        cluster: ClusterId,
        resource: Arc<str>,
        latest: LatestReport,
        restarts: Arc<StageRestartCounters>,
        watch_errors: WatchErrors,
    ) -> Self {
        Self {
            cluster,
            resource,
            latest,
            restarts,
            fifo: None,
            reset: None,
            source: None,
            reflector: None,
            retiring: 0,
            carried: Carried::default(),
            current: Carried::default(),
            stopping: false,
            health: PipelineHealth::new(watch_errors),
        }
    }

    /// Restarts the pipeline from a relist after `stage` failed.
    fn restart(&mut self, stage: Stage, message: &str, ctx: &mut Context<Self>) {
        self.restarts.record(stage);
        tracing::error!(cluster = %self.cluster, resource = %self.resource, %stage, panic = message, "pipeline stage panicked; restarting the pipeline from a relist");
        if let Some(reset) = &self.reset {
            reset.do_send(ResetQueue);
        }
        if let Some(old) = self.reflector.take() {
            old.stop.do_send(StopReflector);
            self.retiring += 1;
        }
        self.carry_counters();
        self.spawn_reflector(ctx);
    }

    /// Adds the running reflector's counters to those carried over.
    fn carry_counters(&mut self) {
        self.carried.lists += self.current.lists;
        self.carried.relists += self.current.relists;
        self.carried.watches += self.current.watches;
        self.current = Carried::default();
    }

    fn spawn_reflector(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let (Some(source), Some(fifo)) = (&self.source, &self.fifo) else {
            return;
        };
        if !fifo.connected() {
            // The FIFO is gone: the pipeline is stopping, a reflector would stop at once.
            return;
        }
        let arbiter = Arbiter::current();
        self.reflector = Some(source(&arbiter, fifo.clone(), ctx.address().recipient()));
    }
}

impl<K: CacheObject> Actor for PipelineSupervisor<K> {
    type Context = Context<Self>;
}

impl<K: CacheObject> Handler<Wire<K>> for PipelineSupervisor<K> {
    type Result = ();

    fn handle(&mut self, wire: Wire<K>, _ctx: &mut Self::Context) {
        self.fifo = Some(wire.fifo);
        self.reset = Some(wire.reset);
        self.source = wire.source;
    }
}

impl<K: CacheObject> Handler<StartReflector> for PipelineSupervisor<K> {
    type Result = ();

    fn handle(&mut self, _msg: StartReflector, ctx: &mut Self::Context) {
        if self.reflector.is_none() {
            self.spawn_reflector(ctx);
        }
    }
}

impl<K: CacheObject> Handler<StopPipeline> for PipelineSupervisor<K> {
    type Result = ();

    fn handle(&mut self, _msg: StopPipeline, _ctx: &mut Self::Context) {
        self.stopping = true;
        if let Some(reflector) = self.reflector.take() {
            reflector.stop.do_send(StopReflector);
        }
    }
}

impl<K: CacheObject> Handler<ReflectorReport> for PipelineSupervisor<K> {
    type Result = ();

    fn handle(&mut self, mut report: ReflectorReport, ctx: &mut Self::Context) {
        tracing::debug!(cluster = %self.cluster, resource = %self.resource, state = ?report.state, synced = report.synced, "reflector report");
        if report.state == ReflectorState::Stopped && self.retiring > 0 {
            // The final word of a reflector replaced on purpose.
            self.retiring -= 1;
            return;
        }
        let died = report.state == ReflectorState::Stopped && !self.stopping;
        self.current = Carried {
            lists: report.lists,
            relists: report.relists,
            watches: report.watches,
        };
        report.lists += self.carried.lists;
        report.relists += self.carried.relists;
        report.watches += self.carried.watches;
        if !self.stopping {
            // A pipeline being stopped may see its server go first; that is not news.
            self.health.observe(&report);
        }
        *self.latest.lock() = Some(report);
        if died && self.reflector.take().is_some() {
            self.restart(Stage::Reflector, "the reflector stopped unasked", ctx);
        }
    }
}

impl<K: CacheObject> Handler<StageFailed> for PipelineSupervisor<K> {
    type Result = ();

    fn handle(&mut self, failed: StageFailed, ctx: &mut Self::Context) {
        self.restart(failed.stage, &failed.message, ctx);
    }
}

impl<K: CacheObject> Handler<InjectPanic> for PipelineSupervisor<K> {
    type Result = ();

    /// Forwards a reflector fault to the running reflector.
    fn handle(&mut self, msg: InjectPanic, _ctx: &mut Self::Context) {
        if let Some(reflector) = &self.reflector {
            reflector.inject.do_send(msg);
        }
    }
}
