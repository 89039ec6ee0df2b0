//! Incremental, pull-based Server-Sent Events parser (WHATWG `text/event-stream`),
//! plus the Durable Streams helpers for SSE reads (protocol section 5.8).
//!
//! # Usage
//!
//! ```
//! use ds_proto::sse::{EventType, SseEof, SseLimits, SseParser};
//!
//! let mut parser = SseParser::new(SseLimits::default());
//! let mut events = Vec::new();
//! for chunk in [&b"event: data\ndata: hel"[..], b"lo\r", b"\n\r\nevent: control\n"] {
//!     parser.feed(chunk);
//!     while let Some(event) = parser.next_event() {
//!         events.push(event.expect("within limits"));
//!     }
//! }
//! // The body ended in the middle of the control event: it is discarded.
//! assert_eq!(parser.finish(), Ok(SseEof::IncompleteEvent));
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].event, EventType::Data);
//! assert_eq!(&events[0].data[..], b"hello");
//! ```
//!
//! # Rules
//!
//! The parser follows the WHATWG HTML "event stream interpretation" rules:
//!
//! - Lines end with CRLF, LF or a lone CR. A CRLF split across two chunks is one line ending.
//! - One UTF-8 byte order mark at the very start of the stream is skipped.
//! - Lines starting with `:` are comments and are ignored.
//! - A line without a colon is a field name with an empty value. After the colon, one leading
//!   space of the value is stripped if present.
//! - `event` sets the event type; `data` appends the value and a `\n` to the data buffer; `id`
//!   sets the last event ID unless the value contains NUL; `retry` sets the reconnection time if
//!   the value is made of ASCII digits only; other fields are ignored.
//! - A blank line dispatches the event: if no `data` field was received nothing is dispatched (the
//!   event type is reset all the same), otherwise the final `\n` is removed from the data buffer
//!   and the event is dispatched with its type (`message` by default).
//! - At the end of the input, an incomplete line and an incomplete event are discarded.
//!
//! Unlike a browser, the parser does not decode the `data` buffer as UTF-8: event data is handed
//! out as raw bytes ([`Bytes`]), since Durable Streams payloads are bytes. Event type and ID
//! values are decoded as UTF-8 with replacement characters.
//!
//! # Performance
//!
//! Each chunk is parsed when it is fed: every input byte is examined once by a `memchr2`
//! search for `\n`/`\r`, and only an incomplete line at the end of a chunk is kept (copied
//! once) for the next one. Field names are recognised from at most the first six bytes of a
//! line. [`SseParser::feed`] copies the value of a `data` line once, into an allocation of its
//! exact size (or, for a big chunk, into one buffer for all the chunk's events); in particular
//! it never copies a whole small chunk first. [`SseParser::feed_bytes`] hands out the value of a lone `data` line as a slice
//! of the chunk, without copying. The data of events with several `data` lines is copied once
//! into the event's buffer.
//!
//! # Memory
//!
//! Besides the events waiting to be pulled, the parser holds at most one incomplete line
//! (bounded by [`SseLimits::max_line_bytes`], checked before the line is stored, so a body
//! that never sends a line ending is caught at the limit) and the pending event's data
//! (bounded by [`SseLimits::max_event_bytes`]). Once a line has straddled two chunks, the
//! parser keeps a buffer of 128 KiB (at most `max_line_bytes`, at least the longest recent
//! such line) for the next ones. Event data handed out may share an allocation with other
//! events' data or with a chunk given to [`SseParser::feed_bytes`], never pinning more than
//! twice its size unless it comes from such a chunk or from a big chunk given to
//! [`SseParser::feed`].

use std::collections::VecDeque;

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// UTF-8 byte order mark, skipped once at the very start of the stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// From this size on, [`SseParser::feed`] copies the whole chunk into one buffer shared by
/// the events it holds, rather than copying each event's data into an allocation of its own.
const BIG_CHUNK: usize = 256 * 1024;

/// Capacity reserved for a line that straddles chunks, unless a longer one came before.
const MIN_CARRY: usize = 128 * 1024;

/// Size limits enforced by [`SseParser`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SseLimits {
    /// Maximum length of one line in bytes, excluding its line ending. A longer line yields
    /// [`SseError::LineTooLong`], detected while the line is still incomplete.
    pub max_line_bytes: usize,
    /// Maximum length in bytes of one event's data (the `data` values joined with `\n`).
    /// A larger event yields [`SseError::EventTooLarge`].
    pub max_event_bytes: usize,
}

impl SseLimits {
    /// Default maximum line length: 1 MiB.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
    /// Default maximum event data size: 16 MiB.
    pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 << 20;
}

impl Default for SseLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            max_event_bytes: Self::DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

/// Errors from the SSE parser and the Durable Streams SSE helpers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A line (without its line ending) was longer than [`SseLimits::max_line_bytes`].
    #[error("SSE line longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// An event's data was larger than [`SseLimits::max_event_bytes`].
    #[error("SSE event data larger than the limit of {limit} bytes")]
    EventTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The data of a `control` event is not a valid Durable Streams control object.
    #[error("invalid SSE control event: {0}")]
    InvalidControl(String),
    /// The data of a `data` event is not valid base64 (with `stream-sse-data-encoding: base64`).
    #[error("invalid base64 in SSE data event: {0}")]
    InvalidBase64(String),
}

/// The type of an SSE event (the value of its last `event` field).
///
/// The parser maps `data`, `control`, and `message` or an empty/missing type, to the dedicated
/// variants; it never produces [`EventType::Other`] holding one of those names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum EventType {
    /// `message`: the default type when no (or an empty) `event` field was given.
    #[default]
    Message,
    /// `data`: a Durable Streams data event.
    Data,
    /// `control`: a Durable Streams control event (JSON, see [`ControlEvent`]).
    Control,
    /// Any other event type.
    Other(String),
}

impl EventType {
    /// The event type as a string (`"message"`, `"data"`, `"control"` or the other name).
    pub fn as_str(&self) -> &str {
        match self {
            EventType::Message => "message",
            EventType::Data => "data",
            EventType::Control => "control",
            EventType::Other(name) => name,
        }
    }

    /// The event type named by the bytes of an `event` field value (UTF-8, lossily decoded).
    pub fn from_bytes(name: &[u8]) -> Self {
        match name {
            b"" | b"message" => EventType::Message,
            b"data" => EventType::Data,
            b"control" => EventType::Control,
            other => EventType::Other(String::from_utf8_lossy(other).into_owned()),
        }
    }
}

impl From<&str> for EventType {
    fn from(name: &str) -> Self {
        EventType::from_bytes(name.as_bytes())
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`message` unless an `event` field said otherwise).
    pub event: EventType,
    /// The event data: the `data` field values joined with `\n`, as raw bytes. It may share
    /// memory with the parser's input buffers.
    pub data: Bytes,
    /// The last event ID in effect when the event was dispatched (WHATWG `lastEventId`: it
    /// persists across events until an `id` field changes it), or `None` when it is empty.
    pub id: Option<String>,
    /// The reconnection time in milliseconds, if a valid `retry` field was part of this event
    /// (see [`SseParser::retry`] for the value in effect).
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The event type as a string, e.g. `"data"`, `"control"` or `"message"`.
    pub fn event_type(&self) -> &str {
        self.event.as_str()
    }

    /// Whether this is a Durable Streams `data` event.
    pub fn is_data(&self) -> bool {
        self.event == EventType::Data
    }

    /// Whether this is a Durable Streams `control` event.
    pub fn is_control(&self) -> bool {
        self.event == EventType::Control
    }

    /// Parses the data of this event as a Durable Streams control object (whatever the event
    /// type; check [`SseEvent::is_control`] first).
    pub fn control(&self) -> Result<ControlEvent, SseError> {
        ControlEvent::parse(&self.data)
    }
}

