//! Subscriptions (PROTOCOL.md 6, 7, 12.8-12.10), sans IO.
//!
//! | file | what it holds |
//! |---|---|
//! | `types` | [`SubscriptionConfig`] (checked by [`SubscriptionConfig::validate`]), the [`Subscription`] read back, and the wake values: [`PendingStream`], [`Claim`], [`Ack`], [`AckBody`], [`AckOutcome`], [`WakeEvent`] |
//! | `ops` | [`SubscriptionRoot`] and the request builders / response interpreters of every route: create, get, delete, add / remove streams, JWKS, claim, ack, release, callback |
//! | `error` | [`SubscriptionError`]: operation, URL and a [`SubscriptionErrorKind`] for every code the server sends |
//! | [`worker`] | the pull-wake [`Worker`] state machine: claim, read, ack, heartbeat, release |
//! | `webhook` | signature header parsing, verification and signing, [`Jwks`] and the [`JwksCache`], the [`WakeNotification`] body |
//!
//! Retry safety of each request: [`SubscriptionOp::is_idempotent`].

mod error;
mod ops;
mod types;
mod webhook;
pub mod worker;

#[cfg(test)]
mod tests;

/// The Ed25519 key types of `ed25519-dalek` 3 that [`sign_webhook`], [`Jwk`] and [`Jwks`]
/// take, re-exported so callers need no dependency of their own.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{error_from_response, SubscriptionError, SubscriptionErrorKind, SubscriptionOp};
pub use ops::{
    ack_request, ack_response, add_streams_request, add_streams_response, callback_request,
    callback_response, claim_request, claim_response, create_subscription_request,
    create_subscription_response, delete_subscription_request, delete_subscription_response,
    get_subscription_request, get_subscription_response, jwks_request, jwks_request_at,
    jwks_response, release_request, release_response, remove_stream_request,
    remove_stream_response, Confirmed, SubscriptionRoot,
};
pub use types::{
    check_stream_path, check_webhook_url, Ack, AckBody, AckOutcome, Claim, ConfigError, LinkType,
    PendingStream, StreamLink, Subscription, SubscriptionConfig, SubscriptionStatus,
    SubscriptionType, WakeEvent, WebhookConfig, WebhookInfo, WebhookSigning, DEFAULT_LEASE_TTL_MS,
    MAX_LEASE_TTL_MS, MIN_LEASE_TTL_MS,
};
pub use webhook::{
    sign_webhook, verify_webhook, webhook_done_body, Jwk, Jwks, JwksCache, SignatureHeader,
    Verification, VerifiedWebhook, WakeNotification, WebhookRejection, DEFAULT_REPLAY_WINDOW,
    WEBHOOK_SIGNATURE,
};
pub use worker::{
    Batch, LeaseLoss, Worker, WorkerConfig, WorkerError, WorkerEvent, WorkerSnapshot,
};
