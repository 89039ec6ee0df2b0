//! The pull-wake [`Worker`]: claims, reads, acks, heartbeats and releases for one pull-wake
//! subscription (PROTOCOL.md 7.2, 7.3), as a sans-IO state machine in the vocabulary of the
//! [`Reader`] (getters, commands, `handle_input`, `handle_timeout`, `poll_transmit`,
//! `poll_cancel`, `poll_timeout`, `poll_event`; it implements [`Machine`]).
//!
//! # What it does
//!
//! ```text
//!  start ──► claim ──201/200──► Claimed ──► per stream with pending work:
//!    ▲         │                             catch-up reads from acked_offset up to the
//!    │         │                             claim's tail_offset ──► Batch, Batch, ...
//!    │         │                            ──► Drained
//!    │         │                application: ack(generation, stream, next_offset)* then done()
//!    │         │                             acks go out at once (coalesced), a heartbeat
//!    │         │                             (acks: []) renews the lease when nothing else did
//!    │         │                            ──► ack done ──► Finished { next_wake }
//!    │         │                                              │ next_wake: claim again at once
//!    │         ├─ ALREADY_CLAIMED / NO_PENDING_WORK ──► wait  │
//!    │         └─ 429 / 5xx / transport ──► Retrying ──► claim again
//!    └──── a wake event for this subscription on the wake stream (newer generation) ◄─┘
//! ```
//!
//! - It **claims once when it starts**: a wake is written only when none is outstanding and
//!   nobody holds the claim, and an unclaimed wake never expires, so a worker that only
//!   followed the wake stream's tail could wait for ever. Then it follows the wake stream
//!   (a [`Reader`] in long-poll mode from [`WorkerConfig::wake_offset`], by default the tail)
//!   and claims on each wake event for its subscription whose generation is newer than any it
//!   knows. Events while it holds a wake wait for its end (its own claim writes one; a newer
//!   one makes it claim again as soon as the held wake ends), and a lost lease makes it
//!   claim once at once: an unclaimed wake never expires, so a missed event would strand
//!   the work.
//! - **Reads**: one linked stream at a time, in the claim's order, with a catch-up
//!   [`Reader`] from the stream's `acked_offset`; it stops at the claim's `tail_offset`
//!   (offsets compare lexicographically, PROTOCOL.md 8) or at the stream's tail. Each
//!   response is one [`Batch`] (whole, up to [`WorkerConfig::max_batch_bytes`]). Reads do not
//!   wait for acks.
//! - **Acks**: [`Worker::ack`] records progress; it is sent at once, or with the next ack
//!   when one is in flight (one claim, ack or release exchange at a time). An ack renews the
//!   lease; when nothing was sent for [`WorkerConfig::heartbeat_interval`] (default a third
//!   of the lease), an empty ack (`acks: []`, a heartbeat) is sent. [`Worker::done`] sends
//!   the remaining acks with `done: true`.
//! - **Lease loss**: `FENCED` or a refused token (401) on an ack or release, or no
//!   successful renewal within the lease (an ack's [`Transmit::deadline`] is at most the
//!   lease's end, counted from when the last successful renewal was sent): the wake is dropped at once (its read is
//!   cancelled, no more batches, [`Worker::ack`] refuses its generation) and
//!   [`WorkerEvent::LeaseLost`] is reported; the worker goes on with later wakes.
//! - **Retries**: 429, 5xx and transport failures of claims, acks and releases are retried
//!   with the [`RetryPolicy`](crate::RetryPolicy)'s backoff and reported as
//!   [`WorkerEvent::Retrying`]; reads retry inside their [`Reader`]. A claim is retried too
//!   although it is not idempotent: if a lost answer had given this worker the lease, the
//!   retry answers `ALREADY_CLAIMED` naming this worker, and the lease comes back as a wake
//!   event when it expires.
//! - **Stop**: [`Worker::stop`] stops following wakes, sends the acks recorded so far, then
//!   releases the held wake, and ends with [`WorkerEvent::Stopped`].
//!
//! # Delivery is at least once
//!
//! A batch is handed out again (to this worker or another) in a later wake when its offsets
//! were not acknowledged by the server before the wake ended, that is when:
//!
//! - the lease was lost ([`WorkerEvent::LeaseLost`]) before the ack carrying it succeeded;
//! - the application called [`Worker::done`] or [`Worker::release`] without acking it, or
//!   the worker was stopped, dropped or crashed before its ack succeeded;
//! - the server refused its ack ([`WorkerEvent::AckRefused`]).
//!
//! Data past the claim's `tail_offset` is never handed out in that wake (a response that
//! crosses the tail is still handed out whole, so a batch can end after the tail: it is
//! handed out again only if not acked). A batch whose ack succeeded is not handed out again.
//!
//! # Request ids
//!
//! The worker numbers its own exchanges; those of its readers are renumbered, so a driver
//! sees one id space. Several exchanges are in flight at once (the wake stream's long-poll, a
//! linked-stream read, and a claim, ack or release): a driver runs them concurrently.
//!
//! # Example
//!
//! One wake, with a "server" that answers every request at once (a real driver performs
//! the exchanges concurrently and keeps the wake stream's long-poll open):
//!
//! ```
//! use ds_proto::subscription::{SubscriptionRoot, Worker, WorkerConfig, WorkerEvent};
//! use ds_proto::{Input, Transmit};
//! # #[allow(clippy::disallowed_methods)]
//! let now = std::time::Instant::now();
//! let root = SubscriptionRoot::new("http://127.0.0.1:4437/v1/stream").unwrap();
//! let config = WorkerConfig::new(root, "sub-1", "worker-a", "wake/pool");
//! let mut worker = Worker::new(config, now).unwrap();
//!
//! fn answer(t: &Transmit, status: u16, headers: &[(&str, &str)], body: &str) -> Vec<Input> {
//!     let mut head = http::Response::builder().status(status);
//!     for (k, v) in headers {
//!         head = head.header(*k, *v);
//!     }
//!     let parts = head.body(()).unwrap().into_parts().0;
//!     let chunk = bytes::Bytes::copy_from_slice(body.as_bytes());
//!     vec![Input::Head { id: t.id, parts }, Input::Body { id: t.id, chunk }, Input::End { id: t.id }]
//! }
//! let server = |t: &Transmit| -> Option<Vec<Input>> {
//!     let path = t.request.uri().path();
//!     Some(if path.ends_with("/claim") {
//!         answer(t, 200, &[], r#"{"wake_id":"w1","generation":1,"token":"tok","lease_ttl_ms":30000,
//!             "streams":[{"path":"events/a","acked_offset":"-1","tail_offset":"0_5","has_pending":true}]}"#)
//!     } else if path.ends_with("/events/a") {
//!         answer(t, 200, &[("stream-next-offset", "0_5"), ("stream-up-to-date", "true")], "hello")
//!     } else if path.ends_with("/ack") {
//!         answer(t, 200, &[], r#"{"ok":true,"next_wake":false}"#)
//!     } else {
//!         return None; // the wake stream's long-poll: left open
//!     })
//! };
//!
//! let mut inputs = Vec::new();
//! let mut processed = Vec::new();
//! loop {
//!     let mut busy = false;
//!     while let Some(t) = worker.poll_transmit(now) {
//!         inputs.extend(server(&t).unwrap_or_default());
//!     }
//!     while let Some(event) = worker.poll_event() {
//!         busy = true; // commands below may have made requests to send
//!         match event {
//!             WorkerEvent::Batch(b) => {
//!                 processed.push(b.data.clone()); // process, then ack
//!                 worker.ack(b.generation, &b.stream, b.next_offset).unwrap();
//!             }
//!             WorkerEvent::Drained { generation } => worker.done(generation).unwrap(),
//!             _ => {}
//!         }
//!     }
//!     for input in inputs.drain(..) {
//!         busy = true;
//!         worker.handle_input(input, now);
//!     }
//!     if !busy {
//!         break; // only the long-poll is open: a real driver waits for it or a timer
//!     }
//! }
//! assert_eq!(processed, ["hello"]);
//! assert_eq!(worker.held_generation(), None); // done was acknowledged
//! ```

