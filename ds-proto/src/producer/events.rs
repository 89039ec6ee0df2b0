//! What the producer tells its application: append ids, events, failure reasons and the
//! refusals of [`Producer::append`](super::Producer::append).

use crate::error::{Error, ErrorKind};
use crate::offset::Offset;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The number of one accepted append: sequential per producer, from 0.
///
/// Only appends that [`Producer::append`](super::Producer::append) accepted get an id (a refused
/// append does not consume one), so the ids of a producer's events are contiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppendId(pub u64);

impl fmt::Display for AppendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "append {}", self.0)
    }
}

/// Why appends failed: whether they are known not to be stored, or may be.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FailureReason {
    /// The appends are not in the stream and will never be: the server refused them (or every
    /// attempt was answered with a definite "not applied"), or an earlier failure stopped the
    /// producer before they could be applied. The error says why.
    #[error("{0}")]
    NotStored(Error),
    /// The appends may or may not be in the stream: at least one attempt to send them ended
    /// without a definite answer (transport failure, timeout, a 5xx), and the producer can no
    /// longer find out, either because the epoch changed (auto-claim: re-sending under the new
    /// epoch could store them twice, DESIGN.md section 2) or because the producer stopped
    /// (retry exhaustion, fencing, closure). The application decides, e.g. by reading the stream.
    #[error("indeterminate (epoch {epoch}, seq {seq}): {error}")]
    Indeterminate {
        /// What stopped the producer from finding out (the fence, the last attempt's error).
        error: Error,
        /// The epoch the batch was last sent under.
        epoch: u64,
        /// Its `Producer-Seq` in that epoch.
        seq: u64,
    },
}

impl FailureReason {
    /// The underlying error.
    pub fn error(&self) -> &Error {
        match self {
            FailureReason::NotStored(e) | FailureReason::Indeterminate { error: e, .. } => e,
        }
    }

    /// The kind of the underlying error.
    pub fn kind(&self) -> &ErrorKind {
        &self.error().kind
    }

    /// Whether the appends may have been stored ([`FailureReason::Indeterminate`]).
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, FailureReason::Indeterminate { .. })
    }
}

/// Something the application should know, drained with
/// [`Producer::poll_event`](super::Producer::poll_event).
///
/// Every accepted append is reported exactly once, by an [`Acked`](ProducerEvent::Acked) or a
/// [`Failed`](ProducerEvent::Failed) whose range contains its id; these come in append order
/// (ranges are contiguous and increasing), whatever the order of the server's answers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProducerEvent {
    /// The appends `first..=last` (one batch) are durably in the stream, exactly once.
    Acked {
        /// The first append of the batch.
        first: AppendId,
        /// The last append of the batch (inclusive).
        last: AppendId,
        /// `Stream-Next-Offset` of the answer: the tail after this batch. `None` when the server
        /// did not send one (servers omit it on duplicates) or the batch was known stored
        /// because a later batch of the same epoch was acknowledged.
        next_offset: Option<Offset>,
        /// The server had already stored this batch (a `204` to a retry, PROTOCOL.md 5.2.1):
        /// an earlier attempt whose answer was lost did the work. Not an error.
        duplicate: bool,
    },
    /// The appends `first..=last` (one batch) failed; `items` are their payloads, as given to
    /// [`Producer::append`](super::Producer::append), so nothing is lost.
    Failed {
        /// The first append of the batch.
        first: AppendId,
        /// The last append of the batch (inclusive).
        last: AppendId,
        /// The payloads of `first..=last`, in order.
        items: Vec<Bytes>,
        /// Why, and whether they may be stored anyway.
        reason: FailureReason,
    },
    /// The server fenced the producer's epoch (`403`) and `auto_claim` took `epoch`; sequence
    /// numbers restarted at 0 and the batches that were safe to re-send are being re-sent.
    EpochClaimed {
        /// The new epoch.
        epoch: u64,
    },
    /// [`Producer::append`](super::Producer::append) answered
    /// [`AppendError::Full`] earlier and would now answer differently: there is room for the
    /// smallest refused payload, or appends are refused for good (closed, stopped). Emitted
    /// once per episode of refusals.
    Writable,
    /// The producer's close succeeded (including a retried close the server de-duplicated): the
    /// stream is closed and every append was reported before this event. Nothing is sent after
    /// it.
    Closed {
        /// The stream's final offset, when the server sent it.
        final_offset: Option<Offset>,
    },
    /// The producer's close did not happen as asked (the final batch was refused, the producer
    /// was stopped by an earlier failure, ...). Its appends, if any, were reported by a
    /// [`Failed`](ProducerEvent::Failed) just before.
    CloseFailed {
        /// Why.
        reason: FailureReason,
    },
}

impl ProducerEvent {
    /// Whether the event resolves appends or the close, or changes the epoch (an
    /// acknowledgement, a failure, the close's outcome, an epoch claim): a snapshot persisted
    /// before it no longer describes the producer (see [`SnapshotSchedule`](super::SnapshotSchedule)).
    pub fn changes_snapshot(&self) -> bool {
        matches!(
            self,
            ProducerEvent::Acked { .. }
                | ProducerEvent::Failed { .. }
                | ProducerEvent::Closed { .. }
                | ProducerEvent::CloseFailed { .. }
                | ProducerEvent::EpochClaimed { .. }
        )
    }
}

/// Why [`Producer::append`](super::Producer::append) refused a payload. The producer did not
/// take it: nothing will be reported for it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Backpressure: taking the payload would exceed `max_buffered_bytes`. The payload is
    /// handed back; retry after [`ProducerEvent::Writable`].
    #[error("producer buffer full: {buffered} bytes buffered, limit {limit}, {} more refused", data.len())]
    Full {
        /// The refused payload, handed back.
        data: Bytes,
        /// Bytes buffered now (open batch and sealed batches not yet acknowledged).
        buffered: usize,
        /// `max_buffered_bytes`.
        limit: usize,
    },
    /// Refused for good: invalid payload ([`ErrorKind::InvalidInput`]: empty, invalid JSON,
    /// an empty JSON array, larger than the buffer), the producer is closing or closed
    /// (`InvalidInput`), or an earlier failure stopped it (that failure's error, e.g.
    /// [`ErrorKind::Fenced`]).
    #[error(transparent)]
    Refused(Error),
}

impl AppendError {
    /// The error, for [`AppendError::Refused`].
    pub fn error(&self) -> Option<&Error> {
        match self {
            AppendError::Refused(e) => Some(e),
            AppendError::Full { .. } => None,
        }
    }

    /// Whether this is backpressure ([`AppendError::Full`]).
    pub fn is_full(&self) -> bool {
        matches!(self, AppendError::Full { .. })
    }

    /// Takes the payload back out of a [`AppendError::Full`].
    pub fn into_data(self) -> Option<Bytes> {
        match self {
            AppendError::Full { data, .. } => Some(data),
            AppendError::Refused(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_ids_display_as_append_n() {
        assert_eq!(AppendId(0).to_string(), "append 0");
        assert_eq!(
            format!("{} to {}", AppendId(3), AppendId(41)),
            "append 3 to append 41"
        );
    }
}
