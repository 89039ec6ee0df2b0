//! `reader_script`: the [`Reader`] driven by a fuzzer-chosen script of answers to its requests
//! (any status and headers; bodies made of SSE events, raw bytes and JSON arrays, base64 when
//! the head says so; transport failures; time steps; stop).
//!
//! Input format: a [`ReaderScript`] as decoded by `arbitrary` (see [`crate::script`]).
//!
//! Invariants checked after every step: no panic; at most one request in flight (a new request
//! only once the previous one ended or was cancelled, and cancels only for the request in
//! flight); nothing sent before a retry delay is over, nor after the terminal event
//! (`Closed`, `Failed`, `Done`) or `stop`; no event after the terminal one; offsets released
//! never go back and [`Reader::offset`] is the last one released; the `live` parameter matches
//! the mode (long-poll once fallen back); binary data released at once within
//! `max_body_bytes`; `poll_timeout` never before `now`, and after `handle_timeout(now)`
//! strictly after it.

use crate::encode_struct;
use crate::script::{self, variant, Encode, FailKind, RetryKnobs, Status};
use crate::util::{base_instant, hdr, limit, offset_token, parts};
use arbitrary::Arbitrary;
use base64::Engine as _;
use bytes::Bytes;
use ds_proto::io::{Input, RequestId, Transmit};
use ds_proto::offset::Offset;
use ds_proto::reader::{ReadMode, Reader, ReaderConfig, ReaderEvent, SseFallback};
use ds_proto::sse::SseLimits;
use http::header::{HeaderName, HeaderValue};
use std::time::{Duration, Instant};

const URL: &str = "http://h/v1/stream/s?tenant=t";

/// A whole script.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct ReaderScript {
    pub knobs: ReaderKnobs,
    pub ops: Vec<ReaderOp>,
}
encode_struct!(ReaderScript { knobs; ops });

/// The configuration, kept valid.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderKnobs {
    /// `% 4`: catch-up, long-poll, SSE, auto.
    pub mode: u8,
    /// `% 3`: `-1`, `now`, or the offset `start / 3`.
    pub start: u8,
    /// `% 3`: JSON unknown, no, yes.
    pub json: u8,
    /// `max_body_bytes` (see [`crate::util::limit`]).
    pub max_body: u8,
    /// SSE line and event limits.
    pub sse_limits: u8,
    /// 0: no SSE fallback; else `1 + n % 4` connections within `100 ms * (1 + n / 4 % 20)`.
    pub fallback: u8,
    /// Bit 0: no long-poll deadline; bit 1: a 30 s catch-up deadline; bit 2: no SSE idle
    /// timeout, else `1 + n >> 3` seconds.
    pub deadlines: u8,
    /// Start with a saved cursor.
    pub cursor: bool,
    pub retry: RetryKnobs,
}
encode_struct!(ReaderKnobs { mode, start, json, max_body, sse_limits, fallback, deadlines, cursor; retry });

/// One step of a script. Answers go to the request in flight (none: ignored).
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum ReaderOp {
    /// Time passes by `ms`, then `handle_timeout`.
    Advance {
        ms: u16,
    },
    /// Time jumps to `poll_timeout` (if any), then `handle_timeout`.
    ToTimeout,
    Head {
        status: Status,
        headers: Vec<Header>,
    },
    Body {
        part: Part,
    },
    End,
    Fail {
        kind: FailKind,
    },
    /// Head, body parts and end.
    Respond {
        status: Status,
        headers: Vec<Header>,
        parts: Vec<Part>,
    },
    /// An input for another id than the one in flight.
    Stray,
    Stop,
}

impl Encode for ReaderOp {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 9;
        match self {
            ReaderOp::Advance { ms } => {
                variant(out, 0, N);
                ms.encode(out);
            }
            ReaderOp::ToTimeout => variant(out, 1, N),
            ReaderOp::Head { status, headers } => {
                variant(out, 2, N);
                status.encode(out);
                headers.encode(out);
            }
            ReaderOp::Body { part } => {
                variant(out, 3, N);
                part.encode(out);
            }
            ReaderOp::End => variant(out, 4, N),
            ReaderOp::Fail { kind } => {
                variant(out, 5, N);
                kind.encode(out);
            }
            ReaderOp::Respond {
                status,
                headers,
                parts,
            } => {
                variant(out, 6, N);
                status.encode(out);
                headers.encode(out);
                parts.encode(out);
            }
            ReaderOp::Stray => variant(out, 7, N),
            ReaderOp::Stop => variant(out, 8, N),
        }
    }
}