/// How the input ended, as reported by [`SseParser::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SseEof {
    /// The input ended at an event boundary: nothing was discarded.
    Clean,
    /// The input ended after complete field lines (any line but comments and blank lines,
    /// even ignored fields) that were not followed by a blank line: that incomplete event
    /// was discarded.
    IncompleteEvent,
    /// The input ended in the middle of a line: the partial line (and any incomplete event)
    /// was discarded.
    IncompleteLine,
}

/// The `data` buffer of the event being assembled.
#[derive(Debug, Default)]
enum DataBuf {
    /// No `data` field yet (WHATWG: the data buffer is empty).
    #[default]
    Empty,
    /// Exactly one `data` field: its value, usually without copying.
    One(Bytes),
    /// Several `data` fields: values joined with `\n` (without the final `\n`).
    Many(BytesMut),
}

impl DataBuf {
    fn len(&self) -> usize {
        match self {
            DataBuf::Empty => 0,
            DataBuf::One(b) => b.len(),
            DataBuf::Many(b) => b.len(),
        }
    }
}

/// Where a complete line is.
#[derive(Debug, Clone, Copy)]
enum LineSrc<'a> {
    /// Within the chunk being fed; `owner` is that chunk when fed as [`Bytes`], and the line
    /// starts at `offset` in it.
    Chunk {
        line: &'a [u8],
        owner: Option<&'a Bytes>,
        offset: usize,
    },
    /// The whole of [`SseParser::carry`] (a line that straddled chunks).
    Carry,
}

/// What a line asks for, decided from a borrowed view of the line.
enum Action {
    /// A comment line.
    Comment,
    /// A field that is ignored (unknown, `id` with NUL, invalid `retry`).
    Ignore,
    Dispatch,
    Event(EventType),
    /// A `data` field whose value starts at the first offset in the line (one space after the
    /// colon skipped), or at the second when that space is kept.
    Data(usize, usize),
    Id(String),
    Retry(u64),
}

/// A stateful, incremental, pull-based SSE parser.
///
/// Feed the body in chunks of any size with [`feed`](Self::feed) or
/// [`feed_bytes`](Self::feed_bytes), then call [`next_event`](Self::next_event) until it returns
/// `None`; at the end of the body call [`finish`](Self::finish).
///
/// Each chunk is parsed when it is fed (each byte is searched once for a line ending; only an
/// incomplete line at the end of the chunk is kept); the events it completes wait in a queue
/// until pulled with `next_event`. Pulling is not needed to keep memory bounded, but events
/// not pulled stay in memory.
///
/// # Errors and state after an error
///
/// A limit violation is returned once, as `Some(Err(..))` from `next_event`, after the events
/// completed before it. The parser then stays failed: it drops its buffers, ignores further
/// input, `next_event` returns `None` (once the queued results are pulled),
/// [`error`](Self::error) returns the error and `finish` returns it as `Err`. Use a new parser
/// (for a new connection) to continue.
#[derive(Debug)]
pub struct SseParser {
    limits: SseLimits,
    /// The incomplete line at the end of the input fed so far (never holds a line ending).
    carry: BytesMut,
    /// Length of the last line completed in `carry`: capacity to reserve for the next one.
    carry_hint: usize,
    /// During [`Self::feed`] of a big chunk: one buffer for the data of the events in it.
    arena: BytesMut,
    /// The previous line ended with CR at the very end of a chunk: a LF at the start of the
    /// next chunk belongs to that line ending.
    skip_lf: bool,
    /// No line has been completed yet (the BOM check applies to this line).
    first_line: bool,
    // The event being assembled.
    data: DataBuf,
    event_type: Option<EventType>,
    block_retry: Option<u64>,
    /// A field line (not a comment) was seen since the last blank line.
    block_nonempty: bool,
    // State that persists across events.
    last_event_id: String,
    retry: Option<u64>,
    /// Events (and at most one final error) not pulled yet.
    out: VecDeque<Result<SseEvent, SseError>>,
    /// Keep the space after `data:` (see [`SseParser::keep_data_space`]).
    keep_data_space: bool,
    // Lifecycle.
    failed: Option<SseError>,
    eof: Option<SseEof>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(SseLimits::default())
    }
}

impl SseParser {
    /// A parser for a new event stream, with the given limits.
    pub fn new(limits: SseLimits) -> Self {
        Self {
            limits,
            carry: BytesMut::new(),
            carry_hint: 0,
            arena: BytesMut::new(),
            skip_lf: false,
            first_line: true,
            data: DataBuf::Empty,
            event_type: None,
            block_retry: None,
            block_nonempty: false,
            last_event_id: String::new(),
            retry: None,
            out: VecDeque::new(),
            keep_data_space: false,
            failed: None,
            eof: None,
        }
    }

    /// Keeps the one space after `data:` in data values instead of stripping it (WHATWG strips
    /// it). For servers that write `data:<payload>` without a space, a payload starting with a
    /// space would otherwise lose it; a caller that learns the server's style (e.g. from a
    /// `control` event's line) strips it itself. Set before feeding.
    pub fn keep_data_space(mut self, keep: bool) -> Self {
        self.keep_data_space = keep;
        self
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> SseLimits {
        self.limits
    }

    /// Parses a chunk of the body. Event data is copied once out of `chunk`: into an
    /// allocation of its own, or, for a chunk of 256 KiB or more, into one buffer shared by the
    /// events of that chunk.
    ///
    /// Ignored after an error or after [`finish`](Self::finish).
    pub fn feed(&mut self, chunk: &[u8]) {
        if chunk.len() >= BIG_CHUNK && self.failed.is_none() && self.eof.is_none() {
            self.arena = BytesMut::with_capacity(chunk.len());
            self.process(chunk, None);
            self.arena = BytesMut::new();
        } else {
            self.process(chunk, None);
        }
    }

    /// Parses a chunk of the body without copying it: the data of an event made of one
    /// `data` line that lies within the chunk is a slice of it (keeping the chunk's memory
    /// alive as long as the event's data); only lines straddling chunks are copied.
    ///
    /// Ignored after an error or after [`finish`](Self::finish).
    pub fn feed_bytes(&mut self, chunk: Bytes) {
        self.process(&chunk, Some(&chunk));
    }

    /// The next complete event, `Some(Err(..))` once if a limit was exceeded, or `None` when
    /// more input is needed (or the parser has failed or finished and everything was pulled).
    pub fn next_event(&mut self) -> Option<Result<SseEvent, SseError>> {
        self.out.pop_front()
    }

    /// Signals the end of the body and reports how it ended.
    ///
    /// Per WHATWG, an incomplete line and an incomplete event at the end of the input are
    /// discarded, never dispatched; the returned [`SseEof`] tells whether that happened.
    /// Complete events not yet pulled are not lost: they remain available from
    /// [`next_event`](Self::next_event). Later input is ignored; calling `finish` again returns
    /// the same result.
    ///
    /// # Errors
    ///
    /// The parser's error if it has failed.
    pub fn finish(&mut self) -> Result<SseEof, SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if let Some(eof) = self.eof {
            return Ok(eof);
        }
        // A lone BOM at the start of the stream is not a line.
        let only_bom = self.first_line && self.carry[..] == *BOM;
        let eof = if !self.carry.is_empty() && !only_bom {
            SseEof::IncompleteLine
        } else if self.block_nonempty {
            SseEof::IncompleteEvent
        } else {
            SseEof::Clean
        };
        self.carry = BytesMut::new();
        self.reset_event();
        self.eof = Some(eof);
        Ok(eof)
    }

    /// The error that made the parser fail, if any.
    pub fn error(&self) -> Option<&SseError> {
        self.failed.as_ref()
    }

    /// The last event ID (WHATWG "last event ID buffer"): set by `id` fields, persisting
    /// across events; empty if none was set.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The latest reconnection time in milliseconds set by a valid `retry` field, if any
    /// (including `retry` fields in blocks that dispatched no event).
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Bytes held by the parser: the incomplete line, the pending event's data, and the data
    /// of events not pulled yet (not counting allocator slack).
    pub fn buffered_bytes(&self) -> usize {
        let queued: usize = self
            .out
            .iter()
            .map(|r| r.as_ref().map_or(0, |e| e.data.len()))
            .sum();
        self.carry.len() + self.data.len() + queued
    }

