//! Input validation at the API boundary of both drivers: bad input is refused with
//! `ErrorKind::InvalidInput` (or `OffsetError` for offsets) before anything is sent — a
//! recording server checks that no request left.

use ds_proto::headers::MAX_SAFE_INTEGER;
use ds_proto::offset::OffsetError;
use ds_proto::ops::{AppendOptions, CallOptions, CreateOptions, ForkFrom, ProducerHeaders};
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::{ReadMode, SseFallback};
use ds_proto::{Error, ErrorKind, Offset, RetryPolicy};
use ds_tests::drivers::{AnyClient, AnyStream, DriverKind};
use ds_tests::hostile::{HostileServer, Reply};
use std::time::Duration;

fn invalid<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) {
    match r {
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::InvalidInput(_)),
            "{what}: expected InvalidInput, got {e}"
        ),
        Ok(v) => panic!("{what}: accepted ({v:?})"),
    }
}

fn setup(kind: DriverKind) -> (HostileServer, AnyStream) {
    let server = HostileServer::always(Reply::http(400, &[], b"should not be reached"));
    let s = AnyClient::new(kind, server.url()).stream(&server.stream_url("v"));
    (server, s)
}

fn producer(id: &str, epoch: u64, seq: u64) -> ProducerHeaders {
    ProducerHeaders {
        id: id.to_owned(),
        epoch,
        seq,
    }
}

#[test]
fn producer_ids_epochs_and_seqs_are_checked() {
    for kind in DriverKind::ALL {
        let (server, s) = setup(kind);
        // Writers.
        invalid("empty producer id", s.writer("").map(|_| ()));
        invalid(
            "producer id with a newline",
            s.writer("bad\nid").map(|_| ()),
        );
        let epoch = ProducerConfig {
            epoch: MAX_SAFE_INTEGER + 1,
            ..ProducerConfig::new(s.url(), "p")
        };
        invalid("epoch beyond 2^53-1", s.writer_with(epoch).map(|_| ()));
        // One-shot idempotent appends and closes.
        for (what, p) in [
            ("empty id", producer("", 0, 0)),
            (
                "epoch beyond 2^53-1",
                producer("p", MAX_SAFE_INTEGER + 1, 0),
            ),
            ("seq beyond 2^53-1", producer("p", 0, MAX_SAFE_INTEGER + 1)),
        ] {
            let opts = AppendOptions {
                producer: Some(p.clone()),
                ..AppendOptions::default()
            };
            invalid(what, s.append_with("x", opts));
            invalid(what, s.close_with(Some(p)));
        }
        // The largest allowed values pass validation (and reach the server).
        let ok = AppendOptions {
            producer: Some(producer("p", MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)),
            ..AppendOptions::default()
        };
        assert!(!matches!(
            s.append_with("x", ok).unwrap_err().kind,
            ErrorKind::InvalidInput(_)
        ));
        assert_eq!(server.request_count(), 1, "{kind:?}: only the valid append");
    }
}

#[test]
fn zero_durations_and_limits_are_refused() {
    macro_rules! builder_cases {
        ($builder:expr) => {{
            let b = || $builder.base_url("http://127.0.0.1:1");
            let bad_retry = RetryPolicy {
                max_attempts: Some(0),
                ..RetryPolicy::default()
            };
            let cases = vec![
                (
                    "zero connect timeout",
                    b().connect_timeout(Some(Duration::ZERO))
                        .build()
                        .map(|_| ()),
                ),
                (
                    "zero request timeout",
                    b().request_timeout(Some(Duration::ZERO))
                        .build()
                        .map(|_| ()),
                ),
                (
                    "zero long-poll wait",
                    b().long_poll_wait(Duration::ZERO).build().map(|_| ()),
                ),
                (
                    "zero SSE idle timeout",
                    b().sse_idle_timeout(Some(Duration::ZERO))
                        .build()
                        .map(|_| ()),
                ),
                (
                    "zero max_response_bytes",
                    b().max_response_bytes(0).build().map(|_| ()),
                ),
                (
                    "zero max_attempts",
                    b().retry_policy(bad_retry).build().map(|_| ()),
                ),
                (
                    "multiplier below 1",
                    b().retry_policy(RetryPolicy {
                        multiplier: 0.5,
                        ..RetryPolicy::default()
                    })
                    .build()
                    .map(|_| ()),
                ),
                (
                    "zero initial delay",
                    b().retry_policy(RetryPolicy {
                        initial_delay: Duration::ZERO,
                        ..RetryPolicy::default()
                    })
                    .build()
                    .map(|_| ()),
                ),
                (
                    "not an http base URL",
                    $builder.base_url("ftp://127.0.0.1/").build().map(|_| ()),
                ),
            ];
            for (what, r) in cases {
                invalid(what, r);
            }
        }};
    }
    builder_cases!(ds_tokio::Client::builder());
    builder_cases!(ds_blocking::Client::builder());

    for kind in DriverKind::ALL {
        let (server, s) = setup(kind);
        // Per-call options.
        let zero = s.with_options(CallOptions {
            timeout: Some(Duration::ZERO),
            ..CallOptions::default()
        });
        invalid("zero call timeout", zero.head());
        let bad_retry = s.with_options(CallOptions {
            retry: Some(RetryPolicy {
                max_delay: Duration::ZERO,
                ..RetryPolicy::default()
            }),
            ..CallOptions::default()
        });
        invalid("invalid call retry policy", bad_retry.head());

        // Readers.
        let mut reader_cases = Vec::new();
        let base = s.reader_config();
        let mut c = base.clone();
        c.max_body_bytes = 0;
        reader_cases.push(("zero max_body_bytes", c));
        for field in 0..3 {
            let mut c = base.clone();
            match field {
                0 => c.long_poll_deadline = Some(Duration::ZERO),
                1 => c.catch_up_deadline = Some(Duration::ZERO),
                _ => c.sse_idle_timeout = Some(Duration::ZERO),
            }
            reader_cases.push(("a zero reader deadline", c));
        }
        let mut c = base.clone();
        c.sse_limits.max_line_bytes = 0;
        reader_cases.push(("zero SSE line limit", c));
        let mut c = base.clone();
        c.sse_fallback = Some(SseFallback {
            connections: 0,
            window: Duration::from_secs(1),
        });
        reader_cases.push(("zero SSE fallback connections", c));
        let mut c = base.clone();
        c.retry.multiplier = f64::NAN;
        reader_cases.push(("NaN retry multiplier", c));
        let mut c = base.clone();
        c.cursor = Some(String::new());
        reader_cases.push(("empty cursor", c));
        for (what, config) in reader_cases {
            invalid(what, s.reader_with(config).map(|_| ()));
        }

        // Writers.
        let p = || ProducerConfig::new(s.url(), "p");
        let writer_cases = vec![
            (
                "zero max_batch_bytes",
                ProducerConfig {
                    max_batch_bytes: 0,
                    ..p()
                },
            ),
            (
                "zero max_batch_items",
                ProducerConfig {
                    max_batch_items: 0,
                    ..p()
                },
            ),
            (
                "zero max_in_flight",
                ProducerConfig {
                    max_in_flight: 0,
                    ..p()
                },
            ),
            (
                "buffer below one batch",
                ProducerConfig {
                    max_buffered_bytes: 10,
                    max_batch_bytes: 100,
                    ..p()
                },
            ),
            (
                "zero request deadline",
                ProducerConfig {
                    request_deadline: Some(Duration::ZERO),
                    ..p()
                },
            ),
            (
                "empty content type",
                ProducerConfig {
                    content_type: " ".into(),
                    ..p()
                },
            ),
            (
                "invalid retry policy",
                ProducerConfig {
                    retry: RetryPolicy {
                        max_attempts: Some(0),
                        ..RetryPolicy::default()
                    },
                    ..p()
                },
            ),
        ];
        for (what, config) in writer_cases {
            invalid(what, s.writer_with(config).map(|_| ()));
        }
        assert_eq!(server.request_count(), 0, "{kind:?}: nothing was sent");
    }
}

