//! Reading through both drivers against the reference server: catch-up, long-poll, SSE,
//! closure, resumption and faults (PROTOCOL.md 5.6-5.8, 8, 10.1).

use bytes::Bytes;
use ds_proto::ops::CreateOptions;
use ds_proto::reader::{ReadMode, ReaderConfig, ReaderEvent};
use ds_proto::{Offset, RetryPolicy};
use ds_tests::drivers::{AnyClient, AnyReader, AnyStream, DriverKind};
use ds_tests::refserver::unique_stream_path;
use ds_tests::{Proxy, RecordedRequest, RefServer, RefServerOptions};
use std::time::Duration;

/// The longest a test waits for something it expects to happen at once (a bound against
/// hanging when the behaviour breaks, never a measurement).
const EVENTUALLY: Duration = Duration::from_secs(30);

fn new_stream(server: &RefServer, kind: DriverKind, name: &str, ct: &str) -> AnyStream {
    let s = AnyClient::new(kind, server.url()).stream(&server.stream_url(name));
    s.create(CreateOptions::with_content_type(ct)).unwrap();
    s
}

/// Reads chunks until `want` bytes arrived; returns them and the chunks' offsets.
fn read_bytes(r: &mut AnyReader, want: usize) -> (Vec<u8>, Vec<Offset>) {
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    while data.len() < want {
        match r.next_chunk() {
            Some(Ok(c)) => {
                data.extend_from_slice(&c.data);
                offsets.push(c.next_offset);
            }
            other => panic!("stream ended early after {} bytes: {other:?}", data.len()),
        }
    }
    (data, offsets)
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..RetryPolicy::unlimited()
    }
}

#[test]
fn catch_up_of_a_multi_megabyte_stream() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "big", "application/octet-stream");
        let mut expected = Vec::new();
        for i in 0..24u32 {
            let part: Vec<u8> = (0..128 * 1024).map(|j| ((i * 7 + j) % 251) as u8).collect();
            s.append(part.clone()).unwrap();
            expected.extend(part);
        }
        let all = s.read_all().unwrap();
        assert_eq!(all.data.len(), expected.len(), "{kind:?}");
        assert!(all.data[..] == expected[..], "{kind:?}: same bytes");
        assert!(!all.closed);
    }
}

/// Whether `q` is a long-poll read of the stream at `path`.
fn is_long_poll(q: &RecordedRequest, path: &str) -> bool {
    q.method == "GET" && q.path() == path && q.query_param("live") == Some("long-poll")
}

#[test]
fn long_poll_wakes_on_append() {
    // The server holds a long-poll for a minute, so within this test a long-poll is answered
    // only when an append wakes it. The append is sent once the proxy has forwarded the
    // reader's long-poll and seen no answer to it; the proxy's records then show the order.
    let server = RefServer::start_with(RefServerOptions {
        long_poll_timeout_ms: 60_000,
        ..RefServerOptions::default()
    });
    let proxy = Proxy::start(server.url());
    for kind in DriverKind::ALL {
        let path = unique_stream_path("lp-wake");
        let s = AnyClient::new(kind, proxy.url()).stream(&path);
        s.create(CreateOptions::with_content_type("text/plain"))
            .unwrap();
        let tail = s.append("before").unwrap().next_offset.unwrap();
        proxy.clear();
        let mut r = s.reader(tail, ReadMode::LongPoll).unwrap();
        let (data, saw_pending) = std::thread::scope(|scope| {
            let appender = scope.spawn(|| {
                let pending = proxy.wait_until(EVENTUALLY, |rs| {
                    rs.iter().any(|q| is_long_poll(q, &path) && q.is_pending())
                });
                // Appended in any case, so the reader below ends even when this test fails.
                s.append("after").unwrap();
                pending
            });
            let (data, _) = read_bytes(&mut r, 5);
            (data, appender.join().unwrap())
        });
        assert!(saw_pending, "{kind:?}: no long-poll waited at the server");
        assert_eq!(data, b"after", "{kind:?}");

        let seen = proxy.requests();
        let polls: Vec<&RecordedRequest> = seen.iter().filter(|q| is_long_poll(q, &path)).collect();
        let appends: Vec<&RecordedRequest> = seen
            .iter()
            .filter(|q| q.method == "POST" && q.path() == path)
            .collect();
        assert_eq!(polls.len(), 1, "{kind:?}: one long-poll, woken: {seen:#?}");
        assert_eq!(appends.len(), 1, "{kind:?}: {seen:#?}");
        let (poll, append) = (polls[0], appends[0]);
        assert!(
            poll.seq < append.seq,
            "{kind:?}: the append was sent while the long-poll waited: {seen:#?}"
        );
        assert!(
            poll.answer_began.is_some_and(|at| at > append.seq),
            "{kind:?}: the long-poll was answered only after the append: {seen:#?}"
        );
    }
}

