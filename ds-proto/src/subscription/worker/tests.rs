//! Worker scripts on a virtual clock: every request the worker emits is checked and answered
//! by hand.

use super::*;
use crate::io::TransportError;
use crate::io::TransportErrorKind;
use crate::ops::test_util::parts;
use crate::subscription::SubscriptionRoot;
use bytes::Bytes;
use http::Method;

const SUB: &str = "sub-1";

#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

fn config() -> WorkerConfig {
    let mut c = WorkerConfig::new(
        SubscriptionRoot::new("http://h/v1/stream").unwrap(),
        SUB,
        "worker-a",
        "wake/pool",
    );
    c.extras = crate::ops::RequestExtras::new().header(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer svc"),
    );
    c.rng_seed = 7;
    c
}

fn off(s: &str) -> Offset {
    Offset::parse(s).unwrap()
}

/// A worker and its virtual clock, with the requests it emitted and not yet answered.
struct H {
    w: Worker,
    now: Instant,
    out: Vec<Transmit>,
    events: Vec<WorkerEvent>,
}

impl H {
    fn new(config: WorkerConfig) -> H {
        let now = start();
        let w = Worker::new(config, now).unwrap();
        let mut h = H {
            w,
            now,
            out: Vec::new(),
            events: Vec::new(),
        };
        h.drain();
        h
    }

    fn drain(&mut self) {
        while let Some(t) = self.w.poll_transmit(self.now) {
            self.out.push(t);
        }
        while let Some(e) = self.w.poll_event() {
            self.events.push(e);
        }
    }

    fn cancels(&mut self) -> Vec<RequestId> {
        let mut v = Vec::new();
        while let Some(id) = self.w.poll_cancel() {
            v.push(id);
        }
        v
    }

    /// Removes and returns the emitted request whose path ends with `suffix`.
    fn take(&mut self, suffix: &str) -> Transmit {
        let i = self
            .out
            .iter()
            .position(|t| t.request.uri().path().ends_with(suffix))
            .unwrap_or_else(|| {
                panic!(
                    "no request to {suffix}; have {:?}",
                    self.out
                        .iter()
                        .map(|t| t.request.uri().to_string())
                        .collect::<Vec<_>>()
                )
            });
        self.out.remove(i)
    }

    fn has(&self, suffix: &str) -> bool {
        self.out
            .iter()
            .any(|t| t.request.uri().path().ends_with(suffix))
    }

    fn answer(&mut self, id: RequestId, status: u16, headers: &[(&str, &str)], body: &str) {
        let parts = parts(status, headers);
        self.w.handle_input(Input::Head { id, parts }, self.now);
        self.w.handle_input(
            Input::Body {
                id,
                chunk: Bytes::copy_from_slice(body.as_bytes()),
            },
            self.now,
        );
        self.w.handle_input(Input::End { id }, self.now);
        self.drain();
    }

    fn json(&mut self, id: RequestId, status: u16, body: &str) {
        self.answer(id, status, &[("content-type", "application/json")], body);
    }

    /// Answers the wake-stream read `id` with `events` (JSON), the next offset `next`.
    fn wake_answer(&mut self, id: RequestId, next: &str, events: &str) {
        let headers = [
            ("content-type", "application/json"),
            ("stream-next-offset", next),
        ];
        self.answer(id, 200, &headers, events);
    }

    /// Records the application's ack of events/a at `offset` in generation 7 and returns the
    /// ack request it sends at once.
    fn ack_out(&mut self, offset: &str) -> Transmit {
        self.w.ack(7, "events/a", off(offset)).unwrap();
        self.drain();
        self.take("/ack")
    }

    /// Finishes the held wake `generation` (`done`), answered without a next wake.
    fn finish(&mut self, generation: u64) {
        self.w.done(generation).unwrap();
        self.drain();
        let done = self.take("/ack");
        self.json(done.id, 200, r#"{"ok":true,"next_wake":false}"#);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.w.handle_timeout(self.now);
        self.drain();
    }

    fn take_events(&mut self) -> Vec<WorkerEvent> {
        std::mem::take(&mut self.events)
    }
}

fn body(t: &Transmit) -> serde_json::Value {
    serde_json::from_slice(t.request.body()).unwrap()
}

fn claim_json(generation: u64, streams: &str, ttl: u64) -> String {
    format!(
        r#"{{"wake_id":"w{generation}","generation":{generation},"token":"tok{generation}","lease_ttl_ms":{ttl},"streams":[{streams}]}}"#
    )
}

const ONE_PENDING: &str = r#"{"path":"events/a","link_type":"glob","acked_offset":"0_1","tail_offset":"0_5","has_pending":true},
  {"path":"events/idle","link_type":"explicit","acked_offset":"0_3","tail_offset":"0_3","has_pending":false}"#;

/// A worker that claimed generation 7 with one pending stream; the read of events/a is out.
fn claimed(ttl: u64) -> H {
    claimed_with(config(), ONE_PENDING, ttl)
}

/// A worker of `config` that claimed generation 7 with `streams` and a lease of `ttl` ms.
fn claimed_with(config: WorkerConfig, streams: &str, ttl: u64) -> H {
    let mut h = H::new(config);
    let claim = h.take("/claim");
    h.json(claim.id, 200, &claim_json(7, streams, ttl));
    h
}

/// [`claimed`] with a 30 s lease, its events taken, and the read of events/a it sent.
fn reading() -> (H, Transmit) {
    let mut h = claimed(30_000);
    h.take_events();
    let read = h.take("/events/a");
    (h, read)
}

fn wake_event(generation: u64, sub: &str) -> String {
    format!(
        r#"[{{"type":"wake","subscription_id":"{sub}","stream":"events/a","generation":{generation},"ts":1}}]"#
    )
}

#[test]
fn claims_once_at_start_and_follows_the_wake_stream_tail() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    assert_eq!(claim.request.method(), Method::POST);
    assert_eq!(
        claim.request.uri().to_string(),
        "http://h/v1/stream/__ds/subscriptions/sub-1/claim"
    );
    assert_eq!(body(&claim), serde_json::json!({ "worker": "worker-a" }));
    assert_eq!(claim.request.headers()["authorization"], "Bearer svc");
    assert!(claim.deadline.is_some());
    let wake = h.take("/wake/pool");
    assert_eq!(
        wake.request.uri().query(),
        Some("live=long-poll&offset=now")
    );
    assert_eq!(wake.request.headers()["authorization"], "Bearer svc");
    assert!(h.out.is_empty(), "one claim, one wake read");
    h.json(
        claim.id,
        409,
        r#"{"error":{"code":"NO_PENDING_WORK","message":"idle"}}"#,
    );
    assert_eq!(h.take_events(), vec![WorkerEvent::NoPendingWork]);
    assert!(h.out.is_empty(), "no claim until a wake event");
    assert_eq!(h.w.poll_timeout(), None);
}

