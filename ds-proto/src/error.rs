//! Typed errors (DESIGN.md section 2, "Errors").
//!
//! Every error names the [`Operation`] and the stream URL it happened on, and an [`ErrorKind`]
//! that tells apart everything a caller may want to react to. Errors are `Clone + PartialEq` so
//! state machines can hand them out in events and tests can compare them.

use crate::io::TransportError;
use crate::offset::Offset;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The protocol operation an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Operation {
    /// `PUT` (PROTOCOL.md 5.1).
    Create,
    /// `POST` with a body (5.2).
    Append,
    /// `POST` with `Stream-Closed: true` (5.3).
    Close,
    /// `HEAD` (5.5).
    Head,
    /// `DELETE` (5.4).
    Delete,
    /// `GET` (5.6-5.8).
    Read,
}

impl Operation {
    /// The lower-case name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Append => "append",
            Operation::Close => "close",
            Operation::Head => "head",
            Operation::Delete => "delete",
            Operation::Read => "read",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the protocol's `409 Conflict` conditions the server reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConflictKind {
    /// The stream is closed (`Stream-Closed: true` on the 409, PROTOCOL.md 5.2); carries the final
    /// offset when the server sent it.
    Closed {
        /// `Stream-Next-Offset` of the 409: the stream's final offset.
        final_offset: Option<Offset>,
    },
    /// The stream exists with another configuration (create, 5.1) or is soft-deleted.
    ExistsWithDifferentConfig,
    /// The append's content type differs from the stream's.
    ContentTypeMismatch,
    /// `Stream-Seq` was not greater than the last one (5.2).
    SeqRegression,
    /// A 409 whose cause the headers do not tell.
    Other,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 404: the stream (or a fork's source) does not exist.
    #[error("stream not found")]
    NotFound,
    /// 410: the offset is before the retained data, or the stream is soft-deleted.
    #[error("gone: offset before retention or stream soft-deleted")]
    Gone,
    /// 409 for one of the reasons in [`ConflictKind`].
    #[error("conflict: {0:?}")]
    Conflict(ConflictKind),
    /// 403 with `Producer-Epoch`: a producer with a higher epoch exists (5.2.1).
    #[error("producer fenced: server epoch is {server_epoch}")]
    Fenced {
        /// The epoch the server holds.
        server_epoch: u64,
    },
    /// 409 with `Producer-Expected-Seq`/`Producer-Received-Seq` (5.2.1).
    #[error("producer sequence gap: expected {expected}, received {received}")]
    SequenceGap {
        /// The sequence number the server expected.
        expected: u64,
        /// The sequence number it received.
        received: u64,
    },
    /// 429, with the server's `Retry-After` when it sent one.
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited {
        /// How long the server asked the client to wait.
        retry_after: Option<Duration>,
    },
    /// 413.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 400, with the server's message (the start of the body).
    #[error("bad request: {message}")]
    BadRequest {
        /// What the server said.
        message: String,
    },
    /// Any other status the operation does not expect.
    #[error("unexpected status {status}: {body_prefix}")]
    UnexpectedStatus {
        /// The status code.
        status: u16,
        /// `Retry-After`, if the server sent one (honoured on 5xx retries).
        retry_after: Option<Duration>,
        /// The start of the response body, lossily decoded.
        body_prefix: String,
    },
    /// The exchange failed below HTTP.
    #[error("transport: {0}")]
    Transport(TransportError),
    /// The response broke the protocol (a missing or malformed header, an undecodable body):
    /// [`InvalidResponse::reason`] says which part.
    #[error("invalid response: {0}")]
    InvalidResponse(InvalidResponse),
    /// The caller's input was refused before anything was sent: [`InvalidInput::reason`]
    /// says what was wrong.
    #[error("invalid input: {0}")]
    InvalidInput(InvalidInput),
    /// A response body or event exceeded a configured limit: [`LimitExceeded::limit`] says
    /// which.
    #[error("limit exceeded: {0}")]
    LimitExceeded(LimitExceeded),
    /// A producer restored from a snapshot found that the server already holds a sequence
    /// number it never assigned (a `204` whose `Producer-Seq` is at or past its next seq):
    /// another instance with the same producer id and epoch sent batches after the snapshot
    /// was taken, so the snapshot was stale. What those batches held is unknown; the appends
    /// from the answered batch on may or may not be in the stream (see
    /// [`ProducerSnapshot`](crate::producer::ProducerSnapshot)).
    #[error(
        "stale producer snapshot: the server already holds epoch {epoch} seq {seq} from another instance"
    )]
    StaleSnapshot {
        /// The producer epoch.
        epoch: u64,
        /// The `Producer-Seq` the server already held.
        seq: u64,
    },
}

