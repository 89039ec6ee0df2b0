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
//! out as raw bytes ([`Bytes`](bytes::Bytes)), since Durable Streams payloads are bytes. Event type and ID
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

mod control;
mod parser;

pub use control::{decode_base64_data, ControlEvent};
pub use parser::{EventType, SseEof, SseError, SseEvent, SseLimits, SseParser};
