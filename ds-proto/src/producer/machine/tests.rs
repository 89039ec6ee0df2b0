//! Unit tests of the producer, without IO: a harness records transmits and feeds replies.
#![allow(clippy::disallowed_methods)] // tests take a real `Instant` as the clock's origin

use super::*;
use crate::error::{ConflictKind, ErrorKind};
use crate::io::{Input, RequestId, Transmit, TransportError, TransportErrorKind};
use crate::producer::DEFAULT_CONTENT_TYPE;
use crate::retry::RetryPolicy;
use crate::rng::Rng;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const URL: &str = "http://h/v1/stream/s";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> ProducerConfig {
    ProducerConfig {
        rng_seed: 7,
        ..ProducerConfig::new(URL, "p1")
    }
}

fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// What a transmit carried, for assertions.
#[derive(Debug, Clone)]
struct Sent {
    id: RequestId,
    epoch: u64,
    seq: u64,
    close: bool,
    body: Bytes,
    content_type: Option<String>,
    deadline: Option<Instant>,
}

impl Sent {
    fn from(t: Transmit) -> Sent {
        let h = t.request.headers();
        let num = |n: &str| h[n].to_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(h["producer-id"], "p1");
        assert_eq!(t.request.method(), http::Method::POST);
        assert_eq!(t.request.uri().to_string(), URL);
        Sent {
            id: t.id,
            epoch: num("producer-epoch"),
            seq: num("producer-seq"),
            close: h.get("stream-closed").is_some_and(|v| v == "true"),
            content_type: h
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: t.request.into_body(),
            deadline: t.deadline,
        }
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// A producer with a virtual clock, recording what it sends and reports.
struct Harness {
    p: Producer,
    now: Instant,
    events: Vec<ProducerEvent>,
}

impl Harness {
    fn new(config: ProducerConfig) -> Harness {
        let now = Instant::now();
        Harness {
            p: Producer::new(config, now).unwrap(),
            now,
            events: Vec::new(),
        }
    }

    fn append(&mut self, s: &str) -> AppendId {
        let id = self
            .p
            .append(Bytes::copy_from_slice(s.as_bytes()), self.now);
        id.unwrap_or_else(|e| panic!("append {s:?} refused: {e}"))
    }

    fn flush(&mut self) {
        self.p.flush(self.now);
    }

    fn try_append(&mut self, s: &str) -> Result<AppendId, AppendError> {
        self.p
            .append(Bytes::copy_from_slice(s.as_bytes()), self.now)
    }

    /// Every transmit the producer wants to send now (never more than `max_in_flight`: a
    /// producer that offers more fails the test instead of looping).
    fn pump(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        let limit = self.p.config().max_in_flight;
        while let Some(t) = self.p.poll_transmit(self.now) {
            out.push(Sent::from(t));
            assert!(
                out.len() <= limit,
                "more than max_in_flight ({limit}) requests"
            );
        }
        assert_eq!(self.p.poll_cancel(), None);
        out
    }

    fn one(&mut self) -> Sent {
        let mut v = self.pump();
        assert_eq!(v.len(), 1, "expected exactly one transmit: {v:?}");
        v.pop().unwrap()
    }

    fn reply(&mut self, id: RequestId, status: u16, headers: &[(&str, &str)], body: &str) {
        let now = self.now;
        self.p.handle_input(
            Input::Head {
                id,
                parts: parts(status, headers),
            },
            now,
        );
        if !body.is_empty() {
            let (a, b) = body.as_bytes().split_at(body.len() / 2);
            for chunk in [a, b] {
                let chunk = Bytes::copy_from_slice(chunk);
                self.p.handle_input(Input::Body { id, chunk }, now);
            }
        }
        self.p.handle_input(Input::End { id }, now);
    }

    fn ok(&mut self, s: &Sent, offset: &str) {
        let (e, q) = (s.epoch.to_string(), s.seq.to_string());
        self.reply(
            s.id,
            200,
            &[
                ("stream-next-offset", offset),
                ("producer-epoch", &e),
                ("producer-seq", &q),
            ],
            "",
        );
    }

    /// Sends "a" alone and acknowledges it (next offset 1): the epoch is established, so
    /// from now on up to `max_in_flight` batches may be outstanding.
    fn establish(&mut self) {
        self.append("a");
        self.flush();
        let first = self.one();
        self.ok(&first, "1");
    }

    fn gap(&mut self, s: &Sent, expected: u64) {
        let (e, r) = (expected.to_string(), s.seq.to_string());
        self.reply(
            s.id,
            409,
            &[("producer-expected-seq", &e), ("producer-received-seq", &r)],
            "Producer sequence gap",
        );
    }

    fn fail(&mut self, id: RequestId, kind: TransportErrorKind) {
        let error = TransportError::new(kind, "test");
        self.p.handle_input(Input::Failed { id, error }, self.now);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.p.handle_timeout(self.now);
    }

    /// Advances the clock to the producer's next timer.
    fn run_to_timeout(&mut self) {
        let t = self.p.poll_timeout().expect("a timer");
        assert!(t >= self.now, "timer in the past");
        self.now = t;
        self.p.handle_timeout(self.now);
    }

    fn events(&mut self) -> Vec<ProducerEvent> {
        while let Some(e) = self.p.poll_event() {
            self.events.push(e);
        }
        std::mem::take(&mut self.events)
    }
}

fn acked(first: u64, last: u64, offset: Option<&str>, duplicate: bool) -> ProducerEvent {
    ProducerEvent::Acked {
        first: AppendId(first),
        last: AppendId(last),
        next_offset: offset.map(|o| crate::Offset::parse(o).unwrap()),
        duplicate,
    }
}

/// `(first, last, items, reason)` of a `Failed` event.
fn failed(e: &ProducerEvent) -> (u64, u64, Vec<&[u8]>, &FailureReason) {
    match e {
        ProducerEvent::Failed {
            first,
            last,
            items,
            reason,
        } => (
            first.0,
            last.0,
            items.iter().map(|b| &b[..]).collect(),
            reason,
        ),
        other => panic!("expected Failed, got {other:?}"),
    }
}

// ----- configuration -----

#[test]
fn config_is_validated() {
    let now = Instant::now();
    let bad = |c: ProducerConfig| {
        let e = Producer::new(c, now).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{e}");
        // Whatever check refused it, the error names the producer's operation.
        assert_eq!(e.operation, crate::error::Operation::Append, "{e}");
    };
    bad(ProducerConfig::new(URL, ""));
    bad(ProducerConfig::new("not a url", "p"));
    bad(ProducerConfig::new(URL, "bad\nid"));
    bad(ProducerConfig {
        epoch: crate::headers::MAX_SAFE_INTEGER + 1,
        ..config()
    });
    bad(ProducerConfig {
        max_buffered_bytes: 10,
        max_batch_bytes: 11,
        ..config()
    });
    bad(ProducerConfig {
        max_in_flight: 0,
        ..config()
    });
    bad(ProducerConfig {
        max_batch_items: 0,
        ..config()
    });
    bad(ProducerConfig {
        content_type: String::new(),
        ..config()
    });
    bad(ProducerConfig {
        retry: RetryPolicy {
            max_attempts: Some(0),
            ..RetryPolicy::default()
        },
        ..config()
    });
    // 2^53-1 is the largest epoch the protocol allows, and allowed.
    let top = crate::headers::MAX_SAFE_INTEGER;
    let p = Producer::new(
        ProducerConfig {
            epoch: top,
            ..config()
        },
        now,
    )
    .unwrap();
    assert_eq!(p.epoch(), top);
    let p = Producer::new(config(), now).unwrap();
    assert_eq!(p.epoch(), 0);
    assert_eq!(p.next_seq(), 0);
    assert!(p.is_idle());
    assert_eq!(p.poll_timeout(), None);
}

// ----- sealing -----

#[test]
fn seals_on_linger() {
    let mut h = Harness::new(config());
    h.append("a");
    h.advance(ms(2));
    h.append("b");
    assert!(h.pump().is_empty());
    assert_eq!(
        h.p.poll_timeout(),
        Some(h.now + ms(3)),
        "linger from the first append"
    );
    h.advance(ms(2));
    assert!(h.pump().is_empty());
    let mark = h.p.snapshot_mark();
    h.advance(ms(1));
    // handle_timeout alone sealed it: the seq is taken, the mark moved (a driver persists a
    // snapshot before sending), no timer is left, and the batch waits to be sent.
    assert_eq!(h.p.next_seq(), 1);
    assert_ne!(h.p.snapshot_mark(), mark);
    assert_eq!(h.p.poll_timeout(), None);
    let s = h.one();
    assert_eq!((s.epoch, s.seq, s.text(), s.close), (0, 0, "ab", false));
    assert_eq!(s.content_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(h.p.next_seq(), 1);
}

#[test]
fn open_batch_grows_while_one_is_outstanding() {
    let mut h = Harness::new(config());
    h.append("a");
    h.advance(ms(5));
    let s0 = h.one();
    h.append("b");
    h.advance(ms(5));
    h.append("c");
    h.advance(ms(50));
    assert!(
        h.pump().is_empty(),
        "max_in_flight 1: the open batch keeps collecting"
    );
    assert_eq!(h.p.poll_timeout(), None, "no timer spins while waiting");
    h.ok(&s0, "0_1");
    let s1 = h.one();
    assert_eq!((s1.seq, s1.text()), (1, "bc"));
}

#[test]
fn seals_on_item_count() {
    let mut h = Harness::new(ProducerConfig {
        max_batch_items: 3,
        ..config()
    });
    h.append("a");
    h.append("b");
    assert!(h.pump().is_empty());
    h.append("c");
    let s = h.one();
    assert_eq!(s.text(), "abc");
}

#[test]
fn seals_on_bytes_and_large_appends_go_alone() {
    let mut h = Harness::new(ProducerConfig {
        max_batch_bytes: 10,
        max_in_flight: 4,
        ..config()
    });
    h.append("123456");
    h.append("abcdef"); // would make 12 > 10: the first batch is sealed alone
    h.append("0123456789ABCDEF"); // larger than a batch: alone
    h.append("xy");
    h.flush();
    // The epoch's first batch goes alone; then the rest pipeline.
    let s0 = h.one();
    assert_eq!(s0.text(), "123456");
    h.ok(&s0, "o1");
    let rest = h.pump();
    let bodies: Vec<&str> = rest.iter().map(Sent::text).collect();
    assert_eq!(bodies, ["abcdef", "0123456789ABCDEF", "xy"]);
    let seqs: Vec<u64> = rest.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn seals_exactly_at_max_batch_bytes() {
    let mut h = Harness::new(ProducerConfig {
        max_batch_bytes: 4,
        ..config()
    });
    h.append("ab");
    assert!(h.pump().is_empty());
    h.append("cd");
    assert_eq!(h.one().text(), "abcd");
}

#[test]
fn seals_on_flush() {
    let mut h = Harness::new(config());
    h.append("a");
    h.append("b");
    h.flush();
    assert_eq!(h.one().text(), "ab");
    h.flush(); // nothing open: nothing sealed
    assert_eq!(h.p.next_seq(), 1);
}

#[test]
fn seals_on_close() {
    let mut h = Harness::new(config());
    h.append("a");
    h.p.close(h.now).unwrap();
    let s = h.one();
    assert_eq!((s.seq, s.text(), s.close), (0, "a", true));
}

#[test]
fn zero_linger_seals_at_once() {
    let mut h = Harness::new(ProducerConfig {
        linger: Duration::ZERO,
        ..config()
    });
    h.append("a");
    // Sealed by the append itself: no linger timer is left for the driver to wait on.
    assert_eq!(h.p.poll_timeout(), None);
    assert_eq!(h.one().text(), "a");
}

#[test]
fn seq_numbering_and_headers() {
    let mut h = Harness::new(ProducerConfig {
        epoch: 4,
        request_deadline: Some(Duration::from_secs(3)),
        ..config()
    });
    for (i, s) in ["a", "b", "c"].iter().enumerate() {
        h.append(s);
        h.flush();
        let sent = h.one();
        assert_eq!((sent.epoch, sent.seq), (4, i as u64));
        assert_eq!(sent.deadline, Some(h.now + Duration::from_secs(3)));
        h.ok(&sent, &format!("o{i}"));
    }
    assert_eq!(
        h.events(),
        [
            acked(0, 0, Some("o0"), false),
            acked(1, 1, Some("o1"), false),
            acked(2, 2, Some("o2"), false)
        ]
    );
    assert!(h.p.is_idle());
}

// ----- JSON -----

#[test]
fn json_batches_are_one_array() {
    let mut h = Harness::new(ProducerConfig {
        content_type: "application/json".into(),
        ..config()
    });
    h.append(r#"{"a":1}"#);
    h.append("[1,2]");
    h.append(r#""x""#);
    for bad in ["{nope", "[]", " [ ] ", ""] {
        let e = h.try_append(bad).unwrap_err();
        assert!(
            matches!(e.error().unwrap().kind, ErrorKind::InvalidInput(_)),
            "{bad:?}: {e}"
        );
    }
    assert_eq!(h.p.next_append_id(), AppendId(3), "refusals take no id");
    h.flush();
    let s = h.one();
    assert_eq!(s.text(), r#"[{"a":1},[1,2],"x"]"#);
    assert_eq!(s.content_type.as_deref(), Some("application/json"));
    h.ok(&s, "1");
    assert_eq!(h.events(), [acked(0, 2, Some("1"), false)]);
}

#[test]
fn serialized_json_is_not_validated_again_but_still_framed_and_checked() {
    let mut h = Harness::new(ProducerConfig {
        content_type: "application/json".into(),
        ..config()
    });
    let now = h.now;
    h.p.append_serialized_json(Bytes::from_static(br#"{"a":1}"#), now)
        .unwrap();
    // Not validated: what the caller vouches for goes out as it is (the server judges it).
    h.p.append_serialized_json(Bytes::from_static(b"{nope"), now)
        .unwrap();
    for refused in ["[]", ""] {
        let e =
            h.p.append_serialized_json(Bytes::from(refused), now)
                .unwrap_err();
        assert!(
            matches!(e.error().unwrap().kind, ErrorKind::InvalidInput(_)),
            "{refused:?}: {e}"
        );
    }
    h.flush();
    let s = h.one();
    assert_eq!(s.text(), r#"[{"a":1},{nope]"#);
}

#[test]
fn json_batch_size_counts_the_framing() {
    let mut h = Harness::new(ProducerConfig {
        content_type: "application/json".into(),
        max_batch_bytes: 7, // `[1,2,3]`
        ..config()
    });
    h.append("1");
    h.append("2");
    assert!(h.pump().is_empty());
    h.append("3");
    assert_eq!(h.one().text(), "[1,2,3]");
}

// ----- statuses -----

#[test]
fn status_200_acks_and_204_is_a_duplicate_ack() {
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s = h.one();
    h.ok(&s, "0_1");
    h.append("b");
    h.flush();
    let s = h.one();
    h.reply(
        s.id,
        204,
        &[("producer-epoch", "0"), ("producer-seq", "1")],
        "",
    );
    assert_eq!(
        h.events(),
        [acked(0, 0, Some("0_1"), false), acked(1, 1, None, true)]
    );
}

#[test]
fn gap_reorder_recovery_with_three_in_flight() {
    let mut h = Harness::new(ProducerConfig {
        max_in_flight: 3,
        ..config()
    });
    h.append("a");
    h.flush();
    let s0 = h.one();
    h.append("b");
    h.flush();
    assert!(h.pump().is_empty(), "the epoch's first batch goes alone");
    h.ok(&s0, "1");
    h.append("c");
    h.flush();
    h.append("d");
    h.flush();
    assert_eq!(h.p.in_flight(), 0);
    let sent = h.pump();
    assert_eq!(sent.len(), 3);
    assert_eq!(h.p.in_flight(), 3);
    let (s1, s2, s3) = (sent[0].clone(), sent[1].clone(), sent[2].clone());
    assert_eq!((s1.seq, s2.seq, s3.seq), (1, 2, 3));
    // The server saw 3, then 2, then 1.
    h.gap(&s3, 1);
    h.gap(&s2, 1);
    assert_eq!(
        h.p.in_flight(),
        1,
        "answered exchanges are no longer in flight"
    );
    assert!(
        h.pump().is_empty(),
        "no re-send before earlier batches resolve"
    );
    h.ok(&s1, "2");
    let r2 = h.one();
    assert_eq!((r2.seq, &r2.body), (2, &s2.body), "byte-identical re-send");
    assert!(h.pump().is_empty(), "3 waits for 2");
    h.ok(&r2, "3");
    let r3 = h.one();
    assert_eq!((r3.seq, &r3.body), (3, &s3.body));
    h.ok(&r3, "4");
    assert_eq!(
        h.events(),
        [
            acked(0, 0, Some("1"), false),
            acked(1, 1, Some("2"), false),
            acked(2, 2, Some("3"), false),
            acked(3, 3, Some("4"), false)
        ]
    );
    assert!(h.p.is_idle());
}

/// A producer on an ordered carrier with 3 in flight, each of `items` appended and flushed as
/// its own batch, and what it sent at once.
fn ordered_batches(items: &[&str]) -> (Harness, Vec<Sent>) {
    let mut h = Harness::new(ProducerConfig {
        max_in_flight: 3,
        ..config()
    });
    h.p.set_ordered(true);
    for s in items {
        h.append(s);
        h.flush();
    }
    let sent = h.pump();
    (h, sent)
}

#[test]
fn on_an_ordered_carrier_an_epochs_first_batches_leave_together() {
    let (mut h, sent) = ordered_batches(&["a", "b", "c", "d"]);
    let seqs: Vec<u64> = sent.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [0, 1, 2], "no round trip before the pipeline fills");
    for (s, offset) in sent.iter().zip(["1", "2", "3"]) {
        h.ok(s, offset);
    }
    let last = h.one();
    assert_eq!((last.seq, last.text()), (3, "d"));
    h.ok(&last, "4");
    assert_eq!(
        h.events(),
        [
            acked(0, 0, Some("1"), false),
            acked(1, 1, Some("2"), false),
            acked(2, 2, Some("3"), false),
            acked(3, 3, Some("4"), false)
        ]
    );
}

#[test]
fn on_an_ordered_carrier_a_later_batch_refused_before_the_epoch_is_known_is_sent_again() {
    // seq 0 meets a 503 on the way; seq 1 and 2 reach a server that has not seen the epoch
    // (PROTOCOL.md 5.2.1: 400). They wait for seq 0 and go again, byte-identical.
    let (mut h, sent) = ordered_batches(&["a", "b", "c"]);
    assert_eq!(sent.len(), 3);
    h.reply(sent[0].id, 503, &[], "injected");
    let refused = "Producer epoch increase requires seq 0";
    h.reply(sent[1].id, 400, &[], refused);
    h.reply(sent[2].id, 400, &[], refused);
    assert!(h.events().is_empty(), "nothing failed");
    assert!(h.pump().is_empty(), "seq 0 backs off first");
    h.run_to_timeout();
    let r0 = h.one();
    assert_eq!((r0.seq, r0.text()), (0, "a"));
    h.ok(&r0, "1");
    let r1 = h.one();
    assert_eq!((r1.seq, &r1.body), (1, &sent[1].body));
    h.ok(&r1, "2");
    let r2 = h.one();
    assert_eq!((r2.seq, &r2.body), (2, &sent[2].body));
    h.ok(&r2, "3");
    assert_eq!(
        h.events(),
        [
            acked(0, 0, Some("1"), false),
            acked(1, 1, Some("2"), false),
            acked(2, 2, Some("3"), false)
        ]
    );
    // Once the epoch is known, a 400 is the batch's own fault, as always.
    h.append("d");
    h.flush();
    let s3 = h.one();
    h.reply(s3.id, 400, &[], "Invalid body");
    let ev = h.events();
    let (_, _, items, reason) = failed(&ev[0]);
    assert_eq!(items, [&b"d"[..]]);
    assert!(matches!(reason.kind(), ErrorKind::BadRequest { .. }));
}

#[test]
fn a_400_to_a_batch_sent_before_the_epoch_was_known_is_a_gap_even_if_answered_after() {
    // Falling back from the pipelined connection, batches of a new epoch may go on separate
    // connections: seq 1 reaches the server before seq 0 (400), but its answer arrives after
    // seq 0's acknowledgement. It was sent before the epoch was known: a gap, sent again.
    let (mut h, sent) = ordered_batches(&["a", "b"]);
    assert_eq!(sent.len(), 2);
    h.ok(&sent[0], "1");
    h.reply(
        sent[1].id,
        400,
        &[],
        "Producer epoch increase requires seq 0",
    );
    let again = h.one();
    assert_eq!((again.seq, &again.body), (1, &sent[1].body));
    h.ok(&again, "2");
    assert_eq!(
        h.events(),
        [acked(0, 0, Some("1"), false), acked(1, 1, Some("2"), false)]
    );
}

#[test]
fn a_400_once_the_epoch_is_known_fails_at_once_even_behind_a_batch_in_flight() {
    for ordered in [false, true] {
        let mut h = Harness::new(ProducerConfig {
            max_in_flight: 3,
            ..config()
        });
        h.p.set_ordered(ordered);
        h.establish();
        for s in ["b", "c"] {
            h.append(s);
            h.flush();
        }
        let sent = h.pump();
        assert_eq!(sent.len(), 2);
        h.ok(&sent[0], "2");
        h.reply(sent[1].id, 400, &[], "Invalid body");
        assert!(h.pump().is_empty(), "ordered {ordered}: not sent again");
        let ev = h.events();
        assert_eq!(ev.len(), 3, "ordered {ordered}: {ev:?}");
        assert!(matches!(
            failed(&ev[2]).3.kind(),
            ErrorKind::BadRequest { .. }
        ));
    }
}

#[test]
fn an_epochs_first_batch_refused_400_fails_at_once() {
    let (mut h, sent) = ordered_batches(&["a", "b"]);
    h.reply(sent[0].id, 400, &[], "Invalid body");
    h.reply(sent[1].id, 400, &[], "Invalid body");
    assert!(h.pump().is_empty(), "neither is sent again");
    let ev = h.events();
    assert!(matches!(
        failed(&ev[0]).3.kind(),
        ErrorKind::BadRequest { .. }
    ));
    assert!(h.p.error().is_some());
}

#[test]
fn unordered_an_epochs_first_batch_goes_alone_and_a_400_fails() {
    let mut h = Harness::new(ProducerConfig {
        max_in_flight: 3,
        ..config()
    });
    for s in ["a", "b"] {
        h.append(s);
        h.flush();
    }
    let s0 = h.one();
    h.ok(&s0, "1");
    let s1 = h.one();
    h.reply(s1.id, 400, &[], "Invalid body");
    let ev = h.events();
    assert_eq!(ev[0], acked(0, 0, Some("1"), false));
    assert!(matches!(
        failed(&ev[1]).3.kind(),
        ErrorKind::BadRequest { .. }
    ));
}

#[test]
fn persistent_gap_fails_instead_of_looping() {
    let mut h = Harness::new(config());
    h.establish();
    h.append("b");
    h.flush();
    let s1 = h.one();
    // The server lost our state: it expects 0 although 0 was acknowledged.
    h.gap(&s1, 0);
    let ev = h.events();
    assert_eq!(ev[0], acked(0, 0, Some("1"), false));
    let (first, last, items, reason) = failed(&ev[1]);
    assert_eq!((first, last, items), (1, 1, vec![&b"b"[..]]));
    assert!(matches!(
        reason,
        FailureReason::NotStored(e) if e.kind == ErrorKind::SequenceGap { expected: 0, received: 1 }
    ));
    assert!(h.p.error().is_some());
    assert!(h.try_append("c").is_err());
}

#[test]
fn acks_are_reported_in_append_order() {
    let mut h = Harness::new(ProducerConfig {
        max_in_flight: 3,
        ..config()
    });
    h.establish();
    h.events();
    for s in ["b", "c", "d"] {
        h.append(s);
        h.flush();
    }
    let sent = h.pump();
    assert_eq!(sent.len(), 3);
    // Answers arrive last first.
    h.ok(&sent[2], "4");
    assert!(h.events().is_empty());
    h.ok(&sent[1], "3");
    assert!(h.events().is_empty());
    h.ok(&sent[0], "2");
    assert_eq!(
        h.events(),
        [
            acked(1, 1, Some("2"), false),
            acked(2, 2, Some("3"), false),
            acked(3, 3, Some("4"), false)
        ]
    );
}

#[test]
fn fenced_without_auto_claim_fails_everything() {
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s0 = h.one();
    h.append("b");
    h.flush();
    h.append("c"); // still open
    h.reply(
        s0.id,
        403,
        &[("producer-epoch", "3")],
        "Stale producer epoch",
    );
    let fenced = ErrorKind::Fenced { server_epoch: 3 };
    let ev = h.events();
    assert_eq!(ev.len(), 3, "{ev:?}");
    for (i, e) in ev.iter().enumerate() {
        let (first, last, items, reason) = failed(e);
        assert_eq!((first, last), (i as u64, i as u64));
        assert_eq!(items.len(), 1);
        assert_eq!(reason.kind(), &fenced);
        assert!(!reason.is_indeterminate());
    }
    assert!(h.pump().is_empty());
    let e = h.try_append("d").unwrap_err();
    assert_eq!(e.error().unwrap().kind, fenced);
    assert_eq!(h.p.close(h.now).unwrap_err().kind, fenced);
    assert!(h.p.is_idle());
    assert_eq!(h.p.buffered_bytes(), 0);
}

#[test]
fn auto_claim_resends_safe_batches_at_next_epoch() {
    let mut h = Harness::new(ProducerConfig {
        auto_claim: true,
        max_in_flight: 2,
        ..config()
    });
    h.append("a");
    h.flush();
    let s0 = h.one();
    h.append("b");
    h.flush();
    h.reply(s0.id, 403, &[("producer-epoch", "5")], "");
    assert_eq!(h.events(), [ProducerEvent::EpochClaimed { epoch: 6 }]);
    assert_eq!(h.p.epoch(), 6);
    let r0 = h.one();
    assert_eq!((r0.epoch, r0.seq, r0.text()), (6, 0, "a"));
    h.ok(&r0, "1");
    let r1 = h.one();
    assert_eq!((r1.epoch, r1.seq, r1.text()), (6, 1, "b"));
    h.ok(&r1, "2");
    assert_eq!(
        h.events(),
        [acked(0, 0, Some("1"), false), acked(1, 1, Some("2"), false)]
    );
    assert_eq!(h.p.next_seq(), 2);
}

#[test]
fn auto_claim_waits_for_outstanding_answers() {
    let mut h = Harness::new(ProducerConfig {
        auto_claim: true,
        max_in_flight: 3,
        ..config()
    });
    h.establish();
    for s in ["b", "c", "d"] {
        h.append(s);
        h.flush();
    }
    let sent = h.pump();
    assert_eq!(sent.len(), 3);
    // Another writer claimed epoch 1 after our seq 1 was stored.
    h.reply(sent[1].id, 403, &[("producer-epoch", "1")], "");
    assert!(
        h.pump().is_empty(),
        "no switch while old-epoch answers are out"
    );
    h.ok(&sent[0], "2"); // stored before the fence
    h.reply(sent[2].id, 403, &[("producer-epoch", "1")], "");
    let ev = h.events();
    assert_eq!(
        ev,
        [
            acked(0, 0, Some("1"), false),
            acked(1, 1, Some("2"), false),
            ProducerEvent::EpochClaimed { epoch: 2 }
        ]
    );
    let r = h.one();
    assert_eq!((r.epoch, r.seq, r.text()), (2, 0, "c"));
    h.ok(&r, "3");
    let r = h.one();
    assert_eq!((r.epoch, r.seq, r.text()), (2, 1, "d"));
}

#[test]
fn auto_claim_never_resends_an_uncertain_batch() {
    let mut h = Harness::new(ProducerConfig {
        auto_claim: true,
        ..config()
    });
    h.append("a");
    h.flush();
    let s0 = h.one();
    h.append("b");
    h.flush();
    // The first attempt's outcome is unknown: it may be stored under epoch 0.
    h.fail(s0.id, TransportErrorKind::ConnectionReset);
    h.run_to_timeout();
    let r0 = h.one();
    assert_eq!((r0.epoch, r0.seq, &r0.body), (0, 0, &s0.body));
    h.reply(r0.id, 403, &[("producer-epoch", "1")], ""); // another writer claimed epoch 1
    let ev = h.events();
    assert_eq!(ev[0], ProducerEvent::EpochClaimed { epoch: 2 });
    let (first, last, items, reason) = failed(&ev[1]);
    assert_eq!((first, last, items), (0, 0, vec![&b"a"[..]]));
    match reason {
        FailureReason::Indeterminate { error, epoch, seq } => {
            assert_eq!((*epoch, *seq), (0, 0));
            assert_eq!(error.kind, ErrorKind::Fenced { server_epoch: 1 });
        }
        other => panic!("{other:?}"),
    }
    let r1 = h.one();
    assert_eq!((r1.epoch, r1.seq, r1.text()), (2, 0, "b"));
    h.ok(&r1, "9");
    assert_eq!(h.events(), [acked(1, 1, Some("9"), false)]);
    assert!(h.p.is_idle());
}

#[test]
fn auto_claim_resends_uncertain_batches_after_a_definitely_unstored_one() {
    let mut h = Harness::new(ProducerConfig {
        auto_claim: true,
        max_in_flight: 2,
        ..config()
    });
    h.establish();
    h.append("b");
    h.flush();
    h.append("c");
    h.flush();
    let sent = h.pump();
    // seq 2 is lost in transit (unknown), seq 1 is definitely refused: 2 cannot be stored.
    h.fail(sent[1].id, TransportErrorKind::Timeout);
    h.reply(sent[0].id, 403, &[("producer-epoch", "7")], "");
    let ev = h.events();
    assert_eq!(
        ev,
        [
            acked(0, 0, Some("1"), false),
            ProducerEvent::EpochClaimed { epoch: 8 }
        ]
    );
    let r = h.one();
    assert_eq!((r.epoch, r.seq, r.text()), (8, 0, "b"));
    h.ok(&r, "2");
    let r = h.one();
    assert_eq!((r.epoch, r.seq, r.text()), (8, 1, "c"));
}

#[test]
fn a_later_ack_proves_an_uncertain_batch_stored() {
    let mut h = Harness::new(ProducerConfig {
        max_in_flight: 2,
        ..config()
    });
    h.establish();
    h.append("b");
    h.flush();
    h.append("c");
    h.flush();
    let sent = h.pump();
    h.fail(sent[0].id, TransportErrorKind::ConnectionReset);
    h.ok(&sent[1], "3");
    assert_eq!(
        h.events(),
        [
            acked(0, 0, Some("1"), false),
            acked(1, 1, None, true),
            acked(2, 2, Some("3"), false)
        ]
    );
    assert!(h.pump().is_empty());
    assert_eq!(h.p.poll_timeout(), None, "no retry left");
    assert!(h.p.is_idle());
}

#[test]
fn closed_stream_fails_everything_pending() {
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s0 = h.one();
    h.append("b");
    assert!(!h.p.is_closed(), "not known closed before the answer");
    h.reply(
        s0.id,
        409,
        &[("stream-closed", "true"), ("stream-next-offset", "0_9")],
        "Stream is closed",
    );
    let closed = ErrorKind::Conflict(ConflictKind::Closed {
        final_offset: Some(crate::Offset::parse("0_9").unwrap()),
    });
    let ev = h.events();
    assert_eq!(ev.len(), 2);
    for e in &ev {
        assert_eq!(failed(e).3.kind(), &closed);
    }
    assert!(h.p.is_closed());
    assert!(h.try_append("c").unwrap_err().error().unwrap().is_closed());
}

#[test]
fn bad_request_and_too_large_fail_the_batch_and_stop() {
    for (status, kind) in [
        (
            400,
            ErrorKind::BadRequest {
                message: "Invalid JSON".into(),
            },
        ),
        (413, ErrorKind::PayloadTooLarge),
    ] {
        let mut h = Harness::new(ProducerConfig {
            max_in_flight: 2,
            ..config()
        });
        h.append("a");
        h.flush();
        let s0 = h.one();
        h.ok(&s0, "1");
        h.append("b");
        h.flush();
        h.append("c");
        h.flush();
        let sent = h.pump();
        assert_eq!(sent.len(), 2);
        h.reply(sent[0].id, status, &[], "Invalid JSON");
        let ev = h.events();
        assert_eq!(ev.len(), 2, "seq 2 is still out: {ev:?}");
        assert_eq!(ev[0], acked(0, 0, Some("1"), false));
        let (_, _, items, reason) = failed(&ev[1]);
        assert_eq!(items, [&b"b"[..]]);
        assert_eq!(
            reason,
            &FailureReason::NotStored(crate::Error::new(
                crate::Operation::Append,
                URL,
                kind.clone()
            ))
        );
        h.gap(&sent[1], 1);
        let ev = h.events();
        assert_eq!(ev.len(), 1);
        let (_, _, items, reason) = failed(&ev[0]);
        assert_eq!(items, [&b"c"[..]]);
        assert_eq!(reason.kind(), &kind, "later batches fail with the cause");
        assert_eq!(h.try_append("d").unwrap_err().error().unwrap().kind, kind);
        assert!(h.p.is_idle());
    }
}

#[test]
fn bad_request_message_is_bounded() {
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s = h.one();
    let long = "x".repeat(2000);
    h.reply(s.id, 400, &[], &long);
    let ev = h.events();
    match failed(&ev[0]).3.kind() {
        ErrorKind::BadRequest { message } => assert_eq!(message.len(), 512),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rate_limited_retries_no_sooner_than_retry_after() {
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s = h.one();
    h.reply(s.id, 429, &[("retry-after", "2")], "");
    let t = h.p.poll_timeout().unwrap();
    assert!(t >= h.now + Duration::from_secs(2));
    h.advance(Duration::from_millis(1999));
    assert!(h.pump().is_empty());
    h.run_to_timeout();
    let r = h.one();
    assert_eq!((r.epoch, r.seq, &r.body), (s.epoch, s.seq, &s.body));
    h.ok(&r, "1");
    assert_eq!(h.events(), [acked(0, 0, Some("1"), false)]);
}

#[test]
fn server_error_retries_byte_identical() {
    let mut h = Harness::new(ProducerConfig {
        content_type: "application/json".into(),
        ..config()
    });
    h.append(r#"{"k":"v"}"#);
    h.append("2");
    h.flush();
    let s = h.one();
    h.reply(s.id, 503, &[], "unavailable");
    assert!(h.pump().is_empty());
    h.run_to_timeout();
    let r = h.one();
    assert_eq!(
        (r.epoch, r.seq, &r.body, r.close),
        (s.epoch, s.seq, &s.body, s.close)
    );
    h.fail(r.id, TransportErrorKind::ConnectionReset);
    h.run_to_timeout();
    let r2 = h.one();
    assert_eq!(r2.body, s.body);
    assert_ne!(r2.id, r.id);
    h.reply(
        r2.id,
        204,
        &[("producer-epoch", "0"), ("producer-seq", "0")],
        "",
    );
    assert_eq!(h.events(), [acked(0, 1, None, true)]);
}

#[test]
fn an_unnamed_client_error_fails_the_batch_without_retrying() {
    // A 4xx the protocol gives no meaning to (a 403 without `Producer-Epoch` is an auth
    // layer's refusal, not a fence; 401, 418): sending the same request again gets the same
    // answer, so the batch fails as not stored, at once, and the producer stops.
    for status in [401, 403, 418] {
        let mut h = Harness::new(config());
        h.append("a");
        h.flush();
        let s = h.one();
        h.reply(s.id, status, &[], "no");
        let ev = h.events();
        assert_eq!(ev.len(), 1, "{status}: {ev:?}");
        let (first, last, items, reason) = failed(&ev[0]);
        assert_eq!((first, last, items), (0, 0, vec![&b"a"[..]]), "{status}");
        assert!(!reason.is_indeterminate(), "{status}: {reason}");
        assert!(
            matches!(reason.kind(), ErrorKind::UnexpectedStatus { status: st, .. } if *st == status),
            "{status}: {reason}"
        );
        assert_eq!(h.p.poll_timeout(), None, "{status}: no retry timer");
        assert!(h.pump().is_empty(), "{status}: not sent again");
        assert!(h.p.error().is_some(), "{status}: the producer stopped");
    }
}

#[test]
fn a_batch_sealed_by_linger_goes_out_beside_one_in_flight() {
    // Once the epoch is established, up to `max_in_flight` batches are outstanding: a batch
    // whose linger expires while another is in flight is sent at once, not after it.
    let mut h = Harness::new(ProducerConfig {
        max_in_flight: 2,
        linger: ms(10),
        ..config()
    });
    h.establish();
    h.append("b");
    h.flush();
    let s1 = h.one();
    h.append("c");
    assert!(h.pump().is_empty(), "lingering");
    h.run_to_timeout();
    let s2 = h.one();
    assert_eq!(
        (s2.seq, s2.text()),
        (2, "c"),
        "sent while seq 1 is in flight"
    );
    h.ok(&s1, "2");
    h.ok(&s2, "3");
    assert_eq!(
        h.events(),
        [
            acked(0, 0, Some("1"), false),
            acked(1, 1, Some("2"), false),
            acked(2, 2, Some("3"), false)
        ]
    );
}

#[test]
fn retry_exhaustion_fails_with_a_typed_error() {
    let retry = RetryPolicy {
        max_attempts: Some(2),
        ..RetryPolicy::default()
    };
    // 429s are definite refusals: not stored.
    let mut h = Harness::new(ProducerConfig {
        retry: retry.clone(),
        ..config()
    });
    h.append("a");
    h.flush();
    let s = h.one();
    h.reply(s.id, 429, &[], "");
    h.run_to_timeout();
    let s = h.one();
    h.append("b");
    h.reply(s.id, 429, &[("retry-after", "1")], "");
    let ev = h.events();
    assert_eq!(ev.len(), 2);
    let (_, _, items, reason) = failed(&ev[0]);
    assert_eq!(items, [&b"a"[..]]);
    assert!(matches!(
        reason,
        FailureReason::NotStored(e) if matches!(e.kind, ErrorKind::RateLimited { .. })
    ));
    assert_eq!(failed(&ev[1]).2, [&b"b"[..]], "the open batch fails too");
    assert!(h.p.is_idle());

    // A 5xx or a transport failure may have been applied: indeterminate.
    let mut h = Harness::new(ProducerConfig { retry, ..config() });
    h.append("a");
    h.flush();
    let s = h.one();
    h.fail(s.id, TransportErrorKind::Timeout);
    h.run_to_timeout();
    let s = h.one();
    h.reply(s.id, 503, &[], "");
    let ev = h.events();
    match failed(&ev[0]).3 {
        FailureReason::Indeterminate { error, epoch, seq } => {
            assert_eq!((*epoch, *seq), (0, 0));
            assert!(matches!(
                error.kind,
                ErrorKind::UnexpectedStatus { status: 503, .. }
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn connect_failures_are_definite() {
    let mut h = Harness::new(ProducerConfig {
        retry: RetryPolicy {
            max_attempts: Some(2),
            ..RetryPolicy::default()
        },
        ..config()
    });
    h.append("a");
    h.flush();
    for _ in 0..2 {
        let s = h.one();
        h.fail(s.id, TransportErrorKind::Connect);
        if let Some(t) = h.p.poll_timeout() {
            h.now = t;
        }
    }
    let ev = h.events();
    assert!(matches!(
        failed(&ev[0]).3,
        FailureReason::NotStored(e) if matches!(e.kind, ErrorKind::Transport(_))
    ));
}

#[test]
fn tls_failures_are_definite_and_not_retried() {
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s = h.one();
    h.fail(s.id, TransportErrorKind::Tls);
    let ev = h.events();
    assert!(matches!(
        failed(&ev[0]).3,
        FailureReason::NotStored(e)
            if matches!(&e.kind, ErrorKind::Transport(t) if t.kind == TransportErrorKind::Tls)
    ));
    assert!(h.p.poll_transmit(h.now).is_none(), "no retry");
    assert!(h.p.error().is_some(), "the producer stopped");
}

// ----- backpressure -----

#[test]
fn backpressure_refuses_without_taking_and_signals_writable() {
    let mut h = Harness::new(ProducerConfig {
        max_batch_bytes: 10,
        max_buffered_bytes: 10,
        ..config()
    });
    h.append("123456");
    h.flush();
    let s = h.one();
    let e = h.try_append("abcdef").unwrap_err();
    assert!(e.is_full());
    assert_eq!(
        &e.clone().into_data().unwrap()[..],
        b"abcdef",
        "handed back"
    );
    assert!(matches!(
        e,
        AppendError::Full {
            buffered: 6,
            limit: 10,
            ..
        }
    ));
    assert!(h.try_append("xyz").is_ok(), "a smaller one still fits");
    assert_eq!(h.p.buffered_bytes(), 9);
    assert!(h.try_append("abcdef").unwrap_err().is_full());
    assert!(h.events().is_empty());
    h.ok(&s, "1");
    assert_eq!(
        h.events(),
        [acked(0, 0, Some("1"), false), ProducerEvent::Writable]
    );
    assert_eq!(h.p.buffered_bytes(), 3);
    assert!(h.try_append("abcdef").is_ok());
    // Larger than the whole buffer: refused for good, not Full.
    let e = h.try_append(&"z".repeat(11)).unwrap_err();
    assert!(matches!(
        e.error().unwrap().kind,
        ErrorKind::InvalidInput(_)
    ));
}

#[test]
fn writable_after_close_or_stop() {
    let mut h = Harness::new(ProducerConfig {
        max_batch_bytes: 4,
        max_buffered_bytes: 4,
        ..config()
    });
    h.append("1234");
    assert!(h.try_append("5").unwrap_err().is_full());
    h.p.close(h.now).unwrap();
    assert_eq!(h.events(), [ProducerEvent::Writable]);
    assert!(!h.try_append("5").unwrap_err().is_full());
}

// ----- close -----

#[test]
fn close_without_pending_data_is_an_empty_close() {
    let mut h = Harness::new(config());
    h.establish();
    assert!(!h.p.is_closing(), "appends are still taken");
    h.p.close(h.now).unwrap();
    assert!(h.p.is_closing());
    let c = h.one();
    assert_eq!((c.seq, c.close, c.body.len()), (1, true, 0));
    assert_eq!(c.content_type, None);
    h.reply(
        c.id,
        204,
        &[("stream-next-offset", "1"), ("stream-closed", "true")],
        "",
    );
    assert_eq!(
        h.events(),
        [
            acked(0, 0, Some("1"), false),
            ProducerEvent::Closed {
                final_offset: Some(crate::Offset::parse("1").unwrap())
            }
        ]
    );
    assert!(h.p.is_closed());
    assert!(h.p.is_idle());
    assert!(h.try_append("b").is_err());
    assert!(h.p.close(h.now).is_err());
}

#[test]
fn close_with_pending_data_waits_for_earlier_batches() {
    let mut h = Harness::new(ProducerConfig {
        max_in_flight: 4,
        ..config()
    });
    h.establish();
    h.append("b");
    h.flush();
    h.append("c");
    h.p.close(h.now).unwrap();
    let s1 = h.one();
    assert_eq!((s1.seq, s1.text(), s1.close), (1, "b", false));
    assert!(
        h.pump().is_empty(),
        "the final batch goes after every other"
    );
    h.ok(&s1, "2");
    let c = h.one();
    assert_eq!((c.seq, c.text(), c.close), (2, "c", true));
    h.reply(
        c.id,
        200,
        &[("stream-next-offset", "3"), ("stream-closed", "true")],
        "",
    );
    let ev = h.events();
    assert_eq!(
        ev[1..],
        [
            acked(1, 1, Some("2"), false),
            acked(2, 2, Some("3"), false),
            ProducerEvent::Closed {
                final_offset: Some(crate::Offset::parse("3").unwrap())
            }
        ]
    );
}

#[test]
fn retried_close_deduplicated_is_a_success() {
    let mut h = Harness::new(config());
    h.append("a");
    h.p.close(h.now).unwrap();
    let c = h.one();
    h.fail(c.id, TransportErrorKind::ConnectionReset);
    h.run_to_timeout();
    let r = h.one();
    assert_eq!((r.seq, &r.body, r.close), (c.seq, &c.body, true));
    h.reply(
        r.id,
        204,
        &[
            ("stream-next-offset", "5"),
            ("stream-closed", "true"),
            ("producer-epoch", "0"),
            ("producer-seq", "0"),
        ],
        "",
    );
    assert_eq!(
        h.events(),
        [
            acked(0, 0, Some("5"), true),
            ProducerEvent::Closed {
                final_offset: Some(crate::Offset::parse("5").unwrap())
            }
        ]
    );
}

#[test]
fn empty_close_finding_the_stream_closed_by_another_writer_fails() {
    let mut h = Harness::new(config());
    h.p.close(h.now).unwrap();
    let c = h.one();
    assert_eq!((c.seq, c.close), (0, true));
    h.reply(
        c.id,
        409,
        &[("stream-closed", "true"), ("stream-next-offset", "7")],
        "",
    );
    let ev = h.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    let ProducerEvent::CloseFailed { reason } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(reason.error().is_closed(), "{reason:?}");
    assert_eq!(reason.error().operation, crate::Operation::Close);
    assert!(h.p.is_closed(), "the stream is known closed");
}

#[test]
fn empty_close_repeating_our_closing_tuple_succeeds() {
    let mut h = Harness::new(config());
    h.p.close(h.now).unwrap();
    let c = h.one();
    h.reply(
        c.id,
        204,
        &[("stream-closed", "true"), ("stream-next-offset", "7")],
        "",
    );
    assert_eq!(
        h.events(),
        [ProducerEvent::Closed {
            final_offset: Some(crate::Offset::parse("7").unwrap())
        }]
    );
}

#[test]
fn final_batch_refused_reports_close_failed() {
    let mut h = Harness::new(config());
    h.append("a");
    h.p.close(h.now).unwrap();
    let c = h.one();
    h.reply(c.id, 409, &[("stream-closed", "true")], "");
    let ev = h.events();
    assert_eq!(ev.len(), 2);
    assert!(failed(&ev[0]).3.error().is_closed());
    assert!(matches!(&ev[1], ProducerEvent::CloseFailed { reason } if reason.error().is_closed()));
}

// ----- robustness -----

#[test]
fn unknown_ids_and_spurious_timeouts_are_ignored() {
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s = h.one();
    h.reply(RequestId(999), 200, &[], "");
    h.fail(RequestId(998), TransportErrorKind::Other);
    h.advance(Duration::ZERO);
    h.advance(ms(1));
    assert!(h.events().is_empty());
    assert_eq!(h.p.in_flight(), 1);
    h.ok(&s, "1");
    // Late duplicates of a finished exchange are ignored too.
    h.reply(s.id, 500, &[], "");
    assert_eq!(h.events(), [acked(0, 0, Some("1"), false)]);
}

#[test]
fn failure_after_the_head_is_judged_by_the_head() {
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s = h.one();
    let now = h.now;
    h.p.handle_input(
        Input::Head {
            id: s.id,
            parts: parts(200, &[("stream-next-offset", "1")]),
        },
        now,
    );
    h.fail(s.id, TransportErrorKind::ConnectionReset);
    assert_eq!(h.events(), [acked(0, 0, Some("1"), false)]);
}

// ----- randomized: every append resolves exactly once, exactly-once on the server -----

/// A Durable Streams server's producer logic (PROTOCOL.md 5.2.1, closure as in the reference
/// server), storing appends `"<n>;"` as item numbers.
#[derive(Debug, Default)]
struct Model {
    log: Vec<u64>,
    producer: Option<(u64, u64)>,
    closed: bool,
    closed_by: Option<(u64, u64)>,
}

impl Model {
    fn serve(&mut self, req: &http::Request<Bytes>) -> (u16, Vec<(String, String)>) {
        let h = req.headers();
        let num = |n: &str| h[n].to_str().unwrap().parse::<u64>().unwrap();
        let (epoch, seq) = (num("producer-epoch"), num("producer-seq"));
        let close = h.get("stream-closed").is_some();
        let body = req.body();
        let offset = |len: usize| ("stream-next-offset".to_owned(), len.to_string());
        let closed_h = ("stream-closed".to_owned(), "true".to_owned());
        if self.closed {
            if self.closed_by == Some((epoch, seq)) {
                return (204, vec![offset(self.log.len()), closed_h]);
            }
            return (409, vec![offset(self.log.len()), closed_h]);
        }
        let verdict = match self.producer {
            None if seq != 0 => Err((409, 0)),
            None => Ok(()),
            Some((e, _)) if epoch < e => {
                return (403, vec![("producer-epoch".into(), e.to_string())]);
            }
            Some((e, _)) if epoch > e && seq != 0 => return (400, vec![]),
            Some((e, _)) if epoch > e => Ok(()),
            Some((_, last)) if seq <= last => return (204, vec![]),
            Some((_, last)) if seq == last + 1 => Ok(()),
            Some((_, last)) => Err((409, last + 1)),
        };
        if let Err((status, expected)) = verdict {
            return (
                status,
                vec![
                    ("producer-expected-seq".into(), expected.to_string()),
                    ("producer-received-seq".into(), seq.to_string()),
                ],
            );
        }
        if body.starts_with(b"[") {
            // JSON mode: one level of array flattened (PROTOCOL.md 9.1.2).
            let items: Vec<u64> = serde_json::from_slice(body).unwrap();
            self.log.extend(items);
        } else {
            for item in std::str::from_utf8(body).unwrap().split_terminator(';') {
                self.log.push(item.parse().unwrap());
            }
        }
        self.producer = Some((epoch, seq));
        let mut headers = vec![offset(self.log.len())];
        if close {
            self.closed = true;
            self.closed_by = Some((epoch, seq));
            headers.push(closed_h);
        }
        (if body.is_empty() { 204 } else { 200 }, headers)
    }
}

/// What a randomized run went through, to check the sweep covers every rule.
#[derive(Debug, Default)]
struct Coverage {
    gaps: u64,
    /// Later batches of an epoch the server did not know yet (`400`, ordered carriers).
    early: u64,
    claims: u64,
    indeterminate: u64,
    not_stored: u64,
    duplicates: u64,
    full: u64,
    closed: u64,
}

fn run_random(seed: u64, cov: &mut Coverage) {
    let mut rng = Rng::new(seed);
    let json = rng.chance(0.3);
    let payload_of = |n: u64| if json { n.to_string() } else { format!("{n};") };
    let config = ProducerConfig {
        rng_seed: seed,
        content_type: if json {
            "application/json".into()
        } else {
            DEFAULT_CONTENT_TYPE.into()
        },
        auto_claim: rng.chance(0.5),
        max_in_flight: 1 + rng.below(4) as usize,
        max_batch_items: 1 + rng.below(5) as usize,
        max_batch_bytes: 4 + rng.below(30) as usize,
        max_buffered_bytes: 40 + rng.below(60) as usize,
        linger: ms(rng.below(10)),
        retry: RetryPolicy {
            initial_delay: ms(10),
            max_delay: ms(200),
            max_attempts: Some(3 + rng.below(8) as u32),
            max_elapsed: None,
            ..RetryPolicy::default()
        },
        ..config()
    };
    let fault = rng.unit() * 0.5;
    let total = 20 + rng.below(60);
    let mut fences_left = rng.below(3);
    let mut h = Harness::new(config);
    // An ordered carrier (the writers' pipelined connection) delivers in the order sent; a
    // failed request does not stop the next one here, which is harsher than a connection.
    let ordered = rng.chance(0.5);
    h.p.set_ordered(ordered);
    let mut model = Model::default();
    let mut net: Vec<Transmit> = Vec::new();
    let mut appended = 0u64; // payload numbers offered
    let mut accepted: Vec<u64> = Vec::new(); // payload number by AppendId
    let mut closing = false;
    let mut close_accepted = false;
    let mut resolved_upto = 0u64;
    let mut acked = BTreeSet::new();
    let mut not_stored = BTreeSet::new();
    let mut close_outcomes = 0;
    let mut closed_ok = false;
    let ctx = |step: usize| format!("seed {seed}, step {step}");
    let trace = std::env::var("DS_PRODUCER_TRACE").is_ok();

    for step in 0..200_000 {
        let mut burst = 0;
        while let Some(t) = h.p.poll_transmit(h.now) {
            burst += 1;
            assert!(
                burst <= h.p.config().max_in_flight,
                "{}: more than max_in_flight requests",
                ctx(step)
            );
            if trace {
                let hd = t.request.headers();
                eprintln!(
                    "{step}: send {} epoch {:?} seq {:?} close {} body {:?}",
                    t.id,
                    hd["producer-epoch"],
                    hd["producer-seq"],
                    hd.get("stream-closed").is_some(),
                    t.request.body()
                );
            }
            net.push(t);
        }
        while let Some(e) = h.p.poll_event() {
            if trace {
                eprintln!("{step}: event {e:?}");
            }
            assert_eq!(
                close_outcomes,
                0,
                "{}: event after the close outcome",
                ctx(step)
            );
            match e {
                ProducerEvent::Acked {
                    first,
                    last,
                    duplicate,
                    ..
                } => {
                    cov.duplicates += u64::from(duplicate);
                    assert_eq!(first.0, resolved_upto, "{}: in order", ctx(step));
                    for id in first.0..=last.0 {
                        acked.insert(accepted[id as usize]);
                    }
                    resolved_upto = last.0 + 1;
                }
                ProducerEvent::Failed {
                    first,
                    last,
                    items,
                    reason,
                } => {
                    assert_eq!(first.0, resolved_upto, "{}: in order", ctx(step));
                    assert_eq!(items.len() as u64, last.0 - first.0 + 1);
                    // The model never loses state and we never skip seq 0 of an epoch.
                    assert!(
                        !matches!(
                            reason.kind(),
                            ErrorKind::SequenceGap { .. } | ErrorKind::BadRequest { .. }
                        ),
                        "{}: {reason}",
                        ctx(step)
                    );
                    for (k, id) in (first.0..=last.0).enumerate() {
                        let n = accepted[id as usize];
                        assert_eq!(items[k], payload_of(n).as_bytes(), "{}", ctx(step));
                        if reason.is_indeterminate() {
                            cov.indeterminate += 1;
                        } else {
                            cov.not_stored += 1;
                            not_stored.insert(n);
                        }
                    }
                    resolved_upto = last.0 + 1;
                }
                ProducerEvent::Closed { .. } => {
                    cov.closed += 1;
                    close_outcomes += 1;
                    closed_ok = true;
                }
                ProducerEvent::CloseFailed { .. } => close_outcomes += 1,
                ProducerEvent::EpochClaimed { .. } => cov.claims += 1,
                ProducerEvent::Writable => {}
            }
        }
        assert!(
            h.p.in_flight() <= h.p.config().max_in_flight,
            "{}",
            ctx(step)
        );
        assert!(h.p.buffered_bytes() <= h.p.config().max_buffered_bytes);
        let done_appending = appended >= total || h.p.error().is_some();
        if done_appending && !closing {
            closing = true;
            close_accepted = h.p.close(h.now).is_ok();
        }
        if closing && h.p.is_idle() && net.is_empty() {
            break;
        }
        assert!(step < 199_999, "{}: no progress", ctx(step));
        let r = rng.unit();
        if !done_appending && r < 0.3 {
            let payload = payload_of(appended);
            match h.p.append(Bytes::from(payload), h.now) {
                Ok(id) => {
                    assert_eq!(id.0, accepted.len() as u64);
                    accepted.push(appended);
                    appended += 1;
                }
                Err(AppendError::Full { .. }) => cov.full += 1,
                Err(e) => panic!("{}: refused: {e}", ctx(step)),
            }
        } else if r < 0.33 {
            h.p.flush(h.now);
        } else if r < 0.34 && fences_left > 0 {
            // Another writer claims a higher epoch: one we cannot be claiming right now (an
            // auto-claim takes at most the server's epoch + 1; two writers taking the same
            // epoch is the protocol's own hazard, "use with caution").
            fences_left -= 1;
            let e = model.producer.map_or(0, |(e, _)| e).max(h.p.epoch()) + 2 + rng.below(2);
            model.producer = Some((e, 0));
            if trace {
                eprintln!("{step}: fence to {e}");
            }
        } else if r < 0.8 && !net.is_empty() {
            let t = if ordered {
                net.remove(0)
            } else {
                let i = rng.below(net.len() as u64) as usize;
                net.swap_remove(i)
            };
            let id = t.id;
            let fail = |h: &mut Harness, kind| {
                let error = TransportError::new(kind, "injected");
                h.p.handle_input(Input::Failed { id, error }, h.now)
            };
            let x = rng.unit();
            if trace {
                eprintln!("{step}: deliver {id} x={x:.3} fault={fault:.3} model={model:?}");
            }
            if x < fault * 0.2 {
                fail(&mut h, TransportErrorKind::Connect);
            } else if x < fault * 0.4 {
                fail(&mut h, TransportErrorKind::ConnectionReset);
            } else if x < fault * 0.6 {
                let _ = model.serve(&t.request);
                fail(&mut h, TransportErrorKind::Timeout);
            } else if x < fault * 0.8 {
                h.reply(id, 503, &[], "injected");
            } else if x < fault * 0.9 {
                h.reply(id, 429, &[("retry-after", "0.05")], "");
            } else if x < fault {
                // The answer's head arrives, then the connection drops: the head decides.
                let (status, headers) = model.serve(&t.request);
                let mut b = http::Response::builder().status(status);
                for (k, v) in &headers {
                    b = b.header(k, v);
                }
                let parts = b.body(()).unwrap().into_parts().0;
                h.p.handle_input(Input::Head { id, parts }, h.now);
                fail(&mut h, TransportErrorKind::ConnectionReset);
            } else {
                let (status, headers) = model.serve(&t.request);
                cov.gaps += u64::from(status == 409 && !model.closed);
                cov.early += u64::from(status == 400);
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                h.reply(id, status, &headers, "");
            }
        } else {
            match h.p.poll_timeout() {
                Some(t) if rng.chance(0.7) => {
                    assert!(t >= h.now, "{}: timer in the past", ctx(step));
                    h.now = t;
                }
                _ => h.now += ms(1 + rng.below(20)),
            }
            h.p.handle_timeout(h.now);
        }
    }

    // Every accepted append resolved exactly once, in order.
    assert_eq!(resolved_upto, accepted.len() as u64, "seed {seed}");
    let expected = usize::from(close_accepted);
    assert_eq!(
        close_outcomes, expected,
        "seed {seed}: the close resolves once"
    );
    // Exactly once and in order on the server.
    let mut seen = BTreeSet::new();
    let mut prev = None;
    for &n in &model.log {
        assert!(
            seen.insert(n),
            "seed {seed}: {n} stored twice: {:?}",
            model.log
        );
        assert!(prev < Some(n), "seed {seed}: out of order: {:?}", model.log);
        prev = Some(n);
        assert!(
            !not_stored.contains(&n),
            "seed {seed}: {n} reported not stored"
        );
    }
    for n in &acked {
        assert!(seen.contains(n), "seed {seed}: acked {n} missing");
    }
    if closed_ok {
        assert!(model.closed, "seed {seed}");
    }
}

#[test]
fn randomized_exactly_once() {
    // `DS_PRODUCER_SWEEP=100000 cargo test -p ds-proto randomized` for a longer sweep; a failure
    // names its seed, and `DS_PRODUCER_SEED=<seed>` replays only it.
    let seeds = match std::env::var("DS_PRODUCER_SEED") {
        Ok(s) => {
            let seed = s.parse().expect("DS_PRODUCER_SEED is a number");
            seed..seed + 1
        }
        Err(_) => 0..std::env::var("DS_PRODUCER_SWEEP").map_or(400, |n| n.parse().unwrap()),
    };
    let single = seeds.end - seeds.start == 1;
    let mut cov = Coverage::default();
    for seed in seeds {
        run_random(seed, &mut cov);
    }
    if single {
        return;
    }
    // The sweep must exercise every rule, or it proves little.
    assert!(cov.gaps > 0, "{cov:?}");
    assert!(cov.early > 0, "{cov:?}");
    assert!(cov.claims > 0, "{cov:?}");
    assert!(cov.indeterminate > 0, "{cov:?}");
    assert!(cov.not_stored > 0, "{cov:?}");
    assert!(cov.duplicates > 0, "{cov:?}");
    assert!(cov.full > 0, "{cov:?}");
    assert!(cov.closed > 0, "{cov:?}");
    println!("{cov:?}");
}

#[test]
fn absurd_durations_are_refused_not_panicked_on() {
    let mut c = ProducerConfig::new("http://h/s", "p");
    c.linger = std::time::Duration::MAX;
    assert!(c.validate().is_err());
    let mut c = ProducerConfig::new("http://h/s", "p");
    c.request_deadline = Some(std::time::Duration::MAX);
    assert!(c.validate().is_err());
}

#[test]
fn a_stored_append_with_a_malformed_header_is_still_acknowledged() {
    // 200 and 204 say stored; a header the client cannot read does not undo that (failing it
    // would invite the application to append it again). 204 is a duplicate, 200 is not.
    let mut h = Harness::new(config());
    h.append("a");
    h.flush();
    let s = h.one();
    h.reply(s.id, 200, &[("stream-next-offset", "a/b")], "");
    h.append("b");
    h.flush();
    let s = h.one();
    h.reply(s.id, 204, &[("stream-next-offset", "a/b")], "");
    assert_eq!(
        h.events(),
        [acked(0, 0, None, false), acked(1, 1, None, true)]
    );
    // A close-only request answered 204 with a malformed header: closed.
    h.p.close(h.now).unwrap();
    let c = h.one();
    assert!(c.close);
    h.reply(c.id, 204, &[("stream-next-offset", "a/b")], "");
    assert!(h.p.is_closed());
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, ProducerEvent::Closed { .. })));
}

#[test]
fn not_found_and_gone_fail_earlier_batches_waiting_to_retry() {
    // 404 or 410 concerns the stream, not the batch: a batch waiting to be retried fails too
    // (with that error) instead of being sent to a stream that is not there.
    for (status, kind) in [(404, ErrorKind::NotFound), (410, ErrorKind::Gone)] {
        let mut h = Harness::new(ProducerConfig {
            max_in_flight: 2,
            ..config()
        });
        h.append("a");
        h.flush();
        let s0 = h.one();
        h.ok(&s0, "1");
        h.append("b");
        h.flush();
        h.append("c");
        h.flush();
        let sent = h.pump();
        assert_eq!(sent.len(), 2);
        h.reply(sent[0].id, 503, &[], "");
        h.reply(sent[1].id, status, &[], "");
        let ev = h.events();
        let failures: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                ProducerEvent::Failed { first, reason, .. } => Some((first.0, reason.kind())),
                _ => None,
            })
            .collect();
        assert_eq!(failures, [(1, &kind), (2, &kind)], "{status}: {ev:?}");
        h.advance(Duration::from_secs(60));
        assert!(h.pump().is_empty(), "{status}: nothing re-sent");
    }
}

#[test]
fn auto_claim_after_two_fences_takes_the_highest_epoch_plus_one() {
    // Two batches in flight are fenced by different epochs, in either order: the producer
    // claims one above the highest it saw, not one a third fence would refuse again.
    for (first, second) in [("3", "5"), ("5", "3")] {
        let mut h = Harness::new(ProducerConfig {
            auto_claim: true,
            max_in_flight: 2,
            ..config()
        });
        h.append("a");
        h.flush();
        let s0 = h.one();
        h.ok(&s0, "1");
        h.append("b");
        h.flush();
        h.append("c");
        h.flush();
        let sent = h.pump();
        assert_eq!(sent.len(), 2);
        h.reply(sent[0].id, 403, &[("producer-epoch", first)], "");
        h.reply(sent[1].id, 403, &[("producer-epoch", second)], "");
        assert_eq!(h.p.epoch(), 6, "fenced by {first} then {second}");
        let r = h.one();
        assert_eq!((r.epoch, r.seq), (6, 0));
    }
}
