//! Subscription operations for drivers (PROTOCOL.md 6, 7), sans IO: one-shot descriptors for
//! the control routes, the JWKS and webhook callbacks ([`SubscriptionOneShot`]), run across
//! their attempts by [`SubscriptionCall`] as stream operations are by
//! [`Call`](super::call::Call); the options of a driver's worker run loop ([`WorkerOptions`],
//! [`WorkerAction`]); and the steps of a driver's webhook verifier ([`WebhookCheck`]).
//!
//! ```text
//! let mut call = SubscriptionCall::new(op, &settings, &call_options, seed, now)?;
//! loop {
//!     let request = call.request(&extras)?;
//!     match call.outcome(send(request), now) {
//!         SubscriptionStep::Done(result) => return result,
//!         SubscriptionStep::Retry { delay, .. } => sleep(delay),
//!     }
//! }
//! ```

use crate::driver::client::{check_call_options, transport_error, ClientSettings};
use crate::error::Operation;
use crate::exchange::TransportError;
use crate::offset::Offset;
use crate::ops::{CallOptions, RequestExtras};
use crate::retry::{Retrier, RetryPolicy};
use crate::rng::Rng;
use crate::subscription::{
    self as sub, AckBody, AckOutcome, Confirmed, Jwks, Subscription, SubscriptionConfig,
    SubscriptionError, SubscriptionErrorKind, SubscriptionOp, SubscriptionRoot, WorkerConfig,
};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A one-shot subscription operation: the builder and interpreter of its exchange.
pub trait SubscriptionOneShot {
    /// What a successful answer gives.
    type Output;
    /// Which operation this is.
    fn op(&self) -> SubscriptionOp;
    /// The URL of the request (for errors), without query.
    fn url(&self) -> String;
    /// The request of one attempt, with the client's `extras`.
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, SubscriptionError>;
    /// Interprets the whole answer.
    fn response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<Self::Output, SubscriptionError>;
}

/// Create or re-confirm (`PUT`, 6.2).
#[derive(Debug, Clone)]
pub struct CreateSubscription {
    /// The stream root.
    pub root: SubscriptionRoot,
    /// The subscription id.
    pub id: String,
    /// The configuration.
    pub config: SubscriptionConfig,
}

/// Read (`GET`, 6.3).
#[derive(Debug, Clone)]
pub struct GetSubscription {
    /// The stream root.
    pub root: SubscriptionRoot,
    /// The subscription id.
    pub id: String,
}

/// Delete (`DELETE`, 6.3).
#[derive(Debug, Clone)]
pub struct DeleteSubscription {
    /// The stream root.
    pub root: SubscriptionRoot,
    /// The subscription id.
    pub id: String,
}

/// Add explicit streams (6.4).
#[derive(Debug, Clone)]
pub struct AddStreams {
    /// The stream root.
    pub root: SubscriptionRoot,
    /// The subscription id.
    pub id: String,
    /// Stream-root-relative paths.
    pub streams: Vec<String>,
}

/// Remove one explicit stream (6.4).
#[derive(Debug, Clone)]
pub struct RemoveStream {
    /// The stream root.
    pub root: SubscriptionRoot,
    /// The subscription id.
    pub id: String,
    /// The stream-root-relative path (may contain slashes).
    pub path: String,
}

/// Fetch a JWKS (6.5).
#[derive(Debug, Clone)]
pub struct FetchJwks {
    /// `<root>/__ds/jwks.json`, or a subscription's `jwks_url`.
    pub url: String,
}

/// A webhook callback (7.1): acks, `done`.
#[derive(Debug, Clone)]
pub struct SendCallback {
    /// The notification's `callback_url`.
    pub url: String,
    /// The notification's `callback_token`.
    pub token: String,
    /// The acks and `done`.
    pub ack: AckBody,
}

