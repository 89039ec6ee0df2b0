//! The [`Reader`]: consumer offset progression as a sans-IO state machine (DESIGN.md section 2).
//!
//! A reader owns a stream offset and a cursor. It emits one `GET` at a time
//! ([`Reader::poll_transmit`]), is fed what the driver saw ([`Reader::handle_input`]), and
//! reports [`ReaderEvent`]s ([`Reader::poll_event`]). It releases bytes with the offset that
//! follows them, except the pieces of a large catch-up or long-poll body released before its
//! end ([`Chunk::partial`], see [`ReaderConfig::partial_chunks_over`]), which carry the
//! checkpoint before the response. It echoes the server's cursor on live requests, retries transient
//! failures with the [`RetryPolicy`](crate::retry::RetryPolicy)'s backoff, and after EOF never sends
//! another request.
//!
//! # Modes
//!
//! ```text
//!  CatchUp   GET ?offset=o --200--> GET ?offset=o' --> ... --Stream-Up-To-Date--> UpToDate, Done (end)
//!
//!  Auto      GET ?offset=o --> ... --Stream-Up-To-Date--> GET ?cursor=c&live=long-poll&offset=o'
//!                                                           ^                         |
//!                                                           '-- 200 data / 204 -------'
//!
//!  LongPoll  GET ?cursor=c&live=long-poll&offset=o --200 data / 204 timeout--> (again from the
//!            returned Stream-Next-Offset, echoing Stream-Cursor)
//!
//!  Sse       GET ?cursor=c&live=sse&offset=o --> data, data, control, data, control, ...
//!              |  data events are held until their control, then released with its offset
//!              |  body ends without streamClosed --> reconnect from the last control offset
//!              '  N connections ending fast without progress --> FellBackToLongPoll, LongPoll
//!
//!  any mode  Stream-Closed: true / streamClosed: true --> Closed (end: no request ever again)
//!            429 / 5xx / transport failure --> Retrying --(poll_timeout)--> same request again
//!            400 / 404 / 410 / other 4xx, invalid response, limit, retries exhausted --> Failed (end)
//! ```
//!
//! # The machine
//!
//! ```text
//!            poll_transmit                 Input::End (response applied)
//!   Idle ------------------> InFlight ---------------------------------> Idle
//!    ^                        |   |  \
//!    |   handle_timeout       |   |   '-- 429 / 5xx / transport --> Waiting --(deadline)--.
//!    '------------------------+---+-------------------------------------------------------'
//!                             |
//!                             '-- EOF, terminal error, CatchUp done, stop() --> Finished
//! ```
//!
//! At most one request is in flight. Request ids are unique and increase. A request the reader
//! abandons (limits, SSE idle, EOF seen in SSE, [`Reader::stop`]) is reported by
//! [`Reader::poll_cancel`]; inputs for it are ignored afterwards.
//!
//! # Durable state
//!
//! [`Reader::snapshot`] takes a [`ReaderSnapshot`]: the checkpoint offset (after every event
//! handed out), the cursor, the mode and phase (auto catch-up finished, SSE fallen back to
//! long-poll) and whether EOF was handed out. [`Reader::restore`] continues from it, in this
//! process or another: nothing handed out is repeated, nothing after it is skipped, and a
//! reader restored after EOF sends nothing (its only event is [`ReaderEvent::Closed`]).
//!
//! # Driving it
//!
//! After every `handle_*` call or command, drain `poll_cancel`, then `poll_transmit`, then
//! `poll_event`, and wait until the earliest of: an input, [`Reader::poll_timeout`], a command.
//!
//! ```
//! use bytes::Bytes;
//! use ds_proto::reader::{ReadMode, Reader, ReaderConfig, ReaderEvent};
//! use ds_proto::Input;
//! use std::time::Instant;
//!
//! let config = ReaderConfig {
//!     mode: ReadMode::CatchUp,
//!     ..ReaderConfig::new("http://127.0.0.1:4437/v1/stream/s")
//! };
//! let now = Instant::now();
//! let mut reader = Reader::new(config, now).unwrap();
//! let tx = reader.poll_transmit(now).expect("a request");
//! assert_eq!(tx.request.uri().query(), Some("offset=-1"));
//! // The driver performs the exchange and feeds back what it saw.
//! let head = http::Response::builder()
//!     .status(200)
//!     .header("Stream-Next-Offset", "0_5")
//!     .header("Stream-Up-To-Date", "true")
//!     .body(())
//!     .unwrap()
//!     .into_parts()
//!     .0;
//! reader.handle_input(Input::Head { id: tx.id, parts: head }, now);
//! reader.handle_input(Input::Body { id: tx.id, chunk: Bytes::from_static(b"hello") }, now);
//! reader.handle_input(Input::End { id: tx.id }, now);
//! let Some(ReaderEvent::Data(chunk)) = reader.poll_event() else { panic!() };
//! assert_eq!(&chunk.data[..], b"hello");
//! assert_eq!(chunk.next_offset.as_str(), "0_5");
//! assert!(matches!(reader.poll_event(), Some(ReaderEvent::UpToDate { .. })));
//! assert_eq!(reader.poll_event(), Some(ReaderEvent::Done));
//! assert!(reader.poll_transmit(now).is_none());
//! ```

mod config;
mod event;
mod machine;
mod snapshot;

pub use config::{ReadMode, ReaderConfig, SseFallback};
pub use event::{Chunk, ReaderEvent};
pub use machine::Reader;
pub use snapshot::ReaderSnapshot;
