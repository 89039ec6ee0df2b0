//! Every one-shot operation and its error paths, through both drivers, against the reference
//! server (PROTOCOL.md 5.1-5.6).

use bytes::Bytes;
use ds_proto::ops::{
    AppendOptions, AppendOutcome, CallOptions, CreateOptions, ForkFrom, ProducerHeaders,
    ReadOptions, RequestExtras,
};
use ds_proto::{ConflictKind, ErrorKind, Offset, RetryPolicy};
use ds_tests::drivers::{AnyClient, AnyStream, ClientSettings, DriverKind};
use ds_tests::{Proxy, RefServer};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn stream(kind: DriverKind, name: &str) -> AnyStream {
    let server = RefServer::shared();
    AnyClient::new(kind, server.url()).stream(&server.stream_url(name))
}

fn text(ct: &str) -> CreateOptions {
    CreateOptions::with_content_type(ct)
}

fn read_from(s: &AnyStream, offset: Offset) -> ds_proto::ops::ReadResult {
    s.read(ReadOptions::from(offset)).expect("read")
}

#[test]
fn create_is_idempotent_and_conflicts_on_other_config() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "create");
        let c = s.create(text("text/plain")).unwrap();
        assert!(c.created, "{kind:?}: first create is 201");
        assert!(c.next_offset.is_some());
        let again = s.create(text("text/plain")).unwrap();
        assert!(!again.created, "{kind:?}: same config is 200");
        let e = s.create(text("application/json")).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::Conflict(ConflictKind::ExistsWithDifferentConfig),
            "{kind:?}"
        );
        assert!(e.to_string().contains("create"), "{e}");
    }
}

#[test]
fn append_then_read_back() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "append");
        s.create(text("text/plain")).unwrap();
        let a = s.append("hello ").unwrap();
        assert_eq!(a.outcome, AppendOutcome::Stored);
        let b = s.append(Bytes::from_static(b"world")).unwrap();
        assert!(b.next_offset > a.next_offset, "{kind:?}: offsets grow");
        let r = read_from(&s, Offset::beginning());
        assert_eq!(&r.data[..], b"hello world", "{kind:?}");
        assert!(r.up_to_date && !r.closed);
        assert_eq!(Some(r.next_offset.clone()), b.next_offset);
        let tail = read_from(&s, r.next_offset.clone());
        assert!(tail.data.is_empty() && tail.up_to_date);
        // Resume from the middle: the first append's offset gives only what followed it.
        let rest = read_from(&s, a.next_offset.unwrap());
        assert_eq!(&rest.data[..], b"world", "{kind:?}");
    }
}

#[test]
fn close_makes_appends_fail_with_final_offset() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "close");
        s.create(text("text/plain")).unwrap();
        s.append("last").unwrap();
        let closed = s.close().unwrap();
        let final_offset = closed.final_offset.clone().expect("final offset");
        assert!(s.close().is_ok(), "{kind:?}: closing twice succeeds");
        let e = s.append("more").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::Conflict(ConflictKind::Closed {
                final_offset: Some(final_offset.clone())
            }),
            "{kind:?}"
        );
        assert!(e.is_closed());
        let info = s.head().unwrap();
        assert!(info.closed);
        let eof = read_from(&s, final_offset);
        assert!(
            eof.closed && eof.data.is_empty(),
            "{kind:?}: EOF at the tail"
        );
    }
}

#[test]
fn append_and_close_atomically_and_create_closed() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "append-close");
        s.create(text("text/plain")).unwrap();
        let a = s
            .append_with(
                "final",
                AppendOptions {
                    close: true,
                    ..AppendOptions::default()
                },
            )
            .unwrap();
        assert!(a.closed, "{kind:?}");
        let r = read_from(&s, Offset::beginning());
        assert_eq!(&r.data[..], b"final");
        assert!(r.closed);

        let c = stream(kind, "created-closed");
        let created = c
            .create(CreateOptions {
                content_type: Some("text/plain".into()),
                closed: true,
                body: Bytes::from_static(b"complete"),
                ..CreateOptions::default()
            })
            .unwrap();
        assert!(created.closed);
        let r = read_from(&c, Offset::beginning());
        assert_eq!(&r.data[..], b"complete");
        assert!(r.closed, "{kind:?}");
    }
}

