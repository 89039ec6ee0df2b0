//! What a [`Consumer`](super::Consumer) is configured with, reports and ends with; the drivers
//! re-export these types.

use crate::error::Error;
use crate::offset::Offset;
use crate::reader::{Chunk, ReadMode, ReaderEvent};
use crate::retry::RetryPolicy;
use std::fmt;
use std::time::Duration;

/// What the consumer does after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Reconnect from the last handled offset after the backoff delay.
    Reconnect,
    /// Stop the consumer.
    Stop,
}

/// An error the consumer reports to the application's error hook. `E` is what the
/// application's batch handler fails with.
#[derive(Debug)]
pub enum ConsumerError<E> {
    /// The reader failed (after its own retries): a typed protocol or transport error.
    Read(Error),
    /// The handler refused a batch.
    Handler(E),
}

impl<E: fmt::Display> fmt::Display for ConsumerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsumerError::Read(e) => write!(f, "read failed: {e}"),
            ConsumerError::Handler(e) => write!(f, "handler failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ConsumerError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConsumerError::Read(e) => Some(e),
            ConsumerError::Handler(e) => Some(e),
        }
    }
}

/// How a consumer reads and reconnects.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerOptions {
    /// Where to start (a checkpoint, `-1` or `now`).
    pub offset: Offset,
    /// How to read (auto by default: catch up, then long-poll).
    pub mode: ReadMode,
    /// The first reconnect delay's upper bound (1 s by default; the delay is jittered).
    pub backoff_base: Duration,
    /// The largest reconnect delay's upper bound (30 s by default; never below
    /// `backoff_base`).
    pub backoff_max: Duration,
    /// The reader's own retry policy for transient failures before the consumer reconnects.
    pub reader_retry: RetryPolicy,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            offset: Offset::beginning(),
            mode: ReadMode::Auto,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            reader_retry: RetryPolicy::default(),
        }
    }
}

impl ConsumerOptions {
    /// The reconnect schedule these options ask for: capped exponential backoff with full
    /// jitter from [`backoff_base`](ConsumerOptions::backoff_base) to
    /// [`backoff_max`](ConsumerOptions::backoff_max), without an attempt or time limit (a
    /// consumer reconnects for as long as the application's error hook says so).
    pub fn backoff_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial_delay: self.backoff_base,
            max_delay: self.backoff_max.max(self.backoff_base),
            ..RetryPolicy::unlimited()
        }
    }
}

/// How a consumer ended.
#[derive(Debug)]
pub enum ConsumerExit<E> {
    /// The stream is closed and every batch was handled.
    Eof {
        /// The final offset.
        offset: Offset,
    },
    /// Stopped on request (the drivers' `ConsumerHandle::stop`, the machine's
    /// [`Consumer::stop`](super::Consumer::stop)), or a catch-up consumer
    /// ([`ReadMode::CatchUp`]) reached the tail.
    Stopped {
        /// The offset after the last handled batch.
        offset: Offset,
    },
    /// The application chose [`ErrorAction::Stop`] after this error.
    Failed {
        /// The offset after the last handled batch.
        offset: Offset,
        /// The error.
        error: ConsumerError<E>,
    },
}

impl<E> ConsumerExit<E> {
    /// The checkpoint the consumer ended at: resume from it.
    pub fn offset(&self) -> &Offset {
        match self {
            ConsumerExit::Eof { offset }
            | ConsumerExit::Stopped { offset }
            | ConsumerExit::Failed { offset, .. } => offset,
        }
    }
}

/// What a [`Consumer`](super::Consumer) reports, drained with
/// [`Consumer::poll_event`](super::Consumer::poll_event).
#[derive(Debug)]
pub enum ConsumerEvent<E> {
    /// A batch for the application's handler. No other batch comes until its outcome is
    /// reported with [`Consumer::batch_done`](super::Consumer::batch_done).
    Batch(Chunk),
    /// The error hook must decide: read the error with
    /// [`Consumer::pending_error`](super::Consumer::pending_error), answer with
    /// [`Consumer::resolve_error`](super::Consumer::resolve_error). Nothing happens until then.
    Error,
    /// What the reader reported, for logging: every [`ReaderEvent`] but data (which becomes
    /// a [`Batch`](ConsumerEvent::Batch)). Needs no answer. When it is the reader's end
    /// ([`Failed`](ReaderEvent::Failed), [`Closed`](ReaderEvent::Closed),
    /// [`Done`](ReaderEvent::Done)), what the consumer makes of it follows:
    /// [`Error`](ConsumerEvent::Error) or [`Exit`](ConsumerEvent::Exit).
    Read(ReaderEvent),
    /// The consumer ended. Terminal: nothing follows, no request, no timer.
    Exit(ConsumerExit<E>),
}

/// A [`Consumer`](super::Consumer) command given at the wrong time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerCommandError {
    /// `batch_done` without a batch handed out and not yet answered.
    #[error("no batch is waiting for its outcome")]
    NoBatchOut,
    /// `resolve_error` without an error waiting for the hook's answer.
    #[error("no error is waiting for the error hook")]
    NoErrorPending,
}

/// A [`Consumer`](super::Consumer) is a party of a simulated
/// [`World`](crate::sim::world::World): its events arrive as
/// [`PartyEvent::Other`](crate::sim::world::PartyEvent::Other) (downcast with
/// `downcast_ref::<ConsumerEvent<E>>()`), and the application answers through
/// `World::machine_mut::<Consumer<E>>`.
#[cfg(feature = "sim")]
impl<E: fmt::Debug + 'static> From<ConsumerEvent<E>> for crate::sim::world::PartyEvent {
    fn from(e: ConsumerEvent<E>) -> Self {
        crate::sim::world::PartyEvent::Other(Box::new(e))
    }
}
