//! [`SubscriptionError`]: what a subscription request can fail with (PROTOCOL.md 6, 7).
//!
//! Why a type of its own rather than [`crate::Error`]: `crate::Error` names an
//! [`Operation`](crate::Operation) of the stream API (create, append, read...), and the
//! subscription routes are other operations with their own error codes (`FENCED`,
//! `ALREADY_CLAIMED`, ...) that a worker must match on. So [`SubscriptionError`] has the same
//! shape (operation, URL without query, kind) with its own [`SubscriptionOp`] and
//! [`SubscriptionErrorKind`], and reuses [`crate::ErrorKind`] for everything the generic rules
//! already classify (429, 5xx, transport failures, invalid responses): the retry rules stay
//! the crate's ([`SubscriptionError::is_retryable`]).

use super::types::ConfigError;
use crate::error::ErrorKind;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The subscription operation an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SubscriptionOp {
    /// `PUT .../__ds/subscriptions/:id` (6.2).
    Create,
    /// `GET .../__ds/subscriptions/:id` (6.3).
    Get,
    /// `DELETE .../__ds/subscriptions/:id` (6.3).
    Delete,
    /// `POST .../__ds/subscriptions/:id/streams` (6.4).
    AddStreams,
    /// `DELETE .../__ds/subscriptions/:id/streams/:path` (6.4).
    RemoveStream,
    /// `GET .../__ds/jwks.json` (6.5).
    Jwks,
    /// `POST .../__ds/subscriptions/:id/claim` (7.2).
    Claim,
    /// `POST .../__ds/subscriptions/:id/ack` (7.2).
    Ack,
    /// `POST .../__ds/subscriptions/:id/release` (7.2).
    Release,
    /// `POST <callback_url>` (7.1).
    Callback,
}

impl SubscriptionOp {
    /// The lower-case name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionOp::Create => "create subscription",
            SubscriptionOp::Get => "get subscription",
            SubscriptionOp::Delete => "delete subscription",
            SubscriptionOp::AddStreams => "add subscription streams",
            SubscriptionOp::RemoveStream => "remove subscription stream",
            SubscriptionOp::Jwks => "fetch JWKS",
            SubscriptionOp::Claim => "claim",
            SubscriptionOp::Ack => "ack",
            SubscriptionOp::Release => "release",
            SubscriptionOp::Callback => "callback",
        }
    }

    /// Whether sending the same request again after an unknown outcome (a lost response, a
    /// 429 or 5xx) is safe, i.e. cannot do something the caller did not ask for:
    ///
    /// - create (an identical configuration is re-confirmed with 200), get, JWKS, add
    ///   streams and remove stream (both idempotent, 6.4): yes;
    /// - delete: yes, but a retry after a lost 204 may answer 404
    ///   ([`SubscriptionErrorKind::NotFound`]), which then means "deleted";
    /// - ack without `done` (progress, heartbeat): yes, acking the same offset again does not
    ///   move the cursor back;
    /// - ack with `done`, release, callback: yes, but if the first attempt was applied the
    ///   wake is over and the retry answers [`SubscriptionErrorKind::Fenced`]: after a
    ///   retry, `FENCED` means "probably applied";
    /// - claim: **no**. A claim whose answer was lost may have given this worker the lease
    ///   under a token it never saw; sending it again answers `ALREADY_CLAIMED` naming this
    ///   worker, and the lease then has to expire (`lease_ttl_ms`) before anybody, this
    ///   worker included, can claim again (expiry writes a new wake event). After the
    ///   failures [`SubscriptionError::certainly_not_applied`] names (connect errors, 429)
    ///   a retry cannot meet this. The [`Worker`](super::Worker) retries claims on every
    ///   transient failure anyway: not retrying strands the lease just the same.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, SubscriptionOp::Claim)
    }
}

impl fmt::Display for SubscriptionOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong with a subscription request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionErrorKind {
    /// The configuration was refused before anything was sent (6.2, 12.8).
    #[error("invalid configuration: {0}")]
    InvalidConfig(ConfigError),
    /// 404 (`SUBSCRIPTION_NOT_FOUND`): no such subscription, or it was deleted.
    #[error("subscription not found: {message}")]
    NotFound {
        /// The server's message.
        message: String,
    },
    /// 400 (`INVALID_REQUEST`): the server refused the request's content.
    #[error("invalid request ({code}): {message}")]
    InvalidRequest {
        /// The server's code (`INVALID_REQUEST` on the reference server).
        code: String,
        /// The server's message.
        message: String,
    },
    /// 409 on create: a subscription with this id exists with another configuration (6.2).
    #[error("subscription exists with a different configuration: {message}")]
    ConfigConflict {
        /// The server's message.
        message: String,
    },
    /// 409 `FENCED`: the `wake_id` or `generation` is stale; the lease is lost (7.1, 7.3).
    #[error("fenced: the wake is no longer current: {message}")]
    Fenced {
        /// The server's message.
        message: String,
    },
    /// 409 `ALREADY_CLAIMED`: another worker (or this one, after a lost claim answer) holds
    /// the lease (7.2).
    #[error("already claimed by {current_holder:?} (generation {generation:?})")]
    AlreadyClaimed {
        /// The worker holding the lease, when the server said.
        current_holder: Option<String>,
        /// The current generation, when the server said.
        generation: Option<u64>,
    },
    /// 409 `NO_PENDING_WORK`: a claim found nothing to do.
    #[error("no pending work")]
    NoPendingWork,
    /// 409 `INVALID_OFFSET`: an ack named an unlinked stream, `-1`, regressed a cursor or
    /// passed the tail.
    #[error("invalid ack offset: {message}")]
    InvalidOffset {
        /// The server's message.
        message: String,
    },
    /// 409 with another code.
    #[error("conflict ({code}): {message}")]
    Conflict {
        /// The server's code (empty when it sent none).
        code: String,
        /// The server's message.
        message: String,
    },
    /// 401: the bearer token (claim or callback token, or the service credential) is
    /// missing, invalid or expired (12.9).
    #[error("unauthorized ({code}): {message}")]
    Unauthorized {
        /// The server's code (empty when it sent none).
        code: String,
        /// The server's message.
        message: String,
    },
    /// Everything the stream API's generic rules classify: 429
    /// ([`ErrorKind::RateLimited`]), 5xx and other statuses
    /// ([`ErrorKind::UnexpectedStatus`]), transport failures, invalid responses and invalid
    /// input (a bad root URL, id or stream path).
    #[error("{0}")]
    Http(ErrorKind),
}

