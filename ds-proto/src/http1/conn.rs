//! The state of one HTTP/1.1 client connection: requests out, response inputs in.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use super::encode::{encode_request, encode_request_head, parse_decimal, trim_ows};
use super::{Http1Error, Limits};
use crate::io::{Input, RequestId, Transmit};

/// One keep-alive HTTP/1.1 client connection, sans IO.
///
/// ```text
///            send                head parsed              body ended
///   Idle ──────────► Head ──────────────────► Body ──────────────────► Idle
///    ▲                │ 1xx: skipped, stays     │                         │ (or Closed if
///    │                ▼                         ▼                         │  must_close)
///    │              Closed ◄──── decoding error / EOF mid-response ───────┘
///    └──────────────────────────────────────────────────────────────────────
/// ```
///
/// Pipelined, requests sent while one is in progress wait in a queue; when the one in progress
/// ends, the next one's response is read from the bytes that follow (Body → Head instead of
/// Body → Idle). When the connection ends with requests queued, each gets its `Failed` in turn
/// after the one in progress.
///
/// Methods, in the vocabulary of the crate's state machines:
///
/// - getters: [`must_close`](Self::must_close), [`is_idle`](Self::is_idle),
///   [`current`](Self::current), [`error`](Self::error), [`limits`](Self::limits),
///   [`buffered_len`](Self::buffered_len); for pipelining [`can_send`](Self::can_send),
///   [`in_flight`](Self::in_flight), [`outstanding`](Self::outstanding),
///   [`pipeline_depth`](Self::pipeline_depth),
///   [`pipelining_refused`](Self::pipelining_refused);
/// - commands: [`send`](Self::send) (start an exchange, or queue one behind those outstanding
///   on a [pipelined](Self::pipelined) connection);
/// - inputs from the socket: [`feed`](Self::feed) (bytes read), [`on_eof`](Self::on_eof)
///   (the read side reached EOF) and, optionally, [`on_written`](Self::on_written) (bytes
///   written);
/// - output: [`poll_input`](Self::poll_input), to drain after every `feed` and `on_eof`.
///
/// See the [module documentation](super) for the rules.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    /// Bytes fed and not yet consumed by `poll_input`.
    buf: BytesMut,
    state: State,
    must_close: bool,
    /// The request in progress asked for `Connection: close`.
    close_requested: bool,
    eof: bool,
    error: Option<Http1Error>,
    /// How many requests may be outstanding at once (1: no pipelining).
    depth: usize,
    /// The request in progress (`state` is `Head` or `Body`).
    current: Option<Sent>,
    /// Requests sent after the one in progress, oldest first: their responses come next.
    queue: VecDeque<Sent>,
    /// Failures of queued requests to hand out after the one in progress ended (when the
    /// connection ended with requests outstanding).
    failures: VecDeque<(RequestId, Http1Error)>,
    /// A request asking for `Connection: close` was sent: nothing may follow it.
    close_sent: bool,
    /// The response in progress (or the last one) announced `Connection: close` explicitly.
    close_announced: bool,
    /// The connection ends after the response in progress, by the terms of that response or
    /// its request (close announced or asked for, HTTP/1.0, body until close, suspect framing).
    response_close: bool,
    /// Responses that ended cleanly on a connection kept alive.
    kept_alive: u64,
    /// The server closed the connection with pipelined requests outstanding after answering
    /// earlier ones with keep-alive.
    pipelining_refused: bool,
    /// Bytes encoded by `send` so far.
    encoded: u64,
    /// Bytes the embedder reported written (`None`: never reported, everything counts as
    /// written).
    written: Option<u64>,
    /// Bytes that arrived for the response in progress (0: none).
    response_bytes: u64,
}

/// A request sent on the connection and not yet answered.
#[derive(Debug, Clone, Copy)]
struct Sent {
    id: RequestId,
    head_request: bool,
    close_requested: bool,
    /// `encoded` after this request's last byte.
    wire_end: u64,
    /// Sent while another request was outstanding.
    pipelined: bool,
}

