//! Reading through both drivers against the reference server: catch-up, long-poll, SSE,
//! closure, resumption and faults (PROTOCOL.md 5.6-5.8, 8, 10.1).

use bytes::Bytes;
use ds_proto::ops::CreateOptions;
use ds_proto::reader::{ReadMode, ReaderConfig, ReaderEvent};
use ds_proto::{Offset, RetryPolicy};
use ds_tests::drivers::{AnyClient, AnyReader, AnyStream, DriverKind};
use ds_tests::{Proxy, RefServer};
use std::time::Duration;

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

#[test]
fn long_poll_wakes_on_append() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let s = new_stream(server, kind, "lp-wake", "text/plain");
        let tail = s.append("before").unwrap().next_offset.unwrap();
        let mut r = s.reader(tail, ReadMode::LongPoll).unwrap();
        let writer = s.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            writer.append("after").unwrap();
        });
        let (data, _) = read_bytes(&mut r, 5);
        assert_eq!(data, b"after", "{kind:?}");
        t.join().unwrap();
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
            let mut r = s.reader(tail, mode).unwrap();
            let started = std::time::Instant::now();
            let mut closed = false;
            while let Some(e) = r.next_event() {
                if let ReaderEvent::Closed { .. } = e {
                    closed = true;
                }
                assert!(
                    !matches!(e, ReaderEvent::Failed(_)),
                    "{kind:?} {mode:?}: {e:?}"
                );
            }
            assert!(closed && r.is_eof(), "{kind:?} {mode:?}: EOF reported");
            assert!(
                started.elapsed() < Duration::from_millis(900),
                "{kind:?} {mode:?}: no wait"
            );
            let gets = proxy.count_matching(|q| q.path() == path && q.method == "GET");
            assert!(gets <= 2, "{kind:?} {mode:?}: {gets} requests after EOF");
            assert!(r.next_event().is_none(), "nothing after EOF");
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
    for kind in DriverKind::ALL {
        for mode in [ReadMode::LongPoll, ReadMode::Sse, ReadMode::Auto] {
            let s = new_stream(server, kind, "now-live", "text/plain");
            s.append("old").unwrap();
            let mut r = s.reader(Offset::now(), mode).unwrap();
            let writer = s.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                writer.append("new").unwrap();
            });
            let (data, _) = read_bytes(&mut r, 3);
            assert_eq!(data, b"new", "{kind:?} {mode:?}");
            t.join().unwrap();
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
