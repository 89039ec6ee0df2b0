//! Unit tests of the reader, driven by hand-made inputs (no IO).

use super::*;
use crate::ops::test_util::parts;
use crate::reader::ReaderSnapshot;

const URL: &str = "http://h/s";

#[allow(clippy::disallowed_methods)]
fn base_instant() -> Instant {
    Instant::now()
}

fn off(s: &str) -> Offset {
    Offset::parse(s).unwrap()
}

fn cfg(mode: ReadMode) -> ReaderConfig {
    ReaderConfig {
        mode,
        rng_seed: 7,
        ..ReaderConfig::new(URL)
    }
}

fn query(tx: &Transmit) -> String {
    tx.request.uri().query().unwrap_or("").to_owned()
}

fn control(offset: &str, extra: &str) -> String {
    format!("event: control\ndata: {{\"streamNextOffset\":\"{offset}\"{extra}}}\n\n")
}

fn data_event(payload: &str) -> String {
    let mut s = String::from("event: data\n");
    for line in payload.split('\n') {
        s.push_str("data:");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    s
}

struct H {
    r: Reader,
    now: Instant,
}

impl H {
    fn new(config: ReaderConfig) -> H {
        let now = base_instant();
        H {
            r: Reader::new(config, now).unwrap(),
            now,
        }
    }

    fn mode(mode: ReadMode) -> H {
        H::new(cfg(mode))
    }

    fn tx(&mut self) -> Transmit {
        self.r.poll_transmit(self.now).expect("a transmit")
    }

    fn no_tx(&mut self) {
        assert!(
            self.r.poll_transmit(self.now).is_none(),
            "unexpected transmit"
        );
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.r.handle_timeout(self.now);
    }

    fn head(&mut self, id: RequestId, status: u16, h: &[(&str, &str)]) {
        self.r.handle_input(
            Input::Head {
                id,
                parts: parts(status, h),
            },
            self.now,
        );
    }

    fn body(&mut self, id: RequestId, b: &[u8]) {
        self.r.handle_input(
            Input::Body {
                id,
                chunk: Bytes::copy_from_slice(b),
            },
            self.now,
        );
    }

    fn end(&mut self, id: RequestId) {
        self.r.handle_input(Input::End { id }, self.now);
    }

    fn fail(&mut self, id: RequestId, kind: TransportErrorKind) {
        self.r.handle_input(
            Input::Failed {
                id,
                error: TransportError::new(kind, "boom"),
            },
            self.now,
        );
    }

    fn respond(&mut self, id: RequestId, status: u16, h: &[(&str, &str)], body: &[u8]) {
        self.head(id, status, h);
        if !body.is_empty() {
            self.body(id, body);
        }
        self.end(id);
    }

    fn events(&mut self) -> Vec<ReaderEvent> {
        std::iter::from_fn(|| self.r.poll_event()).collect()
    }

    fn cancels(&mut self) -> Vec<RequestId> {
        std::iter::from_fn(|| self.r.poll_cancel()).collect()
    }

    /// The reader never sends again, whatever time does.
    fn assert_dead(&mut self) {
        assert!(self.r.is_finished());
        for _ in 0..5 {
            self.no_tx();
            assert_eq!(self.r.poll_timeout(), None);
            self.advance(Duration::from_secs(3600));
        }
        self.no_tx();
    }

    /// Opens an SSE response to `id` (text).
    fn sse_head(&mut self, id: RequestId) {
        self.head(id, 200, &[("content-type", "text/event-stream")]);
    }
}

fn data(ev: &ReaderEvent) -> &Chunk {
    match ev {
        ReaderEvent::Data(c) => c,
        other => panic!("expected data, got {other:?}"),
    }
}

fn failed_kind(ev: &ReaderEvent) -> &ErrorKind {
    match ev {
        ReaderEvent::Failed(e) => &e.kind,
        other => panic!("expected failure, got {other:?}"),
    }
}

// ----- catch-up -----

#[test]
fn catch_up_in_several_chunks_until_up_to_date() {
    let mut h = H::mode(ReadMode::Auto);
    let t1 = h.tx();
    assert_eq!(query(&t1), "offset=-1");
    assert_eq!(t1.deadline, None);
    assert_eq!(t1.request.method(), http::Method::GET);
    h.no_tx(); // one request at a time
    h.head(t1.id, 200, &[("Stream-Next-Offset", "0_3")]);
    h.body(t1.id, b"ab");
    assert!(h.events().is_empty(), "bytes are held until the end");
    h.body(t1.id, b"c");
    h.end(t1.id);
    let ev = h.events();
    assert_eq!(ev.len(), 1);
    let c = data(&ev[0]);
    assert_eq!(&c.data[..], b"abc");
    assert_eq!(c.next_offset, off("0_3"));
    assert!(!c.up_to_date && !c.closed && !c.json);
    assert_eq!(h.r.offset(), &off("0_3"));
    assert!(!h.r.is_up_to_date());

    let t2 = h.tx();
    assert!(t2.id > t1.id);
    assert_eq!(query(&t2), "offset=0_3");
    h.respond(
        t2.id,
        200,
        &[("Stream-Next-Offset", "0_6"), ("Stream-Up-To-Date", "true")],
        b"def",
    );
    let ev = h.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(&data(&ev[0]).data[..], b"def");
    assert!(data(&ev[0]).up_to_date);
    assert_eq!(ev[1], ReaderEvent::UpToDate { offset: off("0_6") });
    assert!(h.r.is_up_to_date());
    assert!(!h.r.is_eof());
}

#[test]
fn catch_up_mode_stops_when_up_to_date() {
    let mut h = H::mode(ReadMode::CatchUp);
    let t = h.tx();
    h.respond(t.id, 200, &[("Stream-Next-Offset", "0_3")], b"abc");
    let t = h.tx();
    assert_eq!(query(&t), "offset=0_3", "catch-up never sends live=");
    h.respond(
        t.id,
        200,
        &[("Stream-Next-Offset", "0_3"), ("Stream-Up-To-Date", "true")],
        b"",
    );
    let ev = h.events();
    assert_eq!(
        ev,
        vec![
            ReaderEvent::Data(Chunk {
                data: Bytes::from_static(b"abc"),
                next_offset: off("0_3"),
                partial: false,
                up_to_date: false,
                closed: false,
                cursor: None,
                json: false,
            }),
            ReaderEvent::UpToDate { offset: off("0_3") },
            ReaderEvent::Done,
        ]
    );
    assert_eq!(h.r.mode(), ReadMode::CatchUp);
    h.assert_dead();
}

#[test]
fn auto_switches_to_long_poll_and_echoes_the_cursor() {
    let mut h = H::new(ReaderConfig {
        url: "http://h/s?token=a%20b".into(),
        ..cfg(ReadMode::Auto)
    });
    let t = h.tx();
    assert_eq!(query(&t), "offset=-1&token=a%20b");
    h.respond(
        t.id,
        200,
        &[
            ("Stream-Next-Offset", "0_3"),
            ("Stream-Up-To-Date", "true"),
            ("content-type", "application/json"),
        ],
        b"[1,2]",
    );
    let ev = h.events();
    assert!(data(&ev[0]).json);
    assert_eq!(data(&ev[0]).items().unwrap().len(), 2);
    assert_eq!(h.r.live_mode(), LiveMode::LongPoll);

    let t = h.tx();
    assert_eq!(query(&t), "live=long-poll&offset=0_3&token=a%20b");
    assert_eq!(
        t.deadline,
        Some(h.now + ReaderConfig::DEFAULT_LONG_POLL_DEADLINE)
    );
    h.respond(
        t.id,
        200,
        &[
            ("Stream-Next-Offset", "0_5"),
            ("Stream-Up-To-Date", "true"),
            ("Stream-Cursor", "c 1"),
            ("content-type", "application/json"),
        ],
        b"[3]",
    );
    let ev = h.events();
    assert_eq!(data(&ev[0]).cursor.as_deref(), Some("c 1"));
    assert_eq!(h.r.cursor(), Some("c 1"));
    let t = h.tx();
    assert_eq!(
        query(&t),
        "cursor=c%201&live=long-poll&offset=0_5&token=a%20b"
    );
    assert_eq!(h.r.mode(), ReadMode::Auto);
}

#[test]
fn long_poll_204_continues_from_the_returned_offset() {
    let mut h = H::mode(ReadMode::LongPoll);
    let t = h.tx();
    assert_eq!(query(&t), "live=long-poll&offset=-1");
    // No reader timer while a long-poll is in flight: the idle timeout is for SSE only, and
    // the request's own deadline is the driver's.
    assert_eq!(h.r.poll_timeout(), None);
    h.respond(
        t.id,
        204,
        &[
            ("Stream-Next-Offset", "0_0"),
            ("Stream-Up-To-Date", "true"),
            ("Stream-Cursor", "10"),
        ],
        b"",
    );
    assert_eq!(
        h.events(),
        vec![ReaderEvent::UpToDate { offset: off("0_0") }],
        "no data from a sentinel start without bytes"
    );
    let t = h.tx();
    assert_eq!(query(&t), "cursor=10&live=long-poll&offset=0_0");
    // A timeout at the same offset: nothing to report.
    h.respond(
        t.id,
        204,
        &[("Stream-Next-Offset", "0_0"), ("Stream-Cursor", "11")],
        b"",
    );
    assert!(h.events().is_empty());
    let t = h.tx();
    assert_eq!(query(&t), "cursor=11&live=long-poll&offset=0_0");
    // A 204 that moves the offset: the checkpoint moves with an empty chunk.
    h.respond(
        t.id,
        204,
        &[("Stream-Next-Offset", "0_9"), ("Stream-Cursor", "12")],
        b"",
    );
    let ev = h.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(data(&ev[0]).data.is_empty());
    assert_eq!(data(&ev[0]).next_offset, off("0_9"));
    assert_eq!(ev[1], ReaderEvent::UpToDate { offset: off("0_9") });
    let t = h.tx();
    assert_eq!(query(&t), "cursor=12&live=long-poll&offset=0_9");
    // Data, then an empty 200 at the same offset: no data event.
    h.respond(
        t.id,
        200,
        &[("Stream-Next-Offset", "1_0"), ("Stream-Cursor", "13")],
        b"xyz",
    );
    assert!(!data(&h.events()[0]).up_to_date);
    let t = h.tx();
    h.respond(
        t.id,
        200,
        &[
            ("Stream-Next-Offset", "1_0"),
            ("Stream-Cursor", "14"),
            ("Stream-Up-To-Date", "true"),
        ],
        b"",
    );
    assert_eq!(
        h.events(),
        vec![ReaderEvent::UpToDate { offset: off("1_0") }]
    );
}

/// Up to date at the beginning (a server that reports `-1` for an empty stream), then a
/// long poll moves the position without data: the new position is reported as up to date,
/// so a program that saves the offset at `UpToDate` saves the new one.
#[test]
fn up_to_date_position_moving_without_data_is_reported() {
    let mut h = H::mode(ReadMode::Auto);
    let t = h.tx();
    let up_to_date_at =
        |next: &'static str| [("Stream-Next-Offset", next), ("Stream-Up-To-Date", "true")];
    h.respond(t.id, 200, &up_to_date_at("-1"), b"");
    assert_eq!(
        h.events(),
        vec![ReaderEvent::UpToDate { offset: off("-1") }]
    );
    let t = h.tx();
    assert_eq!(query(&t), "live=long-poll&offset=-1");
    h.respond(t.id, 200, &up_to_date_at("0_5"), b"");
    assert_eq!(
        h.events(),
        vec![ReaderEvent::UpToDate { offset: off("0_5") }]
    );
    let t = h.tx();
    assert_eq!(query(&t), "live=long-poll&offset=0_5");
}

#[test]
fn last_status_follows_the_latest_response_head() {
    let mut h = H::mode(ReadMode::LongPoll);
    assert_eq!(h.r.last_status(), None);
    let t = h.tx();
    h.respond(t.id, 503, &[], b"busy");
    assert_eq!(h.r.last_status(), Some(503));
    let _ = h.events();
    h.advance(Duration::from_secs(60));
    let t = h.tx();
    h.respond(
        t.id,
        204,
        &[("Stream-Next-Offset", "0_0"), ("Stream-Up-To-Date", "true")],
        b"",
    );
    assert_eq!(h.r.last_status(), Some(204));
    let t = h.tx();
    h.respond(t.id, 200, &[("Stream-Next-Offset", "0_3")], b"abc");
    assert_eq!(h.r.last_status(), Some(200));
}

#[test]
fn not_modified_keeps_the_offset() {
    let mut h = H::new(ReaderConfig {
        offset: off("0_4"),
        ..cfg(ReadMode::Auto)
    });
    let t = h.tx();
    h.respond(t.id, 304, &[], b"");
    assert!(h.events().is_empty());
    let t = h.tx();
    assert_eq!(query(&t), "offset=0_4");
}

// ----- EOF -----

#[test]
fn eof_in_catch_up_and_auto() {
    for mode in [ReadMode::CatchUp, ReadMode::Auto] {
        let mut h = H::mode(mode);
        let t = h.tx();
        h.respond(
            t.id,
            200,
            &[("Stream-Next-Offset", "0_3"), ("Stream-Closed", "true")],
            b"end",
        );
        let ev = h.events();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(data(&ev[0]).closed && data(&ev[0]).up_to_date);
        assert_eq!(ev[1], ReaderEvent::Closed { offset: off("0_3") });
        assert!(h.r.is_eof() && h.r.is_up_to_date());
        assert!(h.cancels().is_empty());
        h.assert_dead();
        assert!(h.events().is_empty());
    }
}

#[test]
fn eof_in_long_poll() {
    let mut h = H::new(ReaderConfig {
        offset: off("0_3"),
        ..cfg(ReadMode::LongPoll)
    });
    let t = h.tx();
    h.respond(
        t.id,
        204,
        &[
            ("Stream-Next-Offset", "0_3"),
            ("Stream-Closed", "true"),
            ("Stream-Up-To-Date", "true"),
        ],
        b"",
    );
    assert_eq!(h.events(), vec![ReaderEvent::Closed { offset: off("0_3") }]);
    h.assert_dead();
}

#[test]
fn eof_in_sse() {
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    assert_eq!(query(&t), "live=sse&offset=-1");
    assert_eq!(t.deadline, None);
    h.sse_head(t.id);
    let body = format!(
        "{}{}",
        data_event("last"),
        control("0_4", ",\"streamClosed\":true")
    );
    h.body(t.id, body.as_bytes());
    let ev = h.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(&data(&ev[0]).data[..], b"last");
    assert!(data(&ev[0]).closed);
    assert_eq!(ev[1], ReaderEvent::Closed { offset: off("0_4") });
    assert_eq!(
        h.cancels(),
        vec![t.id],
        "the finished SSE exchange is dropped"
    );
    h.end(t.id);
    h.assert_dead();
    assert!(h.events().is_empty());
}

// ----- SSE -----

#[test]
fn sse_data_is_held_until_its_control() {
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.sse_head(t.id);
    h.body(t.id, data_event("hel").as_bytes());
    h.body(t.id, data_event("lo").as_bytes());
    assert!(h.events().is_empty());
    assert_eq!(h.r.offset(), &off("-1"));
    h.body(
        t.id,
        control("0_5", ",\"streamCursor\":\"c1\",\"upToDate\":true").as_bytes(),
    );
    let ev = h.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    let c = data(&ev[0]);
    assert_eq!(&c.data[..], b"hello");
    assert_eq!(c.next_offset, off("0_5"));
    assert_eq!(c.cursor.as_deref(), Some("c1"));
    assert!(c.up_to_date);
    assert_eq!(ev[1], ReaderEvent::UpToDate { offset: off("0_5") });
    assert_eq!(h.r.offset(), &off("0_5"));
    // Unknown event types and comments are ignored.
    h.body(
        t.id,
        b": keep-alive\n\nevent: other\ndata: x\n\ndata: y\n\n",
    );
    assert!(h.events().is_empty());
    assert_eq!(h.r.in_flight(), Some(t.id));
}

fn sse_script() -> String {
    format!(
        "\u{feff}{}{}{}{}\r\n: comment\r\nevent: data\r\ndata: line1\r\ndata: line2\r\n\r\n{}{}",
        data_event("a"),
        data_event("bc"),
        control("0_3", ",\"streamCursor\":\"1\""),
        data_event("d"),
        control("0_5", ",\"streamCursor\":\"2\",\"upToDate\":true"),
        data_event("tail without control"),
    )
}

fn run_sse(chunks: &[&[u8]]) -> (Vec<ReaderEvent>, String) {
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.sse_head(t.id);
    for c in chunks {
        h.body(t.id, c);
    }
    h.advance(Duration::from_secs(5));
    h.end(t.id);
    let ev = h.events();
    let next = query(&h.tx());
    (ev, next)
}

#[test]
fn sse_split_at_every_byte_gives_the_same_chunks() {
    let script = sse_script();
    let bytes = script.as_bytes();
    let (whole, next) = run_sse(&[bytes]);
    assert_eq!(whole.len(), 3, "{whole:?}");
    assert_eq!(&data(&whole[0]).data[..], b"abc");
    assert_eq!(data(&whole[0]).next_offset, off("0_3"));
    assert_eq!(&data(&whole[1]).data[..], b"dline1\nline2");
    assert_eq!(whole[2], ReaderEvent::UpToDate { offset: off("0_5") });
    assert_eq!(data(&whole[1]).next_offset, off("0_5"));
    assert_eq!(next, "cursor=2&live=sse&offset=0_5");
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        let (ev, n) = run_sse(&[a, b]);
        assert_eq!(ev, whole, "split at {i}");
        assert_eq!(n, next, "split at {i}");
    }
    // Byte by byte.
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run_sse(&singles).0, whole);
}