impl SubscriptionOneShot for CreateSubscription {
    type Output = Confirmed;
    fn op(&self) -> SubscriptionOp {
        SubscriptionOp::Create
    }
    fn url(&self) -> String {
        self.root.subscription_url(&self.id)
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, SubscriptionError> {
        sub::create_subscription_request(&self.root, &self.id, &self.config, extras)
    }
    fn response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<Confirmed, SubscriptionError> {
        sub::create_subscription_response(&self.root, &self.id, parts, body)
    }
}

impl SubscriptionOneShot for GetSubscription {
    type Output = Subscription;
    fn op(&self) -> SubscriptionOp {
        SubscriptionOp::Get
    }
    fn url(&self) -> String {
        self.root.subscription_url(&self.id)
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, SubscriptionError> {
        sub::get_subscription_request(&self.root, &self.id, extras)
    }
    fn response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<Subscription, SubscriptionError> {
        sub::get_subscription_response(&self.root, &self.id, parts, body)
    }
}

impl SubscriptionOneShot for DeleteSubscription {
    type Output = ();
    fn op(&self) -> SubscriptionOp {
        SubscriptionOp::Delete
    }
    fn url(&self) -> String {
        self.root.subscription_url(&self.id)
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, SubscriptionError> {
        sub::delete_subscription_request(&self.root, &self.id, extras)
    }
    fn response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<(), SubscriptionError> {
        sub::delete_subscription_response(&self.root, &self.id, parts, body)
    }
}

impl SubscriptionOneShot for AddStreams {
    type Output = ();
    fn op(&self) -> SubscriptionOp {
        SubscriptionOp::AddStreams
    }
    fn url(&self) -> String {
        format!("{}/streams", self.root.subscription_url(&self.id))
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, SubscriptionError> {
        let streams: Vec<&str> = self.streams.iter().map(String::as_str).collect();
        sub::add_streams_request(&self.root, &self.id, &streams, extras)
    }
    fn response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<(), SubscriptionError> {
        sub::add_streams_response(&self.root, &self.id, parts, body)
    }
}

impl SubscriptionOneShot for RemoveStream {
    type Output = ();
    fn op(&self) -> SubscriptionOp {
        SubscriptionOp::RemoveStream
    }
    fn url(&self) -> String {
        format!("{}/streams", self.root.subscription_url(&self.id))
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, SubscriptionError> {
        sub::remove_stream_request(&self.root, &self.id, &self.path, extras)
    }
    fn response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<(), SubscriptionError> {
        sub::remove_stream_response(&self.root, &self.id, &self.path, parts, body)
    }
}

impl SubscriptionOneShot for FetchJwks {
    type Output = Jwks;
    fn op(&self) -> SubscriptionOp {
        SubscriptionOp::Jwks
    }
    fn url(&self) -> String {
        self.url.clone()
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, SubscriptionError> {
        sub::jwks_request_at(&self.url, extras)
    }
    fn response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<Jwks, SubscriptionError> {
        sub::jwks_response(&self.url, parts, body)
    }
}

impl SubscriptionOneShot for SendCallback {
    type Output = AckOutcome;
    fn op(&self) -> SubscriptionOp {
        SubscriptionOp::Callback
    }
    fn url(&self) -> String {
        self.url.clone()
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, SubscriptionError> {
        // The callback token is the credential: a client-wide `Authorization` must not
        // replace it, so it is left out here (the builder sets the token).
        let mut extras = extras.clone();
        extras.headers.remove(http::header::AUTHORIZATION);
        sub::callback_request(&self.url, &self.token, &self.ack, &extras)
    }
    fn response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<AckOutcome, SubscriptionError> {
        sub::callback_response(&self.url, parts, body)
    }
}

/// What the driver does next.
#[derive(Debug)]
pub enum SubscriptionStep<T> {
    /// The operation ended.
    Done(Result<T, SubscriptionError>),
    /// Wait `delay`, then send the next attempt.
    Retry {
        /// How long to wait.
        delay: Duration,
        /// What the attempt failed with.
        error: SubscriptionError,
    },
}

/// One subscription operation across its attempts: 429, 5xx and transport failures are
/// retried with the retry policy when the operation is safe to repeat
/// ([`SubscriptionOp::is_idempotent`]).
#[derive(Debug)]
pub struct SubscriptionCall<O> {
    op: O,
    retrier: Retrier,
    rng: Rng,
    timeout: Option<Duration>,
    max_response_bytes: usize,
}

impl<O: SubscriptionOneShot> SubscriptionCall<O> {
    /// Starts `op` at `now` with the client's `settings` and the handle's `call` options.
    /// Bad call options are refused before anything is sent.
    pub fn new(
        op: O,
        settings: &ClientSettings,
        call: &CallOptions,
        seed: u64,
        now: Instant,
    ) -> Result<Self, SubscriptionError> {
        let url = op.url();
        check_call_options(call, Operation::Head, &url).map_err(|e| {
            SubscriptionError::new(op.op(), &url, SubscriptionErrorKind::Http(e.kind))
        })?;
        let policy: &RetryPolicy = call.retry.as_ref().unwrap_or(&settings.retry);
        let retrier = Retrier::with_rule(policy, op.op().is_idempotent(), now);
        Ok(SubscriptionCall {
            retrier,
            rng: Rng::new(seed),
            timeout: call.timeout.or(settings.request_timeout),
            max_response_bytes: settings.max_response_bytes,
            op,
        })
    }

    /// The operation.
    pub fn op(&self) -> &O {
        &self.op
    }

    /// How long one attempt may take (`None`: no limit).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The most bytes an answer's body may have.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// Attempts made so far, the first included.
    pub fn attempts(&self) -> u32 {
        self.retrier.attempts()
    }

    /// The request of the next attempt.
    pub fn request(
        &self,
        extras: &RequestExtras,
    ) -> Result<http::Request<Bytes>, SubscriptionError> {
        self.op.request(extras)
    }

