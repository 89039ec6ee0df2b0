//! The [`Reader`] state machine (see the [module documentation](super)).

use super::{Chunk, ReadMode, ReaderConfig, ReaderEvent, SseFallback};
use crate::error::{Error, ErrorKind, Operation};
use crate::error::{Limit, ResponseReason};
use crate::headers;
use crate::io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
use crate::offset::Offset;
use crate::ops::{self, LiveMode, ReadOptions, ReadResult, RequestExtras};
use crate::retry::{Backoff, RetryPolicy};
use crate::rng::Rng;
use crate::sse::{self, ControlEvent, EventType, SseError, SseLimits, SseParser};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const OP: Operation = Operation::Read;

/// The consumer offset progression state machine (see the [module documentation](super)).
///
/// Method vocabulary (quinn-proto style): getters take `&self`; [`Reader::stop`] is the one
/// command; [`Reader::handle_input`] and [`Reader::handle_timeout`] feed it what happened and
/// never fail; the `poll_*` methods drain its outputs and must be called after every mutation.
#[derive(Debug)]
pub struct Reader {
    // Configuration.
    pub(super) url: String,
    err_url: String,
    pub(super) mode: ReadMode,
    pub(super) retry: RetryPolicy,
    pub(super) max_body_bytes: usize,
    pub(super) partial_chunks_over: Option<usize>,
    pub(super) sse_limits: SseLimits,
    pub(super) sse_preserve_leading_space: bool,
    pub(super) sse_fallback: Option<SseFallback>,
    pub(super) long_poll_deadline: Option<Duration>,
    pub(super) catch_up_deadline: Option<Duration>,
    pub(super) sse_idle_timeout: Option<Duration>,
    pub(super) json_hint: Option<bool>,

    // Where the machine is (what the next request asks for).
    pub(super) read_offset: Offset,
    pub(super) cursor: Option<String>,
    /// The latest response reached the tail.
    pub(super) up_to_date: bool,
    /// Auto mode: the catch-up phase is over (long-poll from now on).
    pub(super) caught_up: bool,
    /// Sse mode fell back to long-poll.
    pub(super) fell_back: bool,
    /// EOF was seen.
    pub(super) eof: bool,
    /// JSON mode as learned from a response `Content-Type`.
    pub(super) json_seen: Option<bool>,
    /// The status of the latest response head.
    last_status: Option<u16>,
    /// Bytes of the response at `read_offset` released in partial chunks so far (a large
    /// body whose end has not been applied yet).
    pub(super) partial_released: u64,
    /// Bytes the response in flight must drop from its body's start: what an earlier attempt
    /// at the same offset released already.
    skip: u64,

    // What the application has been handed by `poll_event`.
    pub(super) delivered_offset: Offset,
    pub(super) delivered_up_to_date: bool,
    pub(super) delivered_eof: bool,
    /// Bytes of partial chunks handed out at `delivered_offset` (for snapshots).
    pub(super) delivered_partial: u64,

    phase: Phase,
    next_id: u64,
    rng: Rng,
    backoff: Option<Backoff>,
    fast_sse_ends: u32,
    pub(super) events: VecDeque<ReaderEvent>,
    cancels: VecDeque<RequestId>,
}

#[derive(Debug)]
enum Phase {
    /// The next `poll_transmit` sends a request.
    Idle,
    /// Waiting for a retry timer: no request before `until`.
    Waiting { until: Instant },
    /// One request in flight.
    InFlight(Box<Exchange>),
    /// Terminal: nothing is sent any more.
    Finished,
}

#[derive(Debug)]
struct Exchange {
    id: RequestId,
    live: LiveMode,
    requested: Offset,
    sent_at: Instant,
    last_activity: Instant,
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// No head yet.
    AwaitingHead,
    /// A 200/204/304 to a catch-up or long-poll read: the body is buffered until its end.
    Buffered {
        parts: http::response::Parts,
        body: BodyBuf,
    },
    /// An error status: the start of the body is kept for the error message.
    Error {
        parts: http::response::Parts,
        prefix: Vec<u8>,
    },
    /// A 200 to a catch-up or long-poll read whose body is released in pieces
    /// (`partial_chunks_over`): the head's outcome and the latest piece, held back so that
    /// the last piece can carry the offset.
    Pieces { head: Box<ReadResult>, held: Bytes },
    /// A 200 to an SSE read.
    Sse(Box<SseStream>),
}

#[derive(Debug)]
struct SseStream {
    parser: SseParser,
    base64: bool,
    /// Keep payload spaces (`ReaderConfig::sse_preserve_leading_space`).
    preserve_space: bool,
    json: bool,
    /// Data events since the last control (decoded).
    held: Vec<Bytes>,
    held_len: usize,
    /// A control event moved the offset on this connection.
    progressed: bool,
}