/// An offset a response names, relative to the harness's server position.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Off {
    Same,
    Forward(u8),
    Back(u8),
    Beginning,
    Now,
    Invalid,
}

impl Encode for Off {
    fn encode(&self, out: &mut Vec<u8>) {
        let (i, arg) = match *self {
            Off::Same => (0, None),
            Off::Forward(n) => (1, Some(n)),
            Off::Back(n) => (2, Some(n)),
            Off::Beginning => (3, None),
            Off::Now => (4, None),
            Off::Invalid => (5, None),
        };
        variant(out, i, 6);
        if let Some(a) = arg {
            a.encode(out);
        }
    }
}

/// A response header.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    NextOffset(Off),
    UpToDate,
    Closed,
    Cursor(u8),
    /// `% 4`: JSON, octet-stream, event-stream, text.
    ContentType(u8),
    Base64,
    RetryAfter(u8),
    ETag,
}

impl Encode for Header {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Header::NextOffset(o) => {
                variant(out, 0, 8);
                o.encode(out);
            }
            Header::UpToDate => variant(out, 1, 8),
            Header::Closed => variant(out, 2, 8),
            Header::Cursor(n) => {
                variant(out, 3, 8);
                n.encode(out);
            }
            Header::ContentType(n) => {
                variant(out, 4, 8);
                n.encode(out);
            }
            Header::Base64 => variant(out, 5, 8),
            Header::RetryAfter(n) => {
                variant(out, 6, 8);
                n.encode(out);
            }
            Header::ETag => variant(out, 7, 8),
        }
    }
}

/// A piece of a response body.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// An SSE `data` event with `len` bytes (base64-encoded when the head said so).
    Data { len: u8, fill: u8 },
    /// An SSE `control` event.
    Control {
        off: Off,
        up_to_date: bool,
        closed: bool,
        cursor: bool,
    },
    /// An SSE comment line.
    Comment,
    /// Raw bytes (binary data, or garbage in an SSE body).
    Raw { len: u8, fill: u8 },
    /// A JSON array of `n % 8` numbers.
    Json { n: u8 },
}

impl Encode for Part {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Part::Data { len, fill } => {
                variant(out, 0, 5);
                len.encode(out);
                fill.encode(out);
            }
            Part::Control {
                off,
                up_to_date,
                closed,
                cursor,
            } => {
                variant(out, 1, 5);
                off.encode(out);
                up_to_date.encode(out);
                closed.encode(out);
                cursor.encode(out);
            }
            Part::Comment => variant(out, 2, 5),
            Part::Raw { len, fill } => {
                variant(out, 3, 5);
                len.encode(out);
                fill.encode(out);
            }
            Part::Json { n } => {
                variant(out, 4, 5);
                n.encode(out);
            }
        }
    }
}

struct Harness {
    r: Reader,
    k: ReaderKnobs,
    now: Instant,
    mode: ReadMode,
    max_body: usize,
    /// The request in flight, as the harness sees it.
    outstanding: Option<RequestId>,
    /// Whether the head of the request in flight said base64.
    base64: bool,
    /// The server's position, for relative offsets.
    server: u64,
    /// No request before this.
    not_before: Option<Instant>,
    terminal: Option<ReaderEvent>,
    stopped: bool,
    fell_back: bool,
    last_offset: Offset,
    last_id: u64,
}

