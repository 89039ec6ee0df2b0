//! An in-memory Durable Streams server, written from `PROTOCOL.md`, sans IO.
//!
//! # The exchange API
//!
//! Every request starts an **exchange**: [`SimServer::handle`] takes an `http::Request<Bytes>`
//! (the whole request body) and the current time, and returns the [`ExchangeId`] that tags
//! everything the server then says about that request. What the server says is a sequence of
//! [`ExchangeOutput`]s per exchange, always `Head`, then any number of `Body` pieces, then
//! exactly one of `End` (clean end) or `Reset` (the server dropped the connection mid-body).
//! Outputs of all exchanges go into one queue, in the order the server produced them:
//!
//! - [`SimServer::poll_output`] pops the next output of any exchange (a router, like a
//!   simulated network or an HTTP server task, drains it after every call that can produce
//!   output: `handle`, `handle_timeout`);
//! - [`SimServer::poll_exchange`] pops the next output of one exchange (for callers that
//!   follow a single request).
//!
//! Most exchanges complete inside `handle`. Live reads stay open: a long-poll
//! (`live=long-poll`) at the tail waits for an append, a close or its timeout; an SSE read
//! (`live=sse`) keeps streaming events until the stream is closed or the connection has been
//! open for [`SimServerConfig::sse_close_after`]. They progress when a later `handle` call
//! appends to or closes their stream, and at the times [`SimServer::poll_timeout`] announces,
//! when the owner calls [`SimServer::handle_timeout`]. [`SimServer::cancel`] forgets an
//! exchange whose client went away.
//!
//! ```text
//! loop {
//!     for each request that arrived:   id = server.handle(request, now)
//!     while let Some((id, out)) = server.poll_output() { deliver out to the client of id }
//!     sleep until server.poll_timeout() or the next request; then server.handle_timeout(now)
//! }
//! ```
//!
//! Time only moves forward: a `now` earlier than one already seen counts as the latest one
//! seen. `handle` first runs whatever timers are due at `now`, so a caller that forgets
//! `handle_timeout` still sees timeouts in the right order.
//!
//! # Determinism
//!
//! The server never reads a clock or OS randomness. Wall-clock time (for `Stream-Expires-At`
//! and cursors) is derived from the `Instant`s it is given ([`SimServerConfig::clock_origin`],
//! [`SimServerConfig::unix_time_at_origin`]); cursor jitter comes from a [`crate::rng::Rng`]
//! seeded with [`SimServerConfig::seed`]. Equal configuration and equal calls give equal
//! outputs.
//!
//! # Behaviour
//!
//! The behaviour follows PROTOCOL.md sections 4, 5, 8, 9 and 10; each module cites the rules it
//! implements. Choices where the protocol leaves room are documented on the items concerned;
//! the main ones: stream paths are the request URI path; `Stream-Seq` is scoped per stream;
//! offsets are `0000000000000000_` + a 16-digit position; a catch-up or long-poll response
//! holds at most [`SimServerConfig::max_chunk_bytes`]; an idle SSE connection gets a keep-alive
//! `control` event every [`SimServerConfig::sse_keepalive`].
//!
//! # Subscriptions
//!
//! Subscriptions (PROTOCOL.md 6 and 7) are served under `{stream_root}/__ds/`
//! ([`SimServerConfig::stream_root`]). Pull-wake events are appended to their wake streams like
//! any append. Webhooks are sans IO too: the server queues each delivery as an
//! `http::Request` ([`SimServer::poll_webhook`]) and its owner sends it and reports the outcome
//! ([`SimServer::handle_webhook_response`], [`SimServer::handle_webhook_failure`]). Leases and
//! webhook retries run on the same timers as everything else (`poll_timeout`/`handle_timeout`).
//! Signing keys, tokens, wake ids and retry jitter all derive from [`SimServerConfig::seed`].

mod append;
mod clock;
mod content;
mod create;
mod meta;
mod offsets;
mod producer;
mod read;
mod reply;
mod sse;
mod streams;
mod subscriptions;

#[cfg(test)]
mod tests;

