//! Wakes, leases and webhook deliveries (PROTOCOL.md 7).

use super::config::Kind;
use super::keys::{TokenClaims, TOKEN_LIFETIME_SECS};
use super::{InFlight, Subscription, Wake, WebhookDelivery, WebhookId};
use crate::sim::server::offsets;
use crate::sim::server::SimServer;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// First webhook retry delay (7.1).
const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest webhook retry delay (7.1).
const RETRY_CAP: Duration = Duration::from_secs(60);
/// Retry jitter, as a fraction of the delay either way (7.1).
const RETRY_JITTER: f64 = 0.2;

/// The `n`th retry delay (n = 1 after the first failure) before jitter: 1 s doubling, at most
/// 60 s (7.1).
pub(super) fn retry_delay(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(16);
    RETRY_BASE.saturating_mul(1 << doublings).min(RETRY_CAP)
}

/// How a linked stream looks to a worker (6.3, 7.1, 7.2).
pub(super) struct StreamInfo {
    pub path: String,
    pub explicit: bool,
    pub acked: Option<u64>,
    pub tail: u64,
}

impl StreamInfo {
    pub(super) fn pending(&self) -> bool {
        self.tail > self.acked.unwrap_or(0)
    }

    pub(super) fn link_type(&self) -> &'static str {
        if self.explicit {
            "explicit"
        } else {
            "glob"
        }
    }

    pub(super) fn acked_offset(&self) -> String {
        self.acked
            .map_or_else(|| "-1".to_owned(), |p| offsets::mint(p).as_str().to_owned())
    }

    /// The entry of a wake or claim body (7.1, 7.2).
    pub(super) fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "link_type": self.link_type(),
            "acked_offset": self.acked_offset(),
            "tail_offset": offsets::mint(self.tail).as_str(),
            "has_pending": self.pending(),
        })
    }
}

impl SimServer {
    /// The linked streams of a subscription with their current tails, in path order.
    pub(super) fn stream_infos(&self, sub: &Subscription) -> Vec<StreamInfo> {
        sub.links
            .iter()
            .map(|(path, link)| StreamInfo {
                path: path.clone(),
                explicit: link.explicit,
                acked: link.acked,
                tail: self.tail_of(path),
            })
            .collect()
    }

    /// The first linked stream with pending work.
    pub(super) fn first_pending(&self, sub: &Subscription) -> Option<String> {
        self.stream_infos(sub)
            .into_iter()
            .find(StreamInfo::pending)
            .map(|i| i.path)
    }

    /// Unix seconds of the virtual wall clock at `now`.
    pub(super) fn unix_secs(&self, now: Instant) -> u64 {
        u64::try_from(self.clock.unix_nanos(now) / 1_000_000_000).unwrap_or(0)
    }

    /// A token for the current wake of subscription `sub` (7.3, 12.9).
    pub(super) fn mint_token(&self, sub: &Subscription, now: Instant) -> String {
        self.subs.keys.mint_token(&TokenClaims {
            sub: sub.id.clone(),
            incarnation: sub.incarnation,
            generation: sub.generation,
            wake_id: sub.wake.as_ref().map_or_else(String::new, |w| w.id.clone()),
            expires: self.unix_secs(now) + TOKEN_LIFETIME_SECS,
        })
    }

    /// Creates a wake when subscription `sub_id` has pending work, no wake outstanding and no
    /// lease held (7). `trigger` is the stream a pull-wake event names when it has pending
    /// work (otherwise the first pending stream). Returns whether a wake was created.
    pub(super) fn maybe_wake(&mut self, sub_id: &str, trigger: &str, now: Instant) -> bool {
        let Some(sub) = self.subs.subs.get(sub_id) else {
            return false;
        };
        if sub.wake.is_some() || sub.holder.is_some() || sub.lease_deadline.is_some() {
            return false;
        }
        let infos = self.stream_infos(sub);
        let trigger = match infos.iter().find(|i| i.path == trigger && i.pending()) {
            Some(i) => i.path.clone(),
            None => match infos.iter().find(|i| i.pending()) {
                Some(i) => i.path.clone(),
                None => return false,
            },
        };
        self.create_wake(sub_id, &trigger, now);
        true
    }

