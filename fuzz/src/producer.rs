//! `producer_script`: the [`Producer`] driven by a fuzzer-chosen script of appends, flushes,
//! closes, time steps and answers (any status, headers and body; transport failures; in any
//! order among the requests in flight), then drained by answering everything with `200`.
//!
//! Input format: a [`ProducerScript`] as decoded by `arbitrary` (see [`crate::script`]).
//!
//! Invariants checked after every step: no panic; payload bytes buffered within
//! `max_buffered_bytes`, requests in flight within `max_in_flight` (and, unless the carrier
//! keeps order, one until a batch of the epoch was acknowledged); batches within
//! `max_batch_items` and `max_batch_bytes` (unless one append); every request carries a contiguous run of appends not yet reported, in
//! sequence order, under the current epoch, byte-identical on every attempt of the same
//! (epoch, seq), and new sequence numbers in order from 0; events report appends in append
//! order, each at most once, `Failed` with the payloads given; nothing sent after
//! `Closed`/`CloseFailed`; after the failure that stopped the producer, nothing for the
//! appends it failed and no new batch (earlier batches still go on to their outcome, by
//! design; only an auto-claim renumbers them under a new epoch);
//! `poll_timeout` never before `now`, and after `handle_timeout(now)` strictly after it. At the
//! end, answering everything makes the producer idle with every append reported exactly once.

use crate::encode_struct;
use crate::script::{self, variant, Encode, FailKind, RetryKnobs, Status};
use crate::util::{base_instant, hdr, offset_token, parts};
use arbitrary::Arbitrary;
use bytes::Bytes;
use ds_proto::error::{ConflictKind, Error, ErrorKind};
use ds_proto::headers::{parse_u53, MAX_SAFE_INTEGER};
use ds_proto::io::{Input, RequestId, Transmit};
use ds_proto::producer::{AppendError, AppendId, Producer, ProducerConfig, ProducerEvent};
use http::header::{HeaderName, HeaderValue};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const URL: &str = "http://h/v1/stream/s?tenant=t";
const PRODUCER_ID: &str = "fuzz-producer";

/// A whole script.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct ProducerScript {
    pub knobs: ProducerKnobs,
    pub ops: Vec<ProducerOp>,
}
encode_struct!(ProducerScript { knobs; ops });

/// The configuration, kept valid.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerKnobs {
    pub json: bool,
    pub auto_claim: bool,
    /// `1 + n % 4`.
    pub max_in_flight: u8,
    /// `1 + n % 8`.
    pub max_batch_items: u8,
    /// `1 + n`.
    pub max_batch_bytes: u8,
    /// `max_buffered_bytes = max_batch_bytes + 4 * n`.
    pub buffered_extra: u8,
    /// `linger = n % 64` ms.
    pub linger_ms: u8,
    /// The starting epoch; 255 means 2^53-2 (auto-claim runs out of epochs).
    pub epoch: u8,
    /// Put a 30 s deadline on every request.
    pub deadline: bool,
    /// The carrier keeps order (`Producer::set_ordered`): an epoch's first batches may be in
    /// flight together.
    pub ordered: bool,
    pub retry: RetryKnobs,
}
encode_struct!(ProducerKnobs { json, auto_claim, max_in_flight, max_batch_items, max_batch_bytes, buffered_extra, linger_ms, epoch, deadline, ordered; retry });

/// One step of a script. `pick` chooses among the requests in flight (modulo their number).
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum ProducerOp {
    /// An append of `4 + size` bytes (JSON: a string of about that size); `kind % 16 == 0`:
    /// an invalid payload instead (empty, or for JSON `[]`, `{`, empty in turn).
    Append {
        size: u8,
        kind: u8,
    },
    Flush,
    Close,
    /// Time passes by `ms`, then `handle_timeout`.
    Advance {
        ms: u16,
    },
    /// Time jumps to `poll_timeout` (if any), then `handle_timeout`.
    ToTimeout,
    /// Head, body and end of an answer.
    Reply {
        pick: u8,
        reply: Reply,
    },
    /// Only the head of an answer.
    Head {
        pick: u8,
        reply: Reply,
    },
    /// A body chunk (text that error classification looks for).
    Body {
        pick: u8,
        len: u8,
    },
    End {
        pick: u8,
    },
    Fail {
        pick: u8,
        kind: FailKind,
    },
    /// An input for an id that is not in flight.
    Stray {
        id: u8,
    },
}