/// What part of the caller's input was refused ([`ErrorKind::InvalidInput`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InputReason {
    /// A stream or base URL that cannot be used (not `http(s)`, unparsable).
    Url,
    /// A value that cannot be a header value (content type, ETag, `Stream-Seq`, extras).
    Header,
    /// A body the protocol refuses: empty without closing, invalid JSON, an empty JSON array
    /// (PROTOCOL.md 5.2, 9.1), or a value that cannot be serialized.
    Body,
    /// A setting out of its range or inconsistent (TTL and expiry together, a retry policy, a
    /// timeout, a producer or reader configuration).
    Config,
    /// An offset that is not one.
    Offset,
    /// A snapshot of another format version, or an inconsistent one.
    Snapshot,
    /// A command at the wrong time (an append after close, a second close).
    State,
    /// The system refused a resource (a thread could not be spawned).
    Resource,
}

/// What part of a response broke the protocol ([`ErrorKind::InvalidResponse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ResponseReason {
    /// A header the protocol requires is missing (`Stream-Next-Offset` on a 200).
    MissingHeader,
    /// A protocol header has a value that cannot be read (a producer number, a TTL, an
    /// expiry, an offset).
    MalformedHeader,
    /// The body cannot be decoded (JSON that is not an array of messages, SSE control JSON,
    /// base64), or is shorter than what was already handed out.
    Body,
    /// Offsets that contradict each other (the next offset going backwards).
    Offset,
}

/// Which configured limit was exceeded ([`ErrorKind::LimitExceeded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Limit {
    /// A response body over the client's or reader's maximum.
    ResponseBody,
    /// An SSE line over the parser's maximum.
    SseLine,
    /// An SSE event over the parser's maximum.
    SseEvent,
}

/// The cause of an [`ErrorKind::InvalidInput`]: a reason to match on and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
#[non_exhaustive]
pub struct InvalidInput {
    /// What was wrong.
    pub reason: InputReason,
    /// The details, for people.
    pub message: String,
}

/// The cause of an [`ErrorKind::InvalidResponse`]: a reason to match on and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
#[non_exhaustive]
pub struct InvalidResponse {
    /// What part of the response.
    pub reason: ResponseReason,
    /// The details, for people.
    pub message: String,
}

/// The cause of an [`ErrorKind::LimitExceeded`]: the limit and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
#[non_exhaustive]
pub struct LimitExceeded {
    /// Which limit.
    pub limit: Limit,
    /// The details, for people.
    pub message: String,
}

impl ErrorKind {
    /// [`ErrorKind::InvalidInput`] with `reason`.
    pub fn invalid_input(reason: InputReason, message: impl Into<String>) -> Self {
        ErrorKind::InvalidInput(InvalidInput {
            reason,
            message: message.into(),
        })
    }

    /// [`ErrorKind::InvalidResponse`] with `reason`.
    pub fn invalid_response(reason: ResponseReason, message: impl Into<String>) -> Self {
        ErrorKind::InvalidResponse(InvalidResponse {
            reason,
            message: message.into(),
        })
    }

    /// [`ErrorKind::LimitExceeded`] of `limit`.
    pub fn limit_exceeded(limit: Limit, message: impl Into<String>) -> Self {
        ErrorKind::LimitExceeded(LimitExceeded {
            limit,
            message: message.into(),
        })
    }

