//! Tracing (feature `tracing`, off by default): the helpers of [`ds_proto::driver::trace`], which both
//! drivers share (what is recorded, at which level, and what never is, is documented there).
//! Without the feature they are [`ds_proto::driver::trace::off`]'s empty inline stubs, so users who do
//! not want tracing pay nothing. What is this driver's own: entering an exchange's span on the
//! thread that performs it.

#[cfg(not(feature = "tracing"))]
use ds_proto::driver::trace::off as imp;
#[cfg(feature = "tracing")]
use ds_proto::driver::trace::on as imp;

pub(crate) use imp::{call_step, producer_event, reader_event};

/// The clock request latencies are measured with.
#[derive(Debug)]
pub(crate) struct Clock;

impl ds_proto::driver::trace::Clock for Clock {
    fn now() -> std::time::Instant {
        std::time::Instant::now()
    }
}

/// The span of one HTTP exchange and what is counted while it runs.
pub(crate) type RequestTrace = imp::RequestTrace<Clock>;

/// Enters a request's span (from [`RequestTrace::handle`]) until the guard is dropped.
#[cfg(feature = "tracing")]
pub(crate) fn enter(span: tracing::Span) -> tracing::span::EnteredSpan {
    span.entered()
}

/// Nothing to enter without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn enter(span: imp::NoSpan) -> imp::NoSpan {
    span
}
