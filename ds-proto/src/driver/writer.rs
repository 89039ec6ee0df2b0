//! The shared core of a driver's writer: the [`Producer`], the bookkeeping of its appends
//! ([`WriteTracker`]), the application's callbacks and waiters, and the rules that turn what
//! the producer reports into what `flush` and `close` return ([`FlushError`],
//! [`CloseReport`]). A driver keeps it behind its lock and adds only IO: its exchanges, its
//! background task or thread, and how it waits.
//!
//! A driver's writer loop, with the core locked (the order of [`Machine`](crate::Machine)):
//!
//! ```text
//! loop {
//!     cancels   = core.producer_mut().poll_cancel()*         -> abort those exchanges
//!     transmits = core.producer_mut().poll_transmit(now)*
//!     changed   = core.deliver_events(trace, notify)         // callbacks, waiters, snapshots
//!     start the transmits (the persisted snapshot now holds every batch they carry)
//!     if changed { wake whoever waits in flush/close/append }
//!     wait for the first of: an input, a wake, core.producer().poll_timeout()
//! }
//! ```

use crate::driver::client::ClientSettings;
use crate::driver::write_tracker::{CloseOutcome, WriteFailure, WriteOutcome, WriteTracker};
use crate::error::InputReason;
use crate::offset::Offset;
use crate::ops::CallOptions;
use crate::producer::{
    AppendError, AppendId, FailureReason, Producer, ProducerConfig, ProducerEvent,
    ProducerSnapshot, SnapshotSchedule,
};
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Called with every failure, as it happens (for fire-and-forget writers).
pub type ErrorCallback = Arc<dyn Fn(&WriteFailure) + Send + Sync>;

/// Called with a snapshot to persist (see the drivers' `Writer::on_snapshot`).
pub type SnapshotCallback = Arc<dyn Fn(&ProducerSnapshot) + Send + Sync>;

/// Appends that failed, reported by a writer's `flush` and `close`; nothing is lost: each
/// failed batch comes back with its payloads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub struct FlushError {
    /// The failed batches with their payloads, in append order.
    pub failures: Vec<WriteFailure>,
    /// Why the close itself did not happen (only from `close(true)`): refused before anything
    /// was sent, or the closing request failed.
    pub close_failure: Option<FailureReason>,
}

impl FlushError {
    /// The first reason: the first failed batch's, else the close's.
    pub fn reason(&self) -> Option<&FailureReason> {
        self.failures
            .first()
            .map(|f| &f.reason)
            .or(self.close_failure.as_ref())
    }

    /// How many appends are reported failed (their payloads are in [`FlushError::failures`]).
    pub fn failed_appends(&self) -> usize {
        self.failures.iter().map(|f| f.items.len()).sum()
    }
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(first) = self.failures.first() {
            write!(
                f,
                "{} batch(es) failed; first: {}",
                self.failures.len(),
                first.reason
            )?;
            if self.close_failure.is_some() {
                f.write_str("; ")?;
            }
        }
        if let Some(close) = &self.close_failure {
            write!(f, "the close failed: {close}")?;
        }
        Ok(())
    }
}

/// How a writer's `close` ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CloseReport {
    /// The stream's final offset (closing the stream) or the latest acknowledged tail.
    pub offset: Option<Offset>,
    /// Whether the stream itself was closed.
    pub stream_closed: bool,
}

/// Makes a writer's producer configuration ready for a driver: this stream's `url`, a PRNG
/// `seed` from the client, and, when `config.request_deadline` is unset, the call's or the
/// client's request timeout as each request's deadline (a server that stops answering makes
/// the attempt fail and be retried, instead of waiting for ever).
pub fn prepare_config(
    config: &mut ProducerConfig,
    url: &str,
    settings: &ClientSettings,
    call: &CallOptions,
    seed: u64,
) {
    url.clone_into(&mut config.url);
    config.rng_seed = seed;
    if config.request_deadline.is_none() {
        config.request_deadline = call.timeout.or(settings.request_timeout);
    }
}