impl Encode for ProducerOp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ProducerOp::Append { size, kind } => {
                variant(out, 0, 11);
                size.encode(out);
                kind.encode(out);
            }
            ProducerOp::Flush => variant(out, 1, 11),
            ProducerOp::Close => variant(out, 2, 11),
            ProducerOp::Advance { ms } => {
                variant(out, 3, 11);
                ms.encode(out);
            }
            ProducerOp::ToTimeout => variant(out, 4, 11),
            ProducerOp::Reply { pick, reply } => {
                variant(out, 5, 11);
                pick.encode(out);
                reply.encode(out);
            }
            ProducerOp::Head { pick, reply } => {
                variant(out, 6, 11);
                pick.encode(out);
                reply.encode(out);
            }
            ProducerOp::Body { pick, len } => {
                variant(out, 7, 11);
                pick.encode(out);
                len.encode(out);
            }
            ProducerOp::End { pick } => {
                variant(out, 8, 11);
                pick.encode(out);
            }
            ProducerOp::Fail { pick, kind } => {
                variant(out, 9, 11);
                pick.encode(out);
                kind.encode(out);
            }
            ProducerOp::Stray { id } => {
                variant(out, 10, 11);
                id.encode(out);
            }
        }
    }
}

/// An answer, relative to the request it answers.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum Reply {
    /// 200 with `Stream-Next-Offset` and the producer headers echoed.
    Stored,
    /// 204 (a duplicate).
    Duplicate,
    /// 409 sequence gap: expected = seq - lag.
    Gap { lag: u8 },
    /// 403 fenced by epoch + ahead.
    Fence { ahead: u8 },
    /// 409 `Stream-Closed`.
    StreamClosed,
    /// 429 or 5xx with `Retry-After: secs`.
    Busy { status: u8, secs: u8 },
    /// Anything.
    Raw {
        status: Status,
        headers: Vec<ReplyHeader>,
        body: u8,
    },
}

impl Encode for Reply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Stored => variant(out, 0, 7),
            Reply::Duplicate => variant(out, 1, 7),
            Reply::Gap { lag } => {
                variant(out, 2, 7);
                lag.encode(out);
            }
            Reply::Fence { ahead } => {
                variant(out, 3, 7);
                ahead.encode(out);
            }
            Reply::StreamClosed => variant(out, 4, 7),
            Reply::Busy { status, secs } => {
                variant(out, 5, 7);
                status.encode(out);
                secs.encode(out);
            }
            Reply::Raw {
                status,
                headers,
                body,
            } => {
                variant(out, 6, 7);
                status.encode(out);
                headers.encode(out);
                body.encode(out);
            }
        }
    }
}

/// A response header of a raw answer.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyHeader {
    NextOffset(u8),
    BadNextOffset,
    Closed,
    Epoch(u8),
    EpochTooBig,
    Seq(u8),
    ExpectedSeq(u8),
    ReceivedSeq(u8),
    RetryAfter(u8),
    RetryAfterHuge,
}

impl Encode for ReplyHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        let (i, arg) = match *self {
            ReplyHeader::NextOffset(n) => (0, Some(n)),
            ReplyHeader::BadNextOffset => (1, None),
            ReplyHeader::Closed => (2, None),
            ReplyHeader::Epoch(n) => (3, Some(n)),
            ReplyHeader::EpochTooBig => (4, None),
            ReplyHeader::Seq(n) => (5, Some(n)),
            ReplyHeader::ExpectedSeq(n) => (6, Some(n)),
            ReplyHeader::ReceivedSeq(n) => (7, Some(n)),
            ReplyHeader::RetryAfter(n) => (8, Some(n)),
            ReplyHeader::RetryAfterHuge => (9, None),
        };
        variant(out, i, 10);
        if let Some(a) = arg {
            a.encode(out);
        }
    }
}

/// What the harness knows of a request in flight.
#[derive(Debug, Clone)]
struct Sent {
    id: RequestId,
    epoch: u64,
    seq: u64,
    /// Whether a head was fed.
    head: Option<u16>,
}

