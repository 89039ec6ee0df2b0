//! Unit tests of producer snapshots: taking, serializing, restoring, and the exactly-once
//! rules after a restore.
#![allow(clippy::disallowed_methods)] // tests take a real `Instant` as the clock's origin

use crate::error::ErrorKind;
use crate::io::{Input, RequestId};
use crate::producer::{
    AppendId, FailureReason, Producer, ProducerConfig, ProducerEvent, ProducerSnapshot,
    SnapshotBatchState,
};
use bytes::Bytes;
use std::time::{Duration, Instant};

const URL: &str = "http://h/v1/stream/s";

fn config() -> ProducerConfig {
    ProducerConfig {
        rng_seed: 3,
        linger: Duration::from_millis(10),
        max_batch_items: 2,
        max_in_flight: 2,
        ..ProducerConfig::new(URL, "p1")
    }
}

#[derive(Debug, Clone)]
struct Sent {
    id: RequestId,
    epoch: u64,
    seq: u64,
    close: bool,
    body: Bytes,
}

fn sent(t: crate::io::Transmit) -> Sent {
    let h = t.request.headers();
    let num = |n: &str| h[n].to_str().unwrap().parse::<u64>().unwrap();
    Sent {
        id: t.id,
        epoch: num("producer-epoch"),
        seq: num("producer-seq"),
        close: h.get("stream-closed").is_some_and(|v| v == "true"),
        body: t.request.into_body(),
    }
}

/// Every transmit the producer wants to send now (never more than `max_in_flight`: a
/// producer that offers more fails the test instead of looping).
fn pump(p: &mut Producer, now: Instant) -> Vec<Sent> {
    let limit = p.config().max_in_flight;
    let mut out = Vec::new();
    while let Some(t) = p.poll_transmit(now) {
        out.push(sent(t));
        assert!(
            out.len() <= limit,
            "more than max_in_flight ({limit}) requests"
        );
    }
    out
}

fn reply(p: &mut Producer, s: &Sent, status: u16, extra: &[(&str, &str)], now: Instant) {
    let mut b = http::Response::builder().status(status);
    if status < 300 {
        b = b.header("producer-epoch", s.epoch.to_string());
        if !extra.iter().any(|(k, _)| *k == "producer-seq") {
            b = b.header("producer-seq", s.seq.to_string());
        }
        if status == 200 {
            b = b.header("stream-next-offset", format!("0_{}", s.seq + 1));
        }
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let parts = b.body(()).unwrap().into_parts().0;
    p.handle_input(Input::Head { id: s.id, parts }, now);
    p.handle_input(Input::End { id: s.id }, now);
}

fn events(p: &mut Producer) -> Vec<ProducerEvent> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

fn append(p: &mut Producer, s: &str, now: Instant) -> AppendId {
    p.append(Bytes::copy_from_slice(s.as_bytes()), now)
        .unwrap_or_else(|e| panic!("append {s:?}: {e}"))
}

/// `(first, last, duplicate)` of the `Acked` events.
fn acks(events: &[ProducerEvent]) -> Vec<(u64, u64, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            ProducerEvent::Acked {
                first,
                last,
                duplicate,
                ..
            } => Some((first.0, last.0, *duplicate)),
            _ => None,
        })
        .collect()
}

/// A producer with seq 0 acknowledged, seq 1 and 2 in flight, seq 3 sealed and waiting, and
/// one append open. Returns it with what it sent.
fn busy_producer(now: Instant) -> (Producer, Vec<Sent>) {
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    append(&mut p, "b", now);
    let s0 = pump(&mut p, now);
    assert_eq!(s0.len(), 1);
    reply(&mut p, &s0[0], 200, &[], now);
    assert_eq!(acks(&events(&mut p)), [(0, 1, false)]);
    for s in ["c", "d", "e", "f", "g", "h", "i"] {
        append(&mut p, s, now);
    }
    let s12 = pump(&mut p, now);
    assert_eq!(
        s12.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [1, 2],
        "two in flight"
    );
    assert_eq!(p.next_seq(), 4, "seq 3 sealed, waiting");
    (p, s12)
}