#[derive(Debug)]
enum State {
    /// No exchange in progress; the connection can carry a request.
    Idle,
    /// Waiting for (the rest of) a response head.
    Head {
        id: RequestId,
        head_request: bool,
        scan: HeadScan,
    },
    /// The head was handed out; reading the body.
    Body { id: RequestId, body: Body },
    /// The connection cannot carry another request.
    Closed,
}

/// Progress of the search for the end of a response head in `buf`.
#[derive(Debug, Default)]
struct HeadScan {
    /// Leading empty lines were skipped and the head has started.
    started: bool,
    /// `buf[..scan_pos]` was searched for line ends.
    scan_pos: usize,
    /// Start of the line being searched.
    line_start: usize,
    /// The status line was complete and checked.
    status_checked: bool,
}

#[derive(Debug)]
enum Body {
    /// No body (or no body left): `End` comes next.
    Empty,
    /// `Content-Length`: this many bytes left.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// No framing: the body runs until EOF.
    UntilClose,
}

#[derive(Debug)]
enum Chunked {
    /// Reading a chunk-size line; `buf[..scan_pos]` holds no line end.
    Size { scan_pos: usize },
    /// Reading chunk data: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines; `buf[..scan_pos]` holds no line end; `total` bytes of trailers
    /// were consumed already.
    Trailers { scan_pos: usize, total: usize },
}

/// What one step of decoding produced.
enum Step {
    /// An input to hand out.
    Emit(Input),
    /// State changed; step again.
    Continue,
    /// Nothing to do until more bytes (or EOF) arrive.
    NeedMore,
    /// The exchange failed.
    Fail(Http1Error),
}

const DURING_HEAD: &str = "before the end of the response head";
const NOT_WRITTEN: &str = "the connection closed before the request was fully written";
const CLOSE_ANNOUNCED: &str = "an earlier response on the connection announced `Connection: close`";
const DURING_BODY: &str = "before the end of the response body";

impl Connection {
    /// A new, idle connection (the socket is assumed connected: connecting, TLS and proxies
    /// are the embedder's business).
    pub fn new(limits: Limits) -> Self {
        Connection {
            limits,
            buf: BytesMut::new(),
            state: State::Idle,
            must_close: false,
            close_requested: false,
            eof: false,
            error: None,
            depth: 1,
            current: None,
            queue: VecDeque::new(),
            failures: VecDeque::new(),
            close_sent: false,
            close_announced: false,
            response_close: false,
            kept_alive: 0,
            pipelining_refused: false,
            encoded: 0,
            written: None,
            response_bytes: 0,
        }
    }

    /// A new, idle connection that may carry up to `depth` requests at once, sent before their
    /// responses arrive (HTTP/1.1 pipelining, RFC 9112 section 9.3.2); `depth` is clamped to
    /// `1..=`[`MAX_PIPELINE_DEPTH`](Self::MAX_PIPELINE_DEPTH). Depth 1 is
    /// [`Connection::new`]. See the module documentation's rules on pipelining.
    pub fn pipelined(limits: Limits, depth: usize) -> Self {
        let mut conn = Connection::new(limits);
        conn.depth = depth.clamp(1, Self::MAX_PIPELINE_DEPTH);
        conn
    }

    /// The largest pipeline depth [`Connection::pipelined`] accepts: 64.
    pub const MAX_PIPELINE_DEPTH: usize = 64;

    /// How many requests may be outstanding at once (1 unless made with
    /// [`Connection::pipelined`]).
    #[must_use]
    pub fn pipeline_depth(&self) -> usize {
        self.depth
    }

