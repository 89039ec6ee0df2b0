//! Long-poll (PROTOCOL.md 5.7), `offset=now` (8) and cursors (10.1) with virtual time.

use super::{off, Harness, FIRST_INTERVAL};
use crate::sim::SimServerConfig;
use bytes::Bytes;
use http::Method;
use std::time::Duration;

fn lp(t: &mut Harness, query: &str) -> crate::sim::ExchangeId {
    t.start(Method::GET, &format!("/s?{query}"), &[], Bytes::new())
}

#[test]
fn data_behind_the_offset_comes_at_once() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "abc");
    let id = lp(&mut t, "live=long-poll&offset=-1");
    let s = t.seen(id);
    assert!(s.ended);
    assert_eq!(s.status(), 200);
    assert_eq!(s.text(), "abc");
    assert_eq!(s.h("stream-next-offset"), Some(off(3).as_str()));
    assert_eq!(s.h("stream-up-to-date"), Some("true"));
    assert_eq!(
        s.h("stream-cursor"),
        Some(FIRST_INTERVAL.to_string().as_str())
    );
    assert!(s.h("etag").is_some());
}

#[test]
fn waits_then_wakes_on_append() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let id = lp(&mut t, &format!("live=long-poll&offset={}", off(0)));
    assert!(t.server.is_open(id));
    assert_eq!(t.server.open_exchanges(), 1);
    assert!(t.seen(id).head.is_none());
    assert_eq!(
        t.server.poll_timeout(),
        Some(t.now + Duration::from_secs(1))
    );
    t.now += Duration::from_millis(300);
    t.append("/s", "text/plain", "new");
    let s = t.seen(id);
    assert!(s.ended);
    assert_eq!(s.status(), 200);
    assert_eq!(s.text(), "new");
    assert_eq!(s.h("stream-next-offset"), Some(off(3).as_str()));
    assert_eq!(s.h("stream-up-to-date"), Some("true"));
    assert!(s.h("stream-cursor").is_some());
    assert!(!t.server.is_open(id));
    assert_eq!(t.server.poll_timeout(), None);
}

#[test]
fn times_out_with_204() {
    let mut t = Harness::with(SimServerConfig {
        long_poll_timeout: Duration::from_secs(2),
        ..SimServerConfig::default()
    });
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "abc");
    let id = lp(&mut t, &format!("live=long-poll&offset={}", off(3)));
    t.advance(Duration::from_millis(1999));
    assert!(t.server.is_open(id));
    t.advance(Duration::from_millis(1));
    let s = t.seen(id);
    assert!(s.ended);
    assert_eq!(s.status(), 204);
    assert!(s.body.is_empty());
    assert_eq!(s.h("stream-next-offset"), Some(off(3).as_str()));
    assert_eq!(s.h("stream-up-to-date"), Some("true"));
    assert_eq!(
        s.h("stream-cursor"),
        Some(FIRST_INTERVAL.to_string().as_str())
    );
    assert!(s.h("stream-closed").is_none());
    assert_eq!(s.h("cache-control"), Some("no-store"));
}

#[test]
fn a_later_request_runs_due_timeouts_first() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let id = lp(&mut t, &format!("live=long-poll&offset={}", off(0)));
    // No handle_timeout: the append arrives after the deadline, so the poll timed out.
    t.now += Duration::from_secs(5);
    t.append("/s", "text/plain", "late");
    assert_eq!(t.seen(id).status(), 204);
}

#[test]
fn closure_ends_long_polls() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "ab");
    let waiting = lp(&mut t, &format!("live=long-poll&offset={}", off(2)));
    t.post("/s", &[("stream-closed", "true")], Bytes::new());
    let s = t.seen(waiting);
    assert_eq!(s.status(), 204);
    assert_eq!(s.h("stream-closed"), Some("true"));
    assert_eq!(s.h("stream-up-to-date"), Some("true"));
    assert_eq!(s.h("stream-next-offset"), Some(off(2).as_str()));
    // Already closed at the tail: immediate 204, no waiting.
    for q in [format!("offset={}", off(2)), "offset=now".to_owned()] {
        let id = lp(&mut t, &format!("live=long-poll&{q}"));
        let s = t.seen(id);
        assert!(s.ended, "{q}");
        assert_eq!(s.status(), 204);
        assert_eq!(s.h("stream-closed"), Some("true"));
        assert_eq!(s.h("stream-next-offset"), Some(off(2).as_str()));
    }
    // Behind the tail of a closed stream: the data, with Stream-Closed as it reaches the end.
    let id = lp(&mut t, "live=long-poll&offset=-1");
    let s = t.seen(id);
    assert_eq!(s.status(), 200);
    assert_eq!(s.text(), "ab");
    assert_eq!(s.h("stream-closed"), Some("true"));
}

#[test]
fn append_and_close_wakes_with_data_and_closure() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let id = lp(&mut t, &format!("live=long-poll&offset={}", off(0)));
    t.post(
        "/s",
        &[("content-type", "text/plain"), ("stream-closed", "true")],
        "end",
    );
    let s = t.seen(id);
    assert_eq!(s.status(), 200);
    assert_eq!(s.text(), "end");
    assert_eq!(s.h("stream-closed"), Some("true"));
}