/// A batch as first sent: body, close flag, append range.
type SentBatch = (Bytes, bool, Option<(u64, u64)>);

const BODIES: [&str; 4] = [
    "",
    "Content-Type mismatch",
    "Sequence conflict: seq regression",
    "stream is closed",
];

struct Harness {
    p: Producer,
    k: ProducerKnobs,
    now: Instant,
    json: bool,
    max_in_flight: usize,
    max_items: usize,
    max_batch_bytes: usize,
    max_buffered: usize,
    /// Accepted payloads, by append id.
    payloads: Vec<Bytes>,
    in_flight: Vec<Sent>,
    /// Every (epoch, seq) sent: its body, close flag and append range.
    sent: HashMap<(u64, u64), SentBatch>,
    /// Per epoch, the append range of each seq.
    order: BTreeMap<(u64, u64), (u64, u64)>,
    /// Next new seq per epoch.
    next_seq: HashMap<u64, u64>,
    /// Epochs that had a 2xx answer.
    acked_epochs: HashSet<u64>,
    /// Next append id to be reported.
    reported: u64,
    /// Appends to report before the close outcome.
    close_at: Option<u64>,
    close_outcome: bool,
    last_epoch: u64,
    full_pending: bool,
    terminal: Option<Error>,
    /// The epoch when the terminal failure appeared (only batches already sent go on, or
    /// batches renumbered by an auto-claim).
    terminal_epoch: Option<u64>,
    /// The epoch when the current step began.
    step_epoch: u64,
    /// The exchange finished by the current step (epoch, seq).
    finished: Option<(u64, u64)>,
    /// After the terminal failure: whether it concerns every batch (fenced, closed, 404,
    /// 410), and the first append of the batch that failed (when the harness knows it).
    stopped: Option<(bool, Option<u64>)>,
}

fn payload(id: u64, size: u8, kind: u8, json: bool) -> (Bytes, bool) {
    if kind % 16 == 0 {
        let bad: &[u8] = match (json, kind / 16 % 3) {
            (false, _) | (true, 2) => b"",
            (true, 0) => b"[ ]",
            (true, _) => b"{",
        };
        return (Bytes::copy_from_slice(bad), false);
    }
    if json {
        let s = format!("{id}:{}", "x".repeat(usize::from(size)));
        (Bytes::from(serde_json::to_vec(&s).expect("a string")), true)
    } else {
        let mut v = (id as u32).to_le_bytes().to_vec();
        v.resize(4 + usize::from(size), kind);
        (Bytes::from(v), true)
    }
}

impl Harness {
    fn new(k: ProducerKnobs) -> Option<Harness> {
        let now = base_instant();
        let max_batch_bytes = 1 + usize::from(k.max_batch_bytes);
        let max_buffered = max_batch_bytes + 4 * usize::from(k.buffered_extra);
        let epoch = if k.epoch == 255 {
            MAX_SAFE_INTEGER - 1
        } else {
            u64::from(k.epoch)
        };
        let config = ProducerConfig {
            epoch,
            auto_claim: k.auto_claim,
            linger: Duration::from_millis(u64::from(k.linger_ms % 64)),
            max_batch_bytes,
            max_batch_items: 1 + usize::from(k.max_batch_items % 8),
            max_in_flight: 1 + usize::from(k.max_in_flight % 4),
            max_buffered_bytes: max_buffered,
            content_type: if k.json {
                "application/json".to_owned()
            } else {
                "application/octet-stream".to_owned()
            },
            retry: k.retry.policy(),
            rng_seed: u64::from(k.epoch),
            request_deadline: k.deadline.then(|| Duration::from_secs(30)),
            ..ProducerConfig::new(URL, PRODUCER_ID)
        };
        let mut p = Producer::new(config.clone(), now).expect("a valid configuration");
        p.set_ordered(k.ordered);
        Some(Harness {
            p,
            k,
            now,
            json: k.json,
            max_in_flight: config.max_in_flight,
            max_items: config.max_batch_items,
            max_batch_bytes,
            max_buffered,
            payloads: Vec::new(),
            in_flight: Vec::new(),
            sent: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: HashMap::new(),
            acked_epochs: HashSet::new(),
            reported: 0,
            close_at: None,
            close_outcome: false,
            last_epoch: epoch,
            full_pending: false,
            terminal: None,
            terminal_epoch: None,
            step_epoch: epoch,
            finished: None,
            stopped: None,
        })
    }

