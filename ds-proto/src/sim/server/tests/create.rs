//! PUT (PROTOCOL.md 5.1).

use super::{off, Harness};
use bytes::Bytes;

#[test]
fn create_defaults_to_octet_stream() {
    let mut t = Harness::new();
    let r = t.put("/s", &[], Bytes::new());
    assert_eq!(r.status, 201);
    assert_eq!(r.h("location"), Some("/s"));
    assert_eq!(r.h("content-type"), Some("application/octet-stream"));
    assert_eq!(r.next(), off(0));
    assert!(r.h("stream-closed").is_none());
    let h = t.head("/s");
    assert_eq!(h.status, 200);
    assert_eq!(h.h("content-type"), Some("application/octet-stream"));
    assert_eq!(h.h("cache-control"), Some("no-store"));
    assert_eq!(h.next(), off(0));
    assert!(h.body.is_empty());
    assert_eq!(
        t.server.content_type("/s").as_deref(),
        Some("application/octet-stream")
    );
}

#[test]
fn create_is_idempotent_for_the_same_configuration() {
    let mut t = Harness::new();
    let ct = [("content-type", "application/json"), ("stream-ttl", "60")];
    assert_eq!(t.put("/s", &ct, Bytes::new()).status, 201);
    let again = t.put("/s", &ct, Bytes::new());
    assert_eq!(again.status, 200);
    assert!(again.h("location").is_none());
    assert_eq!(again.h("content-type"), Some("application/json"));
    // Parameters and case of the media type do not matter.
    let r = t.put(
        "/s",
        &[
            ("content-type", "Application/JSON; charset=utf-8"),
            ("stream-ttl", "60"),
        ],
        Bytes::new(),
    );
    assert_eq!(r.status, 200);
    for conflicting in [
        vec![("content-type", "text/plain"), ("stream-ttl", "60")],
        vec![("content-type", "application/json"), ("stream-ttl", "61")],
        vec![("content-type", "application/json")],
        // No content type: the default, which is not this stream's.
        vec![("stream-ttl", "60")],
        vec![
            ("content-type", "application/json"),
            ("stream-expires-at", "2030-01-01T00:00:00Z"),
        ],
    ] {
        assert_eq!(
            t.put("/s", &conflicting, Bytes::new()).status,
            409,
            "{conflicting:?}"
        );
    }
    // Without a content type the default must match.
    t.put("/o", &[], Bytes::new());
    assert_eq!(t.put("/o", &[], Bytes::new()).status, 200);
    assert_eq!(
        t.put("/o", &[("content-type", "text/plain")], Bytes::new())
            .status,
        409
    );
}

#[test]
fn create_compares_closure_status() {
    let mut t = Harness::new();
    t.create("/open", "text/plain");
    let closed = [("content-type", "text/plain"), ("stream-closed", "true")];
    assert_eq!(t.put("/open", &closed, Bytes::new()).status, 409);
    let r = t.put("/closed", &closed, "final");
    assert_eq!(r.status, 201);
    assert!(r.flag("stream-closed"));
    assert_eq!(r.next(), off(5));
    assert_eq!(t.put("/closed", &closed, Bytes::new()).status, 200);
    assert_eq!(
        t.put("/closed", &[("content-type", "text/plain")], Bytes::new())
            .status,
        409
    );
    // Open -> closed by a POST: a plain PUT now conflicts.
    t.post("/open", &[("stream-closed", "true")], Bytes::new());
    assert_eq!(
        t.put("/open", &[("content-type", "text/plain")], Bytes::new())
            .status,
        409
    );
    assert_eq!(t.put("/open", &closed, Bytes::new()).status, 200);
    // Non-"true" values are no flag (4.1).
    let r = t.put(
        "/maybe",
        &[("content-type", "text/plain"), ("stream-closed", "yes")],
        Bytes::new(),
    );
    assert!(!r.flag("stream-closed"));
    let r = t.put(
        "/upper",
        &[("content-type", "text/plain"), ("stream-closed", "TRUE")],
        Bytes::new(),
    );
    assert!(r.flag("stream-closed"));
    // A closed-at-creation stream is EOF at once.
    let r = t.get("/closed?offset=-1");
    assert_eq!(r.text(), "final");
    assert!(r.flag("stream-closed"));
    assert_eq!(t.server.is_closed("/closed"), Some(true));
}

