//! The values a state machine exchanges with its driver: requests out, response pieces in.
//!
//! A machine emits [`Transmit`]s; the driver performs each HTTP exchange and feeds back what it
//! saw as [`Input`]s tagged with the same [`RequestId`] (DESIGN.md section 2). No driver error
//! type crosses into `ds-proto`: failures are flattened into [`TransportError`].

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Instant;

/// Identifies one HTTP exchange emitted by a state machine.
///
/// Ids are unique per machine for its whole life; inputs carrying an id the machine does not
/// know (or no longer waits for) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A request the driver must send.
#[derive(Debug)]
pub struct Transmit {
    /// The id to tag every [`Input`] of this exchange with.
    pub id: RequestId,
    /// The request, complete with URL, headers and body.
    pub request: http::Request<Bytes>,
    /// When the driver should give up on the exchange if it has not ended (report it as
    /// [`TransportErrorKind::Timeout`]). `None`: no deadline from the machine.
    pub deadline: Option<Instant>,
}

/// What the driver saw of an exchange, fed to `handle_input`.
#[derive(Debug, Clone)]
pub enum Input {
    /// The response status line and headers arrived.
    Head {
        /// The exchange.
        id: RequestId,
        /// Status, version and headers of the response.
        parts: http::response::Parts,
    },
    /// A piece of the response body arrived (any size, including empty).
    Body {
        /// The exchange.
        id: RequestId,
        /// The bytes, in order.
        chunk: Bytes,
    },
    /// The response body ended cleanly.
    End {
        /// The exchange.
        id: RequestId,
    },
    /// The exchange failed before it ended cleanly (connect error, reset, timeout, ...).
    Failed {
        /// The exchange.
        id: RequestId,
        /// What went wrong, flattened.
        error: TransportError,
    },
}

impl Input {
    /// The exchange this input belongs to.
    pub fn id(&self) -> RequestId {
        match self {
            Input::Head { id, .. }
            | Input::Body { id, .. }
            | Input::End { id }
            | Input::Failed { id, .. } => *id,
        }
    }

    /// Whether this is the last input of its exchange ([`End`](Input::End) or
    /// [`Failed`](Input::Failed)): nothing follows it, and the driver forgets the exchange.
    pub fn ends_exchange(&self) -> bool {
        matches!(self, Input::End { .. } | Input::Failed { .. })
    }
}

impl Transmit {
    /// The request with a client's `extras` (default headers, rotating credentials, tenant
    /// parameters) added, ready to send: what every driver does to every transmit.
    pub fn with_extras(mut self, extras: &crate::ops::RequestExtras) -> Self {
        crate::ops::apply_extras(&mut self.request, extras);
        self
    }
}

/// The class of a transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be established.
    Connect,
    /// The exchange did not finish before its deadline.
    Timeout,
    /// The connection was closed or reset mid-exchange.
    ConnectionReset,
    /// The peer spoke malformed HTTP.
    Protocol,
    /// TLS failed (handshake, certificate).
    Tls,
    /// The response exceeded a configured size limit.
    TooLarge,
    /// Anything else.
    Other,
}

impl TransportErrorKind {
    /// The class of an I/O failure of this kind: a driver's socket errors, classified once.
    pub fn from_io(kind: std::io::ErrorKind) -> Self {
        use std::io::ErrorKind as K;
        match kind {
            K::TimedOut | K::WouldBlock => TransportErrorKind::Timeout,
            K::ConnectionRefused | K::AddrNotAvailable => TransportErrorKind::Connect,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                TransportErrorKind::ConnectionReset
            }
            K::InvalidData => TransportErrorKind::Protocol,
            _ => TransportErrorKind::Other,
        }
    }
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Connect => "connect failed",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::ConnectionReset => "connection reset",
            TransportErrorKind::Protocol => "HTTP protocol error",
            TransportErrorKind::Tls => "TLS error",
            TransportErrorKind::TooLarge => "response too large",
            TransportErrorKind::Other => "transport error",
        })
    }
}

/// A transport failure, as reported by a driver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{kind}: {message}")]
pub struct TransportError {
    /// The class of failure.
    pub kind: TransportErrorKind,
    /// The driver's description (never contains request headers).
    pub message: String,
}