pub use producer::ProducerState;
pub use subscriptions::{WebhookDelivery, WebhookId};

use crate::offset::Offset;
use crate::rng::Rng;
use bytes::{Bytes, BytesMut};
use clock::VirtualClock;
use reply::Reply;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};
use streams::{Lookup, Store, StreamId};

/// How a [`SimServer`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimServerConfig {
    /// How long a long-poll at the tail waits before answering 204 (PROTOCOL.md 5.7 leaves it
    /// to the implementation). Default: 1 s.
    pub long_poll_timeout: Duration,
    /// The most data bytes one catch-up or long-poll response (or one SSE `data` event)
    /// carries. JSON streams are cut between messages (a single larger message still goes
    /// whole), `text/*` streams between UTF-8 characters, others anywhere. A response cut
    /// short has no `Stream-Up-To-Date` (5.6). Default: `None`, no limit.
    pub max_chunk_bytes: Option<usize>,
    /// Close each SSE connection (cleanly, after a complete event) once it has been open this
    /// long (10.2 recommends about 60 s). `None`: never. Default: 60 s.
    pub sse_close_after: Option<Duration>,
    /// Send a keep-alive `control` event (same offset, new cursor, `upToDate`) on an SSE
    /// connection that has been silent this long. `None`: never. Default: 1 s.
    pub sse_keepalive: Option<Duration>,
    /// Seeds the generator of cursor jitter (10.1). Default: 0.
    pub seed: u64,
    /// The length of a cursor interval (10.1). Default: 20 s.
    pub cursor_interval: Duration,
    /// The cursor epoch, as time since the Unix epoch (10.1). Default: 2024-10-09T00:00:00Z.
    pub cursor_epoch_unix: Duration,
    /// The `Instant` at which the virtual wall clock reads
    /// [`unix_time_at_origin`](Self::unix_time_at_origin). `None`: the first `now` the
    /// server is given. A server wrapped for real time sets both from the system clock.
    pub clock_origin: Option<Instant>,
    /// The virtual wall-clock time at the origin, as time since the Unix epoch.
    /// Default: 2026-01-01T00:00:00Z.
    pub unix_time_at_origin: Duration,
    /// The path under which streams live, `{stream-url}` of PROTOCOL.md 6: subscription
    /// control routes are `{stream_root}/__ds/...`, and stream paths in subscription bodies
    /// are relative to it (a stream outside it cannot be linked). Default: `/v1/stream`.
    pub stream_root: String,
    /// The `scheme://authority` clients reach the server at, for the absolute URLs written
    /// into subscription bodies (webhook `callback_url`, `jwks_url`: 6.3, 7.1). `None`: taken
    /// from each subscription's `PUT` request (its absolute URI, else its `Host` header, with
    /// scheme `http`); without either the URLs are paths. Default: `None`.
    pub public_url: Option<String>,
}

impl Default for SimServerConfig {
    fn default() -> Self {
        SimServerConfig {
            long_poll_timeout: Duration::from_secs(1),
            max_chunk_bytes: None,
            sse_close_after: Some(Duration::from_secs(60)),
            sse_keepalive: Some(Duration::from_secs(1)),
            seed: 0,
            cursor_interval: Duration::from_secs(20),
            cursor_epoch_unix: Duration::from_secs(1_728_432_000),
            clock_origin: None,
            unix_time_at_origin: Duration::from_secs(1_767_225_600),
            stream_root: "/v1/stream".to_owned(),
            public_url: None,
        }
    }
}

/// Identifies one request/response exchange of a [`SimServer`]; unique for the server's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub u64);

impl fmt::Display for ExchangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exchange #{}", self.0)
    }
}

/// One piece of what the server sends for an exchange, in order: `Head`, `Body`*, then `End`
/// or `Reset`.
#[derive(Debug, Clone)]
pub enum ExchangeOutput {
    /// The status line and headers.
    Head(http::response::Parts),
    /// A piece of the body (never empty).
    Body(Bytes),
    /// The body ended cleanly; the exchange is over.
    End,
    /// The server dropped the connection before the body ended (an SSE read whose stream was
    /// deleted or expired); the exchange is over.
    Reset,
}