/// What one response (or one SSE control event) brings.
struct Progress {
    data: Bytes,
    next_offset: Offset,
    up_to_date: bool,
    closed: bool,
    cursor: Option<String>,
    json: bool,
}

impl Reader {
    /// Ends the machine: it sends nothing more, ever (a restored reader that saw EOF).
    pub(super) fn set_finished(&mut self) {
        self.phase = Phase::Finished;
    }

    /// Checks `config` (with [`ReaderConfig::validate`]) and creates a reader positioned at
    /// `config.offset`. `now` is the creation time (nothing is sent before the first
    /// [`Reader::poll_transmit`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`], as [`ReaderConfig::validate`].
    pub fn new(config: ReaderConfig, now: Instant) -> Result<Reader, Error> {
        let _ = now;
        config.validate()?;
        let err_url = crate::url::strip_query(&config.url).to_owned();
        Ok(Reader {
            url: config.url,
            err_url,
            mode: config.mode,
            retry: config.retry,
            max_body_bytes: config.max_body_bytes,
            partial_chunks_over: config.partial_chunks_over,
            sse_limits: config.sse_limits,
            sse_preserve_leading_space: config.sse_preserve_leading_space,
            sse_fallback: config.sse_fallback,
            long_poll_deadline: config.long_poll_deadline,
            catch_up_deadline: config.catch_up_deadline,
            sse_idle_timeout: config.sse_idle_timeout,
            json_hint: config.json,
            read_offset: config.offset.clone(),
            cursor: config.cursor,
            up_to_date: false,
            caught_up: false,
            fell_back: false,
            eof: false,
            json_seen: None,
            last_status: None,
            partial_released: 0,
            skip: 0,
            delivered_offset: config.offset,
            delivered_up_to_date: false,
            delivered_eof: false,
            delivered_partial: 0,
            phase: Phase::Idle,
            next_id: 1,
            rng: Rng::new(config.rng_seed),
            backoff: None,
            fast_sse_ends: 0,
            events: VecDeque::new(),
            cancels: VecDeque::new(),
        })
    }

    // ----- getters -----

    /// The checkpoint: the offset after everything handed out by [`Reader::poll_event`] (the
    /// `next_offset` of the last [`Chunk`], or the offset of the last
    /// [`UpToDate`](ReaderEvent::UpToDate) / [`Closed`](ReaderEvent::Closed)). It starts at the
    /// configured offset (possibly a sentinel) and changes only in `poll_event`. Persist it to
    /// resume later; events still queued are not covered by it.
    pub fn offset(&self) -> &Offset {
        &self.delivered_offset
    }

    /// The latest cursor (`Stream-Cursor` / `streamCursor`) the server sent, echoed as
    /// `cursor=` on live requests; the configured one until the server sends one.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Whether the events handed out so far end at the stream's tail (the last chunk was
    /// up-to-date, or an [`UpToDate`](ReaderEvent::UpToDate) / [`Closed`](ReaderEvent::Closed)
    /// was handed out after it).
    pub fn is_up_to_date(&self) -> bool {
        self.delivered_up_to_date
    }

    /// Whether [`ReaderEvent::Closed`] (EOF) has been handed out.
    pub fn is_eof(&self) -> bool {
        self.delivered_eof
    }

    /// The HTTP status of the latest response head the reader received: `200`, `204` (a
    /// long-poll that ended without data), `304`, or an error status (a `503` that will be
    /// retried, a terminal `404`); `None` before the first. For diagnostics and reporting: it
    /// is not part of the checkpoint, and it changes as soon as a head arrives, which may be
    /// before that response's events are handed out.
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    /// The effective mode: the configured one, except [`ReadMode::LongPoll`] once
    /// [`ReadMode::Sse`] has fallen back.
    pub fn mode(&self) -> ReadMode {
        match self.mode {
            ReadMode::Sse if self.fell_back => ReadMode::LongPoll,
            m => m,
        }
    }

    /// The `live` kind of the request in flight or, when none is, of the next one.
    pub fn live_mode(&self) -> LiveMode {
        match &self.phase {
            Phase::InFlight(ex) => ex.live,
            _ => self.next_live(),
        }
    }

    /// The id of the request in flight, if any.
    pub fn in_flight(&self) -> Option<RequestId> {
        match &self.phase {
            Phase::InFlight(ex) => Some(ex.id),
            _ => None,
        }
    }

    /// Whether the reader has ended (EOF, failure, catch-up done, or [`Reader::stop`]): it will
    /// never emit a request again. Queued events may remain for [`Reader::poll_event`].
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    // ----- command -----

    /// Stops the reader: the request in flight (if any) is reported by
    /// [`Reader::poll_cancel`], queued events are dropped, and nothing is emitted any more
    /// (no request, no event, no timeout). [`Reader::offset`] stays the checkpoint of what was
    /// handed out. Idempotent.
    pub fn stop(&mut self) {
        if let Phase::InFlight(ex) = &self.phase {
            self.cancels.push_back(ex.id);
        }
        self.phase = Phase::Finished;
        self.events.clear();
    }