impl TransportError {
    /// Builds a transport error.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    /// A connection that could not be opened (`e`, from connecting a socket):
    /// [`Timeout`](TransportErrorKind::Timeout) when the connect timed out,
    /// [`Connect`](TransportErrorKind::Connect) otherwise. Nothing was sent either way.
    pub fn connect_failed(e: &std::io::Error) -> Self {
        let kind = if e.kind() == std::io::ErrorKind::TimedOut {
            TransportErrorKind::Timeout
        } else {
            TransportErrorKind::Connect
        };
        TransportError::new(kind, e.to_string())
    }

    /// An exchange that did not end within `limit` (the driver enforced its deadline).
    pub fn timed_out(limit: std::time::Duration) -> Self {
        TransportError::new(
            TransportErrorKind::Timeout,
            format!("no complete response within {limit:?}"),
        )
    }

    /// A response body larger than `limit` bytes (the largest a buffered exchange keeps).
    pub fn too_large(limit: usize) -> Self {
        TransportError::new(
            TransportErrorKind::TooLarge,
            format!("response body exceeds {limit} bytes"),
        )
    }

    /// The error with the request's `query` string cut out of its message: query parameters
    /// may carry credentials (tokens from a provider), and errors end up in logs. HTTP stacks
    /// tend to quote the whole URL when they fail.
    pub fn without_query(mut self, query: Option<&str>) -> Self {
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            if self.message.contains(q) {
                self.message = self.message.replace(q, "<query redacted>");
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_end_and_failed_end_an_exchange() {
        let id = RequestId(3);
        let parts = http::Response::new(()).into_parts().0;
        assert!(!Input::Head { id, parts }.ends_exchange());
        let chunk = Bytes::new();
        assert!(!Input::Body { id, chunk }.ends_exchange());
        assert!(Input::End { id }.ends_exchange());
        let error = TransportError::new(TransportErrorKind::Other, "x");
        assert!(Input::Failed { id, error }.ends_exchange());
    }

    /// What errors and traces print: a request as `#id`, each failure class in words.
    #[test]
    fn ids_and_failure_classes_print_as_words() {
        assert_eq!(RequestId(42).to_string(), "#42");
        let error = TransportError::new(TransportErrorKind::TooLarge, "over 10 bytes");
        assert_eq!(error.to_string(), "response too large: over 10 bytes");
        use TransportErrorKind as K;
        let words: Vec<String> = [
            K::Connect,
            K::Timeout,
            K::ConnectionReset,
            K::Protocol,
            K::Tls,
            K::Other,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            words,
            [
                "connect failed",
                "timed out",
                "connection reset",
                "HTTP protocol error",
                "TLS error",
                "transport error"
            ]
        );
    }

    #[test]
    fn a_failed_connect_is_a_timeout_or_a_connect_error() {
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(
            TransportError::connect_failed(&timed_out).kind,
            TransportErrorKind::Timeout
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            TransportError::connect_failed(&refused).kind,
            TransportErrorKind::Connect
        );
    }

    #[test]
    fn io_failures_are_classified() {
        use std::io::ErrorKind as K;
        for (io, kind) in [
            (K::TimedOut, TransportErrorKind::Timeout),
            (K::WouldBlock, TransportErrorKind::Timeout),
            (K::ConnectionRefused, TransportErrorKind::Connect),
            (K::AddrNotAvailable, TransportErrorKind::Connect),
            (K::ConnectionReset, TransportErrorKind::ConnectionReset),
            (K::ConnectionAborted, TransportErrorKind::ConnectionReset),
            (K::BrokenPipe, TransportErrorKind::ConnectionReset),
            (K::UnexpectedEof, TransportErrorKind::ConnectionReset),
            (K::InvalidData, TransportErrorKind::Protocol),
            (K::PermissionDenied, TransportErrorKind::Other),
        ] {
            assert_eq!(TransportErrorKind::from_io(io), kind, "{io:?}");
        }
    }

    #[test]
    fn a_query_is_cut_out_of_a_transport_message() {
        let e = TransportError::new(
            TransportErrorKind::Connect,
            "error connecting to http://h/s?token=secret&offset=-1",
        );
        let e = e.without_query(Some("token=secret&offset=-1"));
        assert_eq!(e.message, "error connecting to http://h/s?<query redacted>");
        let same = TransportError::new(TransportErrorKind::Connect, "refused");
        assert_eq!(same.clone().without_query(Some("")), same);
        assert_eq!(same.clone().without_query(None), same);
    }
}