/// The producer defaults ([`ProducerConfig::new`]) for a handle's `writer(producer_id)`, with
/// the stream's content type when the handle knows it.
pub fn default_config(
    url: &str,
    producer_id: impl Into<String>,
    known_content_type: Option<String>,
) -> ProducerConfig {
    let mut config = ProducerConfig::new(url, producer_id);
    if let Some(ct) = known_content_type {
        config.content_type = ct;
    }
    config
}

/// One value as a JSON message payload for a writer; what serde refuses is an
/// [`AppendError::Refused`] with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
pub fn json_payload<T: serde::Serialize + ?Sized>(
    url: &str,
    value: &T,
) -> Result<Bytes, AppendError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        AppendError::Refused(crate::Error::invalid_input(
            crate::Operation::Append,
            url,
            InputReason::Body,
            format!("cannot serialize: {e}"),
        ))
    })
}

/// What a `flush` or `close` waits for, from [`WriterCore::flush`] or [`WriterCore::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Every append before this one resolved.
    Flushed(AppendId),
    /// The close resolved.
    Closed,
}

/// The writer's state a driver keeps behind its lock. `W` is the driver's waiter for one
/// tracked append (a channel sender).
pub struct WriterCore<W> {
    producer: Producer,
    tracker: WriteTracker,
    waiters: HashMap<u64, W>,
    on_error: Option<ErrorCallback>,
    on_snapshot: Option<SnapshotCallback>,
    schedule: SnapshotSchedule,
}

impl<W> fmt::Debug for WriterCore<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterCore")
            .field("url", &crate::url::strip_query(&self.producer.config().url))
            .field("epoch", &self.producer.epoch())
            .field("buffered_bytes", &self.producer.buffered_bytes())
            .field("waiters", &self.waiters.len())
            .finish_non_exhaustive()
    }
}

impl<W> WriterCore<W> {
    /// The core of a new writer.
    pub fn new(producer: Producer) -> Self {
        Self::with_tracker(producer, WriteTracker::new())
    }

    /// The core of a writer restored from `snapshot` at `now`: the appends the snapshot
    /// reported resolved stay resolved.
    pub fn restore(snapshot: ProducerSnapshot, now: Instant) -> Result<Self, crate::Error> {
        let tracker = WriteTracker::starting_at(snapshot.first_unreported());
        Ok(Self::with_tracker(
            Producer::restore(snapshot, now)?,
            tracker,
        ))
    }

    fn with_tracker(producer: Producer, tracker: WriteTracker) -> Self {
        WriterCore {
            producer,
            tracker,
            waiters: HashMap::new(),
            on_error: None,
            on_snapshot: None,
            schedule: SnapshotSchedule::new(),
        }
    }

    /// The producer.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The producer, to drive it (inputs, timeouts, `poll_transmit`, `poll_cancel`).
    pub fn producer_mut(&mut self) -> &mut Producer {
        &mut self.producer
    }

    /// The latest tail offset an acknowledgement reported.
    pub fn offset(&self) -> Option<Offset> {
        self.tracker.last_offset().cloned()
    }

    /// Hands `data` to the producer at `now` (`serialized`: JSON serde just wrote, not
    /// validated again). Also says whether the driver's loop must look at the producer
    /// ([`Producer::take_append_wake`]: a batch sealed, a linger timer started); waking it for
    /// every append only makes it contend for the lock.
    pub fn append(
        &mut self,
        data: Bytes,
        serialized: bool,
        now: Instant,
    ) -> Result<(AppendId, bool), AppendError> {
        let id = if serialized {
            self.producer.append_serialized_json(data, now)?
        } else {
            self.producer.append(data, now)?
        };
        Ok((id, self.producer.take_append_wake()))
    }

    /// Keeps `waiter` until append `id` resolves.
    pub fn track(&mut self, id: AppendId, waiter: W) {
        self.waiters.insert(id.0, waiter);
    }

    /// Sets the failure callback.
    pub fn set_on_error(&mut self, callback: ErrorCallback) {
        self.on_error = Some(callback);
    }

    /// Sets the snapshot callback and hands it the current snapshot at once.
    pub fn set_on_snapshot(&mut self, callback: SnapshotCallback) {
        self.on_snapshot = Some(callback);
        self.persist(true);
    }