    // ----- handle_* -----

    /// Feeds what the driver saw of an exchange. Inputs for another id than the request in
    /// flight (old, cancelled, unknown) are ignored, as is everything after the reader ended.
    /// Never fails: protocol outcomes become events.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        let mut ex = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::InFlight(ex) if ex.id == input.id() => ex,
            other => {
                self.phase = other;
                return;
            }
        };
        ex.last_activity = now;
        match input {
            Input::Head { parts, .. } => self.on_head(ex, parts),
            Input::Body { chunk, .. } => self.on_body(ex, chunk),
            Input::End { .. } => self.on_end(ex, now),
            Input::Failed { error, .. } => self.on_failed(ex, error, now),
        }
    }

    /// Fires the timers due at `now`: the end of a retry wait (the request becomes sendable)
    /// and the SSE idle timeout (the SSE request is cancelled and the reader reconnects from
    /// the last `control` offset). Safe to call at any time, early or repeatedly.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.phase {
            Phase::Waiting { until } if now >= *until => self.phase = Phase::Idle,
            Phase::InFlight(ex) => {
                let idle_due = ex.live == LiveMode::Sse
                    && self
                        .sse_idle_timeout
                        .is_some_and(|t| now >= deadline(ex.last_activity, t));
                if !idle_due {
                    return;
                }
                let Phase::InFlight(ex) = std::mem::replace(&mut self.phase, Phase::Idle) else {
                    return;
                };
                self.cancels.push_back(ex.id);
                match ex.body {
                    // A stalled error body: classify it with what arrived.
                    Body::Error { parts, prefix } => {
                        let err = ops::error_from_response(OP, &self.url, &parts, &prefix);
                        self.retry_or_fail(err, ex.sent_at, now);
                    }
                    // Reconnect at once from the last control offset (held data is dropped).
                    // The reader ended this connection, not the server: it is no fast
                    // ending (no backoff, no step towards the long-poll fallback), and it
                    // breaks a run of them (DESIGN.md, Reader: the fallback is for servers
                    // whose SSE connections keep ending fast).
                    _ => {
                        self.fast_sse_ends = 0;
                        self.phase = Phase::Idle;
                    }
                }
            }
            _ => {}
        }
    }

    // ----- poll_* -----

    /// The next request to send, if any. `Some` only when no request is in flight, no retry
    /// wait is pending at `now`, and the reader has not ended. Its answer changes after
    /// [`Reader::handle_input`] ends or abandons the request in flight, after
    /// [`Reader::handle_timeout`] (or a later `now`) ends a retry wait, and never again after
    /// the reader ended. The transmit's deadline: `now + long_poll_deadline` for long-poll,
    /// `now + catch_up_deadline` for catch-up, none for SSE (the idle timer applies instead).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Phase::Waiting { until } = self.phase {
            if now >= until {
                self.phase = Phase::Idle;
            }
        }
        if !matches!(self.phase, Phase::Idle) {
            return None;
        }
        let live = self.next_live();
        let opts = ReadOptions {
            offset: self.read_offset.clone(),
            live,
            cursor: self.cursor.clone(),
            if_none_match: None,
        };
        let request = match ops::read_request(&self.url, &opts, &RequestExtras::default()) {
            Ok(r) => r,
            Err(e) => {
                self.fail(Error::new(OP, &self.err_url, e.kind));
                return None;
            }
        };
        let id = RequestId(self.next_id);
        self.next_id += 1;
        // What an earlier attempt at this offset released is dropped from the new body.
        self.skip = self.partial_released;
        let limit = match live {
            LiveMode::Off => self.catch_up_deadline,
            LiveMode::LongPoll => self.long_poll_deadline,
            LiveMode::Sse => None,
        };
        self.phase = Phase::InFlight(Box::new(Exchange {
            id,
            live,
            requested: self.read_offset.clone(),
            sent_at: now,
            last_activity: now,
            body: Body::AwaitingHead,
        }));
        Some(Transmit {
            id,
            request,
            deadline: limit.map(|d| deadline(now, d)),
        })
    }

    /// The next request the driver must abort (and feed nothing more about): one the reader
    /// abandoned because of a limit, an SSE idle timeout, EOF or a terminal error seen
    /// mid-body, or [`Reader::stop`]. Changes after `handle_input`, `handle_timeout` and
    /// `stop`.
    #[must_use]
    pub fn poll_cancel(&mut self) -> Option<RequestId> {
        self.cancels.pop_front()
    }

    /// When [`Reader::handle_timeout`] must be called next: the end of a retry wait, or the
    /// SSE idle deadline of the request in flight; `None` when no timer runs (including after
    /// the reader ended). Changes after every `handle_*`, `poll_transmit` and `stop`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Waiting { until } => Some(*until),
            Phase::InFlight(ex) if ex.live == LiveMode::Sse => {
                self.sse_idle_timeout.map(|t| deadline(ex.last_activity, t))
            }
            _ => None,
        }
    }

    /// The next event, in order. Handing out an event moves the checkpoint
    /// ([`Reader::offset`], [`Reader::is_up_to_date`], [`Reader::is_eof`]). New events appear
    /// after `handle_input`, `handle_timeout` and `poll_transmit` (a request that cannot be
    /// built fails the reader); `stop` drops the queued ones.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ReaderEvent> {
        let ev = self.events.pop_front()?;
        match &ev {
            ReaderEvent::Data(c) => {
                self.delivered_offset = c.next_offset.clone();
                self.delivered_up_to_date = c.up_to_date;
                self.delivered_partial = if c.partial {
                    self.delivered_partial + c.data.len() as u64
                } else {
                    0
                };
            }
            ReaderEvent::UpToDate { offset } => {
                self.delivered_offset = offset.clone();
                self.delivered_up_to_date = true;
            }
            ReaderEvent::Closed { offset } => {
                self.delivered_offset = offset.clone();
                self.delivered_up_to_date = true;
                self.delivered_eof = true;
            }
            _ => {}
        }
        Some(ev)
    }

    // ----- internals -----

    fn next_live(&self) -> LiveMode {
        match self.mode {
            ReadMode::CatchUp => LiveMode::Off,
            ReadMode::LongPoll => LiveMode::LongPoll,
            ReadMode::Sse if self.fell_back => LiveMode::LongPoll,
            ReadMode::Sse => LiveMode::Sse,
            ReadMode::Auto if self.caught_up => LiveMode::LongPoll,
            ReadMode::Auto => LiveMode::Off,
        }
    }

    fn error(&self, kind: ErrorKind) -> Error {
        Error::new(OP, &self.err_url, kind)
    }

    /// Terminal failure.
    fn fail(&mut self, error: Error) {
        self.events.push_back(ReaderEvent::Failed(error));
        self.phase = Phase::Finished;
    }

    /// Terminal failure while `ex` is still open: the driver must abort it.
    fn fail_open(&mut self, ex: &Exchange, error: Error) {
        self.cancels.push_back(ex.id);
        self.fail(error);
    }

    /// A failed attempt: wait and retry when the error is transient and the policy allows,
    /// otherwise fail for good.
    fn retry_or_fail(&mut self, error: Error, sent_at: Instant, now: Instant) {
        if !error.is_retryable() {
            self.fail(error);
            return;
        }
        let backoff = self
            .backoff
            .get_or_insert_with(|| self.retry.start(sent_at));
        match backoff.next_delay(now, &mut self.rng, error.kind.retry_after()) {
            Some(delay) => {
                let attempt = backoff.attempts().saturating_sub(1);
                self.events.push_back(ReaderEvent::Retrying {
                    error,
                    attempt,
                    delay,
                });
                self.phase = Phase::Waiting {
                    until: deadline(now, delay),
                };
            }
            None => self.fail(error),
        }
    }

    fn on_head(&mut self, mut ex: Box<Exchange>, parts: http::response::Parts) {
        if !matches!(ex.body, Body::AwaitingHead) {
            // A second head for the same exchange: ignored.
            self.phase = Phase::InFlight(ex);
            return;
        }
        let status = parts.status.as_u16();
        self.last_status = Some(status);
        ex.body = if ex.live == LiveMode::Sse && status == 200 {
            let base64 = parts
                .headers
                .get(&headers::STREAM_SSE_DATA_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("base64"));
            Body::Sse(Box::new(SseStream {
                // With `sse_preserve_leading_space`, text data keeps the space after `data:`;
                // the server's style is learned from the next control event's line. The
                // option concerns text payloads only: base64 text never starts with a space.
                parser: SseParser::new(self.sse_limits)
                    .keep_data_space(self.sse_preserve_leading_space && !base64),
                preserve_space: self.sse_preserve_leading_space && !base64,
                base64,
                json: !base64 && self.json_hint.or(self.json_seen).unwrap_or(false),
                held: Vec::new(),
                held_len: 0,
                progressed: false,
            }))
        } else if matches!(status, 200 | 204 | 304) {
            // A body that may be released in pieces reserves no more than the first piece.
            let reserve = match self.partial_chunks_over {
                Some(n) if status == 200 && !self.is_json_response(&parts) => {
                    self.max_body_bytes.min(n)
                }
                _ => self.max_body_bytes,
            };
            Body::Buffered {
                body: BodyBuf::new(&parts, reserve),
                parts,
            }
        } else {
            Body::Error {
                parts,
                prefix: Vec::new(),
            }
        };
        self.phase = Phase::InFlight(ex);
    }

    fn on_body(&mut self, mut ex: Box<Exchange>, mut chunk: Bytes) {
        if self.skip > 0 && matches!(ex.body, Body::Buffered { .. } | Body::Pieces { .. }) {
            // Released by an earlier attempt at this offset: dropped (the stream never
            // changes below its tail, so the new body starts with the same bytes).
            let drop = chunk
                .len()
                .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            self.skip -= drop as u64;
            chunk = chunk.slice(drop..);
            if chunk.is_empty() {
                self.phase = Phase::InFlight(ex);
                return;
            }
        }
        match &mut ex.body {
            Body::AwaitingHead => {}
            Body::Pieces { held, .. } => {
                if !chunk.is_empty() {
                    let piece = std::mem::replace(held, chunk);
                    self.release_partial(piece);
                }
            }
            Body::Buffered { body, parts } => {
                let over = self
                    .partial_chunks_over
                    .is_some_and(|n| body.len.saturating_add(chunk.len()) > n);
                if over && parts.status == http::StatusCode::OK {
                    match self.start_pieces(&ex.requested, parts) {
                        Ok(Some(head)) => {
                            let first = std::mem::replace(body, BodyBuf::empty()).finish();
                            ex.body = Body::Pieces { head, held: chunk };
                            if !first.is_empty() {
                                self.release_partial(first);
                            }
                            self.phase = Phase::InFlight(ex);
                            return;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            self.cancels.push_back(ex.id);
                            let sent_at = ex.sent_at;
                            self.retry_or_fail(e, sent_at, ex.last_activity);
                            return;
                        }
                    }
                }
                if body.len.saturating_add(chunk.len()) > self.max_body_bytes {
                    let err = self.error(ErrorKind::limit_exceeded(
                        Limit::ResponseBody,
                        format!(
                            "response body larger than max_body_bytes ({} bytes)",
                            self.max_body_bytes
                        ),
                    ));
                    self.fail_open(&ex, err);
                    return;
                }
                body.push(chunk);
            }
            Body::Error { prefix, .. } => {
                let room = ops::ERROR_BODY_PREFIX.saturating_sub(prefix.len());
                prefix.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Body::Sse(s) => {
                s.parser.feed_bytes(chunk);
                if !self.pull_sse(&mut ex, true) {
                    return;
                }
            }
        }
        self.phase = Phase::InFlight(ex);
    }

    fn on_end(&mut self, mut ex: Box<Exchange>, now: Instant) {
        if let Body::Sse(s) = &mut ex.body {
            // Complete events still buffered are dispatched by `finish`; an incomplete
            // trailing event is dropped, and so is data after the last control: it will be
            // read again from the control offset.
            let _ = s.parser.finish();
            if self.pull_sse(&mut ex, false) {
                let progressed = matches!(&ex.body, Body::Sse(s) if s.progressed);
                let unproductive = self.count_sse_end(ex.sent_at, progressed, now);
                if unproductive && self.sse_fallback.is_none() {
                    // Without a fallback, a server that keeps ending SSE at once must not
                    // make the reader spin: back off as after a transport failure.
                    let err = self.error(ErrorKind::Transport(TransportError::new(
                        TransportErrorKind::ConnectionReset,
                        "the SSE response ended at once without progress",
                    )));
                    self.retry_or_fail(err, ex.sent_at, now);
                } else {
                    self.phase = Phase::Idle;
                }
            }
            return;
        }
        let Exchange {
            body,
            requested,
            sent_at,
            ..
        } = *ex;
        if self.skip > 0 && matches!(body, Body::Buffered { .. } | Body::Pieces { .. }) {
            // The body ended before the bytes already released at this offset.
            let err = self.error(ErrorKind::invalid_response(
                ResponseReason::Body,
                format!(
                    "the response at offset {:?} is {} bytes shorter than one read before",
                    requested.as_str(),
                    self.skip
                ),
            ));
            self.fail(err);
            return;
        }
        match body {
            Body::AwaitingHead => {
                let err = self.error(ErrorKind::Transport(TransportError::new(
                    TransportErrorKind::Protocol,
                    "the exchange ended without a response head",
                )));
                self.retry_or_fail(err, sent_at, now);
            }
            Body::Error { parts, prefix } => {
                let err = ops::error_from_response(OP, &self.url, &parts, &prefix);
                self.retry_or_fail(err, sent_at, now);
            }
            Body::Buffered { parts, body } => {
                let body = body.finish();
                match ops::read_response(&self.url, &requested, &parts, body) {
                    Ok(result) => self.on_read_result(result),
                    Err(e) => {
                        let e = Error::new(OP, &self.err_url, e.kind);
                        self.retry_or_fail(e, sent_at, now);
                    }
                }
            }
            Body::Pieces { mut head, held } => {
                // The last piece carries the response's offset.
                head.data = held;
                self.on_read_result(*head);
            }
            Body::Sse(_) => {}
        }
    }

    /// Whether a catch-up or long-poll response is JSON mode (its body stays whole).
    fn is_json_response(&self, parts: &http::response::Parts) -> bool {
        self.json_hint.unwrap_or_else(|| {
            headers::content_type(&parts.headers)
                .as_deref()
                .is_some_and(headers::is_json_content_type)
        })
    }

    /// A `200` body grew past `partial_chunks_over`: checks its head as its end would (status
    /// headers, the offset moving forward) so that no piece is released from a response that
    /// would be refused. `None` when the body must stay whole (JSON).
    fn start_pieces(
        &self,
        requested: &Offset,
        parts: &http::response::Parts,
    ) -> Result<Option<Box<ReadResult>>, Error> {
        if self.is_json_response(parts) {
            return Ok(None);
        }
        let head = ops::read_response(&self.url, requested, parts, Bytes::new())
            .map_err(|e| Error::new(OP, &self.err_url, e.kind))?;
        self.check_forward(&head.next_offset)?;
        Ok(Some(Box::new(head)))
    }

    /// Hands out a piece of a large body before its end (see `partial_chunks_over`).
    fn release_partial(&mut self, data: Bytes) {
        self.partial_released += data.len() as u64;
        self.up_to_date = false;
        self.events.push_back(ReaderEvent::Data(Chunk {
            data,
            next_offset: self.read_offset.clone(),
            partial: true,
            up_to_date: false,
            closed: false,
            cursor: self.cursor.clone(),
            json: false,
        }));
    }

    fn on_failed(&mut self, ex: Box<Exchange>, error: TransportError, now: Instant) {
        let sent_at = ex.sent_at;
        match ex.body {
            Body::Error { parts, prefix } => {
                let err = ops::error_from_response(OP, &self.url, &parts, &prefix);
                self.retry_or_fail(err, sent_at, now);
                return;
            }
            Body::Sse(s) => {
                let _ = self.count_sse_end(sent_at, s.progressed, now);
            }
            Body::AwaitingHead | Body::Buffered { .. } | Body::Pieces { .. } => {}
        }
        if error.kind == TransportErrorKind::TooLarge {
            let err = self.error(ErrorKind::limit_exceeded(
                Limit::ResponseBody,
                error.to_string(),
            ));
            self.fail(err);
            return;
        }
        let err = self.error(ErrorKind::Transport(error));
        self.retry_or_fail(err, sent_at, now);
    }

    /// A complete catch-up or long-poll response.
    fn on_read_result(&mut self, r: ReadResult) {
        if r.content_type.is_some() && !r.not_modified && !r.timed_out {
            self.json_seen = Some(r.is_json());
        }
        let json = self.json_hint.or(self.json_seen).unwrap_or(false);
        self.backoff = None;
        let progress = Progress {
            data: r.data,
            next_offset: r.next_offset,
            up_to_date: r.up_to_date,
            closed: r.closed,
            cursor: r.cursor,
            json,
        };
        match self.apply(progress) {
            Err(e) => self.fail(e),
            Ok(true) => {}
            Ok(false) => self.phase = Phase::Idle,
        }
    }

    /// Pulls SSE events from `ex`'s parser and applies them. `open`: the exchange is still
    /// open (so a terminal outcome must cancel it). Returns whether the reader goes on.
    fn pull_sse(&mut self, ex: &mut Exchange, open: bool) -> bool {
        let id = ex.id;
        let Body::Sse(s) = &mut ex.body else {
            return true;
        };
        while let Some(next) = s.parser.next_event() {
            let event = match next {
                Ok(event) => event,
                Err(e) => {
                    let kind = match e {
                        SseError::LineTooLong { .. } | SseError::EventTooLarge { .. } => {
                            ErrorKind::limit_exceeded(
                                if matches!(e, SseError::LineTooLong { .. }) {
                                    Limit::SseLine
                                } else {
                                    Limit::SseEvent
                                },
                                e.to_string(),
                            )
                        }
                        _ => ErrorKind::invalid_response(ResponseReason::Body, e.to_string()),
                    };
                    return self.sse_terminal(id, open, self.error(kind));
                }
            };
            match event.event {
                EventType::Data => {
                    let payload = if s.base64 {
                        match sse::decode_base64_data(&event.data) {
                            Ok(p) => p,
                            Err(e) => {
                                let err = self.error(ErrorKind::invalid_response(
                                    ResponseReason::Body,
                                    e.to_string(),
                                ));
                                return self.sse_terminal(id, open, err);
                            }
                        }
                    } else {
                        event.data
                    };
                    s.held_len = s.held_len.saturating_add(payload.len());
                    if s.held_len > self.max_body_bytes {
                        let err = self.error(ErrorKind::limit_exceeded(Limit::ResponseBody, format!(
                            "SSE data held before its control event exceeds max_body_bytes ({} bytes)",
                            self.max_body_bytes
                        )));
                        return self.sse_terminal(id, open, err);
                    }
                    if !payload.is_empty() {
                        s.held.push(payload);
                    }
                }
                EventType::Control => {
                    let control = match ControlEvent::parse(&event.data) {
                        Ok(c) => c,
                        Err(e) => {
                            let err = self.error(ErrorKind::invalid_response(
                                ResponseReason::Body,
                                e.to_string(),
                            ));
                            return self.sse_terminal(id, open, err);
                        }
                    };
                    let next_offset = match Offset::parse(control.stream_next_offset.as_str()) {
                        Ok(o) => o,
                        Err(e) => {
                            let err = self.error(ErrorKind::invalid_response(
                                ResponseReason::MalformedHeader,
                                format!(
                                    "SSE control streamNextOffset {:?}: {e}",
                                    control.stream_next_offset
                                ),
                            ));
                            return self.sse_terminal(id, open, err);
                        }
                    };
                    let mut held = std::mem::take(&mut s.held);
                    let mut held_len = std::mem::replace(&mut s.held_len, 0);
                    if s.preserve_space && !s.json && event.data.first() == Some(&b' ') {
                        // This server writes `data: <payload>`: drop that one space per line.
                        held = held.iter().map(strip_line_spaces).collect();
                        held_len = held.iter().map(Bytes::len).sum();
                    }
                    let data = if s.json {
                        merge_json(&held)
                    } else {
                        concat(held, held_len)
                    };
                    if next_offset != self.read_offset {
                        s.progressed = true;
                    }
                    self.backoff = None;
                    let progress = Progress {
                        data,
                        next_offset,
                        up_to_date: control.up_to_date || control.stream_closed,
                        closed: control.stream_closed,
                        cursor: control.stream_cursor.filter(|c| !c.is_empty()),
                        json: s.json,
                    };
                    match self.apply(progress) {
                        Err(e) => return self.sse_terminal(id, open, e),
                        Ok(true) => {
                            if open {
                                self.cancels.push_back(id);
                            }
                            return false;
                        }
                        Ok(false) => {}
                    }
                }
                EventType::Message | EventType::Other(_) => {}
            }
        }
        true
    }

    fn sse_terminal(&mut self, id: RequestId, open: bool, error: Error) -> bool {
        if open {
            self.cancels.push_back(id);
        }
        self.fail(error);
        false
    }

    /// Counts an SSE connection that ended (or broke after its head) towards the fallback,
    /// and falls back when the count is reached. Returns whether the connection was fast and
    /// unproductive (ended within the window without a control event that moved the offset;
    /// the window is 1 s when the fallback is disabled).
    fn count_sse_end(&mut self, sent_at: Instant, progressed: bool, now: Instant) -> bool {
        let window = self
            .sse_fallback
            .map_or(SseFallback::default().window, |f| f.window);
        let unproductive = !progressed && now.saturating_duration_since(sent_at) < window;
        let Some(f) = self.sse_fallback else {
            return unproductive;
        };
        if self.fell_back || self.mode != ReadMode::Sse {
            return unproductive;
        }
        if unproductive {
            self.fast_sse_ends += 1;
        } else {
            self.fast_sse_ends = 0;
        }
        if self.fast_sse_ends >= f.connections {
            self.fell_back = true;
            self.fast_sse_ends = 0;
            self.events.push_back(ReaderEvent::FellBackToLongPoll);
        }
        unproductive
    }

    /// Refuses a `Stream-Next-Offset` (or control offset) that goes back from the position.
    fn check_forward(&self, next: &Offset) -> Result<(), Error> {
        let current = &self.read_offset;
        if next.is_now()
            || (next.is_beginning() && !current.is_beginning())
            || (!current.is_sentinel() && *next < *current)
        {
            return Err(self.error(ErrorKind::invalid_response(
                ResponseReason::Offset,
                format!(
                    "Stream-Next-Offset {:?} goes back from {:?}",
                    next.as_str(),
                    current.as_str()
                ),
            )));
        }
        Ok(())
    }

    /// Applies one response's (or control event's) progress: checks the offset, updates the
    /// position and cursor, emits the events. Returns whether the reader ended (EOF or
    /// catch-up done); the caller sets the phase otherwise.
    fn apply(&mut self, p: Progress) -> Result<bool, Error> {
        self.check_forward(&p.next_offset)?;
        // Data that leaves the reader at the beginning would be read, and delivered, again
        // and again (PROTOCOL.md 8: `-1` is never a server offset). A body released in
        // pieces always ends with data too: its last piece is held back for the end.
        let empty = p.data.is_empty() || (p.json && crate::json::is_empty_array(&p.data));
        if !empty && p.next_offset.is_beginning() {
            return Err(self.error(ErrorKind::invalid_response(
                ResponseReason::Offset,
                "data with Stream-Next-Offset -1 would be read again from the beginning",
            )));
        }
        // The response (or control) ends here: nothing of it is pending any more. After
        // partial pieces, its end is always reported (it carries the offset).
        let partial_before = std::mem::take(&mut self.partial_released) > 0;
        let current = &self.read_offset;
        let from_sentinel = current.is_sentinel();
        let moved = p.next_offset != *current;
        if let Some(c) = p.cursor {
            self.cursor = Some(c);
        }
        let emit_data = !empty || (moved && !from_sentinel);
        let emit_data = emit_data || partial_before;
        let was_up_to_date = self.up_to_date;
        self.up_to_date = p.up_to_date || p.closed;
        self.read_offset = p.next_offset;
        if emit_data {
            self.events.push_back(ReaderEvent::Data(Chunk {
                data: if empty { Bytes::new() } else { p.data },
                next_offset: self.read_offset.clone(),
                partial: false,
                up_to_date: self.up_to_date,
                closed: p.closed,
                cursor: self.cursor.clone(),
                json: p.json,
            }));
        }
        if p.closed {
            self.eof = true;
            self.events.push_back(ReaderEvent::Closed {
                offset: self.read_offset.clone(),
            });
            self.phase = Phase::Finished;
            return Ok(true);
        }
        if self.up_to_date {
            if !was_up_to_date || emit_data || moved {
                self.events.push_back(ReaderEvent::UpToDate {
                    offset: self.read_offset.clone(),
                });
            }
            self.caught_up = true;
            if self.mode == ReadMode::CatchUp {
                self.events.push_back(ReaderEvent::Done);
                self.phase = Phase::Finished;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// `at + d`, saturating far in the future instead of panicking.
fn deadline(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365))
}

/// A response body being received. A body that arrives in one piece is kept as it is; a body
/// in several pieces is copied, as each piece arrives, into one buffer sized from
/// `Content-Length` (when given, and within the limit). Each piece is released at once, so
/// the transport reuses its buffers (a list of pieces joined at the end would pin every
/// transport buffer and then copy the whole body into new memory: twice the memory and the
/// page faults).
#[derive(Debug)]
struct BodyBuf {
    first: Option<Bytes>,
    rest: BytesMut,
    len: usize,
    /// The expected size (`Content-Length`, at most the limit), to reserve at the second piece.
    hint: usize,
}

impl BodyBuf {
    /// A buffer holding nothing.
    fn empty() -> BodyBuf {
        BodyBuf {
            first: None,
            rest: BytesMut::new(),
            len: 0,
            hint: 0,
        }
    }

    fn new(parts: &http::response::Parts, limit: usize) -> BodyBuf {
        let hint = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(0, |n| n.min(limit));
        BodyBuf {
            first: None,
            rest: BytesMut::new(),
            len: 0,
            hint,
        }
    }

    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        if self.len == chunk.len() {
            self.first = Some(chunk);
            return;
        }
        if let Some(first) = self.first.take() {
            self.rest.reserve(self.hint.max(self.len));
            self.rest.put_slice(&first);
        }
        self.rest.put_slice(&chunk);
    }

    fn finish(self) -> Bytes {
        match self.first {
            Some(only) => only,
            None => self.rest.freeze(),
        }
    }
}

/// Joins body pieces, without copying when there is one.
fn concat(chunks: Vec<Bytes>, len: usize) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(len);
            for c in &chunks {
                out.put_slice(c);
            }
            out.freeze()
        }
    }
}

