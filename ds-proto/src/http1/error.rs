//! The errors of the HTTP/1.1 codec.

use crate::io::{TransportError, TransportErrorKind};

/// An error of the HTTP/1.1 codec: a request that cannot be encoded, a misuse of a
/// [`Connection`](super::Connection), or a response that cannot be decoded.
///
/// Decoding errors also reach the state machine flattened, as the [`TransportError`] of an
/// [`Input::Failed`](crate::io::Input::Failed) (see [`Http1Error::transport_kind`]); the typed
/// error stays readable with [`Connection::error`](super::Connection::error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Http1Error {
    // --- encoding -----------------------------------------------------------------------------
    /// A request header value contains CR, LF or NUL, which would let it forge headers.
    #[error("the value of request header `{name}` contains CR, LF or NUL")]
    InvalidHeaderValue {
        /// The name of the header.
        name: String,
    },
    /// The request target (path and query) contains whitespace or control characters.
    #[error("the request target contains whitespace or control characters")]
    InvalidRequestTarget,
    /// The request URI has no authority and the request has no `Host` header.
    #[error("the request has neither a URI authority nor a `Host` header")]
    MissingHost,
    /// The method needs a request-target form other than origin-form (`CONNECT`).
    #[error("method {method} is not supported by the HTTP/1.1 codec")]
    UnsupportedMethod {
        /// The method.
        method: String,
    },
    /// The request has a `Content-Length` header that differs from the length of its body.
    #[error(
        "the request's Content-Length header does not match its body length of {body_len} bytes"
    )]
    ContentLengthMismatch {
        /// The length of the body.
        body_len: u64,
    },
    /// The request has a `Transfer-Encoding` header: the codec only sends bodies with
    /// `Content-Length`.
    #[error("requests with a Transfer-Encoding header are not supported")]
    RequestTransferEncoding,

    // --- misuse of a connection ---------------------------------------------------------------
    /// [`Connection::send`](super::Connection::send) was called while an exchange was still in
    /// progress (the codec does not pipeline).
    #[error("an exchange is already in progress on this connection")]
    ExchangeInProgress,
    /// [`Connection::send`](super::Connection::send) was called on a connection that must be
    /// closed ([`Connection::must_close`](super::Connection::must_close)).
    #[error("the connection cannot carry another request")]
    ConnectionClosed,
    /// [`Connection::send`](super::Connection::send) was called on a
    /// [pipelined](super::Connection::pipelined) connection that already carries as many
    /// outstanding requests as its depth.
    #[error("the pipeline is full ({depth} requests outstanding)")]
    PipelineFull {
        /// The connection's pipeline depth.
        depth: usize,
    },

    // --- pipelined requests left without a response -------------------------------------------
    /// The connection ended before this request's response, and the server provably did not
    /// process the request: an earlier response announced `Connection: close` (a server that
    /// does so must not process further requests on the connection, RFC 9112 section 9.6), or
    /// the request was not fully written. Safe to re-send on a new connection; its
    /// [`transport_kind`](Http1Error::transport_kind) is
    /// [`Connect`](TransportErrorKind::Connect), the kind the state machines read as
    /// "nothing was sent".
    #[error("request not processed: {reason}; safe to re-send on a new connection")]
    NotProcessed {
        /// Why it is known not processed.
        reason: &'static str,
    },
    /// The connection ended (EOF, or an earlier response failed to decode) while this
    /// pipelined request waited for its response, without the server announcing the close: it
    /// may or may not have been processed (outcome unknown, as a
    /// [`ConnectionReset`](TransportErrorKind::ConnectionReset)).
    #[error("the connection ended before the response to this pipelined request; outcome unknown")]
    PipelineAborted,

    // --- decoding -----------------------------------------------------------------------------
    /// The status line or a header line is malformed.
    #[error("malformed response head: {reason}")]
    MalformedHead {
        /// What is wrong.
        reason: String,
    },
    /// The response head has more header fields than [`Limits::max_headers`](super::Limits::max_headers).
    #[error("the response has more than {max} header fields")]
    TooManyHeaders {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The response head is longer than [`Limits::max_header_bytes`](super::Limits::max_header_bytes).
    #[error("the response head is longer than {max} bytes")]
    HeadTooLarge {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The server answered `101 Switching Protocols`, which the codec never asks for.
    #[error("unexpected 101 Switching Protocols response")]
    UnexpectedUpgrade,
    /// The `Content-Length` header is not a number, or several disagree.
    #[error("invalid Content-Length header in the response")]
    InvalidContentLength,
    /// The `Transfer-Encoding` header applies `chunked` more than once.
    #[error("invalid Transfer-Encoding header in the response")]
    InvalidTransferEncoding,
    /// A chunk-size line of a chunked body is not a hexadecimal size (with optional
    /// extensions), or the size overflows 64 bits.
    #[error("invalid chunk size line in a chunked response body")]
    InvalidChunkSize,
    /// A chunk-size line is longer than [`Limits::max_chunk_line_bytes`](super::Limits::max_chunk_line_bytes).
    #[error("chunk size line longer than {max} bytes")]
    ChunkLineTooLong {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The data of a chunk is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MalformedChunk,
    /// The trailer section of a chunked body is longer than
    /// [`Limits::max_header_bytes`](super::Limits::max_header_bytes).
    #[error("the trailer section is longer than {max} bytes")]
    TrailersTooLarge {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The connection reached EOF before the response ended.
    #[error("connection closed {during}")]
    UnexpectedEof {
        /// Where the response was cut, e.g. `"before the end of the response head"`.
        during: &'static str,
    },
}

impl Http1Error {
    /// The kind of [`TransportError`] this error becomes in an
    /// [`Input::Failed`](crate::io::Input::Failed):
    /// [`ConnectionReset`](TransportErrorKind::ConnectionReset) for
    /// [`UnexpectedEof`](Http1Error::UnexpectedEof) and
    /// [`PipelineAborted`](Http1Error::PipelineAborted) (outcome unknown),
    /// [`Connect`](TransportErrorKind::Connect) for [`NotProcessed`](Http1Error::NotProcessed)
    /// (known not processed),
    /// [`Protocol`](TransportErrorKind::Protocol) for every other decoding error (limits
    /// included: an oversized head is the server misbehaving, not a body over a budget),
    /// and [`Other`](TransportErrorKind::Other) for encoding errors and misuse.
    pub fn transport_kind(&self) -> TransportErrorKind {
        match self {
            Http1Error::UnexpectedEof { .. } | Http1Error::PipelineAborted => {
                TransportErrorKind::ConnectionReset
            }
            Http1Error::NotProcessed { .. } => TransportErrorKind::Connect,
            Http1Error::InvalidHeaderValue { .. }
            | Http1Error::InvalidRequestTarget
            | Http1Error::MissingHost
            | Http1Error::UnsupportedMethod { .. }
            | Http1Error::ContentLengthMismatch { .. }
            | Http1Error::RequestTransferEncoding
            | Http1Error::ExchangeInProgress
            | Http1Error::ConnectionClosed
            | Http1Error::PipelineFull { .. } => TransportErrorKind::Other,
            Http1Error::MalformedHead { .. }
            | Http1Error::TooManyHeaders { .. }
            | Http1Error::HeadTooLarge { .. }
            | Http1Error::UnexpectedUpgrade
            | Http1Error::InvalidContentLength
            | Http1Error::InvalidTransferEncoding
            | Http1Error::InvalidChunkSize
            | Http1Error::ChunkLineTooLong { .. }
            | Http1Error::MalformedChunk
            | Http1Error::TrailersTooLarge { .. } => TransportErrorKind::Protocol,
        }
    }
}

impl From<Http1Error> for TransportError {
    fn from(error: Http1Error) -> Self {
        TransportError::new(error.transport_kind(), error.to_string())
    }
}