    /// What came of the attempt, at `now`.
    pub fn outcome(
        &mut self,
        outcome: Result<(http::response::Parts, Bytes), TransportError>,
        now: Instant,
    ) -> SubscriptionStep<O::Output> {
        let result = match outcome {
            Ok((parts, body)) => self.op.response(&parts, &body),
            Err(e) => {
                let url = self.op.url();
                let kind = transport_error(Operation::Head, &url, e).kind;
                Err(SubscriptionError::new(
                    self.op.op(),
                    &url,
                    SubscriptionErrorKind::Http(kind),
                ))
            }
        };
        let error = match result {
            Ok(output) => return SubscriptionStep::Done(Ok(output)),
            Err(e) => e,
        };
        let seen = error.clone();
        match self.retrier.on_failure(error, now, &mut self.rng) {
            Ok(delay) => SubscriptionStep::Retry { delay, error: seen },
            Err(e) => SubscriptionStep::Done(Err(e)),
        }
    }
}

/// The options of a driver's worker run loop (`SubscriptionHandle::work`).
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker's name (claims name it; `ALREADY_CLAIMED` reports the holder).
    pub worker: String,
    /// The wake stream to follow (stream-root relative); `None`: the subscription's, read
    /// with a `get` when the worker starts.
    pub wake_stream: Option<String>,
    /// Where to follow the wake stream from (default its tail, [`Offset::now`]).
    pub wake_offset: Offset,
    /// Retry policy of claims, acks, releases and reads; `None`: unlimited retries
    /// ([`WorkerConfig::new`]'s default; acks are bounded by the lease anyway).
    pub retry: Option<RetryPolicy>,
    /// Heartbeat interval; `None`: a third of the lease.
    pub heartbeat_interval: Option<Duration>,
    /// The deadline of each claim, ack and release.
    pub request_timeout: Duration,
}

impl WorkerOptions {
    /// Options with the defaults documented on each field.
    pub fn new(worker: impl Into<String>) -> WorkerOptions {
        WorkerOptions {
            worker: worker.into(),
            wake_stream: None,
            wake_offset: Offset::now(),
            retry: None,
            heartbeat_interval: None,
            request_timeout: WorkerConfig::DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Follows `path` instead of the subscription's wake stream.
    pub fn wake_stream(mut self, path: impl Into<String>) -> Self {
        self.wake_stream = Some(path.into());
        self
    }

    /// Follows the wake stream from `offset`.
    pub fn wake_offset(mut self, offset: Offset) -> Self {
        self.wake_offset = offset;
        self
    }

    /// The [`WorkerConfig`] of these options for subscription `id` under `root`, following
    /// `wake_stream`, with the client's `extras` (credentials for claims and reads) and
    /// `seed`.
    pub fn config(
        &self,
        root: SubscriptionRoot,
        id: &str,
        wake_stream: &str,
        extras: RequestExtras,
        seed: u64,
    ) -> WorkerConfig {
        let mut config = WorkerConfig::new(root, id, self.worker.clone(), wake_stream);
        config.wake_offset = self.wake_offset.clone();
        if let Some(r) = &self.retry {
            config.retry = r.clone();
        }
        config.heartbeat_interval = self.heartbeat_interval;
        config.request_timeout = self.request_timeout;
        config.rng_seed = seed;
        config.extras = extras;
        config
    }

    /// Whether the driver reads the subscription before starting the worker: no wake stream
    /// was asked for, so the subscription's is followed (see [`WorkerOptions::machine`]).
    pub fn needs_subscription(&self) -> bool {
        self.wake_stream.is_none()
    }

    /// The worker machine these options describe for subscription `id` under `root`: it
    /// follows the wake stream asked for, or else `subscription`'s (read by the driver when
    /// [`needs_subscription`](WorkerOptions::needs_subscription); see
    /// [`worker_wake_stream`]), and sends `extras` with every request.
    pub fn machine(
        &self,
        root: SubscriptionRoot,
        id: &str,
        subscription: Option<&Subscription>,
        extras: RequestExtras,
        seed: u64,
        now: Instant,
    ) -> Result<sub::Worker, SubscriptionError> {
        let wake = worker_wake_stream(&root, id, self.wake_stream.as_deref(), subscription)?;
        sub::Worker::new(self.config(root, id, &wake, extras, seed), now)
    }
}

/// The wake stream a worker follows: the one asked for, or the subscription's. A subscription
/// without one (a webhook subscription) is [`SubscriptionErrorKind::InvalidRequest`]-like
/// invalid input.
pub fn worker_wake_stream(
    root: &SubscriptionRoot,
    id: &str,
    asked: Option<&str>,
    subscription: Option<&Subscription>,
) -> Result<String, SubscriptionError> {
    if let Some(w) = asked {
        return Ok(w.to_owned());
    }
    subscription
        .and_then(|s| s.wake_stream.clone())
        .ok_or_else(|| {
            SubscriptionError::invalid_input(
                SubscriptionOp::Claim,
                &root.subscription_url(id),
                crate::InputReason::Config,
                "the subscription has no wake stream (is it a webhook subscription?)",
            )
        })
}

/// What a worker's error hook decides after the handler failed on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerAction {
    /// Hand the same batch to the handler again at once (the tokio driver renews the lease
    /// meanwhile). A handler that fails fast should wait before it fails again.
    Retry,
    /// Give the wake up: ack what was handled, release the lease, and wait for the next
    /// wake (the unhandled batches come again, to this worker or another).
    Release,
    /// Stop the worker: ack what was handled, release the lease, end.
    Stop,
}

/// Why a driver's webhook verifier refused a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The request is not a valid webhook (answer 401 or 400 and do no work).
    #[error("webhook refused: {0}")]
    Rejected(#[from] sub::WebhookRejection),
    /// The JWKS could not be fetched (answer 503: the server retries the webhook).
    #[error("cannot fetch the JWKS: {0}")]
    Jwks(SubscriptionError),
}

/// The `Webhook-Signature` value of a request's headers (`None` when absent or not text).
pub fn signature_header(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(sub::WEBHOOK_SIGNATURE)
        .and_then(|v| v.to_str().ok())
}

/// One webhook request's verification by a driver (PROTOCOL.md 7.1, 12.10): the cache's
/// verdict, at most one JWKS fetch for a key id the cache does not know, and the answer.
///
/// ```text
/// let mut check = WebhookCheck::new(headers, body, unix_now);
/// loop {
///     match check.step(&mut cache.lock(), &jwks_url, now) {
///         CheckStep::Done(verdict) => return verdict,
///         CheckStep::Fetch(op) => check.fetched(&mut cache.lock(), run(op), now)?,
///     }
/// }
/// ```
///
/// The cache is locked only inside `step` and `fetched`, never across the fetch.
#[derive(Debug, Clone)]
pub struct WebhookCheck<'a> {
    header: Option<&'a str>,
    body: &'a [u8],
    unix_now: u64,
    fetched: bool,
}

/// What a driver does next for a [`WebhookCheck`].
#[derive(Debug)]
pub enum CheckStep {
    /// The verdict: answer the webhook with it.
    Done(Result<sub::VerifiedWebhook, WebhookError>),
    /// Fetch the JWKS (through the client, with retries), then report it with
    /// [`WebhookCheck::fetched`] and step again.
    Fetch(FetchJwks),
}

impl<'a> WebhookCheck<'a> {
    /// The check of a request with these headers and raw body, at Unix time `unix_now`
    /// (seconds).
    pub fn new(headers: &'a http::HeaderMap, body: &'a [u8], unix_now: u64) -> Self {
        WebhookCheck {
            header: signature_header(headers),
            body,
            unix_now,
            fetched: false,
        }
    }