    /// Requests sent whose `End` or `Failed` was not polled yet.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        usize::from(self.current.is_some()) + self.queue.len() + self.failures.len()
    }

    /// Whether [`send`](Self::send) would accept a request now: fewer than
    /// [`pipeline_depth`](Self::pipeline_depth) requests are outstanding, the connection need
    /// not be closed, and no request sent asked for `Connection: close`. With depth 1 this is
    /// [`is_idle`](Self::is_idle).
    #[must_use]
    pub fn can_send(&self) -> bool {
        !self.must_close
            && !self.close_sent
            && !matches!(self.state, State::Closed)
            && self.in_flight() < self.depth
    }

    /// Whether the server seems not to support pipelining: it closed the connection (EOF)
    /// while pipelined requests were outstanding, after answering earlier requests on it with
    /// keep-alive and without announcing the close. The caller should send one request at a
    /// time from then on (to this server). Never turns false again.
    ///
    /// A network failure at the wrong moment looks the same: treat it as a hint to fall back,
    /// not as proof.
    #[must_use]
    pub fn pipelining_refused(&self) -> bool {
        self.pipelining_refused
    }

    /// Reports that `n` more bytes of what [`send`](Self::send) appended reached the socket
    /// (call it after every write, with what the write took). Optional: if it is never called,
    /// every request sent counts as fully written. When the connection ends, a request not
    /// fully written cannot have been processed by the server, and fails as
    /// [`Http1Error::NotProcessed`] (safe to re-send) instead of an unknown outcome.
    pub fn on_written(&mut self, n: usize) {
        let w = self.written.get_or_insert(0);
        *w = w.saturating_add(n as u64).min(self.encoded);
    }

    /// Whether every byte of a request ending at `wire_end` was reported written.
    fn fully_written(&self, wire_end: u64) -> bool {
        self.written.is_none_or(|w| w >= wire_end)
    }

    /// The limits this connection enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the connection must be closed once the current exchange (if any) has ended,
    /// instead of carrying another request: the response said `Connection: close`, was
    /// `HTTP/1.0` without keep-alive, or had a body running until close; the request asked for
    /// `Connection: close`; a decoding error happened; unsolicited bytes arrived; or the socket
    /// reached EOF.
    ///
    /// Changes when a response head is polled, on errors, on unsolicited bytes and on
    /// [`on_eof`](Self::on_eof). Never turns false again.
    #[must_use]
    pub fn must_close(&self) -> bool {
        self.must_close
    }

    /// Whether [`send`](Self::send) would accept a request now: no exchange is in progress and
    /// the connection need not be closed.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle) && !self.must_close
    }

    /// The exchange in progress, from [`send`](Self::send) until its `End` or `Failed` was
    /// polled.
    #[must_use]
    pub fn current(&self) -> Option<RequestId> {
        match &self.state {
            State::Head { id, .. } | State::Body { id, .. } => Some(*id),
            State::Idle | State::Closed => None,
        }
    }

    /// The requests outstanding, oldest first: the one in progress, then those pipelined
    /// behind it (then those whose failure is still to be polled).
    pub fn outstanding(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.current
            .iter()
            .chain(self.queue.iter())
            .map(|s| s.id)
            .chain(self.failures.iter().map(|(id, _)| *id))
    }

    /// The typed error behind the last `Input::Failed` this connection handed out, if any.
    #[must_use]
    pub fn error(&self) -> Option<&Http1Error> {
        self.error.as_ref()
    }

    /// Bytes fed and not yet consumed by [`poll_input`](Self::poll_input).
    #[must_use]
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Starts an exchange: appends the encoding of `transmit.request` to `out` (see
    /// [`encode_request`]) and remembers its id and method. Write `out` to the socket, then
    /// feed the response.
    ///
    /// Fails without changing anything ( `out` included) with
    /// [`Http1Error::ExchangeInProgress`] while an exchange is in progress,
    /// [`Http1Error::ConnectionClosed`] once [`must_close`](Self::must_close) is true and the
    /// exchange has ended, or an encoding error.
    ///
    /// On a [pipelined](Self::pipelined) connection a request may be sent while others are
    /// outstanding, up to the depth ([`can_send`](Self::can_send)): it fails with
    /// [`Http1Error::PipelineFull`] when the depth is reached, and with
    /// [`Http1Error::ConnectionClosed`] after a request asking for `Connection: close` was
    /// sent, once [`must_close`](Self::must_close) is true, or once the connection failed.
    pub fn send(&mut self, transmit: &Transmit, out: &mut Vec<u8>) -> Result<(), Http1Error> {
        self.begin(transmit, out, true)
    }

    /// [`send`](Self::send), except that only the request's head is appended to `out`
    /// ([`encode_request_head`](super::encode_request_head)): write `out`, then
    /// `transmit.request.body()`, before the next request's bytes. For large bodies, which
    /// then reach the socket without a copy.
    pub fn send_head(&mut self, transmit: &Transmit, out: &mut Vec<u8>) -> Result<(), Http1Error> {
        self.begin(transmit, out, false)
    }

    /// Checks that a request may start, encodes it (with its body or not) and remembers it.
    fn begin(
        &mut self,
        transmit: &Transmit,
        out: &mut Vec<u8>,
        with_body: bool,
    ) -> Result<(), Http1Error> {
        match self.state {
            State::Head { .. } | State::Body { .. } if self.depth == 1 => {
                return Err(Http1Error::ExchangeInProgress)
            }
            State::Closed => return Err(Http1Error::ConnectionClosed),
            _ if self.must_close || self.close_sent => return Err(Http1Error::ConnectionClosed),
            State::Head { .. } | State::Body { .. } if self.in_flight() >= self.depth => {
                return Err(Http1Error::PipelineFull { depth: self.depth })
            }
            State::Idle | State::Head { .. } | State::Body { .. } => {}
        }
        let request = &transmit.request;
        let before = out.len();
        if with_body {
            encode_request(request, out)?;
        } else {
            encode_request_head(request, out)?;
        }
        let body = if with_body { 0 } else { request.body().len() };
        self.encoded += (out.len() - before + body) as u64;
        let sent = Sent {
            id: transmit.id,
            head_request: request.method() == Method::HEAD,
            close_requested: has_token(request.headers(), "close"),
            wire_end: self.encoded,
            pipelined: self.current.is_some(),
        };
        self.close_sent |= sent.close_requested;
        if self.current.is_some() {
            self.queue.push_back(sent);
        } else {
            self.start(sent);
        }
        Ok(())
    }

    /// Makes `sent` the exchange in progress.
    fn start(&mut self, sent: Sent) {
        self.close_requested = sent.close_requested;
        self.close_announced = false;
        self.response_close = false;
        // Bytes left after the previous response are this one's.
        self.response_bytes = self.buf.len() as u64;
        self.state = State::Head {
            id: sent.id,
            head_request: sent.head_request,
            scan: HeadScan::default(),
        };
        self.current = Some(sent);
    }

    /// Takes bytes read from the socket, in any pieces. Decoding happens in
    /// [`poll_input`](Self::poll_input), to call after every `feed`.
    ///
    /// Bytes fed while no exchange is in progress are unsolicited: they are dropped and the
    /// connection must be closed. Bytes fed after [`on_eof`](Self::on_eof) or after the
    /// connection was closed are ignored.
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.eof {
            return;
        }
        match self.state {
            State::Closed => {}
            State::Idle => {
                self.must_close = true;
                self.state = State::Closed;
            }
            State::Head { .. } | State::Body { .. } => {
                self.response_bytes += bytes.len() as u64;
                self.buf.extend_from_slice(bytes);
            }
        }
    }

    /// The read side of the socket reached EOF. A body running until close ends cleanly; a
    /// response cut short fails with
    /// [`ConnectionReset`](crate::io::TransportErrorKind::ConnectionReset) (both when polled).
    /// The connection must be closed afterwards.
    pub fn on_eof(&mut self) {
        self.eof = true;
        self.must_close = true;
        if matches!(self.state, State::Idle) {
            self.state = State::Closed;
        }
    }

    /// The next input for the state machine, or `None` until more bytes are fed (or EOF).
    ///
    /// Yields `Head` once per exchange (interim `1xx` responses are skipped), then `Body`
    /// chunks as the body arrives (never empty ones), then `End`; or `Failed` at any point,
    /// after which the exchange yields nothing more. Changes after [`feed`](Self::feed),
    /// [`on_eof`](Self::on_eof) and [`send`](Self::send).
    #[must_use]
    pub fn poll_input(&mut self) -> Option<Input> {
        if matches!(self.state, State::Closed) {
            if let Some((id, error)) = self.failures.pop_front() {
                self.error = Some(error.clone());
                return Some(Input::Failed {
                    id,
                    error: error.into(),
                });
            }
        }
        loop {
            let step = match self.state {
                State::Idle | State::Closed => return None,
                State::Head { .. } => self.step_head(),
                State::Body { .. } => self.step_body(),
            };
            match step {
                Step::Emit(input) => return Some(input),
                Step::Continue => {}
                Step::NeedMore => return None,
                Step::Fail(error) => return Some(self.fail(error)),
            }
        }
    }

    /// `NeedMore`, or the premature-EOF failure if no more bytes will come.
    fn need_more(&self, during: &'static str) -> Step {
        if self.eof {
            Step::Fail(Http1Error::UnexpectedEof { during })
        } else {
            Step::NeedMore
        }
    }

    fn fail(&mut self, mut error: Http1Error) -> Input {
        let sent = self
            .current
            .take()
            .expect("fail() only while an exchange is in progress");
        let eof = matches!(error, Http1Error::UnexpectedEof { .. });
        if eof && self.response_bytes == 0 && !self.fully_written(sent.wire_end) {
            // The server closed before the whole request reached it and answered nothing.
            error = Http1Error::NotProcessed {
                reason: NOT_WRITTEN,
            };
        }
        if eof && self.kept_alive > 0 && (sent.pipelined || !self.queue.is_empty()) {
            self.pipelining_refused = true;
        }
        self.state = State::Closed;
        self.must_close = true;
        self.buf.clear();
        self.error = Some(error.clone());
        self.fail_queued(false);
        Input::Failed {
            id: sent.id,
            error: error.into(),
        }
    }

    /// The connection ends with requests queued behind the one in progress (which just ended
    /// or failed): each fails, in order, when polled. `announced`: the server said
    /// `Connection: close` on the last response, so it processed none of them (RFC 9112
    /// section 9.6).
    fn fail_queued(&mut self, announced: bool) {
        while let Some(sent) = self.queue.pop_front() {
            let error = if announced {
                Http1Error::NotProcessed {
                    reason: CLOSE_ANNOUNCED,
                }
            } else if !self.fully_written(sent.wire_end) {
                Http1Error::NotProcessed {
                    reason: NOT_WRITTEN,
                }
            } else {
                Http1Error::PipelineAborted
            };
            self.failures.push_back((sent.id, error));
        }
    }

    /// Ends the exchange in progress cleanly.
    fn end(&mut self, id: RequestId) -> Step {
        self.current = None;
        // Whether the connection ends after this response by its own terms (an EOF that
        // arrived with it does not count: the outcome must not depend on whether inputs were
        // polled before `on_eof`).
        let closes_after = self.response_close || (self.must_close && !self.eof);
        if closes_after {
            // The rest of the buffer (if any) is not for the queued requests: the server
            // closes after this response.
            self.buf.clear();
            self.state = State::Closed;
            let announced = self.close_announced;
            self.fail_queued(announced);
            return Step::Emit(Input::End { id });
        }
        self.kept_alive += 1;
        if let Some(next) = self.queue.pop_front() {
            // Bytes after this response are the next response's (after EOF, the next one
            // fails when polled).
            self.start(next);
        } else {
            if !self.buf.is_empty() {
                // More than the responses asked for: unsolicited bytes.
                self.must_close = true;
                self.buf.clear();
            }
            self.state = if self.must_close {
                State::Closed
            } else {
                State::Idle
            };
        }
        Step::Emit(Input::End { id })
    }

    fn step_head(&mut self) -> Step {
        let State::Head {
            id,
            head_request,
            scan,
        } = &mut self.state
        else {
            unreachable!("step_head() in state Head")
        };
        let (id, head_request) = (*id, *head_request);
        let buf = &mut self.buf;
        let max = self.limits.max_header_bytes;

        // Empty lines before the status line are skipped (as httparse does).
        if !scan.started {
            loop {
                match &buf[..] {
                    [b'\n', ..] => buf.advance(1),
                    [b'\r', b'\n', ..] => buf.advance(2),
                    [] | [b'\r'] => return self.need_more(DURING_HEAD),
                    _ => break,
                }
            }
            scan.started = true;
        }

        // Search for the blank line that ends the head, from where the last search stopped.
        let mut head_end = None;
        while let Some(offset) = memchr::memchr(b'\n', &buf[scan.scan_pos..]) {
            let nl = scan.scan_pos + offset;
            scan.scan_pos = nl + 1;
            if nl + 1 > max {
                return Step::Fail(Http1Error::HeadTooLarge { max });
            }
            let line = &buf[scan.line_start..nl];
            if line.is_empty() || line == b"\r" {
                head_end = Some(nl + 1);
                break;
            }
            if !scan.status_checked {
                scan.status_checked = true;
                let mut no_headers = [];
                if let Err(e) = httparse::Response::new(&mut no_headers).parse(&buf[..=nl]) {
                    return Step::Fail(Http1Error::MalformedHead {
                        reason: e.to_string(),
                    });
                }
            }
            scan.line_start = nl + 1;
        }
        let Some(head_end) = head_end else {
            if buf.len() > max {
                return Step::Fail(Http1Error::HeadTooLarge { max });
            }
            return self.need_more(DURING_HEAD);
        };

        let parts = match parse_head(&buf[..head_end], self.limits.max_headers) {
            Ok(parts) => parts,
            Err(e) => return Step::Fail(e),
        };
        buf.advance(head_end);
        let code = parts.status.as_u16();
        if code == 101 {
            return Step::Fail(Http1Error::UnexpectedUpgrade);
        }
        if parts.status.is_informational() {
            *scan = HeadScan::default();
            return Step::Continue;
        }

        self.close_announced = has_token(&parts.headers, "close");
        let mut close = self.close_requested
            || self.close_announced
            || (parts.version == Version::HTTP_10 && !has_token(&parts.headers, "keep-alive"));
        let body = if head_request || code == 204 || code == 304 {
            Body::Empty
        } else if parts.headers.contains_key(header::TRANSFER_ENCODING) {
            let codings = tokens(&parts.headers, header::TRANSFER_ENCODING);
            let chunked = |t: &[u8]| t.eq_ignore_ascii_case(b"chunked");
            if codings.iter().filter(|t| chunked(t)).count() > 1 || codings.is_empty() {
                return Step::Fail(Http1Error::InvalidTransferEncoding);
            }
            // With Content-Length too, the framing is suspect: no reuse (RFC 9112 6.3).
            close |= parts.headers.contains_key(header::CONTENT_LENGTH)
                || parts.version == Version::HTTP_10;
            if codings.last().is_some_and(|t| chunked(t)) {
                Body::Chunked(Chunked::Size { scan_pos: 0 })
            } else {
                close = true;
                Body::UntilClose
            }
        } else if parts.headers.contains_key(header::CONTENT_LENGTH) {
            match content_length(&parts.headers) {
                Some(0) => Body::Empty,
                Some(n) => Body::Length(n),
                None => return Step::Fail(Http1Error::InvalidContentLength),
            }
        } else {
            close = true;
            Body::UntilClose
        };
        self.response_close = close;
        self.must_close |= close;
        self.state = State::Body { id, body };
        Step::Emit(Input::Head { id, parts })
    }

    fn step_body(&mut self) -> Step {
        let State::Body { id, body } = &mut self.state else {
            unreachable!("step_body() in state Body")
        };
        let id = *id;
        let buf = &mut self.buf;
        match body {
            Body::Empty => self.end(id),
            Body::Length(left) => {
                if buf.is_empty() {
                    return self.need_more(DURING_BODY);
                }
                let n = usize::try_from(*left).map_or(buf.len(), |left| left.min(buf.len()));
                *left -= n as u64;
                if *left == 0 {
                    *body = Body::Empty;
                }
                let chunk = buf.split_to(n).freeze();
                Step::Emit(Input::Body { id, chunk })
            }
            Body::UntilClose => {
                if !buf.is_empty() {
                    let chunk = buf.split().freeze();
                    Step::Emit(Input::Body { id, chunk })
                } else if self.eof {
                    self.end(id)
                } else {
                    Step::NeedMore
                }
            }
            Body::Chunked(Chunked::Size { scan_pos }) => {
                let max = self.limits.max_chunk_line_bytes;
                let Some(offset) = memchr::memchr(b'\n', &buf[*scan_pos..]) else {
                    if buf.len() > max {
                        return Step::Fail(Http1Error::ChunkLineTooLong { max });
                    }
                    *scan_pos = buf.len();
                    return self.need_more(DURING_BODY);
                };
                let nl = *scan_pos + offset;
                if nl + 1 > max {
                    return Step::Fail(Http1Error::ChunkLineTooLong { max });
                }
                let size = match parse_chunk_size(&buf[..nl]) {
                    Some(size) => size,
                    None => return Step::Fail(Http1Error::InvalidChunkSize),
                };
                buf.advance(nl + 1);
                *body = Body::Chunked(if size == 0 {
                    Chunked::Trailers {
                        scan_pos: 0,
                        total: 0,
                    }
                } else {
                    Chunked::Data(size)
                });
                Step::Continue
            }
            Body::Chunked(Chunked::Data(left)) => {
                if buf.is_empty() {
                    return self.need_more(DURING_BODY);
                }
                let n = usize::try_from(*left).map_or(buf.len(), |left| left.min(buf.len()));
                *left -= n as u64;
                if *left == 0 {
                    *body = Body::Chunked(Chunked::DataEnd);
                }
                let chunk = buf.split_to(n).freeze();
                Step::Emit(Input::Body { id, chunk })
            }
            Body::Chunked(Chunked::DataEnd) => match &buf[..] {
                [b'\r', b'\n', ..] | [b'\n', ..] => {
                    buf.advance(if buf[0] == b'\r' { 2 } else { 1 });
                    *body = Body::Chunked(Chunked::Size { scan_pos: 0 });
                    Step::Continue
                }
                [] | [b'\r'] => self.need_more(DURING_BODY),
                _ => Step::Fail(Http1Error::MalformedChunk),
            },
            Body::Chunked(Chunked::Trailers { scan_pos, total }) => {
                let max = self.limits.max_header_bytes;
                let Some(offset) = memchr::memchr(b'\n', &buf[*scan_pos..]) else {
                    if *total + buf.len() > max {
                        return Step::Fail(Http1Error::TrailersTooLarge { max });
                    }
                    *scan_pos = buf.len();
                    return self.need_more(DURING_BODY);
                };
                let nl = *scan_pos + offset;
                if *total + nl + 1 > max {
                    return Step::Fail(Http1Error::TrailersTooLarge { max });
                }
                let blank = nl == 0 || (nl == 1 && buf[0] == b'\r');
                buf.advance(nl + 1);
                if blank {
                    return self.end(id);
                }
                // A trailer field: read and dropped.
                *total += nl + 1;
                *scan_pos = 0;
                Step::Continue
            }
        }
    }
}

