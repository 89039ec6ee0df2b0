//! SSE (PROTOCOL.md 5.8, 8, 10.2): the exact bytes on the wire.

use super::{off, Harness, Seen, FIRST_INTERVAL};
use crate::sim::{ExchangeId, SimServerConfig};
use bytes::Bytes;
use http::Method;
use std::time::Duration;

fn sse(t: &mut Harness, path: &str, offset: &str) -> ExchangeId {
    t.start(
        Method::GET,
        &format!("{path}?live=sse&offset={offset}"),
        &[],
        Bytes::new(),
    )
}

fn control(next: u64, cursor: Option<u64>, up_to_date: bool, closed: bool) -> String {
    let mut json = format!("{{\"streamNextOffset\":\"{}\"", off(next));
    if let Some(c) = cursor {
        json.push_str(&format!(",\"streamCursor\":\"{c}\""));
    }
    if up_to_date {
        json.push_str(",\"upToDate\":true");
    }
    if closed {
        json.push_str(",\"streamClosed\":true");
    }
    format!("event: control\ndata:{json}}}\n\n")
}

fn quiet() -> SimServerConfig {
    SimServerConfig {
        sse_keepalive: None,
        sse_close_after: None,
        ..SimServerConfig::default()
    }
}

#[test]
fn json_stream_transcript() {
    let mut t = Harness::with(quiet());
    t.create("/j", "application/json");
    t.post(
        "/j",
        &[("content-type", "application/json")],
        "[{\"k\":\"v\"},{\"k\":\"w\"}]",
    );
    let id = sse(&mut t, "/j", "-1");
    let mut seen = Seen::default();
    t.drain(id, &mut seen);
    assert_eq!(seen.status(), 200);
    assert_eq!(seen.h("content-type"), Some("text/event-stream"));
    assert!(seen.h("stream-sse-data-encoding").is_none());
    let c = Some(FIRST_INTERVAL);
    let mut expected =
        String::from("event: data\ndata:[\ndata:{\"k\":\"v\"},\ndata:{\"k\":\"w\"}\ndata:]\n\n");
    expected.push_str(&control(18, c, true, false));
    assert_eq!(seen.text(), expected);
    // A later append: one more data + control pair.
    t.post(
        "/j",
        &[("content-type", "application/json")],
        "{\"k\":\"x\"}",
    );
    t.drain(id, &mut seen);
    expected.push_str("event: data\ndata:[\ndata:{\"k\":\"x\"}\ndata:]\n\n");
    expected.push_str(&control(27, c, true, false));
    assert_eq!(seen.text(), expected);
    assert!(!seen.ended);
    // Close-only: the final control, without cursor, then the end.
    t.post("/j", &[("stream-closed", "true")], Bytes::new());
    t.drain(id, &mut seen);
    expected.push_str(&control(27, None, true, true));
    assert_eq!(seen.text(), expected);
    assert!(seen.ended);
    assert!(!t.server.is_open(id));
}

#[test]
fn append_and_close_sends_data_then_the_closing_control() {
    let mut t = Harness::with(quiet());
    t.create("/t", "text/plain");
    let id = sse(&mut t, "/t", "-1");
    t.post(
        "/t",
        &[("content-type", "text/plain"), ("stream-closed", "true")],
        "bye\nnow",
    );
    let seen = t.seen(id);
    let expected = format!(
        "{}event: data\ndata:bye\ndata:now\n\n{}",
        control(0, Some(FIRST_INTERVAL), true, false),
        control(7, None, true, true)
    );
    assert_eq!(seen.text(), expected);
    assert!(seen.ended);
}

#[test]
fn binary_streams_are_base64() {
    let mut t = Harness::with(quiet());
    t.create("/b", "application/octet-stream");
    t.post(
        "/b",
        &[("content-type", "application/octet-stream")],
        Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    );
    let id = sse(&mut t, "/b", "-1");
    let seen = t.seen(id);
    assert_eq!(seen.h("stream-sse-data-encoding"), Some("base64"));
    assert_eq!(
        seen.text(),
        format!(
            "event: data\ndata:AQIDBAUGBwgJCg==\n\n{}",
            control(10, Some(FIRST_INTERVAL), true, false)
        )
    );
}

#[test]
fn offset_now_starts_at_the_tail() {
    let mut t = Harness::with(quiet());
    t.create("/t", "text/plain");
    t.append("/t", "text/plain", "history");
    let id = sse(&mut t, "/t", "now");
    let mut seen = Seen::default();
    t.drain(id, &mut seen);
    assert_eq!(seen.text(), control(7, Some(FIRST_INTERVAL), true, false));
    t.append("/t", "text/plain", "fresh");
    t.drain(id, &mut seen);
    assert!(seen.text().ends_with(&format!(
        "event: data\ndata:fresh\n\n{}",
        control(12, Some(FIRST_INTERVAL), true, false)
    )));
    assert!(!seen.text().contains("history"));
}