#[test]
fn offset_now_waits_for_future_data_only() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "old");
    let id = lp(&mut t, "live=long-poll&offset=now");
    assert!(t.server.is_open(id));
    t.append("/s", "text/plain", "new");
    let s = t.seen(id);
    assert_eq!(s.text(), "new");
    assert_eq!(s.h("stream-next-offset"), Some(off(6).as_str()));
    let id = lp(&mut t, "live=long-poll&offset=now");
    t.advance(Duration::from_secs(1));
    let s = t.seen(id);
    assert_eq!(s.status(), 204);
    assert_eq!(s.h("stream-next-offset"), Some(off(6).as_str()));
    assert_eq!(s.h("stream-up-to-date"), Some("true"));
}

#[test]
fn long_poll_needs_an_offset() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let id = lp(&mut t, "live=long-poll");
    assert_eq!(t.seen(id).status(), 400);
}

#[test]
fn chunk_limit_applies_to_long_polls() {
    let mut t = Harness::with_chunk_limit(2);
    t.create("/s", "text/plain");
    let id = lp(&mut t, &format!("live=long-poll&offset={}", off(0)));
    t.append("/s", "text/plain", "abcde");
    let s = t.seen(id);
    assert_eq!(s.text(), "ab");
    assert!(s.h("stream-up-to-date").is_none());
    assert_eq!(s.h("stream-next-offset"), Some(off(2).as_str()));
}

#[test]
fn cursors_follow_intervals_and_never_go_back() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let cursor_of = |t: &mut Harness, query: &str| {
        let id = lp(t, query);
        t.advance(Duration::from_secs(1));
        t.seen(id)
            .h("stream-cursor")
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let at = format!("live=long-poll&offset={}", off(0));
    let c0 = cursor_of(&mut t, &at);
    assert_eq!(c0, FIRST_INTERVAL);
    // An older client cursor: the current interval.
    assert_eq!(
        cursor_of(&mut t, &format!("{at}&cursor={}", c0 - 5)),
        FIRST_INTERVAL
    );
    // The client's cursor is the current interval: strictly greater, by 1..=3600 s of
    // intervals (1..=180 of 20 s).
    let c1 = cursor_of(&mut t, &format!("{at}&cursor={c0}"));
    assert!(c1 > c0 && c1 <= c0 + 180, "{c0} -> {c1}");
    // A cursor from the future: still strictly greater.
    let c2 = cursor_of(&mut t, &format!("{at}&cursor={}", c0 + 10_000));
    assert!(c2 > c0 + 10_000 && c2 <= c0 + 10_180);
    // Non-numeric cursors are ignored.
    assert_eq!(
        cursor_of(&mut t, &format!("{at}&cursor=abc")),
        FIRST_INTERVAL
    );
    // Time moves the interval.
    t.advance(Duration::from_secs(20));
    assert_eq!(cursor_of(&mut t, &at), FIRST_INTERVAL + 1);
}

#[test]
fn cancel_forgets_the_exchange() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let id = lp(&mut t, &format!("live=long-poll&offset={}", off(0)));
    t.server.cancel(id);
    assert!(!t.server.is_open(id));
    assert_eq!(t.server.poll_timeout(), None);
    t.append("/s", "text/plain", "x");
    assert!(t.server.poll_exchange(id).is_none());
    t.server.cancel(id);
}

#[test]
fn deleting_the_stream_ends_waiting_polls() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let id = lp(&mut t, &format!("live=long-poll&offset={}", off(0)));
    assert_eq!(t.delete("/s").status, 204);
    let s = t.seen(id);
    assert_eq!(s.status(), 404);
    assert!(s.ended);
    assert_eq!(t.server.open_exchanges(), 0);
}

#[test]
fn call_returns_the_id_of_an_exchange_that_stays_open() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    let req = Harness::request(
        Method::GET,
        &format!("/s?live=long-poll&offset={}", off(0)),
        &[],
        Bytes::new(),
    );
    let id = t.server.call(req, t.now).unwrap_err();
    assert!(t.server.is_open(id));
    t.append("/s", "text/plain", "x");
    let (got, out) = t.server.poll_output().unwrap();
    assert_eq!(got, id);
    assert!(matches!(out, crate::sim::ExchangeOutput::Head(p) if p.status == 200));
}

/// Cancelling one exchange drops only its own queued outputs: another exchange's response,
/// queued and not yet taken, is still delivered whole.
#[test]
fn cancel_leaves_other_exchanges_outputs_alone() {
    let mut t = Harness::new();
    t.create("/s", "text/plain");
    t.append("/s", "text/plain", "abc");
    let read = t.start(Method::GET, "/s?offset=-1", &[], Bytes::new());
    let poll = lp(&mut t, &format!("live=long-poll&offset={}", off(3)));
    t.server.cancel(poll);
    let s = t.seen(read);
    assert_eq!((s.status(), s.text(), s.ended), (200, "abc", true));
}
