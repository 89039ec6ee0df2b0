//! Subscriptions: durable cursors over sets of streams that wake workers when the streams have
//! pending data (PROTOCOL.md sections 6 and 7), by webhook or by pull-wake.
//!
//! # Routes
//!
//! Control routes live under `{stream root}/__ds/` ([`SimServerConfig::stream_root`], default
//! `/v1/stream`), routed before stream operations (6): `PUT`/`GET`/`DELETE
//! subscriptions/:id`, `POST subscriptions/:id/streams`, `DELETE subscriptions/:id/streams/:path`,
//! `POST subscriptions/:id/{callback,claim,ack,release}` and `GET jwks.json`. Stream paths in
//! bodies are relative to the stream root, in the form they take in request URIs. Errors are
//! `{"error":{"code":..,"message":..}}` with the codes of the reference server (FIELD-NOTES):
//! `INVALID_REQUEST` and `WEBHOOK_URL_REJECTED` 400, `TOKEN_INVALID`/`TOKEN_EXPIRED` 401, `SUBSCRIPTION_NOT_FOUND` 404,
//! `SUBSCRIPTION_ALREADY_EXISTS`, `FENCED`, `ALREADY_CLAIMED`, `NO_PENDING_WORK` and
//! `INVALID_OFFSET` 409.
//!
//! # Cursors
//!
//! Each linked stream has one cursor, `acked_offset`, which is the offset the next read
//! starts at (as on the reference server, FIELD-NOTES): acking the `tail_offset` a wake
//! reported means "everything up to the tail is processed". A link starts at the stream's tail
//! when the subscription is created or the stream is added explicitly (6.2, 6.4), and at `-1`
//! (before the first byte) when a stream matching the pattern is first seen through a write
//! (6.2: "linked before that append for wake purposes"; the reference server uses `-1` too,
//! which also covers data a stream was created with). A linked stream has pending work when its
//! tail is past its cursor (7), `-1` counting as position 0.
//!
//! # Wakes, leases, fencing
//!
//! Pending work creates a wake (generation + 1, a new `wake_id`) when no wake is outstanding
//! and no lease is held (7). A webhook wake issues its callback token and starts its lease at
//! once (7.3) and queues a delivery; a pull-wake wake appends a wake event to the wake stream
//! and waits, without a lease, for a claim (an unclaimed wake never expires, FIELD-NOTES). A
//! claim, an ack or callback with `done: true`, a release and a lease expiry end the wake and
//! start the next one when work is left. Callbacks, acks and releases must carry the current
//! token (signed, 12.9), generation and wake id, or get `409 FENCED` (7.3).
//!
//! # Webhooks, sans IO
//!
//! The server makes no requests itself: a delivery is queued as an `http::Request` for the
//! owner to send ([`SimServer::poll_webhook`]), who reports how it went
//! ([`SimServer::handle_webhook_response`], [`SimServer::handle_webhook_failure`]). At most
//! one delivery per subscription is outstanding. A failure schedules a retry (7.1: 1 s
//! doubling to 60 s, ±20% jitter from a generator seeded by [`SimServerConfig::seed`]) and
//! marks the subscription `failed` until a delivery succeeds (6.3).

mod config;
mod glob;
mod keys;
mod routes;
mod wake;

#[cfg(test)]
mod tests;

use super::{SimServer, SimServerConfig};
use crate::rng::Rng;
use bytes::Bytes;
use config::SubConfig;
use keys::Keys;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Instant;

/// Salts for the generators of wake ids and retry jitter, so that they do not share the
/// sequence of the server's cursor jitter (whose outputs existing simulations pin).
const WAKE_ID_SALT: u64 = 0x7761_6b65_6964_7331; // "wakeids1"
const JITTER_SALT: u64 = 0x6a69_7474_6572_3031; // "jitter01"

/// Identifies one webhook delivery attempt of a [`SimServer`]; unique for the server's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookId(pub u64);

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "webhook delivery #{}", self.0)
    }
}

/// A webhook request the server wants sent (PROTOCOL.md 7.1): `POST {webhook.url}` with a
/// JSON body and a `Webhook-Signature` header. Whoever sends it reports the outcome with
/// [`SimServer::handle_webhook_response`] or [`SimServer::handle_webhook_failure`], under
/// `id`.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// Tags the outcome report.
    pub id: WebhookId,
    /// The request: absolute URI, method, headers and the whole body.
    pub request: http::Request<Bytes>,
}

/// One linked stream of a subscription (6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    /// Added by `streams[]` (6.2, 6.4); otherwise linked by the pattern.
    explicit: bool,
    /// The next read position; `None` is `-1`, before the first byte.
    acked: Option<u64>,
}