#[test]
fn a_wake_event_for_this_subscription_triggers_a_claim() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(claim.id, 409, r#"{"error":{"code":"NO_PENDING_WORK"}}"#);
    h.take_events();
    let wake = h.take("/wake/pool");
    // Another subscription's event: ignored, and the read goes on from the new offset.
    h.wake_answer(wake.id, "0_10", &wake_event(3, "other"));
    // The first concrete offset of a wake stream followed from `now`: an event written
    // between the start claim and the server's resolution of `now` would lie before it, so
    // the worker claims once more (a sweep found a worker waiting for ever without it).
    let again = h.take("/claim");
    h.json(again.id, 409, r#"{"error":{"code":"NO_PENDING_WORK"}}"#);
    h.take_events();
    assert!(!h.has("/claim"), "once only");
    let wake = h.take("/wake/pool");
    assert_eq!(
        wake.request.uri().query(),
        Some("live=long-poll&offset=0_10")
    );
    h.wake_answer(wake.id, "0_20", &wake_event(4, SUB));
    let claim = h.take("/claim");
    assert_eq!(h.w.wake_offset().as_str(), "0_20");
    // The claim gets generation 4; a late event of generation 4 is not a new wake.
    h.json(claim.id, 200, &claim_json(4, "", 30_000));
    h.take_events();
    let done_gen = h.w.held_generation().unwrap();
    h.w.done(done_gen).unwrap();
    h.drain();
    let ack = h.take("/ack");
    h.json(ack.id, 200, r#"{"ok":true,"next_wake":false}"#);
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_30", &wake_event(4, SUB));
    assert!(!h.has("/claim"), "generation 4 is already known");
}

#[test]
fn a_wake_from_claim_to_done() {
    let mut h = claimed(30_000);
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [WorkerEvent::Claimed { generation: 7, streams, .. }] if streams.len() == 2)
    );
    // Only the stream with pending work is read, from its cursor, in catch-up mode.
    let read = h.take("/events/a");
    assert_eq!(read.request.uri().query(), Some("offset=0_1"));
    assert_eq!(read.request.headers()["authorization"], "Bearer svc");
    assert!(!h.has("/events/idle"));
    h.answer(read.id, 200, &[("stream-next-offset", "0_3")], "abc");
    let read = h.take("/events/a");
    assert_eq!(read.request.uri().query(), Some("offset=0_3"));
    h.answer(
        read.id,
        200,
        &[("stream-next-offset", "0_5"), ("stream-up-to-date", "true")],
        "de",
    );
    let ev = h.take_events();
    assert_eq!(
        ev,
        vec![
            WorkerEvent::Batch(Batch {
                generation: 7,
                stream: "events/a".into(),
                data: Bytes::from_static(b"abc"),
                json: false,
                next_offset: off("0_3"),
                last: false,
            }),
            WorkerEvent::Batch(Batch {
                generation: 7,
                stream: "events/a".into(),
                data: Bytes::from_static(b"de"),
                json: false,
                next_offset: off("0_5"),
                last: true,
            }),
            WorkerEvent::Drained { generation: 7 },
        ]
    );
    assert!(!h.has("/events/a"), "reading stops at the tail");
    // Progress ack, sent at once with the claim token.
    let ack = h.ack_out("0_3");
    assert_eq!(ack.request.headers()["authorization"], "Bearer tok7");
    assert_eq!(
        body(&ack),
        serde_json::json!({"wake_id":"w7","generation":7,"acks":[{"stream":"events/a","offset":"0_3"}],"done":false})
    );
    // While it is in flight, more progress and done are coalesced into one request.
    h.w.ack(7, "events/a", off("0_5")).unwrap();
    h.w.done(7).unwrap();
    h.drain();
    assert!(!h.has("/ack"), "one control exchange at a time");
    h.json(ack.id, 200, r#"{"ok":true}"#);
    assert_eq!(h.w.confirmed_acks().unwrap()["events/a"], off("0_3"));
    let done = h.take("/ack");
    assert_eq!(
        body(&done),
        serde_json::json!({"wake_id":"w7","generation":7,"acks":[{"stream":"events/a","offset":"0_5"}],"done":true})
    );
    h.json(done.id, 200, r#"{"ok":true,"next_wake":false}"#);
    assert_eq!(
        h.take_events(),
        vec![WorkerEvent::Finished {
            generation: 7,
            next_wake: false
        }]
    );
    assert_eq!(h.w.held_generation(), None);
    assert_eq!(
        h.w.ack(7, "events/a", off("0_5")),
        Err(WorkerError::NotHeld(7))
    );
    assert!(!h.has("/claim"));
}

#[test]
fn command_checks() {
    let mut h = claimed(30_000);
    assert_eq!(
        h.w.ack(7, "events/zzz", off("0_2")),
        Err(WorkerError::UnknownStream("events/zzz".into()))
    );
    assert_eq!(
        h.w.ack(7, "events/a", Offset::beginning()),
        Err(WorkerError::SentinelOffset(Offset::beginning()))
    );
    assert_eq!(
        h.w.ack(8, "events/a", off("0_2")),
        Err(WorkerError::NotHeld(8))
    );
    h.w.release(7).unwrap();
    assert_eq!(h.w.done(7), Err(WorkerError::Ending));
    assert_eq!(h.w.release(7), Err(WorkerError::Ending));
    let mut h = claimed(30_000);
    h.w.done(7).unwrap();
    assert_eq!(h.w.release(7), Err(WorkerError::Ending));
    assert_eq!(h.w.done(7), Err(WorkerError::Ending));
}

#[test]
fn done_with_next_wake_claims_again_at_once() {
    let mut h = claimed(30_000);
    h.w.done(7).unwrap();
    h.drain();
    // done stops the read that was in flight.
    let read_cancelled = h.cancels();
    assert_eq!(read_cancelled.len(), 1);
    let done = h.take("/ack");
    assert_eq!(body(&done)["done"], true);
    assert_eq!(body(&done)["acks"], serde_json::json!([]));
    h.json(done.id, 200, r#"{"ok":true,"next_wake":true}"#);
    let claim = h.take("/claim");
    assert_eq!(body(&claim)["worker"], "worker-a");
}

#[test]
fn heartbeats_renew_the_lease_before_it_runs_out() {
    let mut h = claimed(30_000);
    let t0 = h.now;
    // A third of the lease after the claim was sent.
    assert_eq!(h.w.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    h.advance(Duration::from_millis(9_999));
    assert!(!h.has("/ack"));
    h.advance(Duration::from_millis(1));
    let hb = h.take("/ack");
    assert_eq!(
        body(&hb),
        serde_json::json!({"wake_id":"w7","generation":7,"acks":[],"done":false})
    );
    h.advance(Duration::from_secs(1));
    h.json(hb.id, 200, r#"{"ok":true,"next_wake":false}"#);
    // Renewed from when the heartbeat was sent.
    assert_eq!(h.w.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    // An ack renews too.
    let ack = h.ack_out("0_2");
    h.json(ack.id, 200, r#"{"ok":true}"#);
    assert_eq!(
        h.w.poll_timeout(),
        Some(t0 + Duration::from_secs(11) + Duration::from_secs(10))
    );
    assert!(h
        .take_events()
        .iter()
        .all(|e| !matches!(e, WorkerEvent::LeaseLost { .. })));
}

#[test]
fn a_configured_heartbeat_interval_is_used() {
    let mut c = config();
    c.heartbeat_interval = Some(Duration::from_secs(2));
    let h = claimed_with(c, "", 30_000);
    assert_eq!(h.w.poll_timeout(), Some(h.now + Duration::from_secs(2)));
}

#[test]
fn a_heartbeat_interval_not_shorter_than_the_lease_falls_back_to_a_third() {
    let mut c = config();
    c.heartbeat_interval = Some(Duration::from_secs(3));
    let h = claimed_with(c, "", 3_000);
    assert_eq!(h.w.poll_timeout(), Some(h.now + Duration::from_secs(1)));
}

#[test]
fn fenced_mid_wake_drops_the_wake_and_goes_on() {
    let (mut h, read) = reading();
    let ack = h.ack_out("0_2");
    h.json(
        ack.id,
        409,
        r#"{"error":{"code":"FENCED","message":"stale"}}"#,
    );
    assert_eq!(
        h.take_events(),
        vec![WorkerEvent::LeaseLost {
            generation: 7,
            reason: LeaseLoss::Fenced
        }]
    );
    assert_eq!(h.cancels(), vec![read.id], "the wake's read is abandoned");
    // Its answer, if it still comes, hands nothing out.
    h.answer(read.id, 200, &[("stream-next-offset", "0_5")], "late");
    assert!(h.take_events().is_empty());
    assert_eq!(
        h.w.ack(7, "events/a", off("0_5")),
        Err(WorkerError::NotHeld(7))
    );
    assert!(!h.has("/ack"));
    // It claims once at once, and gets the newer wake.
    let claim = h.take("/claim");
    h.json(claim.id, 200, &claim_json(8, ONE_PENDING, 30_000));
    assert_eq!(h.w.held_generation(), Some(8));
    assert!(h.has("/events/a"));
}

#[test]
fn unauthorized_ack_loses_the_lease() {
    let mut h = claimed(30_000);
    h.take_events();
    h.w.release(7).unwrap();
    h.drain();
    let rel = h.take("/release");
    h.json(
        rel.id,
        401,
        r#"{"error":{"code":"TOKEN_EXPIRED","message":"expired"}}"#,
    );
    assert_eq!(
        h.take_events(),
        vec![WorkerEvent::LeaseLost {
            generation: 7,
            reason: LeaseLoss::Unauthorized
        }]
    );
}

#[test]
fn already_claimed_waits_for_a_newer_wake() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(
        claim.id,
        409,
        r#"{"error":{"code":"ALREADY_CLAIMED","current_holder":"worker-b","generation":7}}"#,
    );
    assert_eq!(
        h.take_events(),
        vec![WorkerEvent::AlreadyClaimed {
            current_holder: Some("worker-b".into()),
            generation: Some(7)
        }]
    );
    assert_eq!(h.w.known_generation(), Some(7));
    assert!(!h.has("/claim"));
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_2", &wake_event(7, SUB));
    assert!(!h.has("/claim"), "the holder's own wake");
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_3", &wake_event(8, SUB));
    assert!(h.has("/claim"));
}

#[test]
fn a_wake_event_during_a_claim_claims_again_after_a_refusal() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_2", &wake_event(9, SUB));
    assert!(!h.has("/claim"), "one claim at a time");
    h.json(
        claim.id,
        409,
        r#"{"error":{"code":"ALREADY_CLAIMED","current_holder":"worker-b","generation":8}}"#,
    );
    assert!(h.has("/claim"), "generation 9 is newer than the holder's 8");
}

#[test]
fn failed_claims_are_retried_with_backoff() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.answer(claim.id, 503, &[("retry-after", "2")], "busy");
    let ev = h.take_events();
    let [WorkerEvent::Retrying {
        attempt: 1,
        delay,
        error,
    }] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert!(*delay >= Duration::from_secs(2));
    assert_eq!(error.op, SubscriptionOp::Claim);
    assert!(!h.has("/claim"));
    let due = h.w.poll_timeout().unwrap();
    assert_eq!(due, h.now + *delay);
    h.advance(*delay - Duration::from_millis(1));
    assert!(!h.has("/claim"));
    h.advance(Duration::from_millis(1));
    let claim = h.take("/claim");
    h.w.handle_input(
        Input::Failed {
            id: claim.id,
            error: TransportError::new(TransportErrorKind::Connect, "refused"),
        },
        h.now,
    );
    h.drain();
    assert!(matches!(
        &h.take_events()[..],
        [WorkerEvent::Retrying { attempt: 2, .. }]
    ));
}

#[test]
fn a_claim_refused_for_good_fails_the_worker() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    let wake = h.take("/wake/pool");
    h.json(
        claim.id,
        404,
        r#"{"error":{"code":"SUBSCRIPTION_NOT_FOUND","message":"gone"}}"#,
    );
    let ev = h.take_events();
    let [WorkerEvent::Failed(f)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert!(matches!(
        f.subscription_kind(),
        Some(SubscriptionErrorKind::NotFound { .. })
    ));
    assert!(h.w.is_finished());
    assert_eq!(h.cancels(), vec![wake.id]);
    assert_eq!(h.w.poll_transmit(h.now).map(|t| t.id), None);
    // A stop after the end does nothing: no second ending, no request.
    h.w.stop();
    h.drain();
    assert!(h.take_events().is_empty());
    assert!(h.out.is_empty() && h.cancels().is_empty());
}

#[test]
fn a_missing_wake_stream_fails_the_worker() {
    let mut h = H::new(config());
    let wake = h.take("/wake/pool");
    h.answer(wake.id, 404, &[], "");
    assert!(matches!(
        &h.take_events()[..],
        [WorkerEvent::Failed(WorkerFailure::WakeStream(_))]
    ));
}

#[test]
fn the_lease_expires_locally_without_renewal() {
    let mut h = claimed(3_000);
    h.take_events();
    let t0 = h.now;
    h.advance(Duration::from_secs(1));
    let hb = h.take("/ack");
    assert_eq!(
        hb.deadline,
        Some(t0 + Duration::from_secs(3)),
        "at most the lease's end"
    );
    // The heartbeat hangs past the lease: its answer is awaited (it may have renewed).
    h.advance(Duration::from_millis(2_500));
    assert!(h.take_events().is_empty());
    // No timer is due in the past while the answer is awaited (a driver would spin).
    assert!(
        h.w.poll_timeout().is_none_or(|t| t > h.now),
        "{:?}",
        h.w.poll_timeout()
    );
    h.w.handle_input(
        Input::Failed {
            id: hb.id,
            error: TransportError::new(TransportErrorKind::Timeout, "deadline"),
        },
        h.now,
    );
    h.drain();
    assert!(matches!(
        &h.take_events()[..],
        [WorkerEvent::Retrying { .. }]
    ));
    h.advance(Duration::ZERO);
    assert!(h.now >= t0 + Duration::from_secs(3));
    let ev = h.take_events();
    assert_eq!(
        ev,
        vec![WorkerEvent::LeaseLost {
            generation: 7,
            reason: LeaseLoss::Expired
        }]
    );
    assert!(!h.has("/ack"));
}

#[test]
fn invalid_offsets_are_reported_and_dropped() {
    let mut h = claimed(30_000);
    h.take_events();
    let ack = h.ack_out("0_9");
    h.json(
        ack.id,
        409,
        r#"{"error":{"code":"INVALID_OFFSET","message":"past tail"}}"#,
    );
    assert!(matches!(
        &h.take_events()[..],
        [WorkerEvent::AckRefused { generation: 7, .. }]
    ));
    assert_eq!(h.w.held_generation(), Some(7));
    h.w.done(7).unwrap();
    h.drain();
    let done = h.take("/ack");
    assert_eq!(
        body(&done)["acks"],
        serde_json::json!([]),
        "the refused ack is not resent"
    );
}

/// An ack past the tail whose first attempt got no answer (the server may have applied it)
/// and whose retry was refused as `INVALID_OFFSET` was never applied: the acks the
/// application sends next, below it, go out (found by the `worker_script` fuzz target, whose
/// model counted the unanswered attempt as applied).
#[test]
fn an_unanswered_then_refused_ack_does_not_hold_back_later_acks() {
    let mut h = claimed(30_000);
    h.take_events();
    let first = h.ack_out("0_99");
    h.w.handle_input(
        Input::Failed {
            id: first.id,
            error: TransportError::new(TransportErrorKind::ConnectionReset, "reset"),
        },
        h.now,
    );
    h.drain();
    assert!(matches!(
        &h.take_events()[..],
        [WorkerEvent::Retrying { .. }]
    ));
    h.advance(Duration::from_secs(1));
    let retry = h.take("/ack");
    assert_eq!(
        body(&retry)["acks"][0]["offset"],
        "0_99",
        "resent as it was"
    );
    h.json(
        retry.id,
        409,
        r#"{"error":{"code":"INVALID_OFFSET","message":"past tail"}}"#,
    );
    assert!(matches!(
        &h.take_events()[..],
        [WorkerEvent::AckRefused { generation: 7, .. }]
    ));
    let later = h.ack_out("0_3");
    assert_eq!(body(&later)["acks"][0]["offset"], "0_3");
}

#[test]
fn stop_acks_then_releases() {
    let (mut h, read) = reading();
    h.answer(read.id, 200, &[("stream-next-offset", "0_3")], "abc");
    h.take_events();
    let next_read = h.take("/events/a");
    h.w.ack(7, "events/a", off("0_3")).unwrap();
    let wake_read = h
        .out
        .iter()
        .find(|t| t.request.uri().path().ends_with("/wake/pool"))
        .map(|t| t.id)
        .unwrap();
    h.w.stop();
    h.drain();
    let mut cancelled = h.cancels();
    cancelled.sort();
    let mut expected = vec![wake_read, next_read.id];
    expected.sort();
    assert_eq!(cancelled, expected);
    let ack = h.take("/ack");
    assert_eq!(body(&ack)["done"], false);
    assert_eq!(body(&ack)["acks"][0]["offset"], "0_3");
    assert!(!h.has("/release"));
    h.json(ack.id, 200, r#"{"ok":true}"#);
    let rel = h.take("/release");
    assert_eq!(
        body(&rel),
        serde_json::json!({"wake_id":"w7","generation":7})
    );
    assert_eq!(rel.request.headers()["authorization"], "Bearer tok7");
    assert!(!h.w.is_finished());
    h.answer(rel.id, 204, &[], "");
    assert_eq!(
        h.take_events(),
        vec![
            WorkerEvent::Released { generation: 7 },
            WorkerEvent::Stopped
        ]
    );
    assert!(h.w.is_finished());
    assert_eq!(h.w.poll_timeout(), None);
    assert!(h
        .out
        .iter()
        .all(|t| !t.request.uri().path().contains("__ds")));
}

#[test]
fn stop_without_a_wake_ends_at_once_and_a_claim_in_flight_is_released() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.w.stop();
    h.drain();
    assert!(h.take_events().is_empty(), "the claim's answer is awaited");
    h.json(claim.id, 200, &claim_json(3, ONE_PENDING, 30_000));
    assert!(!h.has("/events/a"), "nothing is read while stopping");
    let rel = h.take("/release");
    h.answer(rel.id, 204, &[], "");
    let ev = h.take_events();
    assert!(
        matches!(
            &ev[..],
            [
                WorkerEvent::Claimed { .. },
                WorkerEvent::Released { generation: 3 },
                WorkerEvent::Stopped
            ]
        ),
        "{ev:?}"
    );

    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(claim.id, 409, r#"{"error":{"code":"NO_PENDING_WORK"}}"#);
    h.take_events();
    h.w.stop();
    h.drain();
    assert_eq!(h.take_events(), vec![WorkerEvent::Stopped]);
}

#[test]
fn reading_stops_at_the_claim_tail() {
    let (mut h, read) = reading();
    // The stream grew past the claim's tail (0_5): the response crossing it is the last.
    h.answer(read.id, 200, &[("stream-next-offset", "0_7")], "abcdef");
    let ev = h.take_events();
    assert!(
        matches!(
            &ev[..],
            [
                WorkerEvent::Batch(Batch { last: true, .. }),
                WorkerEvent::Drained { generation: 7 }
            ]
        ),
        "{ev:?}"
    );
    assert!(!h.has("/events/a"));
}

#[test]
fn a_failing_stream_is_reported_and_skipped() {
    let streams = r#"{"path":"events/gone","acked_offset":"0_1","tail_offset":"0_5","has_pending":true},
      {"path":"events/b","acked_offset":"-1","tail_offset":"0_2","has_pending":true}"#;
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(claim.id, 200, &claim_json(2, streams, 30_000));
    h.take_events();
    let read = h.take("/events/gone");
    h.answer(read.id, 404, &[], "");
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [WorkerEvent::StreamFailed { stream, .. }] if stream == "events/gone"),
        "{ev:?}"
    );
    let read = h.take("/events/b");
    assert_eq!(read.request.uri().query(), Some("offset=-1"));
}

#[test]
fn snapshot_restores_the_wake_stream_checkpoint() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(
        claim.id,
        409,
        r#"{"error":{"code":"ALREADY_CLAIMED","current_holder":"b","generation":5}}"#,
    );
    let wake = h.take("/wake/pool");
    h.answer(
        wake.id,
        200,
        &[
            ("content-type", "application/json"),
            ("stream-next-offset", "0_40"),
        ],
        r#"[{"type":"note"}]"#,
    );
    let snap = h.w.snapshot();
    assert_eq!(snap.config.wake_offset.as_str(), "0_40");
    assert_eq!(snap.known_generation, Some(5));
    assert!(
        snap.config.extras.headers.is_empty(),
        "credentials are not kept"
    );
    let json = snap.to_json();
    assert!(!String::from_utf8_lossy(&json).contains("svc"));
    let mut back = WorkerSnapshot::from_json(&json).unwrap();
    assert_eq!(back, snap);
    back.config.extras = config().extras;
    let mut w = Worker::restore(back, h.now).unwrap();
    let mut out = Vec::new();
    while let Some(t) = w.poll_transmit(h.now) {
        out.push(t);
    }
    assert!(
        out.iter()
            .any(|t| t.request.uri().path().ends_with("/claim")),
        "claims at start"
    );
    let wake = out
        .iter()
        .find(|t| t.request.uri().path().ends_with("/wake/pool"))
        .unwrap();
    assert_eq!(
        wake.request.uri().query(),
        Some("live=long-poll&offset=0_40")
    );
    assert_eq!(w.known_generation(), Some(5));
    let mut bad = snap.clone();
    bad.format_version = 99;
    assert!(WorkerSnapshot::from_json(&bad.to_json()).is_err());
}

#[test]
fn wake_events_in_a_byte_stream_are_found() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(claim.id, 409, r#"{"error":{"code":"NO_PENDING_WORK"}}"#);
    let wake = h.take("/wake/pool");
    // Two events appended back to back, as the reference server writes them to a byte stream.
    let events = format!(
        r#"{{"type":"wake","subscription_id":"other","generation":1}}{}"#,
        wake_event(2, SUB)
            .trim_start_matches('[')
            .trim_end_matches(']')
    );
    h.answer(
        wake.id,
        200,
        &[
            ("content-type", "application/octet-stream"),
            ("stream-next-offset", "0_9"),
        ],
        &events,
    );
    assert!(h.has("/claim"));
}

#[test]
fn an_ack_below_the_one_in_flight_is_not_sent() {
    let mut h = claimed(30_000);
    let ack = h.ack_out("0_4");
    h.w.ack(7, "events/a", off("0_3")).unwrap();
    h.json(ack.id, 200, r#"{"ok":true}"#);
    assert!(!h.has("/ack"), "0_3 would regress the cursor");
    h.w.done(7).unwrap();
    h.drain();
    let done = h.take("/ack");
    assert_eq!(body(&done)["acks"], serde_json::json!([]));
}

#[test]
fn an_ack_equal_to_the_one_in_flight_is_not_sent_again() {
    let mut h = claimed(30_000);
    let ack = h.ack_out("0_4");
    h.w.ack(7, "events/a", off("0_4")).unwrap();
    h.json(ack.id, 200, r#"{"ok":true}"#);
    assert!(!h.has("/ack"), "0_4 is acknowledged already");
}

#[test]
fn read_retries_are_reported() {
    let (mut h, read) = reading();
    h.answer(read.id, 503, &[], "busy");
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [WorkerEvent::ReadRetrying { stream, attempt: 1, .. }] if stream == "events/a"),
        "{ev:?}"
    );
    let wake = h.take("/wake/pool");
    h.answer(wake.id, 500, &[], "");
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [WorkerEvent::ReadRetrying { stream, .. }] if stream == "wake/pool"),
        "{ev:?}"
    );
}

