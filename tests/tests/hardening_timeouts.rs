//! Timeouts and liveness, both drivers, against servers that accept and then say nothing:
//! the connect timeout, the per-attempt timeout of one-shot operations (and of `read_all`),
//! the long-poll deadline (derived from `ClientBuilder::long_poll_wait`), the SSE idle
//! timeout (reconnect from the last offset), and a writer's request deadline (the client's
//! request timeout when the producer config sets none). Every test is bounded.

use ds_proto::ops::ReadOptions;
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::{ReadMode, ReaderEvent};
use ds_proto::{Error, ErrorKind, Offset, RetryPolicy, TransportErrorKind};
use ds_tests::drivers::{AnyClient, AnyReader, ClientSettings, DriverKind};
use ds_tests::hostile::{within, HostileServer, Reply, Step};
use std::time::{Duration, Instant};

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_attempts: Some(attempts),
        ..RetryPolicy::default()
    }
}

fn assert_transport(e: &Error, kind: TransportErrorKind, what: &str) {
    match &e.kind {
        ErrorKind::Transport(t) => assert_eq!(t.kind, kind, "{what}: {e}"),
        other => panic!("{what}: expected a {kind:?} transport error, got {other:?} ({e})"),
    }
}

/// The next event, failing the test when none comes within `within`.
fn next(r: &mut AnyReader, within: Duration, what: &str) -> Option<ReaderEvent> {
    r.next_event_until(Instant::now() + within)
        .unwrap_or_else(|_| panic!("{what}: no event within {within:?}"))
}

#[test]
fn one_shot_operations_time_out_against_a_silent_server() {
    within(
        Duration::from_secs(60),
        "one_shot_operations_time_out_against_a_silent_server",
        || {
            let server = HostileServer::silent();
            for kind in DriverKind::ALL {
                let settings = ClientSettings {
                    retry: Some(RetryPolicy::none()),
                    request_timeout: Some(Duration::from_millis(300)),
                    ..ClientSettings::default()
                };
                let s = AnyClient::with_settings(kind, server.url(), settings)
                    .stream(&server.stream_url("silent"));
                let started = Instant::now();
                let e = s.head().unwrap_err();
                assert_transport(&e, TransportErrorKind::Timeout, &format!("{kind:?} head"));
                assert!(started.elapsed() < Duration::from_secs(3), "{kind:?}");
                let e = s.read(ReadOptions::from(Offset::beginning())).unwrap_err();
                assert_transport(&e, TransportErrorKind::Timeout, &format!("{kind:?} read"));
                // `read_all` is bounded the same way (each catch-up request).
                let e = s.read_all().unwrap_err();
                assert_transport(
                    &e,
                    TransportErrorKind::Timeout,
                    &format!("{kind:?} read_all"),
                );

                // With retries: each attempt times out, then the policy gives up.
                let before = server.request_count();
                let settings = ClientSettings {
                    retry: Some(fast_retries(3)),
                    request_timeout: Some(Duration::from_millis(200)),
                    ..ClientSettings::default()
                };
                let s = AnyClient::with_settings(kind, server.url(), settings)
                    .stream(&server.stream_url("silent"));
                let started = Instant::now();
                let e = s.head().unwrap_err();
                assert_transport(
                    &e,
                    TransportErrorKind::Timeout,
                    &format!("{kind:?} retried head"),
                );
                assert!(started.elapsed() < Duration::from_secs(5), "{kind:?}");
                assert!(server.wait_for_requests(before + 3, Duration::from_secs(2)));
                assert_eq!(
                    server.request_count(),
                    before + 3,
                    "{kind:?}: three attempts"
                );
            }
        },
    );
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs
/// until the client's connect timeout. `None` if the queue could not be filled.
fn unanswered_listener() -> Option<(std::net::TcpListener, Vec<std::net::TcpStream>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    let addr = listener.local_addr().ok()?;
    let mut held = Vec::new();
    for _ in 0..4096 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => held.push(s),
            Err(_) => return Some((listener, held)),
        }
    }
    None
}