/// The wake in flight (7).
#[derive(Debug, Clone)]
struct Wake {
    id: String,
}

/// What a subscription's webhook delivery is doing (7.1).
#[derive(Debug, Clone, Default)]
struct WebhookState {
    /// The current wake has not been handed out for delivery since it was issued (or since
    /// its last attempt failed).
    needs_delivery: bool,
    /// The delivery handed out and not yet answered.
    in_flight: Option<WebhookId>,
    /// Failed attempts in a row.
    failures: u32,
    /// When the next attempt may go (7.1 `next_attempt_at`).
    next_attempt_at: Option<Instant>,
}

/// One subscription.
#[derive(Debug, Clone)]
struct Subscription {
    id: String,
    /// Distinguishes successive subscriptions created under one id (after a `DELETE`).
    incarnation: u64,
    config: SubConfig,
    /// RFC 3339, virtual wall clock.
    created_at: String,
    /// `scheme://authority` for absolute URLs in bodies, or empty (path-only URLs).
    origin: String,
    links: BTreeMap<String, Link>,
    generation: u64,
    wake: Option<Wake>,
    /// The pull-wake worker holding the claim.
    holder: Option<String>,
    /// The bearer token of the current wake (webhook) or claim (pull-wake).
    token: Option<String>,
    lease_deadline: Option<Instant>,
    webhook: WebhookState,
}

/// An answered-or-not delivery: what it was for.
#[derive(Debug, Clone)]
struct InFlight {
    sub: String,
    incarnation: u64,
    wake_id: String,
    /// The tail positions the delivery's body reported: what `{"done": true}` acks (7.1).
    snapshot: BTreeMap<String, u64>,
}

/// All subscriptions of a server and the machinery they share.
#[derive(Debug, Clone)]
pub(super) struct Registry {
    subs: BTreeMap<String, Subscription>,
    keys: Keys,
    wake_ids: Rng,
    jitter: Rng,
    next_incarnation: u64,
    next_delivery: u64,
    outbound: VecDeque<WebhookDelivery>,
    in_flight: BTreeMap<WebhookId, InFlight>,
}

impl Registry {
    pub(super) fn new(config: &SimServerConfig) -> Self {
        Registry {
            subs: BTreeMap::new(),
            keys: Keys::new(config.seed),
            wake_ids: Rng::new(config.seed ^ WAKE_ID_SALT),
            jitter: Rng::new(config.seed ^ JITTER_SALT),
            next_incarnation: 0,
            next_delivery: 0,
            outbound: VecDeque::new(),
            in_flight: BTreeMap::new(),
        }
    }

    /// Whether there are no subscriptions.
    pub(super) fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The earliest lease expiry or webhook retry.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.subs
            .values()
            .flat_map(|s| {
                let retry = s
                    .webhook
                    .next_attempt_at
                    .filter(|_| s.webhook.needs_delivery && s.webhook.in_flight.is_none());
                [s.lease_deadline, retry]
            })
            .flatten()
            .min()
    }
}

/// Whether `rel` is the subscription's own wake stream, which its pattern never links: each
/// wake event would be pending work for the subscription itself, and a worker that acks
/// everything would be woken again by every `done` forever. 6.2 does not say; an explicit link
/// to it is still honoured.
fn own_wake_stream(sub: &Subscription, rel: &str) -> bool {
    sub.config.wake_stream.as_deref() == Some(rel)
}

/// `"2026-01-01T00:00:00.000Z"` for Unix nanoseconds (RFC 3339, millisecond precision).
fn rfc3339(unix_nanos: i128) -> String {
    let ms = unix_nanos.div_euclid(1_000_000);
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400) as i64;
    let rem = secs.rem_euclid(86_400) as i64;
    // Civil date from days since 1970-01-01 (inverse of clock::days_from_civil).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

impl SimServer {
    // ----- public API -----------------------------------------------------------------------

    /// The next webhook request to send (PROTOCOL.md 7.1), in the order the server produced
    /// them. Report its outcome with [`handle_webhook_response`](Self::handle_webhook_response)
    /// or [`handle_webhook_failure`](Self::handle_webhook_failure); until then the
    /// subscription gets no other delivery. Changes after `handle`, `handle_timeout` and the
    /// webhook reports.
    #[must_use]
    pub fn poll_webhook(&mut self) -> Option<WebhookDelivery> {
        self.subs.outbound.pop_front()
    }

    /// Reports the response to webhook delivery `id`, at time `now`, after running the timers
    /// due at `now`. A 2xx marks the subscription `active` again; a 2xx whose body is
    /// `{"done": true}` also acks the tails the delivery reported, ends the wake and wakes
    /// again if work is left (7.1). Any other status counts as a failure (a retry is
    /// scheduled). Unknown ids, and deliveries of deleted subscriptions, are ignored.
    pub fn handle_webhook_response(
        &mut self,
        id: WebhookId,
        status: u16,
        body: &[u8],
        now: Instant,
    ) {
        let now = self.advance(now);
        self.webhook_answered(id, Some((status, body)), now);
    }