    /// Issues a new wake (7.3: generation + 1, new `wake_id`): a webhook wake gets its token
    /// and lease and is queued for delivery; a pull-wake wake is announced on the wake stream.
    pub(super) fn create_wake(&mut self, sub_id: &str, trigger: &str, now: Instant) {
        let wake_id = format!("w_{:016x}", self.subs.wake_ids.next_u64());
        let Some(sub) = self.subs.subs.get_mut(sub_id) else {
            return;
        };
        sub.generation += 1;
        sub.wake = Some(Wake { id: wake_id });
        match sub.config.kind {
            Kind::Webhook => {
                let lease = Duration::from_millis(sub.config.lease_ttl_ms);
                sub.lease_deadline = Some(now + lease);
                sub.webhook.needs_delivery = true;
                let sub = &self.subs.subs[sub_id];
                let token = self.mint_token(sub, now);
                self.subs
                    .subs
                    .get_mut(sub_id)
                    .expect("looked up above")
                    .token = Some(token);
                self.pump_webhook(sub_id, now);
            }
            Kind::PullWake => self.write_wake_event(sub_id, trigger, now),
        }
    }

    /// Appends a wake event (7.2) to the subscription's wake stream. The stream must exist
    /// (7.2: created by the application); when it does not, or is closed, the event is dropped
    /// (the wake still stands: a worker can claim without having seen it, FIELD-NOTES). The
    /// event is one JSON message on a JSON stream, its JSON text on any other.
    fn write_wake_event(&mut self, sub_id: &str, trigger: &str, now: Instant) {
        let Some(sub) = self.subs.subs.get(sub_id) else {
            return;
        };
        let Some(wake_stream) = sub.config.wake_stream.as_deref() else {
            return;
        };
        let event = json!({
            "type": "wake",
            "subscription_id": sub.id,
            "stream": trigger,
            "generation": sub.generation,
            "ts": u64::try_from(self.clock.unix_nanos(now) / 1_000_000).unwrap_or(0),
        });
        let path = self.absolute_path(wake_stream);
        let Some(sid) = self.store.live(&path).filter(|s| !s.closed).map(|s| s.id) else {
            return;
        };
        let s = self.store.get_mut(sid);
        s.touch(now);
        s.push_append(vec![Bytes::from(event.to_string())]);
        self.stream_changed(sid, now);
        // The wake stream is an ordinary stream: other subscriptions may watch it. This
        // recursion ends: a subscription that already has a wake outstanding does not wake.
        self.subscriptions_on_write(&path, now);
    }

    /// Ends the current wake of `sub_id`: lease, holder, token and wake id are cleared (7.2,
    /// 7.3).
    pub(super) fn end_wake(&mut self, sub_id: &str) {
        if let Some(sub) = self.subs.subs.get_mut(sub_id) {
            sub.wake = None;
            sub.holder = None;
            sub.token = None;
            sub.lease_deadline = None;
            sub.webhook.needs_delivery = false;
        }
    }

    /// Ends the current wake and starts the next one if work is left; returns whether it did
    /// (the `next_wake` of 7.1, 7.2).
    pub(super) fn end_wake_and_rewake(&mut self, sub_id: &str, now: Instant) -> bool {
        self.end_wake(sub_id);
        self.maybe_wake(sub_id, "", now)
    }

    /// Expires leases and lets due webhook retries go.
    pub(in crate::sim::server) fn subscriptions_run_due(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .subs
            .subs
            .values()
            .filter(|s| s.lease_deadline.is_some_and(|d| d <= now))
            .map(|s| s.id.clone())
            .collect();
        for sub_id in expired {
            // 7.3: clear the holder and wake token; wake again if work is pending.
            self.end_wake_and_rewake(&sub_id, now);
        }
        let retries: Vec<String> = self
            .subs
            .subs
            .values()
            .filter(|s| s.webhook.next_attempt_at.is_some_and(|t| t <= now))
            .map(|s| s.id.clone())
            .collect();
        for sub_id in retries {
            self.pump_webhook(&sub_id, now);
        }
    }