#[test]
fn connecting_is_bounded_by_the_connect_timeout() {
    within(
        Duration::from_secs(60),
        "connecting_is_bounded_by_the_connect_timeout",
        || {
            let Some((listener, _held)) = unanswered_listener() else {
                eprintln!("could not fill an accept queue here; skipping");
                return;
            };
            let url = format!("http://{}", listener.local_addr().unwrap());
            for kind in DriverKind::ALL {
                let settings = ClientSettings {
                    retry: Some(RetryPolicy::none()),
                    connect_timeout: Some(Duration::from_millis(300)),
                    request_timeout: Some(Duration::from_secs(30)),
                    ..ClientSettings::default()
                };
                let s = AnyClient::with_settings(kind, &url, settings).stream("/v1/stream/c");
                let started = Instant::now();
                let e = s.head().unwrap_err();
                let took = started.elapsed();
                assert!(
                    took < Duration::from_secs(5),
                    "{kind:?}: the connect timeout bounds connecting ({took:?})"
                );
                match &e.kind {
                    ErrorKind::Transport(t) => assert!(
                        matches!(
                            t.kind,
                            TransportErrorKind::Timeout | TransportErrorKind::Connect
                        ),
                        "{kind:?}: {e}"
                    ),
                    other => panic!("{kind:?}: {other:?}"),
                }
            }
        },
    );
}

#[test]
fn a_long_poll_to_a_silent_server_is_retried_then_fails() {
    within(
        Duration::from_secs(60),
        "a_long_poll_to_a_silent_server_is_retried_then_fails",
        || {
            let server = HostileServer::silent();
            for kind in DriverKind::ALL {
                let s = AnyClient::new(kind, server.url()).stream(&server.stream_url("lp"));
                let mut config = s.reader_config();
                config.mode = ReadMode::LongPoll;
                config.long_poll_deadline = Some(Duration::from_millis(300));
                config.retry = fast_retries(3);
                let mut r = s.reader_with(config).unwrap();
                let started = Instant::now();
                let mut retries = 0;
                loop {
                    match next(&mut r, Duration::from_secs(5), &format!("{kind:?}")) {
                        Some(ReaderEvent::Retrying { error, .. }) => {
                            assert_transport(&error, TransportErrorKind::Timeout, "retrying");
                            retries += 1;
                        }
                        Some(ReaderEvent::Failed(e)) => {
                            assert_transport(&e, TransportErrorKind::Timeout, "failed");
                            break;
                        }
                        other => panic!("{kind:?}: {other:?}"),
                    }
                }
                assert_eq!(retries, 2, "{kind:?}");
                assert!(started.elapsed() < Duration::from_secs(5), "{kind:?}");
            }
        },
    );
}

#[test]
fn the_client_long_poll_wait_sets_the_readers_deadline() {
    within(
        Duration::from_secs(60),
        "the_client_long_poll_wait_sets_the_readers_deadline",
        || {
            let server = HostileServer::silent();
            for kind in DriverKind::ALL {
                let settings = ClientSettings {
                    long_poll_wait: Some(Duration::from_millis(200)),
                    ..ClientSettings::default()
                };
                let s = AnyClient::with_settings(kind, server.url(), settings)
                    .stream(&server.stream_url("lp-default"));
                // Twice the wait, at least the wait plus one second.
                assert_eq!(
                    s.reader_config().long_poll_deadline,
                    Some(Duration::from_millis(1200))
                );
                // The plain `reader` (unlimited retries) reports a timeout and retries, not hangs.
                let mut r = s.reader(Offset::now(), ReadMode::LongPoll).unwrap();
                match next(&mut r, Duration::from_secs(5), &format!("{kind:?}")) {
                    Some(ReaderEvent::Retrying { error, attempt, .. }) => {
                        assert_eq!(attempt, 1);
                        assert_transport(&error, TransportErrorKind::Timeout, &format!("{kind:?}"));
                    }
                    other => panic!("{kind:?}: {other:?}"),
                }
            }
            // The default: the reference server's 30 s wait, doubled.
            let s = AnyClient::new(DriverKind::Blocking, server.url()).stream("/x");
            assert_eq!(
                s.reader_config().long_poll_deadline,
                Some(Duration::from_secs(60))
            );
        },
    );
}