    /// The append ids a request body carries, checked against the payloads.
    fn decode_body(&self, body: &Bytes) -> Option<(u64, u64)> {
        if body.is_empty() {
            return None;
        }
        let mut ids = Vec::new();
        if self.json {
            let items: Vec<String> = serde_json::from_slice(body).expect("a JSON batch of strings");
            for s in items {
                let id: u64 = s
                    .split(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("an id");
                let p = &self.payloads[id as usize];
                assert_eq!(serde_json::from_slice::<String>(p).ok(), Some(s));
                ids.push(id);
            }
        } else {
            let mut at = 0;
            while at < body.len() {
                let id = u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
                let p = &self.payloads[id as usize];
                assert_eq!(&body[at..at + p.len()], &p[..], "payload {id} in the body");
                at += p.len();
                ids.push(u64::from(id));
            }
        }
        for w in ids.windows(2) {
            assert_eq!(w[1], w[0] + 1, "a batch is a contiguous run of appends");
        }
        assert!(
            ids.len() <= self.max_items,
            "{} items in a batch",
            ids.len()
        );
        assert!(
            body.len() <= self.max_batch_bytes || ids.len() == 1,
            "a batch of {} bytes over max_batch_bytes",
            body.len()
        );
        Some((ids[0], ids[ids.len() - 1]))
    }

    fn on_transmit(&mut self, tx: Transmit) {
        crate::trace!(
            "  -> {} {} {:?}",
            tx.id,
            tx.request.uri(),
            tx.request.headers()
        );
        assert!(!self.close_outcome, "a request after the close outcome");
        let h = tx.request.headers();
        let num = |name: &str| -> u64 {
            let v = h.get(name).and_then(|v| v.to_str().ok()).expect(name);
            parse_u53(v).expect("a valid producer number")
        };
        assert_eq!(
            h.get("producer-id").and_then(|v| v.to_str().ok()),
            Some(PRODUCER_ID)
        );
        let (epoch, seq) = (num("producer-epoch"), num("producer-seq"));
        assert_eq!(epoch, self.p.epoch(), "sent under another epoch");
        let close = h.get("stream-closed").is_some_and(|v| v == "true");
        assert_eq!(tx.request.method(), http::Method::POST);
        assert_eq!(tx.request.uri().query(), Some("tenant=t"));
        assert_eq!(
            tx.deadline,
            self.k.deadline.then(|| self.now + Duration::from_secs(30))
        );
        let body = tx.request.body().clone();
        let ids = self.decode_body(&body);
        if ids.is_none() {
            assert!(close, "an empty body is a close");
        }
        if let Some((first, _)) = ids {
            assert!(
                first >= self.reported,
                "append {first} sent after it was reported"
            );
        }
        if let Some((global, failing_first)) = self.stopped {
            // Only batches before the one that failed go on (to their outcome).
            assert!(
                !global,
                "a request after a failure that concerns every batch"
            );
            let (_, last) = ids.expect("no close after the producer stopped");
            if let Some(f) = failing_first {
                assert!(
                    last < f,
                    "append {last} sent after the failure that stopped the producer"
                );
            }
        }
        if !self.in_flight.is_empty() && !self.k.ordered {
            assert!(
                self.acked_epochs.contains(&epoch),
                "pipelining before the epoch's first acknowledgement (unordered carrier)"
            );
        }
        match self.sent.get(&(epoch, seq)) {
            Some((b, c, _)) => {
                assert_eq!(b, &body, "a retry is byte-identical");
                assert_eq!(*c, close);
            }
            None => {
                if let Some(e) = self.terminal_epoch {
                    assert!(
                        epoch > e,
                        "a new batch sent after the failure that stopped the producer"
                    );
                }
                let next = self.next_seq.entry(epoch).or_insert(0);
                assert_eq!(seq, *next, "new sequence numbers come in order");
                *next += 1;
                self.sent.insert((epoch, seq), (body, close, ids));
                if let Some(r) = ids {
                    if let Some((&(e, _), prev)) = self.order.range(..(epoch, seq)).next_back() {
                        if e == epoch {
                            assert!(prev.1 < r.0, "sequence order is append order");
                        }
                    }
                    self.order.insert((epoch, seq), r);
                }
            }
        }
        assert!(
            self.in_flight.iter().all(|s| s.id != tx.id),
            "a reused request id"
        );
        self.in_flight.push(Sent {
            id: tx.id,
            epoch,
            seq,
            head: None,
        });
        assert!(
            self.in_flight.len() <= self.max_in_flight,
            "too many requests in flight"
        );
    }

    fn on_event(&mut self, ev: ProducerEvent) {
        crate::trace!("  <- {ev:?}");
        match ev {
            ProducerEvent::Acked { first, last, .. } => {
                self.on_range(first, last);
            }
            ProducerEvent::Failed {
                first, last, items, ..
            } => {
                self.on_range(first, last);
                let want = &self.payloads[first.0 as usize..=last.0 as usize];
                assert_eq!(items, want, "a failure hands back the payloads");
            }
            ProducerEvent::EpochClaimed { epoch } => {
                assert!(self.k.auto_claim);
                assert!(epoch > self.last_epoch && epoch <= MAX_SAFE_INTEGER);
                self.last_epoch = epoch;
            }
            ProducerEvent::Writable => {
                assert!(self.full_pending, "Writable without a Full");
                self.full_pending = false;
            }
            ProducerEvent::Closed { .. } | ProducerEvent::CloseFailed { .. } => {
                let at = self.close_at.expect("a close outcome without close()");
                assert!(!self.close_outcome, "two close outcomes");
                assert_eq!(self.reported, at, "the close outcome before its appends");
                self.close_outcome = true;
            }
            other => panic!("unknown event {other:?}"),
        }
    }

    fn on_range(&mut self, first: AppendId, last: AppendId) {
        assert!(
            !self.close_outcome,
            "an append reported after the close outcome"
        );
        assert_eq!(first.0, self.reported, "appends reported out of order");
        assert!(last >= first && last.0 < self.payloads.len() as u64);
        self.reported = last.0 + 1;
    }

    /// Drains transmits and events until neither comes, checking the state.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut more = false;
            while let Some(tx) = self.p.poll_transmit(self.now) {
                self.on_transmit(tx);
                more = true;
            }
            assert!(self.p.poll_cancel().is_none());
            while let Some(ev) = self.p.poll_event() {
                self.on_event(ev);
                more = true;
            }
            if !more {
                break;
            }
        }
        assert!(
            self.p.poll_transmit(self.now).is_none() && self.p.poll_event().is_none(),
            "no quiescence"
        );
        assert!(self.p.buffered_bytes() <= self.max_buffered);
        assert_eq!(self.p.in_flight(), self.in_flight.len());
        if let Some(t) = self.p.poll_timeout() {
            assert!(t >= self.now, "poll_timeout in the past");
        }
        match (&self.terminal, self.p.error()) {
            (None, Some(e)) => {
                self.terminal = Some(e.clone());
                // The epoch before this step: an auto-claim in the same step renumbers.
                self.terminal_epoch = Some(self.step_epoch);
                let global = matches!(
                    e.kind,
                    ErrorKind::Conflict(ConflictKind::Closed { .. })
                        | ErrorKind::NotFound
                        | ErrorKind::Gone
                        | ErrorKind::Fenced { .. }
                );
                // The batch whose answer stopped the producer (if this step finished one).
                let failing_first = self
                    .finished
                    .and_then(|k| self.sent.get(&k))
                    .map(|(_, _, ids)| ids.map_or(u64::MAX, |r| r.0));
                self.stopped = Some((global, failing_first));
            }
            (Some(t), e) => assert_eq!(Some(t), e, "the terminal error changed"),
            (None, None) => {}
        }
    }

    fn timeout(&mut self) {
        self.p.handle_timeout(self.now);
        if let Some(t) = self.p.poll_timeout() {
            assert!(t > self.now, "poll_timeout not after handle_timeout(now)");
        }
    }

    fn append(&mut self, size: u8, kind: u8) {
        let id = self.payloads.len() as u64;
        let (data, valid) = payload(id, size, kind, self.json);
        let before = self.p.buffered_bytes();
        match self.p.append(data.clone(), self.now) {
            Ok(got) => {
                assert_eq!(got, AppendId(id));
                assert!(valid && self.close_at.is_none() && self.terminal.is_none());
                assert!(data.len() <= self.max_buffered);
                self.payloads.push(data);
            }
            Err(AppendError::Full {
                data: back,
                buffered,
                limit,
            }) => {
                assert!(valid);
                assert_eq!(back, data);
                assert_eq!(limit, self.max_buffered);
                assert!(buffered + data.len() > limit);
                assert!(buffered <= before);
                self.full_pending = true;
            }
            Err(AppendError::Refused(_)) => {
                assert!(
                    !valid
                        || self.close_at.is_some()
                        || self.p.error().is_some()
                        || data.len() > self.max_buffered,
                    "a valid append refused"
                );
            }
            Err(e) => panic!("unknown append error {e:?}"),
        }
    }

    fn reply_parts(
        &self,
        s: &Sent,
        reply: &Reply,
    ) -> (u16, Vec<(HeaderName, HeaderValue)>, &'static str) {
        let next = hdr("stream-next-offset", &offset_token(s.seq + 1));
        let epoch = hdr("producer-epoch", &s.epoch.to_string());
        match reply {
            Reply::Stored => (
                200,
                vec![next, epoch, hdr("producer-seq", &s.seq.to_string())],
                "",
            ),
            Reply::Duplicate => (204, vec![epoch], ""),
            Reply::Gap { lag } => (
                409,
                vec![
                    hdr(
                        "producer-expected-seq",
                        &s.seq.saturating_sub(u64::from(*lag)).to_string(),
                    ),
                    hdr("producer-received-seq", &s.seq.to_string()),
                ],
                "",
            ),
            Reply::Fence { ahead } => (
                403,
                vec![hdr(
                    "producer-epoch",
                    &(s.epoch + u64::from(*ahead))
                        .min(MAX_SAFE_INTEGER)
                        .to_string(),
                )],
                "",
            ),
            Reply::StreamClosed => (409, vec![hdr("stream-closed", "true"), next], ""),
            Reply::Busy { status, secs } => (
                [429, 500, 503][usize::from(status % 3)],
                vec![hdr("retry-after", &(secs % 8).to_string())],
                "",
            ),
            Reply::Raw {
                status,
                headers,
                body,
            } => {
                let hs = headers
                    .iter()
                    .map(|h| match *h {
                        ReplyHeader::NextOffset(n) => {
                            hdr("stream-next-offset", &offset_token(u64::from(n)))
                        }
                        ReplyHeader::BadNextOffset => hdr("stream-next-offset", "a,b"),
                        ReplyHeader::Closed => hdr("stream-closed", "true"),
                        ReplyHeader::Epoch(n) => {
                            hdr("producer-epoch", &(s.epoch + u64::from(n)).to_string())
                        }
                        ReplyHeader::EpochTooBig => hdr("producer-epoch", "9007199254740992"),
                        ReplyHeader::Seq(n) => hdr("producer-seq", &n.to_string()),
                        ReplyHeader::ExpectedSeq(n) => hdr("producer-expected-seq", &n.to_string()),
                        ReplyHeader::ReceivedSeq(n) => hdr("producer-received-seq", &n.to_string()),
                        ReplyHeader::RetryAfter(n) => hdr("retry-after", &n.to_string()),
                        ReplyHeader::RetryAfterHuge => hdr("retry-after", "1e300"),
                    })
                    .collect();
                (status.code(), hs, BODIES[usize::from(body % 4)])
            }
        }
    }

    fn pick(&self, pick: u8) -> Option<usize> {
        (!self.in_flight.is_empty()).then(|| usize::from(pick) % self.in_flight.len())
    }

    fn head(&mut self, i: usize, reply: &Reply) {
        let s = self.in_flight[i].clone();
        let (status, hs, body) = self.reply_parts(&s, reply);
        self.p.handle_input(
            Input::Head {
                id: s.id,
                parts: parts(status, &hs),
            },
            self.now,
        );
        if self.in_flight[i].head.is_none() {
            self.in_flight[i].head = Some(status);
        }
        if !body.is_empty() {
            self.p.handle_input(
                Input::Body {
                    id: s.id,
                    chunk: Bytes::from_static(body.as_bytes()),
                },
                self.now,
            );
        }
    }

    /// The exchange `i` ends (cleanly or not).
    fn finish(&mut self, i: usize, input: Input) {
        let s = self.in_flight.remove(i);
        self.finished = Some((s.epoch, s.seq));
        if s.head.is_some_and(|st| (200..300).contains(&st)) {
            self.acked_epochs.insert(s.epoch);
        }
        self.p.handle_input(input, self.now);
    }

    fn step(&mut self, op: &ProducerOp) {
        self.step_epoch = self.p.epoch();
        self.finished = None;
        crate::trace!("{op:?} (in flight {:?})", self.in_flight);
        match op {
            ProducerOp::Append { size, kind } => self.append(*size, *kind),
            ProducerOp::Flush => self.p.flush(self.now),
            ProducerOp::Close => {
                let was = (self.close_at.is_some(), self.p.error().is_some());
                match self.p.close(self.now) {
                    Ok(()) => {
                        assert_eq!(was, (false, false));
                        self.close_at = Some(self.payloads.len() as u64);
                    }
                    Err(_) => assert!(was.0 || was.1, "close refused"),
                }
            }
            ProducerOp::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.timeout();
            }
            ProducerOp::ToTimeout => {
                if let Some(t) = self.p.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout();
            }
            ProducerOp::Reply { pick, reply } => {
                if let Some(i) = self.pick(*pick) {
                    self.head(i, reply);
                    let id = self.in_flight[i].id;
                    self.finish(i, Input::End { id });
                }
            }
            ProducerOp::Head { pick, reply } => {
                if let Some(i) = self.pick(*pick) {
                    self.head(i, reply);
                }
            }
            ProducerOp::Body { pick, len } => {
                if let Some(i) = self.pick(*pick) {
                    let text = BODIES[usize::from(len % 4)].repeat(usize::from(len / 4) + 1);
                    self.p.handle_input(
                        Input::Body {
                            id: self.in_flight[i].id,
                            chunk: Bytes::from(text),
                        },
                        self.now,
                    );
                }
            }
            ProducerOp::End { pick } => {
                if let Some(i) = self.pick(*pick) {
                    let id = self.in_flight[i].id;
                    self.finish(i, Input::End { id });
                }
            }
            ProducerOp::Fail { pick, kind } => {
                if let Some(i) = self.pick(*pick) {
                    let id = self.in_flight[i].id;
                    self.finish(
                        i,
                        Input::Failed {
                            id,
                            error: kind.error(),
                        },
                    );
                }
            }
            ProducerOp::Stray { id } => {
                let id = RequestId(u64::MAX - u64::from(*id));
                self.p.handle_input(Input::End { id }, self.now);
            }
        }
        self.settle();
    }

    /// Answers everything with 200 until the producer is idle.
    fn drain(&mut self) {
        self.p.flush(self.now);
        self.settle();
        for _ in 0..100_000 {
            if self.p.is_idle() && self.in_flight.is_empty() {
                break;
            }
            if !self.in_flight.is_empty() {
                self.step(&ProducerOp::Reply {
                    pick: 0,
                    reply: Reply::Stored,
                });
            } else if let Some(t) = self.p.poll_timeout() {
                self.now = self.now.max(t);
                self.timeout();
                self.settle();
            } else {
                panic!("stuck: not idle, nothing in flight, no timer: {:?}", self.p);
            }
        }
        assert!(
            self.p.is_idle() && self.in_flight.is_empty(),
            "not idle after the drain"
        );
        assert_eq!(
            self.reported,
            self.payloads.len() as u64,
            "every append reported exactly once"
        );
        if self.close_at.is_some() {
            assert!(self.close_outcome, "close() without an outcome");
        }
    }
}

/// The `producer_script` target: see the module documentation.
pub fn producer_script(data: &[u8]) {
    let Some(script) = script::decode::<ProducerScript>(data) else {
        return;
    };
    let Some(mut h) = Harness::new(script.knobs) else {
        return;
    };
    for op in script.ops.iter().take(2_000) {
        h.step(op);
    }
    h.drain();
}
