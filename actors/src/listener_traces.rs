//! Which trace each buffered notification of a listener belongs to, so that the span of its
//! delivery (and the handler's span under it) continues the trace of the watch event that
//! caused it, however long the notification waited in the buffer.
//!
//! # Contract
//! - The listener records, per accepted batch, the number of its first notification and the
//!   context of its `listener.notify` span; [`BatchTraces::trace_of`] answers the context of
//!   the batch a notification number falls in (a coalesced notification keeps the number, and
//!   so the trace, of the oldest change it absorbed).
//! - Notifications of the replay a listener starts with belong to no batch: their delivery
//!   spans are roots.
//! - Memory is bounded: entries older than every pending notification are forgotten, and at
//!   most [`MAX_TRACED_BATCHES`] are kept (past that the oldest go, and their notifications'
//!   deliveries start traces of their own).

use std::collections::VecDeque;

use crate::trace_context::TraceContext;

/// At most this many batches' contexts per listener: a handler that lags by more batches
/// loses the link to the oldest (their spans become roots), never memory.
pub const MAX_TRACED_BATCHES: usize = 4096;

/// Batch trace contexts by the number of the batch's first notification. Invariant: the
/// numbers increase from front to back.
#[derive(Debug, Default)]
pub struct BatchTraces {
    batches: VecDeque<(u64, TraceContext)>,
}

impl BatchTraces {
    /// Records that notifications numbered from `first` on belong to `trace`'s batch.
    pub fn record(&mut self, first: u64, trace: TraceContext) {
        if !trace.is_valid() {
            // Still recorded, so that later numbers do not fall into the previous batch.
            if self.batches.is_empty() {
                return;
            }
        }
        if self.batches.len() == MAX_TRACED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back((first, trace));
    }

    /// The context of the batch notification `seq` arrived in (`none` for the replay).
    pub fn trace_of(&self, seq: u64) -> TraceContext {
        let after = self.batches.partition_point(|(first, _)| *first <= seq);
        after
            .checked_sub(1)
            .map(|i| self.batches[i].1.clone())
            .unwrap_or_default()
    }

    /// Forgets batches all of whose notifications are older than `oldest_pending`.
    pub fn forget_before(&mut self, oldest_pending: Option<u64>) {
        let Some(oldest) = oldest_pending else {
            self.batches.clear();
            return;
        };
        while self.batches.len() > 1 && self.batches[1].0 <= oldest {
            self.batches.pop_front();
        }
    }

    /// Batches remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.batches.len()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };

    use super::*;

    fn trace(n: u8) -> TraceContext {
        let span = SpanContext::new(
            TraceId::from_bytes([n; 16]),
            SpanId::from_bytes([n; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        TraceContext::from_otel(opentelemetry::Context::new().with_remote_span_context(span))
    }

    fn id(cx: &TraceContext) -> Option<u8> {
        cx.is_valid()
            .then(|| cx.span_context().trace_id().to_bytes()[0])
    }

    #[test]
    fn should_answer_the_batch_a_notification_arrived_in() {
        let mut traces = BatchTraces::default();
        traces.record(0, TraceContext::none());
        assert_eq!(traces.len(), 0, "the replay needs no entry");
        traces.record(3, trace(1));
        traces.record(5, trace(2));
        assert_eq!(id(&traces.trace_of(2)), None, "replayed");
        assert_eq!(id(&traces.trace_of(3)), Some(1));
        assert_eq!(id(&traces.trace_of(4)), Some(1));
        assert_eq!(id(&traces.trace_of(9)), Some(2));
        traces.record(7, TraceContext::none());
        assert_eq!(id(&traces.trace_of(8)), None, "an untraced batch");
    }

    #[test]
    fn should_forget_batches_nothing_pending_belongs_to() {
        let mut traces = BatchTraces::default();
        for batch in 0..10 {
            traces.record(batch * 2, trace(batch as u8 + 1));
        }
        traces.forget_before(Some(7));
        assert_eq!(id(&traces.trace_of(7)), Some(4));
        assert_eq!(traces.len(), 7);
        traces.forget_before(None);
        assert_eq!(traces.len(), 0);
    }

    #[test]
    fn should_stay_bounded_when_a_handler_lags() {
        let mut traces = BatchTraces::default();
        for batch in 0..(MAX_TRACED_BATCHES as u64 + 10) {
            traces.record(batch, trace(1));
        }
        assert_eq!(traces.len(), MAX_TRACED_BATCHES);
        assert_eq!(id(&traces.trace_of(0)), None, "the oldest were dropped");
    }
}