#[test]
fn missing_streams_are_not_found() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "missing");
        assert!(s.head().unwrap_err().is_not_found(), "{kind:?}");
        assert!(s.append("x").unwrap_err().is_not_found());
        assert!(s
            .read(ReadOptions::from(Offset::beginning()))
            .unwrap_err()
            .is_not_found());
        assert!(s.delete().unwrap_err().is_not_found());
    }
}

#[test]
fn delete_removes_the_stream() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "delete");
        s.create(text("text/plain")).unwrap();
        s.delete().unwrap();
        assert!(s.head().unwrap_err().is_not_found(), "{kind:?}");
        assert!(s.create(text("text/plain")).unwrap().created);
    }
}

#[test]
fn ttl_and_expiry_are_visible_in_head() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "ttl");
        s.create(CreateOptions {
            ttl_seconds: Some(3600),
            ..text("text/plain")
        })
        .unwrap();
        let info = s.head().unwrap();
        assert_eq!(info.ttl_seconds, Some(3600), "{kind:?}");
        assert_eq!(info.content_type.as_deref(), Some("text/plain"));

        let s = stream(kind, "expires");
        s.create(CreateOptions {
            expires_at: Some("2099-01-01T00:00:00Z".into()),
            ..text("text/plain")
        })
        .unwrap();
        let info = s.head().unwrap();
        assert!(
            info.expires_at
                .as_deref()
                .unwrap_or("")
                .starts_with("2099-01-01"),
            "{kind:?}: {info:?}"
        );
        let both = stream(kind, "both").create(CreateOptions {
            ttl_seconds: Some(1),
            expires_at: Some("2099-01-01T00:00:00Z".into()),
            ..CreateOptions::default()
        });
        assert!(matches!(both.unwrap_err().kind, ErrorKind::InvalidInput(_)));
    }
}

#[test]
fn fork_inherits_data_up_to_the_fork_offset() {
    let server = RefServer::shared();
    for kind in DriverKind::ALL {
        let src = stream(kind, "fork-src");
        src.create(text("text/plain")).unwrap();
        let first = src.append("abc").unwrap().next_offset.unwrap();
        src.append("def").unwrap();
        let source_path = ds_proto::url::path_of(src.url()).to_owned();
        let fork = AnyClient::new(kind, server.url()).stream(&server.stream_url("fork"));
        fork.create(CreateOptions {
            fork: Some(ForkFrom {
                source_path,
                offset: Some(first),
                sub_offset: None,
            }),
            ..CreateOptions::default()
        })
        .unwrap();
        fork.set_content_type("text/plain");
        fork.append("XYZ").unwrap();
        let r = read_from(&fork, Offset::beginning());
        assert_eq!(&r.data[..], b"abcXYZ", "{kind:?}");
        let r = read_from(&src, Offset::beginning());
        assert_eq!(&r.data[..], b"abcdef", "{kind:?}: the source is untouched");
    }
}

#[test]
fn json_round_trip_keeps_message_boundaries() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "json");
        s.create(text("application/json")).unwrap();
        s.append_json(&serde_json::json!({"n": 1})).unwrap();
        s.append_json(&serde_json::json!([1, 2])).unwrap();
        s.append("\"raw\"").unwrap();
        let r = read_from(&s, Offset::beginning());
        let items = r.json_items().unwrap();
        let values: Vec<serde_json::Value> = items
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        assert_eq!(
            values,
            vec![
                serde_json::json!({"n": 1}),
                serde_json::json!([1, 2]),
                serde_json::json!("raw")
            ],
            "{kind:?}: an array appended is one message"
        );
        let e = s.append("[]").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{kind:?}");
        let e = s.append("{not json").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)), "{kind:?}");
        let e = s.append("").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidInput(_)));
    }
}

#[test]
fn offset_now_skips_existing_data() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "now");
        s.create(text("text/plain")).unwrap();
        let tail = s.append("old").unwrap().next_offset.unwrap();
        let r = read_from(&s, Offset::now());
        assert!(r.data.is_empty() && r.up_to_date, "{kind:?}");
        assert_eq!(r.next_offset, tail);
        s.append("new").unwrap();
        let r = read_from(&s, r.next_offset);
        assert_eq!(&r.data[..], b"new");
    }
}