fn sse_head() -> Reply {
    Reply::head(
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
        ],
    )
}

#[test]
fn a_silent_sse_response_is_dropped_and_resumed_from_the_last_offset() {
    within(
        Duration::from_secs(60),
        "a_silent_sse_response_is_dropped_and_resumed_from_the_last_offset",
        || {
            let server = HostileServer::start(|req| {
                if req.query_param("offset") == Some("-1") {
                    sse_head()
                    .then(Step::Write(
                        b"event: data\ndata: hello\n\nevent: control\ndata: {\"streamNextOffset\":\"0005\",\"streamCursor\":\"c1\",\"upToDate\":true}\n\n"
                            .to_vec(),
                    ))
                    .then(Step::Hang)
                } else {
                    // Headers, then nothing at all.
                    sse_head().then(Step::Hang)
                }
            });
            for kind in DriverKind::ALL {
                let before = server.request_count();
                let settings = ClientSettings {
                    sse_idle_timeout: Some(Duration::from_millis(250)),
                    ..ClientSettings::default()
                };
                let s = AnyClient::with_settings(kind, server.url(), settings)
                    .stream(&server.stream_url(&format!("sse-{kind:?}")));
                s.set_content_type("text/plain");
                let mut r = s.reader(Offset::beginning(), ReadMode::Sse).unwrap();
                match next(&mut r, Duration::from_secs(5), "data") {
                    Some(ReaderEvent::Data(c)) => {
                        assert_eq!(&c.data[..], b"hello");
                        assert_eq!(c.next_offset.as_str(), "0005");
                    }
                    other => panic!("{kind:?}: {other:?}"),
                }
                assert!(matches!(
                    next(&mut r, Duration::from_secs(5), "up to date"),
                    Some(ReaderEvent::UpToDate { .. })
                ));
                // Nothing more is delivered (no duplicate of "hello"): the reader keeps reconnecting
                // from 0005 each time the silent response idles out.
                match r.next_event_until(Instant::now() + Duration::from_millis(1500)) {
                    Err(_) => {}
                    Ok(e) => panic!("{kind:?}: unexpected {e:?}"),
                }
                let sse: Vec<_> = server.requests()[before..]
                    .iter()
                    .filter(|q| q.query_param("live") == Some("sse"))
                    .cloned()
                    .collect();
                assert!(sse.len() >= 3, "{kind:?}: {} SSE requests", sse.len());
                assert_eq!(sse[0].query_param("offset"), Some("-1"));
                for q in &sse[1..] {
                    assert_eq!(q.query_param("offset"), Some("0005"), "{kind:?}");
                    assert_eq!(q.query_param("cursor"), Some("c1"), "{kind:?}");
                }
            }
        },
    );
}

fn ack(seq: u64) -> Reply {
    let seq = seq.to_string();
    Reply::http(
        200,
        &[
            ("Stream-Next-Offset", "0001"),
            ("Producer-Epoch", "0"),
            ("Producer-Seq", seq.as_str()),
        ],
        b"",
    )
}

