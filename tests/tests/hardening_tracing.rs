//! The drivers' `tracing` feature: a `ds.request` span per HTTP exchange (operation, path,
//! status, attempt, bytes, latency), events for retries and state changes, and never a
//! credential, a query string or a payload in what a subscriber sees. Both drivers, captured
//! by a `tracing-subscriber` fmt layer writing into memory (installed once for this test
//! binary, as the global default: the drivers trace from their own tasks and threads).

use ds_proto::ops::{CreateOptions, RequestExtras};
use ds_proto::reader::ReadMode;
use ds_proto::{Offset, RetryPolicy};
use ds_tests::drivers::{AnyClient, ClientSettings, DriverKind};
use ds_tests::hostile::{within, HostileServer, Reply};
use ds_tokio::server::{BackgroundServer, ServerConfig};
use http::{HeaderName, HeaderValue};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::CLOSE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        capture
    })
}

fn captured() -> String {
    String::from_utf8_lossy(&capture().0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

fn settings() -> ClientSettings {
    ClientSettings {
        retry: Some(RetryPolicy {
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        }),
        headers: vec![
            (
                http::header::AUTHORIZATION,
                HeaderValue::from_static("Bearer hunter2-authorization"),
            ),
            (
                http::header::COOKIE,
                HeaderValue::from_static("sid=hunter2-cookie"),
            ),
            (
                HeaderName::from_static("x-api-key"),
                HeaderValue::from_static("hunter2-api-key"),
            ),
        ],
        sensitive_headers: vec![HeaderName::from_static("x-api-key")],
        provider: Some(Arc::new(|| {
            RequestExtras::new().param("token", "hunter2-query")
        })),
        ..ClientSettings::default()
    }
}

#[test]
fn requests_are_traced_without_secrets_or_payloads() {
    let _ = capture();
    within(Duration::from_secs(60), "tracing", || {
        let mut config = ServerConfig::default();
        config.model.long_poll_timeout = Duration::from_millis(200);
        let server = BackgroundServer::start(config).unwrap();
        // One 503 before the answer: a retry to trace.
        let flaky = HostileServer::script(vec![
            Reply::http(503, &[], b""),
            Reply::http(200, &[("Stream-Next-Offset", "0001")], b""),
        ]);
        for kind in DriverKind::ALL {
            let client = AnyClient::with_settings(kind, server.url(), settings());
            let s = client.stream(&format!("/v1/stream/traced-{kind:?}"));
            s.create(CreateOptions::with_content_type("text/plain"))
                .unwrap();
            s.append("payload-hunter2").unwrap();
            let mut r = s.reader(Offset::beginning(), ReadMode::CatchUp).unwrap();
            while r.next_chunk().is_some() {}
            let w = s.writer("traced-writer").unwrap();
            w.append("writer-payload-hunter2").unwrap();
            w.close(true).unwrap();
            let flaky_client = AnyClient::with_settings(kind, flaky.url(), settings());
            flaky_client
                .stream(&flaky.stream_url(&format!("flaky-{kind:?}")))
                .head()
                .unwrap();
        }
    });
    let out = captured();
    // A span per request, with its fields.
    for needle in [
        "ds.request",
        "op=\"create\"",
        "op=\"append\"",
        "op=\"head\"",
        "op=\"read\"",
        "mode=\"catch-up\"",
        "method=PUT",
        "path=\"/v1/stream/traced-Tokio\"",
        "path=\"/v1/stream/traced-Blocking\"",
        "status=201",
        "status=503",
        "attempt=2",
        "producer_seq=0",
        "bytes_received=",
        "latency_ms=",
        "request finished",
        "retrying",
        "reader caught up and done",
        "appends acknowledged",
        "writer closed the stream",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // Never a credential, a query string, or a payload.
    assert!(
        !out.contains("hunter2"),
        "a secret or payload leaked:\n{out}"
    );
    assert!(!out.contains("token="), "a query string leaked:\n{out}");
}
