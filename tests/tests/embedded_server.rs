//! The embedded server (ds-tokio `server` feature: the sim model over HTTP) serves both drivers
//! through every kind of operation.

use ds_proto::ops::CreateOptions;
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::ReadMode;
use ds_proto::{ConflictKind, ErrorKind, Offset};
use ds_tests::drivers::{AnyClient, DriverKind};
use ds_tests::raw_http;
use ds_tokio::server::{BackgroundServer, ServerConfig};
use serde_json::json;
use std::time::Duration;

fn server() -> BackgroundServer {
    let mut config = ServerConfig::default();
    config.model.long_poll_timeout = Duration::from_millis(500);
    BackgroundServer::start(config).expect("embedded server")
}

#[test]
fn one_shot_operations() {
    let server = server();
    for kind in DriverKind::ALL {
        let s = AnyClient::new(kind, server.url()).stream(&format!("/v1/stream/ops-{kind:?}"));
        assert!(
            s.create(CreateOptions::with_content_type("text/plain"))
                .unwrap()
                .created
        );
        assert!(
            !s.create(CreateOptions::with_content_type("text/plain"))
                .unwrap()
                .created
        );
        assert_eq!(
            s.create(CreateOptions::with_content_type("application/json"))
                .unwrap_err()
                .kind,
            ErrorKind::Conflict(ConflictKind::ExistsWithDifferentConfig)
        );
        s.append("hello ").unwrap();
        s.append("world").unwrap();
        assert_eq!(&s.read_all().unwrap().data[..], b"hello world", "{kind:?}");
        let info = s.head().unwrap();
        assert_eq!(info.content_type.as_deref(), Some("text/plain"));
        s.close().unwrap();
        assert!(s.append("x").unwrap_err().is_closed());
        s.delete().unwrap();
        assert!(s.head().unwrap_err().is_not_found());
    }
}

#[test]
fn live_reads_in_every_mode_and_writers() {
    let server = server();
    for kind in DriverKind::ALL {
        for mode in [ReadMode::LongPoll, ReadMode::Sse, ReadMode::Auto] {
            let s = AnyClient::new(kind, server.url())
                .stream(&format!("/v1/stream/live-{kind:?}-{mode:?}"));
            s.create(CreateOptions::with_content_type("application/json"))
                .unwrap();
            let mut r = s.reader(Offset::beginning(), mode).unwrap();
            let w = s
                .writer_with(ProducerConfig {
                    content_type: "application/json".into(),
                    ..ProducerConfig::new("http://x/", "w")
                })
                .unwrap();
            for n in 0..50 {
                w.append_json(&serde_json::json!({ "n": n })).unwrap();
            }
            w.close(true).unwrap();
            let mut items = Vec::new();
            while let Some(chunk) = r.next_chunk() {
                for it in chunk.unwrap().items().unwrap() {
                    let v: serde_json::Value = serde_json::from_slice(&it).unwrap();
                    items.push(v["n"].as_u64().unwrap());
                }
            }
            assert_eq!(items, (0..50).collect::<Vec<_>>(), "{kind:?} {mode:?}");
            assert!(r.is_eof(), "{kind:?} {mode:?}");
        }
    }
}

// ---- Fault injection (`POST`/`DELETE /_test/inject-error`, on by default) ----