/// Parses a complete response head (`head` ends with its blank line) into `http` parts.
fn parse_head(head: &[u8], max_headers: usize) -> Result<http::response::Parts, Http1Error> {
    let malformed = |reason: &str| Http1Error::MalformedHead {
        reason: reason.to_owned(),
    };
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(malformed("the head does not end at its blank line")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Http1Error::TooManyHeaders { max: max_headers })
        }
        Err(e) => return Err(malformed(&e.to_string())),
    }
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| malformed("invalid status code"))?;
    let mut map = HeaderMap::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| malformed("invalid header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| malformed("invalid header value"))?;
        map.append(name, value);
    }
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = map;
    Ok(parts)
}

/// The comma-separated elements of every `name` header, trimmed, empty ones dropped.
fn tokens(headers: &HeaderMap, name: HeaderName) -> Vec<&[u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(trim_ows)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether a `Connection` header lists `token` (case-insensitively).
fn has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// The response's `Content-Length`: every element of every such header must be the same
/// number (RFC 9110 section 8.6 lets a recipient accept `5, 5`).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let n = parse_decimal(element)?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

/// Parses a chunk-size line (without its `\n`): hex digits, optional whitespace, optional
/// extensions after `;` (ignored), optional `\r`.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let size = line[..digits].iter().try_fold(0u64, |acc, &b| {
        let digit = (b as char).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(u64::from(digit))
    })?;
    match trim_ows(&line[digits..]) {
        [] | [b';', ..] => Some(size),
        _ => None,
    }
}
