//! The [`Producer`] state machine.

use super::batch::{Batch, BatchState, OpenBatch};
use super::config::ProducerConfig;
use super::events::{AppendError, AppendId, FailureReason, ProducerEvent};
use crate::error::InputReason;
use crate::error::{ConflictKind, Error, ErrorKind, Operation};
use crate::headers::MAX_SAFE_INTEGER;
use crate::io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
use crate::offset::Offset;
use crate::ops::{self, AppendOptions, AppendOutcome, ProducerHeaders, RequestExtras};
use crate::rng::Rng;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// One outstanding HTTP exchange.
#[derive(Debug)]
struct Exchange {
    /// The batch it carries.
    bid: u64,
    /// The response head, once it arrived.
    head: Option<http::response::Parts>,
    /// The start of an error response's body.
    body: Vec<u8>,
    /// Every earlier batch had an outcome when this attempt was sent: a sequence gap answer
    /// cannot be blamed on reordering.
    preds_resolved: bool,
    /// No batch of the epoch was acknowledged when this attempt was sent: the server may not
    /// have known the epoch when it answered (see [`Producer::set_ordered`]).
    epoch_unknown: bool,
}

/// What one finished exchange means for its batch.
#[derive(Debug)]
enum Outcome {
    /// 200 (stored) or 204 (duplicate).
    Ack {
        next_offset: Option<Offset>,
        duplicate: bool,
    },
    /// 409 with `Producer-Expected-Seq`/`Producer-Received-Seq`.
    Gap(Error),
    /// 403 with `Producer-Epoch`.
    Fenced { server_epoch: u64, error: Error },
    /// 429, 5xx, transport failure. `uncertain`: the append may have been applied.
    Retry {
        error: Error,
        retry_after: Option<Duration>,
        uncertain: bool,
    },
    /// Anything else. `global`: the failure concerns every batch (closed, not found, gone).
    Fatal { error: Error, global: bool },
}

/// The idempotent producer (PROTOCOL.md 5.2.1): batches appends, numbers batches, pipelines,
/// retries, handles fencing and closing. See the [module docs](super) for the life of a batch.
///
/// The methods follow quinn-proto's vocabulary (DESIGN.md section 2):
///
/// - getters (`&self`): [`epoch`](Producer::epoch), [`next_seq`](Producer::next_seq),
///   [`buffered_bytes`](Producer::buffered_bytes), [`in_flight`](Producer::in_flight),
///   [`is_idle`](Producer::is_idle), [`is_closed`](Producer::is_closed), ...;
/// - commands: [`append`](Producer::append), [`flush`](Producer::flush),
///   [`close`](Producer::close) (misuse is an `Err`; protocol outcomes are events);
/// - [`handle_input`](Producer::handle_input) and [`handle_timeout`](Producer::handle_timeout),
///   which never fail and are safe to call spuriously;
/// - outputs, drained after every call above: [`poll_transmit`](Producer::poll_transmit),
///   [`poll_cancel`](Producer::poll_cancel), [`poll_timeout`](Producer::poll_timeout),
///   [`poll_event`](Producer::poll_event).
#[derive(Debug)]
pub struct Producer {
    pub(super) config: ProducerConfig,
    /// The stream URL without query, for errors.
    pub(super) url: String,
    pub(super) json: bool,
    rng: Rng,
    pub(super) epoch: u64,
    pub(super) next_seq: u64,
    /// A batch of the current epoch was acknowledged: the server knows the epoch, so more than
    /// one batch may be outstanding.
    epoch_established: bool,
    pub(super) next_append: u64,
    pub(super) next_bid: u64,
    next_request: u64,
    pub(super) open: OpenBatch,
    /// Sealed batches not yet reported, in seq order.
    pub(super) queue: VecDeque<Batch>,
    exchanges: BTreeMap<RequestId, Exchange>,
    pub(super) buffered: usize,
    pub(super) events: VecDeque<ProducerEvent>,
    /// An auto-claim in progress: the epoch to take and the fence that asked for it.
    pub(super) claim: Option<(u64, Error)>,
    /// The failure that stopped the producer.
    pub(super) terminal: Option<Error>,
    /// `close` was called.
    pub(super) closing: bool,
    /// The producer's close succeeded.
    pub(super) closed: bool,
    /// A 409 with `Stream-Closed` was seen.
    pub(super) stream_closed: bool,
    /// Smallest payload refused with `Full` since the last `Writable`.
    writable_wanted: Option<usize>,
    /// Restored from a snapshot: its epoch, and the lowest seq of that epoch this producer has
    /// not sent since (the snapshot's `next_seq` at first; it grows as batches sealed after the
    /// restore are sent). A server seq at or past it was written by someone else (see
    /// `snapshot.rs`, `foreign_seq`).
    pub(super) restored_at: Option<(u64, u64)>,
    /// An append since the last [`Producer::take_append_wake`] changed what the driver's
    /// loop must look at (see there).
    append_wake: bool,
    /// The body buffer of an acknowledged batch, kept to build the next one in (no fresh
    /// allocation, no page faults, batch after batch).
    spare: Option<BytesMut>,
    /// The size at which the open batch is cut, set by the driver's pipe plan
    /// ([`Producer::set_batch_target`]); `None`: `max_batch_bytes`.
    batch_target: Option<usize>,
    /// How large the open batch may grow while it must wait for room
    /// ([`Producer::set_wait_ceiling`]); `None`: `max_batch_bytes`.
    wait_ceiling: Option<usize>,
    /// How far batches sealed one after another while waiting may double the wait ceiling
    /// ([`Producer::set_wait_ramp`]); `None`: no doubling.
    wait_ramp: Option<usize>,
    /// Batches sealed at the wait ceiling while waiting since the ramp was set: the next one
    /// may be `2^ramp_steps` ceilings.
    ramp_steps: u32,
    /// The most a batch may carry as it leaves ([`Producer::set_leave_ceiling`]); `None`: no
    /// cut.
    leave_ceiling: Option<usize>,
    /// The carrier delivers requests in the order they are handed out
    /// ([`Producer::set_ordered`]): an epoch's first batch need not go alone.
    ordered: bool,
}