    /// Reports that webhook delivery `id` got no response (connection refused, timed out,
    /// reset), at time `now`: a retry is scheduled (7.1). Unknown ids are ignored.
    pub fn handle_webhook_failure(&mut self, id: WebhookId, now: Instant) {
        let now = self.advance(now);
        self.webhook_answered(id, None, now);
    }

    /// The ids of the subscriptions that exist, in order.
    pub fn subscription_ids(&self) -> Vec<String> {
        self.subs.subs.keys().cloned().collect()
    }

    // ----- hooks for the stream operations ----------------------------------------------------

    /// The stream-root-relative path of a stream path, when it is under the root and not
    /// reserved (6: first segment `__ds`).
    fn relative_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let root = self.config.stream_root.trim_end_matches('/');
        let rel = path.strip_prefix(root)?.strip_prefix('/')?;
        let rel = rel.trim_end_matches('/');
        if rel.is_empty() || rel.split('/').next() == Some("__ds") {
            return None;
        }
        Some(rel)
    }

    /// The stream path of a stream-root-relative path.
    fn absolute_path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.config.stream_root.trim_end_matches('/'))
    }

    /// The tail position of the live stream at `rel`, 0 when there is none.
    fn tail_of(&self, rel: &str) -> u64 {
        self.store
            .live(&self.absolute_path(rel))
            .map_or(0, |s| s.tail)
    }

    /// Data was written to the live stream at `path` (an append, or a create with a body):
    /// subscriptions whose pattern matches link it if new (at `-1`, 6.2), and subscriptions
    /// linked to it wake if idle (7).
    pub(super) fn subscriptions_on_write(&mut self, path: &str, now: Instant) {
        let Some(rel) = self.relative_path(path).map(str::to_owned) else {
            return;
        };
        let ids: Vec<String> = self.subs.subs.keys().cloned().collect();
        for sub_id in ids {
            let Some(sub) = self.subs.subs.get_mut(&sub_id) else {
                continue;
            };
            if !sub.links.contains_key(&rel) {
                match &sub.config.pattern {
                    Some(p) if glob::matches(p, &rel) && !own_wake_stream(sub, &rel) => {
                        sub.links.insert(
                            rel.clone(),
                            Link {
                                explicit: false,
                                acked: None,
                            },
                        );
                    }
                    _ => continue,
                }
            }
            self.maybe_wake(&sub_id, &rel, now);
        }
    }

    /// The stream at `path` left the namespace (deleted, expired). Its glob links go (a stream
    /// created there later is linked again by its first write); explicit links stay, their
    /// cursor back at position 0 (the tail of a stream that does not exist), so that a stream
    /// created there later is read from its start. 6 does not say; the reference server drops
    /// both kinds.
    pub(super) fn subscriptions_on_vanished(&mut self, path: &str) {
        let Some(rel) = self.relative_path(path).map(str::to_owned) else {
            return;
        };
        for sub in self.subs.subs.values_mut() {
            match sub.links.get_mut(&rel) {
                Some(link) if link.explicit => link.acked = Some(0),
                Some(_) => {
                    sub.links.remove(&rel);
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod format_tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_unix_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(1_767_225_600_123_000_000),
            "2026-01-01T00:00:00.123Z"
        );
        assert_eq!(rfc3339(951_827_696_000_000_000), "2000-02-29T12:34:56.000Z");
    }

    /// `created_at` (6.3) names the right day in every month and across the century and
    /// 400-year boundaries: every day from 1600 to 2400, at the last millisecond of that day,
    /// reads back as the same instant with the server's own RFC 3339 parser.
    #[test]
    fn rfc3339_names_every_day_of_the_year() {
        use crate::sim::server::clock::{days_from_civil, parse_rfc3339};
        const DAY_NANOS: i128 = 86_400 * 1_000_000_000;
        assert_eq!(rfc3339(951_868_800_000_000_000), "2000-03-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(1_798_761_599_999_000_000),
            "2026-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339(5_097_600_000_000_000), "1970-03-01T00:00:00.000Z");
        for days in days_from_civil(1600, 1, 1)..days_from_civil(2401, 1, 1) {
            let at = i128::from(days + 1) * DAY_NANOS - 1_000_000;
            let text = rfc3339(at);
            assert!(text.ends_with("T23:59:59.999Z"), "{text}");
            assert_eq!(parse_rfc3339(&text), Ok(at), "{text}");
        }
    }
}