#[test]
fn sse_reconnects_from_the_last_control_when_the_body_ends() {
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.sse_head(t.id);
    let body = format!(
        "{}{}{}",
        data_event("kept"),
        control("0_4", ",\"streamCursor\":\"9\""),
        data_event("lost")
    );
    h.body(t.id, body.as_bytes());
    h.body(t.id, b"event: data\ndata: partial");
    h.end(t.id);
    let ev = h.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(&data(&ev[0]).data[..], b"kept");
    // Immediately, without a timer.
    assert_eq!(h.r.poll_timeout(), None);
    let t2 = h.tx();
    assert_eq!(query(&t2), "cursor=9&live=sse&offset=0_4");
    h.sse_head(t2.id);
    h.body(
        t2.id,
        format!(
            "{}{}",
            data_event("lost"),
            control("0_8", ",\"streamCursor\":\"10\"")
        )
        .as_bytes(),
    );
    let ev = h.events();
    assert_eq!(&data(&ev[0]).data[..], b"lost");
    assert_eq!(h.r.mode(), ReadMode::Sse);
}

#[test]
fn sse_falls_back_to_long_poll_after_fast_endings() {
    let mut h = H::mode(ReadMode::Sse);
    // A slow ending does not count; neither does a fast one that made progress.
    let t = h.tx();
    h.sse_head(t.id);
    h.advance(Duration::from_secs(2));
    h.end(t.id);
    let t = h.tx();
    h.sse_head(t.id);
    h.body(t.id, control("0_1", ",\"streamCursor\":\"1\"").as_bytes());
    h.end(t.id);
    let _ = h.events();
    for n in 1..=3 {
        let t = h.tx();
        assert_eq!(query(&t), "cursor=1&live=sse&offset=0_1", "connection {n}");
        h.sse_head(t.id);
        // A control that does not move the offset is no progress.
        h.body(t.id, control("0_1", ",\"streamCursor\":\"1\"").as_bytes());
        h.advance(Duration::from_millis(100));
        h.end(t.id);
        let ev = h.events();
        if n < 3 {
            assert!(ev.is_empty(), "{ev:?}");
            assert_eq!(h.r.mode(), ReadMode::Sse);
        } else {
            assert_eq!(ev, vec![ReaderEvent::FellBackToLongPoll]);
        }
    }
    assert_eq!(h.r.mode(), ReadMode::LongPoll);
    let t = h.tx();
    assert_eq!(query(&t), "cursor=1&live=long-poll&offset=0_1");
    assert!(t.deadline.is_some());
}