#[test]
fn reads_of_a_closed_stream_end_at_once_in_every_mode() {
    let server = RefServer::shared();
    let proxy = Proxy::start(server.url());
    for kind in DriverKind::ALL {
        for mode in [
            ReadMode::LongPoll,
            ReadMode::Sse,
            ReadMode::Auto,
            ReadMode::CatchUp,
        ] {
            let path = ds_tests::refserver::unique_stream_path("closed");
            let s = AnyClient::new(kind, proxy.url()).stream(&path);
            s.create(CreateOptions::with_content_type("text/plain"))
                .unwrap();
            let tail = s.append("data").unwrap().next_offset.unwrap();
            s.close().unwrap();
            proxy.clear();
            // Any retry would wait an hour: a reader that waits at all shows a `Retrying`
            // event first, and one that keeps asking shows more requests.
            let mut config = s.reader_config();
            config.offset = tail;
            config.mode = mode;
            config.retry = RetryPolicy {
                initial_delay: Duration::from_secs(3600),
                max_delay: Duration::from_secs(3600),
                ..RetryPolicy::unlimited()
            };
            let mut r = s.reader_with(config).unwrap();
            let gets = || proxy.count_matching(|q| q.path() == path && q.method == "GET");
            let mut closed = false;
            while let Some(e) = r.next_event() {
                if let ReaderEvent::Closed { .. } = e {
                    closed = true;
                }
                assert!(
                    !matches!(e, ReaderEvent::Failed(_) | ReaderEvent::Retrying { .. }),
                    "{kind:?} {mode:?}: no wait, no failure: {e:?}"
                );
                assert!(gets() <= 2, "{kind:?} {mode:?}: {} requests", gets());
            }
            assert!(closed && r.is_eof(), "{kind:?} {mode:?}: EOF reported");
            assert!(
                gets() <= 2,
                "{kind:?} {mode:?}: {} requests after EOF",
                gets()
            );
            assert!(r.next_event().is_none(), "nothing after EOF");
            assert!(
                proxy.requests().iter().all(|q| !q.is_pending()),
                "{kind:?} {mode:?}: no request left waiting at the server"
            );
        }
    }
}

#[test]
fn resuming_from_any_chunk_offset_gives_the_rest_exactly() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "resume", "text/plain");
        let mut full = Vec::new();
        let mut offsets = vec![Offset::beginning()];
        for i in 0..8 {
            let part = format!("part-{i};");
            let a = s.append(part.clone()).unwrap();
            full.extend_from_slice(part.as_bytes());
            offsets.push(a.next_offset.unwrap());
        }
        for (i, off) in offsets.iter().enumerate() {
            let rest = s.read_all_from(off.clone()).unwrap();
            let expected: String = (i..8).map(|j| format!("part-{j};")).collect();
            assert_eq!(rest.data, Bytes::from(expected), "{kind:?} from #{i}");
        }
        // And from the offsets a live reader hands out.
        let mut r = s.reader(Offset::beginning(), ReadMode::CatchUp).unwrap();
        let (data, chunk_offsets) = read_bytes(&mut r, full.len());
        assert_eq!(data, full);
        for off in chunk_offsets {
            let rest = s.read_all_from(off.clone()).unwrap();
            assert!(full.ends_with(&rest.data), "{kind:?}");
        }
    }
}