/// An open live read.
#[derive(Debug, Clone)]
enum Waiter {
    LongPoll(read::LongPoll),
    Sse(sse::SseConn),
}

/// The in-memory Durable Streams server. See the [module documentation](self) for the
/// exchange API.
#[derive(Debug, Clone)]
pub struct SimServer {
    config: SimServerConfig,
    clock: VirtualClock,
    rng: Rng,
    store: Store,
    subs: subscriptions::Registry,
    waiters: BTreeMap<ExchangeId, Waiter>,
    outputs: VecDeque<(ExchangeId, ExchangeOutput)>,
    next_exchange: u64,
    latest: Option<Instant>,
}

impl SimServer {
    /// A server with no streams.
    pub fn new(config: SimServerConfig) -> Self {
        SimServer {
            clock: VirtualClock::new(
                config.clock_origin,
                config.unix_time_at_origin,
                config.cursor_epoch_unix,
                config.cursor_interval,
            ),
            rng: Rng::new(config.seed),
            store: Store::default(),
            subs: subscriptions::Registry::new(&config),
            waiters: BTreeMap::new(),
            outputs: VecDeque::new(),
            next_exchange: 0,
            latest: None,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SimServerConfig {
        &self.config
    }

    // ----- commands -------------------------------------------------------------------------

    /// Starts the exchange for `request` (its URI path names the stream; its body is complete)
    /// at time `now`, after running the timers due at `now`. Its outputs, and those of live
    /// reads it wakes (an append or a close does), are queued for
    /// [`poll_output`](Self::poll_output).
    pub fn handle(&mut self, request: http::Request<Bytes>, now: Instant) -> ExchangeId {
        let now = self.advance(now);
        self.next_exchange += 1;
        let id = ExchangeId(self.next_exchange);
        // Subscription control routes come before stream operations (PROTOCOL.md 6).
        if self.subscription_route(id, &request, now) {
            return id;
        }
        let method = request.method().clone();
        match method {
            http::Method::PUT => self.create(id, &request, now),
            http::Method::POST => self.append(id, &request, now),
            http::Method::GET => self.read(id, &request, now),
            http::Method::HEAD => self.head(id, &request),
            http::Method::DELETE => self.delete(id, &request),
            _ => self.reply(
                id,
                Reply::error(405, "method not allowed")
                    .header(http::header::ALLOW, "GET, HEAD, PUT, POST, DELETE"),
            ),
        }
        id
    }

    /// Runs what is due at `now`: expires streams whose TTL or expiry time has passed, answers
    /// long-polls whose timeout passed (204), sends SSE keep-alives and closes SSE connections
    /// that have been open long enough, expires subscription leases and queues due webhook
    /// retries. Safe to call at any time, spuriously or late.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// Forgets an exchange whose client went away: an open live read stops, and its queued
    /// outputs are dropped. Unknown or finished exchanges are ignored.
    pub fn cancel(&mut self, id: ExchangeId) {
        self.waiters.remove(&id);
        self.outputs.retain(|(o, _)| *o != id);
    }

    /// Handles `request` and, when it completes at once (every request but a live read that
    /// has to wait), returns the whole response, taking its outputs off the queue. Otherwise
    /// returns the id of the open exchange, whose outputs stay queued. A convenience for
    /// setting up streams and for tests.
    pub fn call(
        &mut self,
        request: http::Request<Bytes>,
        now: Instant,
    ) -> Result<http::Response<Bytes>, ExchangeId> {
        let id = self.handle(request, now);
        if self.is_open(id) {
            return Err(id);
        }
        let mut head = None;
        let mut body = BytesMut::new();
        while let Some(out) = self.poll_exchange(id) {
            match out {
                ExchangeOutput::Head(parts) => head = Some(parts),
                ExchangeOutput::Body(b) => body.extend_from_slice(&b),
                ExchangeOutput::End | ExchangeOutput::Reset => break,
            }
        }
        let parts = head.expect("a finished exchange has a head");
        Ok(http::Response::from_parts(parts, body.freeze()))
    }

    // ----- outputs --------------------------------------------------------------------------

    /// The next output of any exchange, in production order. Changes after `handle`,
    /// `handle_timeout` and `cancel`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<(ExchangeId, ExchangeOutput)> {
        self.outputs.pop_front()
    }

    /// The next output of exchange `id` (outputs of other exchanges stay queued). Changes after
    /// `handle`, `handle_timeout` and `cancel`.
    #[must_use]
    pub fn poll_exchange(&mut self, id: ExchangeId) -> Option<ExchangeOutput> {
        let i = self.outputs.iter().position(|(o, _)| *o == id)?;
        self.outputs.remove(i).map(|(_, out)| out)
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do: the earliest
    /// long-poll timeout, SSE keep-alive or close, stream expiry, subscription lease expiry or
    /// webhook retry. `None`: nothing is scheduled. Changes after `handle`, `handle_timeout` and `cancel`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiters = self.waiters.values().filter_map(|w| match w {
            Waiter::LongPoll(lp) => Some(lp.deadline),
            Waiter::Sse(conn) => conn.next_deadline(),
        });
        waiters
            .chain(self.store.next_expiry(&self.clock))
            .chain(self.subs.next_deadline())
            .min()
    }

    // ----- getters --------------------------------------------------------------------------

    /// Whether exchange `id` is still open (a live read waiting or streaming).
    pub fn is_open(&self, id: ExchangeId) -> bool {
        self.waiters.contains_key(&id)
    }

    /// How many exchanges are open.
    pub fn open_exchanges(&self) -> usize {
        self.waiters.len()
    }

    /// The paths of the streams clients can reach (not deleted, not expired), in order.
    pub fn stream_paths(&self) -> Vec<String> {
        self.store.live_paths().map(str::to_owned).collect()
    }

    /// The data of the stream at `path`, in order: for JSON streams one item per message, for
    /// others one item per append; a fork starts with the data it inherits (an inherited append
    /// cut by the fork point appears cut). `None` when no stream is reachable at `path`.
    /// Expiry is applied as of the last `handle`/`handle_timeout`.
    pub fn stream_data(&self, path: &str) -> Option<Vec<Bytes>> {
        let s = self.store.live(path)?;
        Some(self.store.units(s.id, 0))
    }

    /// What a catch-up read of the whole stream at `path` returns as its body: the bytes, or
    /// for JSON streams the JSON array of its messages.
    pub fn stream_bytes(&self, path: &str) -> Option<Bytes> {
        let s = self.store.live(path)?;
        Some(read::body_of(s.json, &self.store.units(s.id, 0)))
    }

    /// Whether the stream at `path` is closed.
    pub fn is_closed(&self, path: &str) -> Option<bool> {
        self.store.live(path).map(|s| s.closed)
    }

    /// The content type of the stream at `path`.
    pub fn content_type(&self, path: &str) -> Option<String> {
        self.store.live(path).map(|s| s.content_type.clone())
    }

    /// The state of idempotent producer `producer_id` on the stream at `path` (5.2.1).
    pub fn producer_state(&self, path: &str, producer_id: &str) -> Option<ProducerState> {
        self.store.live(path)?.producers.get(producer_id).copied()
    }

    /// The tail offset (`Stream-Next-Offset` of a `HEAD`) of the stream at `path`.
    pub fn tail_offset(&self, path: &str) -> Option<Offset> {
        self.store.live(path).map(|s| offsets::mint(s.tail))
    }

    // ----- internals ------------------------------------------------------------------------

    /// Moves time to `now` (never backwards) and runs what is due.
    fn advance(&mut self, now: Instant) -> Instant {
        self.clock.anchor(now);
        let now = self.latest.map_or(now, |l| l.max(now));
        self.latest = Some(now);
        // The paths of streams about to expire, for the subscriptions that link them (only
        // looked up when something expires and subscriptions exist).
        let expiring = !self.subs.is_empty()
            && self
                .store
                .next_expiry(&self.clock)
                .is_some_and(|d| d <= now);
        let live: Vec<(StreamId, String)> = if expiring {
            self.store
                .live_paths()
                .filter_map(|p| self.store.live(p).map(|s| (s.id, p.to_owned())))
                .collect()
        } else {
            Vec::new()
        };
        for sid in self.store.expire_due(now, &self.clock) {
            self.stream_vanished(sid, 404);
            if let Some((_, path)) = live.iter().find(|(id, _)| *id == sid) {
                self.subscriptions_on_vanished(path);
            }
        }
        self.subscriptions_run_due(now);
        let due: Vec<ExchangeId> = self
            .waiters
            .iter()
            .filter(|(_, w)| match w {
                Waiter::LongPoll(lp) => lp.deadline <= now,
                Waiter::Sse(conn) => conn.next_deadline().is_some_and(|d| d <= now),
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            match self.waiters.remove(&id) {
                Some(Waiter::LongPoll(lp)) => self.long_poll_timed_out(id, lp, now),
                Some(Waiter::Sse(conn)) => self.sse_timer(id, conn, now),
                None => {}
            }
        }
        now
    }

    fn emit(&mut self, id: ExchangeId, mut out: ExchangeOutput) {
        if let ExchangeOutput::Head(parts) = &mut out {
            // Browser security headers on every response (12.7: servers SHOULD).
            let h = &mut parts.headers;
            h.insert(
                http::header::X_CONTENT_TYPE_OPTIONS,
                http::HeaderValue::from_static("nosniff"),
            );
            h.insert(
                http::header::HeaderName::from_static("cross-origin-resource-policy"),
                http::HeaderValue::from_static("cross-origin"),
            );
        }
        self.outputs.push_back((id, out));
    }

    /// Sends a complete response.
    fn reply(&mut self, id: ExchangeId, reply: Reply) {
        let (parts, body) = reply.into_parts();
        self.emit(id, ExchangeOutput::Head(parts));
        if !body.is_empty() {
            self.emit(id, ExchangeOutput::Body(body));
        }
        self.emit(id, ExchangeOutput::End);
    }

    /// The live stream at the request's path, or the error reply for a missing (404) or
    /// soft-deleted (410) one.
    fn live_stream(&self, path: &str) -> Result<StreamId, Reply> {
        match self.store.lookup(path) {
            Lookup::Live(sid) => Ok(sid),
            Lookup::Gone(_) => Err(Reply::error(410, "stream is gone")),
            Lookup::Missing => Err(Reply::error(404, "stream not found")),
        }
    }

    /// Data was appended to stream `sid` or it was closed: live reads on it progress.
    fn stream_changed(&mut self, sid: StreamId, now: Instant) {
        let ids: Vec<ExchangeId> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.stream() == sid)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            match self.waiters.remove(&id) {
                Some(Waiter::LongPoll(lp)) => self.long_poll_woken(id, lp, now),
                Some(Waiter::Sse(mut conn)) => {
                    let ended = self.sse_pump(id, &mut conn, now, false);
                    if !ended {
                        self.waiters.insert(id, Waiter::Sse(conn));
                    }
                }
                None => {}
            }
        }
    }

    /// Stream `sid` left the clients' reach (deleted, soft-deleted, expired): its long-polls
    /// get `status`, its SSE connections are reset.
    fn stream_vanished(&mut self, sid: StreamId, status: u16) {
        let ids: Vec<ExchangeId> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.stream() == sid)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            match self.waiters.remove(&id) {
                Some(Waiter::LongPoll(_)) => {
                    let msg = if status == 410 {
                        "stream is gone"
                    } else {
                        "stream not found"
                    };
                    self.reply(id, Reply::error(status, msg));
                }
                Some(Waiter::Sse(_)) => self.emit(id, ExchangeOutput::Reset),
                None => {}
            }
        }
    }
}

impl Waiter {
    fn stream(&self) -> StreamId {
        match self {
            Waiter::LongPoll(lp) => lp.stream,
            Waiter::Sse(conn) => conn.stream,
        }
    }
}