impl Harness {
    fn new(k: ReaderKnobs) -> Harness {
        let now = base_instant();
        let mode = match k.mode % 4 {
            0 => ReadMode::CatchUp,
            1 => ReadMode::LongPoll,
            2 => ReadMode::Sse,
            _ => ReadMode::Auto,
        };
        let server = u64::from(k.start / 3);
        let offset = match k.start % 3 {
            0 => Offset::beginning(),
            1 => Offset::now(),
            _ => Offset::parse(offset_token(server)).expect("valid"),
        };
        let sse_idle =
            (k.deadlines & 4 == 0).then(|| Duration::from_secs(1 + u64::from(k.deadlines >> 3)));
        let config = ReaderConfig {
            offset: offset.clone(),
            mode,
            retry: k.retry.policy(),
            max_body_bytes: limit(k.max_body, 64),
            sse_limits: SseLimits {
                max_line_bytes: limit(k.sse_limits, 32),
                max_event_bytes: limit(k.sse_limits, 64),
            },
            sse_fallback: (k.fallback > 0).then(|| SseFallback {
                connections: 1 + u32::from(k.fallback % 4),
                window: Duration::from_millis(100 * (1 + u64::from(k.fallback / 4 % 20))),
            }),
            long_poll_deadline: (k.deadlines & 1 == 0).then(|| Duration::from_secs(60)),
            catch_up_deadline: (k.deadlines & 2 != 0).then(|| Duration::from_secs(30)),
            sse_idle_timeout: sse_idle,
            json: match k.json % 3 {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            },
            rng_seed: u64::from(k.json),
            cursor: k.cursor.then(|| "c0".to_owned()),
            ..ReaderConfig::new(URL)
        };
        let max_body = config.max_body_bytes;
        Harness {
            r: Reader::new(config, now).expect("a valid configuration"),
            k,
            now,
            mode,
            max_body,
            outstanding: None,
            base64: false,
            server,
            not_before: None,
            terminal: None,
            stopped: false,
            fell_back: false,
            last_offset: offset,
            last_id: 0,
        }
    }

    fn off(&mut self, o: Off) -> String {
        match o {
            Off::Same => offset_token(self.server),
            Off::Forward(n) => {
                self.server += 1 + u64::from(n);
                offset_token(self.server)
            }
            Off::Back(n) => offset_token(self.server.saturating_sub(1 + u64::from(n))),
            Off::Beginning => "-1".to_owned(),
            Off::Now => "now".to_owned(),
            Off::Invalid => "a/b".to_owned(),
        }
    }

    fn headers(&mut self, hs: &[Header]) -> Vec<(HeaderName, HeaderValue)> {
        self.base64 = false;
        hs.iter()
            .map(|h| match *h {
                Header::NextOffset(o) => hdr("stream-next-offset", &self.off(o)),
                Header::UpToDate => hdr("stream-up-to-date", "true"),
                Header::Closed => hdr("stream-closed", "true"),
                Header::Cursor(n) => hdr("stream-cursor", &format!("c{n}")),
                Header::ContentType(n) => hdr(
                    "content-type",
                    [
                        "application/json",
                        "application/octet-stream",
                        "text/event-stream",
                        "text/plain; charset=utf-8",
                    ][usize::from(n % 4)],
                ),
                Header::Base64 => {
                    self.base64 = true;
                    hdr("stream-sse-data-encoding", "base64")
                }
                Header::RetryAfter(n) => hdr("retry-after", &(n % 8).to_string()),
                Header::ETag => hdr("etag", "\"e1\""),
            })
            .collect()
    }

    fn render(&mut self, p: Part) -> Vec<u8> {
        match p {
            Part::Data { len, fill } => {
                let payload: Vec<u8> = (0..len)
                    .map(|i| b'!' + (fill.wrapping_add(i)) % 90)
                    .collect();
                let text = if self.base64 {
                    base64::engine::general_purpose::STANDARD
                        .encode(&payload)
                        .into_bytes()
                } else {
                    payload
                };
                let mut out = b"event: data\ndata:".to_vec();
                out.extend_from_slice(&text);
                out.extend_from_slice(b"\n\n");
                out
            }
            Part::Control {
                off,
                up_to_date,
                closed,
                cursor,
            } => {
                let mut json = format!("{{\"streamNextOffset\":\"{}\"", self.off(off));
                if up_to_date {
                    json.push_str(",\"upToDate\":true");
                }
                if closed {
                    json.push_str(",\"streamClosed\":true");
                }
                if cursor {
                    json.push_str(&format!(",\"streamCursor\":\"c{}\"", self.server));
                }
                format!("event: control\ndata: {json}}}\n\n").into_bytes()
            }
            Part::Comment => b": keep-alive\n\n".to_vec(),
            Part::Raw { len, fill } => vec![fill; usize::from(len)],
            Part::Json { n } => {
                let items: Vec<String> = (0..n % 8).map(|i| i.to_string()).collect();
                format!("[{}]", items.join(",")).into_bytes()
            }
        }
    }

