//! Tracing (feature `tracing`, off by default): the helpers of [`ds_proto::driver::trace`], which both
//! drivers share (what is recorded, at which level, and what never is, is documented there).
//! Without the feature they are [`ds_proto::driver::trace::off`]'s empty inline stubs, so users who do
//! not want tracing pay nothing. What is this driver's own: running an exchange's future in its
//! span.

ds_proto::__driver_trace!(now: crate::clock::now);

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
