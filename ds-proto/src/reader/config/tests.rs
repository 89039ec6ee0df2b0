//! Unit tests of [`ReaderConfig::validate`].

use super::*;
use crate::error::ErrorKind;
use crate::reader::Reader;
use crate::retry::MAX_DURATION;
use std::time::Instant;

const URL: &str = "http://h/v1/stream/s";

/// The message of the `InvalidInput` error `config` is refused with, after checking that
/// `Reader::new` refuses it with the same error.
#[track_caller]
fn refused(config: ReaderConfig) -> String {
    let err = config.validate().expect_err("refused");
    assert_eq!(err.operation, Operation::Read);
    assert_eq!(err.url, URL, "the URL without its query");
    #[allow(clippy::disallowed_methods)] // the clock's origin only
    let now = Instant::now();
    let from_new = Reader::new(config, now).expect_err("Reader::new refuses it too");
    assert_eq!(from_new, err);
    match err.kind {
        ErrorKind::InvalidInput(m) => m.message,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn the_defaults_are_valid() {
    ReaderConfig::new(URL).validate().unwrap();
    ReaderConfig::new(format!("{URL}?token=x"))
        .validate()
        .unwrap();
}

#[test]
fn the_reader_owns_offset_live_and_cursor_in_the_query() {
    for key in ["offset", "live", "cursor"] {
        let m = refused(ReaderConfig::new(format!("{URL}?a=1&{key}=x")));
        assert!(m.contains(key), "{m}");
    }
    // A fragment is not the query; a parameter that merely starts like one is fine.
    ReaderConfig::new(format!("{URL}?offsets=1#live=x"))
        .validate()
        .unwrap();
}

#[test]
fn limits_must_be_positive() {
    let base = ReaderConfig::new(URL);
    let m = refused(ReaderConfig {
        max_body_bytes: 0,
        ..base.clone()
    });
    assert!(m.contains("max_body_bytes"), "{m}");
    let m = refused(ReaderConfig {
        partial_chunks_over: Some(0),
        ..base.clone()
    });
    assert!(m.contains("partial_chunks_over"), "{m}");
    ReaderConfig {
        max_body_bytes: 1,
        partial_chunks_over: None,
        ..base.clone()
    }
    .validate()
    .unwrap();
    for (line, event) in [(0, 10), (10, 0)] {
        let m = refused(ReaderConfig {
            sse_limits: SseLimits {
                max_line_bytes: line,
                max_event_bytes: event,
            },
            ..base.clone()
        });
        assert!(m.contains("SSE limits"), "{m}");
    }
    for (connections, window) in [(0, Duration::from_secs(1)), (3, Duration::ZERO)] {
        let m = refused(ReaderConfig {
            sse_fallback: Some(SseFallback {
                connections,
                window,
            }),
            ..base.clone()
        });
        assert!(m.contains("sse_fallback"), "{m}");
    }
}

#[test]
fn durations_must_be_positive_and_at_most_ten_years() {
    type Set = fn(&mut ReaderConfig, Duration);
    let fields: [(&str, Set); 4] = [
        ("long_poll_deadline", |c, d| c.long_poll_deadline = Some(d)),
        ("catch_up_deadline", |c, d| c.catch_up_deadline = Some(d)),
        ("sse_idle_timeout", |c, d| c.sse_idle_timeout = Some(d)),
        ("sse_fallback.window", |c, d| {
            c.sse_fallback = Some(SseFallback {
                connections: 3,
                window: d,
            })
        }),
    ];
    for (name, set) in fields {
        let with = |d| {
            let mut c = ReaderConfig::new(URL);
            set(&mut c, d);
            c
        };
        with(Duration::from_nanos(1)).validate().unwrap();
        with(MAX_DURATION).validate().unwrap();
        let m = refused(with(Duration::ZERO));
        let field = name.split('.').next().unwrap();
        assert!(m.contains(field) && m.contains("zero"), "{m}");
        let m = refused(with(MAX_DURATION + Duration::from_nanos(1)));
        assert!(m.contains(name) && m.contains("ten years"), "{m}");
    }
}

#[test]
fn the_cursor_must_be_a_header_safe_non_empty_string() {
    for bad in ["", "a\nb", "\u{7f}"] {
        let m = refused(ReaderConfig {
            cursor: Some(bad.into()),
            ..ReaderConfig::new(URL)
        });
        assert!(m.contains("cursor"), "{m}");
    }
    ReaderConfig {
        cursor: Some("c 1".into()),
        ..ReaderConfig::new(URL)
    }
    .validate()
    .unwrap();
}

#[test]
fn the_retry_policy_and_the_url_are_checked() {
    let m = refused(ReaderConfig {
        retry: RetryPolicy {
            max_delay: MAX_DURATION + Duration::from_secs(1),
            ..RetryPolicy::default()
        },
        ..ReaderConfig::new(URL)
    });
    assert!(m.starts_with("retry policy"), "{m}");
    for url in ["/relative/path", "not a url"] {
        let err = ReaderConfig::new(url).validate().expect_err(url);
        assert_eq!(err.operation, Operation::Read);
        assert!(matches!(err.kind, ErrorKind::InvalidInput(_)), "{err:?}");
    }
}

#[test]
fn a_saved_config_without_partial_chunks_over_gets_the_default() {
    // Configurations saved before the field existed (in a ReaderSnapshot, say) still load.
    let mut json = serde_json::to_value(ReaderConfig::new(URL)).unwrap();
    json.as_object_mut()
        .unwrap()
        .remove("partial_chunks_over")
        .expect("the field is serialized");
    let config: ReaderConfig = serde_json::from_value(json).unwrap();
    assert_eq!(
        config.partial_chunks_over,
        Some(ReaderConfig::DEFAULT_PARTIAL_CHUNKS_OVER)
    );
    assert_eq!(ReaderConfig::DEFAULT_PARTIAL_CHUNKS_OVER, 1 << 20, "1 MiB");
}