#[test]
fn etag_revalidation_gives_not_modified() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "etag");
        s.create(text("text/plain")).unwrap();
        s.append("data").unwrap();
        let first = read_from(&s, Offset::beginning());
        let etag = first.etag.clone().expect("catch-up reads carry an ETag");
        let again = s
            .read(ReadOptions {
                if_none_match: Some(etag),
                ..ReadOptions::from(Offset::beginning())
            })
            .unwrap();
        assert!(again.not_modified, "{kind:?}");
        assert!(again.data.is_empty());
    }
}

#[test]
fn stream_seq_regression_is_a_conflict() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "seq");
        s.create(text("text/plain")).unwrap();
        let with_seq = |seq: &str| AppendOptions {
            seq: Some(seq.into()),
            ..AppendOptions::default()
        };
        s.append_with("a", with_seq("002")).unwrap();
        let e = s.append_with("b", with_seq("001")).unwrap_err();
        assert!(
            matches!(
                e.kind,
                ErrorKind::Conflict(ConflictKind::SeqRegression | ConflictKind::Other)
            ),
            "{kind:?}: {e}"
        );
    }
}

#[test]
fn manual_idempotent_appends_tell_outcomes_apart() {
    for kind in DriverKind::ALL {
        let s = stream(kind, "idem");
        s.create(text("text/plain")).unwrap();
        let p = |epoch, seq| AppendOptions {
            producer: Some(ProducerHeaders {
                id: "writer-1".into(),
                epoch,
                seq,
            }),
            ..AppendOptions::default()
        };
        assert_eq!(
            s.append_with("a", p(0, 0)).unwrap().outcome,
            AppendOutcome::Stored
        );
        assert_eq!(
            s.append_with("a", p(0, 0)).unwrap().outcome,
            AppendOutcome::Duplicate,
            "{kind:?}"
        );
        let gap = s.append_with("c", p(0, 5)).unwrap_err();
        assert_eq!(
            gap.kind,
            ErrorKind::SequenceGap {
                expected: 1,
                received: 5
            },
            "{kind:?}"
        );
        assert_eq!(
            s.append_with("b", p(1, 0)).unwrap().outcome,
            AppendOutcome::Stored
        );
        let fenced = s.append_with("zombie", p(0, 1)).unwrap_err();
        assert_eq!(
            fenced.kind,
            ErrorKind::Fenced { server_epoch: 1 },
            "{kind:?}"
        );
        let r = read_from(&s, Offset::beginning());
        assert_eq!(&r.data[..], b"ab", "{kind:?}: nothing from the zombie");
    }
}

#[test]
fn provider_headers_reach_the_server_and_rotate() {
    let server = RefServer::shared();
    let proxy = Proxy::start(server.url());
    for kind in DriverKind::ALL {
        let counter = Arc::new(AtomicU32::new(0));
        let c = counter.clone();
        let settings = ClientSettings {
            headers: vec![(
                http::HeaderName::from_static("x-tenant"),
                http::HeaderValue::from_static("acme"),
            )],
            provider: Some(Arc::new(move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                RequestExtras::new()
                    .header(
                        http::header::AUTHORIZATION,
                        http::HeaderValue::from_str(&format!("Bearer token-{n}")).unwrap(),
                    )
                    .param("tenant", "acme")
            })),
            ..ClientSettings::default()
        };
        let client = AnyClient::with_settings(kind, proxy.url(), settings);
        let path = ds_tests::refserver::unique_stream_path("auth");
        let s = client.stream(&path);
        proxy.clear();
        s.create(text("text/plain")).unwrap();
        s.append("x").unwrap();
        s.with_options(CallOptions {
            extras: RequestExtras::new().header(
                http::HeaderName::from_static("x-call"),
                http::HeaderValue::from_static("yes"),
            ),
            ..CallOptions::default()
        })
        .head()
        .unwrap();
        let reqs = proxy.requests();
        let ours: Vec<_> = reqs.iter().filter(|r| r.path() == path).collect();
        assert_eq!(ours.len(), 3, "{kind:?}: {reqs:?}");
        for (i, r) in ours.iter().enumerate() {
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer token-{i}").as_str())
            );
            assert_eq!(r.header("x-tenant"), Some("acme"));
            assert_eq!(r.query_param("tenant"), Some("acme"));
        }
        assert_eq!(ours[2].header("x-call"), Some("yes"));
    }
}