    fn fail(&mut self, err: SseError) {
        self.out.push_back(Err(err.clone()));
        self.failed = Some(err);
        self.carry = BytesMut::new();
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.data = DataBuf::Empty;
        self.event_type = None;
        self.block_retry = None;
        self.block_nonempty = false;
    }

    /// Parses one chunk; `owner` is the same chunk when it was fed as [`Bytes`].
    fn process(&mut self, chunk: &[u8], owner: Option<&Bytes>) {
        if chunk.is_empty() || self.failed.is_some() || self.eof.is_some() {
            return;
        }
        let max_line = self.limits.max_line_bytes;
        let mut pos = 0;
        if std::mem::take(&mut self.skip_lf) && chunk[0] == b'\n' {
            // The second half of a CRLF split across chunks.
            pos = 1;
        }
        while pos < chunk.len() {
            let rest = &chunk[pos..];
            let Some(len) = memchr::memchr2(b'\n', b'\r', rest) else {
                // An incomplete line: keep it, if within the limit.
                let total = self.carry.len() + rest.len();
                if total > max_line {
                    self.fail(SseError::LineTooLong { limit: max_line });
                    return;
                }
                if self.carry.is_empty() {
                    // Reserve enough to avoid growing (and copying) the line a chunk at a time.
                    let hint = self.carry_hint.max(MIN_CARRY.min(max_line));
                    self.carry.reserve(rest.len().max(hint));
                }
                self.carry.extend_from_slice(rest);
                return;
            };
            let result = if self.carry.is_empty() {
                if len > max_line {
                    self.fail(SseError::LineTooLong { limit: max_line });
                    return;
                }
                self.on_line(LineSrc::Chunk {
                    line: &rest[..len],
                    owner,
                    offset: pos,
                })
            } else {
                let total = self.carry.len() + len;
                if total > max_line {
                    self.fail(SseError::LineTooLong { limit: max_line });
                    return;
                }
                self.carry.extend_from_slice(&rest[..len]);
                self.carry_hint = total;
                let result = self.on_line(LineSrc::Carry);
                self.carry.clear();
                result
            };
            match result {
                Ok(Some(event)) => self.out.push_back(Ok(event)),
                Ok(None) => {}
                Err(err) => {
                    self.fail(err);
                    return;
                }
            }
            pos += len + 1;
            if rest[len] == b'\r' {
                match chunk.get(pos) {
                    Some(b'\n') => pos += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
    }

    /// Applies one complete line (without its line ending).
    fn on_line(&mut self, src: LineSrc<'_>) -> Result<Option<SseEvent>, SseError> {
        let first_line = std::mem::take(&mut self.first_line);
        let (action, start, len) = {
            let line: &[u8] = match src {
                LineSrc::Chunk { line, .. } => line,
                LineSrc::Carry => &self.carry,
            };
            let start = if first_line && line.starts_with(BOM) {
                BOM.len()
            } else {
                0
            };
            (classify(&line[start..]), start, line.len())
        };
        match action {
            Action::Comment => Ok(None),
            Action::Dispatch => Ok(self.dispatch()),
            Action::Ignore => {
                self.block_nonempty = true;
                Ok(None)
            }
            Action::Event(event_type) => {
                self.block_nonempty = true;
                self.event_type = Some(event_type);
                Ok(None)
            }
            Action::Id(id) => {
                self.block_nonempty = true;
                self.last_event_id = id;
                Ok(None)
            }
            Action::Retry(ms) => {
                self.block_nonempty = true;
                self.retry = Some(ms);
                self.block_retry = Some(ms);
                Ok(None)
            }
            Action::Data(offset, raw) => {
                self.block_nonempty = true;
                let offset = if self.keep_data_space { raw } else { offset };
                self.on_data(src, start + offset, len)?;
                Ok(None)
            }
        }
    }

    /// Appends the value `line[value_start..len]` of a `data` line to the data buffer.
    fn on_data(
        &mut self,
        src: LineSrc<'_>,
        value_start: usize,
        len: usize,
    ) -> Result<(), SseError> {
        let value_len = len - value_start;
        let new_len = match &self.data {
            DataBuf::Empty => value_len,
            other => other.len() + 1 + value_len,
        };
        let max_event = self.limits.max_event_bytes;
        if new_len > max_event {
            return Err(SseError::EventTooLarge { limit: max_event });
        }
        let value: &[u8] = match src {
            LineSrc::Chunk { line, .. } => &line[value_start..],
            LineSrc::Carry => &self.carry[value_start..],
        };
        match &mut self.data {
            DataBuf::Empty => {
                let bytes = match src {
                    LineSrc::Chunk {
                        owner: Some(owner),
                        offset,
                        ..
                    } => owner.slice(offset + value_start..offset + len),
                    LineSrc::Chunk { owner: None, .. } if self.arena.capacity() >= value.len() => {
                        self.arena.extend_from_slice(value);
                        self.arena.split().freeze()
                    }
                    LineSrc::Chunk { owner: None, .. } => Bytes::copy_from_slice(value),
                    // Hand the carried line over without copying, unless that would pin an
                    // allocation more than twice its size; then copy and keep it for reuse.
                    LineSrc::Carry if 2 * len >= self.carry.capacity() => {
                        let mut line = self.carry.split().freeze();
                        line.advance(value_start);
                        line
                    }
                    LineSrc::Carry => Bytes::copy_from_slice(value),
                };
                self.data = DataBuf::One(bytes);
            }
            DataBuf::One(first) => {
                let mut joined = BytesMut::with_capacity(new_len);
                joined.extend_from_slice(first);
                joined.put_u8(b'\n');
                joined.extend_from_slice(value);
                self.data = DataBuf::Many(joined);
            }
            DataBuf::Many(joined) => {
                joined.reserve(1 + value.len());
                joined.put_u8(b'\n');
                joined.extend_from_slice(value);
            }
        }
        Ok(())
    }

    /// Handles a blank line: dispatches the pending event if it has data.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let data = std::mem::take(&mut self.data);
        let event_type = self.event_type.take();
        let retry = self.block_retry.take();
        self.block_nonempty = false;
        let data = match data {
            DataBuf::Empty => return None,
            DataBuf::One(data) => data,
            DataBuf::Many(data) => data.freeze(),
        };
        Some(SseEvent {
            event: event_type.unwrap_or_default(),
            data,
            id: if self.last_event_id.is_empty() {
                None
            } else {
                Some(self.last_event_id.clone())
            },
            retry,
        })
    }
}

/// Decides what a complete line (without BOM and line ending) asks for.
fn classify(line: &[u8]) -> Action {
    if line.is_empty() {
        return Action::Dispatch;
    }
    if line[0] == b':' {
        return Action::Comment;
    }
    // The known field names have at most 5 bytes, so a colon further away (or a line longer
    // than 5 bytes without a colon in its first 6 bytes) means an unknown field: there is no
    // need to search the whole line.
    let head = &line[..line.len().min(6)];
    let (name, value_start, raw_start) = match memchr::memchr(b':', head) {
        Some(colon) => {
            let value_start = if line.get(colon + 1) == Some(&b' ') {
                colon + 2
            } else {
                colon + 1
            };
            (&line[..colon], value_start, colon + 1)
        }
        None if line.len() <= 5 => (line, line.len(), line.len()),
        None => return Action::Ignore,
    };
    let value = &line[value_start..];
    match name {
        b"data" => Action::Data(value_start, raw_start),
        b"event" => Action::Event(EventType::from_bytes(value)),
        b"id" => {
            if value.contains(&0) {
                Action::Ignore
            } else {
                Action::Id(String::from_utf8_lossy(value).into_owned())
            }
        }
        b"retry" => match parse_retry(value) {
            Some(ms) => Action::Retry(ms),
            None => Action::Ignore,
        },
        _ => Action::Ignore,
    }
}

/// A `retry` value: ASCII digits only (at least one), fitting in a `u64`.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The JSON object carried by a Durable Streams `event: control` SSE event.
///
/// Deserialised from camelCase fields; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlEvent {
    /// `streamNextOffset` (required): the offset to resume reading from.
    pub stream_next_offset: String,
    /// `streamCursor`: the cursor to echo when reconnecting (absent when the stream is closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_cursor: Option<String>,
    /// `upToDate`: the client has all data available when the event was generated.
    #[serde(default, skip_serializing_if = "is_false")]
    pub up_to_date: bool,
    /// `streamClosed`: the stream is closed and all its data has been sent (EOF).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stream_closed: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl ControlEvent {
    /// Parses the data of a `control` event.
    ///
    /// # Errors
    ///
    /// [`SseError::InvalidControl`] if the data is not a JSON object, lacks a string
    /// `streamNextOffset`, or has a field of the wrong JSON type.
    pub fn parse(data: &[u8]) -> Result<Self, SseError> {
        let first = data.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(SseError::InvalidControl(
                "expected a JSON object".to_owned(),
            ));
        }
        serde_json::from_slice(data).map_err(|e| SseError::InvalidControl(e.to_string()))
    }