/// The most a new batch body buffer reserves up front (it grows past it as needed).
const BODY_RESERVE_CAP: usize = 8 << 20;
/// Bodies smaller than this are not kept for reuse (not worth holding on to).
const SPARE_MIN: usize = 4096;

impl Producer {
    /// A producer for `config` (checked with [`ProducerConfig::validate`]: errors are
    /// [`ErrorKind::InvalidInput`]). Nothing is sent until the first append.
    pub fn new(config: ProducerConfig, now: Instant) -> Result<Producer, Error> {
        let _ = now;
        config.validate()?;
        Ok(Producer {
            url: crate::url::strip_query(&config.url).to_owned(),
            json: config.is_json(),
            rng: Rng::new(config.rng_seed),
            epoch: config.epoch,
            next_seq: 0,
            epoch_established: false,
            ordered: false,
            next_append: 0,
            next_bid: 0,
            next_request: 0,
            open: OpenBatch::default(),
            queue: VecDeque::new(),
            exchanges: BTreeMap::new(),
            buffered: 0,
            events: VecDeque::new(),
            claim: None,
            terminal: None,
            closing: false,
            closed: false,
            stream_closed: false,
            writable_wanted: None,
            restored_at: None,
            append_wake: false,
            spare: None,
            batch_target: None,
            wait_ceiling: None,
            wait_ramp: None,
            ramp_steps: 0,
            leave_ceiling: None,
            config,
        })
    }

    // ----- getters -----

    /// The size at which the open batch is cut (body bytes): the target set with
    /// [`Producer::set_batch_target`], else [`ProducerConfig::max_batch_bytes`].
    pub fn batch_target_bytes(&self) -> usize {
        self.batch_target.map_or(self.config.max_batch_bytes, |t| {
            t.min(self.config.max_batch_bytes)
        })
    }

    /// Sets the size at which the open batch is cut from now on (a writer's pipe plan,
    /// [`crate::pipe::WritePipe::batch_target_bytes`], grows it while batches are in flight):
    /// clamped to `1 ..= max_batch_bytes`, the user's ceiling. `None` goes back to
    /// `max_batch_bytes`. A batch already sealed keeps its size; the open batch is cut at the
    /// next append that reaches the new target when it can be sent at once (small appends still
    /// leave after `linger`); while it must wait for room it keeps growing up to
    /// [`wait_ceiling_bytes`](Producer::wait_ceiling_bytes), and leaves as soon as there is room.
    pub fn set_batch_target(&mut self, bytes: Option<usize>) {
        self.batch_target = bytes.map(|b| b.max(1));
    }

    /// How large the open batch may grow while it must wait for room (`max_in_flight` batches
    /// outstanding, or one ahead of it waiting): the ceiling set with
    /// [`Producer::set_wait_ceiling`], within `batch_target_bytes ..= max_batch_bytes` (without
    /// the upper bound under a leave ceiling, [`Producer::set_leave_ceiling`]).
    /// While a ramp is set ([`Producer::set_wait_ramp`]), each batch sealed at the ceiling while
    /// waiting doubles it for the next, up to the ramp's top.
    pub fn wait_ceiling_bytes(&self) -> usize {
        // Under a leave ceiling the open batch may hold more than a batch may carry: it
        // leaves in pieces (see `seal_open`).
        let max = if self.leave_ceiling.is_some() {
            usize::MAX
        } else {
            self.config.max_batch_bytes
        };
        let base = self
            .wait_ceiling
            .map_or(max, |c| c.min(max))
            .max(self.batch_target_bytes());
        match self.wait_ramp {
            Some(top) => base
                .saturating_mul(1 << self.ramp_steps.min(20))
                .min(top.min(max))
                .max(base),
            None => base,
        }
    }

    /// Lets batches that wait grow one after another (a writer's pipe plan before it has
    /// measured the link, [`crate::pipe::WritePipe::wait_ramp_bytes`]): each batch sealed at
    /// the wait ceiling while it waits for room doubles the ceiling for the next, up to `top`
    /// (at most `max_batch_bytes`), as TCP's slow start grows its window. What a burst appends
    /// before the first answer then leaves in a few requests of growing size instead of many
    /// at the ceiling, without the risk of one large body on a link whose speed is unknown.
    /// `None` ends the ramp (and forgets its steps); setting it again keeps them.
    pub fn set_wait_ramp(&mut self, top: Option<usize>) {
        if top.is_none() {
            self.ramp_steps = 0;
        }
        self.wait_ramp = top;
    }

    /// The open batch is being sealed at the wait ceiling: one more step of the ramp when it
    /// was sealed while waiting for room.
    fn ramp_on_waiting_seal(&mut self) {
        if self.wait_ramp.is_some() && !self.can_send_open() {
            self.ramp_steps = self.ramp_steps.saturating_add(1);
        }
    }

    /// Sets how large the open batch may grow while it must wait for room (a writer's pipe
    /// plan, [`crate::pipe::WritePipe::wait_ceiling_bytes`]: about a second of the measured
    /// rate). `None`: `max_batch_bytes`. How much a waiting batch may carry when it leaves
    /// is [`Producer::set_leave_ceiling`]'s.
    pub fn set_wait_ceiling(&mut self, bytes: Option<usize>) {
        self.wait_ceiling = bytes;
    }