#[test]
fn sse_without_fallback_backs_off_instead_of_spinning() {
    let mut h = H::new(ReaderConfig {
        sse_fallback: None,
        ..cfg(ReadMode::Sse)
    });
    for n in 1..=5u32 {
        let t = h.tx();
        assert!(query(&t).contains("live=sse"));
        h.sse_head(t.id);
        h.end(t.id);
        let ev = h.events();
        assert!(
            matches!(&ev[..], [ReaderEvent::Retrying { attempt, .. }] if *attempt == n),
            "{ev:?}"
        );
        h.no_tx();
        h.advance(Duration::from_secs(60));
    }
    // A slow ending reconnects at once.
    let t = h.tx();
    h.sse_head(t.id);
    h.body(t.id, control("0_1", ",\"streamCursor\":\"1\"").as_bytes());
    h.advance(Duration::from_secs(30));
    h.end(t.id);
    assert!(h.events().is_empty());
    let t = h.tx();
    assert_eq!(query(&t), "cursor=1&live=sse&offset=0_1");
    assert_eq!(h.r.mode(), ReadMode::Sse);
}

#[test]
fn sse_idle_timeout_cancels_and_reconnects() {
    let mut h = H::new(ReaderConfig {
        offset: off("0_2"),
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    assert_eq!(
        h.r.poll_timeout(),
        Some(h.now + ReaderConfig::DEFAULT_SSE_IDLE_TIMEOUT)
    );
    h.sse_head(t.id);
    h.advance(Duration::from_secs(100));
    h.body(t.id, b": ping\n\n");
    h.advance(Duration::from_secs(100));
    assert!(h.cancels().is_empty(), "activity resets the idle timer");
    h.body(t.id, data_event("held").as_bytes());
    h.advance(Duration::from_secs(120));
    assert_eq!(h.cancels(), vec![t.id]);
    let t2 = h.tx();
    assert_eq!(query(&t2), "live=sse&offset=0_2");
    // Late inputs of the cancelled exchange are ignored.
    h.body(t.id, control("0_9", "").as_bytes());
    assert!(h.events().is_empty());
    assert_eq!(h.r.in_flight(), Some(t2.id));
}

#[test]
fn sse_base64_data_is_decoded() {
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.head(
        t.id,
        200,
        &[
            ("content-type", "text/event-stream"),
            ("Stream-SSE-Data-Encoding", "BASE64"),
        ],
    );
    let body = format!(
        "{}{}{}",
        data_event("AQID\nBA=="),
        data_event("BQ=="),
        control("0_5", ",\"streamCursor\":\"1\"")
    );
    h.body(t.id, body.as_bytes());
    let ev = h.events();
    assert_eq!(&data(&ev[0]).data[..], &[1, 2, 3, 4, 5]);
    assert!(!data(&ev[0]).json);
}

#[test]
fn sse_preserve_leading_space_leaves_base64_streams_alone() {
    // The option concerns text payloads: base64 data is decoded whether the server writes
    // `data: <base64>` or `data:<base64>`, and the decoded bytes are exact.
    for sep in [" ", ""] {
        let mut h = H::new(ReaderConfig {
            sse_preserve_leading_space: true,
            ..cfg(ReadMode::Sse)
        });
        let t = h.tx();
        h.head(
            t.id,
            200,
            &[
                ("content-type", "text/event-stream"),
                ("stream-sse-data-encoding", "base64"),
            ],
        );
        let body = format!(
            "event: data\ndata:{sep}AQID\ndata:{sep}BA==\n\nevent: data\ndata:{sep}IAU=\n\n\
             event: control\ndata:{sep}{{\"streamNextOffset\":\"0_6\",\"streamCursor\":\"1\"}}\n\n"
        );
        h.body(t.id, body.as_bytes());
        let ev = h.events();
        assert_eq!(ev.len(), 1, "separator {sep:?}: {ev:?}");
        assert_eq!(
            &data(&ev[0]).data[..],
            &[1, 2, 3, 4, b' ', 5],
            "separator {sep:?}"
        );
        assert_eq!(data(&ev[0]).next_offset, off("0_6"));
    }
}

#[test]
fn sse_idle_timeout_reconnects_at_once_and_is_no_fast_ending() {
    // A connection the reader ended because the server went silent is not a server that
    // keeps ending SSE at once (DESIGN.md, Reader): it neither backs off nor moves towards
    // the long-poll fallback, and it breaks a run of fast endings.
    let fallback = SseFallback::default();
    let idle = Duration::from_secs(5);
    let mut h = H::new(ReaderConfig {
        sse_idle_timeout: Some(idle),
        ..cfg(ReadMode::Sse)
    });
    let fast_end = |h: &mut H| {
        let t = h.tx();
        h.sse_head(t.id);
        h.end(t.id);
    };
    for _ in 1..fallback.connections {
        fast_end(&mut h);
    }
    assert!(h.events().is_empty());
    let t = h.tx();
    h.sse_head(t.id);
    h.advance(idle);
    assert_eq!(h.cancels(), vec![t.id]);
    assert!(h.events().is_empty(), "no Retrying: no backoff");
    let t = h.tx(); // at once, at the same instant
    assert_eq!(query(&t), "live=sse&offset=-1");
    h.sse_head(t.id);
    h.end(t.id);
    assert!(h.events().is_empty(), "the run of fast endings was broken");
    assert_eq!(h.r.mode(), ReadMode::Sse);
    for _ in 2..fallback.connections {
        fast_end(&mut h);
    }
    assert!(h.events().is_empty());
    fast_end(&mut h);
    assert_eq!(h.events(), vec![ReaderEvent::FellBackToLongPoll]);

    // Without a fallback, fast endings back off, but an idle timeout does not.
    let mut h = H::new(ReaderConfig {
        sse_idle_timeout: Some(idle),
        sse_fallback: None,
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    h.advance(idle);
    assert_eq!(h.cancels(), vec![t.id]);
    assert!(h.events().is_empty());
    let t = h.tx();
    h.sse_head(t.id);
    h.end(t.id);
    assert!(matches!(
        &h.events()[..],
        [ReaderEvent::Retrying { attempt: 1, .. }]
    ));
    h.no_tx();
}

/// An error answer on an SSE connection whose body stalls is still an error answer when the
/// idle timer ends it: a `404` fails the reader (it does not reconnect for ever), a `503`
/// backs off with the start of its body.
#[test]
fn sse_error_answer_ended_by_the_idle_timeout_is_classified() {
    let idle = Duration::from_secs(5);
    for (status, terminal) in [(404, true), (503, false)] {
        let mut h = H::new(ReaderConfig {
            sse_idle_timeout: Some(idle),
            ..cfg(ReadMode::Sse)
        });
        let t = h.tx();
        h.head(t.id, status, &[("content-type", "text/plain")]);
        h.body(t.id, b"busy");
        h.advance(idle);
        assert_eq!(h.cancels(), vec![t.id]);
        let ev = h.events();
        if terminal {
            assert_eq!(failed_kind(&ev[0]), &ErrorKind::NotFound, "{ev:?}");
            h.assert_dead();
        } else {
            assert!(
                matches!(&ev[..], [ReaderEvent::Retrying { error, .. }]
                    if matches!(&error.kind, ErrorKind::UnexpectedStatus { status: 503, body_prefix, .. }
                        if body_prefix == "busy")),
                "{ev:?}"
            );
            h.no_tx();
        }
    }
}

#[test]
fn sse_invalid_base64_is_terminal() {
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.head(t.id, 200, &[("stream-sse-data-encoding", "base64")]);
    h.body(t.id, data_event("not base64!").as_bytes());
    let ev = h.events();
    assert!(matches!(failed_kind(&ev[0]), ErrorKind::InvalidResponse(_)));
    assert_eq!(h.cancels(), vec![t.id]);
    h.assert_dead();
}

#[test]
fn sse_invalid_control_and_limits_are_terminal() {
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.sse_head(t.id);
    h.body(t.id, b"event: control\ndata: {\"nope\":1}\n\n");
    assert!(matches!(
        failed_kind(&h.events()[0]),
        ErrorKind::InvalidResponse(_)
    ));
    h.assert_dead();

    let mut h = H::new(ReaderConfig {
        max_body_bytes: 8,
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    h.body(t.id, data_event("12345").as_bytes());
    h.body(t.id, data_event("6789").as_bytes());
    assert!(matches!(
        failed_kind(&h.events()[0]),
        ErrorKind::LimitExceeded(_)
    ));
    assert_eq!(h.cancels(), vec![t.id]);

    // Exactly the limit held before the control event is accepted.
    let mut h = H::new(ReaderConfig {
        max_body_bytes: 8,
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    h.body(t.id, data_event("1234").as_bytes());
    h.body(t.id, data_event("5678").as_bytes());
    h.body(t.id, control("0_8", "").as_bytes());
    let ev = h.events();
    assert_eq!(&data(&ev[0]).data[..], b"12345678", "{ev:?}");

    let mut h = H::new(ReaderConfig {
        sse_limits: SseLimits {
            max_line_bytes: 16,
            max_event_bytes: 1024,
        },
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    h.body(t.id, b"data: this line is far too long for the limit");
    assert!(matches!(
        failed_kind(&h.events()[0]),
        ErrorKind::LimitExceeded(_)
    ));
}

#[test]
fn sse_json_events_merge_into_one_array() {
    let mut h = H::new(ReaderConfig {
        json: Some(true),
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    let body = format!(
        "{}{}{}{}{}",
        data_event("[\n{\"a\":1},\n{\"b\":[2]}\n]"),
        data_event("[3]"),
        data_event("[ ]"),
        data_event("\"four\""),
        control("0_5", ",\"streamCursor\":\"1\",\"upToDate\":true")
    );
    h.body(t.id, body.as_bytes());
    let ev = h.events();
    let c = data(&ev[0]);
    assert!(c.json);
    let items = c.items().unwrap();
    let items: Vec<&[u8]> = items.iter().map(|b| &b[..]).collect();
    assert_eq!(
        items,
        vec![&b"{\"a\":1}"[..], b"{\"b\":[2]}", b"3", b"\"four\""]
    );
    // One event is handed out as is; an empty array alone releases no data.
    h.body(
        t.id,
        format!(
            "{}{}",
            data_event("[5, 6]"),
            control("0_6", ",\"streamCursor\":\"1\"")
        )
        .as_bytes(),
    );
    let ev = h.events();
    assert_eq!(&data(&ev[0]).data[..], b"[5, 6]");
    h.body(
        t.id,
        format!(
            "{}{}",
            data_event("[]"),
            control("0_6", ",\"streamCursor\":\"1\",\"upToDate\":true")
        )
        .as_bytes(),
    );
    assert_eq!(
        h.events(),
        vec![ReaderEvent::UpToDate { offset: off("0_6") }]
    );
}

#[test]
fn sse_text_events_concatenate() {
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.sse_head(t.id);
    let body = format!(
        "{}{}{}",
        data_event("[1]"),
        data_event("[2]"),
        control("0_2", ",\"streamCursor\":\"1\"")
    );
    h.body(t.id, body.as_bytes());
    assert_eq!(&data(&h.events()[0]).data[..], b"[1][2]");
}

#[test]
fn json_mode_is_learned_and_remembered() {
    let mut h = H::mode(ReadMode::LongPoll);
    let t = h.tx();
    h.respond(
        t.id,
        200,
        &[
            ("Stream-Next-Offset", "0_1"),
            ("content-type", "application/json; charset=utf-8"),
            ("Stream-Cursor", "1"),
        ],
        b"[1]",
    );
    assert!(data(&h.events()[0]).json);
    let t = h.tx();
    h.respond(
        t.id,
        204,
        &[("Stream-Next-Offset", "0_1"), ("Stream-Cursor", "2")],
        b"",
    );
    assert_eq!(
        h.events(),
        vec![ReaderEvent::UpToDate { offset: off("0_1") }]
    );
    let t = h.tx();
    h.respond(
        t.id,
        200,
        &[("Stream-Next-Offset", "0_2"), ("Stream-Cursor", "3")],
        b"[2]",
    );
    assert!(
        data(&h.events()[0]).json,
        "remembered without a content type"
    );
}

#[test]
fn sse_offset_going_backwards_is_terminal() {
    let mut h = H::new(ReaderConfig {
        offset: off("0_5"),
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    h.body(
        t.id,
        format!(
            "{}{}",
            data_event("x"),
            control("0_4", ",\"streamCursor\":\"1\"")
        )
        .as_bytes(),
    );
    let ev = h.events();
    assert_eq!(ev.len(), 1, "nothing released: {ev:?}");
    assert!(matches!(failed_kind(&ev[0]), ErrorKind::InvalidResponse(_)));
    assert_eq!(h.cancels(), vec![t.id]);
    h.assert_dead();
}

// ----- errors and retries -----

#[test]
fn retries_503_with_backoff_and_no_transmit_before_the_timer() {
    let mut h = H::new(ReaderConfig {
        offset: off("0_1"),
        ..cfg(ReadMode::Auto)
    });
    let t = h.tx();
    h.head(t.id, 503, &[]);
    h.body(t.id, b"busy");
    h.end(t.id);
    let ev = h.events();
    let ReaderEvent::Retrying {
        error,
        attempt,
        delay,
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*attempt, 1);
    assert!(error.is_retryable());
    assert!(matches!(
        &error.kind,
        ErrorKind::UnexpectedStatus { status: 503, body_prefix, .. } if body_prefix == "busy"
    ));
    let due = h.r.poll_timeout().expect("a retry timer");
    assert_eq!(due, h.now + *delay);
    h.no_tx();
    if !delay.is_zero() {
        h.advance(*delay - Duration::from_nanos(1));
        h.no_tx();
    }
    h.now = due;
    h.r.handle_timeout(due);
    h.r.handle_timeout(due); // spurious calls are harmless
                             // The wait is over: no timer is left due (a driver would otherwise be woken at once,
                             // again and again, until it polls the request).
    assert_eq!(h.r.poll_timeout(), None);
    let t2 = h.tx();
    assert_eq!(query(&t2), query(&t));
    assert!(t2.id > t.id);
    // A second failure is retry 2; success resets the schedule.
    h.respond(t2.id, 500, &[], b"");
    assert!(matches!(
        h.events()[0],
        ReaderEvent::Retrying { attempt: 2, .. }
    ));
    h.advance(Duration::from_secs(60));
    let t3 = h.tx();
    h.respond(t3.id, 200, &[("Stream-Next-Offset", "0_2")], b"x");
    let _ = h.events();
    let t4 = h.tx();
    h.respond(t4.id, 502, &[], b"");
    assert!(matches!(
        h.events()[0],
        ReaderEvent::Retrying { attempt: 1, .. }
    ));
}

#[test]
fn retries_429_no_sooner_than_retry_after() {
    let mut h = H::mode(ReadMode::LongPoll);
    let t = h.tx();
    h.respond(t.id, 429, &[("Retry-After", "5")], b"");
    let ev = h.events();
    let ReaderEvent::Retrying { error, delay, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(*delay >= Duration::from_secs(5));
    assert_eq!(
        error.kind,
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(5))
        }
    );
    h.advance(Duration::from_millis(4_999));
    h.no_tx();
    h.advance(*delay);
    let _ = h.tx();
}

#[test]
fn retries_transport_failures_including_timeouts() {
    let mut h = H::mode(ReadMode::LongPoll);
    for kind in [
        TransportErrorKind::Connect,
        TransportErrorKind::Timeout,
        TransportErrorKind::ConnectionReset,
    ] {
        let t = h.tx();
        if kind == TransportErrorKind::ConnectionReset {
            h.head(t.id, 200, &[("Stream-Next-Offset", "0_9")]);
            h.body(t.id, b"partial");
        }
        h.fail(t.id, kind);
        let ev = h.events();
        assert_eq!(ev.len(), 1, "no partial data: {ev:?}");
        assert!(
            matches!(&ev[0], ReaderEvent::Retrying { error, .. } if matches!(&error.kind, ErrorKind::Transport(e) if e.kind == kind))
        );
        h.no_tx();
        h.advance(Duration::from_secs(30));
    }
    let t = h.tx();
    assert_eq!(query(&t), "live=long-poll&offset=-1");
    // The driver's own size limit is not retried.
    h.fail(t.id, TransportErrorKind::TooLarge);
    assert!(matches!(
        failed_kind(&h.events()[0]),
        ErrorKind::LimitExceeded(_)
    ));
    h.assert_dead();
}

#[test]
fn retry_policy_exhaustion_fails() {
    let mut h = H::new(ReaderConfig {
        retry: RetryPolicy {
            max_attempts: Some(2),
            ..RetryPolicy::default()
        },
        ..cfg(ReadMode::Auto)
    });
    let t = h.tx();
    h.respond(t.id, 503, &[], b"");
    assert!(matches!(h.events()[0], ReaderEvent::Retrying { .. }));
    h.advance(Duration::from_secs(60));
    let t = h.tx();
    h.fail(t.id, TransportErrorKind::Connect);
    assert!(matches!(
        failed_kind(&h.events()[0]),
        ErrorKind::Transport(_)
    ));
    h.assert_dead();
}

#[test]
fn terminal_statuses() {
    for (status, expect) in [
        (404, ErrorKind::NotFound),
        (410, ErrorKind::Gone),
        (
            400,
            ErrorKind::BadRequest {
                message: "bad offset".into(),
            },
        ),
    ] {
        let mut h = H::mode(ReadMode::Auto);
        let t = h.tx();
        h.respond(t.id, status, &[], b"bad offset");
        let ev = h.events();
        assert_eq!(ev.len(), 1);
        assert_eq!(failed_kind(&ev[0]), &expect);
        let ReaderEvent::Failed(e) = &ev[0] else {
            unreachable!()
        };
        assert_eq!(e.operation, Operation::Read);
        assert_eq!(e.url, URL);
        h.assert_dead();
    }
    let mut h = H::mode(ReadMode::Auto);
    let t = h.tx();
    h.respond(t.id, 403, &[], b"");
    assert!(matches!(
        failed_kind(&h.events()[0]),
        ErrorKind::UnexpectedStatus { status: 403, .. }
    ));
}

#[test]
fn missing_next_offset_is_terminal() {
    let mut h = H::mode(ReadMode::Auto);
    let t = h.tx();
    h.respond(t.id, 200, &[], b"data");
    let ev = h.events();
    assert_eq!(ev.len(), 1, "no data without an offset: {ev:?}");
    assert!(matches!(failed_kind(&ev[0]), ErrorKind::InvalidResponse(_)));
    h.assert_dead();
}

#[test]
fn body_limit_is_terminal() {
    let mut h = H::new(ReaderConfig {
        max_body_bytes: 10,
        ..cfg(ReadMode::Auto)
    });
    let t = h.tx();
    h.head(t.id, 200, &[("Stream-Next-Offset", "0_12")]);
    h.body(t.id, b"123456");
    assert!(h.events().is_empty());
    h.body(t.id, b"789012");
    let ev = h.events();
    assert!(matches!(failed_kind(&ev[0]), ErrorKind::LimitExceeded(_)));
    assert_eq!(h.cancels(), vec![t.id]);
    h.end(t.id);
    assert!(h.events().is_empty());
    h.assert_dead();
}

#[test]
fn offsets_going_backwards_are_terminal() {
    let mut h = H::mode(ReadMode::Auto);
    let t = h.tx();
    h.respond(t.id, 200, &[("Stream-Next-Offset", "0_5")], b"abc");
    let _ = h.events();
    let t = h.tx();
    h.respond(t.id, 200, &[("Stream-Next-Offset", "0_4")], b"zz");
    let ev = h.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(matches!(failed_kind(&ev[0]), ErrorKind::InvalidResponse(_)));
    assert_eq!(h.r.offset(), &off("0_5"));
    h.assert_dead();

    // The server may not hand out a sentinel either.
    let mut h = H::new(ReaderConfig {
        offset: off("0_5"),
        ..cfg(ReadMode::Auto)
    });
    let t = h.tx();
    h.respond(t.id, 200, &[("Stream-Next-Offset", "now")], b"");
    assert!(matches!(
        failed_kind(&h.events()[0]),
        ErrorKind::InvalidResponse(_)
    ));
}

#[test]
fn starting_now_takes_the_first_offset_as_checkpoint() {
    let mut h = H::new(ReaderConfig {
        offset: Offset::now(),
        ..cfg(ReadMode::Auto)
    });
    assert_eq!(h.r.offset(), &Offset::now());
    let t = h.tx();
    assert_eq!(query(&t), "offset=now");
    h.respond(
        t.id,
        200,
        &[
            ("Stream-Next-Offset", "0_9"),
            ("Stream-Up-To-Date", "true"),
            ("content-type", "application/json"),
        ],
        b"[]",
    );
    assert_eq!(
        h.events(),
        vec![ReaderEvent::UpToDate { offset: off("0_9") }]
    );
    assert_eq!(h.r.offset(), &off("0_9"));
    assert!(h.r.is_up_to_date());
    let t = h.tx();
    assert_eq!(query(&t), "live=long-poll&offset=0_9");

    // SSE from `now`: the first control sets the checkpoint.
    let mut h = H::new(ReaderConfig {
        offset: Offset::now(),
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    assert_eq!(query(&t), "live=sse&offset=now");
    h.sse_head(t.id);
    h.body(
        t.id,
        control("0_9", ",\"streamCursor\":\"1\",\"upToDate\":true").as_bytes(),
    );
    assert_eq!(
        h.events(),
        vec![ReaderEvent::UpToDate { offset: off("0_9") }]
    );
}

#[test]
fn stop_cancels_and_silences() {
    let mut h = H::mode(ReadMode::LongPoll);
    let t = h.tx();
    h.respond(
        t.id,
        200,
        &[("Stream-Next-Offset", "0_1"), ("Stream-Cursor", "1")],
        b"a",
    );
    let t = h.tx();
    h.head(t.id, 200, &[("Stream-Next-Offset", "0_2")]);
    h.r.stop();
    assert_eq!(h.cancels(), vec![t.id]);
    assert!(h.events().is_empty(), "queued events are dropped");
    assert_eq!(
        h.r.offset(),
        &off("-1"),
        "the checkpoint covers only what was handed out"
    );
    h.body(t.id, b"b");
    h.end(t.id);
    assert!(h.events().is_empty());
    h.r.stop();
    assert!(h.cancels().is_empty());
    h.assert_dead();

    // Stopping during a retry wait.
    let mut h = H::mode(ReadMode::Auto);
    let t = h.tx();
    h.respond(t.id, 503, &[], b"");
    let _ = h.events();
    h.r.stop();
    assert!(h.cancels().is_empty());
    h.assert_dead();
}

#[test]
fn inputs_for_other_ids_are_ignored() {
    let mut h = H::mode(ReadMode::Auto);
    let t = h.tx();
    let other = RequestId(t.id.0 + 100);
    h.respond(other, 200, &[("Stream-Next-Offset", "0_1")], b"x");
    assert!(h.events().is_empty());
    assert_eq!(h.r.in_flight(), Some(t.id));
    // A body before the head is ignored too.
    h.body(t.id, b"junk");
    h.respond(t.id, 200, &[("Stream-Next-Offset", "0_1")], b"y");
    assert_eq!(&data(&h.events()[0]).data[..], b"y");
}

#[test]
fn request_ids_are_unique_and_increasing() {
    let mut h = H::mode(ReadMode::LongPoll);
    let mut last = None;
    for i in 0..20u32 {
        let t = h.tx();
        assert!(last.is_none_or(|l| t.id > l));
        last = Some(t.id);
        let o = format!("0_{i:03}");
        h.respond(
            t.id,
            204,
            &[("Stream-Next-Offset", o.as_str()), ("Stream-Cursor", "1")],
            b"",
        );
    }
}

#[test]
fn config_is_validated() {
    let now = base_instant();
    let check = |c: ReaderConfig| match Reader::new(c, now) {
        Err(e) => {
            assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{e}");
            assert_eq!(e.operation, Operation::Read);
        }
        Ok(_) => panic!("accepted"),
    };
    check(ReaderConfig::new("/relative"));
    check(ReaderConfig::new("http://h/s?offset=3"));
    check(ReaderConfig::new("http://h/s?a=1&live=sse"));
    check(ReaderConfig {
        retry: RetryPolicy {
            multiplier: 0.5,
            ..RetryPolicy::default()
        },
        ..ReaderConfig::new(URL)
    });
    check(ReaderConfig {
        max_body_bytes: 0,
        ..ReaderConfig::new(URL)
    });
    check(ReaderConfig {
        sse_fallback: Some(SseFallback {
            connections: 0,
            window: Duration::from_secs(1),
        }),
        ..ReaderConfig::new(URL)
    });
    check(ReaderConfig {
        long_poll_deadline: Some(Duration::ZERO),
        ..ReaderConfig::new(URL)
    });
    check(ReaderConfig {
        cursor: Some(String::new()),
        ..ReaderConfig::new(URL)
    });
    let r = Reader::new(
        ReaderConfig {
            cursor: Some("saved".into()),
            mode: ReadMode::LongPoll,
            ..ReaderConfig::new("https://h:8443/v1/stream/a?tenant=t")
        },
        now,
    )
    .unwrap();
    assert_eq!(r.cursor(), Some("saved"));
    assert_eq!(r.mode(), ReadMode::LongPoll);
    assert!(!r.is_finished() && !r.is_eof() && !r.is_up_to_date());
}

#[test]
fn saved_cursor_is_echoed_on_live_requests_only() {
    let mut h = H::new(ReaderConfig {
        cursor: Some("77".into()),
        ..cfg(ReadMode::Auto)
    });
    let t = h.tx();
    assert_eq!(query(&t), "offset=-1");
    h.respond(
        t.id,
        200,
        &[("Stream-Next-Offset", "0_1"), ("Stream-Up-To-Date", "true")],
        b"",
    );
    let t = h.tx();
    assert_eq!(query(&t), "cursor=77&live=long-poll&offset=0_1");
}

#[test]
fn merge_json_rules() {
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    assert_eq!(&merge_json(&[b(" [1] ")])[..], b" [1] ");
    assert_eq!(&merge_json(&[b("{\"a\":1}")])[..], b"[{\"a\":1}]");
    assert_eq!(
        &merge_json(&[b("[1]"), b("[]"), b(" [ 2 , 3 ] ")])[..],
        b"[1,2 , 3]"
    );
    assert_eq!(&merge_json(&[b("[]"), b("[]")])[..], b"[]");
    assert_eq!(&merge_json(&[])[..], b"[]");
}

// ----- large bodies released in pieces (`partial_chunks_over`) -----

mod pieces {
    use super::*;

    const OCTETS: (&str, &str) = ("content-type", "application/octet-stream");

    fn small(mode: ReadMode, over: usize) -> H {
        H::new(ReaderConfig {
            partial_chunks_over: Some(over),
            ..cfg(mode)
        })
    }

    /// A `200` head of an octet-stream read, at `next`.
    fn octets(h: &mut H, id: RequestId, next: &str, up_to_date: bool) {
        let mut headers = vec![OCTETS, ("stream-next-offset", next)];
        if up_to_date {
            headers.push(("stream-up-to-date", "true"));
        }
        h.head(id, 200, &headers);
    }

    /// A catch-up reader (pieces over 4 bytes) that got `abc`, `def`, `ghi` of a response at
    /// offset 20 (so `abcdef` went out in pieces, `ghi` is held).
    fn abc_def_ghi() -> (H, Transmit) {
        let mut h = small(ReadMode::CatchUp, 4);
        let t = h.tx();
        octets(&mut h, t.id, "20", false);
        h.body(t.id, b"abc");
        h.body(t.id, b"def");
        h.body(t.id, b"ghi");
        (h, t)
    }

    fn chunks(evs: &[ReaderEvent]) -> Vec<&Chunk> {
        evs.iter()
            .filter_map(|e| match e {
                ReaderEvent::Data(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn joined(cs: &[&Chunk]) -> Vec<u8> {
        cs.iter().flat_map(|c| c.data.iter().copied()).collect()
    }

    #[test]
    fn a_large_body_is_released_in_pieces_and_the_last_carries_the_offset() {
        let mut h = small(ReadMode::CatchUp, 10);
        let t = h.tx();
        octets(&mut h, t.id, "5", true);
        h.body(t.id, b"01234");
        assert!(h.events().is_empty(), "below the threshold: buffered");
        h.body(t.id, b"56789ab");
        // Over 10 bytes: what was buffered goes out, the newest piece is held back.
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!(cs.len(), 1);
        assert!(cs[0].partial && !cs[0].up_to_date && !cs[0].json);
        assert_eq!(&cs[0].data[..], b"01234");
        assert_eq!(
            cs[0].next_offset,
            Offset::beginning(),
            "checkpoint unchanged"
        );
        assert_eq!(h.r.offset(), &Offset::beginning());
        h.body(t.id, b"cd");
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!(
            (cs.len(), &cs[0].data[..], cs[0].partial),
            (1, &b"56789ab"[..], true)
        );
        h.end(t.id);
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!(cs.len(), 1);
        assert!(!cs[0].partial && cs[0].up_to_date);
        assert_eq!(
            (&cs[0].data[..], cs[0].next_offset.as_str()),
            (&b"cd"[..], "5")
        );
        assert!(matches!(evs[1], ReaderEvent::UpToDate { .. }));
        assert!(matches!(evs[2], ReaderEvent::Done));
        assert_eq!(h.r.offset().as_str(), "5");
    }

    #[test]
    fn small_and_json_bodies_stay_whole() {
        let mut h = small(ReadMode::CatchUp, 4);
        let t = h.tx();
        h.head(
            t.id,
            200,
            &[
                ("content-type", "application/json"),
                ("stream-next-offset", "5"),
                ("stream-up-to-date", "true"),
            ],
        );
        h.body(t.id, b"[1,2,");
        h.body(t.id, b"3,4]");
        assert!(h.events().is_empty());
        h.end(t.id);
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!(
            (cs.len(), cs[0].partial, &cs[0].data[..]),
            (1, false, &b"[1,2,3,4]"[..])
        );

        let mut h = small(ReadMode::CatchUp, 100);
        let t = h.tx();
        octets(&mut h, t.id, "5", true);
        h.body(t.id, b"abc");
        h.body(t.id, b"def");
        h.end(t.id);
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!(
            (cs.len(), cs[0].partial, &cs[0].data[..]),
            (1, false, &b"abcdef"[..])
        );

        let mut h = H::new(ReaderConfig {
            partial_chunks_over: None,
            max_body_bytes: 8,
            ..cfg(ReadMode::CatchUp)
        });
        let t = h.tx();
        octets(&mut h, t.id, "5", false);
        h.body(t.id, b"0123456789");
        let evs = h.events();
        assert!(matches!(failed_kind(&evs[0]), ErrorKind::LimitExceeded(_)));
    }

    #[test]
    fn pieces_are_not_bounded_by_max_body_bytes() {
        let mut h = H::new(ReaderConfig {
            partial_chunks_over: Some(4),
            max_body_bytes: 8,
            ..cfg(ReadMode::CatchUp)
        });
        let t = h.tx();
        octets(&mut h, t.id, "9", true);
        let mut sent = Vec::new();
        for i in 0..100u8 {
            let piece = [i; 3];
            sent.extend_from_slice(&piece);
            h.body(t.id, &piece);
        }
        h.end(t.id);
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!(joined(&cs), sent);
        assert!(cs[..cs.len() - 1].iter().all(|c| c.partial));
        assert!(!cs[cs.len() - 1].partial);
    }

    #[test]
    fn a_retry_after_partial_release_skips_what_was_released() {
        let (mut h, t) = abc_def_ghi();
        h.fail(t.id, TransportErrorKind::ConnectionReset);
        let mut evs = h.events();
        assert!(evs
            .iter()
            .any(|e| matches!(e, ReaderEvent::Retrying { .. })));
        h.advance(Duration::from_secs(60));
        let t2 = h.tx();
        assert!(
            query(&t2).contains("offset=-1"),
            "same offset: {}",
            query(&t2)
        );
        // The server answers the same bytes again, in other pieces, and more.
        octets(&mut h, t2.id, "30", true);
        h.body(t2.id, b"ab");
        h.body(t2.id, b"cdefghijk");
        h.body(t2.id, b"lmn");
        h.end(t2.id);
        evs.extend(h.events());
        let cs = chunks(&evs);
        assert_eq!(joined(&cs), b"abcdefghijklmn", "each byte once: {cs:?}");
        assert_eq!(cs.last().unwrap().next_offset.as_str(), "30");
    }

    /// An error answer to the retry is read whole: the bytes released before are skipped in
    /// data only, so the error keeps the start of its body.
    #[test]
    fn an_error_answer_after_partial_release_keeps_its_whole_body() {
        let (mut h, t) = abc_def_ghi();
        h.fail(t.id, TransportErrorKind::ConnectionReset);
        h.events();
        h.advance(Duration::from_secs(60));
        let t2 = h.tx();
        h.respond(t2.id, 503, &[], b"busy, try again");
        let ev = h.events();
        let Some(ReaderEvent::Retrying { error, .. }) = ev.first() else {
            panic!("{ev:?}")
        };
        assert!(
            matches!(&error.kind, ErrorKind::UnexpectedStatus { body_prefix, .. } if body_prefix == "busy, try again"),
            "{error:?}"
        );
    }

    /// A retry answered with exactly the bytes released before (the first attempt's tail was
    /// not yet stored further): nothing is handed out again, and the end of the pieces is
    /// still reported, with its offset, even from the beginning (`-1`) and without new data.
    #[test]
    fn a_retry_of_exactly_what_was_released_still_reports_the_end() {
        let (mut h, t) = abc_def_ghi();
        h.fail(t.id, TransportErrorKind::ConnectionReset);
        let released = h.events();
        assert_eq!(joined(&chunks(&released)), b"abcdef");
        h.advance(Duration::from_secs(60));
        let t2 = h.tx();
        octets(&mut h, t2.id, "6", true);
        h.body(t2.id, b"abcdef");
        h.end(t2.id);
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!(cs.len(), 1, "{evs:?}");
        assert!(cs[0].data.is_empty() && !cs[0].partial, "{cs:?}");
        assert_eq!(cs[0].next_offset.as_str(), "6");
    }

    #[test]
    fn a_retry_shorter_than_what_was_released_fails() {
        let mut h = small(ReadMode::CatchUp, 2);
        let t = h.tx();
        octets(&mut h, t.id, "20", false);
        h.body(t.id, b"abc");
        h.body(t.id, b"def");
        h.fail(t.id, TransportErrorKind::ConnectionReset);
        h.events();
        h.advance(Duration::from_secs(60));
        let t2 = h.tx();
        h.respond(
            t2.id,
            200,
            &[
                OCTETS,
                ("stream-next-offset", "2"),
                ("stream-up-to-date", "true"),
            ],
            b"ab",
        );
        let evs = h.events();
        assert!(chunks(&evs).is_empty(), "{evs:?}");
        assert!(matches!(
            failed_kind(evs.last().unwrap()),
            ErrorKind::InvalidResponse(_)
        ));
        h.assert_dead();
    }

    #[test]
    fn a_head_that_would_be_refused_releases_nothing() {
        // No Stream-Next-Offset: refused at the end of a whole body, so refused before any
        // piece goes out.
        let mut h = small(ReadMode::CatchUp, 2);
        let t = h.tx();
        h.head(t.id, 200, &[OCTETS]);
        h.body(t.id, b"abcdef");
        let evs = h.events();
        assert!(chunks(&evs).is_empty(), "{evs:?}");
        assert_eq!(h.cancels(), vec![t.id]);
        // An offset going backwards, likewise.
        let mut h = small(ReadMode::LongPoll, 2);
        h.r.read_offset = off("50");
        let t = h.tx();
        octets(&mut h, t.id, "10", false);
        h.body(t.id, b"abcdef");
        let evs = h.events();
        assert!(chunks(&evs).is_empty(), "{evs:?}");
        assert!(matches!(
            failed_kind(&evs[0]),
            ErrorKind::InvalidResponse(_)
        ));
    }

    #[test]
    fn a_snapshot_mid_response_resumes_after_the_pieces_handed_out() {
        let (mut h, _) = abc_def_ghi();
        let first = h.events();
        assert_eq!(joined(&chunks(&first)), b"abcdef");
        let snap = h.r.snapshot();
        assert_eq!(
            (snap.skip_bytes, snap.config.offset.clone()),
            (6, Offset::beginning())
        );
        let json = snap.to_json();
        let mut r = Reader::restore(ReaderSnapshot::from_json(&json).unwrap(), h.now).unwrap();
        let t = r.poll_transmit(h.now).unwrap();
        let now = h.now;
        let feed = |r: &mut Reader, i: Input| r.handle_input(i, now);
        feed(
            &mut r,
            Input::Head {
                id: t.id,
                parts: parts(
                    200,
                    &[
                        OCTETS,
                        ("stream-next-offset", "20"),
                        ("stream-up-to-date", "true"),
                    ],
                ),
            },
        );
        feed(
            &mut r,
            Input::Body {
                id: t.id,
                chunk: Bytes::from_static(b"abcdefghi"),
            },
        );
        feed(&mut r, Input::End { id: t.id });
        let rest: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
        assert_eq!(joined(&chunks(&rest)), b"ghi");
        assert_eq!(r.offset().as_str(), "20");
        assert_eq!(r.snapshot().skip_bytes, 0);
    }
    #[test]
    fn a_body_released_in_pieces_then_ending_at_the_beginning_is_refused() {
        // PROTOCOL.md 8: `-1` is never a server offset; data that left the reader there would
        // be read again and again, pieces included.
        let mut h = small(ReadMode::CatchUp, 4);
        let t = h.tx();
        octets(&mut h, t.id, "-1", false);
        h.body(t.id, b"abc");
        h.body(t.id, b"def");
        h.body(t.id, b"");
        h.end(t.id);
        let evs = h.events();
        assert!(
            evs.iter().any(|e| matches!(e, ReaderEvent::Failed { .. })),
            "{evs:?}"
        );
        assert!(h.r.offset().is_beginning());
    }

    #[test]
    fn a_body_of_exactly_the_threshold_stays_whole() {
        // Pieces start once *more than* `partial_chunks_over` bytes have arrived.
        let mut h = small(ReadMode::CatchUp, 4);
        let t = h.tx();
        octets(&mut h, t.id, "4", true);
        h.body(t.id, b"ab");
        h.body(t.id, b"cd");
        assert!(h.events().is_empty(), "not over the threshold: buffered");
        h.end(t.id);
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!(
            (cs.len(), cs[0].partial, &cs[0].data[..]),
            (1, false, &b"abcd"[..])
        );
    }

    /// The capacity of the buffer gathering the body of the exchange in flight.
    fn buffered_capacity(r: &Reader) -> usize {
        match &r.phase {
            Phase::InFlight(ex) => match &ex.body {
                Body::Buffered { body, .. } => body.rest.capacity(),
                other => panic!("not buffering: {other:?}"),
            },
            other => panic!("no exchange: {other:?}"),
        }
    }

    #[test]
    fn a_body_that_may_go_out_in_pieces_reserves_no_more_than_the_threshold() {
        // ReaderConfig::partial_chunks_over: memory stays bounded by the threshold however
        // large the response, even when its Content-Length announces a megabyte.
        let mut h = small(ReadMode::CatchUp, 64);
        let t = h.tx();
        h.head(
            t.id,
            200,
            &[
                OCTETS,
                ("stream-next-offset", "9"),
                ("content-length", "1000000"),
            ],
        );
        h.body(t.id, b"0123456789");
        h.body(t.id, b"0123456789");
        assert!(h.events().is_empty());
        let cap = buffered_capacity(&h.r);
        assert!(
            cap <= 2 * 64,
            "{cap} bytes reserved for a 64-byte threshold"
        );
    }

    #[test]
    fn a_json_body_is_gathered_in_one_buffer_sized_from_content_length() {
        // JSON bodies stay whole, so the buffer takes the announced size at once (within
        // max_body_bytes) instead of growing, and copying, piece after piece.
        let mut json = b"[".to_vec();
        while json.len() < 2000 {
            json.extend_from_slice(b"1,");
        }
        json.extend_from_slice(b"1]");
        let len = json.len().to_string();
        let mut h = small(ReadMode::CatchUp, 64);
        let t = h.tx();
        h.head(
            t.id,
            200,
            &[
                ("content-type", "application/json"),
                ("stream-next-offset", "9"),
                ("stream-up-to-date", "true"),
                ("content-length", len.as_str()),
            ],
        );
        let mut pieces = json.chunks(100);
        h.body(t.id, pieces.next().unwrap());
        h.body(t.id, pieces.next().unwrap());
        let cap = buffered_capacity(&h.r);
        assert!(cap >= json.len(), "{cap} bytes reserved for {len}");
        for p in pieces {
            h.body(t.id, p);
        }
        assert_eq!(buffered_capacity(&h.r), cap, "the buffer never grew");
        h.end(t.id);
        let evs = h.events();
        let cs = chunks(&evs);
        assert_eq!((cs.len(), &cs[0].data[..]), (1, &json[..]));
    }
}

#[test]
fn without_preserve_leading_space_payloads_follow_the_sse_rules_only() {
    // A server that writes two spaces after `data:`: the SSE rules strip one, and the
    // reader, not asked to preserve spaces, takes nothing else away, whatever the control
    // line looks like.
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.sse_head(t.id);
    h.body(
        t.id,
        b"event: data\ndata:  hello\n\nevent: control\ndata:  {\"streamNextOffset\":\"0_6\",\"streamCursor\":\"1\"}\n\n",
    );
    let ev = h.events();
    assert_eq!(&data(&ev[0]).data[..], b" hello");
}

#[test]
fn sse_preserve_leading_space_strips_one_space_per_line_from_servers_writing_data_space() {
    // A server that writes `data: <payload line>` (its control line shows it): the reader
    // takes that one space off every line of every data event, and only that one.
    let mut h = H::new(ReaderConfig {
        sse_preserve_leading_space: true,
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    h.body(
        t.id,
        b"event: data\ndata: first\ndata:  indented\ndata: \n\nevent: data\ndata: x\n\n\
          event: control\ndata: {\"streamNextOffset\":\"0_9\",\"streamCursor\":\"1\"}\n\n",
    );
    let ev = h.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(&data(&ev[0]).data[..], b"first\n indented\nx");
    assert_eq!(data(&ev[0]).next_offset, off("0_9"));
}

#[test]
fn sse_preserve_leading_space_keeps_payload_spaces_from_servers_writing_data_colon() {
    // A server that writes `data:<payload line>` verbatim (its control line has no space
    // after the colon): a payload line that starts with a space keeps it.
    let mut h = H::new(ReaderConfig {
        sse_preserve_leading_space: true,
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    h.body(
        t.id,
        b"event: data\ndata: hello\ndata:world\n\n\
          event: control\ndata:{\"streamNextOffset\":\"0_9\",\"streamCursor\":\"1\"}\n\n",
    );
    let ev = h.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(&data(&ev[0]).data[..], b" hello\nworld");
}

#[test]
fn an_sse_data_event_within_one_read_is_released_without_a_copy() {
    // One data event whose line lies within one transport read: the chunk handed out shares
    // that read's memory (no copy per released payload).
    let mut h = H::mode(ReadMode::Sse);
    let t = h.tx();
    h.sse_head(t.id);
    let read = Bytes::from(format!(
        "{}{}",
        data_event("a payload"),
        control("0_9", ",\"streamCursor\":\"1\"")
    ));
    h.r.handle_input(
        Input::Body {
            id: t.id,
            chunk: read.clone(),
        },
        h.now,
    );
    let ev = h.events();
    let c = data(&ev[0]);
    assert_eq!(&c.data[..], b"a payload");
    assert!(
        read.as_ptr_range().contains(&c.data.as_ptr()),
        "the released bytes are a copy"
    );
}

#[test]
fn a_body_of_exactly_max_body_bytes_is_accepted() {
    let mut h = H::new(ReaderConfig {
        max_body_bytes: 8,
        partial_chunks_over: None,
        ..cfg(ReadMode::CatchUp)
    });
    let t = h.tx();
    h.head(
        t.id,
        200,
        &[("Stream-Next-Offset", "0_8"), ("Stream-Up-To-Date", "true")],
    );
    h.body(t.id, b"1234");
    h.body(t.id, b"5678");
    h.end(t.id);
    let ev = h.events();
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(&data(&ev[0]).data[..], b"12345678");
    assert_eq!(ev[2], ReaderEvent::Done);
}

#[test]
fn the_beginning_sentinel_is_refused_after_now() {
    // PROTOCOL.md section 8: `-1` and `now` are never server offsets; a reader started at
    // `now` does not move back to the beginning.
    let mut h = H::new(ReaderConfig {
        offset: Offset::now(),
        ..cfg(ReadMode::LongPoll)
    });
    let t = h.tx();
    h.respond(
        t.id,
        204,
        &[("Stream-Next-Offset", "-1"), ("Stream-Up-To-Date", "true")],
        b"",
    );
    let ev = h.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(matches!(failed_kind(&ev[0]), ErrorKind::InvalidResponse(_)));
    assert_eq!(h.r.offset(), &Offset::now());
    h.assert_dead();
}

#[test]
fn data_that_leaves_the_reader_at_the_beginning_is_refused() {
    // PROTOCOL.md section 8: `-1` is never a server offset. A response with data and
    // `Stream-Next-Offset: -1` would have the reader read (and deliver) it again forever.
    let mut h = H::new(cfg(ReadMode::LongPoll));
    assert!(h.r.offset().is_beginning());
    let t = h.tx();
    h.respond(t.id, 200, &[("Stream-Next-Offset", "-1")], b"abc");
    let ev = h.events();
    assert_eq!(ev.len(), 1, "no data delivered: {ev:?}");
    assert!(matches!(failed_kind(&ev[0]), ErrorKind::InvalidResponse(_)));
    assert!(h.r.offset().is_beginning());
    h.assert_dead();

    // Without data it is only no progress (an empty stream that says so oddly).
    let mut h = H::new(cfg(ReadMode::LongPoll));
    let t = h.tx();
    h.respond(
        t.id,
        200,
        &[("Stream-Next-Offset", "-1"), ("Stream-Up-To-Date", "true")],
        b"",
    );
    assert!(
        h.events()
            .iter()
            .all(|e| !matches!(e, ReaderEvent::Failed { .. })),
        "an empty answer at the beginning is not an error"
    );
}

#[test]
fn an_sse_connection_lasting_the_whole_window_is_not_a_fast_ending() {
    // SseFallback: "a connection that lasts at least this long is never counted".
    let window = Duration::from_secs(1);
    let mut h = H::new(ReaderConfig {
        sse_fallback: Some(SseFallback {
            connections: 1,
            window,
        }),
        ..cfg(ReadMode::Sse)
    });
    let t = h.tx();
    h.sse_head(t.id);
    h.advance(window);
    h.end(t.id);
    assert!(h.events().is_empty());
    assert_eq!(h.r.mode(), ReadMode::Sse);
    let t = h.tx();
    assert_eq!(query(&t), "live=sse&offset=-1");
    // One nanosecond less is a fast ending, and one is enough here.
    h.sse_head(t.id);
    h.advance(window - Duration::from_nanos(1));
    h.end(t.id);
    assert_eq!(h.events(), vec![ReaderEvent::FellBackToLongPoll]);
    assert_eq!(h.r.mode(), ReadMode::LongPoll);
}