    /// Whether the stream is closed: no more data will ever arrive and the reader must not
    /// reconnect. A closed stream is also up to date.
    pub fn is_eof(&self) -> bool {
        self.stream_closed
    }
}

/// Decodes the data of a Durable Streams `data` event sent with
/// `stream-sse-data-encoding: base64`: removes every `\n` and `\r`, then decodes standard
/// base64 (RFC 4648 alphabet, padding required, length a multiple of 4, or empty).
///
/// # Errors
///
/// [`SseError::InvalidBase64`] if the text is not valid padded standard base64.
pub fn decode_base64_data(data: &[u8]) -> Result<Bytes, SseError> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let decoded = if memchr::memchr2(b'\n', b'\r', data).is_some() {
        let text: Vec<u8> = data
            .iter()
            .copied()
            .filter(|&b| b != b'\n' && b != b'\r')
            .collect();
        engine.decode(text)
    } else {
        engine.decode(data)
    };
    decoded
        .map(Bytes::from)
        .map_err(|e| SseError::InvalidBase64(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ----- helpers -----

    fn limits(max_line_bytes: usize, max_event_bytes: usize) -> SseLimits {
        SseLimits {
            max_line_bytes,
            max_event_bytes,
        }
    }

    /// Pulls every available result.
    fn drain(p: &mut SseParser) -> Vec<Result<SseEvent, SseError>> {
        std::iter::from_fn(|| p.next_event()).collect()
    }

    /// Feeds `chunks` with `feed`, pulling after each, then finishes.
    fn run_chunks(
        l: SseLimits,
        chunks: &[&[u8]],
        owned: bool,
    ) -> (Vec<Result<SseEvent, SseError>>, Result<SseEof, SseError>) {
        let mut p = SseParser::new(l);
        let mut out = Vec::new();
        for c in chunks {
            if owned {
                p.feed_bytes(Bytes::copy_from_slice(c));
            } else {
                p.feed(c);
            }
            out.extend(drain(&mut p));
        }
        let eof = p.finish();
        out.extend(drain(&mut p));
        (out, eof)
    }

    fn run_whole(input: &[u8]) -> (Vec<Result<SseEvent, SseError>>, Result<SseEof, SseError>) {
        run_chunks(SseLimits::default(), &[input], false)
    }

    fn events(input: &[u8]) -> Vec<SseEvent> {
        let (out, _) = run_whole(input);
        out.into_iter().map(|r| r.expect("no error")).collect()
    }

    fn ev(event: EventType, data: &str) -> SseEvent {
        SseEvent {
            event,
            data: Bytes::copy_from_slice(data.as_bytes()),
            id: None,
            retry: None,
        }
    }

    fn msg(data: &str) -> SseEvent {
        ev(EventType::Message, data)
    }

    /// Asserts that every two-way and three-way split, byte-by-byte feeding, and both feed
    /// methods (and mixes of them) give the same results as feeding the input whole.
    fn assert_split_invariant(l: SseLimits, input: &[u8]) {
        let whole = run_chunks(l, &[input], false);
        assert_eq!(run_chunks(l, &[input], true), whole, "whole via feed_bytes");
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run_chunks(l, &bytes, false), whole, "byte by byte");
        assert_eq!(run_chunks(l, &bytes, true), whole, "byte by byte, owned");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            for owned in [false, true] {
                assert_eq!(run_chunks(l, &[a, b], owned), whole, "split at {i}");
            }
            // Mixed: the first part copied, the second owned, and vice versa.
            let mut p = SseParser::new(l);
            let mut out = Vec::new();
            p.feed(a);
            out.extend(drain(&mut p));
            p.feed_bytes(Bytes::copy_from_slice(b));
            out.extend(drain(&mut p));
            let eof = p.finish();
            out.extend(drain(&mut p));
            assert_eq!((out, eof), whole, "mixed split at {i}");
        }
        if input.len() <= 64 {
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    let parts = [&input[..i], &input[i..j], &input[j..]];
                    assert_eq!(run_chunks(l, &parts, false), whole, "split at {i},{j}");
                    assert_eq!(run_chunks(l, &parts, true), whole, "owned split {i},{j}");
                }
            }
        }
        // Feeding everything before pulling anything, with both methods interleaved.
        let mut p = SseParser::new(l);
        for (k, c) in input.chunks(3).enumerate() {
            if k % 2 == 0 {
                p.feed(c);
            } else {
                p.feed_bytes(Bytes::copy_from_slice(c));
            }
        }
        let mut out = drain(&mut p);
        let eof = p.finish();
        out.extend(drain(&mut p));
        assert_eq!((out, eof), whole, "fed whole in pieces, then pulled");
    }

    // ----- basic rules -----

    #[test]
    fn defaults() {
        let l = SseLimits::default();
        assert_eq!(l.max_line_bytes, 1024 * 1024);
        assert_eq!(l.max_event_bytes, 16 * 1024 * 1024);
        assert_eq!(SseParser::default().limits(), l);
    }

    #[test]
    fn simple_message() {
        assert_eq!(events(b"data: hello\n\n"), vec![msg("hello")]);
        assert_eq!(
            run_whole(b"data: hello\n\n").1,
            Ok(SseEof::Clean),
            "ended at a boundary"
        );
    }

    #[test]
    fn event_types() {
        let input = b"event: data\ndata: a\n\nevent: control\ndata: b\n\nevent: other\ndata: c\n\n\
                      event:\ndata: d\n\nevent: message\ndata: e\n\ndata: f\n\n";
        let got = events(input);
        assert_eq!(
            got,
            vec![
                ev(EventType::Data, "a"),
                ev(EventType::Control, "b"),
                ev(EventType::Other("other".into()), "c"),
                msg("d"),
                msg("e"),
                msg("f"),
            ]
        );
        let names: Vec<&str> = got.iter().map(SseEvent::event_type).collect();
        assert_eq!(
            names,
            ["data", "control", "other", "message", "message", "message"]
        );
        assert!(got[0].is_data() && !got[0].is_control());
        assert!(got[1].is_control() && !got[1].is_data());
    }

    #[test]
    fn event_type_helpers() {
        assert_eq!(EventType::from("data"), EventType::Data);
        assert_eq!(EventType::from("control"), EventType::Control);
        assert_eq!(EventType::from("message"), EventType::Message);
        assert_eq!(EventType::from(""), EventType::Message);
        assert_eq!(EventType::from("x"), EventType::Other("x".into()));
        assert_eq!(EventType::Other("x".into()).to_string(), "x");
        assert_eq!(EventType::default(), EventType::Message);
        assert_eq!(EventType::from_bytes(b"\xff").as_str(), "\u{fffd}");
    }

    #[test]
    fn last_event_field_wins_and_type_resets_after_dispatch() {
        let got = events(b"event: a\nevent: data\ndata: x\n\ndata: y\n\n");
        assert_eq!(got, vec![ev(EventType::Data, "x"), msg("y")]);
    }

    #[test]
    fn multi_line_data_joined_with_newline() {
        assert_eq!(
            events(b"data: [\ndata: {\"k\":\"v\"},\ndata: {\"k\":\"w\"}\ndata: ]\n\n"),
            vec![msg("[\n{\"k\":\"v\"},\n{\"k\":\"w\"}\n]")]
        );
        assert_eq!(events(b"data: a\ndata: b\n\n"), vec![msg("a\nb")]);
        // An empty data line contributes an empty line.
        assert_eq!(events(b"data: a\ndata\ndata: b\n\n"), vec![msg("a\n\nb")]);
        assert_eq!(events(b"data\ndata\n\n"), vec![msg("\n")]);
        // A value ending with a newline-like content keeps everything but the final '\n'.
        assert_eq!(events(b"data: a\ndata:\n\n"), vec![msg("a\n")]);
    }

    #[test]
    fn empty_data_dispatches_empty_event() {
        assert_eq!(events(b"data\n\n"), vec![msg("")]);
        assert_eq!(events(b"data:\n\n"), vec![msg("")]);
        assert_eq!(events(b"data: \n\n"), vec![msg("")]);
    }

    #[test]
    fn no_data_no_dispatch_but_type_reset() {
        assert_eq!(events(b"event: control\n\ndata: x\n\n"), vec![msg("x")]);
        assert_eq!(events(b"\n\n\n"), vec![]);
        assert_eq!(events(b"id: 1\nretry: 5\n\n"), vec![]);
    }

    #[test]
    fn space_stripping() {
        assert_eq!(events(b"data:x\n\n"), vec![msg("x")]);
        assert_eq!(events(b"data: x\n\n"), vec![msg("x")]);
        assert_eq!(events(b"data:  x\n\n"), vec![msg(" x")]);
        assert_eq!(events(b"data:\tx\n\n"), vec![msg("\tx")]);
        assert_eq!(events(b"data: x \n\n"), vec![msg("x ")]);
        // Only the first colon separates.
        assert_eq!(events(b"data: a: b\n\n"), vec![msg("a: b")]);
        assert_eq!(events(b"data::\n\n"), vec![msg(":")]);
        assert_eq!(
            events(b"event:  data\ndata: x\n\n")[0].event_type(),
            " data"
        );
    }

    #[test]
    fn field_without_colon() {
        // "data" alone is a data field with an empty value.
        assert_eq!(events(b"data\n\n"), vec![msg("")]);
        // "event" alone sets an empty type, i.e. message.
        assert_eq!(events(b"event: data\nevent\ndata: x\n\n"), vec![msg("x")]);
        // "id" alone resets the last event id.
        let mut p = SseParser::default();
        p.feed(b"id: 7\ndata: a\n\nid\ndata: b\n\n");
        let got: Vec<_> = drain(&mut p).into_iter().map(Result::unwrap).collect();
        assert_eq!(got[0].id.as_deref(), Some("7"));
        assert_eq!(got[1].id, None);
        assert_eq!(p.last_event_id(), "");
        // Field names are case sensitive and exact.
        assert_eq!(
            events(b"Data: x\ndata : y\ndat: z\ndatax\ndata: ok\n\n"),
            vec![msg("ok")]
        );
    }

    #[test]
    fn comments_and_unknown_fields_ignored() {
        let input = b": hello\n:\ndata: a\n: comment between data lines\nfoo: bar\nfoo\n\
                      averyveryverylongfieldname: data\nx:\ndata: b\n\n:ping\n\n";
        assert_eq!(events(input), vec![msg("a\nb")]);
        // A comment alone is not an event.
        assert_eq!(run_whole(b": keepalive\n").1, Ok(SseEof::Clean));
    }

    #[test]
    fn line_endings() {
        let want = vec![msg("a\nb"), msg("c")];
        assert_eq!(events(b"data: a\ndata: b\n\ndata: c\n\n"), want);
        assert_eq!(events(b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"), want);
        assert_eq!(events(b"data: a\rdata: b\r\rdata: c\r\r"), want);
        assert_eq!(events(b"data: a\rdata: b\r\n\ndata: c\n\r\n"), want);
        // "\r\r\n" is CR then CRLF: two line endings, dispatching once.
        assert_eq!(
            events(b"data: a\r\r\ndata: c\n\n"),
            vec![msg("a"), msg("c")]
        );
        // "\n\r" is LF then CR: two line endings.
        assert_eq!(events(b"data: a\n\rdata: c\n\n"), vec![msg("a"), msg("c")]);
    }

    #[test]
    fn crlf_straddling_chunks_is_one_line_ending() {
        for owned in [false, true] {
            // If the LF counted as a second line ending, "a" would be dispatched alone.
            let (out, eof) = run_chunks(
                SseLimits::default(),
                &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"],
                owned,
            );
            assert_eq!(out, vec![Ok(msg("a\nb"))]);
            assert_eq!(eof, Ok(SseEof::Clean));
            // CR at the end of a chunk followed by an empty chunk and then the LF.
            let (out, _) = run_chunks(
                SseLimits::default(),
                &[b"data: a\r", b"", b"\n", b"\r", b"", b"\n"],
                owned,
            );
            assert_eq!(out, vec![Ok(msg("a"))]);
        }
    }

    #[test]
    fn lone_cr_at_chunk_end_is_a_line_ending_immediately() {
        let mut p = SseParser::default();
        p.feed(b"data: a\r\r");
        // Both lines are complete: the event is dispatched without waiting for more input.
        assert_eq!(drain(&mut p), vec![Ok(msg("a"))]);
        p.feed(b"\ndata: b\n\n");
        // The LF completes the CRLF of the blank line, it is not another blank line.
        assert_eq!(drain(&mut p), vec![Ok(msg("b"))]);
    }

    #[test]
    fn bom_skipped_once_at_start() {
        assert_eq!(events(b"\xEF\xBB\xBFdata: a\n\n"), vec![msg("a")]);
        // A BOM before a blank line or comment.
        assert_eq!(events(b"\xEF\xBB\xBF\ndata: a\n\n"), vec![msg("a")]);
        assert_eq!(events(b"\xEF\xBB\xBF: c\ndata: a\n\n"), vec![msg("a")]);
        // A second BOM is part of the field name, making it unknown.
        assert_eq!(
            events(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"),
            vec![msg("b")]
        );
        // A BOM elsewhere is not skipped.
        assert_eq!(
            events(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"),
            vec![msg("a")]
        );
        assert_eq!(
            events(b"data: \xEF\xBB\xBFx\n\n"),
            vec![ev(EventType::Message, "\u{feff}x")]
        );
        // A partial BOM is not a BOM.
        assert_eq!(events(b"\xEF\xBBdata: a\n\ndata: b\n\n"), vec![msg("b")]);
        // A BOM split across chunks.
        for owned in [false, true] {
            let (out, _) = run_chunks(
                SseLimits::default(),
                &[b"\xEF", b"\xBB", b"\xBFda", b"ta: a\n\n"],
                owned,
            );
            assert_eq!(out, vec![Ok(msg("a"))]);
        }
        // A stream that is only a BOM ended cleanly.
        assert_eq!(run_whole(b"\xEF\xBB\xBF").1, Ok(SseEof::Clean));
        assert_eq!(run_whole(b"\xEF\xBB").1, Ok(SseEof::IncompleteLine));
    }

    #[test]
    fn id_rules() {
        let mut p = SseParser::default();
        p.feed(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid: \ndata: d\n\nid:3\n\n");
        let got: Vec<_> = drain(&mut p).into_iter().map(Result::unwrap).collect();
        let ids: Vec<Option<&str>> = got.iter().map(|e| e.id.as_deref()).collect();
        // The id persists; one containing NUL is ignored; an empty one resets it.
        assert_eq!(ids, [Some("1"), Some("1"), Some("1"), None]);
        // An id in a block that dispatched nothing still sets the last event id.
        assert_eq!(p.last_event_id(), "3");
        p.feed(b"data: e\n\n");
        assert_eq!(drain(&mut p)[0].as_ref().unwrap().id.as_deref(), Some("3"));
        // Non UTF-8 is replaced.
        assert_eq!(
            events(b"id: \xff\ndata\n\n")[0].id.as_deref(),
            Some("\u{fffd}")
        );
    }

    #[test]
    fn retry_rules() {
        let mut p = SseParser::default();
        p.feed(
            b"retry: 1500\ndata: a\n\ndata: b\n\nretry: 12x\ndata: c\n\nretry: -1\nretry:\nretry\n\
                 retry: 1 0\nretry:  5\ndata: d\n\nretry: 99999999999999999999999\ndata: e\n\n",
        );
        let got: Vec<_> = drain(&mut p).into_iter().map(Result::unwrap).collect();
        let retries: Vec<Option<u64>> = got.iter().map(|e| e.retry).collect();
        assert_eq!(retries, [Some(1500), None, None, None, None]);
        assert_eq!(p.retry(), Some(1500));
        p.feed(b"retry: 0\n\n");
        assert!(drain(&mut p).is_empty());
        assert_eq!(p.retry(), Some(0));
        assert_eq!(parse_retry(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_retry(b"18446744073709551616"), None);
        assert_eq!(parse_retry(b""), None);
        assert_eq!(parse_retry(b"007"), Some(7));
    }

    #[test]
    fn data_bytes_are_raw() {
        let got = events(b"data: \xff\xfe\0\x01\n\n");
        assert_eq!(&got[0].data[..], b"\xff\xfe\0\x01");
    }

    #[test]
    fn eof_discards_incomplete_event_and_line() {
        let (out, eof) = run_whole(b"data: a\n\ndata: b\n");
        assert_eq!(out, vec![Ok(msg("a"))]);
        assert_eq!(eof, Ok(SseEof::IncompleteEvent));
        let (out, eof) = run_whole(b"data: a\n\ndata: b");
        assert_eq!(out, vec![Ok(msg("a"))]);
        assert_eq!(eof, Ok(SseEof::IncompleteLine));
        // A final line with no line ending is not processed (no event, no id).
        let mut p = SseParser::default();
        p.feed(b"data: a\n\nid: 9");
        assert_eq!(drain(&mut p).len(), 1);
        assert_eq!(p.finish(), Ok(SseEof::IncompleteLine));
        assert_eq!(p.last_event_id(), "");
        // A blank line ending with a lone CR at EOF completes the event.
        let (out, eof) = run_whole(b"data: a\r\r");
        assert_eq!(out, vec![Ok(msg("a"))]);
        assert_eq!(eof, Ok(SseEof::Clean));
        // Empty input, comment-only input.
        assert_eq!(run_whole(b""), (vec![], Ok(SseEof::Clean)));
        assert_eq!(run_whole(b":x\n"), (vec![], Ok(SseEof::Clean)));
        assert_eq!(run_whole(b"event: x\n").1, Ok(SseEof::IncompleteEvent));
    }

    #[test]
    fn finish_keeps_unpulled_events_and_is_idempotent() {
        let mut p = SseParser::default();
        p.feed(b"data: a\n\ndata: b\n\ndata: c");
        assert_eq!(p.finish(), Ok(SseEof::IncompleteLine));
        assert_eq!(p.finish(), Ok(SseEof::IncompleteLine));
        // Input after finish is ignored.
        p.feed(b"\n\n");
        p.feed_bytes(Bytes::from_static(b"data: d\n\n"));
        assert_eq!(drain(&mut p), vec![Ok(msg("a")), Ok(msg("b"))]);
        assert_eq!(p.buffered_bytes(), 0);
    }

    #[test]
    fn zero_copy_single_data_line() {
        let chunk = Bytes::from(b"event: data\ndata: 0123456789\n\n".to_vec());
        let base = chunk.as_ptr() as usize;
        let mut p = SseParser::default();
        p.feed_bytes(chunk.clone());
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(&e.data[..], b"0123456789");
        // The data points into the fed chunk.
        assert_eq!(e.data.as_ptr() as usize, base + "event: data\ndata: ".len());
    }

    // ----- limits -----

    #[test]
    fn line_too_long() {
        let l = limits(8, 100);
        // Exactly at the limit is fine.
        let (out, _) = run_chunks(l, &[b"data: ab\n\n"], false);
        assert_eq!(out, vec![Ok(msg("ab"))]);
        let (out, eof) = run_chunks(l, &[b"data: abc\n\n"], false);
        assert_eq!(out, vec![Err(SseError::LineTooLong { limit: 8 })]);
        assert_eq!(eof, Err(SseError::LineTooLong { limit: 8 }));
        // Comments and unknown fields count too.
        let (out, _) = run_chunks(l, &[b": 34567890\n"], true);
        assert_eq!(out, vec![Err(SseError::LineTooLong { limit: 8 })]);
        // Split every way: same result.
        assert_split_invariant(l, b"data: ab\r\ndata: ab\r\n\r\ndata: abc\n\ndata: x\n\n");
        assert_split_invariant(l, b"data: a\n\n:12345678\r\n\r\n");
    }

    #[test]
    fn line_that_never_ends_is_detected_early_with_bounded_memory() {
        let l = limits(1024, 1 << 20);
        for owned in [false, true] {
            let mut p = SseParser::new(l);
            p.feed(b"data: ");
            let chunk = vec![b'x'; 100];
            let mut fed = 6;
            let mut error = None;
            for _ in 0..1_000_000 {
                if owned {
                    p.feed_bytes(Bytes::copy_from_slice(&chunk));
                } else {
                    p.feed(&chunk);
                }
                fed += chunk.len();
                assert!(p.buffered_bytes() <= 1024 + chunk.len());
                if let Some(r) = p.next_event() {
                    error = Some((r, fed));
                    break;
                }
            }
            let (r, fed) = error.expect("the overflow is detected");
            assert_eq!(r, Err(SseError::LineTooLong { limit: 1024 }));
            assert!(fed <= 1024 + chunk.len(), "detected after {fed} bytes");
            // The parser stays failed, drops its memory and ignores input.
            assert_eq!(p.buffered_bytes(), 0);
            p.feed(b"\n\ndata: x\n\n");
            p.feed_bytes(Bytes::from_static(b"data: y\n\n"));
            assert_eq!(p.buffered_bytes(), 0);
            assert_eq!(p.next_event(), None);
            assert_eq!(p.error(), Some(&SseError::LineTooLong { limit: 1024 }));
            assert_eq!(p.finish(), Err(SseError::LineTooLong { limit: 1024 }));
            assert_eq!(p.next_event(), None);
        }
    }

    #[test]
    fn long_line_in_one_big_chunk_with_default_limits() {
        let mut input = b"data: ".to_vec();
        input.resize(SseLimits::DEFAULT_MAX_LINE_BYTES + 1, b'y');
        let mut p = SseParser::default();
        p.feed(&input);
        assert_eq!(
            p.next_event(),
            Some(Err(SseError::LineTooLong {
                limit: SseLimits::DEFAULT_MAX_LINE_BYTES
            }))
        );
        assert_eq!(p.next_event(), None);
    }

    #[test]
    fn event_too_large() {
        let l = limits(100, 10);
        // 4 + 1 + 5 = 10 bytes: at the limit.
        let (out, _) = run_chunks(l, &[b"data: abcd\ndata: efghi\n\n"], false);
        assert_eq!(out, vec![Ok(msg("abcd\nefghi"))]);
        // 11 bytes.
        let (out, eof) = run_chunks(l, &[b"data: a\n\ndata: abcd\ndata: efghij\n\n"], false);
        assert_eq!(
            out,
            vec![Ok(msg("a")), Err(SseError::EventTooLarge { limit: 10 })]
        );
        assert_eq!(eof, Err(SseError::EventTooLarge { limit: 10 }));
        // A single data line over the event limit but within the line limit.
        let (out, _) = run_chunks(l, &[b"data: 0123456789A\n\n"], true);
        assert_eq!(out, vec![Err(SseError::EventTooLarge { limit: 10 })]);
        // Many empty data lines count their newlines.
        let (out, _) = run_chunks(l, &[&b"data\n".repeat(12)], false);
        assert_eq!(out, vec![Err(SseError::EventTooLarge { limit: 10 })]);
        // The limit is per event.
        let (out, _) = run_chunks(l, &[&b"data: 0123456789\n\n".repeat(3)], false);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(Result::is_ok));
        assert_split_invariant(
            l,
            b"data: abcd\ndata: efghi\n\ndata: abcd\r\ndata: efghij\n\n",
        );
    }

    #[test]
    fn error_in_finish_drain() {
        let mut p = SseParser::new(limits(100, 3));
        p.feed(b"data: a\n\ndata: abcd\n\n");
        assert_eq!(p.finish(), Err(SseError::EventTooLarge { limit: 3 }));
        assert_eq!(
            drain(&mut p),
            vec![Ok(msg("a")), Err(SseError::EventTooLarge { limit: 3 })]
        );
        assert_eq!(p.finish(), Err(SseError::EventTooLarge { limit: 3 }));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            SseError::LineTooLong { limit: 5 }.to_string(),
            "SSE line longer than the limit of 5 bytes"
        );
        assert!(SseError::EventTooLarge { limit: 5 }
            .to_string()
            .contains('5'));
        assert!(SseError::InvalidControl("x".into())
            .to_string()
            .contains("control"));
        assert!(SseError::InvalidBase64("x".into())
            .to_string()
            .contains("base64"));
    }

    // ----- chunking equivalence on fixed inputs -----

    #[test]
    fn split_at_every_position() {
        let inputs: &[&[u8]] = &[
            b"\xEF\xBB\xBFevent: data\r\ndata: [\r\ndata: {\"k\":\"v\"}\r\ndata: ]\r\n\r\n\
              event: control\r\ndata: {\"streamNextOffset\":\"1_2\",\"streamCursor\":\"c\"}\r\n\r\n",
            b"data: a\rdata: b\r\r: c\r\rid: 1\nretry: 10\ndata\n\nevent: x\nfoo\n\ndata: tail",
            b"data: a\n\r\n\r\r\n\ndata: b\r\n\r",
            b"\r\n\r\n\r\r\n\n\n\r",
            b"data:x\ndata\r\nevent\n\n:\rid\ndata:  y \n\n",
        ];
        for input in inputs {
            assert_split_invariant(SseLimits::default(), input);
        }
    }

    #[test]
    fn large_events_any_chunking() {
        let mut input = Vec::new();
        let payload: Vec<u8> = (0..70_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        // More than BIG_CHUNK in all, so that feeding it whole takes the arena path.
        for _ in 0..4 {
            input.extend_from_slice(b"event: data\r\ndata: ");
            input.extend_from_slice(&payload);
            input.extend_from_slice(b"\r\n\r\nevent: control\r\ndata: {}\r\n\r\n");
        }
        assert!(input.len() > BIG_CHUNK);
        let whole = run_whole(&input);
        assert_eq!(whole.0.len(), 8);
        assert_eq!(&whole.0[0].as_ref().unwrap().data[..], &payload[..]);
        for size in [1usize, 7, 4096, 65_536, 65_537, 100_000] {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            assert_eq!(run_chunks(SseLimits::default(), &chunks, false), whole);
            assert_eq!(run_chunks(SseLimits::default(), &chunks, true), whole);
        }
    }

    // ----- control events -----

    #[test]
    fn control_parse_good() {
        let c = ControlEvent::parse(br#"{"streamNextOffset":"123456_789","streamCursor":"abc"}"#)
            .unwrap();
        assert_eq!(
            c,
            ControlEvent {
                stream_next_offset: "123456_789".into(),
                stream_cursor: Some("abc".into()),
                up_to_date: false,
                stream_closed: false,
            }
        );
        let c = ControlEvent::parse(
            b" {\"streamNextOffset\":\"9\",\"streamClosed\":true,\"upToDate\":true,\"extra\":[1,{}]}\n",
        )
        .unwrap();
        assert!(c.stream_closed && c.up_to_date && c.is_eof());
        assert_eq!(c.stream_cursor, None);
        let c = ControlEvent::parse(br#"{"streamNextOffset":"","streamCursor":null}"#).unwrap();
        assert_eq!(c.stream_next_offset, "");
        assert_eq!(c.stream_cursor, None);
        assert!(!c.is_eof());
        // Through an event.
        let got = events(
            b"event: control\ndata: {\"streamNextOffset\":\"5\",\ndata: \"upToDate\":true}\n\n",
        );
        assert!(got[0].is_control());
        assert_eq!(
            got[0].control().unwrap(),
            ControlEvent {
                stream_next_offset: "5".into(),
                stream_cursor: None,
                up_to_date: true,
                stream_closed: false,
            }
        );
    }

    #[test]
    fn control_parse_bad() {
        let bad: &[&[u8]] = &[
            b"",
            b"   ",
            b"{",
            b"not json",
            b"{}",
            b"null",
            b"[\"1\"]",
            b"\"x\"",
            br#"{"streamNextOffset":123}"#,
            br#"{"streamNextOffset":null}"#,
            br#"{"streamNextOffset":"1","upToDate":"true"}"#,
            br#"{"streamNextOffset":"1","streamClosed":1}"#,
            br#"{"streamNextOffset":"1","upToDate":null}"#,
            br#"{"streamNextOffset":"1","streamCursor":5}"#,
            br#"{"streamNextOffset":"1"} trailing"#,
            br#"{"streamNextOffset":"1","streamNextOffset":"2"}"#,
            b"{\"streamNextOffset\":\"\xff\"}",
        ];
        for data in bad {
            match ControlEvent::parse(data) {
                Err(SseError::InvalidControl(msg)) => assert!(!msg.is_empty()),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(data)),
            }
        }
    }

    #[test]
    fn control_serializes_camel_case() {
        let c = ControlEvent {
            stream_next_offset: "1".into(),
            stream_cursor: None,
            up_to_date: true,
            stream_closed: false,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"streamNextOffset":"1","upToDate":true}"#);
        assert_eq!(ControlEvent::parse(json.as_bytes()).unwrap(), c);
    }

    // ----- base64 -----

    #[test]
    fn base64_good() {
        assert_eq!(decode_base64_data(b"").unwrap(), Bytes::new());
        assert_eq!(
            decode_base64_data(b"AQIDBAUG").unwrap(),
            Bytes::from_static(&[1, 2, 3, 4, 5, 6])
        );
        // The spec's example, split over two data lines.
        let got = events(b"event: data\ndata: AQIDBAUG\ndata: BwgJCg==\n\n");
        assert_eq!(
            decode_base64_data(&got[0].data).unwrap(),
            Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        );
        assert_eq!(
            decode_base64_data(b"AQ\r\nID\rBA\n==\n").unwrap(),
            Bytes::from_static(&[1, 2, 3, 4])
        );
        assert_eq!(
            decode_base64_data(b"+/+/").unwrap(),
            Bytes::from_static(&[0xfb, 0xff, 0xbf])
        );
        assert_eq!(decode_base64_data(b"\n\r\n").unwrap(), Bytes::new());
        assert_eq!(
            decode_base64_data(b"aGk=").unwrap(),
            Bytes::from_static(b"hi")
        );
    }

    #[test]
    fn base64_bad() {
        let bad: &[&[u8]] = &[
            b"A",
            b"AQ",
            b"AQI",
            b"AQ=",
            b"AQ==AQ==",
            b"AQID BAUG",
            b"-_-_",
            b"AQ\0=",
            b"AR==",
            b"====",
            b"\xff\xff\xff\xff",
            b"aGk",
        ];
        for data in bad {
            match decode_base64_data(data) {
                Err(SseError::InvalidBase64(msg)) => assert!(!msg.is_empty()),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(data)),
            }
        }
    }

    // ----- reference model and property tests -----

    /// A straightforward implementation of the WHATWG rules over the whole input.
    fn reference(input: &[u8]) -> (Vec<SseEvent>, SseEof) {
        let input = input.strip_prefix(BOM).unwrap_or(input);
        let mut lines = Vec::new();
        let mut i = 0;
        let mut start = 0;
        while i < input.len() {
            match input[i] {
                b'\n' => {
                    lines.push(&input[start..i]);
                    i += 1;
                    start = i;
                }
                b'\r' => {
                    lines.push(&input[start..i]);
                    i += 1;
                    if input.get(i) == Some(&b'\n') {
                        i += 1;
                    }
                    start = i;
                }
                _ => i += 1,
            }
        }
        let partial = start < input.len();
        let mut out = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        let mut has_data = false;
        let mut event_type = String::new();
        let mut id = String::new();
        let mut retry = None;
        let mut pending = false;
        for line in lines {
            if line.is_empty() {
                if has_data {
                    out.push(SseEvent {
                        event: EventType::from_bytes(event_type.as_bytes()),
                        data: Bytes::from(data.clone()),
                        id: (!id.is_empty()).then(|| id.clone()),
                        retry,
                    });
                }
                data.clear();
                has_data = false;
                event_type.clear();
                retry = None;
                pending = false;
                continue;
            }
            if line[0] == b':' {
                continue;
            }
            pending = true;
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            match name {
                b"event" => event_type = String::from_utf8_lossy(value).into_owned(),
                b"data" => {
                    if has_data {
                        data.push(b'\n');
                    }
                    data.extend_from_slice(value);
                    has_data = true;
                }
                b"id" if !value.contains(&0) => id = String::from_utf8_lossy(value).into_owned(),
                b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                    if let Ok(v) = std::str::from_utf8(value).unwrap().parse::<u64>() {
                        retry = Some(v);
                    }
                }
                _ => {}
            }
        }
        let eof = if partial {
            SseEof::IncompleteLine
        } else if pending {
            SseEof::IncompleteEvent
        } else {
            SseEof::Clean
        };
        (out, eof)
    }

    #[test]
    fn reference_agrees_on_fixed_inputs() {
        let input =
            b"\xEF\xBB\xBFid: 1\r\nevent: data\rdata: a\n\ndata: b\r\n\r\nretry: 3\ndata\n\nx";
        let (out, eof) = run_whole(input);
        let out: Vec<_> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!((out, eof.unwrap()), reference(input));
    }

    /// Pieces that random event streams are made of.
    fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"".to_vec()),
            Just(b"data".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"data: ".to_vec()),
            Just(b"event: data".to_vec()),
            Just(b"event: control".to_vec()),
            Just(b"event".to_vec()),
            Just(b"id: 42".to_vec()),
            Just(b"id".to_vec()),
            Just(b"id: a\0b".to_vec()),
            Just(b"retry: 250".to_vec()),
            Just(b"retry: 2x".to_vec()),
            Just(b": comment".to_vec()),
            Just(b":".to_vec()),
            Just(b"dat".to_vec()),
            Just(b"datas: x".to_vec()),
            Just(b"unknown: data".to_vec()),
            "[ -~]{0,12}".prop_map(|s| format!("data: {s}").into_bytes()),
            "[ -~]{0,12}".prop_map(|s| format!("data:{s}").into_bytes()),
            "[a-z]{0,8}".prop_map(|s| format!("event: {s}").into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ]
    }

    fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
        let terminator = prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])];
        (
            any::<bool>(),
            proptest::collection::vec((line_strategy(), terminator), 0..24),
            proptest::collection::vec(any::<u8>(), 0..4),
        )
            .prop_map(|(bom, lines, tail)| {
                let mut out = Vec::new();
                if bom {
                    out.extend_from_slice(BOM);
                }
                for (line, term) in lines {
                    out.extend_from_slice(&line);
                    out.extend_from_slice(term);
                }
                out.extend_from_slice(&tail);
                out
            })
    }

    /// Cuts `input` at the given (sorted, deduplicated, clamped) positions.
    fn cut<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut parts = Vec::new();
        let mut prev = 0;
        for c in cuts {
            parts.push(&input[prev..c]);
            prev = c;
        }
        parts.push(&input[prev..]);
        parts
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_chunking_matches_whole_and_reference(
            input in stream_strategy(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            owned_mask in any::<u16>(),
        ) {
            let whole = run_whole(&input);
            let (want_events, want_eof) = reference(&input);
            let got: Vec<SseEvent> = whole.0.iter().cloned().map(Result::unwrap).collect();
            prop_assert_eq!(&got, &want_events);
            prop_assert_eq!(whole.1.clone(), Ok(want_eof));

            let parts = cut(&input, &cuts);
            let mut p = SseParser::default();
            let mut out = Vec::new();
            for (k, part) in parts.iter().enumerate() {
                if owned_mask & (1 << (k % 16)) != 0 {
                    p.feed_bytes(Bytes::copy_from_slice(part));
                } else {
                    p.feed(part);
                }
                out.extend(drain(&mut p));
            }
            let eof = p.finish();
            out.extend(drain(&mut p));
            prop_assert_eq!((out, eof), whole);
        }

        #[test]
        fn random_chunking_with_small_limits(
            input in stream_strategy(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            max_line in 0usize..24,
            max_event in 0usize..24,
        ) {
            let l = limits(max_line, max_event);
            let whole = run_chunks(l, &[&input], false);
            let parts = cut(&input, &cuts);
            prop_assert_eq!(run_chunks(l, &parts, false), whole.clone());
            prop_assert_eq!(run_chunks(l, &parts, true), whole.clone());
            // An error, if any, is the last result, and matches finish.
            let errors = whole.0.iter().filter(|r| r.is_err()).count();
            prop_assert!(errors <= 1);
            if errors == 1 {
                prop_assert!(whole.0.last().unwrap().is_err());
                prop_assert_eq!(whole.0.last().unwrap().clone().map(|_| SseEof::Clean), whole.1.clone());
            }
            for r in whole.0.iter().flatten() {
                prop_assert!(r.data.len() <= max_event);
            }
        }

        #[test]
        fn base64_roundtrip(payload in proptest::collection::vec(any::<u8>(), 0..200), width in 1usize..20) {
            let text = base64::engine::general_purpose::STANDARD.encode(&payload);
            let mut wrapped = Vec::new();
            for (k, piece) in text.as_bytes().chunks(width).enumerate() {
                if k > 0 {
                    wrapped.extend_from_slice(if k % 2 == 0 { b"\n" } else { b"\r\n" });
                }
                wrapped.extend_from_slice(piece);
            }
            prop_assert_eq!(decode_base64_data(&wrapped).unwrap(), Bytes::from(payload));
        }
    }
}

#[cfg(test)]
mod keep_space_tests {
    use super::*;

    #[test]
    fn keeping_the_data_space_keeps_payload_spaces() {
        let mut p = SseParser::default().keep_data_space(true);
        p.feed(b"event: data\ndata: two\ndata:one\n\n");
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(&e.data[..], b" two\none");
        assert_eq!(
            e.event_type(),
            "data",
            "other fields still strip their space"
        );
        let mut p = SseParser::default();
        p.feed(b"data: two\n\n");
        assert_eq!(&p.next_event().unwrap().unwrap().data[..], b"two");
    }
}