    /// Queues the delivery of the current wake of webhook subscription `sub_id` when it needs
    /// one, none is outstanding and no retry is scheduled later than `now`.
    pub(super) fn pump_webhook(&mut self, sub_id: &str, now: Instant) {
        let Some(sub) = self.subs.subs.get(sub_id) else {
            return;
        };
        let w = &sub.webhook;
        if !w.needs_delivery || w.in_flight.is_some() || w.next_attempt_at.is_some_and(|t| t > now)
        {
            return;
        }
        let (Some(wake), Some(token), Some(url)) = (&sub.wake, &sub.token, &sub.config.webhook_url)
        else {
            return;
        };
        let infos = self.stream_infos(sub);
        let body = json!({
            "subscription_id": sub.id,
            "wake_id": wake.id,
            "generation": sub.generation,
            "streams": infos.iter().map(StreamInfo::to_json).collect::<Vec<_>>(),
            "callback_url": self.control_url(sub, "callback"),
            "callback_token": token,
        });
        let body = Bytes::from(body.to_string());
        let t = self.unix_secs(now);
        let signature = self.subs.keys.webhook_signature(t, &body);
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(url.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-signature", signature)
            .body(body);
        let Ok(request) = request else {
            // The URL was validated as an http::Uri when the subscription was created.
            return;
        };
        let record = InFlight {
            sub: sub.id.clone(),
            incarnation: sub.incarnation,
            wake_id: wake.id.clone(),
            snapshot: infos.iter().map(|i| (i.path.clone(), i.tail)).collect(),
        };
        self.subs.next_delivery += 1;
        let id = WebhookId(self.subs.next_delivery);
        let sub = self.subs.subs.get_mut(sub_id).expect("looked up above");
        sub.webhook.needs_delivery = false;
        sub.webhook.in_flight = Some(id);
        sub.webhook.next_attempt_at = None;
        self.subs.in_flight.insert(id, record);
        self.subs
            .outbound
            .push_back(WebhookDelivery { id, request });
    }

    /// A delivery was answered (`Some((status, body))`) or failed (`None`).
    pub(super) fn webhook_answered(
        &mut self,
        id: WebhookId,
        outcome: Option<(u16, &[u8])>,
        now: Instant,
    ) {
        let Some(record) = self.subs.in_flight.remove(&id) else {
            return;
        };
        let Some(sub) = self
            .subs
            .subs
            .get_mut(&record.sub)
            .filter(|s| s.incarnation == record.incarnation)
        else {
            return;
        };
        if sub.webhook.in_flight == Some(id) {
            sub.webhook.in_flight = None;
        }
        let current = sub.wake.as_ref().is_some_and(|w| w.id == record.wake_id);
        let sub_id = sub.id.clone();
        match outcome {
            Some((status, body)) if (200..300).contains(&status) => {
                sub.webhook.failures = 0;
                sub.webhook.next_attempt_at = None;
                let done = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("done").and_then(Value::as_bool))
                    == Some(true);
                if done && current {
                    // 7.1: ack the tails of the snapshot (never moving a cursor back: a
                    // callback may have acked further), release, wake again if work is left.
                    for (path, tail) in &record.snapshot {
                        if let Some(link) = sub.links.get_mut(path) {
                            link.acked = Some(link.acked.map_or(*tail, |a| a.max(*tail)));
                        }
                    }
                    self.end_wake_and_rewake(&sub_id, now);
                }
            }
            _ => {
                if current {
                    sub.webhook.needs_delivery = true;
                }
                if sub.webhook.needs_delivery {
                    sub.webhook.failures += 1;
                    let base = retry_delay(sub.webhook.failures);
                    let factor = 1.0 + RETRY_JITTER * (2.0 * self.subs.jitter.unit() - 1.0);
                    sub.webhook.next_attempt_at = Some(now + base.mul_f64(factor));
                }
            }
        }
        self.pump_webhook(&sub_id, now);
    }

    /// Whether the subscription's status is `failed` (6.3: a retry is scheduled after a failed
    /// attempt; it stays so while the retry is in flight, until a delivery succeeds).
    pub(super) fn is_failing(sub: &Subscription) -> bool {
        sub.webhook.failures > 0
    }

    /// The absolute URL (or path, without an origin) of a control route of `sub`.
    pub(super) fn control_url(&self, sub: &Subscription, action: &str) -> String {
        format!(
            "{}{}/__ds/subscriptions/{}/{action}",
            sub.origin,
            self.config.stream_root.trim_end_matches('/'),
            crate::url::encode_component(&sub.id)
        )
    }

    /// The JWKS URL for `origin` (6.5).
    pub(super) fn jwks_url(&self, origin: &str) -> String {
        format!(
            "{origin}{}/__ds/jwks.json",
            self.config.stream_root.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::retry_delay;
    use std::time::Duration;

    #[test]
    fn retry_delays_double_from_one_second_to_sixty() {
        let secs: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(60));
    }
}
