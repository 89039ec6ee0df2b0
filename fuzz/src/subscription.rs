//! Subscription targets (PROTOCOL.md 6, 7):
//!
//! - `webhook_signature`: the `Webhook-Signature` header parser and the verifier. Input: one
//!   mode byte, then the header value up to the first `\n`, then the body. Checked: no
//!   panic; a parsed header prints back (`t=..,kid=..,ed25519=..`) to a value that parses
//!   to the same header; verification against a fixed JWKS never accepts what was not signed
//!   with its key, and (mode bit 0) a body signed here verifies, while the same body with one
//!   byte changed, an older timestamp, an unknown kid or another key is rejected with that
//!   reason.
//! - `subscription_bodies`: the wake event, claim, webhook notification, ack answer, JWKS,
//!   subscription and error bodies. Input: one selector byte, one status byte, then the
//!   body. Checked: no panic; what parses serializes and parses back to the same value;
//!   [`WakeNotification::acks_to_tail`] never acks a sentinel offset.
//! - `worker_script`: the pull-wake [`Worker`] driven by a script of answers to its requests,
//!   time steps and application commands. Input: a hand-made byte format (see
//!   [`worker_script`]). Checked after every step: no panic; at most one claim, ack or
//!   release exchange in flight; cancels only for exchanges in flight; no batch or `Drained`
//!   of a wake after its end was reported, no ack or release sent for it either; the acked
//!   offsets a wake sends never go back per stream, and name only streams of its claim;
//!   nothing after `Stopped` or `Failed`; deadlines never in the past; once the harness has
//!   done what a driver does when time moves (fail exchanges past their deadline, then
//!   `handle_timeout(now)`), no timer is left due at `now`.