fn fast_retries() -> ClientSettings {
    ClientSettings {
        retry: Some(RetryPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            ..RetryPolicy::default()
        }),
        ..ClientSettings::default()
    }
}

#[test]
fn reads_retry_through_injected_faults() {
    let server = RefServer::start();
    for kind in DriverKind::ALL {
        let client = AnyClient::with_settings(kind, server.url(), fast_retries());
        let url = server.stream_url("retry");
        let s = client.stream(&url);
        s.create(text("text/plain")).unwrap();
        s.append("payload").unwrap();
        for fault in [
            serde_json::json!({"status": 500, "count": 2, "method": "GET"}),
            serde_json::json!({"status": 503, "count": 1, "method": "GET"}),
            serde_json::json!({"status": 429, "count": 1, "retryAfter": 1, "method": "GET"}),
            serde_json::json!({"dropConnection": true, "count": 1, "method": "GET"}),
        ] {
            server.inject_error(&url, fault.clone());
            let started = std::time::Instant::now();
            let r = read_from(&s, Offset::beginning());
            assert_eq!(&r.data[..], b"payload", "{kind:?} {fault}");
            if fault["status"] == 429 {
                assert!(
                    started.elapsed() >= Duration::from_millis(900),
                    "{kind:?}: Retry-After honoured"
                );
            }
        }
        server.clear_errors();
    }
}

#[test]
fn head_and_create_retry_but_plain_appends_do_not() {
    let server = RefServer::start();
    for kind in DriverKind::ALL {
        let client = AnyClient::with_settings(kind, server.url(), fast_retries());
        let url = server.stream_url("retry-ops");
        let s = client.stream(&url);
        server.inject_error(
            &url,
            serde_json::json!({"status": 503, "count": 1, "method": "PUT"}),
        );
        assert!(s.create(text("text/plain")).unwrap().created, "{kind:?}");
        server.inject_error(
            &url,
            serde_json::json!({"status": 500, "count": 1, "method": "HEAD"}),
        );
        s.head().unwrap();
        server.inject_error(
            &url,
            serde_json::json!({"status": 503, "count": 1, "method": "POST"}),
        );
        let e = s.append("once").unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::UnexpectedStatus { status: 503, .. }),
            "{kind:?}: {e}"
        );
        // Idempotent producer appends are safe to retry.
        server.inject_error(
            &url,
            serde_json::json!({"status": 503, "count": 1, "method": "POST"}),
        );
        let ok = s
            .append_with(
                "once",
                AppendOptions {
                    producer: Some(ProducerHeaders {
                        id: "p".into(),
                        epoch: 0,
                        seq: 0,
                    }),
                    ..AppendOptions::default()
                },
            )
            .unwrap();
        assert_eq!(ok.outcome, AppendOutcome::Stored);
        let r = read_from(&s, Offset::beginning());
        assert_eq!(&r.data[..], b"once", "{kind:?}");
        server.clear_errors();
    }
}

#[test]
fn exhausted_retries_report_the_last_error() {
    let server = RefServer::start();
    for kind in DriverKind::ALL {
        let mut settings = fast_retries();
        settings.retry = Some(RetryPolicy {
            max_attempts: Some(2),
            ..settings.retry.unwrap()
        });
        let client = AnyClient::with_settings(kind, server.url(), settings);
        let url = server.stream_url("exhaust");
        let s = client.stream(&url);
        s.create(text("text/plain")).unwrap();
        server.inject_error(
            &url,
            serde_json::json!({"status": 503, "count": 5, "method": "GET"}),
        );
        let e = s.read(ReadOptions::from(Offset::beginning())).unwrap_err();
        assert!(e.is_retryable(), "{kind:?}: {e}");
        server.clear_errors();
    }
}

#[test]
fn unreachable_server_is_a_transport_error() {
    for kind in DriverKind::ALL {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut settings = fast_retries();
        settings.retry = Some(RetryPolicy::none());
        let client = AnyClient::with_settings(kind, &format!("http://127.0.0.1:{port}"), settings);
        let e = client.stream("/v1/stream/x").head().unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Transport(_)), "{kind:?}: {e}");
    }
}
