//! The driver's one clock: `tokio::time`, so that paused-time tests work. Every `now` the
//! machines, the traces and the deadlines get comes from here.

/// Now, on tokio's clock, as the `std::time::Instant` the machines take.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