#[test]
fn closed_stream_at_the_tail_ends_at_once() {
    let mut t = Harness::with(quiet());
    t.put(
        "/t",
        &[("content-type", "text/plain"), ("stream-closed", "true")],
        "all",
    );
    for offset in [off(3), "now".to_owned()] {
        let id = sse(&mut t, "/t", &offset);
        let seen = t.seen(id);
        assert_eq!(seen.text(), control(3, None, true, true), "{offset}");
        assert!(seen.ended);
    }
    let id = sse(&mut t, "/t", "-1");
    let seen = t.seen(id);
    assert_eq!(
        seen.text(),
        format!("event: data\ndata:all\n\n{}", control(3, None, true, true))
    );
    assert!(seen.ended);
}

#[test]
fn chunk_limit_splits_events() {
    let mut t = Harness::with(SimServerConfig {
        max_chunk_bytes: Some(3),
        ..quiet()
    });
    t.create("/t", "text/plain");
    t.append("/t", "text/plain", "abcdefg");
    let id = sse(&mut t, "/t", "-1");
    let c = Some(FIRST_INTERVAL);
    let expected = format!(
        "event: data\ndata:abc\n\n{}event: data\ndata:def\n\n{}event: data\ndata:g\n\n{}",
        control(3, c, false, false),
        control(6, c, false, false),
        control(7, c, true, false)
    );
    assert_eq!(t.seen(id).text(), expected);
}

#[test]
fn keepalives_and_periodic_close() {
    let mut t = Harness::with(SimServerConfig {
        sse_keepalive: Some(Duration::from_secs(1)),
        sse_close_after: Some(Duration::from_secs(3)),
        ..SimServerConfig::default()
    });
    t.create("/t", "text/plain");
    let id = sse(&mut t, "/t", "-1");
    let mut seen = Seen::default();
    t.drain(id, &mut seen);
    assert_eq!(
        t.server.poll_timeout(),
        Some(t.now + Duration::from_secs(1))
    );
    t.advance(Duration::from_secs(1));
    assert_eq!(
        t.server.poll_timeout(),
        Some(t.now + Duration::from_secs(1)),
        "the next keep-alive is a period after this one"
    );
    t.advance(Duration::from_secs(1));
    t.drain(id, &mut seen);
    let one = control(0, Some(FIRST_INTERVAL), true, false);
    assert_eq!(seen.text(), one.repeat(3));
    assert!(!seen.ended);
    t.advance(Duration::from_secs(1));
    t.drain(id, &mut seen);
    assert!(seen.ended, "closed after 3 s");
    assert_eq!(seen.text(), one.repeat(3));
    assert_eq!(t.server.open_exchanges(), 0);
}

#[test]
fn deleting_the_stream_resets_sse() {
    let mut t = Harness::with(quiet());
    t.create("/t", "text/plain");
    let id = sse(&mut t, "/t", "-1");
    t.delete("/t");
    let seen = t.seen(id);
    assert!(seen.reset && !seen.ended);
}

#[test]
fn sse_needs_an_offset_and_a_stream() {
    let mut t = Harness::with(quiet());
    t.create("/t", "text/plain");
    let id = t.start(Method::GET, "/t?live=sse", &[], Bytes::new());
    assert_eq!(t.seen(id).status(), 400);
    let id = sse(&mut t, "/missing", "-1");
    assert_eq!(t.seen(id).status(), 404);
}

#[test]
fn cursors_on_one_connection_never_go_back() {
    let mut t = Harness::with(quiet());
    t.create("/t", "text/plain");
    let id = t.start(
        Method::GET,
        &format!("/t?live=sse&offset=-1&cursor={FIRST_INTERVAL}"),
        &[],
        Bytes::new(),
    );
    let mut cursors = Vec::new();
    for i in 0..20 {
        t.append("/t", "text/plain", &format!("{i}"));
    }
    let text = t.seen(id).text().to_owned();
    for line in text.lines().filter(|l| l.contains("streamCursor")) {
        let v: serde_json::Value = serde_json::from_str(&line["data:".len()..]).unwrap();
        cursors.push(v["streamCursor"].as_str().unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(cursors.len(), 21);
    assert!(cursors[0] > FIRST_INTERVAL);
    assert!(cursors.windows(2).all(|w| w[0] <= w[1]), "{cursors:?}");
}

/// 5.8: each payload line is prefixed with `data:` (the official conformance suite matches
/// `data:line1` literally); a line starting with a space keeps it through the client's parser.
#[test]
fn data_lines_are_prefixed_with_data_colon() {
    let mut t = Harness::with(quiet());
    t.create("/t", "text/plain");
    t.append("/t", "text/plain", "line1\nline2\n  indented");
    let id = sse(&mut t, "/t", "-1");
    let text = t.seen(id).text().to_owned();
    assert!(
        text.starts_with("event: data\ndata:line1\ndata:line2\ndata:   indented\n\n"),
        "{text}"
    );
    assert!(text.contains("event: control\ndata:{\"streamNextOffset\""));
    let mut parser = crate::sse::SseParser::default();
    parser.feed(text.as_bytes());
    let first = parser.next_event().unwrap().unwrap();
    assert!(first.is_data());
    assert_eq!(&first.data[..], b"line1\nline2\n  indented");
}