#[test]
fn sse_reads_text_json_and_binary_streams() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        // Text.
        let s = new_stream(server, kind, "sse-text", "text/plain");
        s.append("hello ").unwrap();
        let mut r = s.reader(Offset::beginning(), ReadMode::Sse).unwrap();
        let (data, _) = read_bytes(&mut r, 6);
        assert_eq!(data, b"hello ", "{kind:?}");
        s.append("world").unwrap();
        let (data, _) = read_bytes(&mut r, 5);
        assert_eq!(data, b"world", "{kind:?}: live SSE delivery");
        drop(r);

        // Binary: the server base64-encodes, the reader decodes.
        let b = new_stream(server, kind, "sse-bin", "application/octet-stream");
        let payload: Vec<u8> = (0..=255u8).collect();
        b.append(payload.clone()).unwrap();
        let mut r = b.reader(Offset::beginning(), ReadMode::Sse).unwrap();
        let (data, _) = read_bytes(&mut r, payload.len());
        assert_eq!(data, payload, "{kind:?}: base64 decoded");
        drop(r);

        // JSON: items survive.
        let j = new_stream(server, kind, "sse-json", "application/json");
        j.append_json(&serde_json::json!({"a": 1})).unwrap();
        j.append_json(&serde_json::json!({"b": 2})).unwrap();
        let mut r = j.reader(Offset::beginning(), ReadMode::Sse).unwrap();
        let mut items = Vec::new();
        while items.len() < 2 {
            let c = r.next_chunk().unwrap().unwrap();
            for it in c.items().unwrap() {
                items.push(serde_json::from_slice::<serde_json::Value>(&it).unwrap());
            }
        }
        assert_eq!(
            items,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})],
            "{kind:?}"
        );
    }
}

#[test]
fn offset_now_reads_only_future_data() {
    let server = RefServer::shared();
    let proxy = Proxy::start(server.url());
    for kind in DriverKind::ALL {
        for mode in [ReadMode::LongPoll, ReadMode::Sse, ReadMode::Auto] {
            let path = unique_stream_path("now-live");
            let s = AnyClient::new(kind, proxy.url()).stream(&path);
            s.create(CreateOptions::with_content_type("text/plain"))
                .unwrap();
            s.append("old").unwrap();
            proxy.clear();
            let mut r = s.reader(Offset::now(), mode).unwrap();
            // "new" is appended once the reader's first read (`offset=now`) has reached the
            // server, so `now` is before it.
            let (data, saw_read) = std::thread::scope(|scope| {
                let appender = scope.spawn(|| {
                    let read = proxy.wait_until(EVENTUALLY, |rs| {
                        rs.iter().any(|q| {
                            q.method == "GET"
                                && q.path() == path
                                && q.query_param("offset") == Some("now")
                                && q.forwarded
                        })
                    });
                    s.append("new").unwrap();
                    read
                });
                let (data, _) = read_bytes(&mut r, 3);
                (data, appender.join().unwrap())
            });
            assert!(saw_read, "{kind:?} {mode:?}: no read from `now`");
            assert_eq!(data, b"new", "{kind:?} {mode:?}");
        }
    }
}