    /// Verifies against `cache`; a key id it does not know asks for one fetch of `jwks_url`,
    /// and is refused as [`UnknownKid`](sub::WebhookRejection::UnknownKid) when it is still
    /// unknown after it.
    pub fn step(&mut self, cache: &mut sub::JwksCache, jwks_url: &str, now: Instant) -> CheckStep {
        match cache.verify(self.header, self.body, self.unix_now, now) {
            sub::Verification::Valid(v) => CheckStep::Done(Ok(v)),
            sub::Verification::Invalid(r) => CheckStep::Done(Err(WebhookError::Rejected(r))),
            sub::Verification::FetchJwks if self.fetched => {
                CheckStep::Done(Err(unknown_kid(self.header)))
            }
            sub::Verification::FetchJwks => {
                self.fetched = true;
                CheckStep::Fetch(FetchJwks {
                    url: jwks_url.to_owned(),
                })
            }
        }
    }

    /// The fetch's outcome: the cache takes the key set, or notes the failure, which ends the
    /// check as [`WebhookError::Jwks`] (answer 503: the server retries the webhook).
    pub fn fetched(
        &self,
        cache: &mut sub::JwksCache,
        result: Result<sub::Jwks, SubscriptionError>,
        now: Instant,
    ) -> Result<(), WebhookError> {
        match result {
            Ok(jwks) => {
                cache.update(jwks, now);
                Ok(())
            }
            Err(e) => {
                cache.fetch_failed(now);
                Err(WebhookError::Jwks(e))
            }
        }
    }
}

/// How a driver's worker ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerExit {
    /// It stopped (after a stop request, or a handler's [`WorkerAction::Stop`]).
    Stopped,
    /// It gave up (the subscription is gone, credentials refused, the wake stream failed).
    Failed(crate::subscription::worker::WorkerFailure),
}

/// What a driver's worker loop does next, from [`next_worker_step`].
#[derive(Debug)]
pub enum WorkerStep {
    /// Hand this batch to the application, then report with [`batch_handled`].
    Batch(sub::Batch),
    /// The worker ended: return this.
    Exit(WorkerExit),
    /// An event was dealt with (shown to the application, or handled here): send what the
    /// worker has to send, then ask again.
    Handled,
}

/// The worker's next event, decided by [`worker_step`] (other events go to `show`, the
/// application's `on_event`); `None`: no event now (the driver waits for its exchanges,
/// timers or a stop).
pub fn next_worker_step(
    worker: &mut sub::Worker,
    show: impl FnOnce(&sub::WorkerEvent),
) -> Option<WorkerStep> {
    let event = worker.poll_event()?;
    Some(worker_step(worker, event, show))
}

/// The key cache a driver's webhook verifier starts with: an unknown `kid` refetches the key
/// set at most once a minute, timestamps are checked against [`sub::DEFAULT_REPLAY_WINDOW`].
pub fn verifier_cache() -> sub::JwksCache {
    sub::JwksCache::new(Duration::from_secs(60), sub::DEFAULT_REPLAY_WINDOW)
}

/// The loop's decision for `event`: a batch of a wake the worker no longer holds (lease lost,
/// released) is not handed out; a drained wake is acked `done`; `Stopped` and `Failed` end
/// the loop; every other event (claims, lease losses, retries, ...) goes to `show`.
pub fn worker_step(
    worker: &mut sub::Worker,
    event: sub::WorkerEvent,
    show: impl FnOnce(&sub::WorkerEvent),
) -> WorkerStep {
    use sub::WorkerEvent as E;
    match event {
        E::Batch(batch) if worker.held_generation() == Some(batch.generation) => {
            WorkerStep::Batch(batch)
        }
        E::Batch(_) => WorkerStep::Handled,
        E::Drained { generation } => {
            let _ = worker.done(generation);
            WorkerStep::Handled
        }
        E::Stopped => WorkerStep::Exit(WorkerExit::Stopped),
        E::Failed(f) => WorkerStep::Exit(WorkerExit::Failed(f)),
        other => {
            show(&other);
            WorkerStep::Handled
        }
    }
}

/// What came of handing `batch` to the application: `Ok` acks its `next_offset`; a failure
/// goes to `decide` (the application's `handle_error`) for its [`WorkerAction`]. Returns
/// whether to hand the same batch out again now (`Retry` while the wake is still held).
pub fn batch_handled<E>(
    worker: &mut sub::Worker,
    batch: &sub::Batch,
    result: Result<(), E>,
    decide: impl FnOnce(&E) -> WorkerAction,
) -> bool {
    match result.map_err(|e| decide(&e)) {
        Ok(()) => {
            let _ = worker.ack(batch.generation, &batch.stream, batch.next_offset.clone());
            false
        }
        Err(WorkerAction::Retry) => worker.held_generation() == Some(batch.generation),
        Err(WorkerAction::Release) => {
            let _ = worker.release(batch.generation);
            false
        }
        Err(WorkerAction::Stop) => {
            worker.stop();
            false
        }
    }
}

/// The answer a webhook verifier gives when a fetched JWKS still does not know the request's
/// key: [`WebhookRejection::UnknownKid`](sub::WebhookRejection::UnknownKid) with the kid the
/// header names (empty when the header does not parse).
pub fn unknown_kid(header: Option<&str>) -> WebhookError {
    let kid = sub::SignatureHeader::parse(header.unwrap_or_default())
        .map(|h| h.kid)
        .unwrap_or_default();
    WebhookError::Rejected(sub::WebhookRejection::UnknownKid { kid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::TransportErrorKind;
    use crate::ErrorKind;
    use crate::{Input, RequestId, Transmit};

    fn root() -> SubscriptionRoot {
        SubscriptionRoot::new("http://h/v1/stream").unwrap()
    }

    fn parts(status: u16) -> http::response::Parts {
        http::Response::builder()
            .status(status)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_get_is_retried_after_a_503_then_reads_the_subscription() {
        let now = t0();
        let s = ClientSettings::default();
        let op = GetSubscription {
            root: root(),
            id: "s1".into(),
        };
        let mut call = SubscriptionCall::new(op, &s, &CallOptions::default(), 3, now).unwrap();
        let req = call.request(&RequestExtras::default()).unwrap();
        assert_eq!(req.uri().path(), "/v1/stream/__ds/subscriptions/s1");
        assert!(matches!(
            call.outcome(Ok((parts(503), Bytes::new())), now),
            SubscriptionStep::Retry { .. }
        ));
        let body =
            Bytes::from_static(br#"{"id":"s1","type":"pull-wake","wake_stream":"w","streams":[]}"#);
        match call.outcome(Ok((parts(200), body)), now) {
            SubscriptionStep::Done(Ok(sub)) => assert_eq!(sub.wake_stream.as_deref(), Some("w")),
            other => panic!("expected the subscription, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_subscription_is_not_retried() {
        let now = t0();
        let s = ClientSettings::default();
        let op = DeleteSubscription {
            root: root(),
            id: "gone".into(),
        };
        let mut call = SubscriptionCall::new(op, &s, &CallOptions::default(), 3, now).unwrap();
        let body =
            Bytes::from_static(br#"{"error":{"code":"SUBSCRIPTION_NOT_FOUND","message":"no"}}"#);
        match call.outcome(Ok((parts(404), body)), now) {
            SubscriptionStep::Done(Err(e)) => {
                assert!(matches!(e.kind, SubscriptionErrorKind::NotFound { .. }))
            }
            other => panic!("expected not found, got {other:?}"),
        }
    }

    #[test]
    fn a_stale_callback_is_fenced_and_a_large_body_is_a_limit() {
        let now = t0();
        let s = ClientSettings::default();
        let op = SendCallback {
            url: "http://h/v1/stream/__ds/callback/s1".into(),
            token: "tok".into(),
            ack: AckBody {
                wake_id: "w".into(),
                generation: 1,
                acks: vec![],
                done: true,
            },
        };
        let mut extras = RequestExtras::default();
        extras.headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer service"),
        );
        let mut call = SubscriptionCall::new(op, &s, &CallOptions::default(), 3, now).unwrap();
        let req = call.request(&extras).unwrap();
        assert_eq!(req.headers()[http::header::AUTHORIZATION], "Bearer tok");
        let body = Bytes::from_static(br#"{"error":{"code":"FENCED","message":"stale"}}"#);
        match call.outcome(Ok((parts(409), body)), now) {
            SubscriptionStep::Done(Err(e)) => assert!(e.is_fenced()),
            other => panic!("expected fenced, got {other:?}"),
        }
        let op = FetchJwks {
            url: root().jwks_url(),
        };
        let mut call = SubscriptionCall::new(op, &s, &CallOptions::default(), 3, now).unwrap();
        let big = TransportError::new(TransportErrorKind::TooLarge, "over");
        match call.outcome(Err(big), now) {
            SubscriptionStep::Done(Err(e)) => assert!(matches!(
                e.kind,
                SubscriptionErrorKind::Http(ErrorKind::LimitExceeded(_))
            )),
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn bad_call_options_and_bad_input_are_refused_before_sending() {
        let now = t0();
        let s = ClientSettings::default();
        let zero = CallOptions {
            timeout: Some(Duration::ZERO),
            ..CallOptions::default()
        };
        let op = GetSubscription {
            root: root(),
            id: "s".into(),
        };
        assert!(SubscriptionCall::new(op, &s, &zero, 1, now).is_err());
        let op = AddStreams {
            root: root(),
            id: "s".into(),
            streams: vec![],
        };
        let call = SubscriptionCall::new(op, &s, &CallOptions::default(), 1, now).unwrap();
        assert!(call.request(&RequestExtras::default()).is_err());
    }

    #[test]
    fn worker_options_fill_the_config_and_the_wake_stream_defaults_to_the_subscriptions() {
        let o = WorkerOptions::new("w1").wake_offset(Offset::beginning());
        let c = o.config(root(), "s1", "wake", RequestExtras::default(), 9);
        assert_eq!(c.worker, "w1");
        assert_eq!(c.wake_stream, "wake");
        assert_eq!(c.wake_offset, Offset::beginning());
        assert_eq!(c.rng_seed, 9);
        let sub: Subscription =
            serde_json::from_str(r#"{"id":"s1","type":"pull-wake","wake_stream":"w"}"#).unwrap();
        assert_eq!(
            worker_wake_stream(&root(), "s1", None, Some(&sub)).unwrap(),
            "w"
        );
        assert_eq!(
            worker_wake_stream(&root(), "s1", Some("x"), Some(&sub)).unwrap(),
            "x"
        );
        let hook: Subscription =
            serde_json::from_str(r#"{"id":"s1","type":"webhook","webhook":{"url":"https://x"}}"#)
                .unwrap();
        assert!(worker_wake_stream(&root(), "s1", None, Some(&hook)).is_err());
    }

    /// The error of a failed attempt of `op` (a refused connection, no retries).
    fn failed_attempt<O: SubscriptionOneShot>(op: O) -> SubscriptionError {
        let call = CallOptions {
            retry: Some(RetryPolicy::none()),
            ..CallOptions::default()
        };
        let s = ClientSettings::default();
        let mut c = SubscriptionCall::new(op, &s, &call, 1, t0()).unwrap();
        let refused = TransportError::new(TransportErrorKind::Connect, "refused");
        match c.outcome(Err(refused), t0()) {
            SubscriptionStep::Done(Err(e)) => e,
            SubscriptionStep::Done(Ok(_)) => panic!("a refused connection succeeded"),
            SubscriptionStep::Retry { error, .. } => panic!("retried without a policy: {error:?}"),
        }
    }

    /// Each operation's errors name the URL its request goes to (for the stream list
    /// operations, the list's URL).
    #[test]
    fn each_operations_errors_name_where_its_request_went() {
        let sub_url = "http://h/v1/stream/__ds/subscriptions/s1";
        let streams_url = format!("{sub_url}/streams");
        let id = || "s1".to_owned();
        fn check<O: SubscriptionOneShot>(op: O, want: &str) {
            let request = op.request(&RequestExtras::default()).unwrap();
            assert_eq!(op.url(), want);
            assert_eq!(failed_attempt(op).url, want);
            let uri = request.uri().to_string();
            assert!(uri.starts_with(want), "{uri} under {want}");
        }
        let op = CreateSubscription {
            root: root(),
            id: id(),
            config: sub::SubscriptionConfig::webhook("https://hook.example/x").pattern("a/*"),
        };
        check(op, sub_url);
        let op = GetSubscription {
            root: root(),
            id: id(),
        };
        check(op, sub_url);
        let op = DeleteSubscription {
            root: root(),
            id: id(),
        };
        check(op, sub_url);
        let op = AddStreams {
            root: root(),
            id: id(),
            streams: vec!["a".into()],
        };
        check(op, &streams_url);
        let op = RemoveStream {
            root: root(),
            id: id(),
            path: "a/b".into(),
        };
        check(op, &streams_url);
        let jwks = "http://h/v1/stream/__ds/jwks.json";
        let op = FetchJwks { url: jwks.into() };
        check(op, jwks);
        let callback = "http://h/v1/stream/__ds/callback/w1";
        let op = SendCallback {
            url: callback.into(),
            token: "t".into(),
            ack: sub::AckBody {
                wake_id: "w1".into(),
                generation: 1,
                acks: Vec::new(),
                done: true,
            },
        };
        check(op, callback);
    }

    /// The stream list operations read their answers: a missing subscription is an error,
    /// and a JWKS answer is the key set it holds.
    #[test]
    fn stream_list_and_jwks_answers_are_read() {
        let missing = br#"{"error":{"code":"NOT_FOUND","message":"no such subscription"}}"#;
        let add = AddStreams {
            root: root(),
            id: "gone".into(),
            streams: vec!["a".into()],
        };
        assert!(add.response(&parts(404), missing).is_err());
        let remove = RemoveStream {
            root: root(),
            id: "gone".into(),
            path: "a".into(),
        };
        assert!(remove.response(&parts(404), missing).is_err());
        let key = sub::SigningKey::from_bytes(&[7; 32]);
        let set = sub::Jwks::new(vec![sub::Jwk::ed25519("k1", key.verifying_key())]);
        let fetch = FetchJwks {
            url: "http://h/v1/stream/__ds/jwks.json".into(),
        };
        assert_eq!(fetch.response(&parts(200), &set.to_json()).unwrap(), set);
    }

    /// An operation's attempts take the call's timeout (or the client's), the client's
    /// response size limit, and count themselves.
    #[test]
    fn a_subscription_call_keeps_its_limits_and_counts_its_attempts() {
        let now = t0();
        let s = ClientSettings {
            request_timeout: Some(Duration::from_secs(9)),
            max_response_bytes: 1234,
            ..ClientSettings::default()
        };
        let op = || GetSubscription {
            root: root(),
            id: "s1".into(),
        };
        let mut c = SubscriptionCall::new(op(), &s, &CallOptions::default(), 3, now).unwrap();
        assert_eq!(c.timeout(), Some(Duration::from_secs(9)));
        assert_eq!(c.max_response_bytes(), 1234);
        assert_eq!(c.attempts(), 1);
        assert!(matches!(
            c.outcome(Ok((parts(503), Bytes::new())), now),
            SubscriptionStep::Retry { .. }
        ));
        assert_eq!(c.attempts(), 2);
        let call = CallOptions {
            timeout: Some(Duration::from_secs(2)),
            ..CallOptions::default()
        };
        let c = SubscriptionCall::new(op(), &s, &call, 3, now).unwrap();
        assert_eq!(c.timeout(), Some(Duration::from_secs(2)));
    }

    /// Answers `id` with `status`, `headers` and `body`, in one piece.
    fn answer(
        w: &mut sub::Worker,
        id: RequestId,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
        now: Instant,
    ) {
        let parts = crate::ops::test_util::parts(status, headers);
        w.handle_input(Input::Head { id, parts }, now);
        let chunk = Bytes::copy_from_slice(body.as_bytes());
        w.handle_input(Input::Body { id, chunk }, now);
        w.handle_input(Input::End { id }, now);
    }

    /// The requests `w` sends now, by the end of their path.
    fn sent(w: &mut sub::Worker, now: Instant) -> Vec<(String, Transmit)> {
        std::iter::from_fn(|| w.poll_transmit(now))
            .map(|t| {
                (
                    t.request
                        .uri()
                        .path()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_owned(),
                    t,
                )
            })
            .collect()
    }

    fn take(sent: &mut Vec<(String, Transmit)>, last: &str) -> Transmit {
        let i = sent.iter().position(|(p, _)| p == last).expect(last);
        sent.remove(i).1
    }

    /// The driver's loop: a claim is shown to the application, a held wake's batch is handed
    /// out; `Ok` acks its offset, a failure asks the application and a release lets the wake
    /// go; a batch of a wake no longer held and a drained wake are handled without it.
    #[test]
    fn the_worker_loop_shows_events_hands_out_batches_and_acks_or_releases_them() {
        let now = t0();
        let opts = WorkerOptions::new("w1").wake_stream("wake");
        let mut w = opts
            .machine(root(), "s1", None, RequestExtras::default(), 1, now)
            .unwrap();
        let mut out = sent(&mut w, now);
        let claim = take(&mut out, "claim");
        let json = [("content-type", "application/json")];
        let claimed = r#"{"wake_id":"w7","generation":7,"token":"t","lease_ttl_ms":30000,
            "streams":[{"path":"a","link_type":"explicit","acked_offset":"0_1","tail_offset":"0_5","has_pending":true}]}"#;
        answer(&mut w, claim.id, 200, &json, claimed, now);
        let mut shown = Vec::new();
        let step = next_worker_step(&mut w, |e| shown.push(e.clone()));
        assert!(matches!(step, Some(WorkerStep::Handled)));
        assert!(matches!(
            &shown[..],
            [sub::WorkerEvent::Claimed { generation: 7, .. }]
        ));
        let read = take(&mut sent(&mut w, now), "a");
        let up_to_date = [("stream-next-offset", "0_5"), ("stream-up-to-date", "true")];
        answer(&mut w, read.id, 200, &up_to_date, "abc", now);
        let Some(WorkerStep::Batch(batch)) = next_worker_step(&mut w, |_| panic!("shown")) else {
            panic!("the batch is handed out");
        };
        assert_eq!(batch.data, Bytes::from_static(b"abc"));
        // Drained: handled here (done is recorded for when the ack goes), not shown.
        let step = next_worker_step(&mut w, |_| panic!("shown"));
        assert!(matches!(step, Some(WorkerStep::Handled)));
        assert!(next_worker_step(&mut w, |_| panic!("shown")).is_none());
        // A failure asks the application; `Retry` hands the batch out again while it is held.
        let mut asked = 0;
        let retry = batch_handled(&mut w, &batch, Err("boom"), |e| {
            assert_eq!(*e, "boom");
            asked += 1;
            WorkerAction::Retry
        });
        assert!(retry && asked == 1);
        // `Ok` acks the batch's next offset.
        assert!(!batch_handled::<()>(&mut w, &batch, Ok(()), |_| panic!(
            "asked"
        )));
        let ack = take(&mut sent(&mut w, now), "ack");
        let body: serde_json::Value = serde_json::from_slice(ack.request.body()).unwrap();
        assert_eq!(body["acks"][0]["offset"], "0_5");
        answer(&mut w, ack.id, 200, &json, r#"{"ok":true}"#, now);
        // `Release` lets the wake go: its batches are no longer handed out.
        assert!(!batch_handled(&mut w, &batch, Err(()), |_| {
            WorkerAction::Release
        }));
        assert_eq!(w.held_generation(), None);
        let stale = sub::WorkerEvent::Batch(batch.clone());
        assert!(matches!(
            worker_step(&mut w, stale, |_| panic!("shown")),
            WorkerStep::Handled
        ));
        // `Stopped` ends the loop.
        let stopped = worker_step(&mut w, sub::WorkerEvent::Stopped, |_| panic!("shown"));
        assert!(matches!(stopped, WorkerStep::Exit(WorkerExit::Stopped)));
    }

    #[test]
    fn worker_machine_follows_the_asked_wake_stream_or_else_the_subscriptions() {
        let now = t0();
        let extras = RequestExtras::default;
        let asked = WorkerOptions::new("w1").wake_stream("mine");
        assert!(!asked.needs_subscription());
        let m = asked.machine(root(), "s1", None, extras(), 1, now).unwrap();
        assert_eq!(m.snapshot().config.wake_stream, "mine");
        let read = WorkerOptions::new("w1");
        assert!(read.needs_subscription());
        let sub: Subscription =
            serde_json::from_str(r#"{"id":"s1","type":"pull-wake","wake_stream":"w"}"#).unwrap();
        let m = read
            .machine(root(), "s1", Some(&sub), extras(), 1, now)
            .unwrap();
        assert_eq!(m.snapshot().config.wake_stream, "w");
        assert_eq!(m.snapshot().config.worker, "w1");
        assert!(read.machine(root(), "s1", None, extras(), 1, now).is_err());
        let empty = WorkerOptions::new("");
        assert!(empty
            .machine(root(), "s1", Some(&sub), extras(), 1, now)
            .is_err());
    }

    #[test]
    fn an_unknown_kid_after_a_fetch_names_the_kid() {
        let key = sub::SigningKey::from_bytes(&[7; 32]);
        let header = sub::sign_webhook(&key, "k-9", 1_700_000_000, b"{}");
        match unknown_kid(Some(&header)) {
            WebhookError::Rejected(sub::WebhookRejection::UnknownKid { kid }) => {
                assert_eq!(kid, "k-9")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            unknown_kid(None),
            WebhookError::Rejected(sub::WebhookRejection::UnknownKid { kid }) if kid.is_empty()
        ));
    }

    /// A driver's verifier: a known key verifies at once; an unknown kid costs one fetch, after
    /// which it verifies, or is refused when the fetched set does not have it either; a failed
    /// fetch answers `Jwks` (the server retries the webhook) and the cache notes it.
    #[test]
    #[allow(clippy::disallowed_methods)] // a real Instant as the cache's clock origin
    fn a_webhook_check_fetches_once_for_an_unknown_kid() {
        let now = Instant::now();
        let key = sub::SigningKey::from_bytes(&[7; 32]);
        let jwks = || sub::Jwks::new(vec![sub::Jwk::ed25519("k1", key.verifying_key())]);
        let t = 1_700_000_000;
        let body = br#"{"event":"wake"}"#;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            sub::WEBHOOK_SIGNATURE,
            sub::sign_webhook(&key, "k1", t, body).parse().unwrap(),
        );
        let url = "http://h/v1/stream/__ds/jwks.json";
        let fresh = || sub::JwksCache::new(Duration::from_secs(60), sub::DEFAULT_REPLAY_WINDOW);

        // Known key: no fetch.
        let mut cache = fresh().with_jwks(jwks());
        let mut check = WebhookCheck::new(&headers, body, t);
        assert!(matches!(
            check.step(&mut cache, url, now),
            CheckStep::Done(Ok(_))
        ));

        // Unknown: one fetch of the URL, then valid.
        let mut cache = fresh();
        let mut check = WebhookCheck::new(&headers, body, t);
        match check.step(&mut cache, url, now) {
            CheckStep::Fetch(op) => assert_eq!(op.url, url),
            other => panic!("{other:?}"),
        }
        check.fetched(&mut cache, Ok(jwks()), now).unwrap();
        assert!(matches!(
            check.step(&mut cache, url, now),
            CheckStep::Done(Ok(_))
        ));
        assert!(cache.jwks().is_some(), "the cache keeps the fetched set");

        // Still unknown after the fetch: refused, naming the kid; no second fetch.
        let mut cache = fresh();
        let mut check = WebhookCheck::new(&headers, body, t);
        assert!(matches!(
            check.step(&mut cache, url, now),
            CheckStep::Fetch(_)
        ));
        check
            .fetched(&mut cache, Ok(sub::Jwks::new(Vec::new())), now)
            .unwrap();
        match check.step(&mut cache, url, now) {
            CheckStep::Done(Err(WebhookError::Rejected(sub::WebhookRejection::UnknownKid {
                kid,
            }))) => assert_eq!(kid, "k1"),
            other => panic!("{other:?}"),
        }
        // One fetch per check, even when it took longer than the cache's refetch interval
        // (a minute): the key is still unknown after it, and the check ends.
        let mut cache = fresh();
        let mut check = WebhookCheck::new(&headers, body, t);
        assert!(matches!(
            check.step(&mut cache, url, now),
            CheckStep::Fetch(_)
        ));
        let later = now + Duration::from_secs(90);
        check
            .fetched(&mut cache, Ok(sub::Jwks::new(Vec::new())), now)
            .unwrap();
        assert!(matches!(
            check.step(&mut cache, url, later),
            CheckStep::Done(Err(WebhookError::Rejected(
                sub::WebhookRejection::UnknownKid { .. }
            )))
        ));

        // The fetch failed: the check ends with the JWKS error.
        let mut cache = fresh();
        let mut check = WebhookCheck::new(&headers, body, t);
        assert!(matches!(
            check.step(&mut cache, url, now),
            CheckStep::Fetch(_)
        ));
        let failure = SubscriptionError::transport(
            crate::subscription::SubscriptionOp::Jwks,
            url,
            TransportError::new(TransportErrorKind::Connect, "refused"),
        );
        assert!(matches!(
            check.fetched(&mut cache, Err(failure), now),
            Err(WebhookError::Jwks(_))
        ));

        // Not a webhook at all: refused without a fetch.
        let mut cache = fresh();
        let empty = http::HeaderMap::new();
        let mut check = WebhookCheck::new(&empty, body, t);
        assert!(matches!(
            check.step(&mut cache, url, now),
            CheckStep::Done(Err(WebhookError::Rejected(
                sub::WebhookRejection::MissingHeader
            )))
        ));
    }
}