    /// The most a batch may carry as it leaves (at most `max_batch_bytes`): an open batch that
    /// grew past it while it waited is cut at it (at least one append; the appends past it
    /// stay open, due, and leave next, in order, under the same rule). `None` (the default):
    /// no cut, and the open batch never grows past `max_batch_bytes`. Under a leave ceiling the
    /// open batch that waits may grow past `max_batch_bytes` (up to the wait ceiling, within
    /// `max_buffered_bytes`) and is cut as it leaves. A writer's plan sets it one at a time
    /// ([`crate::pipe::WritePipe::leave_ceiling_bytes`]): before the first answer nothing is
    /// known, so what a burst appends waits unsealed, and leaves in large batches on a long
    /// link and in the budget's batches on a short one.
    pub fn set_leave_ceiling(&mut self, bytes: Option<usize>) {
        self.leave_ceiling = bytes.map(|b| b.max(1));
    }

    /// Tells the producer whether its requests reach the server in the order
    /// [`poll_transmit`](Producer::poll_transmit) hands them out (one HTTP/1.1 connection
    /// carrying them pipelined, as the drivers' writers do; `false` by default, for carriers
    /// such as several pooled connections that may reorder them).
    ///
    /// A new epoch must start at `seq = 0` (PROTOCOL.md 5.2.1: a server that sees a later seq
    /// of an epoch it does not know answers `400`, or `409` before any epoch). Unordered, an
    /// epoch's first batch therefore goes alone, and the rest follow its acknowledgement: one
    /// round trip per epoch. Ordered, the first batches of an epoch leave together, up to
    /// `max_in_flight`; should the first fail on the way (a `503`, a dropped connection) and a
    /// later one reach the server first, the later one's `400` is taken as the sequence gap it
    /// is: it is sent again once every batch before it has an outcome, byte-identical with the
    /// same seq. A `400` once the epoch is acknowledged fails the batch, as always.
    pub fn set_ordered(&mut self, ordered: bool) {
        self.ordered = ordered;
    }

    /// Whether the carrier keeps order ([`Producer::set_ordered`]).
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// The current `Producer-Epoch` (changes on auto-claim).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The `Producer-Seq` the next sealed batch gets (restarts at 0 on auto-claim).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The id the next accepted append gets.
    pub fn next_append_id(&self) -> AppendId {
        AppendId(self.next_append)
    }

    /// Payload bytes held: the open batch plus sealed batches without an outcome. Compared with
    /// `max_buffered_bytes` by [`append`](Producer::append).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Requests outstanding (sent by [`poll_transmit`](Producer::poll_transmit), not yet ended
    /// by [`Input::End`] or [`Input::Failed`]).
    pub fn in_flight(&self) -> usize {
        self.exchanges.len()
    }

    /// Whether nothing is open, sealed or in flight: every accepted append (and the close, if
    /// any) has its event queued. Events may still wait in [`poll_event`](Producer::poll_event).
    pub fn is_idle(&self) -> bool {
        self.open.is_empty() && self.queue.is_empty() && self.exchanges.is_empty()
    }

    /// Whether the stream is known to be closed: the producer's close succeeded, or the server
    /// answered `409` with `Stream-Closed`.
    pub fn is_closed(&self) -> bool {
        self.closed || self.stream_closed
    }

    /// Whether [`close`](Producer::close) was called (appends are refused from then on).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The failure that stopped the producer, if one did: appends and close are refused with it.
    /// Batches sealed before the failing one still go on to their outcome.
    pub fn error(&self) -> Option<&Error> {
        self.terminal.as_ref()
    }

    // ----- commands -----

    /// Takes one append: for JSON streams one JSON value (not an empty array), otherwise any
    /// non-empty bytes. Returns its id; its outcome comes later as an
    /// [`Acked`](ProducerEvent::Acked) or [`Failed`](ProducerEvent::Failed) event.
    ///
    /// Refused (and not taken) when buffering it would exceed `max_buffered_bytes`
    /// ([`AppendError::Full`], handing the payload back; [`ProducerEvent::Writable`] follows once
    /// it fits), and for good ([`AppendError::Refused`]) when invalid, after
    /// [`close`](Producer::close), or after a failure stopped the producer.
    pub fn append(&mut self, data: Bytes, now: Instant) -> Result<AppendId, AppendError> {
        self.append_checked(data, now, true)
    }

    /// [`append`](Producer::append) for a JSON stream, of bytes a JSON serializer just wrote
    /// (one JSON value, as `serde_json::to_vec` produces): they are not validated again.
    /// Everything else is checked as by `append` (an empty array is still refused). Bytes that
    /// are not valid JSON make the server refuse their whole batch (`400`), which fails it.
    pub fn append_serialized_json(
        &mut self,
        data: Bytes,
        now: Instant,
    ) -> Result<AppendId, AppendError> {
        self.append_checked(data, now, false)
    }