    /// Whether the failure is transient (429, 5xx, transport) and a retry may succeed. A TLS
    /// failure (a rejected certificate, a handshake alert) is not: another attempt meets the
    /// same certificate.
    pub fn is_retryable(&self) -> bool {
        match self {
            ErrorKind::Transport(e) => e.kind != crate::io::TransportErrorKind::Tls,
            ErrorKind::RateLimited { .. } => true,
            ErrorKind::UnexpectedStatus { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The server's requested wait (`Retry-After`), a floor for the next retry.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ErrorKind::RateLimited { retry_after } => *retry_after,
            ErrorKind::UnexpectedStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An error with its context: operation, stream URL and kind. Built with [`Error::new`] and
/// the shorthands below (so that the URL never carries its query).
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{operation} {url}: {kind}")]
#[non_exhaustive]
pub struct Error {
    /// The operation that failed.
    pub operation: Operation,
    /// The stream URL (without query).
    pub url: String,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl Error {
    /// Builds an error. Any query or fragment is cut from `url`: query parameters may carry
    /// credentials, and errors end up in logs.
    pub fn new(operation: Operation, url: impl Into<String>, kind: ErrorKind) -> Self {
        let mut url = url.into();
        let end = crate::url::strip_query(&url).len();
        url.truncate(end);
        Error {
            operation,
            url,
            kind,
        }
    }

    /// An [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(
        operation: Operation,
        url: &str,
        reason: InputReason,
        message: impl Into<String>,
    ) -> Self {
        Error::new(operation, url, ErrorKind::invalid_input(reason, message))
    }

    /// An [`ErrorKind::InvalidResponse`] error.
    pub fn invalid_response(
        operation: Operation,
        url: &str,
        reason: ResponseReason,
        message: impl Into<String>,
    ) -> Self {
        Error::new(operation, url, ErrorKind::invalid_response(reason, message))
    }

    /// An [`ErrorKind::Transport`] error.
    pub fn transport(operation: Operation, url: &str, error: TransportError) -> Self {
        Error::new(operation, url, ErrorKind::Transport(error))
    }

    /// Whether a retry may succeed (see [`ErrorKind::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, ErrorKind::NotFound)
    }

    /// Whether the stream is closed (409 with `Stream-Closed`).
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, ErrorKind::Conflict(ConflictKind::Closed { .. }))
    }
}

/// A shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::TransportErrorKind;

    fn status(status: u16, retry_after: Option<Duration>) -> ErrorKind {
        ErrorKind::UnexpectedStatus {
            status,
            retry_after,
            body_prefix: String::new(),
        }
    }

    #[test]
    fn operations_are_named_in_lower_case() {
        for (op, name) in [
            (Operation::Create, "create"),
            (Operation::Append, "append"),
            (Operation::Close, "close"),
            (Operation::Head, "head"),
            (Operation::Delete, "delete"),
            (Operation::Read, "read"),
        ] {
            assert_eq!((op.as_str(), op.to_string().as_str()), (name, name));
        }
        let e = Error::new(Operation::Head, "http://h/s?token=x", ErrorKind::NotFound);
        assert!(e.to_string().starts_with("head http://h/s: "), "{e}");
    }

    /// Transient failures (429, 5xx, transport but TLS) may be retried, honouring the server's
    /// `Retry-After`; the rest may not.
    #[test]
    fn what_may_be_retried_and_after_how_long() {
        let wait = Some(Duration::from_secs(3));
        let transport = |kind| ErrorKind::Transport(TransportError::new(kind, "x"));
        assert!(transport(TransportErrorKind::ConnectionReset).is_retryable());
        assert!(!transport(TransportErrorKind::Tls).is_retryable());
        assert!(ErrorKind::RateLimited { retry_after: None }.is_retryable());
        assert!(status(500, None).is_retryable());
        assert!(status(503, None).is_retryable());
        assert!(!status(499, None).is_retryable());
        assert!(!ErrorKind::NotFound.is_retryable());
        assert_eq!(
            ErrorKind::RateLimited { retry_after: wait }.retry_after(),
            wait
        );
        assert_eq!(status(503, wait).retry_after(), wait);
        assert_eq!(ErrorKind::NotFound.retry_after(), None);
        assert_eq!(transport(TransportErrorKind::Timeout).retry_after(), None);
    }

    #[test]
    fn an_errors_shorthands_read_its_kind() {
        let e = |kind| Error::new(Operation::Append, "http://h/s", kind);
        assert!(e(status(502, None)).is_retryable());
        assert!(!e(status(400, None)).is_retryable());
        assert!(e(ErrorKind::NotFound).is_not_found());
        assert!(!e(status(410, None)).is_not_found());
        let closed = ErrorKind::Conflict(ConflictKind::Closed { final_offset: None });
        assert!(e(closed).is_closed());
        assert!(!e(ErrorKind::NotFound).is_closed());
    }
}