#[test]
fn restore_resends_sealed_batches_byte_identical_then_continues() {
    let now = Instant::now();
    let (p, in_flight) = busy_producer(now);
    let snap = p.snapshot();
    assert_eq!(snap.format_version, ProducerSnapshot::FORMAT_VERSION);
    assert_eq!(
        snap.batches.iter().map(|b| b.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(snap.open, [Bytes::from_static(b"i")]);
    assert_eq!(snap.next_append_id, AppendId(9));
    assert_eq!(snap.first_unreported(), AppendId(2));
    let pending: Vec<u64> = snap.unresolved_appends().iter().map(|a| a.0 .0).collect();
    assert_eq!(pending, [2, 3, 4, 5, 6, 7, 8]);
    // The original producer is gone (a crash); another one continues from the snapshot.
    drop(p);
    let later = now + Duration::from_secs(1);
    let mut r = Producer::restore(snap, later).unwrap();
    assert_eq!((r.epoch(), r.next_seq()), (0, 4));
    assert_eq!(r.next_append_id(), AppendId(9));
    assert!(events(&mut r).is_empty());
    // The first restored batch goes alone, byte-identical, same epoch and seq.
    let s1 = pump(&mut r, later);
    assert_eq!(s1.len(), 1);
    assert_eq!((s1[0].epoch, s1[0].seq), (0, 1));
    assert_eq!(s1[0].body, in_flight[0].body);
    assert_eq!(&s1[0].body[..], b"cd");
    // The server had it: 204, a duplicate acknowledgement.
    reply(&mut r, &s1[0], 204, &[], later);
    assert_eq!(acks(&events(&mut r)), [(2, 3, true)]);
    let s23 = pump(&mut r, later);
    assert_eq!(s23.iter().map(|s| s.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(s23[0].body, in_flight[1].body);
    assert_eq!(&s23[1].body[..], b"gh");
    reply(&mut r, &s23[0], 204, &[], later);
    reply(&mut r, &s23[1], 200, &[], later);
    assert_eq!(acks(&events(&mut r)), [(4, 5, true), (6, 7, false)]);
    // The open batch continues: a new append joins it, and it is sealed with the next seq.
    assert_eq!(append(&mut r, "j", later), AppendId(9));
    let s4 = pump(&mut r, later);
    assert_eq!(s4.len(), 1);
    assert_eq!((s4[0].seq, &s4[0].body[..]), (4, &b"ij"[..]));
    reply(&mut r, &s4[0], 200, &[], later);
    assert_eq!(acks(&events(&mut r)), [(8, 9, false)]);
    assert!(r.is_idle());
}

#[test]
fn serde_json_round_trip() {
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let snap = p.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    assert!(json.contains("\"format_version\":1"), "{json}");
    // Bodies are base64 text.
    assert!(json.contains(&format!("\"{}\"", "Y2Q=")), "{json}");
    let back: ProducerSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    assert_eq!(ProducerSnapshot::from_json(&snap.to_json()).unwrap(), snap);
    // A restored producer's snapshot is the same state again (nothing sent yet).
    let r = Producer::restore(back, now).unwrap();
    let again = r.snapshot();
    assert_eq!(again.batches, snap.batches);
    assert_eq!(again.open, snap.open);
    assert_eq!(again.mark(), snap.mark());
}

#[test]
fn another_format_version_is_refused_with_a_typed_error() {
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let mut snap = p.snapshot();
    snap.format_version = 2;
    let e = Producer::restore(snap.clone(), now).unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::InvalidInput(m) if m.reason == crate::InputReason::Snapshot && m.message.contains("format_version 2")),
        "{e}"
    );
    // Through JSON: the version is checked before the shape, so a future format with other
    // fields is refused for its version, not misread or refused for a missing field.
    let e =
        ProducerSnapshot::from_json(br#"{"format_version":7,"producer":{"id":"x"}}"#).unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::InvalidInput(m) if m.reason == crate::InputReason::Snapshot && m.message.contains("format_version 7")),
        "{e}"
    );
    let e = ProducerSnapshot::from_json(&snap.to_json()).unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::InvalidInput(m) if m.reason == crate::InputReason::Snapshot && m.message.contains("format_version 2"))
    );
    let e = ProducerSnapshot::from_json(b"{}").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{e}");
    let e = ProducerSnapshot::from_json(b"not json").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{e}");
}

#[test]
fn taking_snapshots_never_changes_behaviour() {
    let start = Instant::now();
    let script = |snapshots: bool| {
        let mut now = start;
        let mut p = Producer::new(config(), now).unwrap();
        let mut log = Vec::new();
        for round in 0..20u64 {
            for k in 0..(round % 4) {
                append(&mut p, &format!("{round}-{k};"), now);
                if snapshots {
                    let _ = p.snapshot();
                }
            }
            let out = pump(&mut p, now);
            for (n, s) in out.iter().enumerate() {
                if snapshots {
                    let _ = p.snapshot();
                }
                let status = if (round + n as u64) % 5 == 0 {
                    503
                } else {
                    200
                };
                reply(&mut p, s, status, &[], now);
                log.push(format!("{} {} {:?} {}", s.epoch, s.seq, s.body, status));
            }
            if snapshots {
                let _ = p.snapshot_mark();
                let _ = p.snapshot();
            }
            log.extend(events(&mut p).iter().map(|e| format!("{e:?}")));
            now += Duration::from_millis(7);
            p.handle_timeout(now);
        }
        log
    };
    assert_eq!(script(true), script(false));
}

#[test]
fn reports_not_yet_drained_are_kept() {
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    append(&mut p, "b", now);
    let s0 = pump(&mut p, now);
    reply(&mut p, &s0[0], 200, &[], now);
    append(&mut p, "c", now);
    append(&mut p, "d", now);
    let s1 = pump(&mut p, now);
    // 413 stops the producer: seq 1 fails for good.
    reply(&mut p, &s1[0], 413, &[], now);
    assert!(p.error().is_some());
    // Nothing drained yet: the snapshot still holds both reports.
    let snap = ProducerSnapshot::from_json(&p.snapshot().to_json()).unwrap();
    assert_eq!(snap.first_unreported(), AppendId(0));
    let expected = events(&mut p);
    assert_eq!(expected.len(), 2);
    let mut r = Producer::restore(snap, now).unwrap();
    assert_eq!(events(&mut r), expected);
    // The restored producer is stopped as the original was.
    let e = r.append(Bytes::from_static(b"e"), now).unwrap_err();
    assert_eq!(e.error().unwrap().kind, ErrorKind::PayloadTooLarge);
    assert!(pump(&mut r, now).is_empty());
}