#[test]
fn ttl_and_expiry_validation() {
    let mut t = Harness::new();
    for bad in ["+3600", "03600", "3600.0", "3.6e3", "-1", "abc", ""] {
        let r = t.put("/t", &[("stream-ttl", bad)], Bytes::new());
        assert_eq!(r.status, 400, "{bad:?}");
    }
    for bad in ["tomorrow", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00"] {
        assert_eq!(
            t.put("/e", &[("stream-expires-at", bad)], Bytes::new())
                .status,
            400,
            "{bad}"
        );
    }
    let both = [
        ("stream-ttl", "10"),
        ("stream-expires-at", "2030-01-01T00:00:00Z"),
    ];
    assert_eq!(t.put("/b", &both, Bytes::new()).status, 400);
    assert_eq!(
        t.put("/ttl", &[("stream-ttl", "0")], Bytes::new()).status,
        201
    );
    assert_eq!(
        t.put("/ttl2", &[("stream-ttl", "3600")], Bytes::new())
            .status,
        201
    );
    assert_eq!(t.head("/ttl2").h("stream-ttl"), Some("3600"));
    let at = "2030-01-01T00:00:00.5+02:00";
    assert_eq!(
        t.put("/at", &[("stream-expires-at", at)], Bytes::new())
            .status,
        201
    );
    let h = t.head("/at");
    assert_eq!(h.h("stream-expires-at"), Some(at));
    assert!(h.h("stream-ttl").is_none());
    // The same instant written differently is the same configuration.
    let same = [("stream-expires-at", "2029-12-31T22:00:00.500Z")];
    assert_eq!(t.put("/at", &same, Bytes::new()).status, 200);
}

#[test]
fn initial_body() {
    let mut t = Harness::new();
    let r = t.put("/b", &[("content-type", "application/x-thing")], "abc");
    assert_eq!(r.next(), off(3));
    assert_eq!(t.get("/b?offset=-1").text(), "abc");
    let json = [("content-type", "application/json")];
    assert_eq!(t.put("/bad", &json, "{nope").status, 400);
    assert_eq!(t.head("/bad").status, 404);
    let r = t.put("/empty", &json, "[]");
    assert_eq!(r.status, 201);
    assert_eq!(r.next(), off(0));
    assert_eq!(t.get("/empty?offset=-1").text(), "[]");
    t.put("/j", &json, " [ {\"a\": 1} , [2] ] ");
    assert_eq!(t.get("/j?offset=-1").text(), "[{\"a\": 1},[2]]");
    assert_eq!(
        t.server.stream_data("/j").unwrap(),
        vec![
            Bytes::from_static(b"{\"a\": 1}"),
            Bytes::from_static(b"[2]")
        ]
    );
    t.put("/one", &json, "{\"x\":true}\n");
    assert_eq!(t.get("/one?offset=-1").text(), "[{\"x\":true}]");
}

#[test]
fn header_values_that_are_not_text_are_400() {
    let mut t = Harness::new();
    let mut req = Harness::request(http::Method::PUT, "/s", &[], Bytes::new());
    req.headers_mut().insert(
        "stream-ttl",
        http::HeaderValue::from_bytes(b"\xff10").unwrap(),
    );
    let r = t.server.call(req, t.now).unwrap();
    assert_eq!(r.status(), 400);
}

/// 5.1: the `Location` of a 201 is the stream's URL, absolute when the request says where it
/// was sent (the official conformance suite parses it with `new URL`).
#[test]
fn location_is_the_absolute_stream_url() {
    let mut t = Harness::new();
    let r = t.put(
        "/v1/stream/a?x=1",
        &[("host", "127.0.0.1:4437"), ("content-type", "text/plain")],
        Bytes::new(),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.h("location"), Some("http://127.0.0.1:4437/v1/stream/a"));
    let r = t.put("https://example.test/v1/stream/b", &[], Bytes::new());
    assert_eq!(r.h("location"), Some("https://example.test/v1/stream/b"));
    // Without a usable Host, the path alone.
    let r = t.put("/v1/stream/c", &[("host", "bad host")], Bytes::new());
    assert_eq!(r.h("location"), Some("/v1/stream/c"));
}