#[test]
fn a_newer_wake_event_during_a_wake_is_claimed_after_it() {
    let mut h = claimed(30_000);
    h.take_events();
    let wake = h.take("/wake/pool");
    // Its own claim's event: nothing to do after the wake.
    h.wake_answer(wake.id, "0_2", &wake_event(7, SUB));
    h.finish(7);
    assert!(!h.has("/claim"));
    // Next wake; an append wakes generation 9 before the done answer arrives.
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_3", &wake_event(8, SUB));
    let claim = h.take("/claim");
    h.json(claim.id, 200, &claim_json(8, ONE_PENDING, 30_000));
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_4", &wake_event(9, SUB));
    assert!(!h.has("/claim"), "not while generation 8 is held");
    h.finish(8);
    assert!(
        h.has("/claim"),
        "generation 9 is outstanding and would never expire"
    );
}

#[test]
fn a_lost_lease_claims_once_at_once() {
    let mut h = claimed(30_000);
    h.take_events();
    let ack = h.ack_out("0_2");
    h.json(ack.id, 409, r#"{"error":{"code":"FENCED"}}"#);
    let claim = h.take("/claim");
    h.json(
        claim.id,
        409,
        r#"{"error":{"code":"ALREADY_CLAIMED","current_holder":"b","generation":8}}"#,
    );
    assert!(!h.has("/claim"));
}

#[test]
fn a_wake_event_during_a_claim_answered_no_pending_work_claims_again() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_2", &wake_event(1, SUB));
    h.json(claim.id, 409, r#"{"error":{"code":"NO_PENDING_WORK"}}"#);
    assert!(h.has("/claim"));
}

#[test]
fn no_past_due_timer_while_an_ack_retry_waits() {
    let mut h = claimed(30_000);
    h.take_events();
    h.advance(Duration::from_secs(10));
    let hb = h.take("/ack");
    h.advance(Duration::from_secs(1));
    h.answer(hb.id, 503, &[("retry-after", "5")], "");
    assert!(matches!(
        &h.take_events()[..],
        [WorkerEvent::Retrying { .. }]
    ));
    // The heartbeat was due long ago; the next timer is the retry's end, not the past.
    let t = h.w.poll_timeout().unwrap();
    assert!(t > h.now, "{t:?} <= {:?}", h.now);
    h.advance(t - h.now);
    assert!(h.has("/ack"));
}

#[test]
fn a_done_whose_answer_was_lost_is_resent_and_fenced_means_over() {
    let mut h = claimed(30_000);
    h.take_events();
    h.w.ack(7, "events/a", off("0_5")).unwrap();
    h.w.done(7).unwrap();
    h.drain();
    let done = h.take("/ack");
    h.w.handle_input(
        Input::Failed {
            id: done.id,
            error: TransportError::new(TransportErrorKind::ConnectionReset, "reset"),
        },
        h.now,
    );
    h.drain();
    let ev = h.take_events();
    let [WorkerEvent::Retrying { delay, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    h.advance(*delay);
    let again = h.take("/ack");
    assert_eq!(
        again.request.body(),
        done.request.body(),
        "the same acks, done again"
    );
    h.json(again.id, 409, r#"{"error":{"code":"FENCED"}}"#);
    assert_eq!(
        h.take_events(),
        vec![WorkerEvent::LeaseLost {
            generation: 7,
            reason: LeaseLoss::Fenced
        }]
    );
    assert!(h.has("/claim"), "a claim finds any work left");
}

#[test]
fn bad_configurations_are_refused() {
    let now = start();
    let mut c = config();
    c.subscription_id = String::new();
    assert!(Worker::new(c, now).is_err());
    let mut c = config();
    c.worker = String::new();
    assert!(Worker::new(c, now).is_err());
    let mut c = config();
    c.wake_stream = "/abs".into();
    assert!(Worker::new(c, now).is_err());
    let mut c = config();
    c.request_timeout = Duration::ZERO;
    assert!(Worker::new(c, now).is_err());
    let mut c = config();
    c.heartbeat_interval = Some(Duration::ZERO);
    assert!(Worker::new(c, now).is_err());
}

fn byte_chunk(data: &str) -> crate::reader::Chunk {
    crate::reader::Chunk {
        data: Bytes::copy_from_slice(data.as_bytes()),
        next_offset: off("0_1"),
        partial: false,
        up_to_date: true,
        closed: false,
        cursor: None,
        json: false,
    }
}

/// Feeds `event` (one wake event of generation 3, as a byte stream carries it) cut at `at`
/// into two chunks: nothing is found in the first, the event in the second.
fn found_across_two_chunks(event: &str, at: usize) {
    let (a, b) = event.split_at(at);
    let mut tail = Vec::new();
    assert!(wake_events(&byte_chunk(a), &mut tail).is_empty());
    let got = wake_events(&byte_chunk(b), &mut tail);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].generation, Some(3));
}

#[test]
fn a_wake_event_cut_between_chunks_is_found() {
    let ev = wake_event(3, SUB);
    let ev = ev.trim_start_matches('[').trim_end_matches(']');
    found_across_two_chunks(ev, 20);
}

/// A wake event larger than usual (a server may add fields) cut between two chunks is still
/// found: the incomplete end kept for the next chunk may be far more than the usual size.
#[test]
fn a_long_wake_event_cut_between_chunks_is_found() {
    let pad = "x".repeat(4096);
    let ev = format!(
        r#"{{"type":"wake","subscription_id":"{SUB}","stream":"events/a","generation":3,"note":"{pad}"}}"#
    );
    found_across_two_chunks(&ev, ev.len() - 10);
}

#[test]
fn wake_events_after_a_chunk_that_is_not_json_are_found() {
    let ev = wake_event(3, SUB);
    let ev = ev.trim_start_matches('[').trim_end_matches(']');
    let mut tail = Vec::new();
    assert!(wake_events(&byte_chunk("not json"), &mut tail).is_empty());
    assert_eq!(wake_events(&byte_chunk(ev), &mut tail).len(), 1);
}

#[test]
fn acks_after_a_confirmed_one_send_only_progress() {
    let mut h = claimed(30_000);
    let ack = h.ack_out("0_3");
    h.json(ack.id, 200, r#"{"ok":true}"#);
    // The same offset again: nothing to send.
    h.w.ack(7, "events/a", off("0_3")).unwrap();
    h.drain();
    assert!(!h.has("/ack"), "0_3 is confirmed already");
    // Progress beyond it is sent.
    let ack = h.ack_out("0_5");
    assert_eq!(
        body(&ack)["acks"],
        serde_json::json!([{"stream":"events/a","offset":"0_5"}])
    );
}

/// The worker's data read of events/a answered 503 once: the events that follow.
fn after_one_failed_data_read(config: WorkerConfig) -> Vec<WorkerEvent> {
    let mut h = claimed_with(config, ONE_PENDING, 30_000);
    h.take_events();
    let read = h.take("/events/a");
    h.answer(read.id, 503, &[], "busy");
    h.take_events()
}

#[test]
fn data_reads_follow_the_workers_retry_policy() {
    let mut c = config();
    c.retry.max_attempts = Some(1);
    let ev = after_one_failed_data_read(c);
    assert!(
        matches!(&ev[..], [WorkerEvent::StreamFailed { stream, .. }, WorkerEvent::Drained { .. }] if stream == "events/a"),
        "one attempt allowed, none retried: {ev:?}"
    );
}

#[test]
fn data_read_backoff_is_jittered_by_the_workers_seed() {
    let delay = |seed| {
        let mut c = config();
        c.rng_seed = seed;
        c.retry.initial_delay = Duration::from_secs(1);
        match &after_one_failed_data_read(c)[..] {
            [WorkerEvent::ReadRetrying { delay, .. }] => *delay,
            ev => panic!("{ev:?}"),
        }
    };
    assert_eq!(delay(7), delay(7), "a seed replays the same delays");
    // Workers started together with different seeds do not retry in lockstep.
    let delays: std::collections::BTreeSet<Duration> = (1..=4).map(delay).collect();
    assert!(delays.len() > 1, "{delays:?}");
}

#[test]
fn a_data_response_over_max_batch_bytes_fails_the_stream() {
    let mut c = config();
    c.max_batch_bytes = 4;
    let mut h = claimed_with(c, ONE_PENDING, 30_000);
    h.take_events();
    let read = h.take("/events/a");
    h.answer(read.id, 200, &[("stream-next-offset", "0_5")], "abcde");
    let ev = h.take_events();
    match &ev[..] {
        [WorkerEvent::StreamFailed { error, .. }, WorkerEvent::Drained { .. }] => assert!(
            matches!(&error.kind, crate::ErrorKind::LimitExceeded(l) if l.limit == crate::Limit::ResponseBody),
            "{error:?}"
        ),
        ev => panic!("{ev:?}"),
    }
}

#[test]
fn a_large_data_response_is_one_batch_whatever_its_chunks() {
    let (mut h, read) = reading();
    let parts = parts(200, &[("stream-next-offset", "0_5")]);
    h.w.handle_input(Input::Head { id: read.id, parts }, h.now);
    // Over the reader's default threshold for releasing a body in pieces, in two chunks.
    let half = crate::reader::ReaderConfig::DEFAULT_PARTIAL_CHUNKS_OVER;
    for byte in [b'a', b'b'] {
        let chunk = Bytes::from(vec![byte; half]);
        h.w.handle_input(Input::Body { id: read.id, chunk }, h.now);
    }
    h.w.handle_input(Input::End { id: read.id }, h.now);
    h.drain();
    let batches: Vec<usize> = h
        .take_events()
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Batch(b) => Some(b.data.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        batches,
        vec![2 * half],
        "one batch, as acks count whole batches"
    );
}

/// A claim in flight meets a wake event of `event_generation`; the claim is then answered
/// with `answer` (status, body). Returns whether the worker claims again once the answer and,
/// for a granted claim, a `done` are through.
fn claims_again_after(event_generation: u64, answer: (u16, &str)) -> bool {
    // Following the wake stream from a known offset: its first answer is not itself a reason
    // to claim again (from `now`, events before that offset might have been missed).
    let mut c = config();
    c.wake_offset = off("0_1");
    let mut h = H::new(c);
    let claim = h.take("/claim");
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_2", &wake_event(event_generation, SUB));
    h.json(claim.id, answer.0, answer.1);
    if answer.0 == 200 {
        h.finish(7);
    }
    h.has("/claim")
}

#[test]
fn a_wake_event_of_the_claimed_generation_is_not_claimed_again() {
    let granted = claim_json(7, "", 30_000);
    assert!(
        !claims_again_after(7, (200, &granted)),
        "generation 7 is this wake"
    );
    assert!(
        claims_again_after(8, (200, &granted)),
        "generation 8 came after it"
    );
    let held = r#"{"error":{"code":"ALREADY_CLAIMED","current_holder":"worker-b","generation":9}}"#;
    assert!(!claims_again_after(9, (409, held)), "the holder's own wake");
}

#[test]
fn confirmed_acks_advance_so_a_repeated_ack_is_not_resent() {
    let mut h = claimed(30_000);
    for offset in ["0_3", "0_4"] {
        h.w.ack(7, "events/a", off(offset)).unwrap();
        h.drain();
        let ack = h.take("/ack");
        assert_eq!(body(&ack)["acks"][0]["offset"], offset);
        h.json(ack.id, 200, r#"{"ok":true}"#);
    }
    h.w.ack(7, "events/a", off("0_4")).unwrap();
    h.drain();
    assert!(!h.has("/ack"), "0_4 was confirmed");
}

#[test]
fn a_failed_ack_retried_carries_the_newest_offset() {
    let mut h = claimed(30_000);
    let ack = h.ack_out("0_3");
    h.w.ack(7, "events/a", off("0_4")).unwrap();
    h.answer(ack.id, 503, &[], "");
    let t = h.w.poll_timeout().unwrap();
    h.advance(t - h.now);
    let retry = h.take("/ack");
    assert_eq!(
        body(&retry)["acks"],
        serde_json::json!([{"stream": "events/a", "offset": "0_4"}])
    );
}

#[test]
fn retries_exhausted_on_a_renewal_lose_the_lease_not_the_worker() {
    let mut c = config();
    c.retry.max_attempts = Some(1);
    let mut h = claimed_with(c, ONE_PENDING, 30_000);
    h.take_events();
    h.advance(Duration::from_secs(10));
    let hb = h.take("/ack");
    h.answer(hb.id, 503, &[], "");
    let ev = h.take_events();
    assert_eq!(
        ev,
        vec![WorkerEvent::LeaseLost {
            generation: 7,
            reason: LeaseLoss::Expired
        }]
    );
    assert!(!h.w.is_finished());
    assert!(h.has("/claim"), "claims again, as after any lost lease");
}

/// The events after a claim answered 200 with `len` bytes that are not JSON, in two chunks.
fn after_a_claim_answer_of(len: usize) -> Vec<WorkerEvent> {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    let body = Bytes::from(vec![b'x'; len]);
    let parts = parts(200, &[]);
    h.w.handle_input(
        Input::Head {
            id: claim.id,
            parts,
        },
        h.now,
    );
    let cut = len - 10;
    for chunk in [body.slice(..cut), body.slice(cut..)] {
        h.w.handle_input(
            Input::Body {
                id: claim.id,
                chunk,
            },
            h.now,
        );
    }
    h.w.handle_input(Input::End { id: claim.id }, h.now);
    h.drain();
    h.take_events()
}

#[test]
fn a_control_answer_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
    let too_large = |ev: &[WorkerEvent]| {
        ev.iter().any(|e| {
            matches!(e, WorkerEvent::Failed(f) if matches!(
                f.subscription_kind(),
                Some(SubscriptionErrorKind::Http(ErrorKind::LimitExceeded(_)))
            ))
        })
    };
    // At the limit the body is read whole (and refused as not JSON).
    let ev = after_a_claim_answer_of(MAX_CONTROL_BODY);
    assert!(!ev.is_empty() && !too_large(&ev), "{ev:?}");
    let ev = after_a_claim_answer_of(MAX_CONTROL_BODY + 1);
    assert!(too_large(&ev), "{ev:?}");
}

#[test]
fn a_wake_event_of_the_held_generation_is_not_claimed_again() {
    for (generation, again) in [(7, false), (8, true)] {
        let mut c = config();
        c.wake_offset = off("0_1");
        let mut h = claimed_with(c, "", 30_000);
        let wake = h.take("/wake/pool");
        h.wake_answer(wake.id, "0_2", &wake_event(generation, SUB));
        h.finish(7);
        assert_eq!(
            h.has("/claim"),
            again,
            "wake event of generation {generation}"
        );
    }
}

#[test]
fn a_closed_wake_stream_fails_the_worker_unless_it_is_stopping() {
    let closed = [
        ("content-type", "application/json"),
        ("stream-next-offset", "0_2"),
        ("stream-up-to-date", "true"),
        ("stream-closed", "true"),
    ];
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(claim.id, 409, r#"{"error":{"code":"NO_PENDING_WORK"}}"#);
    h.take_events();
    let wake = h.take("/wake/pool");
    h.answer(wake.id, 200, &closed, "[]");
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [WorkerEvent::Failed(WorkerFailure::WakeStream(_))]),
        "{ev:?}"
    );
    assert!(h.w.is_finished());

    // Stopping: the wake read's answer, whatever it says, ends nothing more.
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(claim.id, 409, r#"{"error":{"code":"NO_PENDING_WORK"}}"#);
    h.take_events();
    let wake = h.take("/wake/pool");
    h.w.stop();
    h.answer(wake.id, 200, &closed, "[]");
    assert_eq!(h.take_events(), vec![WorkerEvent::Stopped]);
}

#[test]
fn a_first_wake_read_answered_without_data_still_claims_once_more() {
    // Following from `now`: a wake event may lie before the first concrete offset, whatever
    // the first answer carries (here a long-poll timeout: 204, no body).
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.json(claim.id, 409, r#"{"error":{"code":"NO_PENDING_WORK"}}"#);
    let wake = h.take("/wake/pool");
    assert!(!h.has("/claim"));
    h.answer(
        wake.id,
        204,
        &[("stream-next-offset", "0_5"), ("stream-up-to-date", "true")],
        "",
    );
    assert!(h.has("/claim"));
}

#[test]
fn a_data_read_answered_without_data_ends_that_stream() {
    let (mut h, read) = reading();
    h.answer(
        read.id,
        204,
        &[("stream-next-offset", "0_1"), ("stream-up-to-date", "true")],
        "",
    );
    let ev = h.take_events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, WorkerEvent::Drained { generation: 7 })),
        "{ev:?}"
    );
    assert!(!h.has("/events/a"));
}

#[test]
fn an_ack_sent_once_the_lease_is_over_cannot_keep_it() {
    // The clock reaches the lease's end before the worker had a turn: the heartbeat it sends
    // then is too late to renew, so its answer is not awaited.
    let mut h = claimed(3_000);
    h.take_events();
    h.now += Duration::from_secs(3);
    h.drain();
    let hb = h.take("/ack");
    h.w.handle_timeout(h.now);
    h.drain();
    assert_eq!(
        h.take_events(),
        vec![WorkerEvent::LeaseLost {
            generation: 7,
            reason: LeaseLoss::Expired
        }]
    );
    assert!(
        h.cancels().contains(&hb.id),
        "the late heartbeat is abandoned"
    );
}

#[test]
fn a_stream_whose_tail_is_past_its_cursor_is_read_whatever_has_pending_says() {
    let streams =
        r#"{"path":"events/a","acked_offset":"0_1","tail_offset":"0_4","has_pending":false}"#;
    let mut h = claimed_with(config(), streams, 30_000);
    let read = h.take("/events/a");
    assert_eq!(read.request.uri().query(), Some("offset=0_1"));
}

#[test]
fn a_stream_up_to_date_before_the_claims_tail_ends_with_a_last_batch() {
    let (mut h, read) = reading();
    h.answer(
        read.id,
        200,
        &[("stream-next-offset", "0_3"), ("stream-up-to-date", "true")],
        "ab",
    );
    let ev = h.take_events();
    assert!(
        matches!(
            &ev[..],
            [
                WorkerEvent::Batch(Batch { last: true, .. }),
                WorkerEvent::Drained { .. }
            ]
        ),
        "{ev:?}"
    );
}

#[test]
fn an_ack_refused_for_good_fails_the_worker() {
    let mut h = claimed(30_000);
    h.take_events();
    let ack = h.ack_out("0_3");
    h.json(
        ack.id,
        404,
        r#"{"error":{"code":"SUBSCRIPTION_NOT_FOUND","message":"gone"}}"#,
    );
    let ev = h.take_events();
    assert!(
        matches!(
            &ev[..],
            [
                WorkerEvent::LeaseLost {
                    reason: LeaseLoss::Fenced,
                    ..
                },
                WorkerEvent::Failed(_)
            ]
        ),
        "{ev:?}"
    );
    assert!(h.w.is_finished());
}

#[test]
fn a_claim_failing_while_stopping_is_not_retried() {
    let mut h = H::new(config());
    let claim = h.take("/claim");
    h.w.stop();
    h.drain();
    h.take_events();
    h.answer(claim.id, 503, &[], "");
    assert_eq!(h.take_events(), vec![WorkerEvent::Stopped]);
    assert!(!h.has("/claim"));
}

#[test]
fn claim_retries_exhausted_wait_for_the_next_wake_event() {
    let mut c = config();
    c.retry.max_attempts = Some(1);
    let mut h = H::new(c);
    let claim = h.take("/claim");
    h.answer(claim.id, 503, &[], "");
    let ev = h.take_events();
    assert!(matches!(&ev[..], [WorkerEvent::ClaimFailed(_)]), "{ev:?}");
    assert!(!h.w.is_finished());
    let wake = h.take("/wake/pool");
    h.wake_answer(wake.id, "0_2", &wake_event(3, SUB));
    assert!(h.has("/claim"), "a wake event claims again");
}

#[test]
fn the_machine_trait_drives_the_worker_alike() {
    // Every call through the trait, as a generic driver makes them.
    type M = Worker;
    let mut w = Worker::new(config(), start()).unwrap();
    let now = start();
    let mut out = Vec::new();
    while let Some(t) = <M as Machine>::poll_transmit(&mut w, now) {
        out.push(t);
    }
    let claim = out
        .iter()
        .find(|t| t.request.uri().path().ends_with("/claim"));
    let claim = claim.expect("a claim").id;
    let wake = out
        .iter()
        .find(|t| t.request.uri().path().ends_with("/wake/pool"));
    let wake = wake.expect("a wake read").id;
    let parts = parts(200, &[]);
    let body = Bytes::from(claim_json(7, "", 3_000));
    <M as Machine>::handle_input(&mut w, Input::Head { id: claim, parts }, now);
    <M as Machine>::handle_input(
        &mut w,
        Input::Body {
            id: claim,
            chunk: body,
        },
        now,
    );
    <M as Machine>::handle_input(&mut w, Input::End { id: claim }, now);
    assert!(matches!(
        <M as Machine>::poll_event(&mut w),
        Some(WorkerEvent::Claimed { generation: 7, .. })
    ));
    let expiry = now + Duration::from_secs(3);
    assert!(<M as Machine>::poll_timeout(&w).is_some_and(|t| t <= expiry));
    <M as Machine>::handle_timeout(&mut w, expiry);
    assert!(
        std::iter::from_fn(|| <M as Machine>::poll_event(&mut w)).any(|e| matches!(
            e,
            WorkerEvent::LeaseLost {
                generation: 7,
                reason: LeaseLoss::Expired
            }
        ))
    );
    w.stop();
    let cancels: Vec<RequestId> =
        std::iter::from_fn(|| <M as Machine>::poll_cancel(&mut w)).collect();
    assert!(cancels.contains(&wake), "{cancels:?}");
}