mod config;
#[cfg(test)]
mod tests;

pub use config::{
    Batch, LeaseLoss, WorkerConfig, WorkerError, WorkerEvent, WorkerFailure, WorkerSnapshot,
};

use super::{
    ack_request, ack_response, claim_request, claim_response, release_request, release_response,
    Ack, AckBody, AckOutcome, Claim, PendingStream, SubscriptionError, SubscriptionErrorKind,
    SubscriptionOp, WakeEvent, DEFAULT_LEASE_TTL_MS,
};
use crate::error::ErrorKind;
use crate::io::{Input, RequestId, Transmit};
use crate::machine::Machine;
use crate::offset::Offset;
use crate::reader::{ReadMode, Reader, ReaderConfig, ReaderEvent};
use crate::retry::Backoff;
use crate::rng::Rng;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The largest claim, ack or release response body accepted. A claim lists every pending
/// stream (about 100 bytes each on the reference server): 64 MiB is some 600,000 pending
/// streams in one wake. A longer answer is a `LimitExceeded` error, never cut silently.
const MAX_CONTROL_BODY: usize = 64 << 20;

/// The pull-wake worker state machine (see the [module documentation](self)).
#[derive(Debug)]
pub struct Worker {
    config: WorkerConfig,
    wake_reader: Reader,
    /// The highest generation known (claimed, refused, finished, or in a wake event acted on).
    known_generation: Option<u64>,
    /// A claim is wanted (at start, after a wake event, after `next_wake`).
    want_claim: bool,
    /// A wake event arrived while a claim was in flight: its generation (`u64::MAX` when the
    /// event had none).
    claim_again: Option<u64>,
    /// A wake event newer than the held wake arrived while it was held.
    missed_wake: bool,
    /// The incomplete end of the last chunk of a byte wake stream (an event cut by a read
    /// limit), parsed with the next chunk; at most [`MAX_WAKE_TAIL`] bytes.
    wake_tail: Vec<u8>,
    /// The wake stream is followed from `now` and the reader has no concrete offset yet: a
    /// wake event written between the start claim's evaluation and the moment the server
    /// resolves `now` (or carried by a read from `now` that failed) lies before the offset the
    /// reader will get, so the worker claims once more at its first concrete offset.
    claim_at_first_offset: bool,
    wake: Option<Wake>,
    control: Option<Control>,
    control_wait: Option<Instant>,
    backoff: Option<Backoff>,
    rng: Rng,
    routes: HashMap<RequestId, Route>,
    next_id: u64,
    /// Numbers the linked-stream reads (see [`Route::Data`]).
    read_seq: u64,
    events: VecDeque<WorkerEvent>,
    cancels: VecDeque<RequestId>,
    stopping: bool,
    finished: bool,
}

#[derive(Debug)]
struct Wake {
    wake_id: String,
    generation: u64,
    token: String,
    streams: Vec<PendingStream>,
    to_read: VecDeque<PendingStream>,
    reading: Option<DataRead>,
    drained: bool,
    pending_acks: BTreeMap<String, Offset>,
    confirmed: BTreeMap<String, Offset>,
    done_requested: bool,
    release_requested: bool,
    ttl: Duration,
    renewed_at: Instant,
}

#[derive(Debug)]
struct DataRead {
    seq: u64,
    path: String,
    tail: Offset,
    reader: Reader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Wake(RequestId),
    /// A linked-stream read: the read's sequence number (each stream read has its own
    /// reader, numbering its requests from 1) and the reader's id.
    Data(u64, RequestId),
    Control,
}

#[derive(Debug)]
struct Control {
    id: RequestId,
    kind: ControlKind,
    url: String,
    sent_at: Instant,
    head: Option<http::response::Parts>,
    body: Vec<u8>,
    /// The body went past [`MAX_CONTROL_BODY`].
    too_large: bool,
}

#[derive(Debug, Clone)]
enum ControlKind {
    Claim,
    Ack {
        generation: u64,
        acks: Vec<Ack>,
        done: bool,
    },
    Release {
        generation: u64,
    },
}

impl ControlKind {
    fn op(&self) -> SubscriptionOp {
        match self {
            ControlKind::Claim => SubscriptionOp::Claim,
            ControlKind::Ack { .. } => SubscriptionOp::Ack,
            ControlKind::Release { .. } => SubscriptionOp::Release,
        }
    }
}

