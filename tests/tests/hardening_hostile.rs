//! Hostile and broken servers, one case per test, through both drivers: each ends in a typed
//! error (or a documented, bounded retry), never a panic, a hang or memory beyond the
//! configured limits; data already handed out is never taken back or handed out twice.
//! Every test runs under a watchdog ([`within`]).
//!
//! | case | outcome |
//! | --- | --- |
//! | malformed status line / header line | `Transport(Protocol)` |
//! | a 1 MiB header | `Transport(Protocol)` (the HTTP parser's head limit) |
//! | body longer than `Content-Length` | the declared bytes; the excess is ignored |
//! | body shorter than `Content-Length` | `Transport(ConnectionReset)`; a reader retries, releasing nothing |
//! | endless body, one-shot | `LimitExceeded` at `max_response_bytes`, not retried |
//! | endless body, reader | `Failed(LimitExceeded)` at `max_body_bytes` |
//! | an SSE line of gigabytes | `Failed(LimitExceeded)` at the SSE parser's `max_line_bytes` |
//! | invalid UTF-8 in a text stream's SSE data | delivered byte for byte (data is bytes) |
//! | control event with wrong JSON types | `Failed(InvalidResponse)`; earlier data kept, later data dropped |
//! | `Stream-Next-Offset` missing | `InvalidResponse` |
//! | `Stream-Next-Offset` going backwards | `Failed(InvalidResponse)`; nothing re-delivered |
//! | 200 to a producer without producer headers | acknowledged once, never re-sent |
//! | `Retry-After` of a year | capped at `headers::MAX_RETRY_AFTER` (5 min), which the retry policy's `max_elapsed` then refuses |

use ds_proto::driver::write_tracker::WriteOutcome;
use ds_proto::headers::MAX_RETRY_AFTER;
use ds_proto::ops::ReadOptions;
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::{ReadMode, ReaderEvent};
use ds_proto::{Error, ErrorKind, Offset, RetryPolicy, TransportErrorKind};
use ds_tests::drivers::{AnyClient, AnyReader, AnyStream, ClientSettings, DriverKind};
use ds_tests::hostile::{within, HostileServer, Reply, Step};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
const GIB: u64 = 1 << 30;

fn stream(kind: DriverKind, server: &HostileServer, settings: ClientSettings) -> AnyStream {
    AnyClient::with_settings(kind, server.url(), settings)
        .stream(&server.stream_url(&format!("hostile-{kind:?}")))
}

fn no_retry() -> ClientSettings {
    ClientSettings {
        retry: Some(RetryPolicy::none()),
        request_timeout: Some(Duration::from_secs(10)),
        ..ClientSettings::default()
    }
}

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_attempts: Some(attempts),
        ..RetryPolicy::default()
    }
}

fn transport_kind(e: &Error) -> TransportErrorKind {
    match &e.kind {
        ErrorKind::Transport(t) => t.kind,
        other => panic!("expected a transport error, got {other:?} ({e})"),
    }
}

/// The next event. A blocking reader is read without a deadline here (a deadline needs a
/// `ReaderStopper`, which moves its requests to exchange threads): these tests then drive the
/// path where the reader makes its catch-up and long-poll requests itself, and `within`
/// bounds them. The timeout suite and the conformance runner drive the other path.
fn next(r: &mut AnyReader, what: &str) -> Option<ReaderEvent> {
    match r {
        AnyReader::Blocking(b) => b.next_event(),
        _ => r
            .next_event_until(Instant::now() + Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what}: no event within 20 s")),
    }
}

/// Reads events until the reader ends; returns them.
fn drain(r: &mut AnyReader, what: &str) -> Vec<ReaderEvent> {
    let mut all = Vec::new();
    while let Some(e) = next(r, what) {
        let end = matches!(
            e,
            ReaderEvent::Failed(_) | ReaderEvent::Closed { .. } | ReaderEvent::Done
        );
        all.push(e);
        if end {
            break;
        }
    }
    all
}