    fn on_transmit(&mut self, tx: Transmit) {
        crate::trace!(
            "  -> {} {} {:?}",
            tx.id,
            tx.request.uri(),
            tx.request.headers()
        );
        assert!(
            self.terminal.is_none() && !self.stopped,
            "a request after the end"
        );
        assert!(self.outstanding.is_none(), "two requests in flight");
        if let Some(t) = self.not_before {
            assert!(self.now >= t, "a request before the retry delay is over");
        }
        assert!(tx.id.0 > self.last_id, "request ids increase");
        self.last_id = tx.id.0;
        self.outstanding = Some(tx.id);
        assert_eq!(self.r.in_flight(), Some(tx.id));
        let q = tx.request.uri().query().unwrap_or("").to_owned();
        let param = |k: &str| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(str::to_owned)
        };
        assert!(param("offset").is_some(), "{q}");
        assert_eq!(param("tenant").as_deref(), Some("t"));
        let live = param("live");
        let allowed: &[Option<&str>] = match self.mode {
            ReadMode::CatchUp => &[None],
            ReadMode::LongPoll => &[Some("long-poll")],
            // The FellBackToLongPoll event may come after the first long-poll request.
            ReadMode::Sse if self.r.mode() == ReadMode::LongPoll => &[Some("long-poll")],
            ReadMode::Sse => &[Some("sse")],
            ReadMode::Auto => &[None, Some("long-poll")],
        };
        assert!(
            allowed.contains(&live.as_deref()),
            "live={live:?} in {:?}",
            self.mode
        );
        if live.is_none() {
            assert!(param("cursor").is_none(), "a cursor on a catch-up read");
        } else {
            // Live reads echo the latest cursor.
            let want = self.r.cursor().map(ds_proto::url::encode_component);
            assert_eq!(param("cursor"), want, "the cursor echoed");
        }
        let want_deadline = match live.as_deref() {
            None => (self.k.deadlines & 2 != 0).then(|| Duration::from_secs(30)),
            Some("long-poll") => (self.k.deadlines & 1 == 0).then(|| Duration::from_secs(60)),
            _ => None,
        };
        assert_eq!(tx.deadline, want_deadline.map(|d| self.now + d));
    }

    fn on_event(&mut self, ev: ReaderEvent) {
        crate::trace!("  <- {ev:?}");
        assert!(!self.stopped, "an event after stop: {ev:?}");
        assert!(self.terminal.is_none(), "{ev:?} after {:?}", self.terminal);
        let mut moved_to = None;
        match &ev {
            ReaderEvent::Data(chunk) => {
                if !chunk.json {
                    assert!(
                        chunk.data.len() <= self.max_body,
                        "released more than max_body_bytes"
                    );
                }
                moved_to = Some(chunk.next_offset.clone());
                if chunk.closed {
                    assert!(chunk.up_to_date);
                }
            }
            ReaderEvent::UpToDate { offset } => moved_to = Some(offset.clone()),
            ReaderEvent::Closed { offset } => {
                moved_to = Some(offset.clone());
                self.terminal = Some(ev.clone());
            }
            ReaderEvent::Retrying { delay, attempt, .. } => {
                assert!(*attempt >= 1);
                self.not_before = Some(self.now + *delay);
            }
            ReaderEvent::FellBackToLongPoll => {
                assert_eq!(self.mode, ReadMode::Sse);
                assert!(!self.fell_back, "fell back twice");
                assert_eq!(self.r.mode(), ReadMode::LongPoll);
                self.fell_back = true;
            }
            ReaderEvent::Failed(_) => self.terminal = Some(ev.clone()),
            ReaderEvent::Done => {
                assert_eq!(self.mode, ReadMode::CatchUp);
                self.terminal = Some(ev.clone());
            }
            other => panic!("unknown event {other:?}"),
        }
        if let Some(o) = moved_to {
            assert!(!o.is_now(), "released offset `now`");
            let prev = &self.last_offset;
            assert!(
                prev.is_sentinel() || (!o.is_sentinel() && o >= *prev),
                "offset went back from {prev} to {o}"
            );
            self.last_offset = o;
        }
        assert_eq!(self.r.offset(), &self.last_offset);
    }

    fn settle(&mut self) {
        for _ in 0..100 {
            let mut more = false;
            while let Some(id) = self.r.poll_cancel() {
                assert_eq!(
                    Some(id),
                    self.outstanding,
                    "a cancel for a request not in flight"
                );
                self.outstanding = None;
                more = true;
            }
            if let Some(tx) = self.r.poll_transmit(self.now) {
                self.on_transmit(tx);
                more = true;
            }
            while let Some(ev) = self.r.poll_event() {
                self.on_event(ev);
                more = true;
            }
            if !more {
                break;
            }
        }
        assert!(
            self.r.poll_cancel().is_none() && self.r.poll_event().is_none(),
            "no quiescence"
        );
        if self.terminal.is_some() || self.stopped {
            assert!(self.r.is_finished());
            assert!(self.r.poll_transmit(self.now).is_none());
            assert!(self.outstanding.is_none(), "a request left open at the end");
        }
        if self.outstanding.is_none() {
            assert_eq!(self.r.in_flight(), None);
        }
        if let Some(t) = self.r.poll_timeout() {
            assert!(t >= self.now, "poll_timeout in the past");
        }
    }

    fn timeout(&mut self) {
        self.r.handle_timeout(self.now);
        if let Some(t) = self.r.poll_timeout() {
            assert!(t > self.now, "poll_timeout not after handle_timeout(now)");
        }
    }

    fn input(&mut self, make: impl FnOnce(RequestId) -> Input) {
        if let Some(id) = self.outstanding {
            let input = make(id);
            if matches!(input, Input::End { .. } | Input::Failed { .. }) {
                self.outstanding = None;
            }
            self.r.handle_input(input, self.now);
        }
    }

    fn step(&mut self, op: &ReaderOp) {
        crate::trace!("{op:?} (outstanding {:?})", self.outstanding);
        match op {
            ReaderOp::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.timeout();
            }
            ReaderOp::ToTimeout => {
                if let Some(t) = self.r.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout();
            }
            ReaderOp::Head { status, headers } => {
                let hs = self.headers(headers);
                self.input(|id| Input::Head {
                    id,
                    parts: parts(status.code(), &hs),
                });
            }
            ReaderOp::Body { part } => {
                let chunk = Bytes::from(self.render(*part));
                self.input(|id| Input::Body { id, chunk });
            }
            ReaderOp::End => self.input(|id| Input::End { id }),
            ReaderOp::Fail { kind } => self.input(|id| Input::Failed {
                id,
                error: kind.error(),
            }),
            ReaderOp::Respond {
                status,
                headers,
                parts: body,
            } => {
                let hs = self.headers(headers);
                let Some(id) = self.outstanding else {
                    self.settle();
                    return;
                };
                self.input(|id| Input::Head {
                    id,
                    parts: parts(status.code(), &hs),
                });
                for p in body.iter().take(64) {
                    // The reader may have abandoned the request mid-body.
                    if self.outstanding != Some(id) {
                        break;
                    }
                    let chunk = Bytes::from(self.render(*p));
                    self.input(|id| Input::Body { id, chunk });
                    self.settle();
                }
                if self.outstanding == Some(id) {
                    self.input(|id| Input::End { id });
                }
            }
            ReaderOp::Stray => {
                let id = RequestId(self.last_id + 1000);
                self.r.handle_input(Input::End { id }, self.now);
            }
            ReaderOp::Stop => {
                self.r.stop();
                self.stopped = true;
                assert!(self.r.poll_event().is_none(), "events survive stop");
                assert_eq!(self.r.poll_cancel(), self.outstanding.take());
                assert!(self.r.poll_timeout().is_none());
            }
        }
        self.settle();
    }
}

/// The `reader_script` target: see the module documentation.
pub fn reader_script(data: &[u8]) {
    let Some(script) = script::decode::<ReaderScript>(data) else {
        return;
    };
    let mut h = Harness::new(script.knobs);
    h.settle();
    for op in script.ops.iter().take(2_000) {
        h.step(op);
    }
}