/// Merges the JSON arrays of several SSE data events into one array: each event's outer
/// brackets are removed and the contents joined with commas (an event that is not an array
/// counts as one message). One event that is already an array is handed out unchanged.
fn merge_json(parts: &[Bytes]) -> Bytes {
    let is_array = |t: &[u8]| t.len() >= 2 && t[0] == b'[' && t[t.len() - 1] == b']';
    if let [one] = parts {
        if is_array(one.trim_ascii()) {
            return one.clone();
        }
    }
    let total: usize = parts.iter().map(Bytes::len).sum();
    let mut out = BytesMut::with_capacity(total + 2);
    out.put_u8(b'[');
    let mut first = true;
    for p in parts {
        let t = p.trim_ascii();
        let inner = if is_array(t) {
            t[1..t.len() - 1].trim_ascii()
        } else {
            t
        };
        if inner.is_empty() {
            continue;
        }
        if !first {
            out.put_u8(b',');
        }
        first = false;
        out.put_slice(inner);
    }
    out.put_u8(b']');
    out.freeze()
}

/// Removes one leading space from each `\n`-separated line of an SSE data value (the space a
/// `data: ` line carried after its colon).
fn strip_line_spaces(data: &Bytes) -> Bytes {
    if !data
        .split(|b| *b == b'\n')
        .any(|line| line.first() == Some(&b' '))
    {
        return data.clone();
    }
    let mut out = Vec::with_capacity(data.len());
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(line.strip_prefix(b" ").unwrap_or(line));
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests;