enum ControlOutcome {
    Claimed(Claim),
    Acked(AckOutcome),
    Released,
}

fn with_id(input: Input, id: RequestId) -> Input {
    match input {
        Input::Head { parts, .. } => Input::Head { id, parts },
        Input::Body { chunk, .. } => Input::Body { id, chunk },
        Input::End { .. } => Input::End { id },
        Input::Failed { error, .. } => Input::Failed { id, error },
    }
}

/// The wake events in a chunk of the wake stream. A JSON-mode wake stream gives one array of
/// messages; a byte stream gives the events as written, JSON objects one after the other
/// (the reference server appends each event's JSON without a separator), possibly separated
/// by whitespace. Messages that are not wake events are skipped; a byte chunk stops at the
/// first thing that is not JSON.
fn wake_events(chunk: &crate::reader::Chunk, tail: &mut Vec<u8>) -> Vec<WakeEvent> {
    let parse = |m: &[u8]| WakeEvent::parse(m).ok().flatten();
    if chunk.json {
        if let Ok(items) = chunk.items() {
            return items.iter().filter_map(|m| parse(m)).collect();
        }
    }
    // A byte stream: events may be cut anywhere by a read limit; the incomplete end waits for
    // the next chunk.
    let joined;
    let data: &[u8] = if tail.is_empty() {
        &chunk.data
    } else {
        tail.extend_from_slice(&chunk.data);
        joined = std::mem::take(tail);
        &joined
    };
    let mut stream =
        serde_json::Deserializer::from_slice(data).into_iter::<&serde_json::value::RawValue>();
    let mut events = Vec::new();
    let mut complete = 0;
    loop {
        match stream.next() {
            Some(Ok(raw)) => {
                complete = stream.byte_offset();
                events.extend(parse(raw.get().as_bytes()));
            }
            Some(Err(e)) if e.is_eof() => {
                let rest = &data[complete..];
                if rest.len() <= MAX_WAKE_TAIL {
                    tail.extend_from_slice(rest);
                }
                break;
            }
            // Not JSON: the rest of the chunk is skipped.
            Some(Err(_)) | None => break,
        }
    }
    events
}

/// The most bytes of an incomplete wake event kept for the next chunk of a byte wake stream
/// (a wake event is well under 1 KiB).
const MAX_WAKE_TAIL: usize = 64 * 1024;