/// A subscription error with its context: operation, URL (without query) and kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{op} {url}: {kind}")]
pub struct SubscriptionError {
    /// The operation that failed.
    pub op: SubscriptionOp,
    /// The request URL, without query or fragment.
    pub url: String,
    /// What went wrong.
    pub kind: SubscriptionErrorKind,
}

impl SubscriptionError {
    /// Builds an error; any query or fragment is cut from `url`.
    pub fn new(op: SubscriptionOp, url: &str, kind: SubscriptionErrorKind) -> Self {
        SubscriptionError {
            op,
            url: crate::url::strip_query(url).to_owned(),
            kind,
        }
    }

    /// An [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(
        op: SubscriptionOp,
        url: &str,
        reason: crate::InputReason,
        message: impl Into<String>,
    ) -> Self {
        Self::new(
            op,
            url,
            SubscriptionErrorKind::Http(ErrorKind::invalid_input(reason, message)),
        )
    }

    /// An [`ErrorKind::InvalidResponse`] error.
    pub fn invalid_response(
        op: SubscriptionOp,
        url: &str,
        reason: crate::ResponseReason,
        message: impl Into<String>,
    ) -> Self {
        Self::new(
            op,
            url,
            SubscriptionErrorKind::Http(ErrorKind::invalid_response(reason, message)),
        )
    }

    /// A transport failure.
    pub fn transport(op: SubscriptionOp, url: &str, error: crate::io::TransportError) -> Self {
        Self::new(
            op,
            url,
            SubscriptionErrorKind::Http(ErrorKind::Transport(error)),
        )
    }

    /// Whether the failure is transient (429, 5xx, transport other than TLS): the same
    /// request may succeed later. Whether re-sending it is *safe* is
    /// [`SubscriptionOp::is_idempotent`]'s question.
    pub fn is_retryable(&self) -> bool {
        matches!(&self.kind, SubscriptionErrorKind::Http(k) if k.is_retryable())
    }

    /// Whether the request certainly did not reach the server's state: a refused
    /// connection or a 429. Only such failures are retried for claims.
    pub fn certainly_not_applied(&self) -> bool {
        match &self.kind {
            SubscriptionErrorKind::Http(ErrorKind::RateLimited { .. }) => true,
            SubscriptionErrorKind::Http(ErrorKind::Transport(t)) => {
                t.kind == crate::io::TransportErrorKind::Connect
            }
            _ => false,
        }
    }

    /// The server's requested wait (`Retry-After`), a floor for the next retry.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            SubscriptionErrorKind::Http(k) => k.retry_after(),
            _ => None,
        }
    }

    /// Whether this is `FENCED`.
    pub fn is_fenced(&self) -> bool {
        matches!(self.kind, SubscriptionErrorKind::Fenced { .. })
    }
}

impl crate::retry::RetryableError for SubscriptionError {
    fn is_transient(&self) -> bool {
        self.is_retryable()
    }
    fn server_retry_after(&self) -> Option<Duration> {
        self.retry_after()
    }
}

/// The error body `{ "error": { "code", "message", ... } }`, leniently read.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    current_holder: Option<String>,
    #[serde(default)]
    generation: Option<u64>,
}

/// Maps an error response of a subscription route to a typed error: by status, then (for
/// 409) by the body's `error.code`. A body that is not the documented JSON is tolerated: the
/// message is then the start of the body.
pub fn error_from_response(
    op: SubscriptionOp,
    url: &str,
    parts: &http::response::Parts,
    body: &[u8],
) -> SubscriptionError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    let code = detail.code.clone().unwrap_or_default();
    let message = detail
        .message
        .clone()
        .unwrap_or_else(|| crate::ops::body_prefix(body));
    let kind = match parts.status.as_u16() {
        400 => SubscriptionErrorKind::InvalidRequest { code, message },
        401 => SubscriptionErrorKind::Unauthorized { code, message },
        404 => SubscriptionErrorKind::NotFound { message },
        409 => match code.as_str() {
            "FENCED" => SubscriptionErrorKind::Fenced { message },
            "ALREADY_CLAIMED" => SubscriptionErrorKind::AlreadyClaimed {
                current_holder: detail.current_holder,
                generation: detail.generation,
            },
            "NO_PENDING_WORK" => SubscriptionErrorKind::NoPendingWork,
            "INVALID_OFFSET" => SubscriptionErrorKind::InvalidOffset { message },
            _ if op == SubscriptionOp::Create => SubscriptionErrorKind::ConfigConflict { message },
            _ => SubscriptionErrorKind::Conflict { code, message },
        },
        _ => SubscriptionErrorKind::Http(
            crate::ops::error_from_response(crate::Operation::Head, url, parts, body).kind,
        ),
    };
    SubscriptionError::new(op, url, kind)
}
