//! Credentials stay out of sight: `Authorization`, `Cookie`, `Proxy-Authorization` and headers
//! marked with `ClientBuilder::sensitive_header` are redacted in every `Debug` output, query
//! parameter values (which may be tokens) never appear in `Debug` output or error messages,
//! and redirects are not followed (a `3xx` is an `UnexpectedStatus` error and the redirect
//! target never sees a request). Both drivers.

use ds_proto::ops::{CallOptions, CreateOptions, RequestExtras};
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::{ReadMode, ReaderEvent};
use ds_proto::{ErrorKind, Offset, RetryPolicy};
use ds_tests::drivers::{AnyClient, AnyReader, AnyStream, AnyWriter, ClientSettings, DriverKind};
use ds_tests::hostile::{within, HostileServer, Reply};
use http::{HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

const SECRETS: [&str; 7] = [
    "bearer-hunter2",
    "session=cookie-hunter2",
    "proxy-hunter2",
    "apikey-hunter2",
    "provider-hunter2",
    "query-hunter2",
    "call-hunter2",
];

fn assert_clean(what: &str, shown: &str) {
    for s in SECRETS {
        assert!(!shown.contains(s), "{what} shows {s:?}: {shown}");
    }
}

fn secret_settings() -> ClientSettings {
    let x_api_key = HeaderName::from_static("x-api-key");
    ClientSettings {
        retry: Some(RetryPolicy::none()),
        request_timeout: Some(Duration::from_secs(5)),
        headers: vec![
            (
                http::header::AUTHORIZATION,
                HeaderValue::from_static("Bearer bearer-hunter2"),
            ),
            (
                http::header::COOKIE,
                HeaderValue::from_static("session=cookie-hunter2"),
            ),
            (
                http::header::PROXY_AUTHORIZATION,
                HeaderValue::from_static("Basic proxy-hunter2"),
            ),
            // Set before it is marked sensitive: marking applies to it too.
            (
                x_api_key.clone(),
                HeaderValue::from_static("apikey-hunter2"),
            ),
        ],
        sensitive_headers: vec![x_api_key, HeaderName::from_static("x-provider-key")],
        provider: Some(Arc::new(|| {
            RequestExtras::new()
                .header(
                    HeaderName::from_static("x-provider-key"),
                    HeaderValue::from_static("provider-hunter2"),
                )
                .param("sig", "query-hunter2")
        })),
        ..ClientSettings::default()
    }
}

fn call_options() -> CallOptions {
    CallOptions {
        extras: RequestExtras::new()
            .header(
                HeaderName::from_static("x-api-key"),
                HeaderValue::from_static("call-hunter2"),
            )
            .param("token", "query-hunter2"),
        ..CallOptions::default()
    }
}

fn client_debug(c: &AnyClient) -> String {
    match c {
        AnyClient::Tokio(_, c) => format!("{c:?} {c:#?}"),
        AnyClient::Blocking(c) => format!("{c:?} {c:#?}"),
    }
}

fn stream_debug(s: &AnyStream) -> String {
    match s {
        AnyStream::Tokio(_, h) => format!("{h:?} {h:#?}"),
        AnyStream::Blocking(h) => format!("{h:?} {h:#?}"),
    }
}

fn reader_debug(r: &AnyReader) -> String {
    match r {
        AnyReader::Tokio(_, r) => format!("{r:?}"),
        AnyReader::Blocking(r) => format!("{r:?}"),
    }
}

fn writer_debug(w: &AnyWriter) -> String {
    match w {
        AnyWriter::Tokio(_, w) => format!("{w:?}"),
        AnyWriter::Blocking(w) => format!("{w:?}"),
    }
}

#[test]
fn debug_output_redacts_every_credential() {
    within(
        Duration::from_secs(60),
        "debug_output_redacts_every_credential",
        || {
            let server = HostileServer::always(Reply::http(404, &[], b"no such stream"));
            for kind in DriverKind::ALL {
                let client = AnyClient::with_settings(kind, server.url(), secret_settings());
                assert_clean("Client", &client_debug(&client));
                let builder_tokio = ds_tokio::Client::builder()
                    .base_url(format!("{}?token=query-hunter2", server.url()))
                    .header(
                        http::header::AUTHORIZATION,
                        HeaderValue::from_static("Bearer bearer-hunter2"),
                    )
                    .param("token", "query-hunter2")
                    .sensitive_header(HeaderName::from_static("x-api-key"))
                    .header(
                        HeaderName::from_static("x-api-key"),
                        HeaderValue::from_static("apikey-hunter2"),
                    );
                assert_clean("tokio ClientBuilder", &format!("{builder_tokio:?}"));
                let builder_blocking = ds_blocking::Client::builder()
                    .base_url(format!("{}?token=query-hunter2", server.url()))
                    .header(
                        http::header::COOKIE,
                        HeaderValue::from_static("session=cookie-hunter2"),
                    )
                    .param("token", "query-hunter2");
                assert_clean("blocking ClientBuilder", &format!("{builder_blocking:?}"));

                // A stream URL with a token in its query, and per-call credentials.
                let s = client
                    .stream(&format!(
                        "{}?token=query-hunter2",
                        server.stream_url("secret")
                    ))
                    .with_options(call_options());
                assert_clean("StreamHandle", &stream_debug(&s));
                let r = s.reader(Offset::beginning(), ReadMode::CatchUp).unwrap();
                assert_clean("Reader", &reader_debug(&r));
                let w = s
                    .writer_with(ProducerConfig::new(s.url(), "secret-writer"))
                    .unwrap();
                assert_clean("Writer", &writer_debug(&w));
                drop((r, w));

                // An error from the server: Display and Debug are clean too.
                let e = s.head().unwrap_err();
                assert_eq!(e.kind, ErrorKind::NotFound, "{kind:?}");
                assert_clean("Error", &format!("{e} {e:?}"));

                // Redacted is not dropped: the credentials still went to the server.
                let seen = server.requests();
                let last = seen.last().expect("a request");
                assert_eq!(last.header("authorization"), Some("Bearer bearer-hunter2"));
                assert_eq!(last.header("cookie"), Some("session=cookie-hunter2"));
                assert_eq!(last.header("x-api-key"), Some("call-hunter2"));
                assert_eq!(last.header("x-provider-key"), Some("provider-hunter2"));
                assert_eq!(last.query_param("sig"), Some("query-hunter2"));
            }
        },
    );
}

#[test]
fn query_secrets_never_reach_error_messages() {
    within(
        Duration::from_secs(60),
        "query_secrets_never_reach_error_messages",
        || {
            let closed_port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let failing = HostileServer::always(Reply::http(503, &[], b"try later"));
            let silent = HostileServer::silent();
            for kind in DriverKind::ALL {
                let mut settings = secret_settings();
                settings.request_timeout = Some(Duration::from_millis(300));
                let client = AnyClient::with_settings(kind, failing.url(), settings);
                let mut errors = Vec::new();
                // Invalid input (refused before sending).
                let bad = CreateOptions {
                    ttl_seconds: Some(60),
                    expires_at: Some("2030-01-01T00:00:00Z".into()),
                    ..CreateOptions::default()
                };
                let s = client.stream(&format!("{}?token=query-hunter2", failing.stream_url("q")));
                errors.push(s.create(bad).unwrap_err());
                // An HTTP error status.
                errors.push(s.head().unwrap_err());
                // A refused connection.
                let refused = client.stream(&format!(
                    "http://127.0.0.1:{closed_port}/v1/stream/q?token=query-hunter2"
                ));
                errors.push(refused.head().unwrap_err());
                // A timeout.
                let quiet =
                    client.stream(&format!("{}?token=query-hunter2", silent.stream_url("q")));
                errors.push(quiet.head().unwrap_err());
                // A reader's retry report (unlimited retries by default) and terminal failure.
                let mut r = s.reader(Offset::beginning(), ReadMode::CatchUp).unwrap();
                match r.next_event() {
                    Some(ReaderEvent::Retrying { error, .. }) => errors.push(error),
                    other => panic!("{kind:?}: {other:?}"),
                }
                let mut config = s.reader_config();
                config.retry = RetryPolicy::none();
                config.mode = ReadMode::CatchUp;
                let mut r2 = s.reader_with(config).unwrap();
                match r2.next_event() {
                    Some(ReaderEvent::Failed(e)) => errors.push(e),
                    other => panic!("{kind:?}: {other:?}"),
                }
                for e in &errors {
                    assert_clean("error", &format!("{e} {e:?}"));
                    assert!(!e.url.contains('?'), "{kind:?}: {}", e.url);
                }
            }
        },
    );
}

#[test]
fn redirects_are_not_followed_and_credentials_stay_home() {
    within(
        Duration::from_secs(60),
        "redirects_are_not_followed_and_credentials_stay_home",
        || {
            let thief =
                HostileServer::always(Reply::http(200, &[("Stream-Next-Offset", "1")], b"x"));
            let location = format!("{}/v1/stream/stolen", thief.url());
            for status in [301u16, 302, 307, 308] {
                let redirector = HostileServer::always(Reply::http(
                    status,
                    &[("Location", location.as_str())],
                    b"",
                ));
                for kind in DriverKind::ALL {
                    let client =
                        AnyClient::with_settings(kind, redirector.url(), secret_settings());
                    let s = client.stream(&redirector.stream_url("r"));
                    // One-shot operations.
                    for e in [
                        s.head().unwrap_err(),
                        s.append("data").unwrap_err(),
                        s.create(CreateOptions::default()).unwrap_err(),
                    ] {
                        assert!(
                            matches!(e.kind, ErrorKind::UnexpectedStatus { status: st, .. } if st == status),
                            "{kind:?} {status}: {e}"
                        );
                    }
                    // A reader: a 3xx is terminal (not retried, not followed).
                    let mut r = s.reader(Offset::beginning(), ReadMode::LongPoll).unwrap();
                    match r.next_event() {
                        Some(ReaderEvent::Failed(e)) => assert!(
                            matches!(e.kind, ErrorKind::UnexpectedStatus { status: st, .. } if st == status),
                            "{kind:?} {status}: {e}"
                        ),
                        other => panic!("{kind:?} {status}: {other:?}"),
                    }
                    assert!(redirector
                        .requests()
                        .iter()
                        .all(|r| r.header("authorization") == Some("Bearer bearer-hunter2")));
                }
            }
            assert_eq!(
                thief.request_count(),
                0,
                "nothing was sent to the redirect target"
            );
        },
    );
}
