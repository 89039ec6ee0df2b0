//! Idempotent producers over HTTP (PROTOCOL.md 5.2.1).

use super::{off, Harness, Resp};
use crate::sim::ProducerState;
use bytes::Bytes;

fn send(
    t: &mut Harness,
    id: &str,
    epoch: &str,
    seq: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut h = vec![
        ("content-type", "text/plain"),
        ("producer-id", id),
        ("producer-epoch", epoch),
        ("producer-seq", seq),
    ];
    h.extend_from_slice(extra);
    t.post("/s", &h, body.to_owned())
}

fn setup() -> Harness {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t
}

#[test]
fn validation_table_over_http() {
    let mut t = setup();
    // New producer, seq 0: 200 with the tuple echoed.
    let r = send(&mut t, "p", "0", "0", &[], "a");
    assert_eq!(r.status, 200);
    assert_eq!(r.h("producer-epoch"), Some("0"));
    assert_eq!(r.h("producer-seq"), Some("0"));
    assert_eq!(r.next(), off(1));
    // Next seq: 200.
    assert_eq!(send(&mut t, "p", "0", "1", &[], "b").status, 200);
    // Duplicate: 204 with the highest accepted seq, nothing stored.
    let r = send(&mut t, "p", "0", "0", &[], "a");
    assert_eq!(r.status, 204);
    assert_eq!(r.h("producer-epoch"), Some("0"));
    assert_eq!(r.h("producer-seq"), Some("1"));
    // Gap: 409 with expected and received.
    let r = send(&mut t, "p", "0", "3", &[], "d");
    assert_eq!(r.status, 409);
    assert_eq!(r.h("producer-expected-seq"), Some("2"));
    assert_eq!(r.h("producer-received-seq"), Some("3"));
    assert!(r.h("stream-closed").is_none());
    // New epoch must start at 0.
    assert_eq!(send(&mut t, "p", "1", "1", &[], "x").status, 400);
    let r = send(&mut t, "p", "1", "0", &[], "c");
    assert_eq!(r.status, 200);
    assert_eq!(r.h("producer-epoch"), Some("1"));
    // Zombie: 403 with the current epoch.
    let r = send(&mut t, "p", "0", "2", &[], "z");
    assert_eq!(r.status, 403);
    assert_eq!(r.h("producer-epoch"), Some("1"));
    // An unknown producer must start at seq 0.
    let r = send(&mut t, "q", "5", "1", &[], "q");
    assert_eq!(r.status, 409);
    assert_eq!(r.h("producer-expected-seq"), Some("0"));
    assert_eq!(send(&mut t, "q", "5", "0", &[], "q").status, 200);
    assert_eq!(t.server.stream_bytes("/s").unwrap(), "abcq");
    assert_eq!(
        t.server.producer_state("/s", "p"),
        Some(ProducerState {
            epoch: 1,
            last_seq: 0
        })
    );
    assert_eq!(
        t.server.producer_state("/s", "q"),
        Some(ProducerState {
            epoch: 5,
            last_seq: 0
        })
    );
    assert_eq!(t.server.producer_state("/s", "nobody"), None);
}

#[test]
fn malformed_producer_headers_are_400() {
    let mut t = setup();
    let ct = ("content-type", "text/plain");
    for h in [
        vec![ct, ("producer-id", "p")],
        vec![ct, ("producer-id", "p"), ("producer-epoch", "0")],
        vec![ct, ("producer-epoch", "0"), ("producer-seq", "0")],
    ] {
        assert_eq!(t.post("/s", &h, "x").status, 400, "{h:?}");
    }
    for (id, epoch, seq) in [
        ("", "0", "0"),
        ("p", "-1", "0"),
        ("p", "0", "1.0"),
        ("p", "9007199254740992", "0"),
        ("p", "0", "9007199254740992"),
        ("p", "0x1", "0"),
    ] {
        assert_eq!(
            send(&mut t, id, epoch, seq, &[], "x").status,
            400,
            "{id} {epoch} {seq}"
        );
    }
    assert_eq!(
        send(&mut t, "p", "9007199254740991", "0", &[], "x").status,
        200
    );
    assert_eq!(t.server.stream_bytes("/s").unwrap(), "x");
}