#[test]
fn a_stale_snapshot_is_detected_and_fails_indeterminate() {
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    let snap = p.snapshot(); // open batch [a], nothing sealed: mark (0, 0)
    p.flush(now);
    let s0 = pump(&mut p, now);
    assert_ne!(p.snapshot_mark(), snap.mark(), "sealing moved the mark");
    reply(&mut p, &s0[0], 200, &[], now);
    for (seq, item) in [(1, "b"), (2, "c")] {
        append(&mut p, item, now);
        p.flush(now);
        let s = pump(&mut p, now);
        assert_eq!(s[0].seq, seq);
        reply(&mut p, &s[0], 200, &[], now);
    }
    // The old instance sent seqs 0 to 2 after the snapshot, which was not renewed (against
    // the write-ahead rule); the server stored them. Then it crashed.
    drop(p);
    let mut r = Producer::restore(snap, now).unwrap();
    append(&mut r, "b", now); // the open batch [a, b] is full: sealed as seq 0
    append(&mut r, "c", now); // open
    let s = pump(&mut r, now);
    assert_eq!((s[0].seq, &s[0].body[..]), (0, &b"ab"[..]));
    // The server answers 204 with its highest seq, 2: a seq this producer never assigned.
    reply(&mut r, &s[0], 204, &[("producer-seq", "2")], now);
    let ev = events(&mut r);
    let failed: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            ProducerEvent::Failed {
                first,
                last,
                reason,
                ..
            } => Some((first.0, last.0, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "{ev:?}");
    assert_eq!((failed[0].0, failed[0].1), (0, 1));
    assert_eq!((failed[1].0, failed[1].1), (2, 2));
    for (_, _, reason) in &failed {
        assert!(reason.is_indeterminate(), "{reason}");
        assert_eq!(
            reason.kind(),
            &ErrorKind::StaleSnapshot { epoch: 0, seq: 2 }
        );
    }
    assert!(matches!(
        r.error().map(|e| &e.kind),
        Some(ErrorKind::StaleSnapshot { .. })
    ));
    assert!(r.append(Bytes::from_static(b"e"), now).is_err());
}

#[test]
fn a_duplicate_delivery_of_a_fresh_batch_is_not_taken_for_a_stale_snapshot() {
    // A network (or proxy) that delivers a request twice: the client may see the answer to
    // the second copy, a 204, for a batch it sent once. Its Producer-Seq is the batch's own.
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let mut r = Producer::restore(p.snapshot(), now).unwrap();
    let s1 = pump(&mut r, now);
    reply(&mut r, &s1[0], 200, &[], now);
    let s23 = pump(&mut r, now);
    reply(&mut r, &s23[0], 200, &[], now);
    reply(&mut r, &s23[1], 200, &[], now);
    r.flush(now);
    let s4 = pump(&mut r, now);
    assert_eq!(s4[0].seq, 4, "sealed after the restore");
    reply(&mut r, &s4[0], 204, &[], now);
    assert_eq!(
        acks(&events(&mut r)),
        [(2, 3, false), (4, 5, false), (6, 7, false), (8, 8, true)]
    );
    assert!(r.error().is_none());
}

#[test]
fn restored_batches_answered_by_their_own_resend_are_not_stale() {
    // A restored pending batch whose answer is lost, then re-sent: a 204 is its own.
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let mut r = Producer::restore(p.snapshot(), now).unwrap();
    let s1 = pump(&mut r, now);
    r.handle_input(
        Input::Failed {
            id: s1[0].id,
            error: crate::io::TransportError::new(
                crate::io::TransportErrorKind::ConnectionReset,
                "lost",
            ),
        },
        now,
    );
    let (later, again) = loop {
        let later = r.poll_timeout().unwrap();
        r.handle_timeout(later);
        let out = pump(&mut r, later);
        if !out.is_empty() {
            break (later, out);
        }
    };
    assert_eq!((again[0].seq, &again[0].body[..]), (1, &b"cd"[..]));
    reply(&mut r, &again[0], 204, &[], later);
    assert_eq!(acks(&events(&mut r)), [(2, 3, true)]);
    assert!(r.error().is_none());
}

#[test]
fn a_restored_batch_answered_with_a_later_seq_of_the_snapshot_is_not_stale() {
    // The old instance sent seqs 1 and 2 before the crash; the restored producer re-sends
    // seq 1, and the server answers `204` with its highest seq, 2: a seq the snapshot holds
    // (below its next seq), so a duplicate, not a sign of a stale snapshot.
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let mut r = Producer::restore(p.snapshot(), now).unwrap();
    let s1 = pump(&mut r, now);
    assert_eq!((s1.len(), s1[0].seq), (1, 1));
    reply(&mut r, &s1[0], 204, &[("producer-seq", "2")], now);
    assert_eq!(acks(&events(&mut r)), [(2, 3, true)]);
    assert!(r.error().is_none());
    let s23 = pump(&mut r, now);
    assert_eq!(s23.iter().map(|s| s.seq).collect::<Vec<_>>(), [2, 3]);
    reply(&mut r, &s23[0], 204, &[], now);
    reply(&mut r, &s23[1], 200, &[], now);
    assert_eq!(acks(&events(&mut r)), [(4, 5, true), (6, 7, false)]);
    assert!(r.error().is_none());
}

#[test]
fn unresolved_appends_of_the_open_batch_keep_their_ids() {
    let now = Instant::now();
    let mut p = Producer::new(
        ProducerConfig {
            max_batch_items: 100,
            ..config()
        },
        now,
    )
    .unwrap();
    append(&mut p, "x", now);
    p.flush(now);
    let s0 = pump(&mut p, now);
    reply(&mut p, &s0[0], 200, &[], now);
    for s in ["a", "b", "c"] {
        append(&mut p, s, now);
    }
    let snap = p.snapshot();
    assert_eq!(snap.open.len(), 3, "one open batch");
    assert_eq!(
        snap.first_unreported(),
        AppendId(0),
        "the ack is not drained"
    );
    let got: Vec<(u64, Bytes)> = snap
        .unresolved_appends()
        .into_iter()
        .map(|(id, b)| (id.0, b))
        .collect();
    assert_eq!(
        got,
        [
            (1, Bytes::from_static(b"a")),
            (2, Bytes::from_static(b"b")),
            (3, Bytes::from_static(b"c"))
        ]
    );
}

#[test]
fn a_close_only_batch_holds_no_append_to_report() {
    // `first_unreported` is the first append of the first batch that has appends: an empty
    // close-only request has none, whatever its `first` field says; restore ignores it too.
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    p.flush(now);
    let s0 = pump(&mut p, now);
    reply(&mut p, &s0[0], 200, &[], now);
    let _ = events(&mut p);
    p.close(now).unwrap();
    let mut snap = p.snapshot();
    assert_eq!(snap.batches.len(), 1);
    assert_eq!((snap.batches[0].count, snap.batches[0].close), (0, true));
    assert_eq!(snap.first_unreported(), AppendId(1));
    snap.batches[0].first = AppendId(0);
    assert_eq!(snap.first_unreported(), AppendId(1));
    let r = Producer::restore(snap, now).unwrap();
    assert_eq!(r.next_append_id(), AppendId(1));
}

#[test]
fn json_batches_restore_byte_identical() {
    let now = Instant::now();
    let cfg = ProducerConfig {
        content_type: "application/json".into(),
        ..config()
    };
    let mut p = Producer::new(cfg, now).unwrap();
    append(&mut p, r#"{"a":1}"#, now);
    append(&mut p, "[1,2]", now);
    let s0 = pump(&mut p, now);
    assert_eq!(&s0[0].body[..], br#"[{"a":1},[1,2]]"#);
    let snap = ProducerSnapshot::from_json(&p.snapshot().to_json()).unwrap();
    let items: Vec<Bytes> = snap
        .unresolved_appends()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(items, [&br#"{"a":1}"#[..], b"[1,2]"]);
    let mut r = Producer::restore(snap, now).unwrap();
    let s = pump(&mut r, now);
    assert_eq!(s[0].body, s0[0].body);
    // A failure hands back the payloads, cut from the restored body.
    reply(&mut r, &s[0], 400, &[], now);
    match &events(&mut r)[..] {
        [ProducerEvent::Failed { items, .. }] => {
            assert_eq!(items, &[&br#"{"a":1}"#[..], b"[1,2]"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn closing_producer_restores_its_final_batch() {
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    p.close(now).unwrap();
    let s = pump(&mut p, now);
    assert!(s[0].close);
    let snap = p.snapshot();
    assert!(snap.closing);
    let mut r = Producer::restore(snap, now).unwrap();
    assert!(r.is_closing());
    assert!(r.append(Bytes::from_static(b"x"), now).is_err());
    let s = pump(&mut r, now);
    assert_eq!((s[0].seq, s[0].close, &s[0].body[..]), (0, true, &b"a"[..]));
    reply(&mut r, &s[0], 204, &[("stream-closed", "true")], now);
    let ev = events(&mut r);
    assert_eq!(acks(&ev), [(0, 0, true)]);
    assert!(
        matches!(ev.last(), Some(ProducerEvent::Closed { .. })),
        "{ev:?}"
    );
    assert!(r.is_closed());

    // An empty close-only request.
    let mut p = Producer::new(config(), now).unwrap();
    p.close(now).unwrap();
    let s = pump(&mut p, now);
    let mut r = Producer::restore(p.snapshot(), now).unwrap();
    let again = pump(&mut r, now);
    assert_eq!((again[0].seq, again[0].close), (s[0].seq, true));
    assert!(again[0].body.is_empty());
}

#[test]
fn auto_claim_after_restore_never_resends_restored_batches_under_the_new_epoch() {
    let now = Instant::now();
    let cfg = ProducerConfig {
        auto_claim: true,
        ..config()
    };
    let mut p = Producer::new(cfg, now).unwrap();
    append(&mut p, "a", now);
    append(&mut p, "b", now); // seq 0, in flight at the snapshot
    let _ = pump(&mut p, now);
    append(&mut p, "c", now); // open
    let mut r = Producer::restore(p.snapshot(), now).unwrap();
    let s = pump(&mut r, now);
    assert_eq!(s[0].seq, 0);
    // Someone took epoch 3 meanwhile.
    reply(&mut r, &s[0], 403, &[("producer-epoch", "3")], now);
    let ev = events(&mut r);
    assert!(
        ev.contains(&ProducerEvent::EpochClaimed { epoch: 4 }),
        "{ev:?}"
    );
    match ev
        .iter()
        .find(|e| matches!(e, ProducerEvent::Failed { .. }))
    {
        Some(ProducerEvent::Failed {
            first,
            last,
            reason,
            ..
        }) => {
            assert_eq!((first.0, last.0), (0, 1));
            assert!(matches!(
                reason,
                FailureReason::Indeterminate {
                    epoch: 0,
                    seq: 0,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    // The open batch goes on under the new epoch.
    r.flush(now);
    let s = pump(&mut r, now);
    assert_eq!((s[0].epoch, s[0].seq, &s[0].body[..]), (4, 0, &b"c"[..]));
}

#[test]
fn the_mark_moves_when_a_batch_is_sealed() {
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    let m0 = p.snapshot_mark();
    append(&mut p, "a", now);
    assert_eq!(
        p.snapshot_mark(),
        m0,
        "an open batch is the journal's business"
    );
    append(&mut p, "b", now);
    assert_ne!(p.snapshot_mark(), m0, "sealed");
    assert_eq!(p.snapshot().mark(), p.snapshot_mark());
}

#[test]
fn inconsistent_snapshots_are_refused_without_panicking() {
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let good = p.snapshot();
    let refused = |snap: ProducerSnapshot, what: &str| {
        let e = Producer::restore(snap, now).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{what}: {e}");
    };
    let pending_mut = |s: &mut ProducerSnapshot, i: usize| -> (Bytes, Vec<u64>) {
        match &mut s.batches[i].state {
            SnapshotBatchState::Pending {
                body, item_lens, ..
            } => (body.clone(), item_lens.clone()),
            _ => unreachable!(),
        }
    };
    let set_pending = |s: &mut ProducerSnapshot, i: usize, b: Bytes, l: Vec<u64>| {
        if let SnapshotBatchState::Pending {
            body, item_lens, ..
        } = &mut s.batches[i].state
        {
            *body = b;
            *item_lens = l;
        }
    };
    let mut s = good.clone();
    let (body, _) = pending_mut(&mut s, 0);
    set_pending(&mut s, 0, body.clone(), vec![1, 5]);
    refused(s, "lengths past the body");
    let mut s = good.clone();
    set_pending(&mut s, 0, body.clone(), vec![1, 0]);
    refused(s, "an empty append");
    let mut s = good.clone();
    set_pending(&mut s, 0, body.clone(), vec![0, 2]);
    refused(s, "an empty append, the lengths adding up to the body");
    let mut s = good.clone();
    set_pending(&mut s, 0, Bytes::from_static(b"cdx"), vec![1, 1]);
    refused(s, "a body longer than its appends");
    let mut s = good.clone();
    s.batches.swap(0, 1);
    refused(s, "out of order");
    let mut s = good.clone();
    s.batches[1].seq = 9;
    refused(s, "seq at or past next_seq");
    let mut s = good.clone();
    s.batches[2].epoch = 1;
    refused(s, "another epoch");
    let mut s = good.clone();
    s.batches.remove(1);
    refused(s, "a hole in the append ids");
    let mut s = good.clone();
    s.next_append_id = AppendId(20);
    refused(s, "appends unaccounted for");
    let mut s = good.clone();
    s.open.push(Bytes::new());
    s.next_append_id = AppendId(10);
    refused(s, "an empty open append");
    let mut s = good.clone();
    s.epoch = u64::MAX;
    refused(s, "epoch too large");
    let mut s = good.clone();
    s.config.max_in_flight = 0;
    refused(s, "invalid config");
    let mut s = good;
    s.batches[0].count = 7;
    refused(s, "count and lengths differ");
}

#[test]
fn mangled_snapshots_never_panic() {
    // Whatever a corrupted file holds: refused with an error, or restored into a producer
    // that runs without panicking.
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let json = p.snapshot().to_json();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let mut rng = crate::rng::Rng::new(11);
    let numbers = [0u64, 1, 2, 3, 5, 9, 10, u64::MAX, 1 << 53];
    let mut restored = 0;
    for _ in 0..2000 {
        let mut v = value.clone();
        // Change one number somewhere in the tree (by JSON pointer).
        fn collect(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Number(_) => out.push(at),
                serde_json::Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, x)| collect(x, format!("{at}/{i}"), out)),
                serde_json::Value::Object(o) => o
                    .iter()
                    .for_each(|(k, x)| collect(x, format!("{at}/{k}"), out)),
                _ => {}
            }
        }
        let mut slots = Vec::new();
        collect(&v, String::new(), &mut slots);
        let slot = &slots[rng.below(slots.len() as u64) as usize];
        let n = numbers[rng.below(numbers.len() as u64) as usize];
        *v.pointer_mut(slot).unwrap() = serde_json::Value::from(n);
        let Ok(snap) = serde_json::from_value::<ProducerSnapshot>(v) else {
            continue;
        };
        let Ok(mut r) = Producer::restore(snap, now) else {
            continue;
        };
        restored += 1;
        let mut t = now;
        for _ in 0..20 {
            for s in pump(&mut r, t) {
                reply(&mut r, &s, 200, &[], t);
            }
            let _ = events(&mut r);
            let _ = r.append(Bytes::from_static(b"z"), t);
            t += Duration::from_millis(20);
            r.handle_timeout(t);
        }
    }
    assert!(restored > 0);
}

#[test]
fn the_schedule_hands_out_a_snapshot_first_then_before_new_batches_and_after_outcomes() {
    use crate::producer::SnapshotSchedule;
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    let mut schedule = SnapshotSchedule::new();
    assert!(schedule.due(&p, false).is_some(), "the first one");
    assert!(schedule.due(&p, false).is_none(), "nothing changed");
    p.append(Bytes::from_static(b"a"), now).unwrap();
    assert!(
        schedule.due(&p, false).is_none(),
        "the open batch is the application's"
    );
    p.flush(now);
    let before_send = schedule
        .due(&p, false)
        .expect("a sealed batch not held yet");
    assert_eq!(before_send.batches.len(), 1);
    let t = p.poll_transmit(now).unwrap();
    assert!(schedule.due(&p, false).is_none());
    let head = http::Response::builder()
        .status(200)
        .header("stream-next-offset", "1")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    p.handle_input(
        Input::Head {
            id: t.id,
            parts: head,
        },
        now,
    );
    p.handle_input(Input::End { id: t.id }, now);
    let acked = p.poll_event().unwrap();
    assert!(acked.changes_snapshot(), "{acked:?}");
    assert!(!ProducerEvent::Writable.changes_snapshot());
    let after = schedule
        .due(&p, acked.changes_snapshot())
        .expect("after an outcome");
    assert!(after
        .batches
        .iter()
        .all(|b| !matches!(b.state, SnapshotBatchState::Pending { .. })));
}

#[test]
fn a_stale_snapshot_is_detected_after_a_new_batch_took_the_next_seq() {
    // The snapshot holds seq 0 (sent, unanswered) and next seq 1. The old instance then
    // stored seqs 1 and 2 (against the write-ahead rule) and crashed.
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    append(&mut p, "b", now); // full: sealed as seq 0
    let s0 = pump(&mut p, now);
    assert_eq!(s0[0].seq, 0);
    let snap = p.snapshot();
    assert_eq!(snap.next_seq, 1);
    drop(p);
    let mut r = Producer::restore(snap, now).unwrap();
    let resent = pump(&mut r, now);
    assert_eq!(resent.len(), 1);
    // A new append, sealed as seq 1 while the restored batch is outstanding: the restored
    // producer's next seq is now 2.
    append(&mut r, "c", now);
    r.flush(now);
    assert_eq!(r.next_seq(), 2);
    assert!(
        pump(&mut r, now).is_empty(),
        "the first batch of the epoch goes alone"
    );
    // The server holds seq 1 (from the lost instance): its answer to the re-sent seq 0 is a
    // 204 with Producer-Seq 1, a seq this producer sealed but never sent. Seq 1 on the
    // server holds other appends than ours: acknowledging "c" under it would report an
    // append acknowledged that was never stored.
    reply(&mut r, &resent[0], 204, &[("producer-seq", "1")], now);
    let ev = events(&mut r);
    assert!(
        ev.iter().all(|e| !matches!(e, ProducerEvent::Acked { .. })),
        "{ev:?}"
    );
    assert!(
        matches!(
            r.error().map(|e| &e.kind),
            Some(ErrorKind::StaleSnapshot { epoch: 0, seq: 1 })
        ),
        "{:?}",
        r.error()
    );
    assert!(pump(&mut r, now).is_empty(), "seq 1 is never sent");
}

#[test]
fn a_pipelined_new_batch_the_server_stored_is_not_taken_for_a_stale_snapshot() {
    // After restore, once the epoch is established, a new batch may be in flight together
    // with a re-sent one; the server's highest seq may then be that new batch's own.
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    append(&mut p, "b", now); // seq 0
    let s0 = pump(&mut p, now);
    reply(&mut p, &s0[0], 200, &[], now); // epoch established
    append(&mut p, "c", now);
    append(&mut p, "d", now); // seq 1
    let s1 = pump(&mut p, now);
    assert_eq!(s1[0].seq, 1);
    let snap = p.snapshot();
    drop(p);
    let mut r = Producer::restore(snap, now).unwrap();
    let resent = pump(&mut r, now);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].seq, 1);
    reply(&mut r, &resent[0], 204, &[], now); // ours: the lost instance stored it
    append(&mut r, "e", now);
    append(&mut r, "f", now); // seq 2
    append(&mut r, "g", now);
    append(&mut r, "h", now); // seq 3
    let s23 = pump(&mut r, now);
    assert_eq!(s23.iter().map(|s| s.seq).collect::<Vec<_>>(), [2, 3]);
    // Seq 3 is answered first (stored); then a duplicate delivery of seq 2 gets a 204 whose
    // Producer-Seq is the server's highest, 3: one this producer sent itself.
    reply(&mut r, &s23[1], 200, &[], now);
    reply(&mut r, &s23[0], 204, &[("producer-seq", "3")], now);
    assert!(r.error().is_none(), "{:?}", r.error());
}

#[test]
fn a_restored_producer_times_every_retry_even_behind_a_resolved_batch() {
    // Snapshot: seqs 1 and 2 in flight, 3 acknowledged (waiting for them), 4 sealed.
    let now = Instant::now();
    let mut p = Producer::new(
        ProducerConfig {
            max_in_flight: 4,
            ..config()
        },
        now,
    )
    .unwrap();
    append(&mut p, "a", now);
    append(&mut p, "b", now);
    let s0 = pump(&mut p, now);
    reply(&mut p, &s0[0], 200, &[], now);
    assert_eq!(acks(&events(&mut p)), [(0, 1, false)]);
    for s in ["c", "d", "e", "f", "g", "h", "i", "j"] {
        append(&mut p, s, now);
    }
    let s = pump(&mut p, now);
    assert_eq!(s.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    reply(&mut p, &s[2], 200, &[], now);
    let snap = p.snapshot();
    assert_eq!(
        snap.batches
            .iter()
            .map(|b| (b.seq, matches!(b.state, SnapshotBatchState::Pending { .. })))
            .collect::<Vec<_>>(),
        [(1, true), (2, true), (3, false), (4, true)]
    );
    drop(p);
    let mut r = Producer::restore(snap, now).unwrap();
    let s1 = pump(&mut r, now);
    assert_eq!(s1.len(), 1, "the first alone");
    reply(&mut r, &s1[0], 204, &[], now);
    let s24 = pump(&mut r, now);
    assert_eq!(s24.iter().map(|s| s.seq).collect::<Vec<_>>(), [2, 4]);
    // Both are refused for now; the server asks for 10 s before seq 2, 1 s before seq 4.
    reply(&mut r, &s24[0], 503, &[("retry-after", "10")], now);
    reply(&mut r, &s24[1], 503, &[("retry-after", "1")], now);
    assert_eq!(
        r.poll_timeout(),
        Some(now + Duration::from_secs(1)),
        "the earliest retry, behind the acknowledged seq 3"
    );
    let later = now + Duration::from_secs(10);
    r.handle_timeout(later);
    let again = pump(&mut r, later);
    assert_eq!(again.iter().map(|s| s.seq).collect::<Vec<_>>(), [2, 4]);
}

#[test]
fn a_snapshot_with_durations_of_exactly_ten_years_restores() {
    // Ten years is the longest duration a configuration may hold, inclusive, whether it
    // comes to `Producer::new` or in a snapshot.
    let now = Instant::now();
    let ten_years = crate::retry::MAX_DURATION;
    let config = ProducerConfig {
        linger: ten_years,
        request_deadline: Some(ten_years),
        retry: crate::retry::RetryPolicy {
            max_delay: ten_years,
            max_elapsed: Some(ten_years),
            ..crate::retry::RetryPolicy::default()
        },
        ..config()
    };
    let p = Producer::new(config, now).unwrap();
    let r = Producer::restore(p.snapshot(), now).unwrap();
    assert_eq!(r.config().request_deadline, Some(ten_years));
    assert_eq!(r.config().linger, ten_years);
    let mut snap = p.snapshot();
    snap.config.request_deadline = Some(ten_years + Duration::from_nanos(1));
    assert!(matches!(
        Producer::restore(snap, now).unwrap_err().kind,
        ErrorKind::InvalidInput(_)
    ));
}

/// A deserializer of a binary format that hands out bytes (as bincode or postcard do): owned
/// (`visit_byte_buf`) or borrowed (`visit_bytes`).
struct BinaryBytes(Vec<u8>, bool);

impl<'de> serde::Deserializer<'de> for BinaryBytes {
    type Error = serde::de::value::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        if self.1 {
            v.visit_byte_buf(self.0)
        } else {
            v.visit_bytes(&self.0)
        }
    }
    fn is_human_readable(&self) -> bool {
        false
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

#[test]
fn bodies_from_a_binary_format_are_kept_byte_for_byte() {
    for owned in [true, false] {
        let body = super::b64::deserialize(BinaryBytes(b"[1,2]\x00\xff".to_vec(), owned)).unwrap();
        assert_eq!(&body[..], b"[1,2]\x00\xff", "owned: {owned}");
    }
}

#[test]
fn an_open_batch_after_close_is_refused() {
    let now = Instant::now();
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    let mut snap = p.snapshot();
    assert_eq!(snap.open.len(), 1);
    snap.closing = true;
    let err = Producer::restore(snap, now).unwrap_err();
    assert!(
        matches!(&err.kind, ErrorKind::InvalidInput(m) if m.message.contains("open batch after close")),
        "{err}"
    );
}

#[test]
fn epoch_and_seq_bounds_of_a_snapshot_are_exactly_two_to_the_53_minus_1() {
    const MAX: u64 = (1 << 53) - 1;
    let now = Instant::now();
    let p = Producer::new(config(), now).unwrap();
    let good = p.snapshot();
    let at = |epoch: u64, next_seq: u64| {
        let mut s = good.clone();
        s.epoch = epoch;
        s.next_seq = next_seq;
        Producer::restore(s, now)
    };
    let r = at(MAX, MAX).unwrap();
    assert_eq!((r.epoch(), r.next_seq()), (MAX, MAX));
    for (epoch, next_seq) in [(MAX + 1, 0), (0, MAX + 1), (MAX + 1, MAX + 1)] {
        let e = at(epoch, next_seq).unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::InvalidInput(_)),
            "epoch {epoch}, next_seq {next_seq}: {e}"
        );
    }
}

#[test]
fn a_snapshot_claim_must_name_a_later_epoch_up_to_two_to_the_53_minus_1() {
    const MAX: u64 = (1 << 53) - 1;
    let now = Instant::now();
    let p = Producer::new(config(), now).unwrap();
    let mut good = p.snapshot();
    // Any typed error serves as the fence the claim answers.
    let mut s = good.clone();
    s.epoch = u64::MAX;
    let fence = Producer::restore(s, now).unwrap_err();
    good.epoch = 5;
    let with_claim = |epoch: u64| {
        let mut s = good.clone();
        s.claim = Some(crate::producer::SnapshotClaim {
            epoch,
            fence: fence.clone(),
        });
        Producer::restore(s, now)
    };
    for epoch in [6, MAX] {
        assert!(with_claim(epoch).is_ok(), "claim of epoch {epoch} from 5");
    }
    for epoch in [0, 4, 5, MAX + 1, u64::MAX] {
        let e = with_claim(epoch).unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::InvalidInput(_)),
            "claim of epoch {epoch} from 5: {e}"
        );
    }
}

/// A producer that appended "a" and closed, its final batch acknowledged (`Stream-Closed`);
/// its reports not drained.
fn closed_producer(now: Instant) -> Producer {
    let mut p = Producer::new(config(), now).unwrap();
    append(&mut p, "a", now);
    p.close(now).unwrap();
    let s = pump(&mut p, now);
    reply(&mut p, &s[0], 200, &[("stream-closed", "true")], now);
    p
}

#[test]
fn undrained_close_outcomes_survive_a_restore() {
    let now = Instant::now();
    // Closed: the final batch was acknowledged, the report not drained yet.
    let mut p = closed_producer(now);
    let snap = ProducerSnapshot::from_json(&p.snapshot().to_json()).unwrap();
    let expected = events(&mut p);
    assert!(
        matches!(
            expected.last(),
            Some(ProducerEvent::Closed {
                final_offset: Some(_)
            })
        ),
        "{expected:?}"
    );
    let mut r = Producer::restore(snap, now).unwrap();
    assert_eq!(events(&mut r), expected);

    // CloseFailed: an empty close found the stream closed by another writer.
    let mut p = Producer::new(config(), now).unwrap();
    p.close(now).unwrap();
    let s = pump(&mut p, now);
    reply(
        &mut p,
        &s[0],
        409,
        &[("stream-closed", "true"), ("stream-next-offset", "7")],
        now,
    );
    let snap = ProducerSnapshot::from_json(&p.snapshot().to_json()).unwrap();
    let expected = events(&mut p);
    assert!(
        matches!(expected.last(), Some(ProducerEvent::CloseFailed { .. })),
        "{expected:?}"
    );
    let mut r = Producer::restore(snap, now).unwrap();
    assert_eq!(events(&mut r), expected);
}

#[test]
fn an_undrained_indeterminate_failure_keeps_its_epoch_and_seq_in_the_snapshot() {
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let mut snap = p.snapshot();
    snap.epoch = 5;
    for b in &mut snap.batches {
        b.epoch = 5;
    }
    // Restored batches may have been stored: a fatal answer fails them indeterminate.
    let mut r = Producer::restore(snap, now).unwrap();
    let s = pump(&mut r, now);
    assert_eq!((s[0].epoch, s[0].seq), (5, 1));
    reply(&mut r, &s[0], 413, &[], now);
    let snap = r.snapshot();
    let failed = snap
        .batches
        .iter()
        .find(|b| matches!(b.state, SnapshotBatchState::Failed { .. }))
        .expect("the report of seq 1 waits in poll_event");
    let SnapshotBatchState::Failed {
        reason: FailureReason::Indeterminate { epoch, seq, .. },
        ..
    } = &failed.state
    else {
        panic!("{failed:?}")
    };
    assert_eq!((*epoch, *seq), (5, 1));
    assert_eq!((failed.epoch, failed.seq), (5, 1), "{failed:?}");
}

#[test]
fn a_batch_of_no_appends_that_does_not_close_is_refused() {
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let mut s = p.snapshot();
    let mut empty = s.batches[0].clone();
    empty.count = 0;
    empty.close = false;
    empty.state = SnapshotBatchState::Acked {
        next_offset: None,
        duplicate: false,
    };
    s.batches.insert(0, empty);
    let e = Producer::restore(s, now).unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::InvalidInput(m) if m.message.contains("without appends")),
        "{e}"
    );
}

#[test]
fn a_closed_producer_restores_as_closing_after_its_reports_were_drained() {
    let now = Instant::now();
    let mut p = closed_producer(now);
    let _ = events(&mut p);
    let snap = p.snapshot();
    assert!(snap.batches.is_empty(), "{snap:?}");
    let mut r = Producer::restore(snap, now).unwrap();
    assert!(r.is_closing());
    assert!(r.is_closed());
    assert!(r.append(Bytes::from_static(b"x"), now).is_err());
    assert!(pump(&mut r, now).is_empty());
}

#[test]
fn a_duplicate_answer_under_an_epoch_claimed_after_the_restore_is_not_stale() {
    let now = Instant::now();
    let cfg = ProducerConfig {
        auto_claim: true,
        ..config()
    };
    let mut p = Producer::new(cfg, now).unwrap();
    for s in ["a", "b", "c", "d"] {
        append(&mut p, s, now); // seqs 0 and 1 sealed: the snapshot's next seq is 2
    }
    let mut r = Producer::restore(p.snapshot(), now).unwrap();
    let s = pump(&mut r, now);
    assert_eq!(s[0].seq, 0, "{s:?}");
    reply(&mut r, &s[0], 403, &[("producer-epoch", "3")], now);
    let _ = events(&mut r);
    assert_eq!(r.epoch(), 4);
    for x in ["e", "f", "g", "h", "i", "j"] {
        append(&mut r, x, now); // seqs 0, 1 and 2 of epoch 4
    }
    let s = pump(&mut r, now);
    assert_eq!((s[0].epoch, s[0].seq), (4, 0));
    reply(&mut r, &s[0], 200, &[], now);
    let s = pump(&mut r, now);
    assert_eq!(
        s.iter().map(|s| (s.epoch, s.seq)).collect::<Vec<_>>(),
        [(4, 1), (4, 2)]
    );
    reply(&mut r, &s[0], 200, &[], now);
    // The server had seq 2 of epoch 4 already (a duplicate of our own request): at the
    // snapshot's next seq, but in an epoch the snapshot never held.
    reply(&mut r, &s[1], 204, &[], now);
    let ev = events(&mut r);
    assert_eq!(
        acks(&ev),
        [(4, 5, false), (6, 7, false), (8, 9, true)],
        "{ev:?}"
    );
    assert!(r.error().is_none(), "{:?}", r.error());
}

#[test]
fn a_doomed_restored_batch_answered_2xx_is_acknowledged() {
    let now = Instant::now();
    let (p, _) = busy_producer(now);
    let mut r = Producer::restore(p.snapshot(), now).unwrap();
    let s = pump(&mut r, now);
    assert_eq!(s[0].seq, 1, "{s:?}");
    reply(&mut r, &s[0], 200, &[], now);
    let s = pump(&mut r, now);
    assert_eq!(s.iter().map(|s| s.seq).collect::<Vec<_>>(), [2, 3]);
    // Seq 2 fails for good while seq 3 is in flight: seq 3 is doomed, but a 2xx still
    // acknowledges it, whatever seq the server names.
    reply(&mut r, &s[0], 413, &[], now);
    reply(&mut r, &s[1], 204, &[("producer-seq", "4")], now);
    let ev = events(&mut r);
    assert_eq!(acks(&ev), [(2, 3, false), (6, 7, true)], "{ev:?}");
    assert_eq!(
        r.error().map(|e| &e.kind),
        Some(&ErrorKind::PayloadTooLarge)
    );
}

/// A snapshot's bytes (batch bodies) are base64 text in JSON; a format that hands them over as
/// a sequence of byte values is read too, and anything else is refused saying what was
/// expected.
#[test]
fn snapshot_bytes_are_read_from_text_or_a_sequence_and_refused_otherwise() {
    use serde::de::value::{Error as ValueError, SeqDeserializer};
    let seq: SeqDeserializer<_, ValueError> = SeqDeserializer::new(vec![1u8, 2, 255].into_iter());
    assert_eq!(
        &super::b64::deserialize(seq).unwrap()[..],
        &[1u8, 2, 255][..]
    );
    let text = serde_json::Value::String("AQL/".to_owned());
    assert_eq!(
        &super::b64::deserialize(text).unwrap()[..],
        &[1u8, 2, 255][..]
    );
    let err = super::b64::deserialize(serde_json::json!(42)).unwrap_err();
    assert!(err.to_string().contains("base64 text or bytes"), "{err}");
}