fn data_of(events: &[ReaderEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            ReaderEvent::Data(c) => Some(c.data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn failed(events: &[ReaderEvent]) -> &Error {
    match events.last() {
        Some(ReaderEvent::Failed(e)) => e,
        other => panic!("expected Failed last, got {other:?} in {events:?}"),
    }
}

fn sse_head() -> Reply {
    Reply::head(200, &[("Content-Type", "text/event-stream")])
}

fn sse_reader(s: &AnyStream, json: bool) -> AnyReader {
    s.set_content_type(if json {
        "application/json"
    } else {
        "text/plain"
    });
    let mut config = s.reader_config();
    config.mode = ReadMode::Sse;
    config.retry = fast_retries(3);
    config.sse_fallback = None;
    s.reader_with(config).unwrap()
}

#[test]
fn malformed_status_line() {
    within(LIMIT, "malformed_status_line", || {
        for raw in [
            &b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"[..],
            b"HELLO WORLD\r\n\r\n",
            b"HTTP/9.9 200 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            let server = HostileServer::always(Reply::raw(raw.to_vec()));
            for kind in DriverKind::ALL {
                let e = stream(kind, &server, no_retry()).head().unwrap_err();
                assert_eq!(
                    transport_kind(&e),
                    TransportErrorKind::Protocol,
                    "{kind:?}: {e}"
                );
            }
        }
    });
}

#[test]
fn malformed_header_line() {
    within(LIMIT, "malformed_header_line", || {
        let server = HostileServer::always(Reply::raw(
            b"HTTP/1.1 200 OK\r\nThis is not a header\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ));
        for kind in DriverKind::ALL {
            let e = stream(kind, &server, no_retry()).head().unwrap_err();
            assert_eq!(
                transport_kind(&e),
                TransportErrorKind::Protocol,
                "{kind:?}: {e}"
            );
        }
    });
}

#[test]
fn an_enormous_header() {
    within(LIMIT, "an_enormous_header", || {
        let mut raw = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', 1 << 20));
        raw.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let server = HostileServer::always(Reply::raw(raw));
        for kind in DriverKind::ALL {
            let e = stream(kind, &server, no_retry()).head().unwrap_err();
            assert_eq!(
                transport_kind(&e),
                TransportErrorKind::Protocol,
                "{kind:?}: {e}"
            );
        }
    });
}

const READ_HEADERS: &str =
    "Content-Type: text/plain\r\nStream-Next-Offset: 0005\r\nStream-Up-To-Date: true\r\n";

#[test]
fn a_body_longer_than_its_content_length() {
    within(LIMIT, "a_body_longer_than_its_content_length", || {
        let raw = format!(
            "HTTP/1.1 200 OK\r\n{READ_HEADERS}Content-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad"
        );
        let server = HostileServer::always(Reply::raw(raw.into_bytes()));
        for kind in DriverKind::ALL {
            let s = stream(kind, &server, no_retry());
            for _ in 0..3 {
                let r = s.read(ReadOptions::from(Offset::beginning())).unwrap();
                assert_eq!(&r.data[..], b"hello", "{kind:?}: the declared bytes only");
                assert_eq!(r.next_offset.as_str(), "0005");
            }
            let all = s.read_all().unwrap();
            assert_eq!(&all.data[..], b"hello", "{kind:?}");
        }
    });
}

#[test]
fn a_body_shorter_than_its_content_length() {
    within(LIMIT, "a_body_shorter_than_its_content_length", || {
        let raw = format!("HTTP/1.1 200 OK\r\n{READ_HEADERS}Content-Length: 100\r\n\r\nhello");
        let server = HostileServer::always(Reply::raw(raw.into_bytes()));
        for kind in DriverKind::ALL {
            let s = stream(kind, &server, no_retry());
            let e = s.read(ReadOptions::from(Offset::beginning())).unwrap_err();
            assert!(
                matches!(
                    transport_kind(&e),
                    TransportErrorKind::ConnectionReset | TransportErrorKind::Protocol
                ),
                "{kind:?}: {e}"
            );
            // A reader retries (bounded) and never releases the bytes of a cut response.
            let mut config = s.reader_config();
            config.mode = ReadMode::CatchUp;
            config.retry = fast_retries(3);
            let mut r = s.reader_with(config).unwrap();
            let events = drain(&mut r, "short body");
            assert!(data_of(&events).is_empty(), "{kind:?}: {events:?}");
            let retries = events
                .iter()
                .filter(|e| matches!(e, ReaderEvent::Retrying { .. }))
                .count();
            assert_eq!(retries, 2, "{kind:?}");
            assert!(failed(&events).is_retryable());
        }
    });
}

fn endless(head: &str, chunk: &[u8]) -> Reply {
    Reply::raw(head.as_bytes().to_vec()).then(Step::Repeat {
        chunk: chunk.to_vec(),
        total: 4 * GIB,
    })
}

#[test]
fn an_endless_body_to_a_one_shot_read() {
    within(LIMIT, "an_endless_body_to_a_one_shot_read", || {
        for head in [
            format!("HTTP/1.1 200 OK\r\n{READ_HEADERS}\r\n"), // ends at close: never
            format!("HTTP/1.1 200 OK\r\n{READ_HEADERS}Content-Length: 4294967296\r\n\r\n"),
        ] {
            let server = HostileServer::always(endless(&head, &[b'x'; 64 * 1024]));
            for kind in DriverKind::ALL {
                let settings = ClientSettings {
                    max_response_bytes: Some(1 << 20),
                    // The default retry policy: reads are retried on transport errors, but a
                    // body over the limit is not transient.
                    ..ClientSettings::default()
                };
                let before = server.request_count();
                let s = stream(kind, &server, settings);
                let e = s.read(ReadOptions::from(Offset::beginning())).unwrap_err();
                assert!(
                    matches!(e.kind, ErrorKind::LimitExceeded(_)),
                    "{kind:?}: {e}"
                );
                assert_eq!(server.request_count(), before + 1, "{kind:?}: not retried");
                assert!(server.wait_for_no_connections(Duration::from_secs(10)));
                assert!(
                    server.bytes_written() < 64 << 20,
                    "{kind:?}: the client stopped reading ({} bytes sent)",
                    server.bytes_written()
                );
            }
        }
    });
}

/// A server answering every read with a 200 whose chunked body of `y`s never ends.
fn endless_read_server() -> HostileServer {
    let head = format!("HTTP/1.1 200 OK\r\n{READ_HEADERS}Transfer-Encoding: chunked\r\n\r\n");
    let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
    chunk.extend([b'y'; 64 * 1024]);
    chunk.extend_from_slice(b"\r\n");
    HostileServer::always(endless(&head, &chunk))
}

/// A catch-up reader with a 1 MiB `max_body_bytes` and the given `partial_chunks_over`.
fn endless_catch_up(s: &AnyStream, partial: Option<usize>) -> AnyReader {
    let mut config = s.reader_config();
    config.mode = ReadMode::CatchUp;
    config.max_body_bytes = 1 << 20;
    config.partial_chunks_over = partial;
    s.reader_with(config).unwrap()
}

#[test]
fn an_endless_body_to_a_reader() {
    within(LIMIT, "an_endless_body_to_a_reader", || {
        let server = endless_read_server();
        for kind in DriverKind::ALL {
            let s = stream(kind, &server, ClientSettings::default());
            // Bodies buffered whole: the limit ends it.
            let mut r = endless_catch_up(&s, None);
            let events = drain(&mut r, "endless reader");
            assert!(data_of(&events).is_empty());
            let e = failed(&events);
            assert!(
                matches!(e.kind, ErrorKind::LimitExceeded(_)),
                "{kind:?}: {e}"
            );
            drop(r);
            assert!(server.wait_for_no_connections(Duration::from_secs(10)));
            assert!(server.bytes_written() < 64 << 20, "{kind:?}");
        }
    });
}

#[test]
fn an_endless_body_released_in_pieces_keeps_memory_bounded_and_the_checkpoint_still() {
    within(LIMIT, "an_endless_body_released_in_pieces", || {
        let server = endless_read_server();
        for kind in DriverKind::ALL {
            let s = stream(kind, &server, ClientSettings::default());
            let start = s.reader_config().offset;
            let mut r = endless_catch_up(&s, Some(256 * 1024));
            // Pieces keep coming (a body has no size limit when released in pieces), each
            // bounded, none moving the checkpoint: the response never ended.
            let mut total = 0usize;
            while total < 8 << 20 {
                match next(&mut r, "endless pieces") {
                    Some(ReaderEvent::Data(c)) => {
                        assert!(c.partial, "{kind:?}: a whole chunk from an endless body");
                        assert!(
                            c.data.len() <= 512 * 1024,
                            "{kind:?}: {} bytes",
                            c.data.len()
                        );
                        assert!(c.data.iter().all(|&b| b == b'y'));
                        assert_eq!(c.next_offset, start, "{kind:?}");
                        total += c.data.len();
                    }
                    other => panic!("{kind:?}: {other:?}"),
                }
            }
            assert_eq!(r.offset(), start, "{kind:?}");
            drop(r);
            assert!(server.wait_for_no_connections(Duration::from_secs(10)));
        }
    });
}

#[test]
fn an_sse_line_of_gigabytes() {
    within(LIMIT, "an_sse_line_of_gigabytes", || {
        let server = HostileServer::always(
            sse_head()
                .then(Step::Write(b"event: data\ndata: ".to_vec()))
                .then(Step::Repeat {
                    chunk: vec![b'a'; 64 * 1024],
                    total: 8 * GIB,
                }),
        );
        for kind in DriverKind::ALL {
            let s = stream(kind, &server, ClientSettings::default());
            let mut r = sse_reader(&s, false);
            let events = drain(&mut r, "long SSE line");
            assert!(data_of(&events).is_empty());
            let e = failed(&events);
            assert!(
                matches!(e.kind, ErrorKind::LimitExceeded(_)),
                "{kind:?}: {e}"
            );
            drop(r);
            assert!(server.wait_for_no_connections(Duration::from_secs(10)));
            assert!(server.bytes_written() < 64 << 20, "{kind:?}");
        }
    });
}

#[test]
fn invalid_utf8_in_a_text_streams_sse() {
    within(LIMIT, "invalid_utf8_in_a_text_streams_sse", || {
        let mut body = b"event: data\ndata: caf\xe9 \xff\xfe!\n\n".to_vec();
        body.extend_from_slice(
            b"event: control\ndata: {\"streamNextOffset\":\"0009\",\"streamClosed\":true}\n\n",
        );
        let server = HostileServer::always(sse_head().then(Step::Write(body)));
        for kind in DriverKind::ALL {
            let s = stream(kind, &server, ClientSettings::default());
            let mut r = sse_reader(&s, false);
            let events = drain(&mut r, "utf-8");
            // Data is bytes: what the server sent is handed over unchanged (no panic, no
            // replacement characters).
            assert_eq!(data_of(&events), b"caf\xe9 \xff\xfe!", "{kind:?}");
            assert!(
                matches!(events.last(), Some(ReaderEvent::Closed { offset }) if offset.as_str() == "0009")
            );
        }
        // Invalid UTF-8 in a control event is an invalid response.
        let server = HostileServer::always(sse_head().then(Step::Write(
            b"event: control\ndata: {\"streamNextOffset\":\"\xff\"}\n\n".to_vec(),
        )));
        for kind in DriverKind::ALL {
            let s = stream(kind, &server, ClientSettings::default());
            let events = drain(&mut sse_reader(&s, false), "utf-8 control");
            assert!(matches!(
                failed(&events).kind,
                ErrorKind::InvalidResponse(_)
            ));
        }
    });
}

#[test]
fn a_control_event_with_wrong_json_types() {
    within(LIMIT, "a_control_event_with_wrong_json_types", || {
        for bad in [
            &br#"{"streamNextOffset":7}"#[..],
            br#"{"streamNextOffset":"0009","upToDate":"yes"}"#,
            br#"{"streamNextOffset":"0009","streamClosed":1}"#,
            br#"["streamNextOffset"]"#,
            br#"{"streamNextOffset":"a/b"}"#,
        ] {
            let mut body = b"event: data\ndata: abc\n\nevent: control\ndata: {\"streamNextOffset\":\"0003\",\"upToDate\":true}\n\n".to_vec();
            body.extend_from_slice(b"event: data\ndata: zzz\n\nevent: control\ndata: ");
            body.extend_from_slice(bad);
            body.extend_from_slice(b"\n\n");
            let server = HostileServer::always(sse_head().then(Step::Write(body)));
            for kind in DriverKind::ALL {
                let before = server.request_count();
                let s = stream(kind, &server, ClientSettings::default());
                let events = drain(&mut sse_reader(&s, false), "control");
                // What a good control released stays released, once; the data held for the bad
                // control is never released.
                assert_eq!(data_of(&events), b"abc", "{kind:?}");
                let e = failed(&events);
                assert!(
                    matches!(e.kind, ErrorKind::InvalidResponse(_)),
                    "{kind:?}: {e}"
                );
                assert_eq!(server.request_count(), before + 1, "{kind:?}: not retried");
            }
        }
    });
}

#[test]
fn stream_next_offset_missing() {
    within(LIMIT, "stream_next_offset_missing", || {
        let server = HostileServer::always(Reply::http(
            200,
            &[
                ("Content-Type", "text/plain"),
                ("Stream-Up-To-Date", "true"),
            ],
            b"abc",
        ));
        for kind in DriverKind::ALL {
            let s = stream(kind, &server, ClientSettings::default());
            let e = s.read(ReadOptions::from(Offset::beginning())).unwrap_err();
            assert!(
                matches!(e.kind, ErrorKind::InvalidResponse(_)),
                "{kind:?}: {e}"
            );
            let mut r = s.reader(Offset::beginning(), ReadMode::CatchUp).unwrap();
            let events = drain(&mut r, "missing offset");
            assert!(
                data_of(&events).is_empty(),
                "{kind:?}: no bytes without their offset"
            );
            assert!(matches!(
                failed(&events).kind,
                ErrorKind::InvalidResponse(_)
            ));
        }
    });
}

#[test]
fn stream_next_offset_going_backwards() {
    within(LIMIT, "stream_next_offset_going_backwards", || {
        let read = |offset: &str, body: &[u8]| {
            Reply::http(
                200,
                &[
                    ("Content-Type", "text/plain"),
                    ("Stream-Next-Offset", offset),
                    ("Stream-Up-To-Date", "true"),
                ],
                body,
            )
        };
        for kind in DriverKind::ALL {
            let server = HostileServer::script(vec![read("0005", b"abc"), read("0003", b"zzz")]);
            let s = stream(kind, &server, ClientSettings::default());
            let mut r = s.reader(Offset::beginning(), ReadMode::LongPoll).unwrap();
            let events = drain(&mut r, "backwards");
            assert_eq!(
                data_of(&events),
                b"abc",
                "{kind:?}: once, and nothing after"
            );
            let e = failed(&events);
            assert!(
                matches!(e.kind, ErrorKind::InvalidResponse(_)),
                "{kind:?}: {e}"
            );
            assert_eq!(
                r.offset().as_str(),
                "0005",
                "{kind:?}: the checkpoint stays"
            );

            // In SSE: a control event going back.
            let sse = HostileServer::always(sse_head().then(Step::Write(
                b"event: data\ndata: abc\n\nevent: control\ndata: {\"streamNextOffset\":\"0005\"}\n\nevent: data\ndata: zzz\n\nevent: control\ndata: {\"streamNextOffset\":\"0003\"}\n\n".to_vec(),
            )));
            let s = stream(kind, &sse, ClientSettings::default());
            let events = drain(&mut sse_reader(&s, false), "backwards sse");
            assert_eq!(data_of(&events), b"abc", "{kind:?}");
            assert!(matches!(
                failed(&events).kind,
                ErrorKind::InvalidResponse(_)
            ));
        }
    });
}

#[test]
fn a_200_to_a_producer_without_producer_headers() {
    within(
        LIMIT,
        "a_200_to_a_producer_without_producer_headers",
        || {
            for kind in DriverKind::ALL {
                // A server that ignores the producer headers (no echo at all, not even an offset).
                let server = HostileServer::always(Reply::http(200, &[], b""));
                let s = stream(kind, &server, ClientSettings::default());
                let config = ProducerConfig {
                    linger: Duration::from_millis(1),
                    ..ProducerConfig::new(s.url(), "no-echo")
                };
                let w = s.writer_with(config).unwrap();
                let outcome = w.append_and_wait("one").unwrap();
                assert!(
                    matches!(outcome, Some(WriteOutcome::Acked { .. })),
                    "{kind:?}: {outcome:?}"
                );
                let outcome = w.append_and_wait("two").unwrap();
                assert!(matches!(outcome, Some(WriteOutcome::Acked { .. })));
                w.close(false).unwrap();
                // Stored means stored: each batch was sent exactly once, with seq 0 and 1.
                let seqs: Vec<_> = server
                    .requests()
                    .iter()
                    .map(|r| r.header("producer-seq").map(str::to_owned))
                    .collect();
                assert_eq!(
                    seqs,
                    vec![Some("0".to_owned()), Some("1".to_owned())],
                    "{kind:?}"
                );
            }
        },
    );
}

#[test]
fn a_retry_after_of_a_year() {
    within(LIMIT, "a_retry_after_of_a_year", || {
        for status in [503u16, 429] {
            let server = HostileServer::always(Reply::http(
                status,
                &[("Retry-After", "31536000")],
                b"come back next year",
            ));
            for kind in DriverKind::ALL {
                // The default policy (2 minutes at most): the capped 5 minutes do not fit, so
                // the operation fails at once instead of sleeping.
                let s = stream(kind, &server, ClientSettings::default());
                let before = server.request_count();
                let started = Instant::now();
                let e = s.head().unwrap_err();
                assert!(started.elapsed() < Duration::from_secs(5), "{kind:?}");
                assert_eq!(server.request_count(), before + 1);
                assert_eq!(e.kind.retry_after(), Some(MAX_RETRY_AFTER), "{kind:?}: {e}");
                // A reader retrying without limit waits the capped time, not a year.
                let mut r = s.reader(Offset::beginning(), ReadMode::LongPoll).unwrap();
                match next(&mut r, "retry-after") {
                    Some(ReaderEvent::Retrying { delay, .. }) => {
                        assert_eq!(delay, MAX_RETRY_AFTER, "{kind:?}")
                    }
                    other => panic!("{kind:?}: {other:?}"),
                }
            }
        }
    });
}

/// A blocking catch-up reader of an endless body, stopped after its first piece, with the
/// stopper made before reading (its requests go to an exchange thread, which fills the input
/// queue while this thread does not read) or after it (the reader reads the response itself):
/// nothing more is handed out, `stop()` does not block, and the connection closes.
///
/// With the stopper made first, `stop()` is called on the reader's own thread many more times
/// than any input queue holds (ds-blocking's holds 64): every call that finds room queues a
/// wake-up, so whatever the exchange thread queued meanwhile, later calls meet a full queue,
/// where a `stop()` that waited for room would wait forever (the reader's thread is the one
/// that would make room), and the watchdog would fail the test. No sleep hopes for the
/// exchange thread to fill the queue first.
fn stop_after_the_first_piece(stopper_first: bool) {
    let server = endless_read_server();
    let s = stream(DriverKind::Blocking, &server, ClientSettings::default());
    let mut r = endless_catch_up(&s, Some(256 * 1024));
    let AnyReader::Blocking(reader) = &mut r else {
        unreachable!("a blocking stream gives a blocking reader")
    };
    let early = stopper_first.then(|| reader.stopper());
    // The endless body gives a piece at once.
    assert!(matches!(reader.next_event(), Some(ReaderEvent::Data(_))));
    let stopper = early.unwrap_or_else(|| reader.stopper());
    let calls = if stopper_first { 10_000 } else { 1 };
    for _ in 0..calls {
        stopper.stop();
    }
    assert_eq!(
        reader.next_event(),
        None,
        "pieces were handed out after stop() (stopper first: {stopper_first})"
    );
    assert_eq!(reader.next_event(), None);
    drop(r);
    assert!(server.wait_for_no_connections(Duration::from_secs(10)));
}

#[test]
fn a_stopper_made_while_a_blocking_reader_reads_a_response_itself_stops_it() {
    within(LIMIT, "a_stopper_made_mid_response", || {
        stop_after_the_first_piece(false)
    });
}

#[test]
fn a_stop_with_pieces_queued_returns_at_once_and_never_blocks() {
    within(LIMIT, "a_stop_with_pieces_queued", || {
        stop_after_the_first_piece(true)
    });
}