#[test]
fn reads_survive_faults_and_deliver_each_byte_once() {
    let server = RefServer::start();
    for kind in DriverKind::ALL {
        for mode in [ReadMode::CatchUp, ReadMode::LongPoll, ReadMode::Sse] {
            let s = new_stream(&server, kind, "faults", "text/plain");
            let mut expected = Vec::new();
            for i in 0..5 {
                let part = format!("<{i}>");
                s.append(part.clone()).unwrap();
                expected.extend(part.into_bytes());
            }
            for fault in [
                serde_json::json!({"status": 500, "count": 1, "method": "GET"}),
                serde_json::json!({"status": 503, "count": 1, "method": "GET"}),
                serde_json::json!({"status": 429, "retryAfter": 1, "count": 1, "method": "GET"}),
                serde_json::json!({"dropConnection": true, "count": 1, "method": "GET"}),
                serde_json::json!({"delayMs": 300, "count": 1, "method": "GET"}),
            ] {
                server.inject_error(s.url(), fault.clone());
                let mut config = ReaderConfig::new(s.url());
                config.mode = mode;
                config.retry = fast_retry();
                let mut r = s.reader_with(config).unwrap();
                let (data, _) = read_bytes(&mut r, expected.len());
                assert_eq!(
                    String::from_utf8_lossy(&data),
                    String::from_utf8_lossy(&expected),
                    "{kind:?} {mode:?} {fault}"
                );
                server.clear_errors();
            }
        }
    }
}

#[test]
fn truncated_json_bodies_are_typed_errors_not_silent_loss() {
    // A truncated body with a matching Content-Length is indistinguishable from a short
    // response for byte streams; for JSON streams it is caught as invalid JSON.
    let server = RefServer::start();
    for kind in DriverKind::ALL {
        let s = new_stream(&server, kind, "trunc", "application/json");
        s.append_json(&serde_json::json!({"key": "some long value that will be cut"}))
            .unwrap();
        server.inject_error(
            s.url(),
            serde_json::json!({"truncateBodyBytes": 10, "count": 1, "method": "GET"}),
        );
        let e = s.read_all().unwrap_err();
        assert!(
            matches!(e.kind, ds_proto::ErrorKind::InvalidResponse(_)),
            "{kind:?}: {e}"
        );
        server.clear_errors();
        assert_eq!(
            s.read_json().unwrap().len(),
            1,
            "{kind:?}: a retry reads it whole"
        );
    }
}

#[test]
fn missing_stream_is_a_terminal_typed_error() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = AnyClient::new(kind, server.url()).stream(&server.stream_url("absent"));
        let mut r = s.reader(Offset::beginning(), ReadMode::Auto).unwrap();
        match r.next_chunk() {
            Some(Err(e)) => assert!(e.is_not_found(), "{kind:?}: {e}"),
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(r.next_chunk().is_none());
    }
}

#[test]
fn sse_leading_spaces_of_text_payloads() {
    // PROTOCOL.md 5.8: SSE data is parsed per the SSE rules, which strip one space after
    // `data:`. The embedded server adds that space when a payload starts with one, so payloads
    // arrive whole. The reference server writes `data:<payload>` verbatim: a reader keeps the
    // payload whole from it only with `sse_preserve_leading_space`.
    let parts = ["Hello", " world", "  two", "\n line"];
    let expected: String = parts.concat();
    let reference = RefServer::shared();
    let embedded = ds_tokio::server::BackgroundServer::start(Default::default()).unwrap();
    for (base, preserve) in [(embedded.url(), false), (reference.url(), true)] {
        for kind in DriverKind::ALL {
            let s =
                AnyClient::new(kind, base).stream(&ds_tests::refserver::unique_stream_path("sp"));
            s.create(CreateOptions::with_content_type("text/plain"))
                .unwrap();
            for p in parts {
                s.append(p).unwrap();
            }
            let mut config = ReaderConfig::new(s.url());
            config.mode = ReadMode::Sse;
            config.sse_preserve_leading_space = preserve;
            let mut r = s.reader_with(config).unwrap();
            let (data, _) = read_bytes(&mut r, expected.len());
            assert_eq!(
                String::from_utf8(data).unwrap(),
                expected,
                "{kind:?} {base}"
            );
        }
    }
}