/// `POST /_test/inject-error` with `spec`; its status.
fn inject(server: &BackgroundServer, spec: serde_json::Value) -> u16 {
    let url = format!("{}/_test/inject-error", server.url());
    let body = spec.to_string();
    raw_http::request(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap()
    .status
}

/// A `text/plain` stream at `path` holding `text`.
fn text_stream(server: &BackgroundServer, path: &str, text: &str) {
    let url = format!("{}{path}", server.url());
    let r = raw_http::request("PUT", &url, &[("Content-Type", "text/plain")], b"").unwrap();
    assert_eq!(r.status, 201);
    let r = raw_http::request(
        "POST",
        &url,
        &[("Content-Type", "text/plain")],
        text.as_bytes(),
    )
    .unwrap();
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
}

fn get(server: &BackgroundServer, target: &str) -> std::io::Result<raw_http::RawResponse> {
    raw_http::request("GET", &format!("{}{target}", server.url()), &[], b"")
}

#[test]
fn fault_control_endpoint_validates_and_clears() {
    let server = server();
    let url = format!("{}/_test/inject-error", server.url());
    let post = |body: &[u8]| {
        raw_http::request("POST", &url, &[("Content-Type", "application/json")], body).unwrap()
    };
    let ok = post(br#"{"path":"/v1/stream/x","status":500}"#);
    assert_eq!(
        (ok.status, ok.body_text().as_str()),
        (200, r#"{"ok":true}"#)
    );
    assert_eq!(post(br#"{"status":500}"#).status, 400, "path is required");
    assert_eq!(
        post(br#"{"path":"/x","count":3}"#).status,
        400,
        "a fault is required"
    );
    assert_eq!(post(b"not json").status, 400);
    assert_eq!(get(&server, "/_test/inject-error").unwrap().status, 405);

    // DELETE clears every fault.
    text_stream(&server, "/v1/stream/cleared", "data");
    assert_eq!(
        inject(
            &server,
            json!({"path": "/v1/stream/cleared", "status": 500})
        ),
        200
    );
    let r = raw_http::request("DELETE", &url, &[], b"").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (200, r#"{"ok":true}"#));
    assert_eq!(
        get(&server, "/v1/stream/cleared?offset=-1").unwrap().status,
        200
    );

    // A CORS preflight never triggers a fault (nor uses it up); a fractional count is one use.
    text_stream(&server, "/v1/stream/opt", "data");
    let spec = json!({"path": "/v1/stream/opt", "status": 500, "count": 0.5});
    assert_eq!(inject(&server, spec), 200);
    let url = format!("{}/v1/stream/opt", server.url());
    assert_ne!(
        raw_http::request("OPTIONS", &url, &[], b"").unwrap().status,
        500
    );
    assert_eq!(
        get(&server, "/v1/stream/opt?offset=-1").unwrap().status,
        500
    );
    assert_eq!(
        get(&server, "/v1/stream/opt?offset=-1").unwrap().status,
        200
    );
}

#[test]
fn fault_status_matches_path_and_method_for_count_requests() {
    let server = server();
    text_stream(&server, "/v1/stream/st", "abc");
    let spec = json!({"path": "/v1/stream/st", "method": "get", "status": 503,
                      "retryAfter": 2, "count": 2});
    assert_eq!(inject(&server, spec), 200);
    // Another method, and another path, pass untouched (and do not use the count up).
    let head = raw_http::request("HEAD", &format!("{}/v1/stream/st", server.url()), &[], b"");
    assert_eq!(head.unwrap().status, 200);
    assert_eq!(
        get(&server, "/v1/stream/st/other?offset=-1")
            .unwrap()
            .status,
        404
    );
    for _ in 0..2 {
        let r = get(&server, "/v1/stream/st?offset=-1").unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.body_text(), "Injected error for testing");
    }
    let r = get(&server, "/v1/stream/st?offset=-1").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (200, "abc"));
}

#[test]
fn fault_probability_zero_never_triggers_and_one_always_does() {
    let server = server();
    text_stream(&server, "/v1/stream/p", "abc");
    inject(
        &server,
        json!({"path": "/v1/stream/p", "status": 500, "probability": 0.0}),
    );
    for _ in 0..5 {
        assert_eq!(get(&server, "/v1/stream/p?offset=-1").unwrap().status, 200);
    }
    inject(
        &server,
        json!({"path": "/v1/stream/p", "status": 500, "probability": 1.0}),
    );
    assert_eq!(get(&server, "/v1/stream/p?offset=-1").unwrap().status, 500);
    assert_eq!(get(&server, "/v1/stream/p?offset=-1").unwrap().status, 200);
}

#[test]
fn fault_delay_and_dropped_connection() {
    let server = server();
    text_stream(&server, "/v1/stream/d", "abc");
    inject(
        &server,
        json!({"path": "/v1/stream/d", "delayMs": 300, "jitterMs": 50}),
    );
    let started = std::time::Instant::now();
    let r = get(&server, "/v1/stream/d?offset=-1").unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!((r.status, r.body_text().as_str()), (200, "abc"));

    inject(
        &server,
        json!({"path": "/v1/stream/d", "dropConnection": true}),
    );
    assert!(
        get(&server, "/v1/stream/d?offset=-1").is_err(),
        "no response at all"
    );
    assert_eq!(get(&server, "/v1/stream/d?offset=-1").unwrap().status, 200);
}

#[test]
fn fault_truncated_and_corrupted_bodies() {
    let server = server();
    let text = "0123456789abcdefghijklmnopqrstuvwxyz";
    text_stream(&server, "/v1/stream/b", text);
    inject(
        &server,
        json!({"path": "/v1/stream/b", "truncateBodyBytes": 5}),
    );
    let r = get(&server, "/v1/stream/b?offset=-1").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (200, "01234"));

    inject(
        &server,
        json!({"path": "/v1/stream/b", "corruptBody": true}),
    );
    let r = get(&server, "/v1/stream/b?offset=-1").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), text.len());
    assert_ne!(r.body_text(), text);
    assert!(r
        .body
        .iter()
        .all(|b| text.as_bytes().contains(b) || b"XYZ".contains(b)));

    // Only a successful read's body is changed.
    let url = format!("{}/v1/stream/b", server.url());
    inject(
        &server,
        json!({"path": "/v1/stream/b", "method": "POST", "truncateBodyBytes": 0}),
    );
    let r = raw_http::request("POST", &url, &[("Content-Type", "text/plain")], b"!").unwrap();
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
    let r = get(&server, "/v1/stream/b?offset=-1").unwrap();
    assert_eq!(r.body_text(), format!("{text}!"));
}

#[test]
fn fault_injected_sse_event_comes_first() {
    let server = server();
    text_stream(&server, "/v1/stream/sse", "hello");
    let spec = json!({"path": "/v1/stream/sse",
                      "injectSseEvent": {"eventType": "bogus", "data": "{not json"}});
    inject(&server, spec);
    let url = format!("{}/v1/stream/sse", server.url());
    let mut conn = raw_http::RawConnection::connect(&url).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.send("GET", "/v1/stream/sse?offset=-1&live=sse", &[], b"")
        .unwrap();
    let head = conn.read_response_head().unwrap();
    assert_eq!(head.status, 200);
    let mut seen = String::new();
    while !seen.contains("hello") {
        let mut line = String::new();
        if std::io::BufRead::read_line(conn.reader(), &mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
    }
    // Chunked framing aside, the injected event precedes the stream's own.
    let injected = seen.find("event: bogus\ndata: {not json\n\n").expect(&seen);
    assert!(injected < seen.find("hello").unwrap(), "{seen}");
}

#[test]
fn fault_injection_can_be_turned_off() {
    let server = BackgroundServer::start(ServerConfig {
        fault_injection: false,
        ..ServerConfig::default()
    })
    .unwrap();
    assert_ne!(inject(&server, json!({"path": "/x", "status": 500})), 200);
}