    /// Hands a snapshot to the snapshot callback when the last one does not hold every batch
    /// that may be sent (write-ahead), or when `resolved` (appends were acknowledged or
    /// failed). The driver calls it before it starts any transmit.
    pub fn persist(&mut self, resolved: bool) {
        if let Some(cb) = &self.on_snapshot {
            if let Some(snapshot) = self.schedule.due(&self.producer, resolved) {
                cb(&snapshot);
            }
        }
    }

    /// Drains the producer's events: each is traced (`trace`), failures go to the failure
    /// callback, resolved appends to their waiters (`notify`), then a snapshot is persisted if
    /// one is due (so call it before starting the transmits just polled). Returns whether
    /// anything happened (the driver then wakes whoever waits).
    pub fn deliver_events(
        &mut self,
        mut trace: impl FnMut(&str, &ProducerEvent),
        mut notify: impl FnMut(W, WriteOutcome),
    ) -> bool {
        let mut changed = false;
        let mut resolved = false;
        while let Some(event) = self.producer.poll_event() {
            changed = true;
            resolved |= event.changes_snapshot();
            trace(&self.producer.config().url, &event);
            if let (ProducerEvent::Failed { .. }, Some(cb)) = (&event, &self.on_error) {
                if let Some(failure) = WriteFailure::of(&event) {
                    cb(&failure);
                }
            }
            if let Some(done) = self.tracker.observe(&event) {
                if !self.waiters.is_empty() {
                    for id in done.first.0..=done.last.0 {
                        if let Some(w) = self.waiters.remove(&id) {
                            notify(w, done.outcome.clone());
                        }
                    }
                }
            }
        }
        self.persist(resolved);
        changed
    }

    /// Starts a flush at `now`: what is buffered is sent; the flush waits for every append so
    /// far.
    pub fn flush(&mut self, now: Instant) -> Wait {
        self.producer.flush(now);
        Wait::Flushed(self.producer.next_append_id())
    }

    /// Starts a close at `now`: a flush, and with `close_stream` the final batch closes the
    /// stream (`Stream-Closed: true`). A close the producer refuses at once (already closing)
    /// is an error now.
    pub fn close(&mut self, close_stream: bool, now: Instant) -> Result<Wait, FlushError> {
        if !close_stream {
            return Ok(self.flush(now));
        }
        match self.producer.close(now) {
            Ok(()) => Ok(Wait::Closed),
            Err(e) => Err(FlushError {
                failures: self.tracker.take_failures(),
                close_failure: Some(FailureReason::NotStored(e)),
            }),
        }
    }

    /// Whether `wait` is over: the flush's result (the failures since the last report).
    pub fn flushed(&mut self, wait: Wait) -> Option<Result<(), FlushError>> {
        match wait {
            Wait::Flushed(target) if self.tracker.all_resolved_before(target) => {
                let failures = self.tracker.take_failures();
                Some(if failures.is_empty() {
                    Ok(())
                } else {
                    Err(FlushError {
                        failures,
                        close_failure: None,
                    })
                })
            }
            Wait::Closed => self.closed(wait).map(|r| r.map(|_| ())),
            Wait::Flushed(_) => None,
        }
    }

    /// Whether `wait` is over: the close's report.
    pub fn closed(&mut self, wait: Wait) -> Option<Result<CloseReport, FlushError>> {
        match wait {
            Wait::Flushed(_) => self.flushed(wait).map(|r| {
                r.map(|()| CloseReport {
                    offset: self.offset(),
                    stream_closed: false,
                })
            }),
            Wait::Closed => {
                let outcome = self.tracker.close_outcome().cloned()?;
                let failures = self.tracker.take_failures();
                Some(match outcome {
                    CloseOutcome::Closed { final_offset } if failures.is_empty() => {
                        Ok(CloseReport {
                            offset: final_offset,
                            stream_closed: true,
                        })
                    }
                    CloseOutcome::Closed { .. } => Err(FlushError {
                        failures,
                        close_failure: None,
                    }),
                    CloseOutcome::Failed(reason) => Err(FlushError {
                        failures,
                        close_failure: Some(reason),
                    }),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
