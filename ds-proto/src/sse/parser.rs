//! The incremental SSE parser: the WHATWG event-stream rules over chunks split anywhere
//! (see the [module documentation](super)).

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::ControlEvent;

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

#[cfg(test)]
mod tests;
