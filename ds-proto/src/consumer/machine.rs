//! The [`Consumer`] state machine (see the [module documentation](super)).

use super::types::{
    ConsumerCommandError, ConsumerError, ConsumerEvent, ConsumerExit, ConsumerOptions, ErrorAction,
};
use crate::io::{Input, RequestId, Transmit};
use crate::machine::Machine;
use crate::offset::Offset;
use crate::reader::{Reader, ReaderConfig, ReaderEvent};
use crate::retry::{Backoff, RetryPolicy, MAX_DURATION};
use crate::rng::Rng;
use std::collections::VecDeque;
use std::time::Instant;

/// Where the consumer is.
#[derive(Debug)]
enum State<E> {
    /// The reader runs; its next data becomes a batch.
    Reading,
    /// A batch is with the application; the reader is paused until its outcome.
    BatchOut {
        /// The batch's `next_offset`: the checkpoint once it is handled.
        next: Offset,
    },
    /// The error hook must answer; there is no reader.
    ErrorPending(ConsumerError<E>),
    /// A reconnect waits for its backoff delay; there is no reader.
    Waiting {
        /// When the new reader starts.
        until: Instant,
    },
    /// Ended: the exit was queued.
    Finished,
}

/// A long-running reader with an at-least-once hand-off to the application (see the
/// [module documentation](super) for its rules and a diagram).
///
/// `E` is what the application's batch handler fails with; the machine only holds such a
/// value until the error hook has answered, and hands it back in
/// [`ConsumerExit::Failed`].
#[derive(Debug)]
pub struct Consumer<E> {
    /// What each reader starts from (its offset is replaced by the checkpoint).
    config: ReaderConfig,
    reader: Option<Reader>,
    /// The ids of the current reader's requests are shifted by this much, so that ids stay
    /// unique for the consumer's whole life (each reader counts from 1).
    base: u64,
    /// The largest id handed out so far.
    issued: u64,
    checkpoint: Offset,
    policy: RetryPolicy,
    backoff: Backoff,
    rng: Rng,
    state: State<E>,
    /// A stop asked for while a batch was out: it takes effect once its outcome is known.
    stop_requested: bool,
    events: VecDeque<ConsumerEvent<E>>,
    cancels: VecDeque<RequestId>,
}

impl<E> Consumer<E> {
    /// A consumer reading with `reader` (its URL, limits and deadlines; the offset, mode and
    /// retry policy come from `options`), starting at `options.offset`. The consumer's PRNG
    /// (reconnect jitter, and the seeds of the readers it starts) is seeded from
    /// `reader.rng_seed`: drivers seed it from OS entropy.
    ///
    /// Never fails: a configuration the reader refuses is reported as a
    /// [`ConsumerError::Read`] through [`ConsumerEvent::Error`], like any reader failure.
    pub fn new(mut reader: ReaderConfig, options: &ConsumerOptions, now: Instant) -> Self {
        reader.mode = options.mode;
        reader.retry = options.reader_retry.clone();
        let policy = options.backoff_policy();
        let mut consumer = Consumer {
            rng: Rng::new(reader.rng_seed),
            config: reader,
            reader: None,
            base: 0,
            issued: 0,
            checkpoint: options.offset.clone(),
            backoff: policy.start(now),
            policy,
            state: State::Reading,
            stop_requested: false,
            events: VecDeque::new(),
            cancels: VecDeque::new(),
        };
        consumer.start_reader(now);
        consumer
    }

    // ----- getters -----

    /// The checkpoint: the offset after the last batch the application handled (or where the
    /// consumer started). A consumer started from it later continues without a gap; the batch
    /// out at the moment, if any, is delivered again.
    pub fn checkpoint(&self) -> &Offset {
        &self.checkpoint
    }

    /// Whether a batch is with the application, waiting for [`Consumer::batch_done`].
    pub fn is_batch_out(&self) -> bool {
        matches!(self.state, State::BatchOut { .. })
    }

    /// The error waiting for the error hook's answer ([`Consumer::resolve_error`]), if any.
    pub fn pending_error(&self) -> Option<&ConsumerError<E>> {
        match &self.state {
            State::ErrorPending(e) => Some(e),
            _ => None,
        }
    }