fn at(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

impl Worker {
    /// Checks `config` and creates a worker that will claim at once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] (as a [`SubscriptionError`] of [`SubscriptionOp::Claim`]):
    /// an empty subscription id or worker name, a bad wake stream path, an invalid retry
    /// policy, a zero timeout, heartbeat or batch limit.
    pub fn new(config: WorkerConfig, now: Instant) -> Result<Worker, SubscriptionError> {
        let op = SubscriptionOp::Claim;
        let root = config.root.as_str().to_owned();
        let invalid =
            |m: String| SubscriptionError::invalid_input(op, &root, crate::InputReason::Config, m);
        // Building a claim checks the id and the worker name.
        claim_request(
            &config.root,
            &config.subscription_id,
            &config.worker,
            &config.extras,
        )?;
        let wake_url = config.root.stream_url(&config.wake_stream)?;
        config
            .retry
            .validate()
            .map_err(|e| invalid(format!("retry policy: {e}")))?;
        if config.request_timeout.is_zero() || config.request_timeout > crate::retry::MAX_DURATION {
            return Err(invalid(
                "request_timeout must be within (0, 10 years]".into(),
            ));
        }
        if config.heartbeat_interval.is_some_and(|h| h.is_zero()) {
            return Err(invalid(
                "heartbeat_interval must be greater than zero".into(),
            ));
        }
        if config.max_batch_bytes == 0 {
            return Err(invalid("max_batch_bytes must be greater than zero".into()));
        }
        let mut rng = Rng::new(config.rng_seed);
        let wake_reader = Reader::new(
            ReaderConfig {
                offset: config.wake_offset.clone(),
                mode: ReadMode::LongPoll,
                retry: config.retry.clone(),
                rng_seed: rng.next_u64(),
                ..ReaderConfig::new(wake_url)
            },
            now,
        )
        .map_err(|e| SubscriptionError::new(op, &root, SubscriptionErrorKind::Http(e.kind)))?;
        let claim_at_first_offset = config.wake_offset.is_now();
        Ok(Worker {
            config,
            wake_reader,
            known_generation: None,
            want_claim: true,
            claim_again: None,
            missed_wake: false,
            wake_tail: Vec::new(),
            claim_at_first_offset,
            wake: None,
            control: None,
            control_wait: None,
            backoff: None,
            rng,
            routes: HashMap::new(),
            next_id: 1,
            read_seq: 0,
            events: VecDeque::new(),
            cancels: VecDeque::new(),
            stopping: false,
            finished: false,
        })
    }

    /// Continues from a [`WorkerSnapshot`]: follows the wake stream from its checkpoint and
    /// claims once at start. Set `snapshot.config.extras` (credentials) first.
    pub fn restore(snapshot: WorkerSnapshot, now: Instant) -> Result<Worker, SubscriptionError> {
        let mut w = Worker::new(snapshot.config, now)?;
        w.known_generation = snapshot.known_generation;
        Ok(w)
    }

    // ----- getters -----

    /// The wake stream checkpoint: the offset after every wake event acted on.
    pub fn wake_offset(&self) -> &Offset {
        self.wake_reader.offset()
    }

    /// The generation of the wake held, if any.
    pub fn held_generation(&self) -> Option<u64> {
        self.wake.as_ref().map(|w| w.generation)
    }

    /// The highest generation the worker knows of.
    pub fn known_generation(&self) -> Option<u64> {
        self.known_generation
    }

    /// The offsets the server has confirmed for the held wake, per stream.
    pub fn confirmed_acks(&self) -> Option<&BTreeMap<String, Offset>> {
        self.wake.as_ref().map(|w| &w.confirmed)
    }

    /// Whether the worker ended ([`WorkerEvent::Stopped`] or [`WorkerEvent::Failed`]).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// A snapshot: the configuration with the wake stream checkpoint, and the known
    /// generation (see [`WorkerSnapshot`]).
    pub fn snapshot(&self) -> WorkerSnapshot {
        WorkerSnapshot {
            format_version: WorkerSnapshot::FORMAT_VERSION,
            config: WorkerConfig {
                wake_offset: self.wake_reader.offset().clone(),
                extras: Default::default(),
                ..self.config.clone()
            },
            known_generation: self.known_generation,
        }
    }

    // ----- commands -----

    /// Records that everything of `stream` up to `offset` (a [`Batch::next_offset`]) is
    /// processed, in the wake of `generation`. It is sent with the next ack (at once when no
    /// other claim / ack / release is in flight). Acking an offset at or below one already
    /// recorded does nothing.
    pub fn ack(
        &mut self,
        generation: u64,
        stream: &str,
        offset: Offset,
    ) -> Result<(), WorkerError> {
        // An ack in flight counts as recorded: a lower offset after it would regress.
        let in_flight = match &self.control {
            Some(Control {
                kind:
                    ControlKind::Ack {
                        generation: g,
                        acks,
                        ..
                    },
                ..
            }) if *g == generation => acks
                .iter()
                .find(|a| a.stream == stream)
                .map(|a| a.offset.clone()),
            _ => None,
        };
        let w = self.held(generation)?;
        if !w.streams.iter().any(|s| s.path == stream) {
            return Err(WorkerError::UnknownStream(stream.to_owned()));
        }
        if offset.is_sentinel() {
            return Err(WorkerError::SentinelOffset(offset));
        }
        let newer = |m: &BTreeMap<String, Offset>| m.get(stream).is_none_or(|o| offset > *o);
        if newer(&w.confirmed) && newer(&w.pending_acks) && in_flight.is_none_or(|o| offset > o) {
            w.pending_acks.insert(stream.to_owned(), offset);
        }
        Ok(())
    }

    /// Finishes the wake of `generation`: the acks recorded so far are sent with
    /// `done: true`, which releases the lease ([`WorkerEvent::Finished`]). Reading stops: data
    /// not yet handed out comes in the next wake.
    pub fn done(&mut self, generation: u64) -> Result<(), WorkerError> {
        if self.stopping {
            return Err(WorkerError::Stopping);
        }
        let w = self.held(generation)?;
        if w.done_requested || w.release_requested {
            return Err(WorkerError::Ending);
        }
        w.done_requested = true;
        self.stop_reading();
        Ok(())
    }

    /// Gives the wake of `generation` up: the acks recorded so far are sent, then the lease
    /// is released without `done` ([`WorkerEvent::Released`]); the server wakes again for
    /// the remaining work (this worker claims again on that wake event like any other).
    pub fn release(&mut self, generation: u64) -> Result<(), WorkerError> {
        if self.stopping {
            return Err(WorkerError::Stopping);
        }
        let w = self.held(generation)?;
        if w.done_requested || w.release_requested {
            return Err(WorkerError::Ending);
        }
        w.release_requested = true;
        self.stop_reading();
        Ok(())
    }

    /// Stops: no more claims or reads; the acks recorded so far are sent and the held wake
    /// is released (a `done` already asked for is completed instead); then
    /// [`WorkerEvent::Stopped`]. A claim in flight is awaited (and its wake released).
    /// Idempotent.
    pub fn stop(&mut self) {
        if self.stopping || self.finished {
            return;
        }
        self.stopping = true;
        self.want_claim = false;
        self.claim_again = None;
        self.wake_reader.stop();
        self.drain_wake_cancels();
        if let Some(w) = &mut self.wake {
            if !w.done_requested {
                w.release_requested = true;
            }
        }
        self.stop_reading();
        self.check_stopped();
    }

    fn held(&mut self, generation: u64) -> Result<&mut Wake, WorkerError> {
        match &mut self.wake {
            Some(w) if w.generation == generation => Ok(w),
            _ => Err(WorkerError::NotHeld(generation)),
        }
    }

    // ----- handle_* -----

    /// Feeds what the driver saw of an exchange; inputs of unknown or abandoned ids are
    /// ignored. Never fails: outcomes become events.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        let id = input.id();
        let Some(route) = self.routes.get(&id).copied() else {
            return;
        };
        let ends = input.ends_exchange();
        if ends {
            self.routes.remove(&id);
        }
        match route {
            Route::Wake(inner) => self.wake_reader.handle_input(with_id(input, inner), now),
            Route::Data(seq, inner) => {
                if let Some(r) = self.wake.as_mut().and_then(|w| w.reading.as_mut()) {
                    if r.seq == seq {
                        r.reader.handle_input(with_id(input, inner), now);
                    }
                }
            }
            Route::Control => self.on_control_input(input, now),
        }
        self.pump(now);
    }

    /// Fires the timers due at `now`: retry waits, the lease's local expiry, and the
    /// readers' timers (heartbeats are sent by [`Worker::poll_transmit`] once due).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        self.wake_reader.handle_timeout(now);
        if let Some(r) = self.wake.as_mut().and_then(|w| w.reading.as_mut()) {
            r.reader.handle_timeout(now);
        }
        if self.control_wait.is_some_and(|w| now >= w) {
            self.control_wait = None;
        }
        if let Some(w) = &self.wake {
            let expiry = at(w.renewed_at, w.ttl);
            if now >= expiry && !self.renewal_in_flight(expiry) {
                let g = w.generation;
                self.lease_lost(g, LeaseLoss::Expired);
            }
        }
        self.pump(now);
    }

    // ----- poll_* -----

    /// The next request to send: a claim, ack or release (one at a time), a wake stream
    /// read, or a linked stream read.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.finished {
            return None;
        }
        if self.control_wait.is_some_and(|w| now >= w) {
            self.control_wait = None;
        }
        if let Some(t) = self.next_control(now) {
            return Some(t);
        }
        if let Some(t) = self.wake_reader.poll_transmit(now) {
            return Some(self.wrap(t, Route::Wake));
        }
        let data = self
            .wake
            .as_mut()
            .and_then(|w| w.reading.as_mut())
            .and_then(|r| Some((r.seq, r.reader.poll_transmit(now)?)));
        if let Some((seq, t)) = data {
            return Some(self.wrap(t, |inner| Route::Data(seq, inner)));
        }
        // A reader that could not build its request failed: report it.
        self.pump(now);
        None
    }

    /// The next exchange the driver must abort.
    #[must_use]
    pub fn poll_cancel(&mut self) -> Option<RequestId> {
        self.cancels.pop_front()
    }

    /// When [`Worker::handle_timeout`] (or [`Worker::poll_transmit`], for a heartbeat) must be
    /// called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let mut t = self.wake_reader.poll_timeout();
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.control.is_none() {
            consider(self.control_wait);
        }
        if let Some(w) = &self.wake {
            consider(w.reading.as_ref().and_then(|r| r.reader.poll_timeout()));
            let expiry = at(w.renewed_at, w.ttl);
            if !self.renewal_in_flight(expiry) {
                consider(Some(expiry));
            }
            // A heartbeat goes out once no exchange is in flight and no retry wait runs
            // (the wait's end is a timer of its own).
            if self.control.is_none() && self.control_wait.is_none() {
                consider(Some(at(w.renewed_at, self.heartbeat(w))));
            }
        }
        t
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<WorkerEvent> {
        self.events.pop_front()
    }

    // ----- internals: control exchanges -----

    /// Whether an ack or release sent before `expiry` is in flight: it may still renew the
    /// lease, so its answer is awaited (bounded by its deadline) before the lease is given up.
    fn renewal_in_flight(&self, expiry: Instant) -> bool {
        self.control
            .as_ref()
            .is_some_and(|c| !matches!(c.kind, ControlKind::Claim) && c.sent_at < expiry)
    }

    fn heartbeat(&self, w: &Wake) -> Duration {
        self.config
            .heartbeat_interval
            .filter(|h| *h < w.ttl)
            .unwrap_or(w.ttl / 3)
    }

    fn wrap(&mut self, mut t: Transmit, route: impl FnOnce(RequestId) -> Route) -> Transmit {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.routes.insert(id, route(t.id));
        crate::ops::apply_extras(&mut t.request, &self.config.extras);
        t.id = id;
        t
    }

    fn next_control(&mut self, now: Instant) -> Option<Transmit> {
        if self.control.is_some() || self.control_wait.is_some() {
            return None;
        }
        let hb = self.wake.as_ref().map(|w| self.heartbeat(w));
        let kind = match &mut self.wake {
            Some(w) => {
                let hb = hb.unwrap_or_default();
                let acks = |w: &mut Wake| {
                    std::mem::take(&mut w.pending_acks)
                        .into_iter()
                        .map(|(stream, offset)| Ack { stream, offset })
                        .collect::<Vec<_>>()
                };
                if w.done_requested {
                    ControlKind::Ack {
                        generation: w.generation,
                        acks: acks(w),
                        done: true,
                    }
                } else if !w.pending_acks.is_empty() {
                    ControlKind::Ack {
                        generation: w.generation,
                        acks: acks(w),
                        done: false,
                    }
                } else if w.release_requested {
                    ControlKind::Release {
                        generation: w.generation,
                    }
                } else if now >= at(w.renewed_at, hb) {
                    ControlKind::Ack {
                        generation: w.generation,
                        acks: Vec::new(),
                        done: false,
                    }
                } else {
                    return None;
                }
            }
            None if self.want_claim && !self.stopping => ControlKind::Claim,
            None => return None,
        };
        let c = &self.config;
        let built = match (&kind, &self.wake) {
            (ControlKind::Claim, _) => {
                claim_request(&c.root, &c.subscription_id, &c.worker, &c.extras)
            }
            (ControlKind::Ack { acks, done, .. }, Some(w)) => ack_request(
                &c.root,
                &c.subscription_id,
                &w.token,
                &AckBody {
                    wake_id: w.wake_id.clone(),
                    generation: w.generation,
                    acks: acks.clone(),
                    done: *done,
                },
                &c.extras,
            ),
            (ControlKind::Release { .. }, Some(w)) => release_request(
                &c.root,
                &c.subscription_id,
                &w.token,
                &w.wake_id,
                w.generation,
                &c.extras,
            ),
            _ => return None,
        };
        let request = match built {
            Ok(r) => r,
            Err(e) => {
                // Inputs were checked when recorded: only a token that is not a header
                // value (a broken server) gets here.
                self.on_control_result(kind, now, Err(e), now);
                return None;
            }
        };
        if matches!(kind, ControlKind::Claim) {
            self.want_claim = false;
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.routes.insert(id, Route::Control);
        self.control = Some(Control {
            id,
            url: request.uri().to_string(),
            kind,
            sent_at: now,
            head: None,
            body: Vec::new(),
            too_large: false,
        });
        // An ack or release is pointless after the lease's end: its deadline is at most the
        // local expiry, after which the lease is given up.
        let mut deadline = at(now, self.config.request_timeout);
        if let Some(w) = &self.wake {
            deadline = deadline.min(at(w.renewed_at, w.ttl).max(now));
        }
        Some(Transmit {
            id,
            request,
            deadline: Some(deadline),
        })
    }

    fn on_control_input(&mut self, input: Input, now: Instant) {
        let Some(ctl) = self.control.as_mut() else {
            return;
        };
        if ctl.id != input.id() {
            return;
        }
        match input {
            Input::Head { parts, .. } => {
                if ctl.head.is_none() {
                    ctl.head = Some(parts);
                }
            }
            Input::Body { chunk, .. } => {
                let room = MAX_CONTROL_BODY.saturating_sub(ctl.body.len());
                if chunk.len() > room {
                    ctl.too_large = true;
                }
                ctl.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Input::End { .. } => {
                let ctl = self.control.take().expect("checked above");
                let c = &self.config;
                let (root, id) = (&c.root, c.subscription_id.as_str());
                let result = match &ctl.head {
                    None => Err(SubscriptionError::invalid_response(
                        ctl.kind.op(),
                        &ctl.url,
                        crate::ResponseReason::MissingHeader,
                        "the response ended without a head",
                    )),
                    Some(_) if ctl.too_large => Err(SubscriptionError::new(
                        ctl.kind.op(),
                        &ctl.url,
                        SubscriptionErrorKind::Http(ErrorKind::limit_exceeded(
                            crate::Limit::ResponseBody,
                            format!("response body larger than {MAX_CONTROL_BODY} bytes"),
                        )),
                    )),
                    Some(parts) => match &ctl.kind {
                        ControlKind::Claim => {
                            claim_response(root, id, parts, &ctl.body).map(ControlOutcome::Claimed)
                        }
                        ControlKind::Ack { .. } => {
                            ack_response(root, id, parts, &ctl.body).map(ControlOutcome::Acked)
                        }
                        ControlKind::Release { .. } => release_response(root, id, parts, &ctl.body)
                            .map(|()| ControlOutcome::Released),
                    },
                };
                self.on_control_result(ctl.kind, ctl.sent_at, result, now);
            }
            Input::Failed { error, .. } => {
                let ctl = self.control.take().expect("checked above");
                let e = SubscriptionError::transport(ctl.kind.op(), &ctl.url, error);
                self.on_control_result(ctl.kind, ctl.sent_at, Err(e), now);
            }
        }
    }

    /// Schedules a retry of a failed control exchange; `false` when it must not be retried.
    fn schedule_retry(
        &mut self,
        error: &SubscriptionError,
        sent_at: Instant,
        now: Instant,
    ) -> bool {
        if !error.is_retryable() {
            return false;
        }
        let backoff = self
            .backoff
            .get_or_insert_with(|| self.config.retry.start(sent_at));
        match backoff.next_delay(now, &mut self.rng, error.retry_after()) {
            Some(delay) => {
                let attempt = backoff.attempts().saturating_sub(1);
                self.events.push_back(WorkerEvent::Retrying {
                    error: error.clone(),
                    attempt,
                    delay,
                });
                self.control_wait = Some(at(now, delay));
                true
            }
            None => {
                self.backoff = None;
                false
            }
        }
    }

    fn know(&mut self, generation: u64) {
        self.known_generation = Some(
            self.known_generation
                .map_or(generation, |k| k.max(generation)),
        );
    }

    fn on_control_result(
        &mut self,
        kind: ControlKind,
        sent_at: Instant,
        result: Result<ControlOutcome, SubscriptionError>,
        now: Instant,
    ) {
        if result.is_ok() {
            self.backoff = None;
        }
        match (kind, result) {
            (ControlKind::Claim, Ok(ControlOutcome::Claimed(claim))) => {
                // The claim covers every pending stream: an event written before the wake
                // reader's first offset is this wake's, or the next one's, written later.
                self.claim_at_first_offset = false;
                self.on_claimed(claim, sent_at, now)
            }
            (ControlKind::Claim, Err(e)) => self.on_claim_failed(e, sent_at, now),
            (
                ControlKind::Ack {
                    generation,
                    acks,
                    done,
                },
                result,
            ) => {
                if self.held_generation() != Some(generation) {
                    return self.check_stopped();
                }
                match result {
                    Ok(ControlOutcome::Acked(outcome)) => {
                        let w = self.wake.as_mut().expect("held");
                        w.renewed_at = w.renewed_at.max(sent_at);
                        for a in acks {
                            let newer = w.confirmed.get(&a.stream).is_none_or(|o| a.offset > *o);
                            if newer {
                                w.confirmed.insert(a.stream, a.offset);
                            }
                        }
                        if done {
                            self.wake = None;
                            self.know(generation);
                            self.events.push_back(WorkerEvent::Finished {
                                generation,
                                next_wake: outcome.next_wake,
                            });
                            self.wake_ended(outcome.next_wake);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if matches!(e.kind, SubscriptionErrorKind::InvalidOffset { .. }) {
                            // Those acks are dropped; a `done` is sent again without them.
                            self.events.push_back(WorkerEvent::AckRefused {
                                generation,
                                error: e,
                            });
                        } else {
                            self.restore_acks(acks);
                            self.on_wake_control_error(generation, e, sent_at, now);
                        }
                    }
                }
            }
            (ControlKind::Release { generation }, result) => {
                if self.held_generation() != Some(generation) {
                    return self.check_stopped();
                }
                match result {
                    Ok(_) => {
                        self.wake = None;
                        self.know(generation);
                        self.events.push_back(WorkerEvent::Released { generation });
                        self.wake_ended(false);
                    }
                    Err(e) => self.on_wake_control_error(generation, e, sent_at, now),
                }
            }
            (ControlKind::Claim, Ok(_)) => {}
        }
        self.check_stopped();
    }

    /// The held wake ended (finished, released or lost): claim again at once when asked to
    /// or when a newer wake event arrived while it was held.
    fn wake_ended(&mut self, claim_now: bool) {
        let missed = std::mem::take(&mut self.missed_wake);
        if (claim_now || missed) && !self.stopping {
            self.want_claim = true;
        }
    }

    fn restore_acks(&mut self, acks: Vec<Ack>) {
        if let Some(w) = &mut self.wake {
            for a in acks {
                let newer = w.pending_acks.get(&a.stream).is_none_or(|o| a.offset > *o);
                if newer {
                    w.pending_acks.insert(a.stream, a.offset);
                }
            }
        }
    }

    fn on_wake_control_error(
        &mut self,
        generation: u64,
        e: SubscriptionError,
        sent_at: Instant,
        now: Instant,
    ) {
        match &e.kind {
            SubscriptionErrorKind::Fenced { .. } => self.lease_lost(generation, LeaseLoss::Fenced),
            SubscriptionErrorKind::Unauthorized { .. } => {
                self.lease_lost(generation, LeaseLoss::Unauthorized)
            }
            _ if self.schedule_retry(&e, sent_at, now) => {}
            _ if e.is_retryable() => {
                // Retries exhausted: the lease cannot be renewed any more.
                self.lease_lost(generation, LeaseLoss::Expired)
            }
            _ => {
                self.lease_lost(generation, LeaseLoss::Fenced);
                self.fail(WorkerFailure::Subscription(e));
            }
        }
    }

    fn on_claimed(&mut self, claim: Claim, sent_at: Instant, now: Instant) {
        let _ = now;
        self.know(claim.generation);
        // A wake event newer than this claim arrived while it was in flight.
        self.missed_wake = self
            .claim_again
            .take()
            .is_some_and(|g| g > claim.generation);
        let ttl = Duration::from_millis(claim.lease_ttl_ms.unwrap_or(DEFAULT_LEASE_TTL_MS).max(1));
        let to_read = claim
            .streams
            .iter()
            .filter(|s| {
                s.has_pending || (!s.tail_offset.is_sentinel() && s.tail_offset > s.acked_offset)
            })
            .cloned()
            .collect();
        self.events.push_back(WorkerEvent::Claimed {
            wake_id: claim.wake_id.clone(),
            generation: claim.generation,
            streams: claim.streams.clone(),
        });
        self.wake = Some(Wake {
            wake_id: claim.wake_id,
            generation: claim.generation,
            token: claim.token,
            streams: claim.streams,
            to_read,
            reading: None,
            drained: false,
            pending_acks: BTreeMap::new(),
            confirmed: BTreeMap::new(),
            done_requested: false,
            release_requested: self.stopping,
            ttl,
            renewed_at: sent_at,
        });
        if self.stopping {
            if let Some(w) = &mut self.wake {
                w.to_read.clear();
                w.drained = true;
            }
        }
    }

    fn on_claim_failed(&mut self, e: SubscriptionError, sent_at: Instant, now: Instant) {
        let again = self.claim_again.take();
        match &e.kind {
            SubscriptionErrorKind::AlreadyClaimed {
                current_holder,
                generation,
            } => {
                // Another holder's wake covers what is pending; the wake for what remains
                // after it is written later, past the wake reader's first offset.
                self.claim_at_first_offset = false;
                self.events.push_back(WorkerEvent::AlreadyClaimed {
                    current_holder: current_holder.clone(),
                    generation: *generation,
                });
                if let Some(g) = generation {
                    self.know(*g);
                }
                // A wake event newer than the holder's generation arrived meanwhile.
                self.want_claim = again.is_some_and(|a| generation.is_none_or(|g| a > g));
            }
            SubscriptionErrorKind::NoPendingWork => {
                self.events.push_back(WorkerEvent::NoPendingWork);
                // A wake event that arrived meanwhile is for work appended after the answer.
                self.want_claim = again.is_some();
            }
            _ if self.stopping => {}
            _ if self.schedule_retry(&e, sent_at, now) => self.want_claim = true,
            _ if e.is_retryable() => {
                self.events.push_back(WorkerEvent::ClaimFailed(e));
                self.want_claim = false;
            }
            _ => self.fail(WorkerFailure::Subscription(e)),
        }
    }

    /// The wake of `generation` is gone: drop it at once.
    fn lease_lost(&mut self, generation: u64, reason: LeaseLoss) {
        if self.held_generation() != Some(generation) {
            return;
        }
        self.stop_reading();
        self.wake = None;
        self.know(generation);
        // A pending retry of this wake's ack or release is moot.
        self.backoff = None;
        self.control_wait = None;
        if let Some(ctl) = &self.control {
            if !matches!(ctl.kind, ControlKind::Claim) {
                let id = ctl.id;
                self.cancels.push_back(id);
                self.routes.remove(&id);
                self.control = None;
            }
        }
        self.events
            .push_back(WorkerEvent::LeaseLost { generation, reason });
        // The server has probably written a wake for the remaining work, which may have
        // arrived (and been ignored) while the wake was held: claim once, as at start.
        self.wake_ended(true);
        // A stop waiting for this wake's release is over: the lease is gone.
        self.check_stopped();
    }

    fn fail(&mut self, failure: WorkerFailure) {
        if self.finished {
            return;
        }
        self.wake_reader.stop();
        self.drain_wake_cancels();
        self.stop_reading();
        self.wake = None;
        if let Some(ctl) = self.control.take() {
            self.cancels.push_back(ctl.id);
        }
        self.routes.clear();
        self.events.push_back(WorkerEvent::Failed(failure));
        self.finished = true;
    }

    fn check_stopped(&mut self) {
        if self.stopping && !self.finished && self.wake.is_none() && self.control.is_none() {
            self.routes.clear();
            self.events.push_back(WorkerEvent::Stopped);
            self.finished = true;
        }
    }

    // ----- internals: readers -----

    fn drain_wake_cancels(&mut self) {
        while let Some(inner) = self.wake_reader.poll_cancel() {
            self.cancel_route(Route::Wake(inner));
        }
    }

    fn cancel_route(&mut self, route: Route) {
        if let Some(outer) = self
            .routes
            .iter()
            .find(|(_, r)| **r == route)
            .map(|(id, _)| *id)
        {
            self.routes.remove(&outer);
            self.cancels.push_back(outer);
        }
    }

    /// Stops the linked-stream read of the held wake, if any (no more batches).
    fn stop_reading(&mut self) {
        let Some(w) = &mut self.wake else { return };
        w.to_read.clear();
        w.drained = true;
        if let Some(mut r) = w.reading.take() {
            let seq = r.seq;
            r.reader.stop();
            while let Some(inner) = r.reader.poll_cancel() {
                self.cancel_route(Route::Data(seq, inner));
            }
            // A request in flight that the reader did not report (none, normally).
            if let Some(inner) = r.reader.in_flight() {
                self.cancel_route(Route::Data(seq, inner));
            }
        }
        let stale: Vec<RequestId> = self
            .routes
            .iter()
            .filter(|(_, r)| matches!(r, Route::Data(..)))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.routes.remove(&id);
            self.cancels.push_back(id);
        }
    }

    /// Drains the readers' cancels and events and moves the wake's reads along.
    fn pump(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        self.drain_wake_cancels();
        while let Some(ev) = self.wake_reader.poll_event() {
            match ev {
                ReaderEvent::Data(chunk) => {
                    for ev in wake_events(&chunk, &mut self.wake_tail) {
                        if ev.subscription_id == self.config.subscription_id {
                            self.on_wake_event(ev.generation);
                        }
                    }
                    self.after_now_read();
                }
                ReaderEvent::UpToDate { .. } => self.after_now_read(),
                ReaderEvent::Failed(e) => {
                    self.fail(WorkerFailure::WakeStream(e));
                    return;
                }
                ReaderEvent::Retrying {
                    error,
                    attempt,
                    delay,
                } => self.events.push_back(WorkerEvent::ReadRetrying {
                    stream: self.config.wake_stream.clone(),
                    error,
                    attempt,
                    delay,
                }),
                ReaderEvent::Closed { .. } if !self.stopping => {
                    let e = crate::Error::new(
                        crate::Operation::Read,
                        self.wake_reader.snapshot().config.url,
                        ErrorKind::invalid_response(
                            crate::ResponseReason::Body,
                            "the wake stream is closed",
                        ),
                    );
                    self.fail(WorkerFailure::WakeStream(e));
                    return;
                }
                _ => {}
            }
        }
        self.pump_data(now);
    }

    /// The reader's first concrete offset after following from `now`: a wake event may lie
    /// before it (see `claim_at_first_offset`), so claim once more, as for a wake event of
    /// unknown generation.
    fn after_now_read(&mut self) {
        if self.claim_at_first_offset && !self.wake_reader.offset().is_now() {
            self.claim_at_first_offset = false;
            self.on_wake_event(None);
        }
    }

    fn on_wake_event(&mut self, generation: Option<u64>) {
        if self.stopping {
            return;
        }
        if let (Some(g), Some(k)) = (generation, self.known_generation) {
            if g <= k {
                return;
            }
        }
        if let Some(w) = &self.wake {
            // Not for now, but maybe for after this wake: the server writes a wake only when
            // none is outstanding, and an unclaimed one never expires.
            if generation.is_none_or(|g| g > w.generation) {
                self.missed_wake = true;
            }
            return;
        }
        if self
            .control
            .as_ref()
            .is_some_and(|c| matches!(c.kind, ControlKind::Claim))
        {
            let g = generation.unwrap_or(u64::MAX);
            self.claim_again = Some(self.claim_again.map_or(g, |a| a.max(g)));
            return;
        }
        self.want_claim = true;
        // A wake event ends a wait after a failed claim at once.
        if self.control.is_none() {
            self.control_wait = None;
        }
    }

    fn pump_data(&mut self, now: Instant) {
        loop {
            let Some(w) = &mut self.wake else { return };
            let generation = w.generation;
            if let Some(r) = &mut w.reading {
                let seq = r.seq;
                let mut cancels = Vec::new();
                while let Some(inner) = r.reader.poll_cancel() {
                    cancels.push(inner);
                }
                let mut finished = false;
                let mut out = Vec::new();
                while let Some(ev) = r.reader.poll_event() {
                    match ev {
                        ReaderEvent::Data(chunk) => {
                            let past_tail = !r.tail.is_sentinel() && chunk.next_offset >= r.tail;
                            let last = chunk.up_to_date || chunk.closed || past_tail;
                            if !chunk.data.is_empty() || last {
                                out.push(WorkerEvent::Batch(Batch {
                                    generation,
                                    stream: r.path.clone(),
                                    data: chunk.data,
                                    json: chunk.json,
                                    next_offset: chunk.next_offset,
                                    last,
                                }));
                            }
                            if last {
                                finished = true;
                                break;
                            }
                        }
                        ReaderEvent::Failed(error) => {
                            out.push(WorkerEvent::StreamFailed {
                                generation,
                                stream: r.path.clone(),
                                error,
                            });
                            finished = true;
                            break;
                        }
                        ReaderEvent::UpToDate { .. }
                        | ReaderEvent::Done
                        | ReaderEvent::Closed { .. } => {
                            finished = true;
                            break;
                        }
                        ReaderEvent::Retrying {
                            error,
                            attempt,
                            delay,
                        } => out.push(WorkerEvent::ReadRetrying {
                            stream: r.path.clone(),
                            error,
                            attempt,
                            delay,
                        }),
                        _ => {}
                    }
                }
                if finished {
                    r.reader.stop();
                    while let Some(inner) = r.reader.poll_cancel() {
                        cancels.push(inner);
                    }
                    w.reading = None;
                }
                self.events.extend(out);
                for inner in cancels {
                    self.cancel_route(Route::Data(seq, inner));
                }
                if !finished {
                    return;
                }
                // Responses the stopped reader still had in flight are abandoned.
                continue;
            }
            match w.to_read.pop_front() {
                Some(s) => {
                    let seed = self.rng.next_u64();
                    let path = s.path.clone();
                    let started = self.config.root.stream_url(&s.path).and_then(|url| {
                        Reader::new(
                            ReaderConfig {
                                offset: s.acked_offset.clone(),
                                mode: ReadMode::CatchUp,
                                retry: self.config.retry.clone(),
                                max_body_bytes: self.config.max_batch_bytes,
                                partial_chunks_over: None,
                                rng_seed: seed,
                                ..ReaderConfig::new(url)
                            },
                            now,
                        )
                        .map_err(|e| {
                            SubscriptionError::new(
                                SubscriptionOp::Claim,
                                &e.url,
                                SubscriptionErrorKind::Http(e.kind),
                            )
                        })
                    });
                    match started {
                        Ok(reader) => {
                            self.read_seq += 1;
                            w.reading = Some(DataRead {
                                seq: self.read_seq,
                                path,
                                tail: s.tail_offset,
                                reader,
                            })
                        }
                        Err(e) => {
                            let error = match e.kind {
                                SubscriptionErrorKind::Http(kind) => {
                                    crate::Error::new(crate::Operation::Read, &e.url, kind)
                                }
                                other => crate::Error::invalid_input(
                                    crate::Operation::Read,
                                    &e.url,
                                    crate::InputReason::Config,
                                    other.to_string(),
                                ),
                            };
                            self.events.push_back(WorkerEvent::StreamFailed {
                                generation,
                                stream: path,
                                error,
                            });
                        }
                    }
                }
                None => {
                    if !w.drained {
                        w.drained = true;
                        self.events.push_back(WorkerEvent::Drained { generation });
                    }
                    return;
                }
            }
        }
    }
}

impl Machine for Worker {
    type Event = WorkerEvent;
    fn handle_input(&mut self, input: Input, now: Instant) {
        Worker::handle_input(self, input, now)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Worker::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        Worker::poll_transmit(self, now)
    }
    fn poll_cancel(&mut self) -> Option<RequestId> {
        Worker::poll_cancel(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Worker::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<WorkerEvent> {
        Worker::poll_event(self)
    }
}
