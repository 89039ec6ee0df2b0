//! Tracing (feature `tracing`, off by default): the helpers of [`ds_proto::driver::trace`], which both
//! drivers share (what is recorded, at which level, and what never is, is documented there).
//! Without the feature they are [`ds_proto::driver::trace::off`]'s empty inline stubs, so users who do
//! not want tracing pay nothing. What is this driver's own: entering an exchange's span on the
//! thread that performs it.

ds_proto::__driver_trace!(now: std::time::Instant::now);

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
