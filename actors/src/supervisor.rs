//! The pipeline's supervisor: the control path beside the data path. It receives the
//! reflector's reports (state, sync, counters) so that they never queue behind data in a
//! pipeline stage's mailbox, and keeps the latest one for the informer to read without a
//! message.
//!
//! # Lifecycle
//! Started by the informer on the pipeline's arbiter; stops with it.

use std::sync::Arc;

use actix::prelude::*;
use parking_lot::Mutex;

use crate::ids::ClusterId;
use crate::reflector::ReflectorReport;

/// The latest reflector report, shared with the informer.
pub(crate) type LatestReport = Arc<Mutex<Option<ReflectorReport>>>;

/// The supervisor actor. See the module docs.
pub struct PipelineSupervisor {
    cluster: ClusterId,
    resource: Arc<str>,
    latest: LatestReport,
}

impl PipelineSupervisor {
    pub(crate) fn new(cluster: ClusterId, resource: Arc<str>, latest: LatestReport) -> Self {
        Self {
            cluster,
            resource,
            latest,
        }
    }
}

impl Actor for PipelineSupervisor {
    type Context = Context<Self>;
}

impl Handler<ReflectorReport> for PipelineSupervisor {
    type Result = ();

    fn handle(&mut self, report: ReflectorReport, _ctx: &mut Self::Context) {
        tracing::debug!(cluster = %self.cluster, resource = %self.resource, state = ?report.state, synced = report.synced, "reflector report");
        *self.latest.lock() = Some(report);
    }
}