    fn append_checked(
        &mut self,
        data: Bytes,
        now: Instant,
        validate: bool,
    ) -> Result<AppendId, AppendError> {
        let events = self.events.len();
        self.tick(now);
        if self.events.len() != events {
            self.append_wake = true;
        }
        if let Some(e) = &self.terminal {
            return Err(AppendError::Refused(e.clone()));
        }
        if self.closing {
            return Err(self.refuse(InputReason::State, "the producer is closed: append refused"));
        }
        if data.is_empty() {
            return Err(self.refuse(InputReason::Body, "an append needs at least one byte"));
        }
        if self.json {
            if validate {
                if let Err(m) = crate::json::validate(&data) {
                    return Err(self.refuse(InputReason::Body, m));
                }
            }
            if crate::json::is_empty_array(&data) {
                return Err(self.refuse(
                    InputReason::Body,
                    "an empty JSON array appends nothing (PROTOCOL.md 9.1.3)",
                ));
            }
        }
        let limit = self.config.max_buffered_bytes;
        if data.len() > limit {
            return Err(self.refuse(
                InputReason::Config,
                format!(
                    "append of {} bytes exceeds max_buffered_bytes ({limit})",
                    data.len()
                ),
            ));
        }
        if self.buffered + data.len() > limit {
            let len = data.len();
            self.writable_wanted = Some(self.writable_wanted.map_or(len, |w| w.min(len)));
            return Err(AppendError::Full {
                data,
                buffered: self.buffered,
                limit,
            });
        }
        // The open batch is cut at the target when it can leave at once; while it cannot
        // (`max_in_flight` batches outstanding, or one ahead of it waiting) it keeps growing up
        // to the wait ceiling and leaves as soon as there is room (issue 16: a batch that waits
        // for a round trip carries what arrived meanwhile).
        // A cut at the ceiling leaves the appends past it open: they are checked again with
        // this append, until it fits or nothing is open.
        let max_bytes = self.batch_target_bytes();
        while !self.open.is_empty() {
            let with = self.open.body_len_with(self.json, data.len());
            if with <= max_bytes || (with <= self.wait_ceiling_bytes() && !self.can_send_open()) {
                break;
            }
            self.ramp_on_waiting_seal();
            self.seal_open_within_ceiling();
        }
        let id = self.next_append;
        self.next_append += 1;
        if self.open.is_empty() {
            self.open.first = id;
            self.open.deadline = Some(now + self.config.linger);
            self.open.due = false;
            // A new linger timer.
            self.append_wake = true;
        }
        self.buffered += data.len();
        // A body buffer, when this append starts one, has room for a whole batch (capped, so
        // that a huge `max_batch_bytes` does not reserve it all up front).
        let reserve = max_bytes.saturating_add(2).min(BODY_RESERVE_CAP);
        self.open.push(data, self.json, &mut self.spare, reserve);
        let body = self.open.body_len_with(self.json, 0);
        if self.open.len() >= self.config.max_batch_items || body >= self.wait_ceiling_bytes() {
            self.ramp_on_waiting_seal();
            self.seal_open(false);
        } else if body >= max_bytes {
            if self.can_send_open() {
                self.seal_open(false);
            } else {
                // Full at the target: sealed as soon as it can be sent.
                self.open.due = true;
            }
        }
        // The tick on entry ran every timer due at `now`; appending resolves nothing, so only
        // a linger that is already due (linger zero) needs another one.
        if self.open.deadline.is_some_and(|d| d <= now) {
            self.tick(now);
        }
        Ok(AppendId(id))
    }

    /// Seals the open batch now (if it has appends), without waiting for linger. To wait for
    /// every outcome, drive the machine until [`is_idle`](Producer::is_idle).
    ///
    /// Under a leave ceiling ([`Producer::set_leave_ceiling`]) the open batch is not sealed at
    /// once but made due: it leaves as soon as there is room, cut at the leave ceiling of that
    /// moment (which the first answer may still change).
    pub fn flush(&mut self, now: Instant) {
        self.tick(now);
        if self.terminal.is_none() {
            if self.leave_ceiling.is_some() && !self.open.is_empty() {
                self.open.due = true;
            } else {
                self.seal_open(false);
            }
        }
        self.tick(now);
    }

    /// Closes the stream after every pending append: seals the open batch as the final batch,
    /// sent with `Stream-Closed: true` (or, with nothing open, an empty close-only request with
    /// the next `Producer-Seq`). The final batch is sent once every earlier batch has an outcome.
    /// Outcome: [`ProducerEvent::Closed`] or [`ProducerEvent::CloseFailed`], after every append's
    /// event. Appends are refused from now on.
    ///
    /// Refused when already called ([`ErrorKind::InvalidInput`]) or after a failure stopped the
    /// producer (that failure).
    pub fn close(&mut self, now: Instant) -> Result<(), Error> {
        self.tick(now);
        if let Some(e) = &self.terminal {
            return Err(e.clone());
        }
        if self.closing {
            return Err(Error::invalid_input(
                Operation::Close,
                &self.url,
                InputReason::State,
                "close was already called",
            ));
        }
        self.closing = true;
        self.seal_open(true);
        self.tick(now);
        Ok(())
    }

    // ----- inputs -----

    /// Feeds what the driver saw of an exchange. An exchange is over at [`Input::End`] or
    /// [`Input::Failed`] (after a head, `Failed` is judged by the head's status: the server's
    /// answer is known). Inputs for unknown or finished ids are ignored. Never fails.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        match input {
            Input::Head { id, parts } => {
                if let Some(ex) = self.exchanges.get_mut(&id) {
                    if ex.head.is_none() {
                        ex.head = Some(parts);
                    }
                }
            }
            Input::Body { id, chunk } => {
                if let Some(ex) = self.exchanges.get_mut(&id) {
                    let keep = ex.head.as_ref().is_some_and(|h| !h.status.is_success());
                    if keep {
                        let room = ops::ERROR_BODY_PREFIX.saturating_sub(ex.body.len());
                        ex.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
            }
            Input::End { id } => self.complete(id, None, now),
            Input::Failed { id, error } => self.complete(id, Some(error), now),
        }
        self.tick(now);
    }