    /// When the next reader starts, while a reconnect waits for its backoff delay.
    pub fn reconnect_at(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            _ => None,
        }
    }

    /// Reconnects since the last handled batch (or the start): how far the backoff schedule
    /// has grown.
    pub fn reconnects(&self) -> u32 {
        self.backoff.attempts() - 1
    }

    /// The reader in use (none while an error is pending, a reconnect waits, or after the
    /// end): its cursor, mode and [`snapshot`](Reader::snapshot). Its offset may be ahead of
    /// [`Consumer::checkpoint`] while a batch is out.
    pub fn reader(&self) -> Option<&Reader> {
        self.reader.as_ref()
    }

    /// Whether the consumer ended (its [`ConsumerEvent::Exit`] is queued or was handed out).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    // ----- commands -----

    /// The outcome of the batch handed out last. `Ok` moves the checkpoint to its
    /// `next_offset` and starts the backoff schedule over; `Err` drops the reader (its request
    /// is cancelled) and asks the error hook ([`ConsumerEvent::Error`]). After a
    /// [`Consumer::stop`], `Ok` ends the consumer (stopped, past this batch).
    ///
    /// Errors: [`ConsumerCommandError::NoBatchOut`] when no batch waits for its outcome.
    pub fn batch_done(
        &mut self,
        result: Result<(), E>,
        now: Instant,
    ) -> Result<(), ConsumerCommandError> {
        let next = match std::mem::replace(&mut self.state, State::Reading) {
            State::BatchOut { next } => next,
            other => {
                self.state = other;
                return Err(ConsumerCommandError::NoBatchOut);
            }
        };
        match result {
            Ok(()) => {
                self.checkpoint = next;
                self.backoff = self.policy.start(now);
                if self.stop_requested {
                    self.finish_stopped();
                }
            }
            Err(e) => self.fail(ConsumerError::Handler(e)),
        }
        Ok(())
    }

    /// The error hook's answer to [`ConsumerEvent::Error`]. [`ErrorAction::Stop`] ends the
    /// consumer with [`ConsumerExit::Failed`] (holding the error). [`ErrorAction::Reconnect`]
    /// waits the next delay of the backoff schedule ([`Consumer::poll_timeout`]) and then
    /// starts a reader from the checkpoint; after a [`Consumer::stop`] it ends the consumer
    /// (stopped) instead.
    ///
    /// Errors: [`ConsumerCommandError::NoErrorPending`] when no error waits for an answer.
    pub fn resolve_error(
        &mut self,
        action: ErrorAction,
        now: Instant,
    ) -> Result<(), ConsumerCommandError> {
        let error = match std::mem::replace(&mut self.state, State::Reading) {
            State::ErrorPending(error) => error,
            other => {
                self.state = other;
                return Err(ConsumerCommandError::NoErrorPending);
            }
        };
        match action {
            ErrorAction::Stop => {
                let offset = self.checkpoint.clone();
                self.finish(ConsumerExit::Failed { offset, error });
            }
            ErrorAction::Reconnect if self.stop_requested => self.finish_stopped(),
            ErrorAction::Reconnect => {
                let delay = self
                    .backoff
                    .next_delay(now, &mut self.rng, None)
                    .unwrap_or(self.policy.max_delay)
                    .min(MAX_DURATION);
                let until = now.checked_add(delay).unwrap_or(now);
                self.state = State::Waiting { until };
            }
        }
        Ok(())
    }

    /// [`Consumer::resolve_error`] with the answer of `hook`, which is shown the pending
    /// error: how a driver calls the application's error hook.
    ///
    /// Errors: [`ConsumerCommandError::NoErrorPending`] when no error waits for an answer (the
    /// hook is not called).
    pub fn resolve_error_with(
        &mut self,
        hook: impl FnOnce(&ConsumerError<E>) -> ErrorAction,
        now: Instant,
    ) -> Result<(), ConsumerCommandError> {
        let action = hook(
            self.pending_error()
                .ok_or(ConsumerCommandError::NoErrorPending)?,
        );
        self.resolve_error(action, now)
    }

    /// Stops the consumer: it ends with [`ConsumerExit::Stopped`] at the checkpoint, its
    /// reader's request cancelled ([`Consumer::poll_cancel`]). While a batch is out, the end
    /// waits for [`Consumer::batch_done`] (an `Ok` still moves the checkpoint; an `Err` is
    /// still shown to the error hook, and its `Reconnect` then means stop). No batch is handed
    /// out after a stop. Idempotent; no effect after the end.
    pub fn stop(&mut self) {
        match self.state {
            State::Finished => {}
            State::BatchOut { .. } => {
                self.stop_requested = true;
                self.drop_reader();
            }
            _ => self.finish_stopped(),
        }
    }

    // ----- handle_* (the reader's) -----

    /// Feeds what the driver saw of an exchange to the reader; inputs for requests of an
    /// earlier reader, or after the end, are ignored.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        let Some(reader) = &mut self.reader else {
            return;
        };
        let id = input.id().0;
        if id <= self.base {
            return;
        }
        reader.handle_input(with_id(input, RequestId(id - self.base)), now);
    }

    /// Fires the timers due at `now`: the end of a reconnect's backoff (a reader starts from
    /// the checkpoint) and the reader's own. Safe to call at any time, early or repeatedly.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Waiting { until } if now >= until => self.start_reader(now),
            _ => {
                if let Some(r) = &mut self.reader {
                    r.handle_timeout(now);
                }
            }
        }
    }

    // ----- poll_* -----

    /// The next request to send: the reader's (with an id unique for the consumer's life).
    /// A reconnect whose backoff ended at `now` starts its reader here too.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let State::Waiting { until } = self.state {
            if now >= until {
                self.start_reader(now);
            }
        }
        let mut t = self.reader.as_mut()?.poll_transmit(now)?;
        t.id = RequestId(self.base + t.id.0);
        self.issued = self.issued.max(t.id.0);
        Some(t)
    }

    /// The next request the driver must abort: one of a reader the consumer dropped (a
    /// refused batch, a stop) or one its reader abandoned.
    #[must_use]
    pub fn poll_cancel(&mut self) -> Option<RequestId> {
        if let Some(id) = self.cancels.pop_front() {
            return Some(id);
        }
        let id = self.reader.as_mut()?.poll_cancel()?;
        Some(RequestId(self.base + id.0))
    }

    /// When [`Consumer::handle_timeout`] must be called next: the end of a reconnect's backoff,
    /// or the reader's next timer. `None` while the application has to answer, and after the
    /// end.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            State::Reading | State::BatchOut { .. } => self.reader.as_ref()?.poll_timeout(),
            State::ErrorPending(_) | State::Finished => None,
        }
    }

    /// The next event. A batch is handed out only when none is out and no error waits for
    /// the hook; the consumer's last event is [`ConsumerEvent::Exit`].
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ConsumerEvent<E>> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if !matches!(self.state, State::Reading) {
            return None;
        }
        let event = self.reader.as_mut()?.poll_event()?;
        Some(match event {
            ReaderEvent::Data(chunk) => {
                self.state = State::BatchOut {
                    next: chunk.next_offset.clone(),
                };
                ConsumerEvent::Batch(chunk)
            }
            ReaderEvent::UpToDate { offset } => {
                // Everything before the tail was handled (no batch is out): a sentinel start
                // (`-1`, `now`) becomes a real offset here.
                self.checkpoint = offset.clone();
                ConsumerEvent::Read(ReaderEvent::UpToDate { offset })
            }
            // The reader's end is reported as it is, then what the consumer makes of it.
            ReaderEvent::Closed { offset } => {
                self.checkpoint = offset.clone();
                self.finish(ConsumerExit::Eof {
                    offset: offset.clone(),
                });
                ConsumerEvent::Read(ReaderEvent::Closed { offset })
            }
            ReaderEvent::Done => {
                self.finish_stopped();
                ConsumerEvent::Read(ReaderEvent::Done)
            }
            ReaderEvent::Failed(e) => {
                self.fail(ConsumerError::Read(e.clone()));
                ConsumerEvent::Read(ReaderEvent::Failed(e))
            }
            other @ (ReaderEvent::Retrying { .. } | ReaderEvent::FellBackToLongPoll) => {
                ConsumerEvent::Read(other)
            }
        })
    }

    // ----- internals -----

    /// Starts a reader from the checkpoint.
    fn start_reader(&mut self, now: Instant) {
        self.drop_reader();
        let config = ReaderConfig {
            offset: self.checkpoint.clone(),
            rng_seed: self.rng.next_u64(),
            ..self.config.clone()
        };
        self.base = self.issued;
        match Reader::new(config, now) {
            Ok(r) => {
                self.reader = Some(r);
                self.state = State::Reading;
            }
            Err(e) => self.fail(ConsumerError::Read(e)),
        }
    }

    /// Stops and drops the reader, keeping its cancels.
    fn drop_reader(&mut self) {
        if let Some(mut r) = self.reader.take() {
            r.stop();
            while let Some(id) = r.poll_cancel() {
                self.cancels.push_back(RequestId(self.base + id.0));
            }
        }
    }

    /// Drops the reader and asks the error hook.
    fn fail(&mut self, error: ConsumerError<E>) {
        self.drop_reader();
        self.state = State::ErrorPending(error);
        self.events.push_back(ConsumerEvent::Error);
    }

    fn finish_stopped(&mut self) {
        let offset = self.checkpoint.clone();
        self.finish(ConsumerExit::Stopped { offset });
    }

    /// Ends the consumer with `exit` (anything queued before is dropped).
    fn finish(&mut self, exit: ConsumerExit<E>) {
        self.drop_reader();
        self.state = State::Finished;
        self.events.clear();
        self.events.push_back(ConsumerEvent::Exit(exit));
    }
}

/// `input` with another exchange id.
fn with_id(input: Input, id: RequestId) -> Input {
    match input {
        Input::Head { parts, .. } => Input::Head { id, parts },
        Input::Body { chunk, .. } => Input::Body { id, chunk },
        Input::End { .. } => Input::End { id },
        Input::Failed { error, .. } => Input::Failed { id, error },
    }
}

impl<E> Machine for Consumer<E> {
    type Event = ConsumerEvent<E>;
    fn handle_input(&mut self, input: Input, now: Instant) {
        Consumer::handle_input(self, input, now)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Consumer::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        Consumer::poll_transmit(self, now)
    }
    fn poll_cancel(&mut self) -> Option<RequestId> {
        Consumer::poll_cancel(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Consumer::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<ConsumerEvent<E>> {
        Consumer::poll_event(self)
    }
}