#[test]
fn failed_appends_do_not_advance_producer_state() {
    let mut t = Harness::new();
    t.create("/j", "application/json");
    let h = |seq| {
        vec![
            ("content-type", "application/json"),
            ("producer-id", "p"),
            ("producer-epoch", "0"),
            ("producer-seq", seq),
        ]
    };
    assert_eq!(t.post("/j", &h("0"), "{bad").status, 400);
    assert_eq!(t.server.producer_state("/j", "p"), None);
    assert_eq!(t.post("/j", &h("0"), "[]").status, 400);
    assert_eq!(t.post("/j", &h("0"), "[1,2]").status, 200);
    assert_eq!(t.server.stream_data("/j").unwrap().len(), 2);
}

#[test]
fn duplicates_win_over_stream_seq() {
    let mut t = setup();
    let seq = [("stream-seq", "001")];
    assert_eq!(send(&mut t, "p", "0", "0", &seq, "a").status, 200);
    // The retry carries the same Stream-Seq: a duplicate, not a regression.
    assert_eq!(send(&mut t, "p", "0", "0", &seq, "a").status, 204);
    // A new batch with a regressing Stream-Seq is refused and not recorded.
    assert_eq!(send(&mut t, "p", "0", "1", &seq, "b").status, 409);
    assert_eq!(
        send(&mut t, "p", "0", "1", &[("stream-seq", "002")], "b").status,
        200
    );
}

#[test]
fn closing_with_a_producer() {
    let mut t = setup();
    let close = [("stream-closed", "true")];
    assert_eq!(send(&mut t, "p", "0", "0", &[], "a").status, 200);
    let r = send(&mut t, "p", "0", "1", &close, "z");
    assert_eq!(r.status, 200);
    assert!(r.flag("stream-closed"));
    assert_eq!(r.next(), off(2));
    // The retry of the closing append: 204 with Stream-Closed.
    let r = send(&mut t, "p", "0", "1", &close, "z");
    assert_eq!(r.status, 204);
    assert!(r.flag("stream-closed"));
    assert_eq!(r.h("producer-seq"), Some("1"));
    assert_eq!(r.next(), off(2));
    // Any other tuple: 409 closed.
    for (id, seq) in [("p", "0"), ("p", "2"), ("other", "0")] {
        let r = send(&mut t, id, "0", seq, &close, "y");
        assert_eq!(r.status, 409, "{id} {seq}");
        assert!(r.flag("stream-closed"));
        assert_eq!(r.next(), off(2));
    }
    assert_eq!(t.server.stream_bytes("/s").unwrap(), "az");
}

#[test]
fn close_only_with_a_producer() {
    let mut t = setup();
    let close = |seq: &'static str| {
        vec![
            ("stream-closed", "true"),
            ("producer-id", "p"),
            ("producer-epoch", "0"),
            ("producer-seq", seq),
        ]
    };
    assert_eq!(send(&mut t, "p", "0", "0", &[], "a").status, 200);
    // A gap is refused and the stream stays open.
    assert_eq!(t.post("/s", &close("5"), Bytes::new()).status, 409);
    assert_eq!(t.server.is_closed("/s"), Some(false));
    // A duplicate of an earlier append is acknowledged without closing.
    let r = t.post("/s", &close("0"), Bytes::new());
    assert_eq!(r.status, 204);
    assert!(r.h("stream-closed").is_none());
    assert_eq!(t.server.is_closed("/s"), Some(false));
    // An accepted close-only is a close (5.3: 204), not an append of new data (5.2.1: 200).
    let r = t.post("/s", &close("1"), Bytes::new());
    assert_eq!(r.status, 204);
    assert!(r.flag("stream-closed"));
    assert_eq!(r.next(), off(1));
    assert_eq!(r.h("producer-epoch"), Some("0"));
    assert_eq!(r.h("producer-seq"), Some("1"));
    let r = t.post("/s", &close("1"), Bytes::new());
    assert_eq!(r.status, 204);
    assert!(r.flag("stream-closed"));
    assert_eq!(t.post("/s", &close("2"), Bytes::new()).status, 409);
    // Without producer headers a close-only stays idempotent.
    assert_eq!(
        t.post("/s", &[("stream-closed", "true")], Bytes::new())
            .status,
        204
    );
    assert_eq!(
        t.server.producer_state("/s", "p"),
        Some(ProducerState {
            epoch: 0,
            last_seq: 1
        })
    );
}