#[test]
fn create_options_are_checked() {
    for kind in DriverKind::ALL {
        let (server, s) = setup(kind);
        invalid(
            "TTL and expires-at together",
            s.create(CreateOptions {
                ttl_seconds: Some(60),
                expires_at: Some("2030-01-01T00:00:00Z".into()),
                ..CreateOptions::default()
            }),
        );
        invalid(
            "expires-at not RFC 3339",
            s.create(CreateOptions {
                expires_at: Some("tomorrow".into()),
                ..CreateOptions::default()
            }),
        );
        let mut opts = CreateOptions::default();
        assert!(opts.ttl_from_str("+3600").is_err());
        assert!(opts.ttl_from_str("03600").is_err());
        assert!(opts.ttl_from_str("3.6e3").is_err());
        invalid(
            "invalid JSON initial body",
            s.create(CreateOptions {
                content_type: Some("application/json".into()),
                body: bytes::Bytes::from_static(b"{oops"),
                ..CreateOptions::default()
            }),
        );
        invalid(
            "a fork at a sentinel offset",
            s.create(CreateOptions {
                fork: Some(ForkFrom {
                    source_path: "/v1/stream/src".into(),
                    offset: Some(Offset::beginning()),
                    sub_offset: None,
                }),
                ..CreateOptions::default()
            }),
        );
        invalid("an empty append", s.append(bytes::Bytes::new()));
        invalid(
            "an empty Stream-Seq",
            s.append_with(
                "x",
                AppendOptions {
                    seq: Some(String::new()),
                    ..AppendOptions::default()
                },
            ),
        );
        assert_eq!(server.request_count(), 0, "{kind:?}: nothing was sent");
    }
}

#[test]
fn offsets_with_forbidden_characters_are_refused() {
    for bad in ["a,b", "a&b", "a=b", "a?b", "a/b", "a b", "a\nb"] {
        assert!(
            matches!(Offset::parse(bad), Err(OffsetError::ForbiddenChar(_))),
            "{bad:?}"
        );
        assert!(bad.parse::<Offset>().is_err(), "{bad:?}");
        // Offsets restored from a checkpoint (JSON) are checked the same way.
        let json = serde_json::to_string(bad).unwrap();
        assert!(serde_json::from_str::<Offset>(&json).is_err(), "{bad:?}");
    }
    assert_eq!(Offset::parse(""), Err(OffsetError::Empty));
    // A valid offset reaches the reader unchanged; the reader's request carries it encoded.
    for kind in DriverKind::ALL {
        let (_server, s) = setup(kind);
        let ok = Offset::parse("0000_0005").unwrap();
        assert!(s.reader(ok, ReadMode::CatchUp).is_ok());
        // A stream URL that already carries a reader-owned parameter is refused.
        let client = AnyClient::new(kind, "http://127.0.0.1:1");
        let owned = client.stream("http://127.0.0.1:1/v1/stream/x?offset=5");
        invalid(
            "offset in the stream URL",
            owned
                .reader(Offset::beginning(), ReadMode::CatchUp)
                .map(|_| ()),
        );
    }
}
