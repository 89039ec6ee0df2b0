//! Tracing (feature `tracing`, off by default): the helpers of [`ds_proto::driver::trace`], which both
//! drivers share (what is recorded, at which level, and what never is, is documented there).
//! Without the feature they are [`ds_proto::driver::trace::off`]'s empty inline stubs, so users who do
//! not want tracing pay nothing. What is this driver's own: running an exchange's future in its
//! span.

#[cfg(not(feature = "tracing"))]
use ds_proto::driver::trace::off as imp;
#[cfg(feature = "tracing")]
use ds_proto::driver::trace::on as imp;

pub(crate) use imp::{call_step, producer_event, reader_event};

/// The clock request latencies are measured with: `tokio::time`, the driver's one clock (the
/// machines get their `now` from it too), so a span's latency agrees with their deadlines.
#[derive(Debug)]
pub(crate) struct Clock;

impl ds_proto::driver::trace::Clock for Clock {
    fn now() -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// The span of one HTTP exchange and what is counted while it runs.
pub(crate) type RequestTrace = imp::RequestTrace<Clock>;

/// A request's span ([`RequestTrace::handle`]): nothing without the `tracing` feature.
#[cfg(feature = "tracing")]
pub(crate) type Span = tracing::Span;
/// A request's span ([`RequestTrace::handle`]): nothing without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
pub(crate) type Span = imp::NoSpan;

/// Runs `future` inside a request's span (from [`RequestTrace::handle`]).
#[cfg(feature = "tracing")]
pub(crate) fn in_span<F: std::future::Future>(
    span: tracing::Span,
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    tracing::Instrument::instrument(future, span)
}

/// Runs `future` (no span without the `tracing` feature).
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn in_span<F: std::future::Future>(_span: imp::NoSpan, future: F) -> F {
    future
}