use crate::util::{base_instant, hdr, parts, Cursor};
use bytes::Bytes;
use ds_proto::io::{Input, RequestId, Transmit};
use ds_proto::offset::Offset;
use ds_proto::subscription::{
    ack_response, claim_response, error_from_response, get_subscription_response, sign_webhook,
    verify_webhook, AckBody, Claim, Jwk, Jwks, SignatureHeader, SigningKey, SubscriptionOp,
    SubscriptionRoot, WakeEvent, WakeNotification, WebhookRejection, Worker, WorkerConfig,
    WorkerEvent,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url (the header's encoding), written here so the round trip does not
/// use the code under test.
fn b64url(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn jwks() -> Jwks {
    Jwks::new(vec![
        Jwk::ed25519("k1", key(1).verifying_key()),
        Jwk::ed25519("k2", key(2).verifying_key()),
    ])
}

/// The unix time the verifications run at.
const NOW: u64 = 1_767_225_600;
const WINDOW: Duration = Duration::from_secs(300);

/// The `webhook_signature` target (see the module documentation).
pub fn webhook_signature(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mode = c.u8();
    let rest = c.rest();
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let jwks = jwks();
    if let Ok(h) = SignatureHeader::parse(&header) {
        let printed = format!(
            "t={},kid={},ed25519={}",
            h.timestamp,
            h.kid,
            b64url(&h.signature)
        );
        assert_eq!(
            SignatureHeader::parse(&printed).as_ref(),
            Ok(&h),
            "{printed}"
        );
    }
    match verify_webhook(&header, body, &jwks, NOW, WINDOW) {
        Ok(v) => {
            // Only a signature made with k1 or k2 verifies: the fuzzer cannot forge one, so
            // the header must be one of ours, replayed on its body.
            let h = SignatureHeader::parse(&header).expect("verified, so it parses");
            assert_eq!(v.kid, h.kid);
            assert!(v.kid == "k1" || v.kid == "k2", "{v:?}");
            let seed = if v.kid == "k1" { 1 } else { 2 };
            let expect = sign_webhook(&key(seed), &v.kid, h.timestamp, body);
            let expect = SignatureHeader::parse(&expect).unwrap();
            assert_eq!(expect.signature, h.signature, "a forged signature verified");
        }
        Err(WebhookRejection::MalformedHeader(_)) => {
            assert!(SignatureHeader::parse(&header).is_err());
        }
        Err(_) => {}
    }
    if mode & 1 == 1 {
        // Sign the body here: it verifies, and every tampering is rejected with its reason.
        let t = NOW - u64::from(mode >> 1);
        let signed = sign_webhook(&key(1), "k1", t, body);
        assert_eq!(
            verify_webhook(&signed, body, &jwks, NOW, WINDOW).map(|v| v.timestamp),
            Ok(t)
        );
        let mut tampered = body.to_vec();
        match tampered.first_mut() {
            Some(b) => *b ^= 1 << (mode % 8),
            None => tampered.push(b'x'),
        }
        assert_eq!(
            verify_webhook(&signed, &tampered, &jwks, NOW, WINDOW),
            Err(WebhookRejection::BadSignature)
        );
        let old = sign_webhook(&key(1), "k1", NOW - 301 - u64::from(mode), body);
        assert!(matches!(
            verify_webhook(&old, body, &jwks, NOW, WINDOW),
            Err(WebhookRejection::TooOld { .. })
        ));
        let unknown = sign_webhook(&key(1), "k9", t, body);
        assert!(matches!(
            verify_webhook(&unknown, body, &jwks, NOW, WINDOW),
            Err(WebhookRejection::UnknownKid { .. })
        ));
        let wrong = sign_webhook(&key(3), "k2", t, body);
        assert_eq!(
            verify_webhook(&wrong, body, &jwks, NOW, WINDOW),
            Err(WebhookRejection::BadSignature)
        );
    }
}

/// Serializes with serde_json and parses back with `parse`: the same value.
fn round_trip<T: serde::Serialize + PartialEq + std::fmt::Debug>(
    v: &T,
    parse: impl Fn(&[u8]) -> Option<T>,
) {
    let json = serde_json::to_vec(v).expect("serializes");
    assert_eq!(
        parse(&json).as_ref(),
        Some(v),
        "{}",
        String::from_utf8_lossy(&json)
    );
}

const ROOT: &str = "http://h/v1/stream";

/// The `subscription_bodies` target (see the module documentation).
pub fn subscription_bodies(data: &[u8]) {
    let mut c = Cursor::new(data);
    let which = c.u8();
    let status = 100 + c.u16() % 500;
    let body = c.rest();
    let root = SubscriptionRoot::new(ROOT).unwrap();
    let head = parts(status, &[hdr("content-type", "application/json")]);
    match which % 7 {
        0 => {
            if let Ok(Some(ev)) = WakeEvent::parse(body) {
                // The event is re-tagged: `type` is not a field of the value.
                let mut v = serde_json::to_value(&ev).unwrap();
                v["type"] = "wake".into();
                let json = serde_json::to_vec(&v).unwrap();
                assert_eq!(WakeEvent::parse(&json), Ok(Some(ev)));
            }
        }
        1 => {
            if let Ok(claim) = claim_response(&root, "s", &head, body) {
                round_trip(&claim, |b| serde_json::from_slice::<Claim>(b).ok());
            }
        }
        2 => {
            if let Ok(n) = WakeNotification::parse(body) {
                round_trip(&n, |b| WakeNotification::parse(b).ok());
                for a in n.acks_to_tail() {
                    assert!(!a.offset.is_sentinel(), "acks_to_tail acked {}", a.offset);
                    assert!(n.streams.iter().any(|s| s.path == a.stream));
                }
                let _ = WakeNotification::parse_for(body, "s");
            }
        }
        3 => {
            let _ = ack_response(&root, "s", &head, body);
        }
        4 => {
            if let Ok(j) = Jwks::from_json(body) {
                let again = Jwks::from_json(&j.to_json()).expect("own JWKS parses");
                assert_eq!(again.keys().len(), j.keys().len());
            }
        }
        5 => {
            if let Ok(s) = get_subscription_response(&root, "s", &head, body) {
                round_trip(&s, |b| serde_json::from_slice(b).ok());
            }
        }
        _ => {
            let op = [
                SubscriptionOp::Claim,
                SubscriptionOp::Ack,
                SubscriptionOp::Release,
                SubscriptionOp::Callback,
                SubscriptionOp::Create,
            ][usize::from(which / 7) % 5];
            let e = error_from_response(op, ROOT, &head, body);
            let _ = e.to_string();
            let _ = e.is_retryable();
        }
    }
}

// ----- worker_script ------------------------------------------------------------------------

const SUB: &str = "sub-1";
const WAKE_PATH: &str = "/v1/stream/wake/pool";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Control,
    Wake,
    Data,
}

/// How an ack exchange ended, for the harness's record of what the server applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckOutcome {
    /// A 2xx answer: applied.
    Accepted,
    /// `INVALID_OFFSET`: not applied, and (the tail only grows) no earlier attempt of the
    /// same offset was either.
    InvalidOffset,
    /// Any other answer: this attempt was not applied.
    NotApplied,
    /// No answer (failed, timed out, cancelled): perhaps applied.
    Unknown,
}

/// Keeps the later of `offset` and what `map` holds for `key`.
fn raise(map: &mut BTreeMap<(u64, String), Offset>, key: (u64, String), offset: Offset) {
    if map.get(&key).is_none_or(|prev| offset > *prev) {
        map.insert(key, offset);
    }
}

/// The harness: the worker, the requests in flight, what was reported.
/// One stream's ack in a request: (generation, stream) and the offset.
type AckRecord = ((u64, String), Offset);

struct Harness {
    w: Worker,
    now: std::time::Instant,
    flight: BTreeMap<RequestId, (Kind, Transmit)>,
    /// Exchanges the harness ended (answered or failed).
    ended_ids: BTreeSet<RequestId>,
    /// Generations whose end (`LeaseLost`, `Finished`, `Released`) was reported.
    ended: BTreeSet<u64>,
    /// Held generation → the streams of its claim.
    claims: BTreeMap<u64, BTreeSet<String>>,
    /// (generation, stream) → last offset of an ack the server accepted.
    acked: BTreeMap<(u64, String), Offset>,
    /// (generation, stream) → last offset of an ack whose exchange ended without an answer:
    /// the server may have applied it. The worker resends it; an `INVALID_OFFSET` answer to
    /// that retry shows it was never applied (a server refuses an offset past the tail each
    /// time, and the tail only grows), and the worker may then ack less.
    maybe_acked: BTreeMap<(u64, String), Offset>,
    /// The acks of each ack request not answered yet: they count once it is accepted (a
    /// refused ack, say `INVALID_OFFSET` past the tail, leaves the cursor where it was).
    sent_acks: BTreeMap<RequestId, Vec<AckRecord>>,
    /// The last batch (generation, stream, next offset), for the application's acks.
    last_batch: Option<(u64, String, Offset)>,
    drained: Option<u64>,
    terminal: bool,
    position: u64,
    wake_gen: u64,
}

fn kind_of(t: &Transmit) -> Kind {
    let p = t.request.uri().path();
    if p.ends_with("/claim") || p.ends_with("/ack") || p.ends_with("/release") {
        Kind::Control
    } else if p == WAKE_PATH {
        Kind::Wake
    } else {
        Kind::Data
    }
}

impl Harness {
    fn drain(&mut self) {
        // Events the inputs and timers caused come before the requests sent after them.
        self.events();
        while let Some(id) = self.w.poll_cancel() {
            crate::trace!("cancel {id:?}");
            self.settle_acks(id, AckOutcome::Unknown);
            // A cancel crossing the end the harness fed is harmless; any other must name an
            // exchange in flight.
            assert!(
                self.flight.remove(&id).is_some() || self.ended_ids.contains(&id),
                "a cancel of {id:?}, never sent"
            );
        }
        while let Some(t) = self.w.poll_transmit(self.now) {
            assert!(!self.terminal, "a request after the worker ended");
            let kind = kind_of(&t);
            if kind == Kind::Control {
                assert!(
                    !self.flight.values().any(|(k, _)| *k == Kind::Control),
                    "two control exchanges in flight"
                );
                let path = t.request.uri().path().to_owned();
                if path.ends_with("/ack") || path.ends_with("/release") {
                    let mut v: serde_json::Value = serde_json::from_slice(t.request.body())
                        .unwrap_or_else(|e| panic!("unparsable {path} body: {e}"));
                    if path.ends_with("/release") {
                        v["acks"] = serde_json::json!([]);
                        v["done"] = false.into();
                    }
                    let b: AckBody = serde_json::from_value(v)
                        .unwrap_or_else(|e| panic!("unexpected {path} body: {e}"));
                    assert!(
                        !self.ended.contains(&b.generation),
                        "{path} for generation {} after its end",
                        b.generation
                    );
                    for a in &b.acks {
                        let streams = self.claims.get(&b.generation).expect("a claimed wake");
                        assert!(streams.contains(&a.stream), "ack of {}", a.stream);
                        assert!(!a.offset.is_sentinel());
                        let key = (b.generation, a.stream.clone());
                        for prev in [self.acked.get(&key), self.maybe_acked.get(&key)]
                            .into_iter()
                            .flatten()
                        {
                            assert!(a.offset >= *prev, "ack went back {prev} -> {}", a.offset);
                        }
                        self.sent_acks
                            .entry(t.id)
                            .or_default()
                            .push((key, a.offset.clone()));
                    }
                }
            }
            if let Some(d) = t.deadline {
                assert!(d >= self.now, "a deadline in the past");
            }
            crate::trace!("send {:?} {kind:?} {}", t.id, t.request.uri());
            self.flight.insert(t.id, (kind, t));
        }
        self.events();
        if self.terminal {
            assert!(self.w.is_finished());
            assert!(self.w.poll_timeout().is_none());
        }
        if let Some(g) = self.w.held_generation() {
            assert!(
                !self.ended.contains(&g),
                "holds generation {g} after its end"
            );
        }
    }

    fn events(&mut self) {
        while let Some(ev) = self.w.poll_event() {
            crate::trace!("event {ev:?}");
            assert!(!self.terminal, "{ev:?} after the worker ended");
            match &ev {
                WorkerEvent::Claimed {
                    generation,
                    streams,
                    ..
                } => {
                    // A script may answer a claim with a generation already seen (no real
                    // server does): that is a new wake, judged afresh.
                    self.ended.remove(generation);
                    self.acked.retain(|(g, _), _| g != generation);
                    self.maybe_acked.retain(|(g, _), _| g != generation);
                    self.claims.insert(
                        *generation,
                        streams.iter().map(|s| s.path.clone()).collect(),
                    );
                }
                WorkerEvent::Batch(b) => {
                    assert!(!self.ended.contains(&b.generation), "a batch after the end");
                    assert!(!b.next_offset.is_sentinel());
                    self.last_batch = Some((b.generation, b.stream.clone(), b.next_offset.clone()));
                }
                WorkerEvent::Drained { generation } => {
                    assert!(!self.ended.contains(generation), "Drained after the end");
                    self.drained = Some(*generation);
                }
                WorkerEvent::LeaseLost { generation, .. }
                | WorkerEvent::Finished { generation, .. }
                | WorkerEvent::Released { generation } => {
                    self.ended.insert(*generation);
                }
                WorkerEvent::Stopped | WorkerEvent::Failed(_) => {
                    self.terminal = true;
                }
                _ => {}
            }
        }
    }

    /// What a driver does when time reaches `now`: exchanges past their deadline fail with
    /// a timeout, then the timers fire. Afterwards no timer may be due at `now` (a worker
    /// that keeps asking to be woken now would spin its driver).
    fn tick(&mut self) {
        for _ in 0..16 {
            let late: Vec<RequestId> = self
                .flight
                .iter()
                .filter(|(_, (_, t))| t.deadline.is_some_and(|d| d <= self.now))
                .map(|(id, _)| *id)
                .collect();
            for id in &late {
                // Drained after each input, like a driver: an exchange cancelled meanwhile
                // is not failed.
                if self.flight.remove(id).is_none() {
                    continue;
                }
                crate::trace!("deadline of {id:?}");
                self.ended_ids.insert(*id);
                self.settle_acks(*id, AckOutcome::Unknown);
                let error = crate::script::FailKind::Timeout.error();
                self.w
                    .handle_input(Input::Failed { id: *id, error }, self.now);
                self.drain();
            }
            self.w.handle_timeout(self.now);
            self.drain();
            let due = self.w.poll_timeout().is_some_and(|t| t <= self.now);
            let late = self
                .flight
                .values()
                .any(|(_, t)| t.deadline.is_some_and(|d| d <= self.now));
            if !due && !late {
                return;
            }
        }
        panic!(
            "handle_timeout({:?}) leaves a timer due: {:?}",
            self.now - base_instant(),
            self.w.poll_timeout().map(|t| t - base_instant())
        );
    }

    /// The request in flight of `kind` (the `n`th when several), if any.
    fn pick(&self, kind: Option<Kind>, n: u8) -> Option<RequestId> {
        let ids: Vec<RequestId> = self
            .flight
            .iter()
            .filter(|(_, (k, _))| kind.is_none_or(|want| *k == want))
            .map(|(id, _)| *id)
            .collect();
        (!ids.is_empty()).then(|| ids[usize::from(n) % ids.len()])
    }

    fn respond(&mut self, id: RequestId, status: u16, headers: &[(&str, String)], body: &[u8]) {
        let headers: Vec<_> = headers.iter().map(|(k, v)| hdr(k, v)).collect();
        crate::trace!("answer {id:?} {status} {:?}", String::from_utf8_lossy(body));
        self.flight.remove(&id);
        self.ended_ids.insert(id);
        // The code is looked for here rather than with `error_from_response`, so that the
        // model does not share the classification it checks.
        let outcome = if (200..300).contains(&status) {
            AckOutcome::Accepted
        } else if status == 409 && body.windows(14).any(|w| w == b"INVALID_OFFSET") {
            AckOutcome::InvalidOffset
        } else {
            AckOutcome::NotApplied
        };
        self.settle_acks(id, outcome);
        let now = self.now;
        self.w.handle_input(
            Input::Head {
                id,
                parts: parts(status, &headers),
            },
            now,
        );
        if !body.is_empty() {
            self.w.handle_input(
                Input::Body {
                    id,
                    chunk: Bytes::copy_from_slice(body),
                },
                now,
            );
        }
        self.w.handle_input(Input::End { id }, now);
    }

    /// What the answer (or its absence) to ack request `id` tells about its acks.
    fn settle_acks(&mut self, id: RequestId, outcome: AckOutcome) {
        let Some(acks) = self.sent_acks.remove(&id) else {
            return;
        };
        for (key, offset) in acks {
            match outcome {
                AckOutcome::Accepted => {
                    if self.maybe_acked.get(&key).is_some_and(|m| *m <= offset) {
                        self.maybe_acked.remove(&key);
                    }
                    raise(&mut self.acked, key, offset);
                }
                AckOutcome::Unknown => raise(&mut self.maybe_acked, key, offset),
                AckOutcome::NotApplied => {}
                AckOutcome::InvalidOffset => {
                    if self.maybe_acked.get(&key) == Some(&offset) {
                        self.maybe_acked.remove(&key);
                    }
                }
            }
        }
    }

    fn offset(n: u64) -> String {
        format!("0_{n:08}")
    }
}

/// The `worker_script` target. Input: 4 configuration bytes (lease: `1 s + b0 * 100 ms`
/// as the claims' `lease_ttl_ms`; retry: initial `1 + b1` ms, at most `b2 % 8` attempts, 0 =
/// no limit; heartbeat: `b3 = 0` a third of the lease, else `b3 * 50 ms`), then operations,
/// each an opcode byte and its argument bytes (missing bytes read as zero):
///
/// | op % 12 | what |
/// |---|---|
/// | 0 | time passes by `u16` ms, then `handle_timeout` |
/// | 1 | time jumps to `poll_timeout`, then `handle_timeout` |
/// | 2 | the control exchange in flight answers a claim: generation `u8`, `u8 % 4` streams with cursors and tails from the next bytes |
/// | 3 | the control exchange answers an error: `u8` picks 409 `ALREADY_CLAIMED` / `NO_PENDING_WORK` / `FENCED` / `INVALID_OFFSET`, 401, 404, 429, 500, 503, 400 |
/// | 4 | the control exchange answers an ack: `{"ok":true,"next_wake":bit}` |
/// | 5 | the control exchange answers 204 (a release) |
/// | 6 | a linked-stream read answers `u8 % 32` bytes of data, next offset forward by that, up to date by a bit |
/// | 7 | the wake stream read answers a wake event of generation `u8` (for another subscription by a bit) |
/// | 8 | a request in flight (`u8`) fails (transport) |
/// | 9 | a request in flight (`u8`) answers status `u16` with `u8 % 64` raw bytes of the input |
/// | 10 | the application: `u8 % 5`: ack the last batch, `done`, `release`, `stop`, ack a bogus offset |
/// | 11 | an input for an id never used |
pub fn worker_script(data: &[u8]) {
    let mut c = Cursor::new(data);
    let lease_ms = 1000 + 100 * u64::from(c.u8());
    let initial = 1 + u64::from(c.u8());
    let attempts = c.u8() % 8;
    let hb = c.u8();
    let start = base_instant();
    let root = SubscriptionRoot::new(ROOT).unwrap();
    let config = WorkerConfig {
        retry: ds_proto::retry::RetryPolicy {
            initial_delay: Duration::from_millis(initial),
            max_delay: Duration::from_millis(initial * 8),
            max_attempts: (attempts > 0).then_some(u32::from(attempts)),
            ..ds_proto::retry::RetryPolicy::unlimited()
        },
        heartbeat_interval: (hb > 0).then(|| Duration::from_millis(50 * u64::from(hb))),
        request_timeout: Duration::from_secs(5),
        rng_seed: u64::from(hb),
        ..WorkerConfig::new(root, SUB, "w1", "wake/pool")
    };
    let w = Worker::new(config, start).expect("a valid config");
    let mut h = Harness {
        w,
        now: start,
        flight: BTreeMap::new(),
        ended_ids: BTreeSet::new(),
        ended: BTreeSet::new(),
        claims: BTreeMap::new(),
        acked: BTreeMap::new(),
        maybe_acked: BTreeMap::new(),
        sent_acks: BTreeMap::new(),
        last_batch: None,
        drained: None,
        terminal: false,
        position: 0,
        wake_gen: 0,
    };
    h.drain();
    let mut ops = 0;
    while !c.is_empty() && ops < 2000 {
        ops += 1;
        let op = c.u8() % 12;
        match op {
            0 => {
                h.now += Duration::from_millis(u64::from(c.u16()));
                h.tick();
            }
            1 => {
                if let Some(t) = h.w.poll_timeout() {
                    h.now = h.now.max(t);
                }
                h.tick();
            }
            2 => {
                let generation = u64::from(c.u8());
                let n = c.u8() % 4;
                let mut streams = Vec::new();
                for i in 0..n {
                    let acked = u64::from(c.u8());
                    let tail = acked + u64::from(c.u8() % 8);
                    let acked = if acked == 0 {
                        "-1".to_owned()
                    } else {
                        Harness::offset(acked)
                    };
                    streams.push(serde_json::json!({
                        "path": format!("events/{i}"),
                        "acked_offset": acked,
                        "tail_offset": Harness::offset(tail),
                        "has_pending": tail > 0,
                    }));
                }
                let body = serde_json::json!({
                    "wake_id": format!("w{generation}"),
                    "generation": generation,
                    "token": "tok",
                    "streams": streams,
                    "lease_ttl_ms": lease_ms,
                });
                if let Some(id) = h.pick(Some(Kind::Control), 0) {
                    let body = body.to_string();
                    h.respond(id, 200, &[], body.as_bytes());
                }
            }
            3 => {
                let pick = c.u8() % 10;
                let (status, code) = match pick {
                    0 => (409, "ALREADY_CLAIMED"),
                    1 => (409, "NO_PENDING_WORK"),
                    2 => (409, "FENCED"),
                    3 => (409, "INVALID_OFFSET"),
                    4 => (401, "TOKEN_EXPIRED"),
                    5 => (404, "SUBSCRIPTION_NOT_FOUND"),
                    6 => (429, "RATE_LIMITED"),
                    7 => (500, "INTERNAL"),
                    8 => (503, "UNAVAILABLE"),
                    _ => (400, "INVALID_REQUEST"),
                };
                let body = if pick == 0 {
                    serde_json::json!({"error": {"code": code, "message": "m",
                        "current_holder": "w2", "generation": c.u8()}})
                } else {
                    serde_json::json!({"error": {"code": code, "message": "m"}})
                };
                if let Some(id) = h.pick(Some(Kind::Control), 0) {
                    let body = body.to_string();
                    h.respond(id, status, &[("retry-after", "1".into())], body.as_bytes());
                }
            }
            4 => {
                let next = c.u8() & 1 == 1;
                if let Some(id) = h.pick(Some(Kind::Control), 0) {
                    let body = format!(r#"{{"ok":true,"next_wake":{next}}}"#);
                    h.respond(id, 200, &[], body.as_bytes());
                }
            }
            5 => {
                if let Some(id) = h.pick(Some(Kind::Control), 0) {
                    h.respond(id, 204, &[], b"");
                }
            }
            6 => {
                let n = c.u8();
                let len = u64::from(n % 32);
                if let Some(id) = h.pick(Some(Kind::Data), 0) {
                    // Forward from what the request asked for.
                    let t = &h.flight[&id].1;
                    let from = t
                        .request
                        .uri()
                        .query()
                        .and_then(|q| {
                            q.split('&')
                                .find_map(|kv| kv.strip_prefix("offset="))
                                .map(str::to_owned)
                        })
                        .and_then(|o| o.rsplit('_').next()?.parse::<u64>().ok())
                        .unwrap_or(0);
                    let next = Harness::offset(from + len);
                    let mut headers = vec![
                        ("content-type", "application/octet-stream".to_owned()),
                        ("stream-next-offset", next),
                    ];
                    if n & 0x80 != 0 {
                        headers.push(("stream-up-to-date", "true".into()));
                    }
                    let body = vec![b'd'; len as usize];
                    h.respond(id, 200, &headers, &body);
                }
            }
            7 => {
                let g = c.u8();
                let other = g & 0x80 != 0;
                h.wake_gen = u64::from(g & 0x7f);
                if let Some(id) = h.pick(Some(Kind::Wake), 0) {
                    let ev = serde_json::json!({
                        "type": "wake",
                        "subscription_id": if other { "other" } else { SUB },
                        "stream": "events/0",
                        "generation": h.wake_gen,
                    })
                    .to_string();
                    h.position += ev.len() as u64;
                    let headers = [
                        ("content-type", "application/octet-stream".to_owned()),
                        ("stream-next-offset", Harness::offset(h.position)),
                        ("stream-up-to-date", "true".to_owned()),
                    ];
                    h.respond(id, 200, &headers, ev.as_bytes());
                }
            }
            8 => {
                let n = c.u8();
                if let Some(id) = h.pick(None, n) {
                    crate::trace!("fail {id:?}");
                    h.flight.remove(&id);
                    h.ended_ids.insert(id);
                    h.settle_acks(id, AckOutcome::Unknown);
                    let error = crate::script::FailKind::Reset.error();
                    h.w.handle_input(Input::Failed { id, error }, h.now);
                }
            }
            9 => {
                let n = c.u8();
                let status = 100 + c.u16() % 900;
                let len = usize::from(c.u8() % 64);
                let mut body = Vec::with_capacity(len);
                for _ in 0..len {
                    body.push(c.u8());
                }
                if let Some(id) = h.pick(None, n) {
                    h.respond(id, status, &[], &body);
                }
            }
            10 => {
                let app = c.u8() % 5;
                crate::trace!("application {app}");
                match app {
                    0 => {
                        if let Some((g, s, o)) = h.last_batch.clone() {
                            let _ = h.w.ack(g, &s, o);
                        }
                    }
                    1 => {
                        if let Some(g) = h.drained.or(h.w.held_generation()) {
                            let _ = h.w.done(g);
                        }
                    }
                    2 => {
                        if let Some(g) = h.w.held_generation() {
                            let _ = h.w.release(g);
                        }
                    }
                    3 => h.w.stop(),
                    _ => {
                        if let Some(g) = h.w.held_generation() {
                            let _ = h.w.ack(g, "events/0", Offset::parse("0_99999999").unwrap());
                            let _ = h.w.ack(g, "nope", Offset::parse("0_1").unwrap());
                            let _ = h.w.ack(g, "events/0", Offset::now());
                        }
                    }
                }
            }
            _ => {
                h.w.handle_input(
                    Input::End {
                        id: RequestId(1_000_000),
                    },
                    h.now,
                );
            }
        }
        h.drain();
    }
    // The end: every timer fires in turn; nothing loops without time moving.
    for _ in 0..64 {
        let Some(t) = h.w.poll_timeout() else { break };
        h.now = h.now.max(t);
        h.tick();
    }
}

// ----- seeds ----------------------------------------------------------------------------------

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The hand-written seeds of the three targets (see [`crate::seeds`]).
pub fn seeds() -> Vec<crate::util::Seed> {
    let body = br#"{"subscription_id":"s","wake_id":"w_1","generation":1,"streams":[],"callback_url":"http://h/v1/stream/__ds/subscriptions/s/callback","callback_token":"t"}"#;
    let signed = sign_webhook(&key(1), "k1", NOW - 10, body);
    let notification = br#"{"subscription_id":"s","wake_id":"w_00000000000000a1","generation":4,"streams":[{"path":"events/a","link_type":"glob","acked_offset":"-1","tail_offset":"0000000000000000_0000000000000012","has_pending":true},{"path":"x/y%2Fz","link_type":"explicit","acked_offset":"0000000000000000_0000000000000003","tail_offset":"0000000000000000_0000000000000003","has_pending":false}],"callback_url":"http://127.0.0.1:4437/v1/stream/__ds/subscriptions/s/callback","callback_token":"eyJ.x.y"}"#;
    let claim = br#"{"wake_id":"w_1","generation":2,"token":"tok","streams":[{"path":"events/a","link_type":"glob","acked_offset":"-1","tail_offset":"0_5","has_pending":true}],"lease_ttl_ms":30000}"#;
    let sub = br#"{"subscription_id":"s","type":"pull-wake","pattern":"events/*","streams":[{"path":"events/a","link_type":"glob","acked_offset":"-1"}],"wake_stream":"wake/pool","lease_ttl_ms":30000,"created_at":"2026-01-01T00:00:00.000Z","status":"active"}"#;
    let s200: &[u8] = &[100, 0];
    let s409: &[u8] = &[0x35, 0x01];
    vec![
        (
            "webhook_signature",
            "signed",
            cat(&[&[1], signed.as_bytes(), b"\n", body]),
        ),
        (
            "webhook_signature",
            "spaced-unknown-param",
            cat(&[
                &[0],
                b" t=1767225600 , v=2, kid=k2 ,ed25519=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n{}",
            ]),
        ),
        (
            "webhook_signature",
            "malformed",
            cat(&[&[0], b"t=abc,kid=,ed25519=!!,t=1\n"]),
        ),
        (
            "webhook_signature",
            "tamper-modes",
            cat(&[&[0x0b], b"\n", notification]),
        ),
        (
            "subscription_bodies",
            "wake-event",
            cat(&[
                &[0],
                s200,
                br#"{"type":"wake","subscription_id":"s","stream":"a/b","generation":3,"ts":1767225600000}"#,
            ]),
        ),
        ("subscription_bodies", "claim", cat(&[&[1], s200, claim])),
        (
            "subscription_bodies",
            "notification",
            cat(&[&[2], s200, notification]),
        ),
        (
            "subscription_bodies",
            "ack",
            cat(&[&[3], s200, br#"{"ok":true,"next_wake":true}"#]),
        ),
        (
            "subscription_bodies",
            "jwks",
            cat(&[&[4], s200, &jwks().to_json()]),
        ),
        ("subscription_bodies", "subscription", cat(&[&[5], s200, sub])),
        (
            "subscription_bodies",
            "already-claimed",
            cat(&[
                &[6],
                s409,
                br#"{"error":{"code":"ALREADY_CLAIMED","message":"m","current_holder":"w2","generation":7}}"#,
            ]),
        ),
        (
            "worker_script",
            "two-wakes",
            vec![
                0, 10, 0, 0, // config
                2, 1, 1, 0, 5, // claim: generation 1, one stream with 5 bytes pending
                6, 0x85, // 5 bytes, up to date
                10, 0, // ack the batch
                4, 0, // the ack answered
                10, 1, // done
                4, 0, // done answered
                7, 2, // a wake event of generation 2
                2, 2, 1, 0, 3, // claim generation 2
                6, 0x83, 1, // data, then the next timer
                0, 0x10, 0x27, // 10 s pass: the lease is lost locally
                10, 3, 5, // stop; the release answered
            ],
        ),
        (
            "worker_script",
            "fenced",
            vec![
                20, 1, 0, 2, // config: lease 3 s, heartbeat 100 ms
                2, 1, 2, 3, 4, 0, 2, // claim: two streams
                6, 0x84, 10, 0, // data, ack
                3, 2, // FENCED
                6, 1, 7, 5, 3, 1, 1, // stray data, a wake event, NO_PENDING_WORK, timer
            ],
        ),
        (
            "worker_script",
            "retries",
            vec![
                0, 0, 3, 0, // config: at most 3 attempts
                8, 0, 8, 1, // transport failures
                3, 6, 1, 3, 8, 1, // 429, timer, 503, timer
                2, 4, 1, 0, 7, // claim
                0, 0x30, 0x75, 1, // 30 s: lease lost; timer
                9, 0, 0xf4, 0x01, 4, 1, 2, 3, 4, // a raw answer
                11, // a stray input
            ],
        ),
        (
            "worker_script",
            "stop-mid-wake",
            vec![
                5, 5, 0, 0, // config
                2, 1, 1, 0, 7, // claim
                6, 0x03, 10, 0, // data, ack
                10, 3, // stop
                4, 0, 5, 1, // ack answered, release answered
            ],
        ),
    ]
}
