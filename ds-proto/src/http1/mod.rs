//! A sans-IO HTTP/1.1 client codec (feature `http1`), for embedders whose runtime gives them
//! only a socket.
//!
//! [`encode_request`] turns an `http::Request<Bytes>` into bytes to write; a [`Connection`]
//! owns the state of one keep-alive connection: it encodes a [`Transmit`](crate::io::Transmit)
//! ([`Connection::send`]), takes the bytes read from the socket in any pieces
//! ([`Connection::feed`], [`Connection::on_eof`]) and hands out the
//! [`Input`](crate::io::Input)s a state machine expects ([`Connection::poll_input`]):
//! one `Head`, body chunks as they arrive, then `End`, or `Failed`.
//!
//! The codec never touches a socket or a clock: the embedder writes the bytes, reads the
//! socket, and enforces the [`Transmit::deadline`](crate::io::Transmit::deadline) itself
//! (on expiry it reports [`TransportErrorKind::Timeout`](crate::io::TransportErrorKind::Timeout)
//! and drops the connection).
//!
//! # Usage
//!
//! ```
//! use bytes::Bytes;
//! use ds_proto::http1::{Connection, Limits};
//! use ds_proto::io::{Input, RequestId, Transmit};
//!
//! let mut conn = Connection::new(Limits::default());
//! let transmit = Transmit {
//!     id: RequestId(7),
//!     request: http::Request::get("http://example.com/v1/stream/a?offset=-1")
//!         .body(Bytes::new())
//!         .unwrap(),
//!     deadline: None,
//! };
//! let mut wire = Vec::new();
//! conn.send(&transmit, &mut wire).unwrap();
//! // ... write `wire` to the socket, then feed what the socket returns, in any pieces:
//! let mut inputs = Vec::new();
//! for piece in [&b"HTTP/1.1 200 OK\r\nContent-Len"[..], b"gth: 5\r\n\r\nhel", b"lo"] {
//!     conn.feed(piece);
//!     while let Some(input) = conn.poll_input() {
//!         inputs.push(input); // in a driver: machine.handle_input(input, now)
//!     }
//! }
//! assert!(matches!(&inputs[0], Input::Head { id: RequestId(7), parts } if parts.status == 200));
//! assert!(matches!(&inputs[1], Input::Body { chunk, .. } if &chunk[..] == b"hel"));
//! assert!(matches!(&inputs[2], Input::Body { chunk, .. } if &chunk[..] == b"lo"));
//! assert!(matches!(inputs[3], Input::End { id: RequestId(7) }));
//! // The connection is idle again: it can carry the next request.
//! assert!(conn.is_idle() && !conn.must_close());
//! ```
//!
//! # Rules
//!
//! - **One exchange at a time** by default: on a [`Connection::new`] connection,
//!   [`Connection::send`] is refused until the previous exchange has ended (`End` or `Failed`
//!   was polled). Bytes that arrive when no exchange is waiting for them (after the last
//!   complete response, or on an idle connection) are unsolicited: they are dropped and the
//!   connection [must be closed](Connection::must_close).
//! - **Pipelining** (RFC 9112 section 9.3.2), on a [`Connection::pipelined`] connection of
//!   depth `d`: up to `d` requests may be sent before their responses arrive
//!   ([`Connection::can_send`], [`Connection::in_flight`]); responses are matched to requests
//!   in the order the requests were sent (FIFO), and the inputs of one exchange all come
//!   before those of the next. A request asking for `Connection: close` is the last one the
//!   connection takes. When the connection ends with requests outstanding, each of them gets
//!   exactly one `Failed`, in order, and the outcome it reports follows what the codec can
//!   prove (the producer's indeterminate rule: only a request known not processed may be
//!   re-sent as if never sent):
//!   - the exchange in progress (the oldest outstanding) fails as before: cut-off responses
//!     and EOF give [`Http1Error::UnexpectedEof`] (`ConnectionReset`: outcome unknown), unless
//!     no byte of its response arrived and its request was not fully written
//!     ([`Connection::on_written`]), which gives [`Http1Error::NotProcessed`];
//!   - a response announcing `Connection: close` ends the connection after it: the requests
//!     behind it fail at once with [`Http1Error::NotProcessed`] (`Connect`: known not
//!     processed, safe to re-send on a new connection), because a server that announces the
//!     close must not process further requests on the connection (RFC 9112 section 9.6);
//!   - otherwise (EOF without an announced close, a response whose body runs until close, a
//!     decoding error) the requests behind it fail with [`Http1Error::PipelineAborted`]
//!     (`ConnectionReset`: outcome unknown), except those not fully written, which are
//!     [`NotProcessed`](Http1Error::NotProcessed). A server may process pipelined requests
//!     and lose their responses (a reset discards unread data; a crash writes nothing), so
//!     "no response byte arrived" alone proves nothing.
//!
//!   [`Connection::pipelining_refused`] turns true when the server closed the connection
//!   (EOF) with pipelined requests outstanding after answering earlier ones with keep-alive:
//!   the sign of a server or proxy that does not pipeline; the caller falls back to one
//!   request at a time.
//! - **Response framing** (RFC 9112 section 6.3): responses to `HEAD` and `1xx`/`204`/`304`
//!   responses have no body; otherwise `Transfer-Encoding` ending in `chunked` means a chunked
//!   body (extensions and trailers are read and dropped), another `Transfer-Encoding` or no
//!   framing header at all means the body runs until the server closes the connection, and
//!   `Content-Length` gives the length. Interim `1xx` responses (`100 Continue`, `103 Early
//!   Hints`) are skipped; `101 Switching Protocols` is an error (the codec never asks for an
//!   upgrade).
//! - **Keep-alive**: [`Connection::must_close`] turns true when the response said
//!   `Connection: close`, was `HTTP/1.0` without `Connection: keep-alive`, had a body running
//!   until close, had both `Transfer-Encoding` and `Content-Length`, when the request asked
//!   for `Connection: close`, after a decoding error, and after EOF.
//! - **Errors**: a decoding error ends the exchange with `Input::Failed` whose kind is
//!   [`Protocol`](crate::io::TransportErrorKind::Protocol); EOF before the response ended
//!   (including EOF before any byte of it, the usual sign of a keep-alive connection the server
//!   closed while idle) gives [`ConnectionReset`](crate::io::TransportErrorKind::ConnectionReset).
//!   The typed error stays available from [`Connection::error`].
//!
//! # Cost
//!
//! [`Connection::feed`] only appends to a buffer; [`Connection::poll_input`] does the work,
//! and examines each byte a bounded number of times: the head is searched once for line ends
//! (the search resumes where it stopped), the status line is parsed once as soon as it is
//! complete (so a peer that does not speak HTTP is caught early), and the whole head is parsed
//! once by `httparse` when its blank line has arrived. Body chunks are split off the buffer
//! without copying. Memory is bounded by the [`Limits`] plus what was fed and not yet polled.

mod conn;
mod encode;
mod error;
#[cfg(test)]
mod tests;

pub use conn::Connection;
pub use encode::{encode_request, encode_request_head};
pub use error::Http1Error;

/// Size limits enforced by a [`Connection`] on responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Maximum length of a response head (status line, headers and the blank line), and of
    /// the trailer section of a chunked body. Default: 64 KiB.
    pub max_header_bytes: usize,
    /// Maximum number of header fields in a response head. Default: 100.
    pub max_headers: usize,
    /// Maximum length of one chunk-size line of a chunked body, extensions and line ending
    /// included. Default: 1 KiB.
    pub max_chunk_line_bytes: usize,
}

impl Limits {
    /// Default for [`Limits::max_header_bytes`]: 64 KiB.
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;
    /// Default for [`Limits::max_headers`]: 100.
    pub const DEFAULT_MAX_HEADERS: usize = 100;
    /// Default for [`Limits::max_chunk_line_bytes`]: 1 KiB.
    pub const DEFAULT_MAX_CHUNK_LINE_BYTES: usize = 1 << 10;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            max_headers: Self::DEFAULT_MAX_HEADERS,
            max_chunk_line_bytes: Self::DEFAULT_MAX_CHUNK_LINE_BYTES,
        }
    }
}