#[test]
fn a_writer_whose_server_stops_answering_fails_instead_of_waiting_forever() {
    within(
        Duration::from_secs(60),
        "a_writer_whose_server_stops_answering_fails_instead_of_waiting_forever",
        || {
            for kind in DriverKind::ALL {
                // The first batch is acknowledged; then the server goes silent.
                let server = HostileServer::script(vec![ack(0), Reply::silent()]);
                let s = AnyClient::new(kind, server.url()).stream(&server.stream_url("w"));
                let config = ProducerConfig {
                    request_deadline: Some(Duration::from_millis(200)),
                    retry: fast_retries(3),
                    linger: Duration::from_millis(1),
                    ..ProducerConfig::new(s.url(), "silent-writer")
                };
                let w = s.writer_with(config).unwrap();
                w.append("acked").unwrap();
                w.flush().expect("the first batch is acknowledged");
                let second = w.append("lost?").unwrap();
                let started = Instant::now();
                let failures = w.flush().expect_err("the server stopped answering");
                assert!(started.elapsed() < Duration::from_secs(5), "{kind:?}");
                assert_eq!(failures.len(), 1, "{kind:?}: only the unanswered batch");
                let f = &failures[0];
                assert_eq!((f.first, f.last), (second, second), "{kind:?}");
                assert_eq!(&f.items[0][..], b"lost?");
                // A timed-out attempt may have been applied: the writer says so.
                assert!(f.reason.is_indeterminate(), "{kind:?}: {:?}", f.reason);
                assert!(matches!(
                    f.reason.kind(),
                    ErrorKind::Transport(t) if t.kind == TransportErrorKind::Timeout
                ));
                // 1 acknowledged request + 3 attempts of the second batch.
                assert!(server.wait_for_requests(4, Duration::from_secs(2)));
                assert_eq!(server.request_count(), 4, "{kind:?}");
            }
        },
    );
}

#[test]
fn a_writer_without_a_request_deadline_uses_the_clients_request_timeout() {
    within(
        Duration::from_secs(60),
        "a_writer_without_a_request_deadline_uses_the_clients_request_timeout",
        || {
            for kind in DriverKind::ALL {
                let server = HostileServer::silent();
                let settings = ClientSettings {
                    request_timeout: Some(Duration::from_millis(200)),
                    ..ClientSettings::default()
                };
                let s = AnyClient::with_settings(kind, server.url(), settings)
                    .stream(&server.stream_url("w-default"));
                let config = ProducerConfig {
                    retry: fast_retries(2),
                    ..ProducerConfig::new(s.url(), "default-deadline")
                };
                assert_eq!(config.request_deadline, None);
                let w = s.writer_with(config).unwrap();
                w.append("x").unwrap();
                let started = Instant::now();
                let failures = w.flush().expect_err("no answer");
                assert!(started.elapsed() < Duration::from_secs(5), "{kind:?}");
                assert!(matches!(
                    failures[0].reason.kind(),
                    ErrorKind::Transport(t) if t.kind == TransportErrorKind::Timeout
                ));
            }
        },
    );
}

/// A server that accepts connections and never reads from them: a writer's request fills the
/// socket buffers and the write itself stalls. On the pipelined connection (more than one
/// batch in flight) the write ends at the request deadline like an unanswered request: the
/// flush fails with timeouts instead of waiting forever.
#[test]
fn a_pipelined_write_that_stalls_ends_at_the_request_deadline() {
    within(
        Duration::from_secs(60),
        "a_pipelined_write_that_stalls_ends_at_the_request_deadline",
        || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let keep = held.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    keep.lock().unwrap().push(conn);
                }
            });
            for kind in DriverKind::ALL {
                let s = AnyClient::new(kind, &format!("http://{addr}"))
                    .stream(&format!("http://{addr}/v1/stream/stalled-{kind:?}"));
                let config = ProducerConfig {
                    max_in_flight: 2,
                    max_batch_bytes: 16 << 20,
                    max_buffered_bytes: 128 << 20,
                    request_deadline: Some(Duration::from_millis(500)),
                    retry: fast_retries(2),
                    linger: Duration::from_millis(1),
                    ..ProducerConfig::new(s.url(), "stalled-writer")
                };
                let w = s.writer_with(config).unwrap();
                let started = Instant::now();
                for _ in 0..4 {
                    // Once the first batch has failed for good, later appends are refused.
                    if w.append(vec![b'x'; 16 << 20]).is_err() {
                        break;
                    }
                }
                let failures = w.flush().expect_err("nothing is ever read");
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "{kind:?}: {:?}",
                    started.elapsed()
                );
                assert!(
                    failures.iter().any(|f| matches!(
                        f.reason.kind(),
                        ErrorKind::Transport(t) if t.kind == TransportErrorKind::Timeout
                    )),
                    "{kind:?}: {failures:?}"
                );
            }
        },
    );
}