    /// Runs the timers due at `now`: linger expiry (seals the open batch) and retry backoffs.
    /// Safe to call at any time, early or late.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
    }

    // ----- outputs -----

    /// The next request to send, if any: a sealed batch whose turn it is, while fewer than
    /// `max_in_flight` are outstanding (1 until the current epoch's first batch is
    /// acknowledged), no auto-claim is waiting for outstanding answers, and no earlier batch is
    /// waiting to be retried. Also runs the timers due at `now`. Changes after
    /// [`append`](Producer::append), [`flush`](Producer::flush), [`close`](Producer::close),
    /// [`handle_input`](Producer::handle_input) and [`handle_timeout`](Producer::handle_timeout).
    /// Call it until it returns `None`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.tick(now);
        loop {
            let i = self.next_to_send(now)?;
            let preds_resolved = self.queue.range(..i).all(Batch::is_resolved);
            let request = match self.build_request(&self.queue[i]) {
                Ok(r) => r,
                Err(e) => {
                    self.fatal(i, e, false);
                    self.tick(now);
                    continue;
                }
            };
            let id = RequestId(self.next_request);
            self.next_request += 1;
            let b = &mut self.queue[i];
            b.state = BatchState::InFlight(id);
            if let Some((epoch, unsent)) = &mut self.restored_at {
                if b.epoch == *epoch && b.seq >= *unsent {
                    *unsent = b.seq + 1;
                }
            }
            if b.backoff.is_none() {
                b.backoff = Some(self.config.retry.start(now));
            }
            self.exchanges.insert(
                id,
                Exchange {
                    bid: b.bid,
                    head: None,
                    body: Vec::new(),
                    preds_resolved,
                    epoch_unknown: !self.epoch_established,
                },
            );
            return Some(Transmit {
                id,
                request,
                deadline: self.config.request_deadline.map(|d| now + d),
            });
        }
    }

    /// A request the driver should abandon. The producer never abandons a request it sent
    /// (its answer decides exactly-once), so this is always `None` today; drivers drain it
    /// anyway so that a later version may use it.
    #[must_use]
    pub fn poll_cancel(&mut self) -> Option<RequestId> {
        None
    }

    /// When [`handle_timeout`](Producer::handle_timeout) should be called next: the open
    /// batch's linger expiry or the earliest retry backoff; `None` when no timer runs. Changes
    /// after every command, input and timeout.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.open.deadline;
        for b in self.active() {
            if let BatchState::Backoff(until) = b.state {
                t = Some(t.map_or(until, |t| t.min(until)));
            }
        }
        t
    }

    /// The next event for the application. Changes after every command, input and timeout.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ProducerEvent> {
        self.events.pop_front()
    }

    /// Whether the appends since the last call changed what a driver's loop must look at: a
    /// batch was sealed (there may be a request to send), the open batch's linger timer
    /// started ([`poll_timeout`](Producer::poll_timeout) changed), or an event is waiting.
    /// Reading it clears it.
    ///
    /// A driver that takes appends on one task and runs the machine's loop on another wakes
    /// the loop only when this says so: most appends just join the open batch, and waking the
    /// loop for each would make the two contend append by append. Inputs, timeouts and other
    /// commands still call for the usual `poll_*` round.
    pub fn take_append_wake(&mut self) -> bool {
        std::mem::take(&mut self.append_wake)
    }

    // ----- internals -----

    fn refuse(&self, reason: InputReason, message: impl Into<String>) -> AppendError {
        AppendError::Refused(Error::invalid_input(
            Operation::Append,
            &self.url,
            reason,
            message,
        ))
    }

    /// Batches that may be sent or waiting: the queue up to the first batch never sent in its
    /// epoch (later ones are unsent too, or resolved).
    fn active(&self) -> impl Iterator<Item = &Batch> {
        self.queue.iter().take_while(|b| !b.is_unsent())
    }

    fn find(&self, bid: u64) -> Option<usize> {
        self.queue.binary_search_by_key(&bid, |b| b.bid).ok()
    }

    fn effective_max_in_flight(&self) -> usize {
        if self.epoch_established || self.ordered {
            self.config.max_in_flight
        } else {
            1
        }
    }

    /// Housekeeping after every mutation.
    #[inline]
    pub(super) fn tick(&mut self, now: Instant) {
        // Mostly there is nothing to do: no sealed batch, no timer due, no claim, no waiter.
        if self.queue.is_empty()
            && self.claim.is_none()
            && self.writable_wanted.is_none()
            && !self.open.due
            && self.open.deadline.is_none_or(|d| d > now)
        {
            return;
        }
        self.tick_slow(now);
    }

    #[inline(never)]
    fn tick_slow(&mut self, now: Instant) {
        for b in self.queue.iter_mut() {
            if b.is_unsent() {
                break;
            }
            if matches!(b.state, BatchState::Backoff(until) if until <= now) {
                b.state = BatchState::Ready;
            }
        }
        if self.open.deadline.is_some_and(|d| d <= now) {
            self.open.deadline = None;
            self.open.due = true;
        }
        if self.claim.is_some() && self.exchanges.is_empty() {
            self.switch_epoch();
        }
        if self.open.due && self.can_send_open() {
            self.seal_open_within_ceiling();
        }
        if self.queue.front().is_some_and(Batch::is_resolved) {
            self.emit_resolved();
        }
        if let Some(want) = self.writable_wanted {
            if self.terminal.is_some()
                || self.closing
                || self.buffered + want <= self.config.max_buffered_bytes
            {
                self.writable_wanted = None;
                self.events.push_back(ProducerEvent::Writable);
            }
        }
    }

    /// Whether the open batch, sealed now, would be sent at once.
    fn can_send_open(&self) -> bool {
        self.claim.is_none()
            && self.terminal.is_none()
            && self.exchanges.len() < self.effective_max_in_flight()
            && self
                .queue
                .iter()
                .all(|b| b.is_resolved() || matches!(b.state, BatchState::InFlight(_)))
    }

    /// Seals the open batch as it leaves, cut at the leave ceiling when it grew past it
    /// ([`Producer::set_leave_ceiling`]). The appends past the ceiling stay open, due, and
    /// leave next, in order.
    fn seal_open_within_ceiling(&mut self) {
        let rest = self.open.split_off_past(self.json, self.leave_limit());
        self.seal_piece(false);
        if let Some(rest) = rest {
            self.open = rest;
        }
    }

    /// The most a batch may carry as it is sealed: the leave ceiling
    /// ([`Producer::set_leave_ceiling`]), never more than `max_batch_bytes`.
    fn leave_limit(&self) -> usize {
        let max = self.config.max_batch_bytes;
        self.leave_ceiling.map_or(max, |c| c.min(max))
    }

    /// Seals the open batch now, in pieces of at most `max_batch_bytes` when it grew past it
    /// while it waited (only under a leave ceiling can it); `close` marks the last piece. (The
    /// leave ceiling cuts only the batch that leaves: [`Producer::seal_open_within_ceiling`];
    /// a batch sealed at `max_batch_items` while it waits is not cut into target-sized pieces.)
    pub(super) fn seal_open(&mut self, close: bool) {
        let limit = self.config.max_batch_bytes;
        while let Some(rest) = self.open.split_off_past(self.json, limit) {
            self.seal_piece(false);
            self.open = rest;
        }
        self.seal_piece(close);
    }

    // Out of line, as are `switch_epoch` and `emit_resolved`: `tick` runs on every append and
    // poll, and mostly has nothing to do.
    #[inline(never)]
    fn seal_piece(&mut self, close: bool) {
        if self.open.is_empty() && !close {
            return;
        }
        self.append_wake = true;
        let count = self.open.len() as u64;
        let first = if count == 0 {
            self.next_append
        } else {
            self.open.first
        };
        let payload = self.open.payload;
        let (body, lens) = self.open.seal(self.json);
        let bid = self.next_bid;
        self.next_bid += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Batch {
            bid,
            first,
            count,
            lens,
            failed_items: Vec::new(),
            body,
            payload,
            close,
            epoch: self.epoch,
            seq,
            state: BatchState::Ready,
            uncertain: false,
            backoff: None,
            doomed: None,
        });
    }

    /// The index of the batch to send next, if one may be sent now.
    fn next_to_send(&self, now: Instant) -> Option<usize> {
        if self.claim.is_some() || self.exchanges.len() >= self.effective_max_in_flight() {
            return None;
        }
        let mut all_before_resolved = true;
        for (i, b) in self.queue.iter().enumerate() {
            let sendable = match b.state {
                BatchState::Acked { .. } | BatchState::Failed(_) => continue,
                BatchState::InFlight(_) => {
                    all_before_resolved = false;
                    continue;
                }
                BatchState::Ready => true,
                BatchState::Backoff(until) => until <= now,
                // Re-sent only after every earlier batch has an outcome: no gap storm.
                BatchState::GapWait => all_before_resolved,
            };
            // The final batch goes alone, after everything else: a `409 Stream-Closed` on any
            // other batch then always means someone else closed the stream.
            if !sendable || (b.close && !all_before_resolved) {
                return None;
            }
            return Some(i);
        }
        None
    }

    fn build_request(&self, b: &Batch) -> Result<http::Request<Bytes>, Error> {
        let producer = ProducerHeaders {
            id: self.config.producer_id.clone(),
            epoch: b.epoch,
            seq: b.seq,
        };
        let extras = RequestExtras::default();
        if b.is_close_only() {
            ops::close_request(&self.config.url, Some(&producer), &extras)
        } else {
            let opts = AppendOptions {
                content_type: Some(self.config.content_type.clone()),
                seq: None,
                close: b.close,
                producer: Some(producer),
                json_batch: self.json,
            };
            // The body is correct by construction (JSON items were validated when appended):
            // no need to parse a whole batch again on every attempt.
            ops::build_append(&self.config.url, b.body.clone(), &opts, &extras)
        }
    }

    /// An exchange ended: judge it and move its batch on.
    fn complete(&mut self, id: RequestId, transport: Option<TransportError>, now: Instant) {
        let Some(ex) = self.exchanges.remove(&id) else {
            return;
        };
        let Some(i) = self.find(ex.bid) else {
            return;
        };
        if self.queue[i].state != BatchState::InFlight(id) {
            return;
        }
        let foreign = self.foreign_seq(i, ex.head.as_ref());
        let outcome = self.classify(
            &self.queue[i],
            ex.head,
            &ex.body,
            transport,
            ex.epoch_unknown,
        );
        let duplicate = matches!(
            outcome,
            Outcome::Ack {
                duplicate: true,
                ..
            }
        );
        if let Some(seq) = foreign.filter(|_| duplicate) {
            return self.stale_snapshot(i, seq);
        }
        self.apply(i, outcome, ex.preds_resolved, now);
    }

    /// What an exchange's end means for batch `b`. `epoch_unknown`: the attempt was sent
    /// before any batch of its epoch was acknowledged.
    fn classify(
        &self,
        b: &Batch,
        head: Option<http::response::Parts>,
        body: &[u8],
        transport: Option<TransportError>,
        epoch_unknown: bool,
    ) -> Outcome {
        let close_only = b.is_close_only();
        let op = if close_only {
            Operation::Close
        } else {
            Operation::Append
        };
        let Some(parts) = head else {
            let e = transport.unwrap_or_else(|| {
                TransportError::new(
                    TransportErrorKind::Protocol,
                    "the exchange ended without a response head",
                )
            });
            // A refused TLS handshake sent nothing, and another attempt would meet the same
            // certificate: the batch fails at once, known not stored (and so does the rest).
            if e.kind == TransportErrorKind::Tls {
                return Outcome::Fatal {
                    error: Error::transport(op, &self.url, e),
                    global: true,
                };
            }
            // A failed connect sent nothing: the other transport failure known not to be applied.
            let uncertain = e.kind != TransportErrorKind::Connect;
            return Outcome::Retry {
                error: Error::transport(op, &self.url, e),
                retry_after: None,
                uncertain,
            };
        };
        let status = parts.status;
        let result = if close_only && status.as_u16() == 409 {
            // With producer headers the server answers a close-only request `204` when it
            // closes the stream or repeats the tuple that closed it (PROTOCOL.md 5.2.1); a
            // `409` (with `Stream-Closed`) means another writer closed it first, so this close
            // did not happen. Our own close, retried, is always answered `204`.
            Err(ops::error_from_response(
                Operation::Close,
                &self.config.url,
                &parts,
                body,
            ))
        } else if close_only {
            ops::close_response(&self.config.url, &parts, body).map(|c| (c.final_offset, false))
        } else {
            ops::append_response(&self.config.url, true, &parts, body)
                .map(|a| (a.next_offset, a.outcome == AppendOutcome::Duplicate))
        };
        let error = match result {
            Ok((next_offset, duplicate)) => {
                return Outcome::Ack {
                    next_offset,
                    duplicate,
                }
            }
            Err(e) => e,
        };
        if status.is_success() {
            // Stored, but with a malformed header: still stored (failing it would invite the
            // application to append it again).
            return Outcome::Ack {
                next_offset: None,
                duplicate: status.as_u16() == 204 && !close_only,
            };
        }
        match error.kind {
            ErrorKind::Fenced { server_epoch } => Outcome::Fenced {
                server_epoch,
                error,
            },
            ErrorKind::SequenceGap { .. } => Outcome::Gap(error),
            // Sent before the epoch was acknowledged: the server may not have seen the epoch's
            // `seq = 0` yet and refuses a later seq (`400`, PROTOCOL.md 5.2.1; see
            // `set_ordered`). A gap, not a fault of this batch. (The `seq = 0` batch itself:
            // nothing of its epoch precedes it, so the gap rule in `apply` fails it at once.)
            ErrorKind::BadRequest { .. } if epoch_unknown => Outcome::Gap(error),
            ErrorKind::RateLimited { retry_after } => Outcome::Retry {
                error,
                retry_after,
                uncertain: false,
            },
            // A 5xx does not say the append was not applied (a gateway may answer 502/504
            // after the origin stored it): retried, but the batch counts as uncertain.
            ErrorKind::UnexpectedStatus {
                status,
                retry_after,
                ..
            } if status >= 500 => Outcome::Retry {
                error,
                retry_after,
                uncertain: true,
            },
            ErrorKind::Conflict(ConflictKind::Closed { .. })
            | ErrorKind::NotFound
            | ErrorKind::Gone => Outcome::Fatal {
                error,
                global: true,
            },
            _ => Outcome::Fatal {
                error,
                global: false,
            },
        }
    }

    fn apply(&mut self, i: usize, outcome: Outcome, preds_resolved: bool, now: Instant) {
        if let Some(cause) = self.queue[i].doomed.clone() {
            match outcome {
                Outcome::Ack {
                    next_offset,
                    duplicate,
                } => self.resolve_ack(i, next_offset, duplicate),
                Outcome::Retry { uncertain, .. } => {
                    self.queue[i].uncertain |= uncertain;
                    self.resolve_fail(i, cause);
                }
                _ => self.resolve_fail(i, cause),
            }
            return;
        }
        match outcome {
            Outcome::Ack {
                next_offset,
                duplicate,
            } => self.ack(i, next_offset, duplicate),
            Outcome::Gap(error) => {
                if preds_resolved {
                    // Every earlier batch was acknowledged before this attempt: the server's
                    // state disagrees with ours (lost producer state, another writer with our
                    // id and epoch). Re-sending cannot help.
                    self.fatal(i, error, false);
                } else {
                    self.queue[i].state = BatchState::GapWait;
                }
            }
            Outcome::Fenced {
                server_epoch,
                error,
            } => {
                let target = server_epoch.max(self.epoch) + 1;
                if self.config.auto_claim && target <= MAX_SAFE_INTEGER {
                    self.claim = match self.claim.take() {
                        Some((t, e)) if t >= target => Some((t, e)),
                        _ => Some((target, error)),
                    };
                    self.queue[i].state = BatchState::Ready;
                } else {
                    self.fatal(i, error, true);
                }
            }
            Outcome::Retry {
                error,
                retry_after,
                uncertain,
            } => {
                let b = &mut self.queue[i];
                b.uncertain |= uncertain;
                let backoff = b
                    .backoff
                    .get_or_insert_with(|| self.config.retry.start(now));
                match backoff.next_delay(now, &mut self.rng, retry_after) {
                    Some(delay) => b.state = BatchState::Backoff(now + delay),
                    None => self.fatal(i, error, false),
                }
            }
            Outcome::Fatal { error, global } => self.fatal(i, error, global),
        }
    }

    fn ack(&mut self, i: usize, next_offset: Option<Offset>, duplicate: bool) {
        let epoch = self.queue[i].epoch;
        self.resolve_ack(i, next_offset, duplicate);
        if epoch == self.epoch {
            self.epoch_established = true;
        }
        // The server applies an epoch's batches in seq order: a stored batch proves every
        // earlier one of its epoch stored, including those whose answers were lost.
        for j in 0..i {
            let b = &self.queue[j];
            if b.epoch == epoch
                && b.doomed.is_none()
                && matches!(
                    b.state,
                    BatchState::Ready | BatchState::Backoff(_) | BatchState::GapWait
                )
            {
                self.resolve_ack(j, None, true);
            }
        }
    }

    fn resolve_ack(&mut self, i: usize, next_offset: Option<Offset>, duplicate: bool) {
        let b = &mut self.queue[i];
        self.buffered -= b.payload;
        b.state = BatchState::Acked {
            next_offset,
            duplicate,
        };
        let body = std::mem::take(&mut b.body);
        b.lens = Vec::new();
        // Nobody else holds the body any more (the driver dropped the request): its buffer
        // builds the next batch.
        if self.spare.is_none() && body.len() >= SPARE_MIN {
            if let Ok(mut buf) = body.try_into_mut() {
                buf.clear();
                self.spare = Some(buf);
            }
        }
        let b = &mut self.queue[i];
        if b.close {
            self.closed = true;
        }
    }

    fn resolve_fail(&mut self, i: usize, error: Error) {
        let b = &mut self.queue[i];
        self.buffered -= b.payload;
        let reason = if b.uncertain {
            FailureReason::Indeterminate {
                error,
                epoch: b.epoch,
                seq: b.seq,
            }
        } else {
            FailureReason::NotStored(error)
        };
        b.state = BatchState::Failed(reason);
        if b.failed_items.is_empty() {
            b.failed_items = b.payloads(self.json);
        }
        b.body = Bytes::new();
        b.lens = Vec::new();
    }

    /// Batch `i` failed for good: it fails, and so does every batch after it (they cannot be
    /// applied in order without it), the open batch, and, for a `global` failure (fenced,
    /// closed, not found, gone), every other batch too. Batches in flight wait for their answer.
    pub(super) fn fatal(&mut self, i: usize, error: Error, global: bool) {
        self.resolve_fail(i, error.clone());
        if error.is_closed() {
            self.stream_closed = true;
        }
        let start = if global { 0 } else { i + 1 };
        for j in start..self.queue.len() {
            if j == i || self.queue[j].is_resolved() {
                continue;
            }
            if matches!(self.queue[j].state, BatchState::InFlight(_)) {
                self.queue[j].doomed = Some(error.clone());
            } else {
                self.resolve_fail(j, error.clone());
            }
        }
        if !self.open.is_empty() {
            let open = std::mem::take(&mut self.open);
            self.buffered -= open.payload;
            let bid = self.next_bid;
            self.next_bid += 1;
            self.queue.push_back(Batch {
                bid,
                first: open.first,
                count: open.len() as u64,
                lens: Vec::new(),
                failed_items: open.payloads(self.json),
                body: Bytes::new(),
                payload: 0,
                close: false,
                epoch: self.epoch,
                seq: self.next_seq,
                state: BatchState::Failed(FailureReason::NotStored(error.clone())),
                uncertain: false,
                backoff: None,
                doomed: None,
            });
        }
        self.open.due = false;
        self.open.deadline = None;
        if self.terminal.is_none() {
            self.terminal = Some(error);
        }
    }

    /// Auto-claim, once no request of the old epoch is outstanding: take the new epoch,
    /// restart seq at 0, renumber what is safe to re-send, fail the rest as indeterminate.
    ///
    /// Safe: a batch whose attempts all got definite answers was not stored, and neither was
    /// any later batch of the epoch (the server applies an epoch's batches in seq order).
    /// Unsafe: an uncertain batch before the first definite one; it may be stored under the old
    /// epoch and is never re-sent under the new one.
    #[inline(never)]
    fn switch_epoch(&mut self) {
        let Some((target, fence)) = self.claim.take() else {
            return;
        };
        self.epoch = target;
        self.next_seq = 0;
        self.epoch_established = false;
        let mut safe = false;
        for j in 0..self.queue.len() {
            if self.queue[j].is_resolved() {
                continue;
            }
            safe |= !self.queue[j].uncertain;
            if safe {
                let b = &mut self.queue[j];
                b.epoch = target;
                b.seq = self.next_seq;
                b.uncertain = false;
                b.backoff = None;
                b.state = BatchState::Ready;
                self.next_seq += 1;
            } else {
                self.resolve_fail(j, fence.clone());
            }
        }
        self.events
            .push_back(ProducerEvent::EpochClaimed { epoch: target });
    }

    /// Reports resolved batches at the front of the queue, in order.
    #[inline(never)]
    fn emit_resolved(&mut self) {
        while self.queue.front().is_some_and(Batch::is_resolved) {
            let Some(b) = self.queue.pop_front() else {
                break;
            };
            let first = AppendId(b.first);
            let last = AppendId((b.first + b.count).saturating_sub(1));
            match b.state {
                BatchState::Acked {
                    next_offset,
                    duplicate,
                } => {
                    if b.count > 0 {
                        self.events.push_back(ProducerEvent::Acked {
                            first,
                            last,
                            next_offset: next_offset.clone(),
                            duplicate,
                        });
                    }
                    if b.close {
                        self.events.push_back(ProducerEvent::Closed {
                            final_offset: next_offset,
                        });
                    }
                }
                BatchState::Failed(reason) => {
                    if b.count > 0 {
                        self.events.push_back(ProducerEvent::Failed {
                            first,
                            last,
                            items: b.failed_items,
                            reason: reason.clone(),
                        });
                    }
                    if b.close {
                        self.events.push_back(ProducerEvent::CloseFailed { reason });
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
